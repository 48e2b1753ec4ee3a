"""A site people want to browse (#21): thumbnails, the first screen's weight, sorting, class
names, trust and concepts beside the units, escaping, and a run stopped by SIGTERM."""

from __future__ import annotations

import functools
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from midnite import records as rec
from midnite.errors import UsageError
from midnite.pages import catalogue, classes
from midnite.store import site_files
from test_gallery import record_of
from test_pages import EVIL, EVIL_FILE, assert_inert

FIRST_SCREEN = 300  # tiles: more than a 1920 x 1080 screen shows (about 19 x 7 at 80 px)


def render_like(unit: int, side: int = 224) -> Image.Image:
    """A picture with a render's texture: smooth colour blobs plus fine noise."""
    rng = np.random.default_rng(unit)
    base = Image.fromarray(rng.integers(0, 255, (14, 14, 3), dtype=np.uint8))
    smooth = np.asarray(base.resize((side, side), Image.Resampling.BICUBIC), dtype=np.int16)
    noisy = smooth + rng.integers(-24, 24, smooth.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


@functools.cache
def png_bytes(texture: int, side: int) -> bytes:
    """``render_like(texture, side)`` as PNG bytes (64 textures serve 1,000 units: encoding
    noise is the slowest part of a big fixture)."""
    data = io.BytesIO()
    render_like(texture, side).save(data, format="PNG", compress_level=1)
    return data.getvalue()


def write_unit(folder: Path, layer: str, unit: int, view: str = "channel",
               final: float = 1.0, side: int = 224) -> Path:  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{view}_{unit:04d}"
    (folder / f"{stem}.png").write_bytes(png_bytes(unit % 64, side))
    record = record_of(folder, f"{stem}.png", layer, unit, objective=view, final=final,
                       view=view, catalogue=True)  # fmt: skip
    record["image"].update(height=side, width=side)
    return rec.write_json(folder / f"{stem}.json", record)


def plan(out: Path, layer: str, units: int, done: int, shape: list[int] | None = None,
         classes: list[str] | None = None) -> None:  # fmt: skip
    entry = {"layer": layer, "units": units, "views": ["channel"], "planned": units,
             "done": done, "shape": shape}  # fmt: skip
    site_files.write_plan(out, "net", [entry], classes=classes)


@pytest.fixture(scope="module")
def big_layer(tmp_path_factory) -> Path:
    """A catalogue with one 1,000-unit layer, its site built."""
    out = tmp_path_factory.mktemp("big")
    for unit in range(1000):
        write_unit(out / "conv", "conv", unit, final=float((unit * 37) % 101))
    plan(out, "conv", 1000, 1000, shape=[1000, 14, 14])
    catalogue.build_site(out)
    return out


def first_screen(page: str, folder: Path) -> tuple[int, int, list[str]]:
    """``(HTML bytes, bytes of the first FIRST_SCREEN tiles' images, their sources)``."""
    sources = re.findall(r'<img loading="lazy" src="([^"]+)"', page)[:FIRST_SCREEN]
    return len(page.encode()), sum((folder / s).stat().st_size for s in sources), sources


def test_the_first_screen_of_a_1000_unit_layer_weighs_under_3_mb(big_layer):
    page = (big_layer / "conv" / "index.html").read_text()
    html, images, sources = first_screen(page, big_layer / "conv")
    assert len(sources) == FIRST_SCREEN and all(s.endswith(".thumb.jpg") for s in sources)
    assert ".png" not in re.sub(r"<script.*?</script>", "", page, flags=re.S)  # no full PNG
    full = sum((big_layer / "conv" / s.replace(".thumb.jpg", ".png")).stat().st_size
               for s in sources)  # fmt: skip
    print(
        f"\nfirst screen: HTML {html / 1e3:.0f} KB + {FIRST_SCREEN} thumbnails "
        f"{images / 1e3:.0f} KB = {(html + images) / 1e6:.2f} MB (the PNGs: {full / 1e6:.1f} MB)"
    )
    assert html + images < 3_000_000
    assert images / FIRST_SCREEN < 8_000  # a few KB each
    tags = re.findall(r"<img [^>]*>", page)
    assert len(tags) == 1000
    assert all('loading="lazy"' in t and 'width="80"' in t and 'height="80"' in t for t in tags)


def test_tiles_sort_by_unit_activation_and_carry_both(big_layer):
    page = (big_layer / "conv" / "index.html").read_text()
    units = [int(u) for u in re.findall(r'data-unit="(\d+)"', page)]
    assert units == list(range(1000))  # by unit number first
    acts = dict(re.findall(r'data-unit="(\d+)" data-activation="([^"]+)"', page))
    assert float(acts["1"]) == 37.0 and float(acts["3"]) == 10.0
    assert 'data-sort="activation"' in page and 'data-sort="trust"' not in page  # no trust.json


def test_model_page_shows_shape_progress_and_a_strip(big_layer):
    index = (big_layer / "index.html").read_text()
    assert "1000×14×14" in index and "<td>1000 of 1000 planned</td>" in index
    strip = re.findall(r'<img loading="lazy" src="conv/(channel_\d+\.thumb\.jpg)"', index)
    assert strip == [f"channel_{u:04d}.thumb.jpg" for u in range(catalogue.STRIP)]


def test_a_thumbnail_is_made_once_and_again_when_its_png_changes(tmp_path):
    path = write_unit(tmp_path / "conv", "conv", 0, side=32)
    catalogue.build_site(tmp_path)
    thumb = tmp_path / "conv" / "channel_0000.thumb.jpg"
    with Image.open(thumb) as im:
        assert im.size == (80, 80) and im.format == "JPEG"
    made = thumb.stat().st_mtime_ns
    catalogue.build_site(tmp_path)
    assert thumb.stat().st_mtime_ns == made  # the same PNG: not made again
    Image.new("RGB", (64, 32), (255, 0, 0)).save(tmp_path / "conv" / "channel_0000.png")
    record = json.loads(path.read_text())
    record["image"].update(sha256=rec.sha256_file(tmp_path / "conv" / "channel_0000.png"),
                           height=32, width=64)  # fmt: skip
    rec.write_json(path, record)
    catalogue.build_site(tmp_path)
    with Image.open(thumb) as im:  # a new picture (a strip keeps its aspect)
        assert im.size == (160, 80) and im.getpixel((80, 40))[0] > 200
    assert site_files.thumbnail(tmp_path / "conv", "../x.png", "0") is None
    assert site_files.thumbnail(tmp_path / "conv", "missing.png", "0") is None


def test_output_units_are_named_by_their_imagenet_class(tmp_path):
    names = classes.imagenet_classes()
    assert len(names) == 1000 and names[0] == "tench" and names[281] == "tabby"
    for unit in (0, 281):
        write_unit(tmp_path / "output", "", unit, side=16)
    plan(tmp_path, "", 1000, 2, shape=[1000])
    catalogue.build_site(tmp_path)
    assert "(output) unit 281 · tabby" in (tmp_path / "output" / "0281.html").read_text()
    assert '<span class="class">tench</span>' in (tmp_path / "output" / "index.html").read_text()
    index = (tmp_path / "index.html").read_text()
    found = json.loads(re.search(r'id="units">(.*?)</script>', index).group(1))
    assert {u["u"]: u["n"] for u in found} == {0: "tench", 281: "tabby"}


def test_class_names_only_for_1000_units_or_the_models_own(tmp_path):
    assert classes.unit_names(10) is None and classes.unit_names(1000)[1] == "goldfish"
    assert classes.unit_names(2, ["cat", "dog"]) == ["cat", "dog"]
    with pytest.raises(UsageError, match="name all 3 output units, got 2"):
        classes.unit_names(3, ["cat", "dog"])
    with pytest.raises(UsageError, match="must be strings"):
        classes.unit_names(2, ["cat", 2])  # type: ignore[list-item]
    write_unit(tmp_path / "output", "", 1, side=16)
    plan(tmp_path, "", 5, 1, shape=[5])
    catalogue.build_site(tmp_path)
    assert 'class="class"' not in (tmp_path / "output" / "index.html").read_text()
    plan(tmp_path, "", 5, 1, shape=[5], classes=["a", "bee", "c", "d", "e"])  # recorded names
    catalogue.build_site(tmp_path)
    assert '<span class="class">bee</span>' in (tmp_path / "output" / "index.html").read_text()
    catalogue.build_site(tmp_path, class_names=["v", "w", "x", "y", "z"])  # given in Python
    assert '<span class="class">w</span>' in (tmp_path / "output" / "index.html").read_text()


def trusted(out: Path) -> Path:
    for unit, final in ((0, 1.0), (1, 3.0), (2, 2.0)):
        write_unit(out / "conv", "conv", unit, final=final, side=16)
    return out / "conv"


def test_trust_scores_sort_tiles_and_give_unit_pages_a_report_card(tmp_path):
    layer = trusted(tmp_path)
    trust = {
        "channel_0000": {
            "score": 0.9,
            "flagged": False,
            "verdict": "agrees with photos",
            "ci": [0.8, 0.95],
            "natural": 0.93,
            "path": 0.71,
            "recipe": "feature",
            "min_references": True,
        },
        "channel_0001": {"score": 0.2, "flagged": True, "verdict": EVIL},
        "channel_0002": {"score": 7, "flagged": "yes"},
    }  # out of range: left out
    rec.write_json(layer / site_files.TRUST, trust)
    catalogue.build_site(tmp_path)
    page = assert_inert((layer / "index.html").read_text(), scripts=1)
    tiles = [a for t, a in page.tags if t == "figure" and "data-unit" in a]
    assert [(a["data-unit"], a.get("data-trust")) for a in tiles] == [
        ("0", "0.9"), ("1", "0.2"), ("2", None)]  # fmt: skip
    assert "flagged" in tiles[1]["class"] and 'data-sort="trust"' in "".join(
        f'data-sort="{a.get("data-sort")}"' for t, a in page.tags if t == "button"
    )
    unit = assert_inert((layer / "0001.html").read_text(), scripts=0)
    text = "".join(unit.text)
    assert "score 0.20 · flagged · from max pictures only" in text and EVIL in text
    full = "".join(assert_inert((layer / "0000.html").read_text(), scripts=0).text)
    shown = ["score 0.90", "[0.80, 0.95]", "natural references 0.93", "path 0.71"]
    shown += ["recipe checked feature", "with min references", "agrees with photos"]
    assert [s for s in shown if s not in full] == []
    assert "natural references" not in text and "[" not in text.split("trust")[1]  # none given
    assert "trust" not in (layer / "0002.html").read_text().split("<h1>")[1].split("views")[0]
    (layer / site_files.TRUST).write_text("{damaged")
    catalogue.build_site(tmp_path)  # tolerated: no scores, no trust sort
    assert "data-trust" not in (layer / "index.html").read_text()


def test_concepts_grid_links_to_the_concept_pages(tmp_path):
    layer = trusted(tmp_path)
    summary = {"n": 3, "page": "concepts.html", "method": "nmf", "concepts": [
        {"i": 0, "page": "concept_0000.html", "image": "concept_0000.png"},
        {"i": 1, "page": "concept_0001.html", "image": None},
        {"i": 2, "page": "../../etc/passwd", "image": "x.png"},  # leads out: left out
        {"i": 3, "page": "javascript:alert(1)", "image": None}]}  # fmt: skip
    rec.write_json(layer / site_files.CONCEPTS_SUMMARY, summary)
    catalogue.build_site(tmp_path)
    page = (layer / "index.html").read_text()
    assert page.index('id="concepts"') < page.index('id="grid"')
    assert 'href="concepts.html">all concepts' in page and "(2, nmf)" in page
    assert 'src="concept_0000.png"' in page and "not rendered yet" in page
    assert "passwd" not in page and "javascript" not in page
    assert site_files.read_concepts_summary(tmp_path / "nowhere") is None
    (layer / site_files.CONCEPTS_SUMMARY).write_text("[1, 2]")
    catalogue.build_site(tmp_path)
    assert 'id="concepts"' not in (layer / "index.html").read_text()


def test_unit_page_views_side_by_side_alpha_and_links_up(tmp_path):
    for view, final in (("channel", 2.5), ("negative", -1.5)):
        path = write_unit(tmp_path / "conv", "conv", 3, view=view, final=final, side=16)
        alpha = tmp_path / "conv" / f"{view}_0003_alpha.png"
        Image.new("RGBA", (16, 16)).save(alpha)
        record = json.loads(path.read_text())
        record["alpha"] = {"file": alpha.name, "sha256": rec.sha256_file(alpha), "scale": 1.0,
                           "meaning": "m"}  # fmt: skip
        rec.write_json(path, record)
    from midnite.jobs.views import captions

    catalogue.build_site(tmp_path, captions())
    page = (tmp_path / "conv" / "0003.html").read_text()
    assert 'class="up" href="../index.html"' in page and 'class="up" href="index.html"' in page
    assert "minimizes" in page and "-1.5" in page  # the negative view in words, its value
    assert page.count('data-view="channel-alpha"') == 1 and 'src="negative_0003_alpha.png"' in page
    assert '<details class="record">' in page and page.count("<h2>settings</h2>") == 1
    assert 'src="channel_0003.png"' in page  # the full PNG on the unit page


def test_hostile_names_in_class_names_and_files_stay_text(tmp_path):
    folder = tmp_path / site_files.layer_folder(EVIL)
    write_unit(folder, EVIL, 0, side=16)
    (folder / f"{EVIL_FILE}.png").write_bytes((folder / "channel_0000.png").read_bytes())
    catalogue.build_site(tmp_path, class_names=[EVIL])  # not the output: no names
    assert_inert((tmp_path / "index.html").read_text(), scripts=3)
    write_unit(tmp_path / "output", "", 0, side=16)
    catalogue.build_site(tmp_path, class_names=[EVIL])
    index = assert_inert((tmp_path / "index.html").read_text(), scripts=3)
    assert any(u.get("n") == EVIL for u in json.loads(index.scripts[0]))
    page = assert_inert((tmp_path / "output" / "index.html").read_text(), scripts=1)
    assert EVIL in "".join(page.text)


CATALOGUE_MODEL = """
import torch
from torch import nn


def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1))
"""


def test_a_catalogue_stopped_by_sigterm_leaves_a_complete_site(tmp_path):
    model = tmp_path / "tiny.py"
    model.write_text(CATALOGUE_MODEL)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "midnite", "catalogue", f"{model}:net", "--layers", "2",
         "--units", "0-31", "--batch", "8", "--steps", "40", "--size", "32x32",
         "--views", "channel", "--no-progress", "--out", str(out)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while len(list((out / "2").glob("channel_*.json"))) < 8 and proc.poll() is None:
            assert time.monotonic() < deadline, "the first batch took over 5 minutes"
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err.decode()[-500:]
    done = len(list((out / "2").glob("channel_*.json")))
    assert 8 <= done < 32
    index = (out / "index.html").read_text()
    assert f"{done} of 32 done" in index
    assert (
        f"<td>{done} of 32 planned</td>" in index and f'<progress max="32" value="{done}">' in index
    )
    assert f"{done} of 32 done" in (out / "2" / "index.html").read_text()
    pages = sorted(p.name for p in (out / "2").glob("[0-9]*.html"))
    assert pages == [f"{u:04d}.html" for u in range(done)]
    assert len(list((out / "2").glob("*.thumb.jpg"))) == done
    assert not list(out.rglob("*.tmp*"))


ARTIFACTS = Path(os.environ.get("MIDNITE_ARTIFACTS", Path(__file__).parent / "artifacts"))


def loaded(driver) -> list[str]:
    """The thumbnails the page has loaded (file names); a lazy one out of view is not."""
    return driver.execute_script(
        "return Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0)"
        ".map(i => i.src.split('/').pop()).filter(n => n.endsWith('.thumb.jpg'))"
    )


@pytest.mark.slow
@pytest.mark.browser
def test_a_1000_unit_layer_in_chromium_loads_its_first_screen_only(big_layer, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.set_window_size(1920, 1080)
    page = big_layer / "conv" / "index.html"
    browser.get(page.as_uri())
    WebDriverWait(browser, 10).until(lambda d: d.execute_script(
        "return document.readyState") == "complete")  # fmt: skip
    first = loaded(browser)
    weight = page.stat().st_size + sum((page.parent / n).stat().st_size for n in first)
    print(f"\nChromium 1920x1080: {len(first)} of 1000 thumbnails fetched for the first "
          f"screen, {weight / 1e6:.2f} MB with the HTML")  # fmt: skip
    assert 0 < len(first) < 400 and weight < 3_000_000
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "site_layer.png"))
    browser.execute_script("window.scrollTo(0, document.body.scrollHeight)")
    WebDriverWait(browser, 10).until(lambda d: len(loaded(d)) > len(first))  # lazily, on scroll
    browser.find_element(By.CSS_SELECTOR, 'button[data-sort="activation"]').click()
    order = browser.execute_script(
        "return Array.from(document.querySelectorAll('#grid .tile'))"
        ".map(t => parseFloat(t.dataset.activation))"
    )
    assert order == sorted(order, reverse=True) and order[0] == 100.0


