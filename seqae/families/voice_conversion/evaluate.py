"""Evaluation of voice conversion on held-out sentences, for seen and unseen target speakers.

The manifest's sentences are split in two halves (:func:`seqae.evaluation.probes.split_by_sentence`). On the first
half, real speech only: a speaker classifier (every speaker of the manifest, unseen ones included), a phone probe, and
the disentanglement probes are fitted. The second half is converted: each conversion takes a source utterance, a target
speaker other than the source's, and one other utterance of the target as the reference (one-shot; ``eval.references``
= n averages the speaker codes, pitch levels and ranges of n; ``eval.seen_references`` and ``eval.unseen_references``
set it per group), and is scored by

- speaker similarity: the share of converted utterances the speaker classifier (:class:`SpeakerJudge`) labels as the
  target, and as the source;
- distortion: mel-cepstral distortion (dB; coefficients 1..N of the DCT of the log-mel) after DTW alignment between
  converted and the real target utterance of the same sentence, beside the same between source and target (parallel
  data only; per conversion in ``records``: ``mcd_converted_db``, ``mcd_source_db``);
- content: the phone probe's accuracy on converted frames (labelled with the source's alignment; conversion keeps
  the timing) against its accuracy on the real source frames (per conversion in ``records``: ``phone_real``, ``phone_converted``);
- disentanglement: speaker identification from the content code pooled over time (mean and standard deviation per
  channel), from single content-code frames (a harder test), and from the speaker code;
- resynthesis: the share of the seen conversions' sources by training speakers, put back into their own voice, that the
  speaker classifier labels as their speaker (what conversion can reach with this decoder).

With several manifests, the shares and phone ratio of the conversions to each manifest's speakers are reported apart
too (:func:`by_target_manifest`): a user's own held-out voices, given as one more ``--manifest``, get figures of their own.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqae.audio import PITCH_RANGES, PitchTrack
from seqae.config import ConfigError, choice, path_field
from seqae.datasets.audio import Utterance
from seqae.datasets.base import DataError
from seqae.evaluation.linear import Probe
from seqae.evaluation.probes import frame_labels, split_by_sentence, stack_frames
from seqae.families.voice_conversion.distortion import mcd_dtw
from seqae.runtime import model_device


@dataclass
class ConversionEvalConfig:
    """``[eval]`` for ``family = "voice_conversion"``."""

    manifest: str = path_field("", doc="held-out sentences of the training speakers (seen targets)")
    unseen_manifest: str = path_field("", doc="speakers held out of training (one-shot targets)")
    conversions: int = 200  # per group: seen targets, unseen targets
    references: int = 1  # utterances of the target whose speaker codes are averaged (1: one-shot)
    seen_references: int = 0  # for seen targets only (0: eval.references)
    unseen_references: int = 0  # for unseen targets only (0: eval.references)
    mcd_coefficients: int = 24
    max_train_frames: int = 40000  # frames the phone and frame-level speaker probes are fitted on
    max_iter: int = 500  # logistic-regression iterations
    griffin_lim_iters: int = 64  # seqae convert and the example WAVs of seqae plot
    pitch_range: str = choice(
        "target",
        *PITCH_RANGES,
        doc="models with model.pitch: the source's contour moved to the "
        "target's level and scaled to its range (target) or with the source's range kept (source); also seqae convert's default",
    )
    # adain: Adam steps fitting the target's speaker vector to its references (VoiceConversion.adapted_code; 0: none)
    adapt_steps: int = 0
    adapt_rate: float = 0.1  # their learning rate
    seed: int = 0

    def validate(self, where: str) -> None:
        if self.conversions < 1 or self.mcd_coefficients < 1 or self.max_train_frames < 100 or self.references < 1:
            raise ConfigError(f"{where}: eval.conversions, eval.references and eval.mcd_coefficients must be positive, "
                              "eval.max_train_frames >= 100")
        if self.seen_references < 0 or self.unseen_references < 0:
            raise ConfigError(f"{where}: eval.seen_references and eval.unseen_references must be positive, or 0 for "
                              "eval.references")
        if self.griffin_lim_iters < 1:
            raise ConfigError(f"{where}: eval.griffin_lim_iters must be positive")
        if self.adapt_steps < 0 or self.adapt_rate <= 0:
            raise ConfigError(f"{where}: eval.adapt_steps must be >= 0 and eval.adapt_rate positive")


# -- probes ------------------------------------------------------------------------------------------


class SpeakerJudge:
    """The speaker classifier of the evaluation: logistic regression on single log-mel frames with
    their +-2 neighbours (frames more than ~43 dB below the utterance's loudest dropped); an utterance
    goes to the speaker with the largest summed log-probability over its frames."""

    def __init__(self, mels: list[np.ndarray], labels: np.ndarray, max_frames: int, max_iter: int, rng: np.random.Generator):
        xs = [self.frames(m) for m in mels]
        ys = np.concatenate([[label] * len(x) for x, label in zip(xs, labels)])
        x, y = subsample(np.concatenate(xs), ys, max_frames, rng)
        self.probe = Probe(x, y, max_iter)

    @staticmethod
    def frames(log_mel: np.ndarray) -> np.ndarray:
        energy = log_mel.mean(0)
        keep = energy > energy.max() - 5.0
        stacked = stack_frames(log_mel.T, 2)
        return stacked[keep] if keep.sum() >= 10 else stacked

    def predict(self, log_mel: np.ndarray) -> str:
        scores = self.probe.log_proba(self.frames(log_mel)).sum(0)
        return self.probe.classes[int(scores.argmax())]

    def accuracy(self, mels: list[np.ndarray], labels: np.ndarray) -> float:
        return float(np.mean([self.predict(m) == label for m, label in zip(mels, labels)]))


def phone_frames(mel: np.ndarray, utt: Utterance, hop_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Stacked (+-4) frames of a normalised mel and their phone labels (frames outside the alignment dropped)."""
    labels = frame_labels(utt, mel.shape[1], 0.0, hop_s)  # centred windows: frame t is centred at t * hop
    keep = [t for t, label in enumerate(labels) if label is not None]
    return stack_frames(mel.T, 4)[keep], np.array([labels[t] for t in keep])


def subsample(x: np.ndarray, y: np.ndarray, limit: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if len(x) <= limit:
        return x, y
    pick = rng.choice(len(x), size=limit, replace=False)
    return x[pick], y[pick]


# -- the evaluation ------------------------------------------------------------------------------


@dataclass
class Conversion:
    source: int  # utterance indices into the evaluated list
    references: list[int]
    target_speaker: str
    seen: bool


def plan_conversions(utterances: list[Utterance], convert_idx: np.ndarray, seen_speakers: set[str],
                     per_group: int, seed: int, count: int = 1, unseen_count: int | None = None) -> list[Conversion]:
    """Up to ``per_group`` conversions to seen and to unseen targets, from the conversion half; each with
    up to ``count`` reference utterances of the target (``unseen_count`` for unseen targets; default
    ``count``), never of the source's sentence. The sources, targets and first references do not depend
    on the counts."""
    counts = {True: count, False: count if unseen_count is None else unseen_count}
    rng = np.random.default_rng(seed)
    more = np.random.default_rng([seed, 1])  # extra references: their own stream, so the one-shot draws stay put
    by_speaker: dict[str, list[int]] = {}
    for i in convert_idx.tolist():
        by_speaker.setdefault(utterances[i].speaker, []).append(i)
    plan = []
    for seen in (True, False):
        targets = sorted(s for s in by_speaker if (s in seen_speakers) == seen and len(by_speaker[s]) >= 2)
        if not targets:
            continue
        for _ in range(per_group):
            target = targets[rng.integers(len(targets))]
            sources = [i for s, items in by_speaker.items() if s != target for i in items]
            if not sources:
                break
            source = sources[rng.integers(len(sources))]
            candidates = [i for i in by_speaker[target] if utterances[i].text != utterances[source].text or not utterances[i].text]
            if not candidates:
                continue
            # the first reference is drawn as in the one-shot plan, so more references only add to it
            first = candidates[rng.integers(len(candidates))]
            rest = [i for i in candidates if i != first]
            extra = more.permutation(rest)[: counts[seen] - 1].tolist() if counts[seen] > 1 else []
            plan.append(Conversion(source, [first, *extra], target, seen))
    return plan


class ConversionEvaluation:
    """The steps of :func:`evaluate_conversion`, each one job, sharing the evaluated utterances and the
    probes fitted on the first half. The random draws happen in a fixed order (the judge, the phone
    probe, the content-frame probe), so the figures do not depend on which steps run."""

    def __init__(self, utterances, mels, normalise, denormalise, model, hop_s: float, config: ConversionEvalConfig,
                 pitch: list[PitchTrack] | None):
        self.utterances, self.mels, self.denormalise, self.model = utterances, mels, denormalise, model
        self.hop_s, self.config, self.pitch = hop_s, config, pitch
        self.device = model_device(model)
        self.seen_speakers = set(model.config.speakers)
        self.adain = model.config.method == "adain"
        self.fit_idx, self.convert_idx = split_by_sentence(utterances, config.seed)
        self.rng = np.random.default_rng(config.seed)
        self.labels = np.array([u.speaker for u in utterances])
        self.normalised = [normalise(m).astype(np.float32) for m in mels]

    def fit_judges(self, result: dict[str, Any]) -> None:
        """On real speech: the speaker classifier (the judge) and, with phone alignments, the phone probe."""
        config, fit, test = self.config, self.fit_idx, self.convert_idx
        self.judge = SpeakerJudge([self.mels[i] for i in fit], self.labels[fit], config.max_train_frames, config.max_iter, self.rng)
        result["speaker_classifier_accuracy_real"] = self.judge.accuracy([self.mels[i] for i in test], self.labels[test])
        self.phone_probe = None
        if all(u.phones for u in self.utterances):
            xs, ys = zip(*(phone_frames(self.normalised[i], self.utterances[i], self.hop_s) for i in fit))
            x, y = subsample(np.concatenate(xs), np.concatenate(ys), config.max_train_frames, self.rng)
            self.phone_probe = Probe(x, y, config.max_iter)

    @torch.no_grad()
    def code(self, i: int, kind: str) -> np.ndarray:
        """Utterance ``i``'s content code ``(content_dim, T)`` or speaker code ``(speaker_dim,)``."""
        x = torch.from_numpy(self.normalised[i])[None].to(self.device)
        return (self.model.content(x) if kind == "content" else self.model.speaker_code(x))[0].cpu().numpy()

    def frame_data(self, codes: dict[int, np.ndarray], indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.concatenate([codes[i].T for i in indices])
        y = np.concatenate([[self.labels[i]] * codes[i].shape[1] for i in indices])
        return subsample(x, y, self.config.max_train_frames, self.rng)

    def disentanglement(self, result: dict[str, Any]) -> None:
        """Speaker identification from the content code (pooled, and single frames) and the speaker code."""
        fit, test, labels, max_iter = self.fit_idx, self.convert_idx, self.labels, self.config.max_iter
        codes = {i: self.code(i, "content") for i in np.concatenate([fit, test]).tolist()}
        pooled = {i: np.concatenate([c.mean(1), c.std(1)]) for i, c in codes.items()}
        probe = Probe(np.stack([pooled[i] for i in fit]), labels[fit], max_iter)
        result["speaker_from_content_mean_std"] = probe.accuracy(np.stack([pooled[i] for i in test]), labels[test])
        (fx, fy), (tx, ty) = self.frame_data(codes, fit), self.frame_data(codes, test)
        result["speaker_from_content_frames"] = Probe(fx, fy, max_iter).accuracy(tx, ty)
        if self.adain:
            spk = {i: self.code(i, "speaker") for i in codes}
            probe = Probe(np.stack([spk[i] for i in fit]), labels[fit], max_iter)
            result["speaker_from_speaker_code"] = probe.accuracy(np.stack([spk[i] for i in test]), labels[test])

    def plan(self, result: dict[str, Any]) -> list[Conversion]:
        config = self.config
        seen_count, unseen_count = config.seen_references or config.references, config.unseen_references or config.references
        plan = plan_conversions(self.utterances, self.convert_idx, self.seen_speakers, config.conversions, config.seed,
                                seen_count, unseen_count)
        result["seen_references_per_conversion"] = seen_count
        result["unseen_references_per_conversion"] = unseen_count
        if not self.adain:
            plan = [c for c in plan if c.seen]
            result["unseen_note"] = "the adversarial method converts to training speakers only"
        return plan

    def voice(self, source: int, speaker: str, references: list[int]) -> np.ndarray:
        """Utterance ``source`` in the voice of ``speaker`` (adain: the mean code of ``references``); normalised mel."""
        from seqae.families.voice_conversion.convert import convert_mel

        refs = [torch.from_numpy(self.normalised[r]) for r in references] if self.adain else None
        tracks = None if self.pitch is None else [self.pitch[source]] + [self.pitch[r] for r in references]
        return convert_mel(self.model, torch.from_numpy(self.normalised[source]), refs, speaker, tracks,
                           self.config.pitch_range, self.config.adapt_steps, self.config.adapt_rate).numpy()

    def score(self, conv: Conversion, parallel: dict) -> dict[str, Any]:
        """Convert once and score it: the record of the conversion, with the judge's label, the MCD against the
        parallel target (``parallel``: ``(speaker, text)`` -> utterance index; none where the target never says
        the source's text) and the phone probe's right frames, real and converted."""
        src, config = self.utterances[conv.source], self.config
        converted_norm = self.voice(conv.source, conv.target_speaker, conv.references)
        converted = self.denormalise(converted_norm)
        predicted = self.judge.predict(converted)
        record = {"seen": conv.seen, "source": str(src.audio), "source_speaker": src.speaker, "target_speaker": conv.target_speaker,
                  "references": [str(self.utterances[r].audio) for r in conv.references], "labelled_as": str(predicted)}
        twin = parallel.get((conv.target_speaker, src.text))
        if twin is not None:
            record.update(mcd_converted_db=mcd_dtw(converted, self.mels[twin], config.mcd_coefficients),
                          mcd_source_db=mcd_dtw(self.mels[conv.source], self.mels[twin], config.mcd_coefficients))
        if self.phone_probe is not None:  # frames the probe labels right, real and converted: a ratio per target group
            x_real, y_real = phone_frames(self.normalised[conv.source], src, self.hop_s)
            if len(y_real):
                x_conv, _ = phone_frames(converted_norm, src, self.hop_s)
                record.update(phone_frames=len(y_real), phone_real=self.phone_probe.accuracy(x_real, y_real) * len(y_real),
                              phone_converted=self.phone_probe.accuracy(x_conv, y_real) * len(y_real))
        return record

    def resynthesis(self, plan: list[Conversion], result: dict[str, Any]) -> None:
        """The judge on each seen conversion's source put back into its own voice (adain: the speaker code
        of another utterance of its speaker): the ceiling conversion can reach with this decoder."""
        own: list[bool] = []
        own_rng = np.random.default_rng([self.config.seed, 2])
        by_speaker: dict[str, list[int]] = {}
        for i in self.convert_idx.tolist():
            by_speaker.setdefault(self.utterances[i].speaker, []).append(i)
        for conv in plan:
            src = self.utterances[conv.source]
            if not conv.seen or src.speaker not in self.seen_speakers:  # training speakers' own voices only
                continue
            refs = []
            if self.adain:
                refs = [i for i in by_speaker[src.speaker] if self.utterances[i].text != src.text and i != conv.source]
                if not refs:
                    continue
                refs = [refs[own_rng.integers(len(refs))]]
            own.append(self.judge.predict(self.denormalise(self.voice(conv.source, src.speaker, refs))) == src.speaker)
        if own:
            result["resynthesis_labelled_source"] = float(np.mean(own))


def share(result: dict[str, Any], key: str, hits) -> None:
    """``result[key]``, the share of true ``hits``, with its 95 % Wilson interval (``key_ci_low``,
    ``key_ci_high``; scipy's ``binomtest``): a share of 40 conversions is good to about +-15 points."""
    from scipy.stats import binomtest

    hits = np.asarray(hits, dtype=bool)
    result[key] = float(hits.mean())
    interval = binomtest(int(hits.sum()), len(hits)).proportion_ci(confidence_level=0.95, method="wilson")
    result[f"{key}_ci_low"], result[f"{key}_ci_high"] = float(interval.low), float(interval.high)


def label_shares(result: dict[str, Any], prefix: str, records: list[dict[str, Any]]) -> None:
    """``PREFIX_conversions`` and the shares of ``records`` the judge labels as their target and as their source
    (``PREFIX_labelled_target``, ``PREFIX_labelled_source``, each with its interval: :func:`share`)."""
    result[f"{prefix}_conversions"] = len(records)
    share(result, f"{prefix}_labelled_target", [r["labelled_as"] == r["target_speaker"] for r in records])
    share(result, f"{prefix}_labelled_source", [r["labelled_as"] == r["source_speaker"] for r in records])


def summarise(records: list[dict[str, Any]], result: dict[str, Any]) -> None:
    """Shares and means per group (seen, unseen targets: each record's ``seen``) and the phone-probe ratio
    over ``records``."""
    for seen in (True, False):
        group, rows = "seen" if seen else "unseen", [r for r in records if r["seen"] == seen]
        if not rows:
            continue
        label_shares(result, group, rows)
        with_twin = [r for r in rows if "mcd_converted_db" in r]
        if with_twin:
            converted_mcd = np.array([r["mcd_converted_db"] for r in with_twin])
            source_mcd = np.array([r["mcd_source_db"] for r in with_twin])
            result[f"{group}_mcd_converted_to_target_db"] = float(converted_mcd.mean())
            result[f"{group}_mcd_source_to_target_db"] = float(source_mcd.mean())
            share(result, f"{group}_mcd_below_source_share", converted_mcd < source_mcd)
    result.update(phone_ratio(records))


def by_target_manifest(utterances: list[Utterance], records: list[dict[str, Any]], result: dict[str, Any]) -> None:
    """With targets from more than one manifest (``--manifest`` given several times, e.g. a set of voices held out
    of training), the figures of the conversions to each manifest's speakers apart: ``to_NAME_conversions``,
    ``to_NAME_labelled_target`` (with its Wilson interval), ``to_NAME_labelled_source`` and
    ``to_NAME_phone_accuracy_ratio``, NAME the manifest's file name without ``.jsonl`` (its folder's name before it
    where two share a name, then its place among the manifests). A speaker found in several manifests counts in the
    first."""
    home: dict[str, str] = {}
    for u in utterances:
        home.setdefault(u.speaker, u.where.rpartition(":")[0])
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault(home[r["target_speaker"]], []).append(r)
    if len(groups) < 2:
        return
    names = [re.sub(r"\W+", "_", Path(path).stem).strip("_") for path in groups]
    names = [n if names.count(n) == 1 else re.sub(r"\W+", "_", f"{Path(p).parent.name}_{n}").strip("_") for n, p in zip(names, groups)]
    names = [n if names.count(n) == 1 else f"{n}_{i + 1}" for i, n in enumerate(names)]  # the manifest's place in the list
    for name, rows in zip(names, groups.values()):
        label_shares(result, f"to_{name}", rows)
        if "phone_accuracy_ratio" in (phones := phone_ratio(rows)):
            result[f"to_{name}_phone_accuracy_ratio"] = phones["phone_accuracy_ratio"]


def phone_ratio(records: list[dict[str, Any]]) -> dict[str, float]:
    """The phone probe's accuracy on real and converted frames over the records that have phones, and their ratio
    (empty without a phone probe): over a subset of ``records``, the ratio for one group of targets."""
    scored = [r for r in records if r.get("phone_frames")]
    if not scored:
        return {}
    frames = sum(r["phone_frames"] for r in scored)
    real, converted = sum(r["phone_real"] for r in scored) / frames, sum(r["phone_converted"] for r in scored) / frames
    return {"phone_accuracy_real": real, "phone_accuracy_converted": converted, "phone_accuracy_ratio": converted / max(real, 1e-12)}


def evaluate_conversion(
    utterances: list[Utterance],
    mels: list[np.ndarray],
    normalise: Callable[[np.ndarray], np.ndarray],
    denormalise: Callable[[np.ndarray], np.ndarray],
    model,
    hop_s: float,
    config: ConversionEvalConfig,
    pitch: list[PitchTrack] | None = None,
) -> dict[str, Any]:
    """Every figure of the module docstring. ``mels``: real log-mels ``(n_mels, frames)``; the model works
    on ``normalise(mel)`` and its output goes back through ``denormalise``. ``pitch``: each utterance's
    pitch (:func:`seqae.datasets.audio.log_mels_and_pitch`), for models trained with ``model.pitch``.
    The result's ``records`` hold one entry per conversion (``seqae eval`` writes them to a file)."""
    from seqae import progress

    missing = [u.where for u in utterances if not u.speaker]
    if missing:
        raise DataError(f"{missing[0]}: no \"speaker\"; voice-conversion evaluation needs the speaker of every utterance")
    speakers = sorted({u.speaker for u in utterances})
    if len(speakers) < 2:
        raise DataError(f"{utterances[0].where}: one speaker in the manifest; conversion needs at least two")
    run = ConversionEvaluation(utterances, mels, normalise, denormalise, model, hop_s, config, pitch)
    seen = [s for s in speakers if s in run.seen_speakers]
    result: dict[str, Any] = {"speakers": len(speakers), "seen_speakers": len(seen), "unseen_speakers": len(speakers) - len(seen),
                              "chance": 1.0 / len(speakers)}
    run.fit_judges(result)
    run.disentanglement(result)
    plan = run.plan(result)
    parallel = {(u.speaker, u.text): i for i, u in enumerate(utterances) if u.text}
    records = [run.score(conv, parallel) for conv in progress.each(plan, "converting and judging")]
    run.resynthesis(plan, result)
    summarise(records, result)
    by_target_manifest(utterances, records, result)
    result["records"] = records
    return result
