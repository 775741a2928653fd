"""Set-up, security and ownership of run directories (issue: set-up broken on a fresh machine; run
directories can execute code and lose user files).

Every case is a clear error (exit status 1, the file or key named, no traceback, nothing on disk
changed) or the behaviour its test names. The tiny trained runs come from the session fixture ``runs``
(conftest.py).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile
import torch

import seqae
from seqae import atomic, checkpoint
from seqae.checkpoint import CheckpointError
from seqae.cli import main

from conftest import expect_error, run_cli
from tiny import ROOT, TINY_AE, TINY_QT, book_corpus, child_env, seqae_cli, write_recipe

SENTINEL = b"the user's own file, which must survive"


def file_size_limit(limit):
    def apply():
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def snapshot(folder):
    """Every file below ``folder`` (but the run lock, which records who trained last) and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.is_symlink() and p.name != checkpoint.LOCK_FILE}


def no_temporaries(folder):
    return not [p for p in folder.rglob("*") if p.name.endswith(".tmp") or p.name.endswith(checkpoint.TMP_SUFFIX)]


@pytest.fixture
def ae_run(tmp_path):
    """A tiny autoencoder trained for 10 steps (checkpoint at 10)."""
    recipe = write_recipe(tmp_path, TINY_AE.replace("steps = 40", "steps = 10").replace("checkpoint_every = 20", "checkpoint_every = 5"))
    return recipe, seqae.train(recipe, out=tmp_path / "run")


# -- 1. the set-up -------------------------------------------------------------------------------------


def test_torchaudio_compiled_part_loads_against_this_torch():
    """A torch/torchaudio pair that does not load fails here, in CI, not in a user's first command."""
    import torchaudio
    from torchaudio import _extension

    assert _extension._IS_TORCHAUDIO_EXT_AVAILABLE, "torchaudio's compiled extension did not load against this torch"
    assert hasattr(torch.ops.torchaudio, "_lfilter_core_loop")  # an operator registered by libtorchaudio
    base = lambda version: version.split("+")[0]  # noqa: E731
    assert base(torchaudio.__version__) == base(torch.__version__)
    waveform = torch.randn(1, 400)
    filtered = torchaudio.functional.lfilter(waveform, torch.tensor([1.0, -0.5]), torch.tensor([1.0, 0.0]))
    assert filtered.shape == waveform.shape and torch.isfinite(filtered).all()


def test_the_pair_is_pinned_exactly_in_one_place():
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = {d.split("==")[0]: d.split("==")[1] for d in deps if d.startswith(("torch==", "torchaudio=="))}
    assert pins.keys() == {"torch", "torchaudio"} and pins["torch"] == pins["torchaudio"]
    assert "*" not in pins["torch"]
    assert not [d for d in deps if d.startswith(("torch", "torchaudio")) and "==" not in d]


# -- 2. loading a run directory never runs code ---------------------------------------------------------


