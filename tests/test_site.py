"""The catalogue's site (``midnite.site``): pages, links, stable addresses, damage, escaping."""

from __future__ import annotations

import json
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
from PIL import Image
from torch import nn

from midnite import site
from midnite.cli import main
from midnite.dataset_examples import top_examples

MODEL_SRC = """
import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.conv(x))


def net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.Sequential(Block(4, 4), Block(4, 3)),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(3, 5),
    )
"""

ARTIFACTS = Path(os.environ.get("MIDNITE_ARTIFACTS", Path(__file__).parent / "artifacts"))


def tiny_net() -> nn.Module:
    namespace: dict = {}
    exec(MODEL_SRC, namespace)
    return namespace["net"]()


def image_folder(root: Path, n: int = 6, size: int = 24) -> Path:
    """``n`` generated PNGs: a bright square at a different place on each."""
    folder = root / "images"
    folder.mkdir()
    for i in range(n):
        arr = np.zeros((size, size, 3), np.uint8)
        y, x = (5 * i) % (size - 6), (7 * i) % (size - 6)
        arr[y : y + 6, x : x + 6, i % 3] = 40 * (i + 1)
        Image.fromarray(arr).save(folder / f"img{i}.png")
    return folder


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory) -> Path:
    """A tiny real catalogue (two block layers and the class output) with examples for ``1.0``."""
    root = tmp_path_factory.mktemp("site")
    model = root / "tiny.py"
    model.write_text(MODEL_SRC)
    out = root / "cat"
    argv = ["catalogue", f"{model}:net", "--out", out, "--size", "16", "--steps", "2"]
    argv += ["--views", "channel,negative,diversity", "--no-progress"]
    assert main([str(a) for a in argv]) == 0
    images = image_folder(root)
    top = top_examples(tiny_net(), ["1.0"], images, k=3, size=24, progress=False)
    site.write_examples(out, top, ["1.0"])
    return out


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if (tag, name) in {("a", "href"), ("img", "src")} and value:
                self.links.append(value)


def links(page: Path) -> list[str]:
    parser = Links()
    parser.feed(page.read_text())
    return parser.links


def built(catalogue: Path, tmp_path: Path) -> Path:
    out = tmp_path / "cat"
    shutil.copytree(catalogue, out)
    assert site.build_site(out) == out / "index.html"
    return out


def test_every_page_exists_and_every_link_resolves(catalogue, tmp_path):
    out = built(catalogue, tmp_path)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["1.0", "1.1", "output"]
    for layer, units in (("1.0", 4), ("1.1", 3), ("output", 5)):
        assert (out / layer / "index.html").is_file()
        for u in range(units):
            assert (out / layer / f"{u:04d}.html").is_file()  # the stable address
    pages = sorted(out.rglob("*.html"))
    assert len(pages) == 1 + 3 + 4 + 3 + 5
    for page in pages:
        for link in links(page):
            target = urlsplit(link)
            assert not target.scheme and not target.netloc, (page, link)
            assert (page.parent / unquote(target.path)).resolve().is_file(), (page, link)
    index = (out / "index.html").read_text()
    assert 'href="1.0/index.html"' in index and 'href="1.1/index.html"' in index
    assert 'href="0002.html"' in (out / "1.0" / "index.html").read_text()
    assert ">(output)</a>" in index  # the class output: no diversity view
    assert 'data-view="diversity"' not in (out / "output" / "0004.html").read_text()


def test_unit_page_shows_views_record_settings_and_examples(catalogue, tmp_path):
    out = built(catalogue, tmp_path)
    page = (out / "1.0" / "0002.html").read_text()
    for view in ("channel", "negative", "diversity"):
        assert f'data-view="{view}"' in page and f'src="{view}_0002.png"' in page
        assert f'href="{view}_0002.json"' in page
    assert "<th>steps</th><td>2</td>" in page and "<th>size</th><td>[16, 16]</td>" in page
    assert "dataset examples" in page and page.count('class="box"') == 3
    doc = json.loads((out / "1.0" / "examples.json").read_text())
    assert doc["format"] == site.EXAMPLES_FORMAT and sorted(doc["units"]) == ["0", "1", "2", "3"]
    for row in doc["units"]["2"]:
        with Image.open(out / "1.0" / row["file"]) as im:
            h, w = im.height, im.width
        y0, x0, y1, x1 = row["box"]
        assert 0 <= y0 < y1 <= h and 0 <= x0 < x1 <= w
    assert "dataset examples" not in (out / "1.1" / "0000.html").read_text()


