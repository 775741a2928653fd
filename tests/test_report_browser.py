"""``seqae report`` in a real browser (slow; needs Chromium: ``apt-get install chromium`` on Debian):

    .venv/bin/python -m pytest -m slow tests/test_report_browser.py

Headless Chromium renders the report of a voice-conversion run (images and audio) at a laptop's and a
phone's width; the screenshots must not be blank, and a copy of the page with a checking script added
(the report itself has none) must find every image decoded and every audio clip playable.
"""

import shutil
import subprocess

import numpy as np
import pytest

from conftest import run_cli

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
pytestmark = [pytest.mark.slow, pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine")]

CHECK = """<script>
window.addEventListener("load", async () => {
  const broken = [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt);
  const clips = [...document.querySelectorAll("audio")];
  const states = await Promise.all(clips.map(a => new Promise(done => {
    if (a.readyState >= 1) { done("ok"); return; }
    a.addEventListener("loadedmetadata", () => done("ok"), {once: true});
    a.addEventListener("error", () => done("error: " + a.getAttribute("aria-label")), {once: true});
    a.preload = "auto"; a.load();
  })));
  const durations = clips.map(a => a.duration);
  const result = {images: document.images.length, broken, clips: clips.length, bad: states.filter(s => s !== "ok"), durations};
  document.body.setAttribute("data-check", JSON.stringify(result));
});
</script>"""


def chromium(*args, timeout=120):
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
                          capture_output=True, text=True, timeout=timeout)


def test_the_report_renders_and_every_image_and_clip_loads(runs, tmp_path, capsys):
    import json
    import re

    from PIL import Image

    run = tmp_path / "vc"
    shutil.copytree(runs["vc"], run)
    out = tmp_path / "report.html"
    assert run_cli(["report", run, "-o", out], capsys)[0] == 0
    for width, height in ((1280, 2000), (390, 2400)):  # a laptop, a phone
        shot = tmp_path / f"shot_{width}.png"
        chromium(f"--screenshot={shot}", f"--window-size={width},{height}", out.as_uri())
        pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
        assert pixels.shape == (height, width)
        assert pixels.std() > 20 and (pixels < 128).mean() > 0.01, (width, pixels.std())  # text and figures, not blank
    checked = tmp_path / "checked.html"
    checked.write_text(out.read_text().replace("</body>", CHECK + "</body>"))
    dom = chromium("--virtual-time-budget=20000", "--autoplay-policy=no-user-gesture-required", "--dump-dom",
                   checked.as_uri()).stdout
    found = re.search(r'data-check="([^"]*)"', dom)
    assert found, dom[-2000:]
    result = json.loads(found.group(1).replace("&quot;", '"'))
    assert result["images"] >= 4 and result["broken"] == [], result
    assert result["clips"] >= 3 and result["bad"] == [], result
    assert all(d > 0.1 for d in result["durations"]), result  # every clip decoded: it has a length
