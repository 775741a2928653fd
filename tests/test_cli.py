import json
import os
import subprocess
import sys

import numpy as np
import pytest

from seqae.cli import main

from tiny import ROOT, seqae_cli


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from conftest import TINY_AE

    tmp = tmp_path_factory.mktemp("cli")
    recipe = tmp / "tiny.toml"
    recipe.write_text(TINY_AE)
    assert main(["train", str(recipe), "--out", str(tmp / "run"), "--set", "train.steps=30"]) == 0
    return tmp / "run"


def test_eval_json_is_one_object_on_stdout(run_dir):
    proc = seqae_cli(["eval", run_dir, "--json"])
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert proc.stdout.count("\n") == 1
    assert result["family"] == "autoencoder" and result["step"] == 30
    assert 0 < result["test_mse"] < 0.2 and result["pca_components"] == 8


def test_plot_writes_the_figures(run_dir, tmp_path):
    assert main(["plot", str(run_dir), "--out", str(tmp_path)]) == 0
    for name in ("training_curves.png", "reconstructions.png", "code_map.png", "tsne_map.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, name


def test_codes_and_scores_of_new_input(run_dir, tmp_path):
    from sklearn.datasets import load_digits

    np.save(tmp_path / "x.npy", load_digits().data[:7])  # raw digits pixels, scaled as in training
    assert main(["codes", str(run_dir), "-i", str(tmp_path / "x.npy"), "-o", str(tmp_path / "codes.npy")]) == 0
    assert np.load(tmp_path / "codes.npy").shape == (7, 8)
    assert main(["score", str(run_dir), "-i", str(tmp_path / "x.npy"), "-o", str(tmp_path / "s.npy")]) == 0
    scores = np.load(tmp_path / "s.npy")
    assert scores.shape == (7,) and np.all(scores > 0)


def test_errors_name_the_problem_and_exit_non_zero(run_dir, tmp_path, capsys):
    assert main(["codes", str(run_dir), "-i", str(tmp_path / "missing.npy"), "-o", str(tmp_path / "c.npy")]) == 1
    assert "missing.npy: no such file" in capsys.readouterr().err
    assert not (tmp_path / "c.npy").exists()
    bad = tmp_path / "bad.toml"
    bad.write_text('[model]\nfamily = "autoencoder"\nwidth = 3\n')
    assert main(["train", str(bad), "--out", str(tmp_path / "r")]) == 1
    assert "bad.toml: unknown key 'model.width'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # nothing is created before the recipe is valid


def test_training_into_an_existing_run_is_refused(run_dir, capsys):
    before = (run_dir / "model.safetensors").read_bytes()
    assert main(["train", str(ROOT / "recipes" / "ae_digits.toml"), "--out", str(run_dir)]) == 1
    assert "already holds a trained run; pass --resume" in capsys.readouterr().err
    assert (run_dir / "model.safetensors").read_bytes() == before


def test_console_script_is_installed():
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "seqae"), "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "train" in proc.stdout


def test_eval_takes_eval_settings_only(run_dir, capsys):
    assert main(["eval", str(run_dir), "--json", "--set", "eval.noise_seed=3"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["eval_overrides"] == ["eval.noise_seed=3"] and result["step"] == 30
    assert main(["eval", str(run_dir), "--set", "train.steps=3"]) == 1
    assert "eval.* settings only" in capsys.readouterr().err
    assert main(["eval", str(run_dir), "--set", "eval.no_such_key=1"]) == 1
    assert "no_such_key" in capsys.readouterr().err


def test_compare_lists_the_differing_settings_and_every_figure(tmp_path, capsys):
    import seqae

    from conftest import expect_error
    from tiny import TINY_AE, write_recipe

    recipe = write_recipe(tmp_path, TINY_AE)
    a = seqae.train(recipe, out=tmp_path / "a", overrides=["train.steps=4"])
    b = seqae.train(recipe, out=tmp_path / "b", overrides=["train.steps=4", "train.lr=0.01"])
    evaluated = seqae.evaluate(a)
    capsys.readouterr()
    assert main(["compare", str(a), str(b), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["differing_settings"] == {"train.lr": [0.003, 0.01]}
    key = next(k for k, v in evaluated.items() if isinstance(v, float))
    assert result["figures"][key] == [pytest.approx(evaluated[key]), None]
    assert result["not_evaluated"] == ["", f"not evaluated (seqae eval {b})"]
    assert main(["compare", str(a), str(b)]) == 0
    text = capsys.readouterr().out
    assert "train.lr" in text and key in text and "not evaluated" in text and "train.steps" not in text
    (tmp_path / "plain").mkdir()
    expect_error(["compare", str(a), str(tmp_path / "plain")], capsys, "plain", "not a seqae run directory")


def test_help_imports_no_torch_and_the_registry_tables_match_the_families():
    """`seqae --help` and argument errors answer without torch (it takes seconds to import on a busy
    machine); the command line reads the families' commands and code kinds from the registry's light
    tables, which must say what the families themselves say."""
    import subprocess
    import sys

    from seqae.registry import CODE_KINDS, COMMANDS, all_families, command_modules

    probe = "import sys, seqae.cli; seqae.cli.build_parser(); print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout
    modules = command_modules()
    for family in all_families():
        assert family.code_kinds == CODE_KINDS.get(family.name, ()), family.name
        for command in family.commands:
            assert COMMANDS[command.name][0] == family.name
            assert (command.help, command.add_arguments) == (modules[command.name].HELP, modules[command.name].add_arguments)
    assert sorted(COMMANDS) == sorted(c.name for f in all_families() for c in f.commands)


def test_long_work_off_a_terminal_prints_a_line_per_part():
    import io

    from seqae import progress

    stream = io.StringIO()
    assert list(progress.each([("a", 1), ("b", 2)], "probing", name=lambda item: item[0], stream=stream, every=0)) == [("a", 1), ("b", 2)]
    lines = stream.getvalue().splitlines()
    assert [line.split(",")[0] for line in lines] == ["seqae: probing: 1/2 done (a)", "seqae: probing: 2/2 done (b)"]
    stream = io.StringIO()  # quick parts: only the last line
    assert len(list(progress.each(range(50), "converting", stream=stream))) == 50
    assert stream.getvalue().splitlines()[0].startswith("seqae: converting: 50/50 done")