class Planted:
    """Unpickling this calls ``os.mkdir(marker)``: the proof that code from the file ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def plant(run, marker):
    torch.save({"format": checkpoint.STATE_FORMAT, "step": 2, "family": "autoencoder", "payload": Planted(marker)},
               run / checkpoint.STATE_FILE)


def test_a_planted_pickle_in_the_trainer_state_never_runs(runs, tmp_path, capsys):
    run = tmp_path / "ae"
    shutil.copytree(runs["ae"], run)
    marker = tmp_path / "code_ran"
    plant(run, marker)
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(0).random((4, 64)).astype(np.float32))
    recipe = write_recipe(tmp_path, TINY_AE.replace("steps = 40", "steps = 4"))
    expect_error(["train", recipe, "--out", run, "--resume"], capsys, checkpoint.STATE_FILE, "refused")
    assert not marker.exists()
    for argv in (["eval", run, "--json"], ["plot", run, "--out", tmp_path / "plots"], ["codes", run, "-i", x, "-o", tmp_path / "c.npy"],
                 ["score", run, "-i", x, "-o", tmp_path / "s.npy"]):
        code, err = run_cli(argv, capsys)
        assert code in (0, 1) and "Traceback" not in err, err
        assert not marker.exists(), argv
    seqae.load(run)
    with pytest.raises(CheckpointError, match="refused"):
        checkpoint.checkpoint_step(run)
    with pytest.raises(CheckpointError, match="refused"):
        checkpoint.load_for_resume(run, "autoencoder")
    assert not marker.exists()


@pytest.mark.parametrize("name", ["qt", "cpc", "vc"])
def test_a_planted_pickle_never_runs_for_the_other_families_commands(runs, tmp_path, capsys, name):
    run = tmp_path / name
    shutil.copytree(runs[name], run)
    marker = tmp_path / "code_ran"
    plant(run, marker)
    lines = tmp_path / "s.txt"
    lines.write_text("The ship sails.\nA letter came.\n")
    commands = {
        "qt": [["embed", run, "-i", lines, "-o", tmp_path / "e.npy"], ["eval", run, "--json"]],
        "cpc": [["codes", run, "-i", runs["wav"], "-o", tmp_path / "c.npy"]],
        "vc": [["convert", run, "--source", runs["vc_wav"], "--target", runs["vc_wav"], "-o", tmp_path / "o.wav"],
               ["codes", run, "-i", runs["vc_wav"], "-o", tmp_path / "c.npy"]],
    }[name]
    for argv in commands:
        code, err = run_cli(argv, capsys)
        assert code == 0, err
    assert not marker.exists()


def test_the_trainer_state_holds_only_what_weights_only_loading_accepts(ae_run):
    _, run = ae_run
    state = torch.load(run / checkpoint.STATE_FILE, weights_only=True)  # no allowances at all
    assert state["format"] == checkpoint.STATE_FORMAT and state["step"] == 10
    assert isinstance(state["rng"]["numpy"]["keys"], torch.Tensor)


def test_a_trainer_state_of_the_earlier_format_still_resumes_exactly(tmp_path):
    """Runs written before the change (numpy RNG state pickled as an array) resume, without an unsafe load,
    to the same weights as the same run in the current format (denoising noise: the RNG state matters)."""
    recipe = write_recipe(tmp_path, TINY_AE.replace("steps = 40", "steps = 10").replace("checkpoint_every = 20", "checkpoint_every = 5")
                          .replace('activation = "sigmoid"', 'activation = "sigmoid"\nnoise = "gaussian"\nnoise_level = 0.2'))
    run = seqae.train(recipe, out=tmp_path / "old")
    native = shutil.copytree(run, tmp_path / "native")
    state = torch.load(run / checkpoint.STATE_FILE, weights_only=True)
    old = dict(state, format="seqae-1", rng=checkpoint.rng_from_storable(state["rng"]),
               rng_per_rank=[checkpoint.rng_from_storable(r) for r in state["rng_per_rank"]])
    assert isinstance(old["rng"]["numpy"][1], np.ndarray) and isinstance(old["rng"]["python"], tuple)
    torch.save(old, run / checkpoint.STATE_FILE)
    assert checkpoint.checkpoint_step(run) == 10
    for folder in (run, native):
        seqae.train(recipe, out=folder, overrides=["train.steps=20"], resume=True)
    a, b = checkpoint.read_model_file(run / checkpoint.MODEL_FILE)[0], checkpoint.read_model_file(native / checkpoint.MODEL_FILE)[0]
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0)
    assert torch.load(run / checkpoint.STATE_FILE, weights_only=True)["format"] == checkpoint.STATE_FORMAT


def test_a_config_whose_shapes_disagree_with_the_weights_allocates_nothing(runs, tmp_path, monkeypatch):
    """A crafted hidden = [100000000, 8] (25.6 GB of weights) is refused from shapes built on the meta device."""
    import dataclasses

    from seqae import registry

    run = tmp_path / "ae"
    shutil.copytree(runs["ae"], run)
    config = run / checkpoint.CONFIG_FILE
    config.write_text(config.read_text().replace("hidden = [32, 8]", "hidden = [100000000, 8]"))
    devices = []
    entry = registry.get_family("autoencoder")

    def build(recipe):
        devices.append(torch.get_default_device().type)
        return entry.build_model(recipe)

    monkeypatch.setitem(registry._loaded, "autoencoder", dataclasses.replace(entry, build_model=build))
    started = time.perf_counter()
    with pytest.raises(CheckpointError, match=r"config\.toml does not match .*100000000"):
        seqae.load(run)
    assert devices == ["meta"] and time.perf_counter() - started < 10


# -- 3. a run directory belongs to seqae, and only one process writes it --------------------------------


def test_a_folder_of_the_users_own_files_is_refused(tmp_path, tiny_recipe, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "config.toml").write_bytes(SENTINEL)
    (folder / "metrics.jsonl").write_bytes(SENTINEL)
    before = snapshot(folder)
    expect_error(["train", tiny_recipe, "--out", folder], capsys, folder, "not a seqae run", "config.toml")
    expect_error(["train", tiny_recipe, "--out", folder, "--resume"], capsys, folder, "not a seqae run")
    assert snapshot(folder) == before and sorted(p.name for p in folder.iterdir()) == ["config.toml", "metrics.jsonl"]


def test_resume_deletes_only_seqaes_own_temporaries(ae_run, capsys):
    recipe, run = ae_run
    (run / "paper.tmp").write_bytes(SENTINEL)
    (run / "notes.seqae-tmp").write_bytes(SENTINEL)  # not seqae's pattern (.NAME.RANDOM.seqae-tmp)
    (run / checkpoint.CHECKPOINT_TMP[0]).write_bytes(b"a stale temporary of seqae's own")
    assert main(["train", str(recipe), "--out", str(run), "--resume", "--set", "train.steps=15"]) == 0
    assert (run / "paper.tmp").read_bytes() == SENTINEL and (run / "notes.seqae-tmp").read_bytes() == SENTINEL
    assert not (run / checkpoint.CHECKPOINT_TMP[0]).exists()
    assert checkpoint.checkpoint_step(run) == 15


def test_symbolic_links_planted_at_temporary_names_are_never_written_through(ae_run, tmp_path):
    recipe, run = ae_run
    victim = tmp_path / "victim.txt"
    victim.write_bytes(SENTINEL)
    names = ["config.toml.tmp", "run.json.tmp", "metrics.jsonl.tmp", *checkpoint.CHECKPOINT_TMP]
    for name in names:
        (run / name).symlink_to(victim)
    seqae.train(recipe, out=run, overrides=["train.steps=15"], resume=True)
    assert victim.read_bytes() == SENTINEL
    assert checkpoint.checkpoint_step(run) == 15
    # a temporary name that exists is never opened: creation is exclusive and does not follow links
    with pytest.raises(FileExistsError):
        atomic.create_exclusive(run / "config.toml.tmp")
    checkpoint.atomic_write(run / "eval.json", "{}\n")
    assert victim.read_bytes() == SENTINEL and (run / "eval.json").read_text() == "{}\n"


def test_a_second_training_process_on_the_same_run_is_refused_naming_the_first(tmp_path, tiny_recipe):
    run = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    env.pop("SEQAE_FAULT", None)
    first = subprocess.Popen([sys.executable, "-m", "seqae.cli", "train", str(tiny_recipe), "--out", str(run),
                              "--set", "train.steps=100000", "--set", "train.log_every=1"],
                             cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (run / checkpoint.METRICS_FILE).exists():
            time.sleep(0.2)
        assert (run / checkpoint.METRICS_FILE).exists()
        config_before = (run / checkpoint.CONFIG_FILE).read_bytes()
        second = seqae_cli(["train", tiny_recipe, "--out", run, "--resume", "--set", "train.steps=100000"], tmp_path)
        assert second.returncode == 1, second.stderr[-2000:]
        assert f"{run} is in use by process {first.pid}" in second.stderr and "Traceback" not in second.stderr
        fresh = seqae_cli(["train", tiny_recipe, "--out", run, "--set", "train.steps=100000"], tmp_path)
        assert fresh.returncode == 1 and "Traceback" not in fresh.stderr  # in use, or (once checkpointed) already trained
        assert f"in use by process {first.pid}" in fresh.stderr or "already holds a trained run" in fresh.stderr
        assert (run / checkpoint.CONFIG_FILE).read_bytes() == config_before
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=120)
    assert first.returncode == 130
    with checkpoint.RunLock(run):  # the lock went with the process
        pass


def test_the_lock_is_released_however_the_holder_ends(tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from seqae.checkpoint import RunLock\n"
                               "lock = RunLock(sys.argv[1]).__enter__(); print('held', flush=True); time.sleep(600)", str(run)],
                              stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(CheckpointError, match=rf"is in use by process {holder.pid}"):
            checkpoint.RunLock(run).__enter__()
    finally:
        holder.kill()  # SIGKILL: no handler runs, the kernel drops the lock
        holder.wait()
    with checkpoint.RunLock(run):
        pass


def test_resume_with_fewer_steps_than_done_is_an_error_and_changes_nothing(ae_run, capsys):
    recipe, run = ae_run
    before = snapshot(run)
    expect_error(["train", recipe, "--out", run, "--resume", "--set", "train.steps=5"], capsys, "step 10", "train.steps = 5")
    assert snapshot(run) == before
    # the same number of steps is a stated no-op
    code, err = run_cli(["train", recipe, "--out", run, "--resume", "--set", "train.steps=10"], capsys)
    assert code == 0 and "already at step 10 of 10; nothing to train" in err
    assert snapshot(run) == before


def test_resume_of_a_folder_that_does_not_exist_is_an_error(tmp_path, tiny_recipe, capsys):
    typo = tmp_path / "runz"
    expect_error(["train", tiny_recipe, "--out", typo, "--resume"], capsys, typo, "no run to resume")
    assert not typo.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    expect_error(["train", tiny_recipe, "--out", empty, "--resume"], capsys, empty, "is empty")
    assert not list(empty.iterdir())


def test_train_into_an_existing_file_and_codes_into_a_folder_are_errors(runs, tmp_path, tiny_recipe, capsys):
    target = tmp_path / "a_file"
    target.write_bytes(SENTINEL)
    expect_error(["train", tiny_recipe, "--out", target], capsys, target, "is a file")
    assert target.read_bytes() == SENTINEL
    folder = tmp_path / "out_folder"
    folder.mkdir()
    (folder / "keep.txt").write_bytes(SENTINEL)
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(0).random((4, 64)).astype(np.float32))
    expect_error(["codes", runs["ae"], "-i", x, "-o", folder], capsys, folder, "is a folder")
    assert [p.name for p in folder.iterdir()] == ["keep.txt"] and no_temporaries(tmp_path)
    with pytest.raises(CheckpointError, match="is a folder"):
        checkpoint.atomic_write(folder, b"data")
    assert no_temporaries(tmp_path)


@pytest.mark.parametrize("command", ["plot", "codes", "eval"])
def test_a_full_disk_leaves_every_earlier_output_whole(runs, tmp_path, command):
    """Figures, codes and eval.json are written atomically: a full disk is a named error, the old file stays."""
    run = tmp_path / "ae"
    shutil.copytree(runs["ae"], run)
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(0).random((200, 64)).astype(np.float32))
    target = {"plot": run / "plots" / "training_curves.png", "codes": tmp_path / "codes.npy", "eval": run / "eval.json"}[command]
    target.parent.mkdir(exist_ok=True)
    target.write_bytes(SENTINEL)
    argv = {"plot": ["plot", run], "codes": ["codes", run, "-i", x, "-o", target], "eval": ["eval", run]}[command]
    proc = seqae_cli(argv, tmp_path, preexec_fn=file_size_limit(len(SENTINEL) + 20))
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "could not write" in proc.stderr and target.name in proc.stderr and "Traceback" not in proc.stderr
    assert target.read_bytes() == SENTINEL and no_temporaries(tmp_path)


def test_a_full_disk_while_appending_metrics_is_a_named_error_and_the_log_stays_readable(tmp_path, tiny_recipe, monkeypatch, capsys):
    import errno

    real_write = os.write
    calls = {"n": 0}

    def write(fd, data):
        try:
            name = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            name = ""
        if name.endswith(checkpoint.METRICS_FILE):
            calls["n"] += 1
            if calls["n"] == 3:
                real_write(fd, data[:7])  # part of the line reaches the disk, then it is full
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    run = tmp_path / "run"
    expect_error(["train", tiny_recipe, "--out", run], capsys, checkpoint.METRICS_FILE, "could not append", "--resume")
    monkeypatch.undo()
    records = checkpoint.read_metrics(run)
    assert [r["step"] for r in records] == [5, 10]  # whole lines only
    assert (run / checkpoint.METRICS_FILE).read_bytes().endswith(b"\n")


def test_a_full_disk_in_the_token_cache_is_a_named_error(tmp_path):
    corpus = book_corpus(tmp_path / "corpus")
    recipe = write_recipe(tmp_path, TINY_QT.replace("CORPUS", str(corpus)).replace("steps = 12", "steps = 2"))
    cache = tmp_path / "cache"
    proc = seqae_cli(["train", recipe, "--out", tmp_path / "run"], tmp_path, env_extra={"SEQAE_CACHE": str(cache)},
                     preexec_fn=file_size_limit(2000))
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "could not write the tokenised corpus cache" in proc.stderr and str(cache) in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()
    assert not [p for p in cache.iterdir() if ".tmp-" in p.name]  # the half-built cache is removed


# -- 4. one row per line, and inputs read as the user wrote them -----------------------------------------


def test_embed_gives_one_row_per_line_whatever_the_line_holds(runs, tmp_path):
    lines = ["The ship\u2028sails.", "A\x0cletter came.", "The sea\u0085was calm.", "A horse\x1eran.", "The rain fell."]
    path = tmp_path / "odd.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes(("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8"))
    for source in (path, crlf):
        assert main(["embed", str(runs["qt"]), "-i", str(source), "-o", str(tmp_path / "e.npy")]) == 0
        emb = np.load(tmp_path / "e.npy")
        assert emb.shape[0] == 5
        np.testing.assert_allclose(emb, seqae.load(runs["qt"]).embed(lines), rtol=1e-5, atol=1e-6)


def test_a_byte_order_mark_is_not_part_of_a_task_file_or_a_recipe(tmp_path, capsys):
    from seqae.evaluation.sentences import read_task

    rows = [f"{'a' if i % 2 else 'b'}\tsentence number {i}." for i in range(8)]
    plain, bom = tmp_path / "plain.tsv", tmp_path / "bom.tsv"
    plain.write_text("\n".join(rows) + "\n")
    bom.write_bytes(("\ufeff" + "\n".join(rows) + "\n").encode("utf-8"))
    assert read_task(bom) == read_task(plain)
    assert {label for label, _ in read_task(bom)[1]} == {"a", "b"}
    recipe = tmp_path / "bom.toml"
    recipe.write_bytes(("\ufeff" + TINY_AE).encode("utf-8"))
    assert seqae.load_recipe(recipe).family == "autoencoder"


def test_a_manifest_line_may_hold_unicode_line_separators(tmp_path):
    from seqae.datasets.audio import read_manifest

    wave = 0.1 * np.sin(np.arange(8000) / 10).astype(np.float32)
    soundfile.write(str(tmp_path / "a.wav"), wave, 16000)
    lines = [json.dumps({"audio": "a.wav", "speaker": "s", "text": "one\u2028two"}, ensure_ascii=False),
             json.dumps({"audio": "a.wav", "speaker": "s", "text": "three\x0cfour"}, ensure_ascii=False)]
    (tmp_path / "m.jsonl").write_text("\ufeff" + "\r\n".join(lines) + "\r\n", encoding="utf-8")
    utterances = read_manifest(tmp_path / "m.jsonl")
    assert [u.text for u in utterances] == ["one\u2028two", "three\x0cfour"]


def test_fifos_and_devices_are_refused_not_read(runs, tmp_path):
    fifo_txt, fifo_npy, fifo_wav, fifo_tsv = (tmp_path / n for n in ("in.txt", "in.npy", "in.wav", "task.tsv"))
    for fifo in (fifo_txt, fifo_npy, fifo_wav, fifo_tsv):
        os.mkfifo(fifo)
    cases = [
        ["embed", runs["qt"], "-i", fifo_txt, "-o", tmp_path / "e.npy"],
        ["embed", runs["qt"], "-i", "/dev/zero", "-o", tmp_path / "e.npy"],
        ["codes", runs["ae"], "-i", fifo_npy, "-o", tmp_path / "c.npy"],
        ["codes", runs["ae"], "-i", "/dev/zero", "-o", tmp_path / "c.npy"],
        ["codes", runs["cpc"], "-i", fifo_wav, "-o", tmp_path / "c.npy"],
        ["eval", runs["qt"], "--task", fifo_tsv],
        ["eval", runs["cpc"], "--manifest", "/dev/zero"],
    ]
    # one child process runs every case (a read of a FIFO would block it: the timeout ends the test)
    try:
        proc = subprocess.run([sys.executable, "-c", EACH_CASE, json.dumps([[str(a) for a in argv] for argv in cases])],
                              cwd=tmp_path, env=child_env(), capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired as blocked:  # the last case it started is the one that read the FIFO
        pytest.fail(f"a case blocked: {str(blocked.stderr or '')[-300:]}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(proc.stdout.splitlines()[-1])
    assert len(results) == len(cases)
    for argv, (code, err) in zip(cases, results):
        assert code == 1, (argv, err[-2000:])
        assert "not a regular file" in err and "Traceback" not in err, (argv, err)


EACH_CASE = """
import contextlib, io, json, sys
from seqae.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    print("case:", *argv, file=sys.stderr, flush=True)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit:
            code = exit.code
    results.append([code, err.getvalue()])
