"""End-to-end quality of the speech families on the synthesised corpora (slow: about an hour each on
2 CPU cores). Each builds its corpus if ``data/`` lacks it, trains the recipe and checks the figures
that the README reports against the goals."""

import pytest

import seqae
from seqae.datasets.speech_synth import synthesise_corpus

from conftest import ROOT

pytestmark = pytest.mark.slow


def corpus(name: str, speakers: int, unseen: int, utterances: int, **options):
    folder = ROOT / "data" / name
    if not (folder / "train.jsonl").exists():
        synthesise_corpus(folder, speakers, utterances, ROOT / "data" / "austen", test_speakers=unseen, **options)
    return folder


@pytest.fixture(scope="module")
def adain_eval(tmp_path_factory):
    corpus("vc", 64, 8, 100, distinct_timbres=True)
    run = seqae.train(ROOT / "recipes" / "adain_vc_speech.toml", out=tmp_path_factory.mktemp("adain") / "run")
    return seqae.evaluate(run)


def test_adain_vc_figures_that_meet_their_goals(adain_eval):
    r = adain_eval
    assert r["speaker_classifier_accuracy_real"] >= 0.95  # the judge itself
    assert r["seen_labelled_source"] <= 0.05 and r["unseen_labelled_source"] <= 0.05
    assert r["seen_mcd_below_source_share"] >= 0.90 and r["unseen_mcd_below_source_share"] >= 0.90
    assert r["phone_accuracy_ratio"] >= 0.85
    assert r["speaker_from_content_mean_std"] <= 2 * r["chance"]
    assert r["seen_labelled_target"] > 0.4 and r["unseen_labelled_target"] > 10 * r["chance"]


@pytest.mark.xfail(strict=True, reason="not met at the CPU budget of the recipe: see the README's voice-conversion results")
def test_adain_vc_goals_not_yet_met(adain_eval):
    r = adain_eval
    assert r["seen_labelled_target"] >= 0.90
    assert r["unseen_labelled_target"] >= 0.50
    assert r["speaker_from_speaker_code"] >= 0.95


@pytest.fixture(scope="module")
def source_filter_run(tmp_path_factory):
    corpus("vc", 64, 8, 100, distinct_timbres=True)
    return seqae.train(ROOT / "recipes" / "adain_vc_source_filter.toml", out=tmp_path_factory.mktemp("source_filter") / "run")


def test_adain_vc_source_filter_meets_every_goal(source_filter_run):
    r = seqae.evaluate(source_filter_run)
    # the recipe's evaluation: a seen target from five of its utterances, an unseen one from one (one-shot)
    assert r["seen_references_per_conversion"] == 5 and r["unseen_references_per_conversion"] == 1
    assert r["seen_speakers"] >= 60 and r["unseen_speakers"] >= 8
    assert r["speaker_classifier_accuracy_real"] >= 0.95  # the judge itself
    assert r["seen_labelled_target"] >= 0.90 and r["seen_labelled_source"] <= 0.05
    assert r["unseen_labelled_target"] >= 0.50 and r["unseen_labelled_source"] <= 0.05
    assert r["unseen_mcd_below_source_share"] >= 0.90 and r["seen_mcd_below_source_share"] >= 0.90
    assert r["phone_accuracy_ratio"] >= 0.85
    assert r["speaker_from_content_mean_std"] <= 2 * r["chance"]
    assert r["speaker_from_speaker_code"] >= 0.95


def test_adain_vc_source_filter_one_shot_seen_targets(source_filter_run):
    r = seqae.evaluate(source_filter_run, write=False, overrides=["eval.seen_references=1"])
    assert r["seen_references_per_conversion"] == 1
    # one utterance of a training voice: a little short of the goal (README: 88.5 %)
    assert 0.85 <= r["seen_labelled_target"] and r["seen_labelled_source"] <= 0.05


def test_cpc_probes_beat_single_frame_log_mel(tmp_path):
    corpus("speech", 12, 2, 250)
    run = seqae.train(ROOT / "recipes" / "cpc_speech.toml", out=tmp_path / "run")
    r = seqae.evaluate(run, manifest=str(ROOT / "data" / "speech" / "test.jsonl"))
    print(f"CPC run {run}: " + ", ".join(f"{k} {v:.3f}" for k, v in r.items() if "accuracy" in k))
    assert r["phone_accuracy_cpc"] > r["phone_accuracy_cpc_random"]
    assert r["phone_accuracy_cpc"] > r["phone_accuracy_logmel"]
