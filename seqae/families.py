"""The registry of model families: for each, its config classes and how to build its data, model,
evaluation, figures and codes. The Trainer and the command line go through this table and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from seqae.audio import target_contour
from seqae.config import ConfigError, Recipe
from seqae.datasets.arrays import ArrayDataConfig, ArraySource, build_splits, read_input
from seqae.datasets.audio import (
    ONE_PIECE_SECONDS,
    AudioDataConfig,
    MelSegments,
    build_mel_splits,
    list_utterances,
    log_mels,
    log_mels_and_pitch,
)
from seqae.datasets.base import BatchSource, DataError, fingerprint, read_text_lines, utterances_fingerprint
from seqae.datasets.text import TextDataConfig
from seqae.evaluation.arrays import ArrayEvalConfig, corrupt_like, evaluate_autoencoder, evaluate_vae, evaluate_vqvae
from seqae.evaluation.conversion import ConversionEvalConfig
from seqae.evaluation.probes import ProbeEvalConfig
from seqae.evaluation.sentences import SentenceEvalConfig
from seqae.models.autoencoder import Autoencoder, AutoencoderConfig
from seqae.models.cpc import CPC, CPCConfig
from seqae.models.quick_thought import QuickThought, QuickThoughtConfig
from seqae.models.skip_thought import SkipThought, SkipThoughtConfig
from seqae.models.vae import VAE, VAEConfig
from seqae.models.voice_conversion import VoiceConversion, VoiceConversionConfig
from seqae.models.vqvae import VQVAE, VQVAEConfig


@dataclass
class Prepared:
    """The data of a recipe, ready for the Trainer and the evaluation."""

    train: BatchSource
    test: BatchSource
    extra: Any = None
    run_files: dict[str, Path] = field(default_factory=dict)  # copied into the run directory (tokenizer.json)
    fingerprint: str = ""  # of the data read; recorded in run.json, checked on resume and evaluation
    data_name: str = ""  # the data's file or folder, for messages


@dataclass(frozen=True)
class Family:
    name: str
    model_config: type
    data_config: type
    eval_config: type
    prepare: Callable[[Recipe], Prepared]  # loads data and fills inferred fields (input_dim, scale) in the recipe
    build_model: Callable[[Recipe], nn.Module]
    evaluate: Callable[..., dict[str, Any]]  # (model, recipe, prepared, **options)
    figures: Callable[[nn.Module, Recipe, Prepared, Path], list[Path]]
    codes: Callable[[nn.Module, Recipe, Path], np.ndarray]
    scores: Callable[[nn.Module, Recipe, Path], np.ndarray] | None = None
    data_config_for: Callable[[Any], type] | None = None  # when [data] depends on [model] (vqvae: images or mel)
    on_load: Callable[[nn.Module, Recipe, Path], None] | None = None  # attach run files (the tokenizer)
    eval_needs_training_data: bool = True  # False: evaluate/figures get prepared=None (they read their own manifests)
    eval_options: tuple[str, ...] = ()  # what evaluate takes beyond the recipe: "tasks" (--task), "manifest" (--manifest)
    code_kinds: tuple[str, ...] = ()  # the choices of `codes(..., kind=)`, the first the default (seqae codes --kind)


# -- array families (autoencoder, vae) -------------------------------------------------------------


def prepare_arrays(recipe: Recipe) -> Prepared:
    train, test, data = build_splits(recipe.data)
    recipe.data.scale = data.scale
    recipe.data.image_shape = list(data.image_shape)
    width = data.x.shape[1]
    classes = getattr(recipe.model, "num_classes", 0)
    if classes:
        if data.y is None:
            raise ConfigError(f"{recipe.source}: model.num_classes = {classes} needs labelled data (data.labels, or 'y' in the .npz)")
        if data.y.min() < 0 or data.y.max() >= classes:
            raise ConfigError(
                f"{recipe.source}: labels range over {int(data.y.min())}..{int(data.y.max())}, "
                f"but model.num_classes = {classes} allows 0..{classes - 1}"
            )
    if recipe.model.input_dim == 0:
        recipe.model.input_dim = width
    elif recipe.model.input_dim != width:
        raise ConfigError(
            f"{recipe.source}: model.input_dim = {recipe.model.input_dim} but the data has {width} features"
        )
    labels = data.y if data.y is not None else "no labels"
    return Prepared(train, test, data, fingerprint=fingerprint(data.x, labels), data_name=str(recipe.data.source))


def prepare_vqvae(recipe: Recipe) -> Prepared:
    if recipe.model.input == "mel":
        train, test, utterances = build_mel_splits(recipe.data)
        n_mels = recipe.data.n_mels
        if recipe.model.input_dim not in (0, n_mels):
            raise ConfigError(f"{recipe.source}: model.input_dim = {recipe.model.input_dim} but data.n_mels = {n_mels}")
        recipe.model.input_dim = n_mels
        return Prepared(train, test, utterances, fingerprint=utterances_fingerprint(utterances["train"] + utterances["test"]),
                        data_name=str(recipe.data.source))
    return prepare_images(recipe)


def prepare_images(recipe: Recipe) -> Prepared:
    prepared = prepare_arrays(recipe)
    shape = recipe.data.image_shape
    if len(shape) != 2:
        raise ConfigError(f"{recipe.source}: the vqvae family needs images; the data's example shape is {shape}")
    if not recipe.model.image_shape:
        recipe.model.image_shape = list(shape)
    return prepared


def array_inputs(model: nn.Module, recipe: Recipe, path: Path) -> torch.Tensor:
    if not isinstance(recipe.data, ArrayDataConfig):
        raise ConfigError(f"{path}: this command takes array input; the model was trained on {type(recipe.data).__name__}")
    x = read_input(path, recipe.data.scale, recipe.model.input_dim)
    return torch.from_numpy(x).to(next(model.parameters()).device)


@torch.no_grad()
def array_codes(model: nn.Module, recipe: Recipe, path: Path) -> np.ndarray:
    """Codes ``(examples, code_dim)``: the code layer (autoencoder) or the posterior mean (vae)."""
    model.eval()
    x = array_inputs(model, recipe, path)
    codes = model.encode(x)
    if isinstance(codes, tuple):
        codes = codes[0]
    return codes.cpu().numpy()


@torch.no_grad()
def array_scores(model: nn.Module, recipe: Recipe, path: Path) -> np.ndarray:
    """Anomaly scores ``(examples,)``: the per-example reconstruction error."""
    model.eval()
    return model.reconstruction_error(array_inputs(model, recipe, path)).cpu().numpy()


def test_arrays(prepared: Prepared) -> tuple[np.ndarray, np.ndarray | None]:
    test = prepared.test
    assert isinstance(test, ArraySource)
    return test.x.numpy(), None if test.y is None else test.y.numpy()


def evaluate_arrays(model: nn.Module, recipe: Recipe, prepared: Prepared, **options) -> dict[str, Any]:
    train = prepared.train
    assert isinstance(train, ArraySource)
    test_x, test_y = test_arrays(prepared)
    train_y = None if train.y is None else train.y.numpy()
    excluded = recipe.data.exclude_classes
    if isinstance(model, VQVAE):
        return evaluate_vqvae(model, train.x.numpy(), train_y, test_x, test_y, recipe.eval)
    if isinstance(model, VAE):
        return evaluate_vae(model, train.x.numpy(), test_x, test_y, recipe.eval, excluded)
    return evaluate_autoencoder(model, train.x.numpy(), test_x, test_y, train_y, recipe.eval, excluded)


@torch.no_grad()
def evaluate_mel_vqvae(model: nn.Module, test: MelSegments) -> dict[str, Any]:
    """Reconstruction error (normalised log-mel units) and codebook usage over every test utterance, whole."""
    from seqae.nn.quantize import CodebookUsage

    model.eval()
    device = next(model.parameters()).device
    usage = CodebookUsage(model.config.codebook_size)
    squared, count = 0.0, 0
    for mel in test.mels:
        x = mel[None].to(device)
        squared += float((model.reconstruct(x) - x).pow(2).sum())
        count += x.numel()
        usage.update(model.codes(x))
    return {
        "test_utterances": len(test.mels),
        "test_frames": count // model.config.input_dim,
        "test_mse": squared / count,
        **usage.result(),
    }


@torch.no_grad()
def mel_figures(model: nn.Module, recipe: Recipe, test: MelSegments, out_dir: Path) -> list[Path]:
    from seqae import plots

    model.eval()
    device = next(model.parameters()).device
    mel = test.mels[0][None].to(device)
    recon = model.reconstruct(mel)
    codes = [model.codes(m[None].to(device)).cpu().numpy() for m in test.mels]
    counts = np.bincount(np.concatenate([c.reshape(-1) for c in codes]), minlength=model.config.codebook_size)
    sample = codes[0]
    return [
        plots.spectrograms([mel[0].cpu().numpy(), recon[0].cpu().numpy()], ["log-mel (normalised)", "reconstruction"],
                           out_dir / "reconstructions.png", hop_seconds=recipe.data.hop_length / recipe.data.sample_rate),
        plots.code_usage(counts, sample[:, :: max(1, sample.shape[1] // 40)], None, out_dir / "code_usage.png"),
    ]


@torch.no_grad()
def array_figures(model: nn.Module, recipe: Recipe, prepared: Prepared, out_dir: Path) -> list[Path]:
    from seqae import plots

    model.eval()
    device = next(model.parameters()).device
    test_x, test_y = test_arrays(prepared)
    shape = tuple(recipe.data.image_shape)
    # one example of each label where labels exist, so the figure shows the whole range
    if test_y is not None:
        picks = [int(np.flatnonzero(test_y == c)[0]) for c in np.unique(test_y)][:10]
        picks += [i for i in range(len(test_x)) if i not in picks][: 10 - len(picks)]
    else:
        picks = list(range(min(10, len(test_x))))
    x = torch.from_numpy(test_x[picks])
    paths = []
    rows, labels = [x.numpy()], ["original"]
    if getattr(model.config, "noise", "none") != "none" and model.config.noise_level > 0:
        noisy = corrupt_like(model, x, recipe.eval.noise_seed)
        rows += [noisy.clamp(0, 1).numpy(), model.reconstruct(noisy.to(device)).cpu().numpy()]
        labels += ["noisy", "denoised"]
    else:
        rows.append(model.reconstruct(x.to(device)).cpu().numpy())
        labels.append("reconstruction")
    paths.append(plots.image_rows(rows, labels, shape, out_dir / "reconstructions.png", "test split"))
    if isinstance(model, VQVAE):
        return paths + vqvae_figures(model, recipe, test_x, test_y, picks, out_dir)
    codes = model.encode(torch.from_numpy(test_x).to(device))
    codes = (codes[0] if isinstance(codes, tuple) else codes).cpu().numpy()
    paths.append(plots.code_map(codes, test_y, out_dir / "code_map.png"))
    if isinstance(model, VAE):
        generator = torch.Generator().manual_seed(recipe.eval.noise_seed)
        samples = model.sample(40, generator=generator).cpu().numpy()
        paths.append(plots.image_grid(samples, shape, out_dir / "samples.png", title="samples from the prior"))
    return paths


def evaluate_vqvae_run(model: nn.Module, recipe: Recipe, prepared: Prepared, **options) -> dict[str, Any]:
    """The vqvae family's evaluation: log-mel or image input."""
    if recipe.model.input == "mel":
        return evaluate_mel_vqvae(model, prepared.test)
    return evaluate_arrays(model, recipe, prepared, **options)


