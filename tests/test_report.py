"""``seqae report``: the HTML page's structure (self-contained, accessible, every image and clip decodable),
the comparison of several runs, the figures-beside-baselines table of ``seqae eval``, and the report's
refusal to replace a file it did not write. The page in a real browser: tests/test_report_browser.py."""

import base64
import json
import shutil
from html.parser import HTMLParser

import seqae
from seqae.figures import figure_rows, text_table

from conftest import expect_error, run_cli


class Page(HTMLParser):
    """Every element with its attributes, and the text of each table's cells."""

    def __init__(self, text: str):
        super().__init__()
        self.elements: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def all(self, tag: str) -> list[dict]:
        return [a for t, a in self.elements if t == tag]


def check_page(text: str) -> Page:
    """What every report must be: one HTML5 page in English, sized for phones, with nothing that runs or loads
    from elsewhere; every image a PNG with a description and every clip a WAV, inline; tables with headers."""
    assert text.startswith("<!DOCTYPE html>")
    page = Page(text)
    assert page.all("html")[0]["lang"] == "en"
    assert any(m.get("name") == "viewport" for m in page.all("meta"))
    assert not page.all("script") and not page.all("link") and not page.all("iframe")
    for attrs in page.elements:
        for name in ("src", "href"):
            value = attrs[1].get(name)
            assert value is None or value.startswith(("data:", "#")), value
    for img in page.all("img"):
        assert img["alt"].strip()
        assert base64.b64decode(img["src"].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    for clip in page.all("audio"):
        assert clip["aria-label"].strip()
        assert base64.b64decode(clip["src"].split(",", 1)[1])[:4] == b"RIFF"
    assert len(page.all("table")) == len(page.all("thead"))
    assert all(th.get("scope") in ("col", "row") for th in page.all("th"))
    return page


def copy_run(runs, name, tmp_path):
    run = tmp_path / name
    shutil.copytree(runs[name], run)
    return run


def test_report_of_an_evaluated_run(runs, tmp_path, capsys):
    run = copy_run(runs, "ae", tmp_path)
    info = json.loads((run / "run.json").read_text())
    info["sessions"][0]["command"] = ["seqae", "train", "recipe-7f3a.toml", "--set", "x=1"]
    (run / "run.json").write_text(json.dumps(info))
    result = seqae.evaluate(run)
    (run / "eval.json").write_text(json.dumps(result))
    code, err = run_cli(["report", run], capsys)
    assert code == 0, err
    text = (run / "report.html").read_text()
    page = check_page(text)
    alts = " ".join(i["alt"] for i in page.all("img"))
    assert "training curves" in alts and "reconstructions" in alts  # the curves and the family's figures
    words = " ".join(page.text)
    assert "What was trained" in words and "autoencoder" in words and "PCA" in words
    assert f"{result['test_mse']:.4g}" in words and f"{result['pca_mse']:.4g}" in words
    assert "seqae train recipe-7f3a.toml --set x=1" in words  # the session's command line (from run.json)
    # a second report replaces the first
    assert run_cli(["report", run, "--no-figures"], capsys)[0] == 0
    assert len(Page((run / "report.html").read_text()).all("img")) == 2  # curves only


def test_report_of_a_voice_conversion_run_has_clips_to_listen_to(runs, tmp_path, capsys):
    run = copy_run(runs, "vc", tmp_path)
    out = tmp_path / "vc.html"
    assert run_cli(["report", run, "-o", out], capsys)[0] == 0
    page = check_page(out.read_text())
    labels = [a["aria-label"] for a in page.all("audio")]
    assert len(labels) >= 3 and len(labels) % 3 == 0, labels
    for role in ("source", "target", "converted"):
        assert sum(label.startswith(role) for label in labels) == len(labels) // 3
    assert "Not evaluated" in " ".join(page.text)


def test_comparison_marks_the_settings_that_differ(runs, tmp_path, capsys):
    first, second = copy_run(runs, "ae", tmp_path / "a"), copy_run(runs, "ae", tmp_path / "b")
    config = second / "config.toml"
    config.write_text(config.read_text().replace("lr = 0.003", "lr = 0.01"))
    (first / "eval.json").write_text(json.dumps({"test_mse": 0.5, "pca_mse": 0.6}))
    out = tmp_path / "both.html"
    assert run_cli(["report", first, second, "-o", out, "--no-figures"], capsys)[0] == 0
    text = out.read_text()
    check_page(text)
    assert text.count('<tr class="differs"><th scope="row">train.lr</th><td>0.003</td><td>0.01</td>') == 1
    assert "not evaluated" in text and text.count("<section") == 3  # the comparison and each run


def test_report_never_replaces_a_file_it_did_not_write(runs, tmp_path, capsys):
    mine = tmp_path / "notes.html"
    mine.write_text("<p>my notes</p>")
    expect_error(["report", runs["ae"], "-o", mine, "--no-figures"], capsys, mine, "not a report seqae wrote")
    assert mine.read_text() == "<p>my notes</p>"
    expect_error(["report", tmp_path, "-o", tmp_path / "r.html"], capsys, tmp_path, "not a seqae run")
    expect_error(["report", runs["ae"], "-o", tmp_path / "missing" / "r.html"], capsys, "does not exist")


def test_figures_sit_beside_their_baselines():
    result = {"run_dir": "r", "step": 10, "perplexity": 50.0, "bigram_perplexity": 60.0, "shuffled_perplexity": 900.0,
              "summary_bigram_perplexity": 70.0, "lead_bigram_perplexity": 80.0, "summary_rouge1_f": 0.3,
              "lead8_rouge1_f": 0.25, "mse_ratio_to_pca": 0.9, "untrained_only": 1.0, "samples": ["a", "b"]}
    headings, rows = figure_rows(result)
    assert headings == ["figure", "this run", "bigram LM", "shuffled words", "Lead-N", "Lead-8"]
    table = {key: values for key, values in rows}
    assert table["perplexity"] == [50.0, 60.0, 900.0, None, None]
    assert table["summary_bigram_perplexity"] == [70.0, None, None, 80.0, None]  # bigram: the measure, lead: the baseline
    assert table["summary_rouge1_f"] == [0.3, None, None, None, 0.25]
    assert table["mse_ratio_to_pca"][1:] == [None] * 4  # a ratio to a baseline is the run's own figure
    assert table["untrained_only"] == [1.0, None, None, None, None]  # a baseline with nothing to sit beside: a row of its own
    assert "samples" not in table and "2 items: a ..." in text_table(result)


def printed(argv, capsys) -> str:
    from seqae.cli import main

    capsys.readouterr()
    assert main([str(a) for a in argv]) == 0
    return capsys.readouterr().out


def test_eval_table_shows_the_pca_baseline_beside_the_mse(runs, tmp_path, capsys):
    run = copy_run(runs, "ae", tmp_path)
    result = json.loads(printed(["eval", run, "--json"], capsys))
    lines = printed(["eval", run], capsys).splitlines()
    assert lines[0].startswith("figure") and "this run" in lines[0] and "PCA" in lines[0]
    mse = next(line.split() for line in lines if line.startswith("test_mse "))
    assert mse[1] == f"{result['test_mse']:.4g}" and f"{result['pca_mse']:.4g}" in mse
