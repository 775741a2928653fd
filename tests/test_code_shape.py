"""The package's shape: no function longer than 60 lines and no module longer than 400, so each does
one job a reader can hold in mind (lines counted from the first decorator to the last line)."""

import ast

from tiny import ROOT

MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 400


def modules():
    return sorted((ROOT / "seqae").rglob("*.py"))


def test_no_module_is_longer_than_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in modules() if (n := p.read_text().count("\n")) > MAX_MODULE_LINES}
    assert not long, long


def test_no_function_is_longer_than_60_lines():
    long = {}
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                start = node.decorator_list[0].lineno if node.decorator_list else node.lineno
                if node.end_lineno - start + 1 > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(ROOT)}:{node.name}"] = node.end_lineno - start + 1
    assert not long, long
