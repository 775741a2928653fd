"""The README's Python examples run as written."""

import re
import shutil

import pytest

from conftest import ROOT


def python_blocks():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_has_python_examples():
    assert python_blocks()


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_python_example_runs(index, tmp_path, monkeypatch):
    block = python_blocks()[index]
    if block.startswith("# needs:"):  # the block says what it needs that a test machine lacks
        pytest.skip(block.splitlines()[0])
    shutil.copytree(ROOT / "recipes", tmp_path / "recipes")
    monkeypatch.chdir(tmp_path)
    exec(compile(python_blocks()[index], f"README.md python block {index + 1}", "exec"), {"__name__": "readme"})
