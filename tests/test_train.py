import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import seqae
from seqae import checkpoint
from seqae.checkpoint import CheckpointError, read_metrics
from seqae.config import TrainConfig
from seqae.trainer import TrainingError, lr_factor


def losses(run_dir):
    return [(r["step"], r["loss"]) for r in read_metrics(run_dir) if "loss" in r]


def test_training_writes_a_complete_run_directory(tiny_recipe, tmp_path):
    run = seqae.train(tiny_recipe, out=tmp_path / "run")
    for name in ("config.toml", "model.safetensors", "trainer_state.pt", "metrics.jsonl"):
        assert (run / name).is_file(), name
    assert not list(run.glob("*.tmp"))
    records = read_metrics(run)
    assert [r["step"] for r in records if "loss" in r] == list(range(5, 41, 5))
    first = records[0]
    assert {"step", "loss", "mse", "lr", "samples_per_s"} <= first.keys()
    assert first["samples_per_s"] > 0
    state = torch.load(run / "trainer_state.pt", weights_only=False)
    assert state["step"] == 40 and state["finished"]
    assert {"python", "numpy", "torch"} <= state["rng"].keys()


def test_loss_goes_down_on_digits(tiny_recipe, tmp_path):
    run = seqae.train(tiny_recipe, out=tmp_path / "run", overrides={"train.steps": 150})
    curve = losses(run)
    assert curve[-1][1] < 0.6 * curve[0][1]


class Killed(Exception):
    pass


@pytest.mark.parametrize("noise", ["none", "gaussian"])
def test_resume_gives_the_same_losses_and_weights_as_an_uninterrupted_run(tiny_recipe, tmp_path, monkeypatch, noise):
    # with denoising noise the run also depends on the torch RNG, which the checkpoint must restore
    overrides = {"model.noise": noise, "model.noise_level": 0.2}
    full = seqae.train(tiny_recipe, out=tmp_path / "full", overrides=overrides)

    from seqae.families.autoencoder.model import Autoencoder

    original = Autoencoder.forward
    calls = {"n": 0}

    def dies_at_step_26(self, batch):
        calls["n"] += 1
        if calls["n"] > 25:
            raise Killed()
        return original(self, batch)

    monkeypatch.setattr(Autoencoder, "forward", dies_at_step_26)
    run = tmp_path / "run"
    with pytest.raises(Killed):
        seqae.train(tiny_recipe, out=run, overrides=overrides)
    assert checkpoint.checkpoint_step(run) == 20
    assert max(step for step, _ in losses(run)) == 25  # logged after the checkpoint, to be redone
    monkeypatch.setattr(Autoencoder, "forward", original)

    seqae.train(tiny_recipe, out=run, overrides=overrides, resume=True)
    assert losses(run) == losses(full)
    a, b = load_file(full / "model.safetensors"), load_file(run / "model.safetensors")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0)


def test_resuming_a_finished_run_changes_nothing(tiny_recipe, tmp_path):
    run = seqae.train(tiny_recipe, out=tmp_path / "run")
    before = (run / "model.safetensors").read_bytes()
    seqae.train(tiny_recipe, out=run, resume=True)
    assert (run / "model.safetensors").read_bytes() == before


def test_existing_run_is_never_overwritten(tiny_recipe, tmp_path):
    run = seqae.train(tiny_recipe, out=tmp_path / "run")
    before = (run / "model.safetensors").read_bytes()
    with pytest.raises(CheckpointError, match=r"already holds a trained run; pass --resume \(in Python: resume=True\)"):
        seqae.train(tiny_recipe, out=run)
    assert (run / "model.safetensors").read_bytes() == before


def test_resume_with_a_different_recipe_is_refused(tiny_recipe, tmp_path):
    run = seqae.train(tiny_recipe, out=tmp_path / "run")
    with pytest.raises(seqae.ConfigError, match="differs from the run being resumed in model.hidden"):
        seqae.train(tiny_recipe, out=run, overrides={"model.hidden": [16, 4]}, resume=True)


