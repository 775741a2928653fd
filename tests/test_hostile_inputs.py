"""Hostile input across the families: every case is a clear error (the file, and the line or key where
there is one, named; exit status 1; no traceback; nothing already on disk overwritten) or a handled case."""

import json
import struct

import numpy as np
import pytest
import soundfile

from conftest import expect_error, run_cli
from tiny import TINY_AE, TINY_CPC, TINY_QT, write_recipe

SENTINEL = b"an earlier result that must survive"


# -- hostile files -----------------------------------------------------------------------------------


def text_file(kind, folder):
    path = folder / f"{kind}.txt"
    path.write_bytes({
        "empty": b"",
        "binary": bytes(range(256)) * 40,
        "latin1": "Chapter 1\n\nThe caf\xe9 was full. ".encode("latin-1") * 50,
        "long_line": b"word " * 200_000 + b"\n",
    }[kind])
    return path


def wav_file(kind, folder):
    path = folder / f"{kind}.wav"
    rate = 16000
    t = np.arange(rate) / rate
    tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    if kind == "corrupt":
        path.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\xff" * 40)
    elif kind == "empty":
        soundfile.write(str(path), np.zeros(0, np.float32), rate)
    elif kind == "8bit":
        soundfile.write(str(path), tone, rate, subtype="PCM_U8")
    elif kind == "stereo":
        soundfile.write(str(path), np.stack([tone, tone[::-1]], 1), rate)
    elif kind == "44k":
        t44 = np.arange(44100) / 44100
        soundfile.write(str(path), (0.3 * np.sin(2 * np.pi * 220 * t44)).astype(np.float32), 44100)
    elif kind == "silent":
        soundfile.write(str(path), np.zeros(rate, np.float32), rate)
    elif kind == "hour":
        frames = 3600 * rate  # a PCM header that announces an hour; the file is sparse, so it costs no disk
        header = b"RIFF" + struct.pack("<I", 36 + 2 * frames) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, 2 * rate, 2, 16)
        header += b"data" + struct.pack("<I", 2 * frames)
        with open(path, "wb") as fh:
            fh.write(header)
            fh.truncate(len(header) + 2 * frames)
    return path


def array_file(kind, folder):
    x = np.random.default_rng(0).random((20, 64)).astype(np.float32)
    x[3, 5] = np.nan if kind == "nan" else np.inf
    path = folder / f"{kind}.npy"
    np.save(path, x)
    return path


def manifest_file(kind, folder, wav):
    good = {"audio": str(wav), "speaker": "low", "text": "a", "phones": [[0.0, 0.1, "a"], [0.1, 0.2, "e"]]}
    lines = [json.dumps(good), json.dumps(dict(good, text="b"))]
    if kind == "missing_audio":
        lines.append(json.dumps(dict(good, audio="nowhere.wav")))
    elif kind == "bad_json":
        lines.append('{"audio": "x.wav", ')
    elif kind == "negative_time":
        lines.append(json.dumps(dict(good, phones=[[-0.1, 0.1, "a"]])))
    elif kind == "overlapping":
        lines.append(json.dumps(dict(good, phones=[[0.0, 0.3, "a"], [0.2, 0.4, "e"]])))
    path = folder / f"{kind}.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def recipe_file(kind, folder):
    text = {
        "malformed": "[model\nfamily = 'autoencoder'\n",
        "unknown_key": "[model]\nfamily = \"autoencoder\"\nhiden = [8]\n[data]\nsource = \"digits\"\n",
        "wrong_type": "[model]\nfamily = \"autoencoder\"\nhidden = [8]\n[data]\nsource = \"digits\"\n[train]\nsteps = \"many\"\n",
        "binary": None,
    }[kind]
    path = folder / f"{kind}.toml"
    if text is None:
        path.write_bytes(b"\x00\xff\xfe" * 30)
    else:
        path.write_text(text)
    return path


# -- the suite ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["empty", "binary", "latin1", "long_line"])
def test_hostile_text(runs, tmp_path, capsys, kind):
    path = text_file(kind, tmp_path)
    out = tmp_path / "emb.npy"
    out.write_bytes(SENTINEL)
    if kind == "long_line":  # a line of a million characters: named with its line number
        expect_error(["embed", runs["qt"], "-i", path, "-o", out], capsys, f"{path.name}:1", "1,000,000 characters")
    else:
        expect_error(["embed", runs["qt"], "-i", path, "-o", out], capsys, path.name)
    assert out.read_bytes() == SENTINEL
    # the same file as a training corpus
    recipe = write_recipe(tmp_path, TINY_QT.replace("CORPUS", str(path)))
    expect_error(["train", recipe, "--out", tmp_path / "run"], capsys, path.name)
    assert not (tmp_path / "run" / "model.safetensors").exists()


