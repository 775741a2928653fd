
import pytest
import soundfile

from seqae.cli import main
from seqae.datasets.audio import read_manifest

pytest.importorskip("espeakng_loader", reason="speech synthesis needs the speech extra")


def test_synthesised_corpus_is_parallel_aligned_and_reproducible(tmp_path):
    args = ["data", "speech", "--speakers", "2", "--unseen-speakers", "1", "--utterances", "4", "--test-fraction", "0.25"]
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    train = read_manifest(tmp_path / "a" / "train.jsonl")
    test = read_manifest(tmp_path / "a" / "test.jsonl")
    unseen = read_manifest(tmp_path / "a" / "unseen_train.jsonl")
    assert len(train) == 6 and len(test) == 2 and len(unseen) == 3
    assert len({u.speaker for u in train}) == 2 and not {u.speaker for u in unseen} & {u.speaker for u in train}
    # parallel: every speaker says the same training sentences
    by_speaker = {}
    for u in train:
        by_speaker.setdefault(u.speaker, set()).add(u.text)
    assert len({frozenset(v) for v in by_speaker.values()}) == 1
    for u in train:
        info = soundfile.info(str(u.audio))
        assert info.samplerate == 16000 and info.channels == 1
        assert u.phones and u.phones[-1][1] <= info.duration + 1e-3
        assert all("'" not in p and "," not in p for _, _, p in u.phones)  # stress marks stripped
    assert main(args + ["--out", str(tmp_path / "a")]) == 1  # never overwrites


def test_a_fixed_seed_gives_the_same_corpus(tmp_path):
    # espeak-ng keeps state between utterances, so each corpus is made by a fresh process, as by a user
    import os
    import subprocess
    import sys

    from conftest import ROOT

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for name in ("a", "b"):
        cmd = [sys.executable, "-m", "seqae.cli", "data", "speech", "--speakers", "2", "--utterances", "3", "--out", str(tmp_path / name)]
        assert subprocess.run(cmd, env=env, capture_output=True).returncode == 0
    assert (tmp_path / "a" / "train.jsonl").read_text() == (tmp_path / "b" / "train.jsonl").read_text()
    wavs = sorted((tmp_path / "a" / "wavs").rglob("*.wav"))
    assert wavs and all(w.read_bytes() == (tmp_path / "b" / w.relative_to(tmp_path / "a")).read_bytes() for w in wavs)


def test_distinct_timbres_never_share_a_variant_and_pitch():
    from seqae.datasets.speech_synth import voices

    chosen = voices(80, seed=3, distinct_timbres=True)
    timbres = [(v.name.split("+")[1], v.pitch) for v in chosen]
    assert len(set(timbres)) == 80
    assert len({v.name.split("+")[1] for v in chosen[:38]}) > 20  # variants spread over the list
    assert voices(80, seed=3, distinct_timbres=True) == chosen


def test_the_variant_is_read_back_from_every_voice_label():
    from seqae.datasets.speech_synth import Voice, variant_of, voices, wide_voices

    for voice in voices(40, seed=1) + wide_voices(40, seed=1):
        assert variant_of(voice.label) == voice.name.split("+")[1].replace(" ", "-")
    assert variant_of(Voice("en-gb-x-gbclan+whisperf", 65, 175, 20).label) == "whisperf"
    assert variant_of("p225") == "p225" and variant_of("speaker_a") == "speaker_a"


def test_held_out_variants_are_voices_no_training_speaker_has(tmp_path, capsys):
    """--held-out-variants: whole espeak-ng variants kept out of the training and unseen voices, two voices
    of each in their own manifests (targets from outside the training voice space); an unknown variant is
    an error naming the option, before anything is written."""
    import json

    from seqae.datasets.speech_synth import voices

    from conftest import expect_error

    args = ["data", "speech", "--speakers", "3", "--unseen-speakers", "1", "--utterances", "3", "--test-fraction", "0.34",
            "--held-out-variants", "klatt3,whisperf"]
    assert main(args + ["--out", str(tmp_path / "c")]) == 0
    held = read_manifest(tmp_path / "c" / "held_out_test.jsonl") + read_manifest(tmp_path / "c" / "held_out_train.jsonl")
    others = [u for name in ("train", "unseen_train") for u in read_manifest(tmp_path / "c" / f"{name}.jsonl")]
    variants = {u.speaker.split("_")[1] for u in held}
    assert variants == {"klatt3", "whisperf"} and len({u.speaker for u in held}) == 4
    assert not any("klatt3" in u.speaker or "whisperf" in u.speaker for u in others)
    assert json.loads((tmp_path / "c" / "corpus.json").read_text())["held_out_variants"] == ["klatt3", "whisperf"]
    assert not any(v.name.endswith(("+klatt3", "+whisperf")) for v in voices(200, 0, exclude=("klatt3", "whisperf")))
    expect_error(args[:-1] + ["klatt9", "--out", str(tmp_path / "d")], capsys, "--held-out-variants", "klatt9")
    assert not (tmp_path / "d").exists()


