"""A concept page in a real browser, from ``file://``: its renders, heatmaps, crops and links
load (headless Chromium; skipped without it). Screenshot: ``artifacts/concept.png``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from PIL import Image

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
from midnite.evaluation.superposition import superposition_net


def net():
    return superposition_net()
"""

IMAGES_JS = (
    "return Array.from(document.images)"
    ".map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])"
)


def _photos(folder: Path, n: int) -> Path:
    from midnite.evaluation.superposition import superposition_images

    folder.mkdir()
    x, _ = superposition_images(n, seed=0)
    for i, img in enumerate((x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()):
        Image.fromarray(img).save(folder / f"{i:04d}.png")
    return folder


def test_concept_page_from_file_url(tmp_path, browser):
    model = tmp_path / "sup.py"
    model.write_text(MODEL_SRC)
    photos = _photos(tmp_path / "photos", 120)
    out = tmp_path / "out"
    common = ["--size", "32", "--steps", "2", "--no-progress", "--out", str(out)]
    assert main(["catalogue", f"{model}:net", "--layers", "mix", *common]) == 0
    assert main(["concepts", f"{model}:net", "--layer", "mix", "--images", str(photos),
                 "--n", "12", "--examples", "3", *common]) == 0  # fmt: skip
    folder = out / "mix"

    browser.get((folder / "concept_0000.html").as_uri())
    assert browser.execute_script("return document.readyState") == "complete"
    images = browser.execute_script(IMAGES_JS)
    renders = [i for i in images if i[0].startswith("concept_") and "/" not in i[0]]
    heats = [i for i in images if i[0].endswith("_heat.png")]
    crops = [i for i in images if i[0].endswith("_crop.png")]
    assert len(renders) == 2 and len(heats) == 3 and len(crops) == 3, images
    assert all(done and width > 0 for _, done, width in images), images
    classes = browser.execute_script(
        "return Array.from(document.querySelectorAll('table.classes td:first-child'))"
        ".map(td => td.textContent)"
    )
    assert classes and all(c.strip().isdigit() for c in classes)  # 12 classes: numbers only
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "concept.png"))

    # the units it is made of: their catalogue pages open
    units = browser.execute_script(
        "return Array.from(document.querySelectorAll('table.units a')).map(a => a.href)"
    )
    assert units and all(u.startswith("file://") for u in units)
    for href in units:
        browser.get(href)
        assert f"mix unit {int(Path(href).stem)}" in browser.title, (href, browser.title)
        assert all(done and w > 0 for _, done, w in browser.execute_script(IMAGES_JS))

    # the grid: every concept's tile links to its page, every image loads
    browser.get((folder / "concepts.html").as_uri())
    links = browser.execute_script(
        "return Array.from(document.querySelectorAll('a')).map(a => a.getAttribute('href'))"
    )
    assert {f"concept_{i:04d}.html" for i in range(12)} <= set(links)
    assert all(done and w > 0 for _, done, w in browser.execute_script(IMAGES_JS))