@pytest.mark.parametrize("every_step", [True, False], ids=["checked-every-step", "checked-at-log-steps"])
def test_nan_loss_stops_with_a_message_and_keeps_the_last_checkpoint(tiny_recipe, tmp_path, monkeypatch, every_step):
    """On the CPU the check runs every step; on an accelerator (here imitated) only before a log line,
    an evaluation or a checkpoint: training runs on past the bad step, yet names it and keeps step 20's
    checkpoint."""
    from seqae import runtime
    from seqae.families.autoencoder.model import Autoencoder

    class Watch(runtime.FiniteWatch):
        def __init__(self, device):
            super().__init__(device)
            self.every_step = every_step

    monkeypatch.setattr("seqae.trainer.FiniteWatch", Watch)

    original = Autoencoder.forward
    calls = {"n": 0}

    def poisoned(self, batch):
        calls["n"] += 1
        out = original(self, batch)
        if calls["n"] > 25:
            out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(Autoencoder, "forward", poisoned)
    run = tmp_path / "run"
    with pytest.raises(TrainingError, match=r"loss became nan at step 26.*last good checkpoint \(step 20\)"):
        seqae.train(tiny_recipe, out=run)
    assert (calls["n"] == 26) if every_step else (calls["n"] > 26)
    assert checkpoint.checkpoint_step(run) == 20
    model = seqae.load(run)  # still loads, finite weights
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_gradient_accumulation_matches_one_big_batch(tiny_recipe, tmp_path):
    a = seqae.train(tiny_recipe, out=tmp_path / "a", overrides={"train.steps": 10})
    b = seqae.train(tiny_recipe, out=tmp_path / "b", overrides={"train.steps": 10, "train.grad_accum": 4})
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    for name in wa:
        torch.testing.assert_close(wa[name], wb[name], rtol=1e-4, atol=1e-5)


def test_learning_rate_warms_up_then_decays_to_the_floor():
    config = TrainConfig(steps=100, warmup_steps=10, min_lr_ratio=0.1)
    factors = [lr_factor(s, 100, config) for s in range(100)]
    assert factors[0] == pytest.approx(0.1)
    assert factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[9:], factors[10:]))
    assert factors[-1] == pytest.approx(0.1, abs=1e-3)
    assert lr_factor(50, 100, TrainConfig(schedule="constant", warmup_steps=10)) == 1.0