def test_write_examples_scales_boxes_to_the_saved_image(tmp_path):
    images = image_folder(tmp_path, size=40)
    top = top_examples(tiny_net(), ["1.0"], images, k=2, size=40, progress=False)
    site.write_examples(tmp_path / "out", top, ["1.0"], size=20)
    doc = json.loads((tmp_path / "out" / "1.0" / "examples.json").read_text())
    for unit, rows in doc["units"].items():
        assert len(rows) == 2
        for rank, row in enumerate(rows):
            with Image.open(tmp_path / "out" / "1.0" / row["file"]) as im:
                assert im.size == (20, 20)
            top_, left, bottom, right = top.box("1.0", int(unit), rank)
            assert row["box"][0] == top_ // 2 and row["box"][2] == -(-bottom // 2)
            assert row["box"][1] == left // 2 and row["box"][3] == -(-right // 2)


def test_rebuilding_gives_the_same_pages(catalogue, tmp_path):
    out = built(catalogue, tmp_path)
    first = {p: p.read_bytes() for p in out.rglob("*.html")}
    site.build_site(out)
    assert {p: p.read_bytes() for p in out.rglob("*.html")} == first


def test_damaged_units_are_shown_not_fatal(catalogue, tmp_path):
    out = tmp_path / "cat"
    shutil.copytree(catalogue, out)
    (out / "1.0" / "channel_0001.png").write_bytes(b"not the image")  # SHA-256 mismatch
    (out / "1.0" / "negative_0003.json").write_text('{"format": "midnite.rec')  # truncated
    record = json.loads((out / "1.1" / "channel_0000.json").read_text())
    del record["unit"]  # fails the schema
    (out / "1.1" / "channel_0000.json").write_text(json.dumps(record))
    (out / "1.0" / "examples.json").write_text("{broken")  # examples are optional
    site.build_site(out)
    page = (out / "1.0" / "0001.html").read_text()
    assert "channel damaged:" in page and "SHA-256" in page
    assert 'data-view="negative"' in page and 'src="negative_0001.png"' in page
    assert "negative damaged:" in (out / "1.0" / "0003.html").read_text()
    assert "damaged" in (out / "1.1" / "0000.html").read_text()
    layer = (out / "1.0" / "index.html").read_text()
    assert "2 damaged" in layer and "dataset examples" not in page
    assert "(1 damaged)" in (out / "index.html").read_text()


def test_strings_from_records_are_escaped(catalogue, tmp_path):
    out = tmp_path / "cat"
    shutil.copytree(catalogue, out)
    evil = '<b>x&"y</b>'
    for path in (out / "1.1").glob("*.json"):
        record = json.loads(path.read_text())
        record["layer"] = evil
        record["model"] = evil
        record["run"]["device"] = evil
        path.write_text(json.dumps(record))
    site.build_site(out)
    for page in [out / "index.html", out / "1.1" / "index.html", out / "1.1" / "0000.html"]:
        text = page.read_text()
        assert evil not in text, page
        assert "&lt;b&gt;x&amp;&quot;y&lt;/b&gt;" in text or "\\u003cb\\u003e" in text, page
    assert "<b>x" not in (out / "index.html").read_text()


EVIL_SRC = """
import torch
from torch import nn


def net():
    torch.manual_seed(0)
    m = nn.Sequential()
    m.add_module("stem", nn.Conv2d(3, 4, 3, padding=1))
    m.add_module('x<b>&"y', nn.Conv2d(4, 3, 3, padding=1))
    return m
"""


def test_a_real_layer_named_with_markup_is_escaped(tmp_path):
    model = tmp_path / "evil.py"
    model.write_text(EVIL_SRC)
    out = tmp_path / "cat"
    argv = ["catalogue", f"{model}:net", "--out", out, "--size", "16", "--steps", "2"]
    argv += ["--layers", 'x<b>&"y', "--units", "0-1", "--no-progress"]
    assert main([str(a) for a in argv]) == 0
    site.build_site(out)
    assert sorted(p.name for p in out.iterdir()) == ["catalogue.json", "index.html", "x-b-y"]
    for page in (out / "index.html", out / "x-b-y" / "index.html", out / "x-b-y" / "0001.html"):
        text = page.read_text()
        assert 'x<b>&"y' not in text and "<b>&" not in text, page
        assert "x&lt;b&gt;&amp;&quot;y" in text, page
        for link in links(page):
            assert (page.parent / unquote(urlsplit(link).path)).is_file(), (page, link)


