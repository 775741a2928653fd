"""How well the content-consistency loss's DTW frame maps pair frames of one sentence said by two voices: the share of
aligned frames that land on the same phone (by the manifest's phone alignments), against a plain linear time stretch
of one utterance onto the other. The pairs are the loss's own (``seqae.families.voice_conversion.parallel``): each
utterance with up to ``--partners`` others of the same text by other speakers; the figure is also given by the voice
variant of the partner (``seqae.datasets.speech_synth.variant_of``: the variant in a ``seqae data speech`` speaker
name, any other name as it is).

    .venv/bin/python benchmarks/vc_alignment.py MANIFEST [--recipe recipes/adain_vc_wide_voices.toml] [--utterances 400]
"""

import argparse
from collections import defaultdict

import numpy as np

from seqae.config import load_recipe
from seqae.datasets.audio import ArrayStore, log_mels_and_pitch, read_manifest
from seqae.datasets.speech_synth import variant_of
from seqae.evaluation.probes import frame_labels
from seqae.families.voice_conversion.parallel import align_partners, pick_partners


def same_phone(a: list, b: list, mapped: np.ndarray) -> tuple[int, int]:
    """(frames whose aligned frame carries the same phone, frames with a phone on both sides)."""
    pairs = [(a[t], b[int(m)]) for t, m in enumerate(mapped) if a[t] is not None and b[int(m)] is not None]
    return sum(x == y for x, y in pairs), len(pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifest")
    parser.add_argument("--recipe", default="recipes/adain_vc_wide_voices.toml", help="its [data] gives the log-mel settings")
    parser.add_argument("--utterances", type=int, default=400, help="how many utterances (the first of a seeded shuffle)")
    parser.add_argument("--partners", type=int, default=2)
    args = parser.parse_args()
    data = load_recipe(args.recipe, check_paths=False).data
    utterances = read_manifest(args.manifest)
    keep = sorted(np.random.default_rng(0).permutation(len(utterances))[: args.utterances].tolist())
    chosen = pick_partners([u.text for u in utterances], [u.speaker for u in utterances], args.partners, seed=0)
    needed = sorted(set(keep) | {j for i in keep for j in chosen[i]})
    mels, _ = log_mels_and_pitch([utterances[i] for i in needed], data.mel(), "log-mel", pitch=False)
    where = {i: k for k, i in enumerate(needed)}
    hop = data.hop_length / data.sample_rate
    labels = {i: frame_labels(utterances[i], mels[where[i]].shape[1], 0.0, hop) for i in needed}
    counts: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(4))
    kept = set(keep)
    partners = align_partners(ArrayStore([m.numpy() for m in mels]), [[where[j] for j in chosen[i]] if i in kept else [] for i in needed])
    for i in keep:
        for j, mapped in zip(chosen[i], partners.maps[where[i]]):
            n_a, n_b = len(labels[i]), len(labels[j])
            linear = np.minimum(np.rint((np.arange(n_a) + 0.5) * n_b / n_a - 0.5), n_b - 1).astype(int)
            row = np.array(same_phone(labels[i], labels[j], mapped) + same_phone(labels[i], labels[j], linear), dtype=float)
            for key in ("all pairs", f"  partner {variant_of(utterances[j].speaker)}"):
                counts[key] += row
    print(f"{args.manifest}: {len(keep)} utterances, {int(counts['all pairs'][1])} aligned frames")
    print("pairs: same phone under DTW | under a linear stretch")
    for key in ["all pairs"] + sorted(k for k in counts if k != "all pairs"):
        dtw_hits, dtw_n, lin_hits, lin_n = counts[key]
        print(f"{key}: {dtw_hits / max(dtw_n, 1):.3f} | {lin_hits / max(lin_n, 1):.3f}  ({int(dtw_n)} frames)")


if __name__ == "__main__":
    main()