def vqvae_run_figures(model: nn.Module, recipe: Recipe, prepared: Prepared, out_dir: Path) -> list[Path]:
    """The vqvae family's figures: log-mel or image input."""
    if recipe.model.input == "mel":
        return mel_figures(model, recipe, prepared.test, out_dir)
    return array_figures(model, recipe, prepared, out_dir)


def vqvae_figures(model, recipe, test_x, test_y, picks, out_dir: Path) -> list[Path]:
    from seqae import plots

    if model.config.quantizer == "binary":
        return []
    device = next(model.parameters()).device
    codes = model.codes(torch.from_numpy(test_x).to(device)).cpu().numpy()
    counts = np.bincount(codes.reshape(-1), minlength=model.config.codebook_size)
    sample = codes[picks]
    labels = None if test_y is None else test_y[picks]
    return [plots.code_usage(counts, sample, labels, out_dir / "code_usage.png")]


@torch.no_grad()
def vqvae_codes(model: nn.Module, recipe: Recipe, path: Path) -> np.ndarray:
    """Codes ``(examples,)`` (global) or ``(examples, h, w)`` (grid); for log-mel models, the codes
    ``(frames,)`` of one audio file (``-i`` a folder or manifest: see :func:`mel_codes_by_file`)."""
    model.eval()
    if model.config.input == "mel":
        utterances = list_utterances(path)
        if len(utterances) != 1:
            raise DataError(f"{path}: {len(utterances)} utterances; give one audio file, or write a .npz with -o codes.npz")
        return mel_codes(model, recipe, utterances)[0]
    x = array_inputs(model, recipe, path)
    return torch.cat([model.codes(x[i : i + 1024]) for i in range(0, len(x), 1024)]).cpu().numpy()


