"""Linear probes on frozen audio features: phones per 10 ms frame, speakers per utterance.

Works on any manifest with phone alignments. The probe is trained on the utterances of half of the
manifest's sentences and tested on the other half (utterances it has not seen; with parallel data,
every speaker appears on both sides).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from seqae.config import ConfigError, path_field
from seqae.datasets.audio import Utterance
from seqae.datasets.base import DataError


@dataclass
class ProbeEvalConfig:
    """``[eval]`` for the audio families."""

    manifest: str = path_field("", doc="default manifest for seqae eval (else --manifest)")
    max_train_frames: int = 40000  # frames the phone probe is fitted on (a random subset)
    max_iter: int = 300  # logistic-regression iterations
    seed: int = 0

    def validate(self, where: str) -> None:
        if self.max_train_frames < 100:
            raise ConfigError(f"{where}: eval.max_train_frames must be at least 100")


def split_by_sentence(utterances: list[Utterance], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Probe-train and probe-test utterance indices: half of the distinct texts each (by utterance
    when the manifest has no text)."""
    keys = [u.text or str(u.audio) for u in utterances]
    distinct = sorted(set(keys))
    if len(distinct) < 2:
        raise DataError("the manifest needs at least 2 different sentences (or utterances) to train and test a probe")
    rng = np.random.default_rng(seed)
    train_keys = set(rng.permutation(distinct)[: len(distinct) // 2].tolist())
    train = np.array([i for i, k in enumerate(keys) if k in train_keys])
    test = np.array([i for i, k in enumerate(keys) if k not in train_keys])
    return train, test


def frame_labels(utt: Utterance, n_frames: int, first_centre_s: float, hop_s: float) -> list[str | None]:
    """The phone under the centre of each frame (None outside the alignment)."""
    labels: list[str | None] = []
    phones = utt.phones
    j = 0
    for t in range(n_frames):
        centre = first_centre_s + t * hop_s
        while j < len(phones) and phones[j][1] <= centre:
            j += 1
        labels.append(phones[j][2] if j < len(phones) and phones[j][0] <= centre else None)
    return labels


def stack_frames(features: np.ndarray, context: int) -> np.ndarray:
    """``(frames, dim)`` -> ``(frames, (2 * context + 1) * dim)``: each frame with its neighbours (edges repeated)."""
    padded = np.pad(features, ((context, context), (0, 0)), mode="edge")
    return np.concatenate([padded[i : i + len(features)] for i in range(2 * context + 1)], axis=1)


def fit_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, max_iter: int) -> float:
    """Accuracy of the linear probe (:class:`~seqae.evaluation.linear.Probe`; test labels unseen in training count as wrong)."""
    from seqae.evaluation.linear import Probe

    return Probe(train_x, train_y, max_iter).accuracy(test_x, test_y)


FeatureFn = Callable[[np.ndarray], np.ndarray]  # waveform (samples,) -> frames (frames, dim)


def probe(
    utterances: list[Utterance],
    waves: list[np.ndarray],
    extractors: dict[str, tuple[FeatureFn, float, float]],
    config: ProbeEvalConfig,
) -> dict[str, float]:
    """Phone and speaker probe accuracies for each feature extractor.

    ``extractors``: name -> (function, centre of the first frame in seconds, hop in seconds).
    """
    from seqae import progress

    train_idx, test_idx = split_by_sentence(utterances, config.seed)
    has_phones = all(u.phones for u in utterances)
    speakers = [u.speaker for u in utterances]
    result: dict[str, float] = {"probe_train_utterances": float(len(train_idx)), "probe_test_utterances": float(len(test_idx))}
    rng = np.random.default_rng(config.seed)
    for name, (extract, first_centre, hop) in progress.each(extractors.items(), "phone and speaker probes", name=lambda e: e[0]):
        frames, labels, means = [], [], []
        for utt, wave in zip(utterances, waves):
            feats = extract(wave)
            means.append(feats.mean(0))
            frames.append(feats)
            labels.append(frame_labels(utt, len(feats), first_centre, hop) if has_phones else None)
        if has_phones:
            def gather(indices, frames=frames, labels=labels):
                xs, ys = [], []
                for i in indices:
                    keep = [t for t, label in enumerate(labels[i]) if label is not None]
                    xs.append(frames[i][keep])
                    ys += [labels[i][t] for t in keep]
                return np.concatenate(xs), np.array(ys)

            train_x, train_y = gather(train_idx)
            test_x, test_y = gather(test_idx)
            if len(train_x) > config.max_train_frames:
                pick = rng.choice(len(train_x), size=config.max_train_frames, replace=False)
                train_x, train_y = train_x[pick], train_y[pick]
            result[f"phone_accuracy_{name}"] = fit_probe(train_x, train_y, test_x, test_y, config.max_iter)
            if name == next(iter(extractors)):
                values, counts = np.unique(test_y, return_counts=True)
                result["phone_classes"] = float(len(np.unique(np.concatenate([train_y, test_y]))))
                result["phone_majority_class"] = float(counts.max() / counts.sum())
        if len(set(speakers)) > 1:
            means_arr = np.stack(means)
            spk = np.array(speakers)
            result[f"speaker_accuracy_{name}"] = fit_probe(
                means_arr[train_idx], spk[train_idx], means_arr[test_idx], spk[test_idx], config.max_iter
            )
    return result
