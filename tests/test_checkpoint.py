import os

import pytest
import torch

import seqae
from seqae import checkpoint
from seqae.checkpoint import CheckpointError, atomic_write, recover, save_checkpoint


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from conftest import TINY_AE

    tmp = tmp_path_factory.mktemp("trained")
    recipe = tmp / "tiny.toml"
    recipe.write_text(TINY_AE)
    return seqae.train(recipe, out=tmp / "run")


def copy_run(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_load_rebuilds_the_model_and_its_recipe(trained):
    model = seqae.load(trained)
    assert model.recipe.family == "autoencoder"
    assert model.trained_steps == 40
    assert not model.training
    x = torch.rand(3, 64)
    assert model.encode(x).shape == (3, 8)


def test_truncated_weights_name_the_file(trained, tmp_path):
    run = copy_run(trained, tmp_path / "run")
    data = (run / "model.safetensors").read_bytes()
    (run / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"model\.safetensors: corrupt or truncated"):
        seqae.load(run)


def test_altered_weights_header_names_the_file(trained, tmp_path):
    run = copy_run(trained, tmp_path / "run")
    data = bytearray((run / "model.safetensors").read_bytes())
    data[10:20] = b"\xff" * 10
    (run / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"model\.safetensors"):
        seqae.load(run)


def test_config_that_disagrees_with_the_weights_is_reported(trained, tmp_path):
    run = copy_run(trained, tmp_path / "run")
    text = (run / "config.toml").read_text().replace("hidden = [32, 8]", "hidden = [32, 16]")
    (run / "config.toml").write_text(text)
    with pytest.raises(
        CheckpointError, match=r"config\.toml does not match .*model\.safetensors.*shape \(8, 32\) in the weights but \(16, 32\)"
    ):
        seqae.load(run)


def test_run_of_another_family_is_reported(trained, tmp_path):
    run = copy_run(trained, tmp_path / "run")
    with pytest.raises(CheckpointError, match="a 'autoencoder' run, but a 'vae' model was asked for"):
        seqae.load(run, family="vae")
    tensors, _ = checkpoint.read_model_file(run / "model.safetensors")
    (run / "model.safetensors").write_bytes(checkpoint.model_bytes(tensors, "vae", 40))
    with pytest.raises(CheckpointError, match="weights of family 'vae', but config.toml says 'autoencoder'"):
        seqae.load(run)


def test_missing_files_are_named(trained, tmp_path):
    run = copy_run(trained, tmp_path / "run")
    os.remove(run / "trainer_state.pt")
    with pytest.raises(CheckpointError, match=r"trainer_state\.pt: missing; cannot resume"):
        checkpoint.load_for_resume(run, "autoencoder")
    os.remove(run / "config.toml")
    with pytest.raises(CheckpointError, match=r"config\.toml: missing"):
        seqae.load(run)
    with pytest.raises(CheckpointError, match="no such run directory"):
        seqae.load(tmp_path / "nothing")


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "file.bin"
    atomic_write(target, b"old")

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(CheckpointError, match="No space left on device.*previous version is intact"):
        atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert not list(tmp_path.glob("*.tmp"))


def test_interrupted_commit_is_rolled_forward(tmp_path):
    weights = {"w": torch.ones(2)}
    save_checkpoint(tmp_path, weights, {"x": 1}, "autoencoder", step=10)

    class Crash(Exception):
        pass

    def crash_between_renames():
        os.replace(tmp_path / "trainer_state.pt.tmp", tmp_path / "trainer_state.pt")
        raise Crash

    with pytest.raises(Crash):
        save_checkpoint(tmp_path, {"w": torch.full((2,), 2.0)}, {"x": 2}, "autoencoder", step=20,
                        before_commit=crash_between_renames)
    recover(tmp_path)
    tensors, state = checkpoint.load_for_resume(tmp_path, "autoencoder")
    assert state["step"] == 20 and tensors["w"].tolist() == [2.0, 2.0]


def test_crash_before_commit_keeps_the_previous_checkpoint(tmp_path):
    save_checkpoint(tmp_path, {"w": torch.ones(2)}, {}, "autoencoder", step=10)

    def crash():
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        save_checkpoint(tmp_path, {"w": torch.zeros(2)}, {}, "autoencoder", step=20, before_commit=crash)
    tensors, state = checkpoint.load_for_resume(tmp_path, "autoencoder")
    assert state["step"] == 10 and tensors["w"].tolist() == [1.0, 1.0]
    assert not list(tmp_path.glob("*.tmp"))