def mel_codes(model: nn.Module, recipe: Recipe, utterances) -> list[np.ndarray]:
    device = next(model.parameters()).device
    out = []
    for mel in log_mels(utterances, recipe.data.mel()):
        x = recipe.data.normalise(mel)[None].to(device)
        out.append(model.codes(x)[0].cpu().numpy())
    return out


@torch.no_grad()
def mel_codes_by_file(model: nn.Module, recipe: Recipe, path: Path) -> dict[str, np.ndarray]:
    """Codes of every utterance of a folder or manifest, keyed by the audio path."""
    model.eval()
    utterances = list_utterances(path)
    return {str(u.audio): codes for u, codes in zip(utterances, mel_codes(model, recipe, utterances))}


# -- sentence encoders (skip_thought, quick_thought) ---------------------------------------------


def prepare_text(recipe: Recipe) -> Prepared:
    from seqae.datasets.text import ContiguousSentences, SentenceTriples, held_out, load_tokenizer, tokenise_corpus

    corpus = tokenise_corpus(recipe.data)
    tokenizer = load_tokenizer(corpus.folder / "tokenizer.json")
    vocab = tokenizer.get_vocab_size()
    if recipe.model.vocab_size not in (0, vocab):
        raise ConfigError(f"{recipe.source}: model.vocab_size = {recipe.model.vocab_size} but the tokenizer has {vocab}")
    recipe.model.vocab_size = vocab
    mask = held_out(corpus, recipe.data.test_every)
    train_idx, test_idx = np.flatnonzero(~mask), np.flatnonzero(mask)
    if len(test_idx) == 0 or len(train_idx) == 0:
        raise DataError(
            f"{recipe.data.corpus}: {len(corpus)} sentences in too few chapters to hold every "
            f"{recipe.data.test_every}th out; lower data.test_every"
        )
    report_uncovered_documents(corpus, mask, recipe.data.corpus)
    name = Path(recipe.data.corpus).name
    if recipe.family == "quick_thought":
        runs = recipe.data.runs_per_batch
        train = ContiguousSentences(corpus, train_idx, f"{name} (training chapters)", runs)
        test = ContiguousSentences(corpus, test_idx, f"{name} (held-out chapters)", runs)
    else:
        train = SentenceTriples(corpus, train_idx, f"{name} (training chapters)")
        test = SentenceTriples(corpus, test_idx, f"{name} (held-out chapters)")
    extra = {"corpus": corpus, "test_idx": test_idx, "tokenizer": tokenizer}
    return Prepared(train, test, extra, run_files={"tokenizer.json": corpus.folder / "tokenizer.json"},
                    fingerprint=corpus.content_fingerprint, data_name=str(recipe.data.corpus))


