"""The quality tier: for every family a short training (fixed seed, one thread) whose figure is checked
against a baseline measured in the same test, with a threshold the short run clears by a clear margin
and a broken model cannot. Each check says which regression it catches; each has a deliberate breakage
(``BREAKAGES``) that the negative tests (``test_quality_ci_breakages.py``, a file of their own so that
parallel test workers share the two halves) apply to show the check turns red.

The figures of the short runs, their thresholds and breakages are tabled in the README's testing section ("Tests").
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest
import torch

import seqae
from seqae.datasets.arrays import build_splits

from tiny import ROOT, TINY_CPC, synthetic_corpus, tiny_vc_recipe, write_recipe

pytestmark = pytest.mark.quality


def digits_split(recipe):
    train, test, _ = build_splits(recipe.data)
    return train.x.numpy(), test.x.numpy()


def constant_image_elbo(train_x: np.ndarray, test_x: np.ndarray) -> float:
    """The ELBO of the trivial model: every pixel Bernoulli with the training mean, no latent (KL 0)."""
    p = np.clip(train_x.mean(0), 1e-4, 1 - 1e-4)
    return float((test_x * np.log(p) + (1 - test_x) * np.log(1 - p)).sum(1).mean())


def mean_predictor_mse(train_x: np.ndarray, test_x: np.ndarray) -> float:
    return float(((test_x - train_x.mean(0)) ** 2).mean())


# the few-label probes every array evaluation adds, at their smallest: not what these checks judge
FEW_PROBES = {"eval.labels_per_class": [10], "eval.draws": 1}


def train_and_evaluate(tmp_path, recipe, overrides, **evaluate):
    torch.manual_seed(0)
    if Path(recipe).name in ("ae_digits.toml", "vae_digits.toml", "vqvae_digits.toml", "gumbel_vae_digits.toml"):
        overrides = {**overrides, **FEW_PROBES}
    run = seqae.train(recipe, out=tmp_path / "run", overrides=overrides)
    return run, seqae.evaluate(run, write=False, **evaluate)


# -- the checks: each raises AssertionError when the figure misses its threshold ------------------------


def check_autoencoder(tmp_path):
    """Catches: an autoencoder that stops learning a useful code (MSE no better than linear PCA of the
    same width). Short run: 300 steps of recipes/ae_digits.toml."""
    _, result = train_and_evaluate(tmp_path, ROOT / "recipes" / "ae_digits.toml",
                                   {"train.steps": 300, "train.eval_every": 0, "train.warmup_steps": 30})
    assert result["test_mse"] < 0.85 * result["pca_mse"], result
    return {"figure": result["test_mse"], "baseline": result["pca_mse"]}


def check_vae(tmp_path):
    """Catches: a VAE whose latent carries nothing (ELBO no better than one constant image's) or whose
    ELBO is mis-computed. Short run: 2500 steps of recipes/vae_digits.toml (about 30 s)."""
    from seqae.config import load_recipe

    recipe = ROOT / "recipes" / "vae_digits.toml"
    _, result = train_and_evaluate(tmp_path, recipe, {"train.steps": 2500, "train.eval_every": 0, "train.warmup_steps": 30,
                                                      "model.kl_warmup_steps": 300, "train.log_every": 100})
    baseline = constant_image_elbo(*digits_split(load_recipe(recipe)))
    assert result["test_elbo"] > baseline + 2.0, (result["test_elbo"], baseline)
    return {"figure": result["test_elbo"], "baseline": baseline}


def check_vqvae(tmp_path):
    """Catches: codebook collapse (perplexity near 1) and a VQ-VAE that reconstructs no better than the
    mean image. Short run: 800 steps of recipes/vqvae_digits.toml (64 codes)."""
    from seqae.config import load_recipe

    recipe = ROOT / "recipes" / "vqvae_digits.toml"
    _, result = train_and_evaluate(tmp_path, recipe, {"train.steps": 800, "train.eval_every": 0, "train.warmup_steps": 30,
                                                      "train.log_every": 100})
    baseline = mean_predictor_mse(*digits_split(load_recipe(recipe)))
    assert result["perplexity"] > 16, result
    assert result["test_mse"] < 0.6 * baseline, (result["test_mse"], baseline)
    return {"figure": result["perplexity"], "baseline": 1.0, "mse": result["test_mse"], "mse_baseline": baseline}


def check_gumbel(tmp_path):
    """Catches: a Gumbel latent that collapses onto one code (ELBO of a constant image, -27 on the digits).
    Short run: 800 steps of recipes/gumbel_vae_digits.toml."""
    from seqae.config import load_recipe

    recipe = ROOT / "recipes" / "gumbel_vae_digits.toml"
    _, result = train_and_evaluate(tmp_path, recipe, {"train.steps": 800, "train.eval_every": 0, "train.warmup_steps": 30,
                                                      "train.log_every": 100})
    baseline = constant_image_elbo(*digits_split(load_recipe(recipe)))
    assert result["test_elbo"] > baseline + 1.5, (result["test_elbo"], baseline)
    assert result["perplexity"] > 16, result
    return {"figure": result["test_elbo"], "baseline": baseline}


def last_evaluation(run) -> dict:
    import json

    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if "eval_loss" in r][-1]


def check_quick_thought(tmp_path):
    """Catches: quick-thought's encoders no longer telling a sentence's neighbours from the rest of the
    batch (held-out in-batch accuracy at chance; a hit needs a neighbour strictly above every other
    candidate, so a collapsed encoder scores 0). Short run: a small encoder (GRU 128) on the bundled
    Austen novels, 300 steps of batches of 64 (4 runs of 16 consecutive sentences): about 0.06 against a
    chance of 0.03, so the threshold is 1.5 x chance."""
    runs, batch = 4, 64
    run = seqae.train(ROOT / "recipes" / "quick_thought_austen.toml", out=tmp_path / "run", overrides={
        "model.embed_dim": 64, "model.hidden": 128, "data.vocab_size": 2000, "train.steps": 300, "train.batch_size": batch,
        "train.lr": 3e-3, "train.warmup_steps": 20, "train.eval_every": 300, "train.log_every": 50,
        "train.checkpoint_every": 300})
    accuracy = last_evaluation(run)["eval_accuracy"]
    length = batch // runs  # each row's targets: its one or two neighbours in its run
    chance = (2 * length - 2) / length / (batch - 1)
    assert accuracy > 1.5 * chance, (accuracy, chance)
    return {"figure": accuracy, "baseline": chance}


def check_cpc(tmp_path):
    """Catches: CPC no longer predicting the future frame (InfoNCE accuracy at k = 1 near
    1 / (negatives + 1); a tie with a negative is a miss). Short run: 150 steps at lr 3e-3 on three synthetic
    tone-chord 'phones' of two speakers (about 0.68 against a chance of 0.11)."""
    manifest = synthetic_corpus(tmp_path)
    text = (TINY_CPC.replace("MANIFEST", str(manifest)).replace("steps = 8", "steps = 150").replace("lr = 1e-3", "lr = 3e-3")
            .replace("checkpoint_every = 8", "checkpoint_every = 150"))
    torch.manual_seed(0)
    run = seqae.train(write_recipe(tmp_path, text), out=tmp_path / "run")
    result = seqae.evaluate(run, write=False, manifest=str(manifest))
    chance = 1 / (8 + 1)  # TINY_CPC: 8 negatives
    assert result["test_accuracy_k1"] > 4 * chance, (result["test_accuracy_k1"], chance)
    return {"figure": result["test_accuracy_k1"], "baseline": chance}


def check_skip_thought(tmp_path):
    """Catches: skip-thought's decoders no longer reading the sentence vector (they fall back to a language
    model of the neighbours). The figure: on held-out triples, the neighbours' per-token NLL when each
    decoder is given another sentence's vector (the batch rolled by half) minus the NLL given the right
    one; a decoder that ignores the vector scores 0. Short run: GRU 128 on the bundled Austen novels,
    150 steps of 64 (about 0.013 nats per token, 6.5 standard errors over the held-out batches); the
    threshold: above 0.005 and above 3 standard errors."""
    from seqae.api import prepared_for_evaluation, read_run_config

    torch.manual_seed(0)
    run = seqae.train(ROOT / "recipes" / "skip_thought_austen.toml", out=tmp_path / "run", overrides={
        "model.embed_dim": 64, "model.hidden": 128, "data.vocab_size": 2000, "train.steps": 150, "train.batch_size": 64,
        "train.lr": 3e-3, "train.warmup_steps": 20, "train.eval_every": 0, "train.log_every": 50, "train.checkpoint_every": 150})
    model = seqae.load(run).eval()
    test = prepared_for_evaluation(read_run_config(run), run).test
    gains = []
    with torch.no_grad():
        for indices in test.epoch_batches(0, 12345, 64):
            batch = test.collate(indices)
            vectors = model.encode_tokens(batch["tokens"], batch["lengths"])
            nll = {}
            for name, given in (("right", vectors), ("other", vectors.roll(len(vectors) // 2, dims=0))):
                prev, n_prev = model.decode_prev(given, batch["prev_tokens"], batch["prev_lengths"])
                nxt, n_next = model.decode_next(given, batch["next_tokens"], batch["next_lengths"])
                nll[name] = float(prev + nxt) / float(n_prev + n_next)
            gains.append(nll["other"] - nll["right"])
    gain, se = float(np.mean(gains)), float(np.std(gains, ddof=1) / np.sqrt(len(gains)))
    assert gain > 0.005 and gain > 3 * se, (gain, se)
    return {"figure": gain, "se": se, "baseline": 0.0, "batches": len(gains)}


def check_voice_conversion(tmp_path):
    """Catches: AdaIN-VC no longer converting: the converted log-mel is compared with what the target
    speaker really said (the tiny corpus is parallel: every speaker says every sentence with the same
    timing). The figure: mean L1 of converted-to-target log-mel over every (source, target, sentence) of
    four training speakers, the target given by another of its sentences, against the source-to-target L1
    (what returning the source unchanged scores). Short run: 1000 steps of the tiny AdaIN-VC (about
    15 s; ratio about 0.39); threshold 0.6 x source-to-target."""
    import soundfile

    from seqae.audio import LogMel

    from tiny import parallel_corpus

    (tmp_path / "corpus").mkdir()
    corpus = parallel_corpus(tmp_path / "corpus")
    recipe = tiny_vc_recipe(tmp_path, corpus)
    recipe.write_text(recipe.read_text().replace("steps = 12", "steps = 1000").replace("checkpoint_every = 12", "checkpoint_every = 1000")
                      .replace("kl_anneal_steps = 10", "kl_anneal_steps = 50"))
    torch.manual_seed(0)
    model = seqae.load(seqae.train(recipe, out=tmp_path / "run")).eval()
    data, folder = model.recipe.data, corpus[0].parent
    front_end = LogMel(data.mel())
    speakers, sentences = ["low", "mid", "high", "bright"], 6
    mels = {(s, k): front_end(torch.from_numpy(soundfile.read(str(folder / f"{s}_{k}.wav"), dtype="float32")[0])[None])[0]
            for s in speakers for k in range(sentences)}
    converted_l1, source_l1 = [], []
    with torch.no_grad():
        for k in range(sentences):
            for source in speakers:
                for target in speakers:
                    if source == target:
                        continue
                    code = model.target_code([data.normalise(mels[target, (k + 1) % sentences])])
                    converted = data.denormalise(model.convert(data.normalise(mels[source, k])[None], code)[0])
                    converted_l1.append(float((converted - mels[target, k]).abs().mean()))
                    source_l1.append(float((mels[source, k] - mels[target, k]).abs().mean()))
    figure, baseline = float(np.mean(converted_l1)), float(np.mean(source_l1))
    assert figure < 0.6 * baseline, (figure, baseline)
    return {"figure": figure, "baseline": baseline, "ratio": figure / baseline}


def check_infomax(tmp_path):
    """Catches: Deep InfoMax's code no longer identifying its image (the global discriminator at chance on
    held-out batches of 128: 1/128). Short run: 150 steps of recipes/infomax_digits.toml (about 15 s;
    held-out accuracy about 0.98); threshold 0.5 (64 x chance)."""
    from seqae.api import prepared_for_evaluation, read_run_config
    from seqae.families.arrays import splits
    from seqae.families.infomax.family import test_estimates

    torch.manual_seed(0)
    run = seqae.train(ROOT / "recipes" / "infomax_digits.toml", out=tmp_path / "run",
                      overrides={"train.steps": 150, "train.eval_every": 0, "train.checkpoint_every": 150, "train.warmup_steps": 20})
    _, _, test_x, _ = splits(prepared_for_evaluation(read_run_config(run), run))
    accuracy = test_estimates(seqae.load(run), test_x, 128)["test_accuracy"]
    assert accuracy > 0.5, accuracy
    return {"figure": accuracy, "baseline": 1 / 128}


def check_summarizer(tmp_path):
    """Catches: a compressor that no longer learns from its text (copy pre-training: the greedy summaries
    of held-out texts should reproduce the texts' first words; an untrained compressor matches about
    1 / vocabulary of them). Short run: 150 copy steps of a small summariser on the tiny two-book corpus
    (a few seconds); threshold 0.6 of the positions."""
    from seqae.api import prepared_for_evaluation, read_run_config

    from tiny import TINY_SUMMARIZER, book_corpus, write_recipe

    corpus = book_corpus(tmp_path / "corpus")
    text = TINY_SUMMARIZER.replace("CORPUS", str(corpus)).replace("WORDS", "gumbel")
    text = text.replace("pretrain_copy_steps = 2", "pretrain_copy_steps = 150")
    torch.manual_seed(0)
    run = seqae.train(write_recipe(tmp_path, text), out=tmp_path / "run",
                      overrides={"train.steps": 1, "train.lr": 3e-3, "model.embed_dim": 32, "model.hidden": 64, "train.batch_size": 16})
    model, test = seqae.load(run), prepared_for_evaluation(read_run_config(run), run).test
    batch = test.collate(np.arange(min(len(test), 64)))
    words, lengths = model.summarize_tokens(batch["tokens"], batch["lengths"])
    keep = torch.arange(words.shape[1])[None] < lengths[:, None]
    copied = float(((words == batch["tokens"][:, : words.shape[1]]) & keep).sum() / keep.sum())
    assert copied > 0.6, copied
    return {"figure": copied, "baseline": 1 / model.config.vocab_size}


def check_language_model(tmp_path):
    """Catches: a language model that no longer conditions on the words before (or stops learning): on
    sentences of a fixed word order ('the ADJ NOUN VERB the ADJ NOUN') its held-out perplexity must fall
    under half the add-one unigram model's (measured in the same run; a model blind to the past scores
    about the unigram's). Short run: 150 steps of a small GRU on 400 lines (a few seconds)."""
    from tiny import TINY_LM, grammar_lines, write_recipe

    corpus = tmp_path / "lines.txt"
    corpus.write_text("\n".join(grammar_lines(400)) + "\n")
    text = TINY_LM.replace("CORPUS", str(corpus)).replace("STEPS", "150").replace("UNIT", 'unit = "line"')
    torch.manual_seed(0)
    run = seqae.train(write_recipe(tmp_path, text.replace("TEST_EVERY", "5")), out=tmp_path / "run")
    result = seqae.evaluate(run, write=False)
    assert result["perplexity"] < 0.5 * result["unigram_perplexity"], result
    return {"figure": result["perplexity"], "baseline": result["unigram_perplexity"]}


