"""``seqae compare``: the evaluation figures of several runs side by side, with the recipe settings in which
they differ."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from seqae import checkpoint
from seqae.config import read_toml


def check_run(run_dir: Path) -> None:
    """A CheckpointError unless ``run_dir`` is a run directory that seqae train wrote."""
    if not checkpoint.is_seqae_run(run_dir):
        raise checkpoint.CheckpointError(f"{run_dir}: not a seqae run directory (no {checkpoint.RUN_FILE}); give runs that "
                                         "seqae train wrote")


def run_config(run_dir: Path) -> dict[str, Any]:
    """The run's resolved recipe (``config.toml``) by section; empty when there is none."""
    path = run_dir / checkpoint.CONFIG_FILE
    return read_toml(path) if path.is_file() else {}


def run_evaluation(run_dir: Path) -> dict[str, Any] | None:
    """The run's ``eval.json`` (None before ``seqae eval``); an unreadable one is a CheckpointError."""
    path = run_dir / "eval.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise checkpoint.CheckpointError(f"{path}: unreadable ({err}); run seqae eval {run_dir} again") from None


def run_summary(run_dir: Path) -> dict[str, Any]:
    """A run's recipe (flattened ``section.key``), its family, step and ``eval.json`` figures (numbers only)."""
    check_run(run_dir)
    config = run_config(run_dir)
    settings = {f"{section}.{key}": value for section, table in config.items() if isinstance(table, dict)
                for key, value in table.items()}
    figures, missing = {}, ""
    result = run_evaluation(run_dir)
    if result is not None:
        figures = {k: v for k, v in result.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    else:
        missing = f"not evaluated (seqae eval {run_dir})"
    return {"run": str(run_dir), "family": settings.get("model.family"), "settings": settings, "figures": figures,
            "missing": missing}


def compare(run_dirs: list[str | os.PathLike]) -> dict[str, Any]:
    """``{"runs": [...], "differing_settings": {key: [value per run]}, "figures": {key: [value or None per run]}}``:
    the settings that differ between the runs and every figure any of them has (runs of different families
    share only some: the others are None)."""
    summaries = [run_summary(Path(r)) for r in run_dirs]
    keys = list(dict.fromkeys(k for s in summaries for k in s["settings"]))
    differing = {k: [s["settings"].get(k) for s in summaries] for k in keys
                 if len({json.dumps(s["settings"].get(k), sort_keys=True) for s in summaries}) > 1}
    figures = list(dict.fromkeys(k for s in summaries for k in s["figures"]))
    return {"runs": [s["run"] for s in summaries], "families": [s["family"] for s in summaries],
            "not_evaluated": [s["missing"] for s in summaries], "differing_settings": differing,
            "figures": {k: [s["figures"].get(k) for s in summaries] for k in figures}}


def table(comparison: dict[str, Any]) -> str:
    """A plain-text table: one column per run, the differing settings first, then the figures."""
    runs = [Path(r).name for r in comparison["runs"]]

    def cell(value) -> str:
        if value is None:
            return "-"
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    rows = [("run", runs), ("family", [cell(f) for f in comparison["families"]])]
    rows += [(k, [cell(v) for v in values]) for k, values in comparison["differing_settings"].items()]
    rows += [("", [""] * len(runs))]
    rows += [(k, [cell(v) for v in values]) for k, values in comparison["figures"].items()]
    notes = [f"{run}: {note}" for run, note in zip(runs, comparison["not_evaluated"]) if note]
    width = max(len(k) for k, _ in rows)
    widths = [max(len(row[1][i]) for row in rows) for i in range(len(runs))]
    lines = [f"{k:<{width}}  " + "  ".join(f"{v:>{w}}" for v, w in zip(values, widths)) for k, values in rows]
    return "\n".join(lines + notes)
