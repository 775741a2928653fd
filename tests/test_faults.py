"""Fault tolerance: SIGKILL anywhere, damaged run directories, a full disk, Ctrl-C.

The kills go through the fault points of :mod:`seqae.faults` (``SEQAE_FAULT=NAME:STEP``): the process
kills itself with SIGKILL exactly there, so each case is reproducible.
"""

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

import seqae
from seqae import checkpoint

from tiny import ROOT, seqae_cli

# denoising noise makes the run depend on the RNG too, which a resume must restore exactly
OVERRIDES = ["--set", "train.steps=40", "--set", "train.checkpoint_every=10", "--set", "train.log_every=5",
             "--set", "model.noise=\"gaussian\"", "--set", "model.noise_level=0.2"]


def weights(run):
    return load_file(run / checkpoint.MODEL_FILE)


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    from conftest import TINY_AE

    folder = tmp_path_factory.mktemp("faults")
    recipe = folder / "tiny.toml"
    recipe.write_text(TINY_AE)
    proc = seqae_cli(["train", str(recipe), "--out", str(folder / "full"), *OVERRIDES], folder)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return recipe, weights(folder / "full")


@pytest.mark.parametrize("fault, kept_step", [
    ("step:17", 10),                 # mid-step
    ("checkpoint_writing:20", 10),   # half of the new weights file written
    ("checkpoint_written:20", 10),   # both temporary files complete, nothing renamed
    ("checkpoint_commit:30", 30),    # between the two renames: rolled forward on resume
])
def test_sigkill_anywhere_then_resume_gives_the_uninterrupted_weights(uninterrupted, tmp_path, fault, kept_step):
    recipe, expected = uninterrupted
    run = tmp_path / "run"
    proc = seqae_cli(["train", str(recipe), "--out", str(run), *OVERRIDES], tmp_path, env_extra={"SEQAE_FAULT": fault})
    assert proc.returncode == -signal.SIGKILL
    # never a corrupt run directory: the last complete checkpoint loads (after rolling an interrupted commit forward)
    tensors, state = checkpoint.load_for_resume(run, "autoencoder")
    assert int(state["step"]) == kept_step
    assert not list(run.glob("*.tmp"))
    proc = seqae_cli(["train", str(recipe), "--out", str(run), "--resume", *OVERRIDES], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert_same_weights(weights(run), expected)


def test_prefetch_killed_mid_step_resumes_to_the_same_weights(uninterrupted, tmp_path):
    """With train.prefetch on, a batch made ahead dies with the process; the resumed run makes it again."""
    recipe, expected = uninterrupted
    run, ahead = tmp_path / "run", ["--set", 'train.prefetch="on"']
    proc = seqae_cli(["train", str(recipe), "--out", str(run), *OVERRIDES, *ahead], tmp_path, env_extra={"SEQAE_FAULT": "step:17"})
    assert proc.returncode == -signal.SIGKILL
    proc = seqae_cli(["train", str(recipe), "--out", str(run), "--resume", *OVERRIDES, *ahead], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert_same_weights(weights(run), expected)


@pytest.mark.skipif(not any(shutil.which(c) for c in ("g++", "c++", "clang++")), reason="torch.compile on the CPU needs a C++ compiler")
def test_a_compiled_run_killed_mid_step_resumes_to_its_uninterrupted_weights(uninterrupted, tmp_path):
    """train.compile: the compiled steps train the eager model's parameters, so a checkpoint and a resume
    (which compiles again) are exact."""
    recipe, eager = uninterrupted
    on = [*OVERRIDES, "--set", "train.compile=true"]
    full, run = tmp_path / "full", tmp_path / "run"
    proc = seqae_cli(["train", str(recipe), "--out", str(full), *on], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = seqae_cli(["train", str(recipe), "--out", str(run), *on], tmp_path, env_extra={"SEQAE_FAULT": "step:17"})
    assert proc.returncode == -signal.SIGKILL
    proc = seqae_cli(["train", str(recipe), "--out", str(run), "--resume", *on], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert_same_weights(weights(run), weights(full))
    # not the eager run's weights (Inductor draws the denoising noise with its own generator), but it learned as much
    assert any(not torch.equal(tensor, eager[name]) for name, tensor in weights(full).items())
    compiled, plain = (checkpoint.read_metrics(folder)[-1]["loss"] for folder in (full, recipe.parent / "full"))
    assert compiled < 1.5 * plain and compiled < checkpoint.read_metrics(full)[0]["loss"]


def test_killed_twice_still_ends_with_the_same_weights(uninterrupted, tmp_path):
    recipe, expected = uninterrupted
    run = tmp_path / "run"
    assert seqae_cli(["train", str(recipe), "--out", str(run), *OVERRIDES], tmp_path, env_extra={"SEQAE_FAULT": "step:13"}).returncode == -9
    assert seqae_cli(["train", str(recipe), "--out", str(run), "--resume", *OVERRIDES], tmp_path,
                     env_extra={"SEQAE_FAULT": "checkpoint_written:30"}).returncode == -9
    assert seqae_cli(["train", str(recipe), "--out", str(run), "--resume", *OVERRIDES], tmp_path).returncode == 0
    assert_same_weights(weights(run), expected)


@pytest.fixture
def trained(uninterrupted, tmp_path):
    recipe, _ = uninterrupted
    run = tmp_path / "run"
    short = [o.replace("train.steps=40", "train.steps=20") for o in OVERRIDES]
    assert seqae_cli(["train", str(recipe), "--out", str(run), *short], tmp_path).returncode == 0
    return recipe, run


def snapshot(run):
    """Every file of the run but the lock (which records the process that last trained it)."""
    return {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != checkpoint.LOCK_FILE}


@pytest.mark.parametrize("damage, named", [
    ("truncate_weights", checkpoint.MODEL_FILE),
    ("alter_weights", checkpoint.MODEL_FILE),
    ("drop_state", checkpoint.STATE_FILE),
    ("truncate_state", checkpoint.STATE_FILE),
    ("edit_config", checkpoint.CONFIG_FILE),
])
def test_a_damaged_run_is_an_error_naming_the_file_and_resume_changes_nothing(trained, tmp_path, damage, named):
    recipe, run = trained
    model, state, config = run / checkpoint.MODEL_FILE, run / checkpoint.STATE_FILE, run / checkpoint.CONFIG_FILE
    if damage == "truncate_weights":
        model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    elif damage == "alter_weights":
        data = bytearray(model.read_bytes())
        data[10:20] = b"#" * 10  # inside the JSON header
        model.write_bytes(bytes(data))
    elif damage == "drop_state":
        state.unlink()
    elif damage == "truncate_state":
        state.write_bytes(state.read_bytes()[:100])
    elif damage == "edit_config":
        config.write_text(config.read_text().replace("hidden = [32, 8]", "hidden = [32, 6]"))
    before = snapshot(run)
    resume = seqae_cli(["train", str(recipe), "--out", str(run), "--resume", *OVERRIDES], tmp_path)
    assert resume.returncode != 0 and resume.returncode != -9
    assert named in resume.stderr and "Traceback" not in resume.stderr
    assert snapshot(run) == before  # the last good files are never overwritten by a failing resume
    if damage != "drop_state" and damage != "truncate_state":
        evaluation = seqae_cli(["eval", str(run), "--json"], tmp_path)
        assert evaluation.returncode == 1 and named in evaluation.stderr


def test_a_full_disk_while_checkpointing_is_an_error_and_the_previous_checkpoint_stays(trained, tmp_path):
    import resource

    recipe, run = trained
    before = snapshot(run)
    model_size = (run / checkpoint.MODEL_FILE).stat().st_size
    state_size = (run / checkpoint.STATE_FILE).stat().st_size
    assert model_size < state_size  # the optimizer's moments make the state the larger file
    limit = (model_size + state_size) // 2  # the weights fit, the trainer state does not: the disk fills mid-checkpoint

    def small_disk():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = seqae_cli(["train", str(recipe), "--out", str(run), "--resume", *OVERRIDES], tmp_path, preexec_fn=small_disk)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "could not write" in proc.stderr and checkpoint.STATE_FILE in proc.stderr and "Traceback" not in proc.stderr
    after = snapshot(run)
    for name in (checkpoint.MODEL_FILE, checkpoint.STATE_FILE):  # config.toml now asks for 40 steps: a valid resume
        assert after[name] == before[name]
    assert not list(run.glob("*.tmp"))
    assert checkpoint.checkpoint_step(run) == 20


def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(uninterrupted, tmp_path):
    recipe, expected = uninterrupted
    run = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    env.pop("SEQAE_FAULT", None)
    slow = [o.replace("train.steps=40", "train.steps=100000") for o in OVERRIDES]
    proc = subprocess.Popen([sys.executable, "-m", "seqae.cli", "train", str(recipe), "--out", str(run), *slow],
                            cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (run / checkpoint.METRICS_FILE).exists():
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted at step" in err and "--resume" in err and "Traceback" not in err
    step = checkpoint.checkpoint_step(run)
    assert step is not None and step > 0
    tensors, state = checkpoint.load_for_resume(run, "autoencoder")
    assert int(state["step"]) == step and not state["finished"]
    seqae.load(run)  # a usable model