CHECKS = {"autoencoder": check_autoencoder, "vae": check_vae, "vqvae": check_vqvae, "gumbel": check_gumbel,
          "infomax": check_infomax, "quick_thought": check_quick_thought, "skip_thought": check_skip_thought, "cpc": check_cpc,
          "voice_conversion": check_voice_conversion, "summarizer": check_summarizer,
          "language_model": check_language_model}


@contextlib.contextmanager
def zero_array_codes(monkeypatch):
    """The encoder's output multiplied by zero: the code says nothing about the input."""
    from seqae.families.autoencoder.model import Autoencoder
    from seqae.families.vae.model import VAE
    from seqae.nn.encoders import ConvEncoder

    original_ae, original_vae, original_conv = Autoencoder.encode, VAE.encode, ConvEncoder.forward
    monkeypatch.setattr(Autoencoder, "encode", lambda self, x: original_ae(self, x) * 0)
    monkeypatch.setattr(VAE, "encode", lambda self, x: tuple(t * 0 for t in original_vae(self, x)))
    monkeypatch.setattr(ConvEncoder, "forward", lambda self, x: original_conv(self, x) * 0)  # the VQ-VAE's encoder
    yield


@contextlib.contextmanager
def zero_sentence_vectors(monkeypatch):
    """Every sentence encoded as zeros: all candidates score alike."""
    from seqae.nn.encoders import RecurrentEncoder

    original = RecurrentEncoder.forward
    monkeypatch.setattr(RecurrentEncoder, "forward", lambda self, tokens, lengths: original(self, tokens, lengths) * 0)
    yield