def test_a_folder_without_records_gives_an_empty_index(tmp_path):
    assert site.build_site(tmp_path).is_file()
    with pytest.raises(ValueError, match="existing catalogue folder"):
        site.build_site(tmp_path / "missing")


# the browser -------------------------------------------------------------------------------------


def all_images_loaded(driver) -> list:
    return driver.execute_script(
        "return Array.from(document.images)"
        ".filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
    )


@pytest.mark.slow
@pytest.mark.browser
def test_site_in_chromium_from_file_url(catalogue, tmp_path, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    out = built(catalogue, tmp_path)
    for page in (out / "index.html", out / "1.0" / "index.html", out / "1.0" / "0002.html"):
        browser.get(page.as_uri())
        WebDriverWait(browser, 10).until(
            lambda d: d.execute_script("return document.readyState") == "complete"
        )
        assert browser.find_elements(By.TAG_NAME, "img") or page == out / "index.html"
        assert all_images_loaded(browser) == [], page
        if page.name == "0002.html":
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            browser.save_screenshot(str(ARTIFACTS / "site_unit.png"))
            boxes = browser.find_elements(By.CSS_SELECTOR, ".ex .box")
            assert len(boxes) == 3 and all(b.size["width"] > 0 for b in boxes)
    browser.get((out / "index.html").as_uri())
    search = browser.find_element(By.ID, "search")
    for query in ("output 3", "(output)/3"):
        search.clear()
        search.send_keys(query)
        hits = browser.find_elements(By.CSS_SELECTOR, "#results a")
        assert [h.text for h in hits] == ["(output) unit 3"], query
    for query in ("1.0 2", "0/2"):
        search.clear()
        search.send_keys(query)
        hits = browser.find_elements(By.CSS_SELECTOR, "#results a")
        assert [h.text for h in hits] == ["1.0 unit 2"], query
        assert unquote(hits[0].get_attribute("href")) == (out / "1.0" / "0002.html").as_uri()
    search.send_keys(Keys.ENTER)
    WebDriverWait(browser, 10).until(lambda d: d.current_url.endswith("/1.0/0002.html"))
    assert re.search(r"unit 2", browser.title)


def test_write_examples_of_a_flat_layer_has_no_boxes(tmp_path):
    images = image_folder(tmp_path)
    top = top_examples(tiny_net(), ["4"], images, k=2, size=24, progress=False)
    (path,) = site.write_examples(tmp_path / "out", top, ["4"])
    assert path == tmp_path / "out" / "4" / "examples.json"
    doc = json.loads(path.read_text())
    assert len(doc["units"]) == 5
    assert all(row["box"] is None for rows in doc["units"].values() for row in rows)


def test_plan_says_how_much_is_done_and_keeps_other_layers(catalogue, tmp_path):
    out = built(catalogue, tmp_path)
    entry = {"layer": "1.0", "units": 8, "views": ["channel"], "planned": 8, "done": 4}
    site.write_plan(out, "tiny", [entry])
    site.write_plan(out, "tiny", [{**entry, "layer": "9.9", "done": 0}])  # another layer
    site.build_site(out)
    index = (out / "index.html").read_text()
    assert "<td>4 of 8 planned</td>" in index and "<td>0 of 8 planned</td>" in index
    assert '<progress max="8" value="4">' in index and '<progress max="8" value="0">' in index
    assert (out / "9.9" / "index.html").is_file()  # planned, nothing rendered yet
    before = (out / site.PLAN).stat().st_mtime_ns
    site.write_plan(out, "tiny", [{**entry, "layer": "9.9", "done": 0}])  # the same again
    assert (out / site.PLAN).stat().st_mtime_ns == before
    site.write_plan(out, "other", [entry])  # another model: the plan starts afresh
    assert list(json.loads((out / site.PLAN).read_text())["layers"]) == ["1.0"]
    (out / site.PLAN).write_text("{not json")  # a damaged plan is ignored, not fatal
    site.build_site(out)
    assert "of 8<" not in (out / "index.html").read_text()
