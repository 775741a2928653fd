"""What a voice-conversion run's content encoder sees of a change to its input: the frame-wise cosine
similarity between the content codes of a manifest's utterances and of changed copies of them. The changes:
whisper's tilt alone (an equaliser rising 7 dB of energy per octave about 1 kHz), noise's fine structure alone
(:func:`seqae.datasets.augment.whisper` at slope 0), both (``data.whisper``'s rendering), both on the voiced frames
only (the pitch tracker's decision; unvoiced frames are noise-excited already), and, for scale, the codes of
another utterance frame by frame. 1 means the change is invisible to the encoder.

With --partners, the same for real speech: each utterance against the other speakers' utterances of the same
text (frames aligned by DTW of their mel cepstra, as the content-consistency loss aligns them), apart for voiced
partners and whispered ones (no frame voiced), and the two renderings of a voiced utterance against its
whispered partners: a rendering like whisper for the encoder moves the codes towards the whispered partner's
(above the voiced utterance's own similarity to it).

    .venv/bin/python benchmarks/vc_content_invariance.py RUN MANIFEST [--utterances 20] [--partners 12]
"""

import argparse
from collections import defaultdict

import numpy as np
import torch
import torch.nn.functional as F

import seqae
from seqae.audio import LogMel, track_pitch
from seqae.datasets.audio import iter_audio
from seqae.datasets.augment import equalise, noise_bank, whisper, whisper_tilt
from seqae.families.base import manifest_utterances
from seqae.families.voice_conversion.parallel import frame_map

SLOPE_DB = 7.0  # the middle of data.whisper's 4-10 dB per octave


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run")
    parser.add_argument("manifest")
    parser.add_argument("--utterances", type=int, default=20, help="every other utterance of the manifest, up to this many")
    parser.add_argument("--partners", type=int, default=0, help="texts said by several speakers, up to this many (0: none)")
    args = parser.parse_args()
    model = seqae.load(args.run).eval()
    data = model.recipe.data
    mel = data.mel()
    bank = noise_bank(mel)
    tilt = whisper_tilt(SLOPE_DB, mel)
    front_end = LogMel(mel)

    def features(utterances):  # each utterance's log-mel (n_mels, frames) and voicing decision (frames,)
        waves = iter_audio(utterances, mel.sample_rate, mel.win_length, "log-mel and voicing")
        return [(front_end(w)[0], track_pitch(w, mel)[1]) for w in waves]

    def code(m: torch.Tensor) -> torch.Tensor:
        return model.content(data.normalise(m)[None])[0]

    def renderings(m: torch.Tensor, voiced: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        noise = bank[0][:, : m.shape[1]]
        return whisper(m, noise, SLOPE_DB, mel), whisper(m, noise, SLOPE_DB, mel, mask=voiced[: m.shape[1]])

    def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
        n = min(a.shape[1], b.shape[1])
        return float(F.cosine_similarity(a[:, :n], b[:, :n], dim=0).mean())

    utterances = manifest_utterances([args.manifest])
    feats = features(utterances[: 2 * args.utterances : 2])
    rows: dict[str, list[float]] = defaultdict(list)
    for i, (m, voiced) in enumerate(feats):
        clean = code(m)
        both, voiced_only = renderings(m, voiced)
        rows["tilt alone"].append(cosine(clean, code(equalise(m, tilt, mel.power))))
        rows["noise fine structure alone"].append(cosine(clean, code(whisper(m, bank[0][:, : m.shape[1]], 0.0, mel))))
        rows["whisper (both)"].append(cosine(clean, code(both)))
        rows["whisper on the voiced frames only"].append(cosine(clean, code(voiced_only)))
        rows["another utterance"].append(cosine(clean, code(feats[(i + 1) % len(feats)][0])))
    print(f"{args.run}, {len(feats)} utterances of {args.manifest}: mean frame-wise cosine of the content codes")
    for name, values in rows.items():
        print(f"  {name}: {np.mean(values):.3f}")
    if args.partners:
        partner_rows(utterances, args.partners, features, code, renderings)


def partner_rows(utterances, texts: int, features, code, renderings) -> None:
    """The --partners figures: every pair of speakers of up to ``texts`` texts said by a whispered and a voiced one."""
    def aligned(a: torch.Tensor, b: torch.Tensor, frames: np.ndarray) -> float:
        return float(F.cosine_similarity(a, b[:, torch.from_numpy(frames).long()], dim=0).mean())

    by_text = defaultdict(list)
    for utt in utterances:
        by_text[utt.text.strip().casefold()].append(utt)
    rows: dict[str, list[float]] = defaultdict(list)
    done = 0
    for group in by_text.values():
        if done == texts:
            break
        if len({u.speaker for u in group}) < 2:
            continue
        feats = features(group)
        whispered = [not bool(v.any()) for _, v in feats]
        if all(whispered) or not any(whispered):
            continue
        done += 1
        codes = [code(m) for m, _ in feats]
        for a, (ma, va) in enumerate(feats):
            if whispered[a]:
                continue
            both, voiced_only = (code(r) for r in renderings(ma, va))
            for b, (mb, _) in enumerate(feats):
                if b == a or group[b].speaker == group[a].speaker:
                    continue
                frames = frame_map(ma.numpy(), mb.numpy())
                kind = "whispered" if whispered[b] else "voiced"
                rows[f"a voiced utterance and a {kind} partner"].append(aligned(codes[a], codes[b], frames))
                if whispered[b]:
                    rows["whisper (both) and the whispered partner"].append(aligned(both, codes[b], frames))
                    rows["whisper on the voiced frames only and the whispered partner"].append(aligned(voiced_only, codes[b], frames))
    print(f"  {done} texts said by voiced and whispered speakers: mean cosine of aligned frames' content codes")
    for name, values in rows.items():
        print(f"  {name}: {np.mean(values):.3f} (n {len(values)})" if values else f"  {name}: none")


if __name__ == "__main__":
    with torch.no_grad():
        main()
