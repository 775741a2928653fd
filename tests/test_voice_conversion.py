"""Voice conversion end to end on tiny parallel 'speakers': training, evaluation, conversion, codes, figures, and
the errors for bad input."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

import seqae
from seqae.cli import main
from seqae.datasets.audio import Utterance
from seqae.families.voice_conversion.evaluate import by_target_manifest, phone_ratio

from tiny import RATE, TINY_VC, tiny_vc_recipe, write_recipe


@pytest.fixture(scope="module")
def adain_run(vc_corpus, tmp_path_factory):
    folder = tmp_path_factory.mktemp("adain")
    return seqae.train(tiny_vc_recipe(folder, vc_corpus), out=folder / "run")


# -- end to end ------------------------------------------------------------------------------------


def test_adain_trains_evaluates_and_converts(adain_run, vc_corpus, tmp_path, capsys):
    train, unseen = vc_corpus
    result = seqae.evaluate(adain_run)
    assert result["seen_speakers"] == 4 and result["unseen_speakers"] == 1
    for key in ("speaker_classifier_accuracy_real", "seen_labelled_target", "seen_labelled_source", "unseen_labelled_target",
                "phone_accuracy_real", "phone_accuracy_converted", "speaker_from_content_mean_std",
                "speaker_from_content_frames", "speaker_from_speaker_code", "seen_mcd_below_source_share",
                "resynthesis_labelled_source"):
        assert 0.0 <= result[key] <= 1.0, key
    assert result["seen_mcd_source_to_target_db"] > 0
    for key in ("seen_labelled_target", "unseen_labelled_source", "seen_mcd_below_source_share"):  # 95 % Wilson intervals
        low, high = result[f"{key}_ci_low"], result[f"{key}_ci_high"]
        assert 0.0 <= low <= result[key] <= high <= 1.0 and high - low > 0.05, key
    n, k = result["seen_conversions"], round(result["seen_labelled_target"] * result["seen_conversions"])
    centre, half = (k + 1.96**2 / 2) / (n + 1.96**2), 1.96 / (n + 1.96**2) * np.sqrt(k * (n - k) / n + 1.96**2 / 4)
    interval = (result["seen_labelled_target_ci_low"], result["seen_labelled_target_ci_high"])
    assert interval == pytest.approx((centre - half, centre + half), abs=1e-3)  # Wilson's formula
    # the tone-and-formant speakers are easy for the classifier on real speech
    assert result["speaker_classifier_accuracy_real"] > 0.9
    records = [json.loads(line) for line in (adain_run / "eval_records.jsonl").read_text().splitlines()]
    assert "records" not in result and result["records_file"].endswith("eval_records.jsonl")
    assert len(records) == result["seen_conversions"] + result["unseen_conversions"]
    seen = [r for r in records if r["seen"]]
    assert np.mean([r["labelled_as"] == r["target_speaker"] for r in seen]) == pytest.approx(result["seen_labelled_target"])
    assert all(r["source_speaker"] != r["target_speaker"] and len(r["references"]) == 1 for r in records)
    # the corpus is parallel: every conversion has its MCDs, whose means are the result's
    assert all(r["mcd_converted_db"] > 0 and r["mcd_source_db"] > 0 for r in records)
    assert np.mean([r["mcd_source_db"] for r in seen]) == pytest.approx(result["seen_mcd_source_to_target_db"])
    below = np.mean([r["mcd_converted_db"] < r["mcd_source_db"] for r in seen])
    assert below == pytest.approx(result["seen_mcd_below_source_share"])
    # each record's right phone frames, real and converted: summed, the result's ratio; a group's ratio from its records
    assert all(0 <= r["phone_converted"] <= r["phone_frames"] and 0 <= r["phone_real"] <= r["phone_frames"] for r in records)
    frames = sum(r["phone_frames"] for r in records)
    assert sum(r["phone_converted"] for r in records) / frames == pytest.approx(result["phone_accuracy_converted"])
    assert phone_ratio(records)["phone_accuracy_ratio"] == pytest.approx(result["phone_accuracy_ratio"])
    seen_real = sum(r["phone_real"] for r in seen) / sum(r["phone_frames"] for r in seen)
    assert phone_ratio(seen)["phone_accuracy_real"] == pytest.approx(seen_real)
    assert phone_ratio([]) == {}
    # the default evaluation reads two manifests: the training speakers' and the unseen speaker's, each a group
    assert result["to_train_conversions"] == result["seen_conversions"]
    assert result["to_unseen_labelled_target"] == pytest.approx(result["unseen_labelled_target"])
    assert result["to_train_labelled_source_ci_high"] == pytest.approx(result["seen_labelled_source_ci_high"])
    assert 0 < result["to_unseen_phone_accuracy_ratio"] < 2
    # more references for seen targets only: every seen conversion carries two, every unseen one
    more = seqae.evaluate(adain_run, write=False, overrides=["eval.seen_references=2"])
    assert (more["seen_references_per_conversion"], more["unseen_references_per_conversion"]) == (2, 1)
    assert sorted({(r["seen"], len(r["references"])) for r in more["records"]}) == [(False, 1), (True, 2)]
    # the records where asked (a plain and a fitted evaluation of one run side by side), the run's own kept
    kept, figures = (adain_run / "eval_records.jsonl").read_bytes(), (adain_run / "eval.json").read_bytes()
    fitted = seqae.evaluate(adain_run, write=False, overrides=["eval.seen_references=2"], records=tmp_path / "more.jsonl")
    assert "records" not in fitted and fitted["records_file"] == str(tmp_path / "more.jsonl")
    assert [json.loads(line) for line in (tmp_path / "more.jsonl").read_text().splitlines()] == more["records"]
    assert (adain_run / "eval_records.jsonl").read_bytes() == kept and (adain_run / "eval.json").read_bytes() == figures
    assert main(["eval", str(adain_run), "--records", str(tmp_path / "cli.jsonl"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["records_file"] == str(tmp_path / "cli.jsonl")
    assert (tmp_path / "cli.jsonl").read_bytes() == kept and (adain_run / "eval_records.jsonl").read_bytes() == kept
    for where in (tmp_path / "none" / "r.jsonl", tmp_path):
        assert main(["eval", str(adain_run), "--records", str(where)]) == 1
        assert "--records" in (err := capsys.readouterr().err) and "give a file in an existing folder" in err
    with pytest.raises(seqae.config.ConfigError, match="--records: a 'autoencoder' run takes no per-item records file"):
        seqae.api.check_eval_options(seqae.registry.get_family("autoencoder"), {"records": "r.jsonl"})
    with pytest.raises(seqae.config.ConfigError, match="eval.unseen_references must be positive"):
        seqae.evaluate(adain_run, write=False, overrides=["eval.unseen_references=-1"])
    with pytest.raises(seqae.config.ConfigError, match="eval.adapt_steps must be >= 0 and eval.adapt_rate positive"):
        seqae.evaluate(adain_run, write=False, overrides=["eval.adapt_rate=0"])
    out = tmp_path / "out.wav"
    assert main(["convert", str(adain_run), "--source", str(train.parent / "low_0.wav"), "--target", str(train.parent / "high_1.wav"),
                 "--target", str(unseen.parent / "new_2.wav"), "-o", str(out)]) == 0
    wave, rate = soundfile.read(str(out))
    source, _ = soundfile.read(str(train.parent / "low_0.wav"))
    assert rate == RATE and abs(len(wave) - len(source)) <= 160
    assert np.abs(wave).max() > 0.01  # not silent
    mel = np.load(out.with_suffix(".npy"))
    assert mel.shape[0] == 40 and np.isfinite(mel).all()
    assert out.with_suffix(".png").stat().st_size > 0
    codes = tmp_path / "content.npy"
    assert main(["codes", str(adain_run), "-i", str(train.parent / "low_0.wav"), "-o", str(codes)]) == 0
    assert np.load(codes).shape[1] == 8
    assert main(["codes", str(adain_run), "-i", str(train.parent / "low_0.wav"), "-o", str(codes), "--kind", "speaker"]) == 0
    assert np.load(codes).shape == (16,)
    names = {p.name for p in seqae.plot(adain_run)}
    assert {"training_curves.png", "conversion.png", "speaker_map.png"} <= names


def test_adversarial_variant_alternates_and_converts_to_training_speakers(vc_corpus, tmp_path):
    train, _ = vc_corpus
    run = seqae.train(tiny_vc_recipe(tmp_path, vc_corpus, "adversarial"), out=tmp_path / "run")
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {"adversary_loss", "adversary_accuracy", "model_l1", "model_confusion"} <= records[-1].keys()
    result = seqae.evaluate(run)
    assert "unseen_labelled_target" not in result and "unseen_note" in result
    assert 0.0 <= result["seen_labelled_target"] <= 1.0 and 0.0 <= result["resynthesis_labelled_source"] <= 1.0
    out = tmp_path / "adv.wav"
    assert main(["convert", str(run), "--source", str(train.parent / "low_0.wav"), "--target-speaker", "high", "-o", str(out)]) == 0
    assert np.abs(soundfile.read(str(out))[0]).max() > 0.01


def test_griffin_lim_resynthesises_a_tone_at_its_pitch():
    from seqae.audio import LogMel, MelConfig
    from seqae.vocoder import get_vocoder

    config = MelConfig()
    t = np.arange(RATE) / RATE
    tone = torch.from_numpy((0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32))
    wave = get_vocoder("griffin_lim", config, n_iter=16)(LogMel(config)(tone)[0]).numpy()
    spectrum = np.abs(np.fft.rfft(wave))
    assert abs(np.argmax(spectrum) * RATE / len(wave) - 440) < 15


# -- bad input ---------------------------------------------------------------------------------------


def test_convert_rejects_bad_audio_and_other_runs_by_name(adain_run, vc_corpus, tmp_path, capsys):
    train, _ = vc_corpus
    good = str(train.parent / "low_0.wav")
    out = tmp_path / "keep.wav"
    out.write_bytes(b"previous result")
    silent = tmp_path / "silent.wav"
    soundfile.write(str(silent), np.zeros(RATE, np.float32), RATE)
    short = tmp_path / "short.wav"
    soundfile.write(str(short), (0.3 * np.random.default_rng(0).standard_normal(400)).astype(np.float32), RATE)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00not audio at all")
    cases = [
        (["--source", str(silent), "--target", good], "silent.wav: silent"),
        (["--source", good, "--target", str(silent)], "silent.wav: silent"),
        (["--source", str(short), "--target", good], "short.wav"),
        (["--source", str(corrupt), "--target", good], "corrupt.wav: cannot decode"),
        (["--source", good], "--target"),
    ]
    for args, message in cases:
        assert main(["convert", str(adain_run), *args, "-o", str(out)]) == 1
        assert message in capsys.readouterr().err
        assert out.read_bytes() == b"previous result"
    # stereo at 44.1 kHz, shorter than a training segment: handled (mixed down, resampled)
    t = np.arange(int(44100 * 0.25)) / 44100
    stereo = tmp_path / "stereo.wav"
    soundfile.write(str(stereo), np.stack([np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 330 * t)], 1).astype(np.float32) * 0.3, 44100)
    assert main(["convert", str(adain_run), "--source", str(stereo), "--target", good, "-o", str(tmp_path / "s.wav")]) == 0
    assert soundfile.read(str(tmp_path / "s.wav"))[1] == RATE
    # a run of another family
    other = seqae.train(write_recipe(tmp_path, "[model]\nfamily = \"autoencoder\"\nhidden = [8]\n[data]\nsource = \"digits\"\n"
                                     "[train]\nsteps = 2\nbatch_size = 16\n", "ae.toml"), out=tmp_path / "ae")
    assert main(["convert", str(other), "--source", good, "--target", good, "-o", str(out)]) == 1
    assert "'autoencoder' run" in capsys.readouterr().err


def test_a_manifest_without_speakers_is_an_error_naming_the_line(tmp_path, vc_corpus, capsys):
    train, _ = vc_corpus
    lines = train.read_text().splitlines()
    record = json.loads(lines[3])
    del record["speaker"]
    lines[3] = json.dumps(record)
    bad = train.parent / "nospeaker.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    recipe = write_recipe(tmp_path, TINY_VC.replace("METHOD", "adain").replace("TRAIN", str(bad)).replace("UNSEEN", str(bad)))
    assert main(["train", str(recipe), "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:4" in err and "speaker" in err and "Traceback" not in err, err


def test_the_shipped_recipes_validate():
    from seqae.config import load_recipe

    from conftest import ROOT

    for name in ("adain_vc_speech", "adversarial_vc_speech", "adain_vc_source_filter"):
        recipe = load_recipe(ROOT / "recipes" / f"{name}.toml", check_paths=False)
        assert recipe.family == "voice_conversion"
        assert recipe.model.method == name.split("_")[0]
    # the recipe that meets every goal: a seen target from five utterances, an unseen one from one
    recipe = load_recipe(ROOT / "recipes" / "adain_vc_source_filter.toml", check_paths=False)
    assert (recipe.eval.seen_references, recipe.eval.unseen_references, recipe.eval.references) == (5, 0, 1)
    assert recipe.model.pitch == "source_filter" and recipe.eval.pitch_range == "target"
    # the wider-voice recipe: the same model and training on another corpus, every target one-shot, the vector fitted
    wide = load_recipe(ROOT / "recipes" / "adain_vc_wide_voices.toml", check_paths=False)
    assert (wide.model, wide.train) == (recipe.model, recipe.train)
    assert Path(wide.data.source).parent.name == "vc_wide" and Path(wide.eval.unseen_manifest).name == "unseen_test.jsonl"
    assert (wide.eval.references, wide.eval.seen_references, wide.eval.unseen_references) == (1, 0, 0)
    assert (wide.eval.adapt_steps, wide.eval.adapt_rate, wide.eval.conversions) == (50, 0.1, 300)


def test_figures_by_target_manifest_name_each_manifest_and_count_its_conversions():
    utts = [Utterance(None, speaker, where=f"{path}:{i + 1}") for i, (speaker, path) in enumerate(
        [("a", "x/test.jsonl"), ("b", "x/test.jsonl"), ("c", "y/test.jsonl"), ("d", "held-out voices.jsonl"), ("a", "y/test.jsonl")])]
    scored = [("a", "b", "a", 6.0), ("b", "a", "a", 4.0), ("c", "a", "c", 8.0), ("d", "a", "d", 2.0), ("d", "b", "b", 6.0)]
    records = [{"target_speaker": t, "source_speaker": s, "labelled_as": lab, "phone_frames": 10, "phone_real": 8.0, "phone_converted": c}
               for t, s, lab, c in scored]
    result = {}
    by_target_manifest(utts, records, result)
    # two manifests called test.jsonl: named with their folder; 'a' counts in its first manifest
    assert result["to_x_test_conversions"] == 2 and result["to_y_test_conversions"] == 1 and result["to_held_out_voices_conversions"] == 2
    assert result["to_x_test_labelled_target"] == 0.5 and result["to_x_test_labelled_source"] == 0.5
    assert result["to_held_out_voices_labelled_target"] == 0.5 and result["to_held_out_voices_labelled_source"] == 0.5
    assert result["to_held_out_voices_phone_accuracy_ratio"] == pytest.approx(8 / 16)
    assert result["to_y_test_labelled_target_ci_low"] < 1.0 == result["to_y_test_labelled_target"]
    same = [Utterance(None, speaker, where=f"{path}:1") for speaker, path in [("a", "x/a-b.jsonl"), ("b", "x/a_b.jsonl")]]
    both = {}
    by_target_manifest(same, records[:2], both)  # one folder, names alike: numbered by their place
    assert both["to_x_a_b_1_conversions"] == both["to_x_a_b_2_conversions"] == 1
    one = {}
    by_target_manifest(utts[:2], records[:2], one)
    assert one == {}  # one manifest: nothing beside the seen and unseen groups