def report_uncovered_documents(corpus, mask: np.ndarray, source: str) -> list[str]:
    """Name (on stderr) every document none of whose sentences is held out: the held-out tasks and the
    embedding map do not cover it, which is usually a book whose chapter headings were not recognised."""
    import sys

    documents = np.asarray(corpus.documents)
    held = np.bincount(documents[mask], minlength=len(corpus.document_names))
    total = np.bincount(documents, minlength=len(corpus.document_names))
    uncovered = [name for name, h, t in zip(corpus.document_names, held, total) if h == 0 and t > 0]
    for name in uncovered:
        chapters = len(np.unique(np.asarray(corpus.segments)[documents == corpus.document_names.index(name)]))
        print(f"{source}: note: none of the {total[corpus.document_names.index(name)]:,} sentences of '{name}' is held out "
              f"({chapters} chapter(s) found; chapters start at headings such as 'Chapter 1' or 'CHAPTER IV. Title'); "
              "the held-out tasks and the embedding map do not cover it", file=sys.stderr)
    return uncovered


def attach_tokenizer(model: nn.Module, recipe: Recipe, run_dir: Path) -> None:
    from seqae.checkpoint import CheckpointError
    from seqae.datasets.text import load_tokenizer

    path = run_dir / "tokenizer.json"
    tokenizer = load_tokenizer(path)
    if tokenizer.get_vocab_size() > recipe.model.vocab_size:
        raise CheckpointError(f"{path}: a vocabulary of {tokenizer.get_vocab_size()} tokens, more than the model's "
                              f"{recipe.model.vocab_size} (model.vocab_size); this is not the run's own tokenizer")
    model.attach_tokenizer(tokenizer, recipe.data.max_tokens)


def held_out_tasks(prepared: Prepared, config) -> dict[str, Any]:
    corpus, test_idx = prepared.extra["corpus"], prepared.extra["test_idx"]
    rng = np.random.default_rng(config.seed)
    documents = np.asarray(corpus.documents)
    segments = np.asarray(corpus.segments)
    probe = np.sort(rng.choice(test_idx, size=min(config.probe_sentences, len(test_idx)), replace=False))
    labels = documents[probe] if len(np.unique(documents[test_idx])) > 1 else None
    held = set(test_idx.tolist())
    pairs = np.array([i for i in test_idx if i + 1 in held and segments[i] == segments[i + 1]])
    if len(pairs) == 0:
        raise DataError(f"{corpus.folder}: no consecutive held-out sentences for the retrieval task")
    queries = np.sort(rng.choice(pairs, size=min(config.retrieval_queries, len(pairs)), replace=False))
    pool = np.sort(rng.choice(test_idx, size=min(5000, len(test_idx)), replace=False))
    if len(pool) < config.candidates:
        raise DataError(f"{prepared.data_name or corpus.folder}: {len(pool)} held-out sentences, fewer than "
                        f"eval.candidates ({config.candidates}); lower eval.candidates or use a larger corpus")
    texts = dict(zip(np.concatenate([probe, queries, queries + 1, pool]).tolist(),
                     corpus.texts(np.concatenate([probe, queries, queries + 1, pool]))))
    distinct = len({texts[i] for i in pool.tolist()})
    if distinct < config.candidates + 1:  # distractors are never the query or its true next sentence
        raise DataError(f"{prepared.data_name or corpus.folder}: the held-out chapters hold {distinct} distinct sentences, too "
                        f"few for next-sentence retrieval among eval.candidates = {config.candidates}; lower "
                        "eval.candidates or use a corpus with more varied text")
    authors = np.array([name.split("-", 1)[0] for name in corpus.document_names])  # "austen-emma" -> "austen"
    author_labels = authors[documents[probe]] if labels is not None else None
    if author_labels is not None and not 1 < len(np.unique(author_labels)) < len(np.unique(labels)):
        author_labels = None  # one author, or one document an author: the book task already says it
    return {
        "probe_sentences": [texts[i] for i in probe.tolist()],
        "probe_labels": labels,
        "probe_authors": author_labels,
        "probe_groups": segments[probe],
        "query_groups": segments[queries],
        "queries": [texts[i] for i in queries.tolist()],
        "nexts": [texts[i + 1] for i in queries.tolist()],
        "pool": [texts[i] for i in pool.tolist()],
    }


