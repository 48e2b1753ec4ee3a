"""The gallery in a real browser: headless Chromium opens ``index.html`` from ``file://``.

Needs Debian's ``chromium`` and ``chromium-driver`` packages and ``selenium``; skipped otherwise.
The screenshot goes to ``tests/artifacts/gallery.png`` (or ``$MIDNITE_ARTIFACTS/gallery.png``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from midnite.cli import main

from conftest import CHROMEDRIVER, CHROMIUM

ARTIFACTS = Path(os.environ.get("MIDNITE_ARTIFACTS", Path(__file__).parent / "artifacts"))

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,  # starts a real Chromium
    pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason=f"no Chromium at {CHROMIUM}"),
    pytest.mark.skipif(not CHROMEDRIVER, reason="no chromedriver on PATH"),
]

MODEL_SRC = """
import torch
from torch import nn


def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))
"""

UNITS = 6


def tile_units(driver) -> list[int]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#grid .tile'))"
        ".map(t => parseInt(t.dataset.unit))"
    )


def test_gallery_from_file_url(tmp_path, browser):
    model = tmp_path / "tiny.py"
    model.write_text(MODEL_SRC)
    out = tmp_path / "out"
    assert main(["render", f"{model}:net", "--layer", "2", "--units", f"0-{UNITS - 1}",
                 "--batch", "3", "--steps", "3", "--size", "32x32", "--no-progress",
                 "--out", str(out)]) == 0  # fmt: skip
    activation = {}
    for path in out.glob("*.json"):
        record = json.loads(path.read_text())
        activation[record["unit"]] = record["activation"]["final"]

    browser.get((out / "index.html").as_uri())
    assert browser.execute_script("return document.readyState") == "complete"
    # every image loaded
    sizes = browser.execute_script(
        "return Array.from(document.images).map(i => [i.complete, i.naturalWidth])"
    )
    assert len(sizes) == 2 * UNITS  # each unit's image and its alpha map (shown on request)
    assert all(done and width == 32 for done, width in sizes), sizes
    # one tile per unit, in unit order
    assert tile_units(browser) == list(range(UNITS))
    links = browser.execute_script(
        "return Array.from(document.querySelectorAll('#grid a.record')).map(a => a.href)"
    )
    assert [Path(href).name for href in links] == [f"2_channel_{u:04d}.json" for u in range(UNITS)]
    assert all(href.startswith("file://") for href in links)

    by_activation = sorted(range(UNITS), key=lambda u: -activation[u])
    assert by_activation != list(range(UNITS))  # so that sorting must move tiles
    browser.find_element("id", "sort-activation").click()
    assert tile_units(browser) == by_activation
    browser.find_element("id", "sort-activation").click()  # again: ascending
    assert tile_units(browser) == by_activation[::-1]
    browser.find_element("id", "sort-unit").click()
    assert tile_units(browser) == list(range(UNITS))
    browser.find_element("id", "sort-activation").click()

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "gallery.png"
    assert browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 1000
    print(f"gallery screenshot: {shot}")

    # the record is one click away and opens from file:// too
    browser.find_element("css selector", "#grid .tile a.record").click()
    body = browser.find_element("tag name", "body").text
    assert json.loads(body)["unit"] == by_activation[0]