def test_wide_voices_spread_pitch_range_and_rate_and_the_range_is_heard(tmp_path):
    import numpy as np
    import torch

    from seqae.audio import MelConfig, pitch_contour, track_pitch
    from seqae.datasets.speech_synth import Espeak, Voice, wide_voices

    chosen = wide_voices(60, seed=0, exclude=("klatt3", "croak"))
    assert len({v.label for v in chosen}) == 60
    assert not any(v.name.endswith(("+klatt3", "+croak")) for v in chosen)
    for field, low, high in (("pitch", 5, 95), ("rate", 120, 230), ("range", 0, 100)):
        values = [getattr(v, field) for v in chosen]
        assert low <= min(values) and max(values) <= high and max(values) - min(values) > (high - low) / 2
    assert wide_voices(60, seed=0, exclude=("klatt3", "croak")) == chosen  # seeded
    engine = Espeak()
    text = "Her father was growing distressed for money, and she would not say so?"
    spreads = []
    for spread in (0, 100):
        wave, _ = engine.speak(text, Voice("en-us+m3", 50, 175, spread))
        spreads.append(pitch_contour(*track_pitch(torch.from_numpy(np.asarray(wave)), MelConfig())).spread)
    assert spreads[1] > 2 * spreads[0]  # the pitch range setting widens the melody
    args = ["data", "speech", "--speakers", "2", "--utterances", "2", "--wide-voices", "--out", str(tmp_path / "w")]
    assert main(args) == 0
    import json

    info = json.loads((tmp_path / "w" / "corpus.json").read_text())
    assert info["wide_voices"] and info["speakers"] == [v.label for v in wide_voices(2, seed=0)]


def test_tract_voices_write_their_own_variants_and_the_formant_scale_is_heard(tmp_path):
    import json

    import numpy as np

    from seqae.datasets.base import DataError
    from seqae.datasets.speech_synth import Espeak, Tract, Voice, wide_voices

    chosen = wide_voices(40, seed=0, tracts=True)
    tracts = [v.tract for v in chosen if v.tract]
    assert len(tracts) == 20 and all(v.tract is None for v in chosen[::2]) and len({v.label for v in chosen}) == 40
    assert all(80 <= t.scale <= 125 and abs(t.f1 - t.scale) <= 10 for t in tracts) and len({t.name for t in tracts}) == 20
    assert max(t.scale for t in tracts) - min(t.scale for t in tracts) > 20
    engine = Espeak(tracts=True)
    text = "Her father was growing distressed for money, and she would not say so?"

    def centroid(wave):  # the spectral centroid (Hz) of the louder half of 1024-sample frames
        frames = wave[: len(wave) // 1024 * 1024].reshape(-1, 1024) * np.hanning(1024)
        power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
        loud = power.sum(1) > np.median(power.sum(1))
        return float((power[loud] * np.fft.rfftfreq(1024, 1 / engine.sample_rate)).sum() / power[loud].sum())

    centroids = []
    for scale in (80, 100, 125):
        tract = Tract(scale, scale, scale, 100, 100, 0, 0, 0)
        centroids.append(centroid(engine.speak(text, Voice(f"en-us+{tract.name}", tract=tract))[0]))
    assert centroids[0] < 0.85 * centroids[1] and centroids[2] > 1.2 * centroids[1]  # a shorter tract: higher formants
    with pytest.raises(DataError, match="tracts=True"):
        Espeak().speak(text, chosen[1])
    args = ["data", "speech", "--speakers", "2", "--utterances", "2", "--tract-voices", "--out", str(tmp_path / "t")]
    assert main(args) == 0
    info = json.loads((tmp_path / "t" / "corpus.json").read_text())
    assert info["speakers"] == [v.label for v in chosen[:2]] and list(info["tracts"]) == [chosen[1].tract.name]