def bag_of_words(model: nn.Module):
    """Embed a sentence as the mean of ``model``'s input token embeddings."""
    from seqae.datasets.text import encode_batch

    table = model.token_embeddings().detach().float().cpu().numpy()

    def embed(sentences: list[str]) -> np.ndarray:
        ids = encode_batch(model.tokenizer, list(sentences), model.max_tokens)
        return np.stack([table[i].mean(0) if len(i) else np.zeros(table.shape[1], np.float32) for i in ids])

    return embed


def evaluate_text(model: nn.Module, recipe: Recipe, prepared: Prepared, tasks: list[str] | None = None,
                  senteval: str | None = None, senteval_tasks: list[str] | str | None = None, **options) -> dict[str, Any]:
    """Built-in held-out tasks, user task files and SentEval's tasks (``senteval``: SentEval's
    ``data/downstream`` folder; ``senteval_tasks``: their names, default all there are) for the trained
    encoder, the same encoder untrained, and bags of words (mean of the trained, and of the untrained,
    token embeddings)."""
    from seqae.evaluation import senteval as se
    from seqae.evaluation.sentences import builtin_tasks, paired_gains, read_task, user_task

    parsed = [(Path(t), *read_task(t)) for t in tasks or []]  # bad task files fail before any work
    if senteval_tasks and not senteval:
        raise ConfigError("--tasks names SentEval tasks; give their folder with --senteval DIR")
    benchmark = se.load_tasks(senteval, se.parse_task_names(senteval_tasks)) if senteval else []
    model.eval()
    torch.manual_seed(recipe.eval.seed)
    untrained = get_family(recipe.family).build_model(recipe).eval()
    untrained.attach_tokenizer(model.tokenizer, model.max_tokens)
    embedders = {
        "trained": model.embed,
        "untrained": untrained.embed,
        "bow_trained": bag_of_words(model),
        "bow_untrained": bag_of_words(untrained),
    }
    held = held_out_tasks(prepared, recipe.eval)
    result: dict[str, Any] = {"held_out_sentences": len(prepared.extra["test_idx"]), "retrieval_queries": len(held["queries"]),
                              "embedding_dim": model.embedding_dim}
    per_item: dict[str, dict[str, np.ndarray]] = {name: {} for name in embedders}
    for name, embed in embedders.items():
        for key, value in builtin_tasks(embed, held, recipe.eval, per_item[name]).items():
            result[f"{key}_{name}"] = value
        for path, kind, items in parsed:
            for key, value in user_task(embed, kind, items, recipe.eval.seed).items():
                result[f"{path.stem}_{key}_{name}"] = value
        for task in benchmark:
            for key, value in se.run_task(embed, task, recipe.eval.seed).items():
                result[f"senteval_{task.name}_{key}_{name}"] = value
    # the trained encoder against the untrained one and its bag of words, on the same items (paired)
    result.update(paired_gains(per_item, "trained", ["untrained", "bow_trained"]))
    if benchmark:
        result["senteval_table"] = se.table(result, [t.name for t in benchmark], list(embedders))
    return result


def text_figures(model: nn.Module, recipe: Recipe, prepared: Prepared, out_dir: Path) -> list[Path]:
    from seqae import plots

    held = held_out_tasks(prepared, recipe.eval)
    if held["probe_labels"] is None:
        return []
    embeddings = model.embed(held["probe_sentences"])
    names = prepared.extra["corpus"].document_names
    return [plots.code_map(embeddings, held["probe_labels"], out_dir / "embedding_map.png",
                           title="held-out sentence embeddings, by book", names=names)]


@torch.no_grad()
def text_embed(model: nn.Module, recipe: Recipe, path: Path) -> np.ndarray:
    """One row per line of a UTF-8 text file (lines end at ``\n`` only; see :func:`read_text_lines`)."""
    lines = read_text_lines(path, "text file (one sentence per line)")
    if not lines:
        raise DataError(f"{path}: empty file; give one sentence per line")
    for number, line in enumerate(lines, start=1):
        if len(line) > recipe.data.max_sentence_chars:
            raise DataError(f"{path}:{number}: a line of {len(line):,} characters, more than "
                            f"data.max_sentence_chars ({recipe.data.max_sentence_chars:,})")
    return model.embed(lines)


# -- contrastive predictive coding ---------------------------------------------------------------


def prepare_cpc(recipe: Recipe) -> Prepared:
    from seqae.datasets.audio import build_wave_splits

    cfg = recipe.model
    if recipe.data.segment_samples < cfg.receptive_field + cfg.hop * (cfg.prediction_steps + 1):
        raise ConfigError(
            f"{recipe.source}: data.segment_samples = {recipe.data.segment_samples} is too short to predict "
            f"{cfg.prediction_steps} frames ahead; use at least {cfg.receptive_field + cfg.hop * (cfg.prediction_steps + 1)}"
        )
    train, test, info = build_wave_splits(recipe.data, min_samples=cfg.receptive_field)
    return Prepared(train, test, info, fingerprint=utterances_fingerprint(info["train"] + info["test"]),
                    data_name=str(recipe.data.source))


