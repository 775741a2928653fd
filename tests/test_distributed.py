"""torchrun data parallelism on 2 CPU processes (gloo) against one process with the same global batch."""

import os
import subprocess
import sys

import torch
from safetensors.torch import load_file

import seqae
from seqae.checkpoint import read_metrics

from conftest import ROOT


def torchrun(args, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "seqae.cli", *args]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def test_two_processes_match_one_process_with_the_same_global_batch(tiny_recipe, tmp_path):
    overrides = ["--set", "train.steps=12", "--set", "train.checkpoint_every=6", "--set", "train.log_every=3"]
    proc = torchrun(["train", str(tiny_recipe), "--out", str(tmp_path / "ddp"), *overrides], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    single = seqae.train(
        tiny_recipe, out=tmp_path / "single", overrides={"train.steps": 12, "train.checkpoint_every": 6, "train.log_every": 3}
    )

    a, b = load_file(single / "model.safetensors"), load_file(tmp_path / "ddp" / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-4, atol=2e-5)
    # the logged loss is averaged over both ranks, so it equals the single process's
    ddp_losses = [r["loss"] for r in read_metrics(tmp_path / "ddp")]
    single_losses = [r["loss"] for r in read_metrics(single)]
    assert len(ddp_losses) == len(single_losses) == 4
    for x, y in zip(ddp_losses, single_losses):
        assert abs(x - y) < 1e-5 * max(1.0, abs(y))
    # only rank 0 wrote: one line per logged step, no temporary files
    assert not list((tmp_path / "ddp").glob("*.tmp"))
