"""Voice conversion's training batches: log-mel windows with their speaker and same-speaker references."""

from __future__ import annotations

import numpy as np
import torch

from seqae.audio import MelConfig, PitchTrack, move_pitch, vocal_tract_warp
from seqae.datasets.audio import MelSegments


class SpeakerSegments(MelSegments):
    """:class:`MelSegments` with each window's speaker and a reference: ``reference_windows`` windows of
    *other* utterances of the same speaker (the same utterance only when the speaker has no other),
    from different utterances where the speaker has enough, laid end to end.

    Batches add ``"speaker"`` ``(batch,)`` and ``"ref"``/``"ref_mask"`` ``(batch, n_mels,
    reference_windows * segment_frames)``/``(batch, reference_windows * segment_frames)``.
    The reference is drawn afresh every epoch yet stays a pure function of (epoch, window): the epoch
    rides along in the indices that :meth:`epoch_batches` hands out (``epoch * len(self) + window``), so
    resumed and data-parallel runs draw the same references as a single uninterrupted one.
    """

    def __init__(self, mels: list[torch.Tensor], speakers: list[int], segment_frames: int, mean: float, std: float, name: str,
                 reference_windows: int = 1, pitch: list[PitchTrack] | None = None, vtlp_warp: float = 0.0,
                 mel: MelConfig | None = None):
        super().__init__(mels, segment_frames, mean, std, name)
        if vtlp_warp and mel is None:
            raise ValueError("vtlp_warp needs the mel settings (mel=) to place the bands")
        self.vtlp_warp, self.mel = vtlp_warp, mel
        if reference_windows < 1:
            raise ValueError(f"reference_windows must be at least 1, got {reference_windows}")
        if pitch is not None and [p.contour.shape[0] for p in pitch] != [m.shape[1] for m in mels]:
            raise ValueError("pitch: one PitchTrack per utterance, the contour as long as its log-mel")
        self.pitch = pitch
        self.reference_windows = reference_windows
        self.utterance_speaker = np.asarray(speakers, dtype=np.int64)
        window_utt = np.array([u for u, _ in self.windows], dtype=np.int64)
        self.window_speaker = self.utterance_speaker[window_utt] if len(window_utt) else window_utt
        self.by_speaker = {int(s): np.flatnonzero(self.window_speaker == s) for s in np.unique(self.window_speaker)}
        self.window_utt = window_utt

    def epoch_batches(self, epoch: int, seed: int, batch_size: int) -> list[np.ndarray]:
        return [b + epoch * len(self) for b in super().epoch_batches(epoch, seed, batch_size)]

    def references(self, index: int) -> list[int]:
        """The reference windows for ``index`` (``epoch * len(self) + window``)."""
        n = len(self)
        window, draw = index % n, index // n
        pool = self.by_speaker[int(self.window_speaker[window])]
        others = pool[self.window_utt[pool] != self.window_utt[window]]
        choices = others if len(others) else pool
        first = int(choices[np.random.default_rng([draw, window]).integers(len(choices))])
        if self.reference_windows == 1:
            return [first]
        # the one-window draw first; then the other candidates in a random order (their own stream),
        # one window of each utterance not yet used before any second window of one (then repeats)
        fresh, rest, used = [], [], {int(self.window_utt[first])}
        for w in choices[np.random.default_rng([draw, window, 1]).permutation(len(choices))].tolist():
            if w == first:
                continue
            (rest if int(self.window_utt[w]) in used else fresh).append(w)
            used.add(int(self.window_utt[w]))
        ranked = [first] + fresh + rest
        return [ranked[i % len(ranked)] for i in range(self.reference_windows)]

    def collate(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        indices = np.asarray(indices, dtype=np.int64)
        windows = indices % len(self)
        batch = super().collate(windows)
        refs = np.array([self.references(int(i)) for i in indices], dtype=np.int64)  # (batch, reference_windows)
        ref = super().collate(refs.reshape(-1))
        b, k = refs.shape
        n_mels = ref["x"].shape[1]
        x = ref["x"].view(b, k, n_mels, self.segment).permute(0, 2, 1, 3).reshape(b, n_mels, k * self.segment)
        batch.update(ref=x, ref_mask=ref["mask"].view(b, k * self.segment), speaker=torch.from_numpy(self.window_speaker[windows]))
        if self.pitch is not None:
            batch["pitch"] = self.pitch_rows(windows, refs)
        if self.vtlp_warp:
            self.perturb(batch, indices)
        return batch

    def perturb(self, batch: dict[str, torch.Tensor], indices: np.ndarray) -> None:
        """Vocal-tract-length perturbation, one factor per example (a pure function of its index, like the
        references), applied alike to its window and its references (one new voice) and, as octaves, to
        its pitch contour. The warp acts on the log-mel's natural scale: normalisation is affine, so
        interpolating the normalised values is the same."""
        for row, index in enumerate(indices.tolist()):
            alpha = float(np.random.default_rng([index // len(self), index % len(self), 2]).uniform(1 - self.vtlp_warp,
                                                                                                  1 + self.vtlp_warp))
            batch["x"][row] = vocal_tract_warp(batch["x"][row], alpha, self.mel)
            batch["ref"][row] = vocal_tract_warp(batch["ref"][row], alpha, self.mel)
            if "pitch" in batch:
                batch["pitch"][row] += float(np.log2(alpha)) * batch["mask"][row].to(batch["pitch"].dtype)

    def pitch_rows(self, windows: np.ndarray, refs: np.ndarray) -> torch.Tensor:
        """``(batch, segment_frames)``: each window's pitch contour moved to the level of its reference
        utterances (their mean level; as at conversion, where it is the target's; the range is the window's
        own, its speaker's, so it is not scaled), zeros on padding."""
        rows = torch.zeros(len(windows), self.segment)
        for row, (window, ref_windows) in enumerate(zip(windows.tolist(), refs.tolist())):
            utt, start = self.windows[window]
            track = self.pitch[utt]
            levels = [self.pitch[self.windows[r][0]].level for r in ref_windows]
            piece = move_pitch(track.contour[start : start + self.segment], track.level, levels)
            rows[row, : piece.shape[0]] = piece
        return rows