def cpc_extractors(model: nn.Module, recipe: Recipe) -> dict:
    from seqae.audio import LogMel, MelConfig
    from seqae.evaluation.probes import stack_frames

    cfg = model.config
    rate = recipe.data.sample_rate
    device = next(model.parameters()).device
    torch.manual_seed(recipe.eval.seed)
    untrained = get_family("cpc").build_model(recipe).to(device).eval()
    mel = LogMel(MelConfig(sample_rate=rate, n_fft=400, win_length=400, hop_length=cfg.hop, n_mels=80))

    def cpc_fn(net):
        @torch.no_grad()
        def extract(wave):
            return net.features(torch.from_numpy(wave)[None].to(device))[0].cpu().numpy()
        return extract

    @torch.no_grad()
    def logmel(wave):
        return mel(torch.from_numpy(wave))[0].t().numpy()

    centre, hop = cfg.receptive_field / 2 / rate, cfg.hop / rate
    return {
        "cpc": (cpc_fn(model), centre, hop),
        "cpc_random": (cpc_fn(untrained), centre, hop),
        "logmel": (logmel, 0.0, hop),
        "logmel_stacked": (lambda w: stack_frames(logmel(w), 4), 0.0, hop),
    }


def resolve_manifests(recipe: Recipe, manifest: str | list[str] | None) -> list[Path]:
    """``--manifest`` (one or several), else the recipe's ``eval.manifest`` (and ``eval.unseen_manifest``),
    else ``data.test_source``."""
    if isinstance(manifest, (str, Path)):
        manifest = [manifest]
    chosen = list(manifest or [])
    if not chosen:
        chosen = [m for m in (recipe.eval.manifest, getattr(recipe.eval, "unseen_manifest", "")) if m] or (
            [recipe.data.test_source] if recipe.data.test_source else [])
    if not chosen:
        raise ConfigError("no manifest to evaluate on: pass --manifest test.jsonl (or set eval.manifest)")
    return [Path(m) for m in chosen]


def manifest_utterances(paths: list[Path]):
    return [u for path in paths for u in list_utterances(path)]


@torch.no_grad()
def infonce_accuracy(model: nn.Module, source: BatchSource, batches: int = 20, batch_size: int = 16) -> dict[str, float]:
    model.eval()
    device = next(model.parameters()).device
    totals: dict[str, float] = {}
    picked = source.epoch_batches(0, 12345, batch_size)[:batches] if len(source) >= batch_size else []
    torch.manual_seed(0)  # the negatives
    for indices in picked:
        out = model({k: v.to(device) for k, v in source.collate(indices).items()})
        for k, v in out.metrics.items():
            totals[k] = totals.get(k, 0.0) + float(v) / len(picked)
    return {f"test_{k}": v for k, v in totals.items()}


def evaluate_cpc(model: nn.Module, recipe: Recipe, prepared: Prepared, manifest: str | None = None, **options) -> dict[str, Any]:
    """Phone and speaker probes on frozen features of the manifest's utterances, beside log-mel (single
    and +-4 stacked frames) and a randomly initialised CPC; InfoNCE accuracy per step on the test split."""
    from seqae.datasets.audio import read_waves
    from seqae.evaluation.probes import probe

    paths = resolve_manifests(recipe, manifest)
    utterances = manifest_utterances(paths)
    waves = [w.astype(np.float32) / 32768.0 for w in read_waves(utterances, recipe.data.sample_rate, model.config.receptive_field)]
    result: dict[str, Any] = {"manifest": ", ".join(map(str, paths)), "utterances": len(utterances)}
    result.update(probe(utterances, waves, cpc_extractors(model, recipe), recipe.eval))
    result.update(infonce_accuracy(model, prepared.test))
    return result