def test_metrics_log_is_json_lines(tiny_recipe, tmp_path):
    run = seqae.train(tiny_recipe, out=tmp_path / "run", overrides={"train.eval_every": 20})
    lines = (run / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    evals = [r for r in records if "eval_loss" in r]
    assert [r["step"] for r in evals] == [20, 40]
    assert all(math.isfinite(r["eval_loss"]) for r in evals)


def test_bf16_on_the_cpu_is_a_clear_error(tiny_recipe, tmp_path):
    with pytest.raises(TrainingError, match="bf16.*needs a CUDA device"):
        seqae.train(tiny_recipe, out=tmp_path / "run", overrides={"train.precision": "bf16"})


def test_off_a_terminal_training_prints_plain_progress_lines(tmp_path, capsys, monkeypatch):
    """With output to a file (no terminal) a progress line at log steps, at most every
    SEQAE_PROGRESS_SECONDS: step, loss, samples/s, elapsed and time left; a short run prints none."""
    from tiny import TINY_AE, write_recipe

    monkeypatch.setenv("SEQAE_PROGRESS_SECONDS", "0")
    recipe = write_recipe(tmp_path, TINY_AE)
    seqae.train(recipe, out=tmp_path / "run", overrides=["train.steps=6", "train.log_every=2"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in lines] == ["2/6", "4/6", "6/6"]
    assert all("loss" in line and "samples/s" in line and "left about" in line for line in lines)
    monkeypatch.setenv("SEQAE_PROGRESS_SECONDS", "3600")
    seqae.train(recipe, out=tmp_path / "run2", overrides=["train.steps=6", "train.log_every=2"])
    assert not [line for line in capsys.readouterr().err.splitlines() if line.startswith("step ")]


def test_tensorboard_scalars_are_the_metrics_log(tmp_path, capsys, monkeypatch):
    """--tensorboard (train.tensorboard): every number of metrics.jsonl as a scalar at its step, read back
    from the event files; without the package, a clear error before any step."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from seqae.cli import main

    from tiny import TINY_AE, write_recipe

    recipe = write_recipe(tmp_path, TINY_AE)
    out = tmp_path / "run"
    assert main(["train", str(recipe), "--out", str(out), "--tensorboard", "--set", "train.steps=6", "--set", "train.log_every=2",
                 "--set", "train.eval_every=3"]) == 0
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    records = read_metrics(out)
    for name in ("loss", "lr", "eval_loss"):
        logged = [(r["step"], r[name]) for r in records if name in r]
        scalars = [(e.step, e.value) for e in events.Scalars(name)]
        assert len(logged) >= 2 and [s for s, _ in scalars] == [s for s, _ in logged]
        assert [v for _, v in scalars] == pytest.approx([v for _, v in logged], rel=1e-6)
    images = events.Tags()["images"]  # the family's figures (seqae plot's) at the last step
    assert {"figures/training_curves", "figures/reconstructions"} <= set(images), images
    shown = events.Images("figures/reconstructions")
    assert 3 in [i.step for i in shown]  # at the evaluation step as well as at the end
    assert shown[-1].step == 6 and shown[-1].width > 100 and shown[-1].height > 100
    # drawing the figures mid-run leaves training as it was: the same run without TensorBoard logs the same
    assert main(["train", str(recipe), "--out", str(tmp_path / "plain"), "--set", "train.steps=6", "--set", "train.log_every=2",
                 "--set", "train.eval_every=3"]) == 0
    assert [r.get("loss") for r in read_metrics(tmp_path / "plain")] == [r.get("loss") for r in records]
    # the test split's codes in the embedding projector, one metadata row (the digit) per vector
    assert "codes" in (out / "tensorboard" / "projector_config.pbtxt").read_text()
    vectors = (out / "tensorboard" / "00006" / "codes" / "tensors.tsv").read_text().splitlines()
    labels = (out / "tensorboard" / "00006" / "codes" / "metadata.tsv").read_text().splitlines()
    assert len(vectors) == len(labels) > 100 and len(vectors[0].split("\t")) == 8 and set(labels) <= set("0123456789")
    assert (out / "tensorboard" / "00006" / "codes" / "sprite.png").stat().st_size > 1000  # the digits as thumbnails
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real_find_spec(name, *a))
    capsys.readouterr()
    assert main(["train", str(recipe), "--out", str(tmp_path / "r2"), "--tensorboard"]) == 1
    assert "pip install 'seqae[tensorboard]'" in capsys.readouterr().err and not (tmp_path / "r2").exists()


def test_figures_at_evaluation_steps_leave_every_random_stream_as_it_was(tmp_path):
    import random

    from seqae.runtime import tensorboard_at_evaluation

    model = torch.nn.Linear(2, 2).train()

    def figures(folder):  # draws from every stream, and leaves the model in evaluation mode
        model.eval()
        return [torch.rand(1), np.random.rand(), random.random()] and []

    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    tensorboard_at_evaluation(tmp_path, model, figures)(5)
    drawn = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(drawn[0], expected[0]) and np.array_equal(drawn[1], expected[1]) and drawn[2] == expected[2]
    assert model.training


def test_tensorboard_audio_is_the_clip(tmp_path):
    """Clips (voice conversion's source, target and converted WAVs) as TensorBoard audio, read back."""
    import soundfile
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from seqae.runtime import tensorboard_media

    clip = tmp_path / "clip_1_converted.wav"
    soundfile.write(clip, 0.5 * np.sin(np.arange(8000) / 8000 * 2 * np.pi * 440), 16000)
    tensorboard_media(tmp_path / "run", [clip], 7)
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    heard = events.Audio("audio/clip_1_converted")
    assert len(heard) == 1 and heard[0].step == 7 and heard[0].sample_rate == 16000
    assert heard[0].length_frames == 8000


def test_run_json_records_what_ran_where_and_how_long(tmp_path):
    from tiny import TINY_AE, write_recipe

    recipe = write_recipe(tmp_path, TINY_AE)
    run = seqae.train(recipe, out=tmp_path / "run", overrides=["train.steps=4"])
    seqae.train(recipe, out=run, overrides=["train.steps=6"], resume=True)
    record = json.loads((run / "run.json").read_text())
    import importlib.metadata

    assert record["provenance"]["versions"]["torch"] == importlib.metadata.version("torch")
    assert record["provenance"]["versions"]["seqae"] == seqae.__version__ and record["provenance"]["python"]
    first, second = record["sessions"]
    assert (first["step"], second["step"]) == (4, 6) and first["device"] == "cpu" and first["processes"] == 1
    assert first["wall_s"] >= 0 and first["peak_rss_mb"] > 10 and first["start"] <= second["start"]


def test_prefetch_changes_nothing_but_the_time(tiny_recipe, tmp_path):
    """train.prefetch (the next batch made in a background thread) trains the very same weights, through
    greedy pre-training's stages (each with its data: the fine-tuning sees the labelled subset),
    accumulation, evaluations and epochs (5 batches of 256 digits each)."""
    overrides = {"model.hidden": [32, 16, 8], "model.num_classes": 10, "model.pretrain_steps": 6, "train.steps": 14,
                 "train.grad_accum": 2, "train.eval_every": 5, "train.batch_size": 256}
    on = seqae.train(tiny_recipe, out=tmp_path / "on", overrides={**overrides, "train.prefetch": "on"})
    off = seqae.train(tiny_recipe, out=tmp_path / "off", overrides={**overrides, "train.prefetch": "off"})
    a, b = load_file(on / "model.safetensors"), load_file(off / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    untimed = [[{k: v for k, v in r.items() if k != "samples_per_s"} for r in checkpoint.read_metrics(run)] for run in (on, off)]
    assert untimed[0] == untimed[1] and any("eval_loss" in r for r in untimed[0])


def test_prefetch_raises_a_batchs_error_where_it_would_have_been_raised(tmp_path):
    from seqae.prefetch import Prefetch

    def bad():
        raise ValueError("line 7 of the corpus")

    ahead = Prefetch(True)
    ahead.ahead("k", bad)
    with pytest.raises(ValueError, match="line 7"):
        ahead.take("k", lambda: None)
    ahead.ahead("k", bad)
    assert ahead.take("other", lambda: 5) == 5  # a stale batch is dropped, its error with it
    ahead.close()


def test_after_a_bad_value_the_fused_optimizer_leaves_the_weights_alone():
    """The accelerator path: no check between steps, so the watch's flag, as the fused AdamW's
    found_inf, keeps the weights (and the optimizer's step count) as they were before the bad step."""
    from seqae.runtime import FiniteWatch

    weight = torch.nn.Parameter(torch.ones(4))
    opt = torch.optim.AdamW([weight], lr=0.1, fused=True)
    watch = FiniteWatch(torch.device("cpu"))
    for step, grad in enumerate([1.0, float("nan"), 1.0], start=1):
        weight.grad = torch.full((4,), grad)
        watch.note(weight.grad.norm(), step, 1)
        opt.found_inf = watch.fired()
        before = weight.detach().clone()
        opt.step()
        changed = not torch.equal(before, weight.detach())
        assert changed == (step == 1), step
    assert torch.isfinite(weight).all()
    assert watch.first_bad() == "the gradient norm became nan at step 2"


def test_compiling_on_a_cpu_without_a_cpp_compiler_is_a_clear_error(monkeypatch):
    from seqae import runtime
    from seqae.config import ConfigError

    monkeypatch.setattr(runtime.shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match=r"train.compile = true on the CPU needs a C\+\+ compiler"):
        runtime.compiled(torch.nn.Linear(2, 2), torch.device("cpu"))