@contextlib.contextmanager
def zero_cpc_context(monkeypatch):
    """The context network's output zeroed (a forward hook on every CPC model built): the predictions
    know nothing of the past."""
    from seqae.families.cpc.model import CPC

    original = CPC.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.context.register_forward_hook(lambda module, inputs, output: (output[0] * 0, *output[1:]))

    monkeypatch.setattr(CPC, "__init__", init)
    yield


@contextlib.contextmanager
def zero_infomax_code(monkeypatch):
    """The global code multiplied by zero: every candidate scores alike (a tie counts as a miss but for
    the first column)."""
    from seqae.families.infomax.model import InfoMax

    original = InfoMax.code
    monkeypatch.setattr(InfoMax, "code", lambda self, local: original(self, local) * 0)
    yield


@contextlib.contextmanager
def zero_speaker_code(monkeypatch):
    """The speaker encoder's output multiplied by zero: the decoder never learns whose voice to draw."""
    from seqae.families.voice_conversion.model import SpeakerEncoder

    original = SpeakerEncoder.forward
    monkeypatch.setattr(SpeakerEncoder, "forward", lambda self, *args, **kwargs: original(self, *args, **kwargs) * 0)
    yield


@contextlib.contextmanager
def zero_text_states(monkeypatch):
    """The summariser's word encoders output zeros: the compressor cannot read its text."""
    from seqae.families.summarizer.parts import WordEncoder

    original = WordEncoder.forward
    monkeypatch.setattr(WordEncoder, "forward", lambda self, *args: tuple(t * 0 for t in original(self, *args)))
    yield


@contextlib.contextmanager
def blind_language_model(monkeypatch):
    """The language model's recurrent states zeroed: each prediction sees none of the words before."""
    from seqae.nn.language_model import RecurrentLM

    original = RecurrentLM.states  # what every prediction (training loss, log-probabilities) is made from
    monkeypatch.setattr(RecurrentLM, "states", lambda self, words: original(self, words) * 0)
    yield


BREAKAGES = {
    "autoencoder": zero_array_codes,
    "vae": zero_array_codes,
    "vqvae": zero_array_codes,
    "gumbel": zero_array_codes,
    "infomax": zero_infomax_code,
    "quick_thought": zero_sentence_vectors,
    "skip_thought": zero_sentence_vectors,
    "cpc": zero_cpc_context,
    "voice_conversion": zero_speaker_code,
    "summarizer": zero_text_states,
    "language_model": blind_language_model,
}


@pytest.mark.parametrize("family", list(CHECKS))
def test_a_short_run_clears_its_baseline(family, tmp_path):
    figures = CHECKS[family](tmp_path)
    print(f"\n{family}: {figures}")
