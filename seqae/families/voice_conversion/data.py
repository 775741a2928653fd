"""Voice conversion's training batches: log-mel windows with their speaker and same-speaker references."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from seqae.audio import MelConfig, PitchTrack, move_pitch, vocal_tract_warp
from seqae.datasets.audio import MelSegments
from seqae.datasets.augment import change_speed, equalise, mix_noise, noise_bank, random_gains, shift_pitch, whisper
from seqae.families.voice_conversion.parallel import Partners


@dataclass
class Augmentation:
    """Per-example augmentation of the training batches (``data.vtlp_warp``, ``equalise_db``,
    ``noise_snr``, ``whisper``), each draw a pure function of the example's index (``epoch * windows + window``)."""

    mel: MelConfig
    vtlp_warp: float = 0.0
    equalise_db: float = 0.0
    noise_snr: tuple[float, float] | None = None
    whisper: float = 0.0
    whisper_slope_db: tuple[float, float] = (4.0, 10.0)

    def __post_init__(self):
        self.noise = noise_bank(self.mel) if self.noise_snr or self.whisper else None

    def clean_target(self) -> bool:
        """Whether the inputs may differ from what is reconstructed (noise, whisper): then ``"target"``."""
        return bool(self.noise_snr or self.whisper)

    def noise_cut(self, kind: int, start: int, frames: int) -> torch.Tensor:
        """``(n_mels, frames)``: the noise bank's ``kind`` (0 white, 1 pink) from frame ``start``, wrapping round."""
        return self.noise[kind][:, (start + torch.arange(frames)) % self.noise.shape[-1]]

    @classmethod
    def from_data(cls, data) -> Augmentation | None:
        """From a ``[data]`` section (:class:`VoiceDataConfig`); ``None`` when every option is off."""
        if not data.augments():
            return None
        return cls(data.mel(), data.vtlp_warp, data.equalise_db, tuple(data.noise_snr) if data.noise_snr else None,
                   data.whisper)