@pytest.mark.slow
@pytest.mark.browser
def test_search_finds_a_class_by_name_in_chromium(tmp_path, browser):
    from selenium.webdriver.common.by import By

    for unit in (0, 281, 282):
        write_unit(tmp_path / "output", "", unit, side=16)
    plan(tmp_path, "", 1000, 3, shape=[1000])
    catalogue.build_site(tmp_path)
    browser.get((tmp_path / "index.html").as_uri())
    search = browser.find_element(By.ID, "search")
    for query, found in (("tabby", ["(output) unit 281 · tabby"]),
                         ("CAT", ["(output) unit 282 · tiger cat"]),
                         ("output 0", ["(output) unit 0 · tench"]),
                         ("output", ["layer (output)"])):  # fmt: skip
        search.clear()
        search.send_keys(query)
        assert [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#results a")] == found
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "site_model.png"))


def test_a_python_run_names_the_output_by_the_models_class_names_and_shows_shapes(tmp_path):
    from torch import nn

    from midnite import jobs

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 3))  # fmt: skip
    model.class_names = ["ant", "bee", "cat"]  # type: ignore[assignment]
    shapes = {"": (3,), "0": (4, 14, 14)}
    settings = jobs.Settings(size=(16, 16), steps=1, batch=4)
    work = jobs.plan(model, "tiny", ["0", ""], shapes, settings=settings)
    jobs.run(work, tmp_path, model=model, progress=False, shapes=shapes)
    assert '<span class="class">bee</span>' in (tmp_path / "output" / "index.html").read_text()
    index = (tmp_path / "index.html").read_text()
    assert "4×14×14" in index and ">3</td>" in index and "7 of 7 done" in index
    jobs.run(work, tmp_path / "b", model=model, progress=False, class_names=["x", "y", "z"])
    assert "(output) unit 2 · z" in (tmp_path / "b" / "output" / "0002.html").read_text()
