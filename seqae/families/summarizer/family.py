"""The summariser's registry entry: data preparation, evaluation, figures, and ``seqae summarize``."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from seqae.checkpoint import read_metrics
from seqae.config import ConfigError, Recipe
from seqae.datasets.base import DataError, read_text_lines
from seqae.families.base import Command, Family, Inferred, Prepared
from seqae.families.summarizer import command_line
from seqae.families.summarizer.data import (
    SummaryBatches,
    SummaryDataConfig,
    continuation_mask,
    inverse_document_frequency,
    readable_from_file,
    split_items,
)
from seqae.families.summarizer.evaluate import (
    BigramLM,
    SummaryEvalConfig,
    paired_interval,
    perplexity,
    random_words,
    rouge_table,
    sequence_figures,
    strip,
)
from seqae.families.summarizer.model import Summarizer, SummarizerConfig
from seqae.families.summarizer.prior import read_prior
from seqae.families.summarizer.texts import decode, encode_texts, salient_texts, summarize
from seqae.families.text import attach_run_tokenizer, tokenised
from seqae.runtime import model_device


@dataclass(frozen=True)
class SummaryData:
    corpus: Any  # seqae.datasets.text.TokenisedCorpus
    tokenizer: Any
    readable_train: list  # id arrays of the readable sentences the discriminator saw
    tokenizer_path: Path  # the corpus's tokenizer.json
    prior: dict | None = None  # the LM prior's weights (readability = lm_prior / both), read at training
    idf: np.ndarray | None = None  # the training texts' IDF (the topic loss, the salient copy target)
    continues: np.ndarray | None = None  # the tokenizer's word pieces (whole-word salient picks)


def prepare(recipe: Recipe) -> Prepared:
    data = recipe.data
    corpus, tokenizer, vocab = tokenised(recipe)
    train_idx, test_idx, readable_idx = split_items(corpus, data, str(recipe.source))
    readable = readable_from_file(data.readable, tokenizer, data.max_tokens) if data.readable else readable_idx
    name = Path(data.corpus).name
    train = SummaryBatches(corpus, train_idx, readable, f"{name} (training texts)")
    test = SummaryBatches(corpus, test_idx, readable, f"{name} (held-out texts)")
    readable_ids = list(readable) if data.readable else [corpus.ids(int(i)) for i in readable_idx[:20000]]
    shape, prior = None, None
    if recipe.model.uses_prior and not recipe.model.lm_hidden:  # recorded: a trained run (its checkpoint holds the prior)
        shape, prior = read_prior(recipe.model.lm_prior, corpus.folder / "tokenizer.json", str(recipe.source))
    idf = inverse_document_frequency(corpus, train_idx, vocab) if recipe.model.uses_idf else None
    continues = continuation_mask(tokenizer, vocab) if recipe.model.copy_target == "salient" else None
    extra = SummaryData(corpus, tokenizer, readable_ids, corpus.folder / "tokenizer.json", prior, idf, continues)
    return Prepared(train, test, extra, Inferred(vocab_size=vocab, model_fields=shape),
                    run_files={"tokenizer.json": corpus.folder / "tokenizer.json"}, fingerprint=corpus.content_fingerprint,
                    data_name=str(data.corpus))


def initialise(model: nn.Module, prepared: Prepared) -> None:
    """The training texts' IDF (the topic loss, the salient copy target), and the LM prior's weights, read from its run by
    :func:`prepare` (or now, for a recipe that already records the prior's shape)."""
    data: SummaryData = prepared.extra
    if data.idf is not None:
        model.idf.copy_(torch.from_numpy(data.idf))
    if data.continues is not None:
        model.continues.copy_(torch.from_numpy(data.continues))
    if model.prior is None:
        return
    weights = data.prior if data.prior is not None else read_prior(model.config.lm_prior, data.tokenizer_path, "recipe")[1]
    try:
        model.prior.load_state_dict(weights)
    except RuntimeError:
        raise ConfigError(f"model.lm_prior = {model.config.lm_prior}: its network is not the shape model.lm_embed_dim, "
                          "lm_hidden and lm_layers record; set them to 0 to take the prior's") from None


def judge_lm(model: nn.Module, recipe: Recipe, data: SummaryData):
    """The language model the summaries are judged by: ``eval.lm`` (a language_model run with this run's
    tokenizer), else the run's own prior, else None."""
    from seqae.nn.language_model import RecurrentLM

    if not recipe.eval.lm:
        return model.prior
    shape, weights = read_prior(recipe.eval.lm, data.tokenizer_path, "--set eval.lm", key="eval.lm")
    lm = RecurrentLM(model.config.vocab_size, shape["lm_embed_dim"], shape["lm_hidden"], shape["lm_layers"])
    lm.load_state_dict(weights)
    return lm.to(model_device(model)).eval()


@torch.no_grad()
def held_out_figures(model: nn.Module, batches: SummaryBatches, config: SummaryEvalConfig, lm: BigramLM,
                     judge=None) -> dict[str, Any]:
    """Reconstruction from the summary (and the twin's from Lead-N), perplexity under the bigram model
    (and the ``judge`` language model), copy share and compression of the summaries, Lead-N and Random-N
    (same lengths)."""
    model.eval()
    device = model_device(model)
    n = min(len(batches), config.max_texts)
    rng = np.random.default_rng(config.seed)
    per_text: dict[str, list] = {key: [] for key in ("nll", "right", "lead_nll", "lead_right", "read_lead_nll",
                                                     "read_lead_right", "tokens")}
    summaries, leads, randoms, texts = [], [], [], []
    for start in range(0, n, 64):
        batch = batches.collate(np.arange(start, min(n, start + 64)))
        tokens, lengths = batch["tokens"].to(device), batch["lengths"].to(device)
        words, summary_lengths = model.summarize_tokens(tokens, lengths)
        figures = dict(zip(("nll", "right"), model.reconstruction(words, summary_lengths, tokens, lengths)), tokens=lengths)
        lead = tokens[:, : int(summary_lengths.max())]  # Lead-N's words read by the summary's own reconstructor
        figures.update(zip(("read_lead_nll", "read_lead_right"), model.reconstruction(lead, summary_lengths, tokens, lengths)))
        if model.config.lead_baseline:
            figures.update(zip(("lead_nll", "lead_right"), model.lead_reconstruction(summary_lengths, tokens, lengths)))
        for key, values in figures.items():
            per_text[key].extend(values.tolist())
        for w, t, m, k in zip(words.cpu(), tokens.cpu(), summary_lengths.tolist(), lengths.tolist()):
            text = strip(t, k)
            summaries.append(strip(w, m))
            leads.append(text[:m])
            randoms.append(random_words(text, m, rng))
            texts.append(text)
    per_text = {key: np.asarray(values, dtype=float) for key, values in per_text.items()}
    result: dict[str, Any] = {"test_texts": n, **reconstruction_figures(per_text, config.seed)}
    for name, seqs in (("summary", summaries), ("lead", leads), ("random", randoms)):
        result.update(sequence_figures(name, seqs, texts, lm, judge))
    result["examples"] = [{"text": decode(model, t), "summary": decode(model, s), "lead": decode(model, ld)}
                          for t, s, ld in list(zip(texts, summaries, leads))[: config.examples]]
    return result


def reconstruction_figures(per_text: dict[str, np.ndarray], seed: int) -> dict[str, Any]:
    """Token accuracy and perplexity of the texts rebuilt from the summaries and, with the twin, from Lead-N;
    the paired differences (summary minus Lead-N, per text: nats per token and token accuracy) with their
    95 % bootstrap intervals over the texts: Lead-N read by its twin (``summary_minus_lead_reconstruction_*``)
    and by the summary's own reconstructor (``summary_minus_lead_read_alike_*``: the words compared, not
    the networks)."""
    tokens = per_text["tokens"]
    result: dict[str, Any] = {"reconstruction_accuracy": per_text["right"].sum() / tokens.sum(),
                              "reconstruction_perplexity": perplexity(per_text["nll"].sum(), tokens.sum())}
    pairs = [("read_alike", "read_lead_nll", "read_lead_right")]
    if len(per_text["lead_nll"]):
        result.update(lead_reconstruction_accuracy=per_text["lead_right"].sum() / tokens.sum(),
                      lead_reconstruction_perplexity=perplexity(per_text["lead_nll"].sum(), tokens.sum()))
        pairs.insert(0, ("reconstruction", "lead_nll", "lead_right"))
    for reading, lead_nll, lead_right in pairs:
        for name, ours, lead in (("nats", "nll", lead_nll), ("accuracy", "right", lead_right)):
            a, b = per_text[ours] / tokens, per_text[lead] / tokens
            key = f"summary_minus_lead_{reading}_{name}"
            result[key] = float((a - b).mean())
            result[f"{key}_low"], result[f"{key}_high"] = paired_interval(a, b, seed)
    return result


def evaluate(model: nn.Module, recipe: Recipe, prepared: Prepared, inputs: str | None = None,
             references: str | None = None, **options) -> dict[str, Any]:
    data: SummaryData = prepared.extra
    split = len(data.readable_train) // 10  # a tenth of the readable sentences held out of the LM, as real text
    lm = BigramLM(data.readable_train[split:], model.config.vocab_size)
    judge = judge_lm(model, recipe, data)
    result = held_out_figures(model, prepared.test, recipe.eval, lm, judge)
    result["readable_bigram_perplexity"] = lm.perplexity(data.readable_train[:split]) if split else float("nan")
    if judge is not None:  # real sentences of the readable side (the prior saw those of its own training chapters)
        result["readable_lm_perplexity"] = judge.perplexity(data.readable_train[:split]) if split else float("nan")
    inputs, references = inputs or recipe.eval.inputs, references or recipe.eval.references
    if bool(inputs) != bool(references):
        raise ConfigError("--inputs and --references go together: the texts to summarise and their reference summaries")
    if inputs:
        texts = read_text_lines(inputs, "texts to summarise (one per line)")
        refs = read_text_lines(references, "reference summaries (one per line)")
        if len(texts) != len(refs) or not texts:
            raise DataError(f"{references}: {len(refs)} reference lines for the {len(texts)} lines of {inputs}; give one reference "
                            "per text, on the same line number")
        length = recipe.eval.rouge_length or None
        # a text shorter than eval.rouge_length is its own summary, as Lead-N's is
        predictions = summarize(model, texts, length=length, where=str(inputs), clip=True)
        # a run that knows its training texts' IDF: also the salient words it was taught to copy, as many
        salient = {"salient": salient_texts(model, texts, length)} if model.config.uses_idf else None
        result.update(rouge_table(predictions, texts, refs, recipe.eval.lead_words, recipe.eval.seed, salient))
    return result


def figures(model: nn.Module, recipe: Recipe, prepared: Prepared, out_dir: Path) -> list[Path]:
    """Example summaries beside their texts and Lead-N."""
    from seqae import plots

    config = recipe.eval
    data: SummaryData = prepared.extra
    lm = BigramLM(data.readable_train, model.config.vocab_size)
    rows = held_out_figures(model, prepared.test, SummaryEvalConfig(max_texts=max(config.examples, 1), examples=config.examples),
                            lm)["examples"]
    paths = [plots.text_table([[r["text"], r["summary"], r["lead"]] for r in rows], ["text", "summary", "Lead-N"],
                              out_dir / "summaries.png", title="held-out texts and their summaries")]
    if getattr(model, "run_dir", None) is not None:
        paths.append(players(read_metrics(model.run_dir), out_dir / "players.png"))
    return paths


def players(records: list[dict[str, Any]], path: Path) -> Path:
    """Every player's losses over training (the reconstructor and Lead-N's twin; the compressor's copy,
    fooling and prior terms; the discriminator), REINFORCE's reward and baseline, and the summary length.
    Metrics of the alternating stage carry their phase's prefix (``main_``, ``discriminator_``)."""
    from seqae import plots

    def both(*names: str) -> list[str]:
        return [n for name in names for n in (name, f"main_{name}")]

    panels = [("reconstruction NLL", both("nll", "lead_nll")), ("compressor", both("copy_nll", "fool_loss", "prior_kl")),
              ("discriminator", ["discriminator_loss", "discriminator_accuracy"]), ("reward", both("reward", "baseline")),
              ("summary length", both("summary_length"))]
    return plots.metric_panels(records, panels, path, title="the players over training")


def codes(model: nn.Module, recipe: Recipe, path: Path) -> np.ndarray:
    """The summaries' word ids ``(texts, L)`` (0-padded) of a file of texts, one per line."""
    texts = read_text_lines(path, "texts to summarise (one per line)")
    tokens, lengths = encode_texts(model, texts, str(path))
    return model.summarize_tokens(tokens, lengths)[0].cpu().numpy()


def run(model: nn.Module, args: Any) -> int:
    from seqae.atomic import atomic_write

    if args.ratio is not None and not 0.0 < args.ratio <= 1.0:
        raise ConfigError(f"--ratio {args.ratio}: give a share of the text's length in (0, 1]")
    texts = read_text_lines(args.input, "texts to summarise (one per line)")
    if not texts:
        raise DataError(f"{args.input}: empty file; give one text per line")
    summaries = summarize(model, texts, args.ratio, args.length, where=str(args.input))
    atomic_write(args.output, "".join(s + "\n" for s in summaries))
    print(f"{args.output}: {len(summaries)} summaries", file=sys.stderr)
    return 0


FAMILY = Family(
    "summarizer", SummarizerConfig, SummaryDataConfig, SummaryEvalConfig,
    prepare, lambda r: Summarizer(r.model), evaluate, figures, codes, on_load=attach_run_tokenizer, initialise=initialise,
    eval_options=("inputs", "references"),
    commands=(Command(command_line.NAME, command_line.HELP, command_line.add_arguments, run),),
)
