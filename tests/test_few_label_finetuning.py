"""Pre-training on every input, fine-tuning on a few labels (``data.labelled_per_class``): the stages see
the data they should, a resumed run is exact across the switch, and bad settings are named errors."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import seqae
from seqae.checkpoint import read_metrics
from seqae.config import ConfigError
from seqae.datasets.arrays import labelled_rows
from seqae.datasets.base import DataError
from seqae.families.autoencoder.model import Autoencoder

from conftest import write_recipe

GREEDY = """
[model]
family = "autoencoder"
hidden = [16, 4]
num_classes = 10
pretrain_steps = 6
reconstruction_weight = 0.1

[data]
source = "digits"
labelled_per_class = 3

[train]
steps = 12
batch_size = 10
warmup_steps = 2
log_every = 1
checkpoint_every = 4
"""


def test_labelled_rows_are_n_per_class_seeded_and_a_short_class_is_named():
    y = np.array([0] * 5 + [1] * 4 + [2] * 6)
    rows = labelled_rows(y, 3, seed=0, name="d")
    assert np.bincount(y[rows]).tolist() == [3, 3, 3]
    assert rows.tolist() == labelled_rows(y, 3, seed=0, name="d").tolist()
    assert rows.tolist() != labelled_rows(y, 3, seed=1, name="d").tolist()
    with pytest.raises(DataError, match="class 1 has 4 training examples, fewer than data.labelled_per_class = 5"):
        labelled_rows(y, 5, seed=0, name="d")


def test_pretraining_sees_every_input_and_fine_tuning_only_the_labelled_ones(tmp_path, monkeypatch):
    seen = []
    original = Autoencoder.forward

    def record(self, batch):
        seen.append((self.stage, batch["x"].clone()))
        return original(self, batch)

    monkeypatch.setattr(Autoencoder, "forward", record)
    run = seqae.train(write_recipe(tmp_path, GREEDY), out=tmp_path / "run")
    monkeypatch.setattr(Autoencoder, "forward", original)
    prepared = seqae.api.prepare(seqae.api.get_family("autoencoder"), seqae.api.load_recipe(run / "config.toml"))
    labelled = prepared.train.x[prepared.train.labelled]
    assert len(labelled) == 30 and len(prepared.train) > 1000
    in_labelled = lambda x: bool((torch.cdist(x, labelled).min(1).values == 0).all())  # noqa: E731
    finetune = [x for stage, x in seen if stage == "finetune"]
    pretrain = [x for stage, x in seen if stage.startswith("pretrain")]
    assert len(finetune) == 12 and all(in_labelled(x) for x in finetune)
    assert not all(in_labelled(x) for x in pretrain)  # 12 batches of 10 from 1437 inputs: surely not all labelled
    result = seqae.evaluate(run)
    assert result["labelled_examples"] == 30 and 0.0 <= result["test_accuracy"] <= 1.0


class Killed(Exception):
    pass


def test_a_resumed_run_is_exact_across_the_switch_to_the_labelled_data(tmp_path, monkeypatch):
    recipe = write_recipe(tmp_path, GREEDY)
    full = seqae.train(recipe, out=tmp_path / "full")
    original = Autoencoder.forward
    calls = {"n": 0}

    def dies(self, batch):
        calls["n"] += 1
        if calls["n"] > 22:  # the checkpoint at step 20 is in the fine-tuning stage, 8 steps after the switch
            raise Killed()
        return original(self, batch)

    monkeypatch.setattr(Autoencoder, "forward", dies)
    with pytest.raises(Killed):
        seqae.train(recipe, out=tmp_path / "run")
    monkeypatch.setattr(Autoencoder, "forward", original)
    seqae.train(recipe, out=tmp_path / "run", resume=True)
    losses = lambda run: [(r["step"], r["loss"]) for r in read_metrics(run) if "loss" in r]  # noqa: E731
    assert losses(tmp_path / "run") == losses(full)
    a, b = load_file(full / "model.safetensors"), load_file(tmp_path / "run" / "model.safetensors")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0)


def test_bad_labelled_settings_are_named(tmp_path):
    with pytest.raises(ConfigError, match="labelled_per_class must be >= 0"):
        seqae.train(write_recipe(tmp_path, GREEDY.replace("labelled_per_class = 3", "labelled_per_class = -1")), out=tmp_path / "a")
    with pytest.raises(DataError, match="fewer than one batch"):
        seqae.train(write_recipe(tmp_path, GREEDY.replace("batch_size = 10", "batch_size = 40"), "b.toml"), out=tmp_path / "b")
