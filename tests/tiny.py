"""Tiny synthetic corpora, tiny recipes and the command-line helper that the test modules share.

Everything here is made offline in a few seconds: two 'books' of random sentences, tone-chord 'speech'
with phone alignments (CPC), parallel harmonic 'speakers' (voice conversion), and the recipes that train
on them in seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile

ROOT = Path(__file__).resolve().parents[1]


def child_env(env_extra=None) -> dict:
    """The environment of a child process running this checkout: one thread, no injected fault unless
    ``env_extra`` sets ``SEQAE_FAULT``."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    env.pop("SEQAE_FAULT", None)
    env.update(env_extra or {})
    return env


def seqae_cli(args, cwd=None, env_extra=None, preexec_fn=None, timeout=300):
    """``python -m seqae.cli ARGS`` in a child process (:func:`child_env`): the ``CompletedProcess`` with
    text stdout and stderr."""
    return subprocess.run([sys.executable, "-m", "seqae.cli", *map(str, args)], cwd=cwd, env=child_env(env_extra),
                          capture_output=True, text=True, timeout=timeout, preexec_fn=preexec_fn)


def write_recipe(tmp_path: Path, text: str, name: str = "recipe.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


TINY_AE = """
[model]
family = "autoencoder"
hidden = [32, 8]
activation = "sigmoid"

[data]
source = "digits"

[train]
steps = 40
batch_size = 32
lr = 3e-3
warmup_steps = 5
log_every = 5
checkpoint_every = 20
"""


WORDS = "the a ship sea whale captain house sister letter ball dance walk rain garden horse money".split()


def book_corpus(folder: Path, chapters: int = 6, sentences: int = 40) -> Path:
    """Two 'books' with their own vocabularies, chapter headings and 40 sentences a chapter."""
    import numpy as np

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for book in range(2):
        parts = []
        for chapter in range(chapters):
            parts.append(f"Chapter {chapter + 1}")
            lines = [" ".join(rng.choice(WORDS[book * 6 : book * 6 + 10], size=rng.integers(3, 9))).capitalize() + "."
                     for _ in range(sentences)]
            parts.append(" ".join(lines))
        (folder / f"book{book}.txt").write_text("\n\n".join(parts) + "\n")
    return folder


TINY_VQ = """
[model]
family = "vqvae"
latent = "global"
channels = 16
code_dim = 8
codebook_size = 16
dead_code_threshold = 0.1

[data]
source = "digits"

[train]
steps = 30
batch_size = 64
lr = 2e-3
warmup_steps = 5
log_every = 10
checkpoint_every = 30
"""


TINY_SUMMARIZER = """
[model]
family = "summarizer"
embed_dim = 16
hidden = 24
summary_ratio = 0.5
summary_min = 2
summary_max = 6
through_words = "WORDS"
pretrain_copy_steps = 2

[data]
corpus = "CORPUS"
vocab_size = 100
min_words = 6
readable_min_words = 3
readable_max_words = 5
test_every = 3

[train]
steps = 4
batch_size = 8
warmup_steps = 1
log_every = 2
checkpoint_every = 4

[eval]
max_texts = 20
examples = 2
"""


TINY_QT = """
[model]
family = "quick_thought"
embed_dim = 16
hidden = 24

[data]
corpus = "CORPUS"
vocab_size = 100
test_every = 3

[train]
steps = 12
batch_size = 32
lr = 3e-3
warmup_steps = 2
log_every = 4
checkpoint_every = 12

[eval]
probe_sentences = 100
retrieval_queries = 40
candidates = 20
"""


def synthetic_corpus(folder):
    """Two 'speakers' (base pitch) saying sequences of three 'phones' (tone chords), with alignments."""
    rng = np.random.default_rng(0)
    rate = 16000
    phones = {"a": 1.0, "e": 1.5, "o": 2.25}
    lines = []
    for speaker, base in (("low", 150.0), ("high", 260.0)):
        for u in range(6):
            t0, wave, alignment = 0.0, [], []
            for _ in range(12):
                name = rng.choice(list(phones))
                n = int(rate * 0.08)
                t = np.arange(n) / rate
                wave.append(0.3 * np.sin(2 * np.pi * base * phones[name] * t) + 0.01 * rng.standard_normal(n))
                alignment.append([round(t0, 4), round(t0 + 0.08, 4), name])
                t0 += 0.08
            path = folder / f"{speaker}_{u}.wav"
            soundfile.write(str(path), np.concatenate(wave).astype(np.float32), rate)
            lines.append(json.dumps({"audio": path.name, "speaker": speaker, "text": f"sentence {u}", "phones": alignment}))
    (folder / "all.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "all.jsonl"


TINY_CPC = """
[model]
family = "cpc"
channels = 16
context_dim = 16
prediction_steps = 3
negatives = 8

[data]
source = "MANIFEST"
test_fraction = 0.25
segment_samples = 4000

[train]
steps = 8
batch_size = 8
lr = 1e-3
warmup_steps = 2
log_every = 4
checkpoint_every = 8
"""


RATE = 16000
PHONES = {"a": (700, 1200), "i": (300, 2300), "u": (300, 800), "s": (4000, 5500)}  # two formants each


def voiced(f0: float, formants, tilt: float, seconds: float, rng) -> np.ndarray:
    """Harmonics of f0 shaped by two formant bumps and a speaker's spectral tilt."""
    t = np.arange(int(RATE * seconds)) / RATE
    wave = np.zeros_like(t)
    for h in range(1, int(7000 / f0)):
        f = h * f0
        gain = sum(np.exp(-((f - c) / 200.0) ** 2) for c in formants) * (f / 1000.0) ** -tilt + 0.02
        wave += gain * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    return wave


def parallel_corpus(folder, speakers=(("low", 110, 1.0), ("mid", 160, 0.5), ("high", 230, 0.2), ("bright", 190, -0.2),
                                      ("new", 140, 0.8)), sentences=6):
    """Speakers (pitch, spectral tilt) saying the same phone sequences, with alignments; the last
    speaker goes to a separate manifest (unseen)."""
    rng = np.random.default_rng(0)
    scripts = [rng.choice(list(PHONES), size=10) for _ in range(sentences)]
    manifests = {"train": [], "unseen": []}
    for k, (name, f0, tilt) in enumerate(speakers):
        for s, script in enumerate(scripts):
            parts, alignment, t0 = [], [], 0.0
            for phone in script:
                parts.append(voiced(f0, PHONES[phone], tilt, 0.08, rng))
                alignment.append([round(t0, 4), round(t0 + 0.08, 4), str(phone)])
                t0 += 0.08
            wave = np.concatenate(parts)
            wave = 0.5 * wave / np.abs(wave).max() + 0.003 * rng.standard_normal(len(wave))
            path = folder / f"{name}_{s}.wav"
            soundfile.write(str(path), wave.astype(np.float32), RATE)
            record = {"audio": path.name, "speaker": name, "text": " ".join(script), "phones": alignment}
            manifests["unseen" if k == len(speakers) - 1 else "train"].append(json.dumps(record))
    for split, lines in manifests.items():
        (folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "train.jsonl", folder / "unseen.jsonl"


TINY_VC = """
[model]
family = "voice_conversion"
method = "METHOD"
channels = 32
blocks = 2
content_dim = 8
speaker_dim = 16
kl_anneal_steps = 10
adversary_hidden = 16

[data]
source = "TRAIN"
test_fraction = 0.2
segment_frames = 32
n_mels = 40

[train]
steps = 12
batch_size = 8
lr = 2e-3
warmup_steps = 2
log_every = 4
checkpoint_every = 12

[eval]
manifest = "TRAIN"
unseen_manifest = "UNSEEN"
conversions = 6
max_train_frames = 2000
max_iter = 100
griffin_lim_iters = 8
"""


def tiny_vc_recipe(folder: Path, corpus: tuple[Path, Path], method: str = "adain") -> Path:
    """``TINY_VC`` on the manifests of :func:`parallel_corpus`, written into ``folder``."""
    train, unseen = corpus
    text = TINY_VC.replace("METHOD", method).replace("TRAIN", str(train)).replace("UNSEEN", str(unseen))
    return write_recipe(folder, text, f"{method}.toml")


TINY_LM = """
[model]
family = "language_model"
embed_dim = 16
hidden = 32
dropout = 0.0

[data]
corpus = "CORPUS"
vocab_size = 100
UNIT
test_every = TEST_EVERY

[train]
steps = STEPS
batch_size = 16
lr = 1e-2
warmup_steps = 1
log_every = 20
checkpoint_every = 1000
"""

ADJECTIVES = ["red", "big", "old", "shy", "wet"]
NOUNS = ["cat", "dog", "fox", "owl", "hen"]
VERBS = ["sees", "likes", "bites", "finds", "hears"]


def grammar_lines(n: int, seed: int = 0) -> list[str]:
    """'the ADJ NOUN VERB the ADJ NOUN': word order is all there is to learn beyond word counts."""
    rng = np.random.default_rng(seed)
    return [f"the {rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} {rng.choice(VERBS)} the {rng.choice(ADJECTIVES)} "
            f"{rng.choice(NOUNS)}" for _ in range(n)]
