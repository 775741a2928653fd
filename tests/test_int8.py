"""``--quantize int8`` on seqae embed / codes: the outputs stay close to float32's and the layers are quantised."""

from __future__ import annotations

import numpy as np

from seqae.cli import main


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def test_int8_embeddings_and_codes_stay_close_to_float32(runs, tmp_path, capsys):
    sentences = tmp_path / "s.txt"
    sentences.write_text("The ship sails at dawn.\nA letter came for her.\nThe rain fell all day.\n")
    digits = tmp_path / "digits.npy"
    np.save(digits, np.random.default_rng(0).uniform(0, 16, size=(6, 64)).astype(np.float32))
    outputs = {}
    for quantize in ([], ["--quantize", "int8"]):
        tag = "int8" if quantize else "fp32"
        assert main(["embed", str(runs["qt"]), "-i", str(sentences), "-o", str(tmp_path / f"qt_{tag}.npy")] + quantize) == 0
        assert main(["codes", str(runs["ae"]), "-i", str(digits), "-o", str(tmp_path / f"ae_{tag}.npy")] + quantize) == 0
        assert main(["codes", str(runs["cpc"]), "-i", str(runs["wav"]), "-o", str(tmp_path / f"cpc_{tag}.npy")] + quantize) == 0
        outputs[tag] = {name: np.load(tmp_path / f"{name}_{tag}.npy") for name in ("qt", "ae", "cpc")}
    err = capsys.readouterr().err
    assert "GRU" in err and "Linear" in err  # the recurrent encoders' layers were quantised
    for name in ("qt", "ae", "cpc"):
        fp32, int8 = outputs["fp32"][name], outputs["int8"][name]
        assert fp32.shape == int8.shape
        assert not np.array_equal(fp32, int8)  # quantised, not the float path
        assert cosines(fp32.reshape(len(fp32), -1), int8.reshape(len(int8), -1)).min() > 0.98


def test_int8_is_for_the_cpu(runs, tmp_path, capsys):
    from conftest import expect_error

    sentences = tmp_path / "s.txt"
    sentences.write_text("The ship sails at dawn.\n")
    expect_error(["embed", str(runs["qt"]), "-i", str(sentences), "-o", str(tmp_path / "e.npy"), "--quantize", "int8",
                  "--device", "cuda"], capsys, "--quantize")
    assert not (tmp_path / "e.npy").exists()


def test_the_api_loads_and_evaluates_an_int8_model_without_touching_eval_json(runs):
    import pytest

    import seqae

    eval_json = runs["ae"] / "eval.json"
    before = eval_json.read_bytes() if eval_json.exists() else None
    fp32 = seqae.evaluate(runs["ae"], write=False)
    int8 = seqae.evaluate(runs["ae"], write=False, quantize="int8")
    assert int8["quantize"] == "int8" and "quantize" not in fp32
    shared = [k for k, v in fp32.items() if isinstance(v, float) and isinstance(int8.get(k), float)]
    assert len(shared) >= 3 and all(np.isfinite(int8[k]) for k in shared)
    assert (eval_json.read_bytes() if eval_json.exists() else None) == before
    with pytest.raises(ValueError, match="int8"):
        seqae.load(runs["ae"], quantize="int4")
