"""``seqae report``: one self-contained HTML page for one run or a comparison of several.

The page holds everything in itself (figures as PNG data, audio as WAV data, the style inline; no script
and nothing fetched from anywhere), so it can be mailed or opened offline: what was trained (family,
recipe, data, steps, time, versions), the training curves, the evaluation figures beside their baselines,
the family's figures (``seqae plot``'s), its audio clips (voice conversion: source, target and converted
side by side), examples (summaries, samples) and the recipe. With several runs a comparison comes first:
one column per run, the recipe settings in which they differ marked.
"""

from __future__ import annotations

import base64
import html
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from seqae import checkpoint
from seqae.checkpoint import CheckpointError
from seqae.compare import check_run, compare, run_config, run_evaluation
from seqae.figures import figure_rows, is_number, shown

MARK = "<!-- written by seqae report -->"
STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1100px;padding:1rem;
line-height:1.45;color:#1a1a1a;background:#fff}
h1{font-size:1.6rem}h2{font-size:1.3rem;border-bottom:1px solid #ccc;margin-top:2rem}h3{font-size:1.1rem}
.scroll{overflow-x:auto;margin:.5rem 0}
table{border-collapse:collapse;font-size:.9rem}th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:right;
vertical-align:top}th[scope=row],td.text,thead th:first-child{text-align:left}thead th{background:#f0f0f0}
tr.differs th,tr.differs td{background:#fff3c4}th[scope=row]{overflow-wrap:anywhere;min-width:7rem}
td.text{overflow-wrap:anywhere;min-width:9rem}@media (max-width:600px){body{padding:.5rem}table{font-size:.8rem}}
caption{text-align:left;font-weight:600;padding:.25rem 0}
figure{margin:1rem 0}img{max-width:100%;height:auto;border:1px solid #eee}figcaption{font-size:.9rem;color:#444}
audio{width:100%;min-width:12rem;max-width:20rem}pre{white-space:pre-wrap;background:#f7f7f7;padding:.5rem;font-size:.85rem}
nav ul{padding-left:1.2rem}
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def data_uri(path: Path) -> str:
    kind = {".png": "image/png", ".wav": "audio/wav"}[path.suffix.lower()]
    return f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


class Text(str):
    """A table cell of words (left-aligned); other cells are numbers (right-aligned)."""


def cell(content: str) -> str:
    return f'<td class="text">{content}</td>' if isinstance(content, Text) else f"<td>{content}</td>"


def table(headings: list[str], rows: list[tuple[str, list[str], str]], caption: str = "") -> str:
    """An accessible table: column headers, a row header per row; ``rows`` are (row header, cells, CSS class)
    with the cells already escaped HTML (:class:`Text` for words)."""
    head = "".join(f'<th scope="col">{esc(h)}</th>' for h in headings)
    body = "".join(f'<tr class="{cls}"><th scope="row">{esc(name)}</th>' + "".join(cell(c) for c in cells) + "</tr>"
                   for name, cells, cls in rows)
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f'<div class="scroll"><table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def trained_section(run_dir: Path, config: dict[str, Any], record: dict[str, Any]) -> str:
    """What was trained: family, data, steps, time, device, versions; one row per training session."""
    model, data, train = (config.get(k, {}) for k in ("model", "data", "train"))
    sessions = record.get("sessions", [])
    made = record.get("provenance", {})
    versions = ", ".join(f"{k} {v}" for k, v in made.get("versions", {}).items() if v)
    wall = sum(s.get("wall_s", 0) for s in sessions)
    step = checkpoint.checkpoint_step(run_dir)
    rows = [("family", model.get("family", record.get("family", "?"))),
            ("data", ", ".join(f"{k} = {v}" for k, v in data.items() if not isinstance(v, dict)) or "-"),
            ("steps", f"{step} of {train.get('steps', '?')}"),
            ("training time", f"{wall / 60:.1f} min in {len(sessions)} session(s)" if sessions else "not recorded"),
            ("versions", versions or f"seqae {record.get('seqae_version', '?')}"),
            ("git commit", made.get("git_commit") or "-"), ("python, platform", f"{made.get('python', '-')}, {made.get('platform', '-')}")]
    out = table(["", "value"], [(k, [Text(esc(v))], "") for k, v in rows], "What was trained")
    if sessions:
        keys = ["start", "end", "wall_s", "step", "device", "device_name", "processes", "threads", "peak_rss_mb", "peak_gpu_mb"]
        keys = [k for k in keys if any(k in s for s in sessions)]
        out += table(["session"] + keys + ["command"],
                     [(str(i + 1), [esc(shown(s.get(k))) for k in keys] + [Text(f'<code>{esc(" ".join(s.get("command", [])))}</code>')], "")
                      for i, s in enumerate(sessions)], "Training sessions")
    return out


def evaluation_section(run_dir: Path, result: dict[str, Any] | None) -> str:
    if result is None:
        return f"<p>Not evaluated: run <code>seqae eval {esc(run_dir)}</code> and make the report again.</p>"
    headings, rows = figure_rows(result)
    out = table(headings, [(k, [esc(shown(v)) for v in values], "") for k, values in rows],
                "Evaluation figures beside their baselines (blank: no such baseline)")
    for key, value in result.items():
        if isinstance(value, list) and value:
            out += examples(key, value)
    return out


def examples(key: str, items: list) -> str:
    """A list from eval.json: a table when its items are objects, else a list."""
    title = key.replace("_", " ")
    if all(isinstance(i, dict) for i in items):
        keys = list(dict.fromkeys(k for i in items for k in i))
        rows = [(str(n + 1), [esc(shown(v)) if is_number(v) else Text(esc(shown(v))) for v in (i.get(k) for k in keys)], "")
                for n, i in enumerate(items)]
        return f"<h3>{esc(title)}</h3>" + table(["#"] + keys, rows)
    return f"<h3>{esc(title)}</h3><ul>" + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>"


def figures_section(paths: list[Path], run_name: str) -> str:
    """The PNG figures, then the audio: clips named ``clip_N_ROLE.wav`` as a table with one row per N."""
    out = ""
    for path in (p for p in paths if p.suffix.lower() == ".png"):
        what = path.stem.replace("_", " ")
        out += (f'<figure><img src="{data_uri(path)}" alt="{esc(what)} of run {esc(run_name)}">'
                f"<figcaption>{esc(what)}</figcaption></figure>")
    clips: dict[str, dict[str, Path]] = {}
    for path in (p for p in paths if p.suffix.lower() == ".wav"):
        match = re.fullmatch(r"(clip_\d+)_(\w+)", path.stem)
        number, role = match.groups() if match else (path.stem, "audio")
        clips.setdefault(number, {})[role] = path
    if clips:
        roles = list(dict.fromkeys(r for c in clips.values() for r in c))
        rows = [(name.replace("_", " "), [audio(c[r], f"{r} of {name}") if r in c else "-" for r in roles], "")
                for name, c in clips.items()]
        out += "<h3>Listen</h3>" + table(["clip"] + roles, rows, "Conversions: the source, the target's voice, the result")
    return out


def audio(path: Path, label: str) -> str:
    return f'<audio controls preload="none" src="{data_uri(path)}" aria-label="{esc(label)}"></audio>'


def run_section(run_dir: Path, figures: list[Path], anchor: str) -> str:
    config = run_config(run_dir)
    record = checkpoint.read_run_file(run_dir) or {}
    recipe_text = (run_dir / checkpoint.CONFIG_FILE).read_text(encoding="utf-8") if (run_dir / checkpoint.CONFIG_FILE).is_file() else ""
    return (f'<section id="{anchor}"><h2>{esc(run_dir.name)}</h2>' + trained_section(run_dir, config, record)
            + "<h3>Evaluation</h3>" + evaluation_section(run_dir, run_evaluation(run_dir))
            + "<h3>Figures</h3>" + (figures_section(figures, run_dir.name) or "<p>No figures.</p>")
            + f"<details><summary>The recipe as trained (config.toml)</summary><pre>{esc(recipe_text)}</pre></details></section>")


def comparison_section(run_dirs: list[Path]) -> str:
    """One column per run: the settings that differ (marked), then every evaluation figure."""
    result = compare(run_dirs)
    names = [Path(r).name for r in result["runs"]]
    rows = [("family", [esc(f) for f in result["families"]], "")]
    rows += [(k, [esc(shown(v)) for v in values], "differs") for k, values in result["differing_settings"].items()]
    rows += [(k, [esc(shown(v)) for v in values], "") for k, values in result["figures"].items()]
    notes = "".join(f"<p>{esc(n)}: {esc(note)}</p>" for n, note in zip(names, result["not_evaluated"]) if note)
    return ('<section id="comparison"><h2>Comparison</h2><p>Highlighted rows: recipe settings in which the runs differ.</p>'
            + table(["run"] + names, rows, "Settings that differ, then the evaluation figures") + notes + "</section>")


def page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n{MARK}\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{esc(title)}</title>'
            f"<style>{STYLE}</style></head><body><main><h1>{esc(title)}</h1>{body}</main></body></html>\n")


def check_output(out: Path) -> None:
    """Only a report that seqae wrote is replaced: any other file at ``out`` is an error."""
    if out.is_dir():
        raise CheckpointError(f"{out}: is a folder; give the report's file name, e.g. -o {out / 'report.html'}")
    if not out.parent.is_dir():
        raise CheckpointError(f"{out}: the folder {out.parent} does not exist; create it first")
    if out.exists() and MARK not in out.read_text(encoding="utf-8", errors="replace")[:200]:
        raise CheckpointError(f"{out}: exists and is not a report seqae wrote; choose another -o (nothing is overwritten)")


def write_report(run_dirs: list[str | os.PathLike], out: str | os.PathLike | None = None, device: str = "cpu",
                 figures: bool = True) -> Path:
    """Write the report of ``run_dirs`` to ``out`` (default: ``RUN/report.html`` for one run, ``report.html``
    for several) and return its path. ``figures=False`` leaves out the family's figures and audio (which
    load the model and its evaluation data); the training curves and tables stay."""
    from seqae import api

    dirs = [Path(r) for r in run_dirs]
    for run_dir in dirs:
        check_run(run_dir)
    out = Path(out) if out else (dirs[0] / "report.html" if len(dirs) == 1 else Path("report.html"))
    check_output(out)
    anchors = [f"run-{i + 1}" for i in range(len(dirs))]
    body = "<nav><ul>" + "".join(f'<li><a href="#{a}">{esc(d.name)}</a></li>' for a, d in zip(anchors, dirs)) + "</ul></nav>"
    body += comparison_section(dirs) if len(dirs) > 1 else ""
    with tempfile.TemporaryDirectory() as tmp:
        for i, (run_dir, anchor) in enumerate(zip(dirs, anchors)):
            folder = Path(tmp) / str(i)
            paths = (api.plot(run_dir, folder, device=device) if figures
                     else api.training_figures(run_dir, run_config(run_dir).get("model", {}).get("family", "?"), folder))
            body += run_section(run_dir, paths, anchor)
        title = f"seqae report: {dirs[0].name}" if len(dirs) == 1 else f"seqae report: {len(dirs)} runs"
        checkpoint.atomic_write(out, page(title, body))
    return out