@torch.no_grad()
def cpc_figures(model: nn.Module, recipe: Recipe, prepared: Prepared, out_dir: Path) -> list[Path]:
    from seqae import plots
    from seqae.audio import LogMel, MelConfig
    from seqae.datasets.audio import read_waves

    model.eval()
    device = next(model.parameters()).device
    utts = prepared.extra["test"]
    first = utts[0]
    wave = read_waves([first], recipe.data.sample_rate, model.config.receptive_field)[0].astype(np.float32) / 32768.0
    mel = LogMel(MelConfig(sample_rate=recipe.data.sample_rate, hop_length=160))(torch.from_numpy(wave))[0].numpy()
    title = first.text or first.audio.name
    paths = [plots.mel_with_phones(mel, first.phones, 160 / recipe.data.sample_rate, out_dir / "mel_phones.png", title=title)]
    accuracy = infonce_accuracy(model, prepared.test)
    ks = sorted(int(k.split("_k")[1]) for k in accuracy)
    paths.append(
        plots.bars(
            ks,
            [accuracy[f"test_accuracy_k{k}"] for k in ks],
            out_dir / "infonce_accuracy.png",
            xlabel="prediction step k (10 ms frames ahead)",
            ylabel="InfoNCE accuracy",
            title="test split",
        )
    )
    # utterance-mean context features by speaker
    by_speaker = utts[:: max(1, len(utts) // 400)]  # spread over every speaker of the list
    waves = read_waves(by_speaker, recipe.data.sample_rate, model.config.receptive_field)
    feats = np.stack([model.features(torch.from_numpy(w.astype(np.float32) / 32768.0)[None].to(device))[0].mean(0).cpu().numpy()
                      for w in waves])
    names = sorted({u.speaker for u in by_speaker})
    labels = np.array([names.index(u.speaker) for u in by_speaker])
    paths.append(plots.code_map(feats, labels, out_dir / "speaker_map.png", title="utterance-mean CPC context by speaker", names=names))
    return paths


@torch.no_grad()
def cpc_codes(model: nn.Module, recipe: Recipe, path: Path, kind: str = "c") -> np.ndarray:
    """Frame features ``(frames, dim)`` of one audio file: the context ``c`` or the encoder's ``z``."""
    from seqae.datasets.audio import read_audio

    model.eval()
    wave = read_audio(path, recipe.data.sample_rate, min_samples=model.config.receptive_field, max_seconds=ONE_PIECE_SECONDS)
    return model.features(wave[None].to(next(model.parameters()).device), kind)[0].cpu().numpy()


# -- voice conversion ------------------------------------------------------------------------------


def prepare_voice_conversion(recipe: Recipe) -> Prepared:
    """Log-mel segments with speakers and same-speaker references; fills ``model.input_dim`` and
    ``model.speakers`` (the training speakers, sorted)."""
    from seqae.datasets.audio import SpeakerSegments, train_and_test_mels, train_and_test_utterances

    config = recipe.data
    train_utts, test_utts = train_and_test_utterances(config)
    for u in train_utts + test_utts:
        if not u.speaker:
            raise DataError(f"{u.where}: no \"speaker\"; voice conversion trains on utterances labelled with their speaker")
    names = sorted({u.speaker for u in train_utts})
    if len(names) < 2:
        raise DataError(f"{config.source}: {len(names)} speaker(s); voice conversion needs at least 2 training speakers")
    if recipe.model.speakers and recipe.model.speakers != names:
        raise ConfigError(f"{recipe.source}: model.speakers does not match the training data's speakers ({len(names)} found)")
    recipe.model.speakers = names
    if recipe.model.input_dim not in (0, config.n_mels):
        raise ConfigError(f"{recipe.source}: model.input_dim = {recipe.model.input_dim} but data.n_mels = {config.n_mels}")
    recipe.model.input_dim = config.n_mels
    if recipe.model.content_input == "envelope" and recipe.model.envelope_coefficients > config.n_mels:
        raise ConfigError(f"{recipe.source}: model.envelope_coefficients = {recipe.model.envelope_coefficients} is more than "
                          f"data.n_mels = {config.n_mels}")
    test_utts = [u for u in test_utts if u.speaker in names]  # the evaluation loss: training speakers only
    if not test_utts:
        raise DataError(f"{config.test_source or config.source}: no test utterance of a training speaker")
    train_mels, test_mels, train_pitch, test_pitch = train_and_test_mels(config, train_utts, test_utts, recipe.model.pitch != "none")
    index = {n: i for i, n in enumerate(names)}
    train = SpeakerSegments(train_mels, [index[u.speaker] for u in train_utts], config.segment_frames,
                            config.mel_mean, config.mel_std, f"{config.source} (train)", config.reference_windows, train_pitch)
    test = SpeakerSegments(test_mels, [index[u.speaker] for u in test_utts], config.segment_frames,
                           config.mel_mean, config.mel_std, f"{config.test_source or config.source} (test)", config.reference_windows,
                           test_pitch)
    return Prepared(train, test, {"train": train_utts, "test": test_utts},
                    fingerprint=utterances_fingerprint(train_utts + test_utts), data_name=str(config.source))


def evaluate_voice_conversion(model: nn.Module, recipe: Recipe, prepared: Prepared | None, manifest=None, **options) -> dict[str, Any]:
    from seqae.evaluation.conversion import evaluate_conversion

    paths = resolve_manifests(recipe, manifest)
    utterances = manifest_utterances(paths)
    data = recipe.data
    mels, pitch = log_mels_and_pitch(utterances, data.mel(), "log-mel (evaluation)", model.config.pitch != "none")
    model.eval()
    result: dict[str, Any] = {"manifest": ", ".join(map(str, paths)), "utterances": len(utterances), "method": model.config.method}
    result.update(evaluate_conversion(
        utterances, [m.numpy() for m in mels], data.normalise, data.denormalise,
        model, data.hop_length / data.sample_rate, recipe.eval, pitch,
    ))
    return result


@torch.no_grad()
def voice_conversion_figures(model: nn.Module, recipe: Recipe, prepared: Prepared | None, out_dir: Path) -> list[Path]:
    """A conversion (source, target reference, converted) and, for AdaIN-VC, a map of the speaker codes
    of the evaluation manifests (seen and unseen speakers)."""
    from seqae import plots

    model.eval()
    data = recipe.data
    device = next(model.parameters()).device
    utterances = manifest_utterances(resolve_manifests(recipe, None))
    speakers = sorted({u.speaker for u in utterances})
    picked = []
    for name in speakers:  # up to 6 utterances of each speaker, for the map
        picked += [u for u in utterances if u.speaker == name][:6]
    mels, pitch = log_mels_and_pitch(picked, data.mel(), "log-mel", model.config.pitch != "none")
    mels = [data.normalise(m) for m in mels]
    source = mels[0]
    target_index = next(i for i, u in enumerate(picked)
                        if u.speaker != picked[0].speaker and (model.config.method == "adain" or u.speaker in model.config.speakers))
    if model.config.method == "adain":
        target = model.target_code([mels[target_index].to(device)])
    else:
        target = model.target_code(speaker=picked[target_index].speaker)
    contour = None if pitch is None else target_contour(pitch[0], [pitch[target_index]], recipe.eval.pitch_range)[None].to(device)
    converted = model.convert(source[None].to(device), target, contour)[0].cpu()
    hop = data.hop_length / data.sample_rate
    paths = [plots.spectrograms(
        [data.denormalise(m).numpy() for m in (source, mels[target_index], converted)],
        [f"source: {picked[0].speaker}", f"target reference: {picked[target_index].speaker}", "converted"],
        out_dir / "conversion.png", hop_seconds=hop)]
    if model.config.method == "adain":
        codes = np.stack([model.speaker_code(m[None].to(device))[0].cpu().numpy() for m in mels])
        labels = np.array([speakers.index(u.speaker) for u in picked])
        unseen = {n for n in speakers if n not in model.config.speakers}
        paths.append(plots.speaker_map(codes, labels, speakers, unseen, out_dir / "speaker_map.png",
                                       title="speaker codes of held-out sentences"))
    return paths


@torch.no_grad()
def voice_conversion_codes(model: nn.Module, recipe: Recipe, path: Path, kind: str = "content") -> np.ndarray:
    """Codes of one audio file: the content code ``(frames, content_dim)`` or the speaker code ``(speaker_dim,)``."""
    from seqae.audio import LogMel
    from seqae.datasets.audio import read_audio

    if kind not in ("content", "speaker"):
        raise ConfigError(f"--kind {kind}: a voice_conversion run has the codes 'content' and 'speaker'")
    model.eval()
    data = recipe.data
    wave = read_audio(path, data.sample_rate, min_samples=data.win_length, max_seconds=ONE_PIECE_SECONDS)
    mel = data.normalise(LogMel(data.mel())(wave)[0])
    x = mel[None].to(next(model.parameters()).device)
    if kind == "speaker":
        return model.speaker_code(x)[0].cpu().numpy()
    return model.content(x)[0].t().cpu().numpy()


FAMILIES: dict[str, Family] = {
    "autoencoder": Family(
        "autoencoder", AutoencoderConfig, ArrayDataConfig, ArrayEvalConfig,
        prepare_arrays, lambda r: Autoencoder(r.model), evaluate_arrays, array_figures, array_codes, array_scores,
    ),
    "vae": Family(
        "vae", VAEConfig, ArrayDataConfig, ArrayEvalConfig,
        prepare_arrays, lambda r: VAE(r.model), evaluate_arrays, array_figures, array_codes, array_scores,
    ),
    "vqvae": Family(
        "vqvae", VQVAEConfig, ArrayDataConfig, ArrayEvalConfig,
        prepare_vqvae, lambda r: VQVAE(r.model), evaluate_vqvae_run, vqvae_run_figures, vqvae_codes, array_scores,
        data_config_for=lambda model: AudioDataConfig if getattr(model, "input", "image") == "mel" else ArrayDataConfig,
    ),
    "cpc": Family(
        "cpc", CPCConfig, AudioDataConfig, ProbeEvalConfig,
        prepare_cpc, lambda r: CPC(r.model), evaluate_cpc, cpc_figures, cpc_codes, code_kinds=("c", "z"),
        eval_options=("manifest",),
    ),
    "voice_conversion": Family(
        "voice_conversion", VoiceConversionConfig, AudioDataConfig, ConversionEvalConfig,
        prepare_voice_conversion, lambda r: VoiceConversion(r.model, r.data.mel()), evaluate_voice_conversion,
        voice_conversion_figures, voice_conversion_codes, eval_needs_training_data=False, code_kinds=("content", "speaker"),
        eval_options=("manifest",),
    ),
    "quick_thought": Family(
        "quick_thought", QuickThoughtConfig, TextDataConfig, SentenceEvalConfig,
        prepare_text, lambda r: QuickThought(r.model), evaluate_text, text_figures, text_embed, on_load=attach_tokenizer,
        eval_options=("tasks", "senteval", "senteval_tasks"),
    ),
    "skip_thought": Family(
        "skip_thought", SkipThoughtConfig, TextDataConfig, SentenceEvalConfig,
        prepare_text, lambda r: SkipThought(r.model), evaluate_text, text_figures, text_embed, on_load=attach_tokenizer,
        eval_options=("tasks", "senteval", "senteval_tasks"),
    ),
}


def get_family(name: Any, where: str = "recipe") -> Family:
    if not isinstance(name, str) or name not in FAMILIES:
        raise ConfigError(f"{where}: model.family = {name!r} is not one of: {', '.join(FAMILIES)}")
    return FAMILIES[name]
