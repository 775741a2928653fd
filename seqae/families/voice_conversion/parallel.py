"""Parallel partners for the content-consistency loss (``model.content_consistency_weight``).

In a parallel corpus several speakers say the same sentence. Each training utterance gets up to
``count`` partners: utterances of the same text by other speakers, drawn at random, each with a frame map
from the utterance to the partner made by dynamic time warping of their mel cepstra (the alignment that
the evaluation's MCD uses, :mod:`seqae.families.voice_conversion.distortion`). The loss asks the content
code of a frame to equal the content code of the partner's frame it is aligned with: what the words are,
said by two voices, should be one code.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqae.atomic import keep_if_possible
from seqae.families.voice_conversion.distortion import cepstral_alignment
from seqae.progress import each

CEPSTRAL_COEFFICIENTS = 20
PARTNERS = 2  # partners per training utterance (each window draws one of them afresh every epoch)


@dataclass
class Partners:
    """``utterances[i]``: the partner utterances of utterance ``i`` (store indices); ``maps[i][k]``
    ``(frames_i,)`` int32: for each frame of ``i``, its aligned frame in partner ``utterances[i][k]``."""

    utterances: list[list[int]]
    maps: list[list[np.ndarray]]

    def __len__(self) -> int:
        return sum(len(p) for p in self.utterances)


def frame_map(source: np.ndarray, partner: np.ndarray) -> np.ndarray:
    """Log-mels ``(n_mels, frames_a)`` and ``(n_mels, frames_b)`` -> ``(frames_a,)`` int32: each frame of
    ``source``'s aligned frame in ``partner`` (the mean of the frames the DTW path pairs it with)."""
    _, rows, cols = cepstral_alignment(source, partner, CEPSTRAL_COEFFICIENTS)
    total = np.bincount(rows, weights=cols, minlength=source.shape[1])
    count = np.bincount(rows, minlength=source.shape[1])
    return np.rint(total / np.maximum(count, 1)).astype(np.int32)


def pick_partners(texts: list[str], speakers: list[str], count: int, seed: int) -> list[list[int]]:
    """Up to ``count`` partners for each utterance (``texts``/``speakers`` one per utterance): others with
    the same text (stripped, case-folded) by another speaker, drawn with ``seed``. Utterances without text
    or without a partner get none."""
    by_text: dict[str, list[int]] = defaultdict(list)
    for i, text in enumerate(texts):
        if text.strip():
            by_text[text.strip().casefold()].append(i)
    rng = np.random.default_rng(seed)
    chosen: list[list[int]] = []
    for i, text in enumerate(texts):
        others = [j for j in by_text.get(text.strip().casefold(), []) if speakers[j] != speakers[i]]
        picked = rng.choice(len(others), size=min(count, len(others)), replace=False) if others else []
        chosen.append([others[int(k)] for k in picked])
    return chosen


def align_partners(store, chosen: list[list[int]]) -> Partners:
    """The frame maps of :func:`pick_partners`' choice, from a store of log-mels (:mod:`seqae.datasets.audio_store`).
    A cache folder's store (a ``FileStore``) keeps them beside its log-mels (``partners-KEY.npz``, the key a
    hash of the choice), so a resumed or repeated training aligns once; a read-only cache aligns afresh."""
    saved = None
    if hasattr(store, "folder"):
        key = hashlib.sha256(json.dumps([CEPSTRAL_COEFFICIENTS, chosen]).encode()).hexdigest()[:16]
        saved = Path(store.folder) / f"partners-{key}.npz"
        kept = read_maps(saved)
        if kept is not None and len(kept[0]) == sum(len(row) for row in chosen) and kept[0].sum() == len(kept[1]):
            return unpack(chosen, *kept)
    maps = [[frame_map(np.asarray(store.full(i)), np.asarray(store.full(j))) for j in chosen[i]]
            for i in each(range(len(chosen)), "aligning parallel utterances (DTW)")]
    if saved is not None:
        flat = [m for row in maps for m in row]
        buffer = io.BytesIO()
        np.savez(buffer, lengths=np.array([len(m) for m in flat], dtype=np.int64),
                 maps=np.concatenate(flat) if flat else np.zeros(0, np.int32))
        keep_if_possible(saved, buffer.getvalue())  # a read-only cache: aligned again next time
    return Partners(chosen, maps)


def read_maps(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """The ``(lengths, maps)`` kept by :func:`align_partners`, or None when there are none or the file is
    damaged (they are then aligned again and the file replaced)."""
    try:
        with np.load(path, allow_pickle=False) as files:
            return files["lengths"], files["maps"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None


def unpack(chosen: list[list[int]], lengths: np.ndarray, flat: np.ndarray) -> Partners:
    """:class:`Partners` from the saved frame maps: ``lengths`` of each map in :func:`align_partners`' order
    and the maps end to end."""
    pieces = iter(np.split(flat.astype(np.int32), np.cumsum(lengths)[:-1]))
    return Partners(chosen, [[next(pieces) for _ in row] for row in chosen])