def copy_changes(data) -> list[tuple[str, Callable[[torch.Tensor], torch.Tensor]]]:
    """The new speakers of ``data.speed_perturb`` and ``data.pitch_shift``, as ``(label, change)``: the
    label marks the copy's speakers (``"p1@speed0.9"``, ``"p1@pitch+3"``), the change makes its waveform
    (:func:`seqae.datasets.augment.change_speed`, :func:`~seqae.datasets.augment.shift_pitch`)."""
    changes = [(f"speed{f:g}", partial(change_speed, factor=f)) for f in data.speed_perturb]
    return changes + [(f"pitch{s:+g}", partial(shift_pitch, semitones=s)) for s in data.pitch_shift]


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
                 reference_windows: int = 1, pitch: list[PitchTrack] | None = None, augment: Augmentation | None = None,
                 partners: Partners | None = None):
        super().__init__(mels, segment_frames, mean, std, name)
        self.augment = augment
        self.partners = partners
        if partners is not None and len(partners.utterances) != len(self.store):
            raise ValueError(f"partners for {len(partners.utterances)} utterances; the store has {len(self.store)}")
        if reference_windows < 1:
            raise ValueError(f"reference_windows must be at least 1, got {reference_windows}")
        if pitch is not None and isinstance(pitch, list) and [p.contour.shape[0] for p in pitch] != self.store.lengths.tolist():
            raise ValueError("pitch: one PitchTrack per utterance, the contour as long as its log-mel")
        self.pitch = pitch
        if pitch is not None:  # each utterance's pitch level (a store keeps them apart from the contours)
            levels = getattr(pitch, "levels", None)
            self.pitch_levels = np.asarray(levels if levels is not None else [p.level for p in pitch], dtype=np.float64)
        self.reference_windows = reference_windows
        self.utterance_speaker = np.asarray(speakers, dtype=np.int64)
        window_utt = self.windows[:, 0]
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
        if self.augment is not None:
            self.perturb(batch, indices)
        if self.partners is not None:
            self.partner_windows(batch, indices)
        return batch

    def partner_windows(self, batch: dict[str, torch.Tensor], indices: np.ndarray) -> None:
        """For each window, a window of one of its utterance's parallel partners (drawn from the index, like
        the references) centred on the frames aligned with it: ``"partner"``/``"partner_mask"`` ``(batch,
        n_mels, segment_frames)``/``(batch, segment_frames)``, and ``"partner_index"`` ``(batch,
        segment_frames)``: each frame's aligned frame in the partner window, -1 where it has none (no
        partner, padding, or aligned outside the window)."""
        b = len(indices)
        batch["partner"] = torch.zeros(b, batch["x"].shape[1], self.segment)
        batch["partner_mask"] = torch.zeros(b, self.segment, dtype=torch.bool)
        batch["partner_index"] = torch.full((b, self.segment), -1, dtype=torch.long)
        for row, index in enumerate(indices.tolist()):
            window = index % len(self)
            utt, start = (int(v) for v in self.windows[window])
            options = self.partners.utterances[utt]
            if not options:
                continue
            k = int(np.random.default_rng([index // len(self), window, 5]).integers(len(options)))
            partner = options[k]
            aligned = self.partners.maps[utt][k][start : start + self.segment].astype(np.int64)
            length = int(self.store.lengths[partner])
            first = int(np.clip(aligned[len(aligned) // 2] - self.segment // 2, 0, max(0, length - self.segment)))
            piece = np.asarray(self.store.read(partner, first, self.segment), dtype=np.float32)
            batch["partner"][row, :, : piece.shape[1]] = torch.from_numpy((piece - self.mean) / self.std)
            batch["partner_mask"][row, : piece.shape[1]] = True
            local = torch.from_numpy(aligned - first)
            inside = (local >= 0) & (local < piece.shape[1])
            batch["partner_index"][row, : len(aligned)] = torch.where(inside, local, -1)

    def perturb(self, batch: dict[str, torch.Tensor], indices: np.ndarray) -> None:
        """The augmentation, drawn per example from its index (like the references). A new voice, alike in
        the window, its references and the target: vocal-tract-length perturbation (a factor alpha; the
        pitch contour moves by log2 alpha octaves) and an equaliser. Then conditions on the inputs only, the
        clean window kept as ``"target"``: for a share ``whisper`` of the examples the window whispered (as
        the content encoder sees it; its pitch contour flat at its median, as a whispered source's is at
        conversion), and noise in the window and in the references.
        Normalisation is affine, so the warp interpolates normalised values as it would natural ones; the
        gains, the whisper and the noise act on natural log-mel values."""
        aug = self.augment
        if aug.clean_target():
            batch["target"] = torch.empty_like(batch["x"])
        for row, index in enumerate(indices.tolist()):
            draw = [index // len(self), index % len(self)]
            if aug.vtlp_warp:
                alpha = float(np.random.default_rng(draw + [2]).uniform(1 - aug.vtlp_warp, 1 + aug.vtlp_warp))
                batch["x"][row] = vocal_tract_warp(batch["x"][row], alpha, aug.mel)
                batch["ref"][row] = vocal_tract_warp(batch["ref"][row], alpha, aug.mel)
                if "pitch" in batch:
                    batch["pitch"][row] += float(np.log2(alpha)) * batch["mask"][row].to(batch["pitch"].dtype)
            if aug.equalise_db:
                gains = random_gains(aug.mel.n_mels, aug.equalise_db, np.random.default_rng(draw + [3]))
                shift = equalise(torch.zeros(aug.mel.n_mels, 1), gains, aug.mel.power) / self.std  # (n_mels, 1)
                for key, mask in (("x", "mask"), ("ref", "ref_mask")):
                    batch[key][row] = torch.where(batch[mask][row], batch[key][row] + shift, 0.0)
            if aug.clean_target():
                batch["target"][row] = batch["x"][row]
            if aug.whisper and (rng := np.random.default_rng(draw + [6])).uniform() < aug.whisper:
                self.whispered(batch, row, rng)
            if aug.noise_snr:
                self.add_noise(batch, row, np.random.default_rng(draw + [4]))

    def whispered(self, batch: dict[str, torch.Tensor], row: int, rng: np.random.Generator) -> None:
        """The window of ``row`` whispered (:func:`seqae.datasets.augment.whisper`, its own cut of the white
        noise and a slope drawn from ``whisper_slope_db``), its pitch contour flat at the median of its frames."""
        aug, real = self.augment, batch["mask"][row]
        noise = aug.noise_cut(0, int(rng.integers(aug.noise.shape[-1])), batch["x"].shape[-1])
        natural = batch["x"][row] * self.std + self.mean
        quiet = whisper(natural, noise, float(rng.uniform(*aug.whisper_slope_db)), aug.mel, mask=real)
        batch["x"][row] = torch.where(real, (quiet - self.mean) / self.std, 0.0)
        if "pitch" in batch and bool(real.any()):
            batch["pitch"][row] = torch.where(real, batch["pitch"][row][real].median(), 0.0)

    def add_noise(self, batch: dict[str, torch.Tensor], row: int, rng: np.random.Generator) -> None:
        """Noise at an SNR drawn from ``noise_snr`` in the window and the references of ``row`` (each its
        own cut of the noise bank)."""
        aug = self.augment
        for key, mask in (("x", "mask"), ("ref", "ref_mask")):
            kind, start = int(rng.integers(aug.noise.shape[0])), int(rng.integers(aug.noise.shape[-1]))
            noise = aug.noise_cut(kind, start, batch[key].shape[-1])
            natural = batch[key][row] * self.std + self.mean
            real = batch[mask][row]
            noisy = mix_noise(natural, noise, float(rng.uniform(*aug.noise_snr)), aug.mel.power, aug.mel.log_floor, real)
            batch[key][row] = torch.where(real, (noisy - self.mean) / self.std, 0.0)

    def pitch_rows(self, windows: np.ndarray, refs: np.ndarray) -> torch.Tensor:
        """``(batch, segment_frames)``: each window's pitch contour moved to the level of its reference
        utterances (their mean level; as at conversion, where it is the target's; the range is the window's
        own, its speaker's, so it is not scaled), zeros on padding."""
        rows = torch.zeros(len(windows), self.segment)
        for row, (window, ref_windows) in enumerate(zip(windows.tolist(), refs.tolist())):
            utt, start = self.windows[window]
            track = self.pitch[utt]
            levels = [float(self.pitch_levels[self.windows[r][0]]) for r in ref_windows]
            piece = move_pitch(track.contour[start : start + self.segment], track.level, levels)
            rows[row, : piece.shape[0]] = piece
        return rows