print(json.dumps(results))
"""


def test_values_beyond_float32_are_named_after_the_cast(runs, tmp_path, capsys):
    x = np.random.default_rng(0).random((10, 64))
    x[2, 7] = 1e300
    path = tmp_path / "huge.npy"
    np.save(path, x)
    out = tmp_path / "c.npy"
    out.write_bytes(SENTINEL)
    expect_error(["codes", runs["ae"], "-i", path, "-o", out], capsys, path, "too large for 32-bit floats", "(2, 7)")
    assert out.read_bytes() == SENTINEL
    recipe = write_recipe(tmp_path, TINY_AE.replace('source = "digits"', f'source = "{path}"'))
    expect_error(["train", recipe, "--out", tmp_path / "run"], capsys, path, "too large")


def test_audio_samples_far_outside_the_audio_range_are_named(runs, tmp_path, capsys):
    wave = 0.3 * np.sin(np.arange(16000) / 8).astype(np.float32)
    wave[100] = 1e30
    path = tmp_path / "loud.wav"
    soundfile.write(str(path), wave, 16000, subtype="FLOAT")
    out = tmp_path / "c.npy"
    out.write_bytes(SENTINEL)
    expect_error(["codes", runs["cpc"], "-i", path, "-o", out], capsys, path, "far outside")
    expect_error(["convert", runs["vc"], "--source", path, "--target", runs["vc_wav"], "-o", tmp_path / "o.wav"], capsys, path)
    assert out.read_bytes() == SENTINEL and not (tmp_path / "o.wav").exists()


def test_only_path_keys_are_read_as_paths(tmp_path, tiny_recipe, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "linear").write_text("a file that happens to share the value's name")
    recipe = seqae.load_recipe(tiny_recipe, ["train.schedule=linear"])
    assert recipe.train.schedule == "linear"
    x = np.random.default_rng(0).random((30, 64)).astype(np.float32)
    (tmp_path / "sub").mkdir()
    np.save(tmp_path / "sub" / "x.npy", x)
    recipe = seqae.load_recipe(tiny_recipe, ["data.source=sub/x.npy"])  # a path key: relative to the current folder
    assert recipe.data.source == str(tmp_path / "sub" / "x.npy")


def test_options_a_family_does_not_take_are_refused(runs, tmp_path, capsys):
    task = tmp_path / "t.tsv"
    task.write_text("".join(f"{i % 2}\tthe ship sails number {i}.\n" for i in range(8)))
    expect_error(["eval", runs["ae"], "--task", task], capsys, "--task", "autoencoder")
    expect_error(["eval", runs["ae"], "--manifest", runs["manifest"]], capsys, "--manifest", "autoencoder")
    expect_error(["eval", runs["qt"], "--manifest", runs["manifest"]], capsys, "--manifest", "quick_thought", "--task")
    expect_error(["eval", runs["cpc"], "--task", task], capsys, "--task", "cpc")


def test_evaluating_after_the_corpus_changed_is_refused(tmp_path, capsys):
    corpus = book_corpus(tmp_path / "corpus")
    recipe = write_recipe(tmp_path, TINY_QT.replace("CORPUS", str(corpus)).replace("steps = 12", "steps = 2"))
    run = seqae.train(recipe, out=tmp_path / "run")
    assert json.loads((run / checkpoint.RUN_FILE).read_text())["data_fingerprint"]
    book = corpus / "book0.txt"
    book.write_text(book.read_text().replace("Chapter 3\n", ""))  # two chapters merge: another held-out split
    expect_error(["eval", run], capsys, corpus, "differ from those", "train a new run")
    expect_error(["plot", run], capsys, corpus, "differ from those")
    expect_error(["train", recipe, "--out", run, "--resume", "--set", "train.steps=4"], capsys, corpus, "differ from those")


# -- 5. tracebacks that became named errors -------------------------------------------------------------


@pytest.mark.parametrize("content, named", [
    ("a\tone.\nb\ttwo.\na\tthree.\n", "the label 'b' has 1 example"),
    ("0.5\tone.\n1.5\ttwo.\n0.5\tthree.\n1.5\tfour.\n", ":1: the label '0.5' is a fractional number"),
    ("0.5\tone.\ttwo.\n", "1 scored pair(s)"),
    ("0.5\tone.\ttwo.\nnan\tthree.\tfour.\n1.0\tfive.\tsix.\n", ":2: the score 'nan' is not a finite number"),
    ("1.0\tone.\ttwo.\n1.0\tthree.\tfour.\n1.0\tfive.\tsix.\n", "the same score"),
])
def test_malformed_task_files_are_named_errors(runs, tmp_path, capsys, content, named):
    task = tmp_path / "task.tsv"
    task.write_text(content)
    expect_error(["eval", runs["qt"], "--task", task], capsys, task.name, named)


def test_a_corpus_of_one_repeated_sentence_is_a_named_error_at_evaluation(tmp_path, capsys):
    corpus = tmp_path / "same.txt"
    corpus.write_text("".join(f"Chapter {c}\n\n" + "The ship sails on the sea. " * 40 + "\n\n" for c in range(1, 7)))
    recipe = write_recipe(tmp_path, TINY_QT.replace("CORPUS", str(corpus)).replace("steps = 12", "steps = 2"))
    run = seqae.train(recipe, out=tmp_path / "run")
    expect_error(["eval", run], capsys, corpus, "1 distinct sentences", "eval.candidates")


def test_a_corrupt_gzip_stream_in_the_corpus_is_named(tmp_path, capsys):
    import gzip

    folder = tmp_path / "books"
    folder.mkdir()
    data = bytearray(gzip.compress(("Chapter 1\n\n" + "The ship sails. " * 2000 + "\n").encode()))
    data[40:60] = b"\x00" * 20  # inside the deflate stream
    (folder / "broken.txt.gz").write_bytes(bytes(data))
    recipe = write_recipe(tmp_path, TINY_QT.replace("CORPUS", str(folder)))
    expect_error(["train", recipe, "--out", tmp_path / "run"], capsys, "broken.txt.gz", "cannot read")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("device, named", [("bogus", "unknown device 'bogus'"), ("cuda", "CUDA is not available")])
def test_a_device_that_is_not_there_is_a_named_error(runs, tmp_path, capsys, device, named):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(0).random((4, 64)).astype(np.float32))
    expect_error(["eval", runs["ae"], "--device", device], capsys, named)
    expect_error(["codes", runs["ae"], "-i", x, "-o", tmp_path / "c.npy", "--device", device], capsys, named)
    expect_error(["plot", runs["ae"], "--device", device], capsys, named)


def test_a_tokenizer_larger_than_the_models_vocabulary_is_named(runs, tmp_path, capsys):
    from tokenizers import Tokenizer, models, pre_tokenizers

    run = tmp_path / "qt"
    shutil.copytree(runs["qt"], run)
    vocab = seqae.load(runs["qt"]).recipe.model.vocab_size
    big = Tokenizer(models.WordLevel({f"w{i}": i for i in range(vocab + 50)}, unk_token="w1"))
    big.pre_tokenizer = pre_tokenizers.Whitespace()
    big.save(str(run / "tokenizer.json"))
    lines = tmp_path / "s.txt"
    lines.write_text("w3 w4\n")
    expect_error(["embed", run, "-i", lines, "-o", tmp_path / "e.npy"], capsys, run / "tokenizer.json", f"{vocab + 50} tokens")


@pytest.mark.parametrize("option, value, named", [
    ("--test-fraction", "1.5", "--test-fraction 1.5"), ("--sample-rate", "-5", "--sample-rate -5"),
    ("--speakers", "0", "--speakers 0"), ("--unseen-speakers", "-1", "--unseen-speakers -1"),
])
def test_bad_speech_data_settings_leave_no_folder(tmp_path, capsys, option, value, named):
    out = tmp_path / "speech"
    expect_error(["data", "speech", "--out", out, option, value], capsys, named)
    assert not out.exists()
