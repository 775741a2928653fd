"""Mel-cepstral distortion (MCD) between two log-mels after dynamic-time-warping alignment: the distortion figure
of the voice-conversion evaluation (:mod:`seqae.families.voice_conversion.evaluate`)."""

from __future__ import annotations

import math

import numpy as np


def mel_cepstrum(log_mel: np.ndarray, coefficients: int) -> np.ndarray:
    """``(n_mels, frames)`` natural-log mel magnitudes -> ``(frames, coefficients)``: the real cepstrum of
    each frame's log-mel spectrum, c_d = (1/N) sum_m L_m cos(pi d (m + 1/2) / N) (the orthonormal DCT-II
    divided by sqrt(2N)), for d = 1..coefficients (c0, loudness, dropped)."""
    import torchaudio

    n = log_mel.shape[0]
    dct = torchaudio.functional.create_dct(coefficients + 1, n, norm="ortho").numpy()  # (n_mels, c+1)
    return (log_mel.T @ dct)[:, 1:] / math.sqrt(2 * n)


def dtw_path(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The minimum-cost monotone alignment of a ``(n, m)`` cost matrix (steps (1,0), (0,1), (1,1)),
    computed one anti-diagonal at a time; returns the aligned row and column indices."""
    n, m = cost.shape
    total = np.full((n + 1, m + 1), np.inf)
    total[0, 0] = 0.0
    for d in range(2, n + m + 1):  # cells (i, j), 1-based, with i + j = d
        i = np.arange(max(1, d - m), min(n, d - 1) + 1)
        j = d - i
        best = np.minimum(np.minimum(total[i - 1, j], total[i, j - 1]), total[i - 1, j - 1])
        total[i, j] = cost[i - 1, j - 1] + best
    rows, cols = [n - 1], [m - 1]
    i, j = n, m
    while (i, j) != (1, 1):
        moves = [(i - 1, j - 1), (i - 1, j), (i, j - 1)]
        i, j = min((mv for mv in moves if mv[0] >= 1 and mv[1] >= 1), key=lambda mv: total[mv])
        rows.append(i - 1)
        cols.append(j - 1)
    return np.array(rows[::-1]), np.array(cols[::-1])


def cepstral_alignment(a: np.ndarray, b: np.ndarray, coefficients: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two log-mels ``(n_mels, frames_a)`` and ``(n_mels, frames_b)`` aligned by DTW of their mel cepstra: the
    ``(frames_a, frames_b)`` Euclidean distances between the cepstra and the path's row and column indices."""
    ca, cb = mel_cepstrum(a, coefficients), mel_cepstrum(b, coefficients)
    distance = np.sqrt(((ca[:, None, :] - cb[None, :, :]) ** 2).sum(-1))
    rows, cols = dtw_path(distance)
    return distance, rows, cols


def mcd_dtw(a: np.ndarray, b: np.ndarray, coefficients: int) -> float:
    """Mel-cepstral distortion in dB between two log-mels ``(n_mels, frames)`` after DTW alignment."""
    distance, rows, cols = cepstral_alignment(a, b, coefficients)
    return float(10.0 / math.log(10.0) * math.sqrt(2.0) * distance[rows, cols].mean())
