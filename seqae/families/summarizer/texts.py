"""Text in and out of a summariser with its tokenizer attached (a loaded run): texts to padded ids,
ids to text, and greedy summaries of a list of strings (``model.summarize`` and ``seqae summarize``)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from seqae.config import ConfigError
from seqae.datasets.base import DataError
from seqae.families.summarizer.data import salient_positions
from seqae.families.summarizer.evaluate import strip
from seqae.families.text import decode_ids, encode_lines, token_rows
from seqae.runtime import model_device

EMPTY = "nothing left to summarise after tokenising this line"


def encode_texts(model: nn.Module, texts: list[str], where: str) -> tuple[torch.Tensor, torch.Tensor]:
    return encode_lines(model.tokenizer, texts, model.max_tokens, where, EMPTY)


def decode(model: nn.Module, ids: np.ndarray) -> str:
    return decode_ids(model.tokenizer, ids)


def summarize(model: nn.Module, texts: list[str], ratio: float | None = None, length: int | None = None,
              batch_size: int = 64, where: str = "texts", clip: bool = False) -> list[str]:
    """Greedy summaries of ``texts`` (one string each, in their order), ``length`` tokens each or the run's ratio;
    a text shorter than ``length`` is an error naming its line, or with ``clip`` summarised in as many tokens as it
    has. Texts of similar length are decoded together (less padding, fewer decoding steps per batch)."""
    from seqae.datasets.text import pad_batch

    if length is not None and length < 1:
        raise ConfigError(f"--length {length}: a summary needs at least one word")
    model.eval()
    device = model_device(model)
    rows = token_rows(model.tokenizer, texts, model.max_tokens, where, EMPTY)
    if length is not None and not clip:
        short = next((i for i, r in enumerate(rows) if len(r) < length), None)
        if short is not None:
            raise DataError(f"{where}:{short + 1}: {len(rows[short])} tokens, shorter than the summary length {length} "
                            "asked for; ask for a shorter --length")
    order = np.argsort([len(r) for r in rows], kind="stable")
    out = [""] * len(texts)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chosen = order[start : start + batch_size]
            tokens, lengths = pad_batch([rows[i] for i in chosen])
            words, summary_lengths = model.summarize_tokens(tokens.to(device), lengths.to(device), ratio, length)
            for i, w, n in zip(chosen, words.cpu(), summary_lengths.cpu()):
                out[i] = decode(model, strip(w, int(n)))
    return out


def salient_texts(model: nn.Module, texts: list[str], length: int | None = None, batch_size: int = 64) -> list[str]:
    """The salient baseline of ``texts``: for each, its tokens of highest ``idf - salience_position * place``
    in their order (the run's training IDF; what ``copy_target = "salient"`` teaches), as many as a summary's."""
    out = []
    for start in range(0, len(texts), batch_size):
        tokens, lengths = encode_texts(model, texts[start : start + batch_size], "texts")
        summary_lengths = model.summary_lengths(lengths, length=length)
        continues = model.continues.cpu() if hasattr(model, "continues") else None  # a topic-loss run: token picks
        picks = salient_positions(model.idf.cpu(), tokens, lengths, summary_lengths, model.config.salience_position, continues)
        words = tokens.gather(1, picks)
        out += [decode(model, strip(w, int(n))) for w, n in zip(words, summary_lengths)]
    return out
