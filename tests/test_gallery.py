"""The static gallery page (``midnite.gallery``)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from midnite import gallery
from midnite import records as rec

RUN = {"model": "tiny.py:net", "weights": "0123456789abcdef", "size": [8, 8], "steps": 3,
       "lr": 0.05, "seed": 0, "batch": 8, "device": "cpu", "recipe": "feature"}  # fmt: skip


def record_of(folder: Path, png: str, layer: str, unit: int, objective: str = "channel",
              final: float | None = 1.0, **extra) -> dict:  # fmt: skip
    """The smallest valid ``midnite.record/2`` of the PNG ``folder/png``."""
    return {
        "format": rec.FORMAT,
        "model": RUN["model"],
        "layer": layer,
        "unit": unit,
        "objective": objective,
        "key": {**RUN, "layer": layer, "objective": objective, "unit": unit, "batch_units": [unit]},
        "run": RUN,
        "activation": {"start": 0.0, "final": final},
        "metrics": {"total_variation": 0.25},
        "image": {"file": png, "sha256": rec.sha256_file(folder / png), "height": 8, "width": 8},
        **extra,
    }


def make_result(folder: Path, layer: str, unit: int, final: float | None, **extra) -> str:
    """A PNG plus a record as ``midnite render`` writes them; returns the stem."""
    stem = rec.unit_stem(layer, "channel", unit)
    Image.new("RGB", (8, 8), (unit * 20, 0, 0)).save(folder / f"{stem}.png")
    record = record_of(folder, f"{stem}.png", layer, unit, final=final, **extra)
    rec.write_json(folder / f"{stem}.json", record)
    return stem


class Tiles(HTMLParser):
    """Collects each tile's attributes, image source and links."""

    def __init__(self):
        super().__init__()
        self.tiles: list[dict] = []
        self.scripts = 0
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "figure" and "tile" in attrs.get("class", ""):
            self.tiles.append({"attrs": attrs, "img": None, "links": []})
        elif tag == "img" and self.tiles:
            self.tiles[-1]["img"] = attrs["src"]
        elif tag == "a" and self.tiles:
            self.tiles[-1]["links"].append(attrs["href"])
        if tag == "script":
            self.scripts += 1
            if "src" in attrs:
                self.external.append(attrs["src"])
        if tag == "link":
            self.external.append(attrs.get("href", ""))


def parse(html: str) -> Tiles:
    parser = Tiles()
    parser.feed(html)
    return parser


def test_build_writes_one_tile_per_unit_with_relative_links(tmp_path):
    make_result(tmp_path, "conv", 2, 0.5)
    make_result(tmp_path, "conv", 0, 1.5)
    make_result(tmp_path, "conv", 10, -0.25)
    page = gallery.build(tmp_path)
    assert page == tmp_path / gallery.INDEX
    html = page.read_text(encoding="utf-8")
    tiles = parse(html).tiles
    # default order: by layer, then unit (numerically, 10 after 2)
    assert [t["attrs"]["data-unit"] for t in tiles] == ["0", "2", "10"]
    assert [t["attrs"]["data-order"] for t in tiles] == ["0", "1", "2"]
    assert [float(t["attrs"]["data-activation"]) for t in tiles] == [1.5, 0.5, -0.25]
    assert tiles[0]["img"] == "conv_channel_0000.png"
    assert tiles[0]["links"] == ["conv_channel_0000.png", "conv_channel_0000.json"]
    assert "3 units · model tiny.py:net · layer conv · objective channel" in html
    assert 'activation <span class="act">1.5</span>' in html


def test_page_is_self_contained(tmp_path):
    make_result(tmp_path, "conv", 0, 1.0)
    html = gallery.build(tmp_path).read_text(encoding="utf-8")
    parsed = parse(html)
    assert parsed.external == []  # no external scripts or stylesheets
    assert parsed.scripts == 1
    assert not re.search(r"(?:src|href)=\"(?:https?:|//|/)", html)  # only relative links
    assert 'id="sort-unit"' in html and 'id="sort-activation"' in html
    assert 'loading="lazy"' not in html  # every image loads at once, also off-screen


def test_names_are_escaped_and_quoted(tmp_path):
    layer = 'a<b>&"c'
    stem = make_result(tmp_path, layer, 1, 2.0)
    assert stem == "a-b-c_channel_0001"
    # a record whose file name needs URL quoting
    weird = tmp_path / "x y#1.png"
    Image.new("RGB", (4, 4)).save(weird)
    record = record_of(tmp_path, "x y#1.png", "", 3, "class", final=float("nan"))
    rec.write_json(tmp_path / "x y#1.json", record)
    html = gallery.build(tmp_path).read_text(encoding="utf-8")
    tiles = parse(html).tiles
    assert len(tiles) == 2
    assert "<b>a&lt;b&gt;&amp;&quot;c</b>" in html
    assert 'data-layer="a&lt;b&gt;&amp;&quot;c"' in html
    output = next(t for t in tiles if t["attrs"]["data-unit"] == "3")
    assert output["img"] == "x%20y%231.png"
    assert output["links"][-1] == "x%20y%231.json"
    assert output["attrs"]["data-activation"] == ""  # NaN was stored as null: unknown
    assert "(output)" in html and 'activation <span class="act">n/a</span>' in html


def test_a_record_without_png_is_damaged_and_foreign_json_is_left_out(tmp_path):
    make_result(tmp_path, "conv", 0, 1.0)
    stem = make_result(tmp_path, "conv", 1, 1.0)
    (tmp_path / f"{stem}.png").unlink()
    (tmp_path / "package.json").write_text('{"name": "not a record"}')
    (tmp_path / "broken.json").write_text("{")  # not a unit's name, no PNG beside it
    html = gallery.build(tmp_path).read_text(encoding="utf-8")
    tiles = parse(html).tiles
    assert [t["attrs"]["data-unit"] for t in tiles] == ["0", "1"]
    assert tiles[1]["attrs"]["class"] == "tile damaged" and tiles[1]["img"] is None
    assert "damaged: its image &#x27;conv_channel_0001.png&#x27; is missing" in html
    assert "1 unit · 1 damaged · model tiny.py:net" in html


def test_empty_folder_gets_a_page_saying_so(tmp_path):
    html = gallery.build(tmp_path).read_text(encoding="utf-8")
    assert parse(html).tiles == []
    assert "No results yet." in html and "0 units" in html


def test_build_rejects_a_missing_folder(tmp_path):
    with pytest.raises(ValueError, match=r"existing folder of results, got .*nowhere"):
        gallery.build(tmp_path / "nowhere")


def test_page_title_and_sort_across_layers():
    records = [
        (Path("b_channel_0001.json"), {"layer": "b", "unit": 1, "image": {"file": "b.png"}}),
        (Path("a_channel_0009.json"), {"layer": "a", "unit": 9, "image": {"file": "a9.png"}}),
        (Path("a_channel_0002.json"), {"layer": "a", "unit": 2, "image": {"file": "a2.png"}}),
    ]
    html = gallery.page(records, title="My <run>")
    assert "<title>My &lt;run&gt;</title>" in html
    tiles = parse(html).tiles
    assert [(t["attrs"]["data-layer"], t["attrs"]["data-unit"]) for t in tiles] == [
        ("a", "2"),
        ("a", "9"),
        ("b", "1"),
    ]