@pytest.mark.parametrize("kind", ["corrupt", "empty", "hour"])
def test_hostile_audio_is_an_error_naming_the_file(runs, tmp_path, capsys, kind):
    path = wav_file(kind, tmp_path)
    out = tmp_path / "out.npy"
    out.write_bytes(SENTINEL)
    expect_error(["codes", runs["cpc"], "-i", path, "-o", out], capsys, path.name)
    assert out.read_bytes() == SENTINEL
    wav_out = tmp_path / "out.wav"
    wav_out.write_bytes(SENTINEL)
    expect_error(["convert", runs["vc"], "--source", path, "--target", runs["vc_wav"], "-o", wav_out], capsys, path.name)
    expect_error(["convert", runs["vc"], "--source", runs["vc_wav"], "--target", path, "-o", wav_out], capsys, path.name)
    assert wav_out.read_bytes() == SENTINEL


@pytest.mark.parametrize("kind", ["8bit", "stereo", "44k", "silent"])
def test_unusual_but_valid_audio_is_handled(runs, tmp_path, capsys, kind):
    path = wav_file(kind, tmp_path)
    code, err = run_cli(["codes", runs["cpc"], "-i", path, "-o", tmp_path / "c.npy"], capsys)
    assert code == 0, err
    codes = np.load(tmp_path / "c.npy")
    assert codes.shape[0] == (16000 - 465) // 160 + 1 and np.isfinite(codes).all()  # resampled to 16 kHz, mono
    code, err = run_cli(["convert", runs["vc"], "--source", path, "--target", runs["vc_wav"], "-o", tmp_path / "o.wav"], capsys)
    if kind == "silent":  # nothing to convert: an error, never a silent WAV
        assert code == 1 and "silent" in err and path.name in err
    else:
        assert code == 0, err
        wave, rate = soundfile.read(str(tmp_path / "o.wav"))
        assert rate == 16000 and wave.ndim == 1 and np.abs(wave).max() > 0.01


@pytest.mark.parametrize("kind", ["nan", "inf"])
def test_non_finite_arrays(runs, tmp_path, capsys, kind):
    path = array_file(kind, tmp_path)
    out = tmp_path / "codes.npy"
    out.write_bytes(SENTINEL)
    expect_error(["codes", runs["ae"], "-i", path, "-o", out], capsys, path.name)
    expect_error(["score", runs["ae"], "-i", path, "-o", out], capsys, path.name)
    assert out.read_bytes() == SENTINEL
    recipe = write_recipe(tmp_path, TINY_AE.replace('source = "digits"', f'source = "{path}"'))
    expect_error(["train", recipe, "--out", tmp_path / "run"], capsys, path.name)


@pytest.mark.parametrize("kind, named", [
    ("malformed", "line 1"), ("unknown_key", "model.hiden"), ("wrong_type", "train.steps"), ("binary", "not UTF-8"),
])
def test_hostile_recipes(tmp_path, capsys, kind, named):
    path = recipe_file(kind, tmp_path)
    expect_error(["train", path, "--out", tmp_path / "run"], capsys, path.name, named)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("kind, named", [
    ("missing_audio", ":3: no such audio file"), ("bad_json", ":3: not a JSON object"),
    ("negative_time", ":3: phone 0"), ("overlapping", ":3: phone 1"),
])
def test_hostile_manifests(runs, tmp_path, capsys, kind, named):
    path = manifest_file(kind, tmp_path, runs["wav"])
    expect_error(["eval", runs["cpc"], "--manifest", path], capsys, path.name + named)
    recipe = write_recipe(tmp_path, TINY_CPC.replace("MANIFEST", str(path)))
    expect_error(["train", recipe, "--out", tmp_path / "run"], capsys, path.name + named)
    assert not (tmp_path / "run").exists()


def test_corrupt_audio_inside_a_training_manifest_is_named(runs, tmp_path, capsys):
    bad = wav_file("corrupt", tmp_path)
    records = [json.loads(line) for line in runs["manifest"].read_text().splitlines()]
    for record in records:
        record["audio"] = str(runs["speech"] / record["audio"])
    records[2]["audio"] = str(bad)
    lines = [json.dumps(r) for r in records]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    recipe = write_recipe(tmp_path, TINY_CPC.replace("MANIFEST", str(manifest)))
    expect_error(["train", recipe, "--out", tmp_path / "run"], capsys, bad.name, "cannot decode")
