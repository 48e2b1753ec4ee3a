"""The pages floor (``midnite.pages``): the shared renderer, escaping, one look, timing apart."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

import midnite.gallery
import midnite.site
from midnite import records as rec
from midnite.errors import UsageError
from midnite.pages import catalogue, gallery, templating
from midnite.store import site_files
from test_gallery import RUN, record_of

EVIL = "<script>alert(1)</script>\"onerror=alert(2) x='"
# a file name cannot hold "/", so "</script>" cannot be in one; the rest can
EVIL_FILE = '<script>"onerror=alert(3)'


class Page(HTMLParser):
    """Every tag with its attributes, every text, and the bodies of the scripts."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"
        if self._in_script:
            self.scripts.append("")

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data
        else:
            self.text.append(data)

    def values(self) -> list[str]:
        return [v or "" for _, attrs in self.tags for v in attrs.values()]


def assert_inert(html: str, scripts: int) -> Page:
    """No planted tag or handler became markup: only our ``scripts`` and no ``on*`` attribute."""
    page = Page(html)
    assert [t for t, _ in page.tags].count("script") == scripts
    assert html.count("</script>") == scripts and html.lower().count("<script") == scripts
    assert not [(t, a) for t, attrs in page.tags for a in attrs if a.startswith("on")]
    return page


# the renderer ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shown"),
    [(1.23456, "1.235"), (3, "3"), (-0.0001234, "-0.0001234"), (float("nan"), "n/a"),
     (float("inf"), "n/a"), (None, "n/a"), (True, "n/a"), ("4", "n/a")],
)  # fmt: skip
def test_fmt_shows_finite_numbers_only(value, shown):
    assert templating.fmt(value) == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [(0.1927, "0.19"), (1, "1.00"), (0.005, "0.01"), (float("nan"), "n/a"), (None, "n/a"),
     (False, "n/a"), ("0.5", "n/a")],
)  # fmt: skip
def test_share_shows_a_fraction_with_two_decimals(value, shown):
    assert templating.share(value) == shown


def test_url_quotes_all_but_slashes():
    assert templating.url('a b#1?"<.png') == "a%20b%231%3F%22%3C.png"
    assert templating.url(Path("examples/x y.png")) == "examples/x%20y.png"


def test_json_script_cannot_end_its_script():
    value = {"l": "</script><b>&\u2028\u2029", "u": 3}
    text = str(templating.json_script(value))
    for bad in ("<", ">", "&", "\u2028", "\u2029"):
        assert bad not in text
    assert "\\u003c/script\\u003e" in text and "\\u2028\\u2029" in text
    assert json.loads(text) == value


def test_static_files_and_templates_come_from_the_package():
    css = templating.static("midnite.css")
    assert ".grid" in css and ".damaged-note" in css
    assert "sortTiles" in templating.static("gallery.js")
    with pytest.raises(UsageError, match=r"no static file 'x.css'.*midnite.css"):
        templating.static("x.css")
    with pytest.raises(UsageError, match=r"no page template 'nope.html'.*gallery.html"):
        templating.render("nope.html")


def test_the_environment_escapes_and_refuses_undefined_names():
    env = templating.environment()
    assert env.autoescape is not False
    html = templating.render("base.html", title=EVIL)
    assert EVIL not in html and "<title>&lt;script&gt;alert(1)&lt;/script&gt;&quot;" in html
    with pytest.raises(Exception, match="title"):
        templating.render("base.html")


def test_old_import_paths_are_the_same_modules():
    assert midnite.gallery is gallery and midnite.site is catalogue
    assert midnite.site.write_examples is site_files.write_examples
    assert midnite.site.unit_page is site_files.unit_page and midnite.site.INDEX == "index.html"


# one look ----------------------------------------------------------------------------------------


def unit_folder(folder: Path, stem: str, layer: str, unit: int, png: str | None = None,
                **extra) -> Path:  # fmt: skip
    """A PNG and a valid record ``<stem>.json`` in ``folder``; returns the record's path."""
    folder.mkdir(parents=True, exist_ok=True)
    png = png or f"{stem}.png"
    Image.new("RGB", (8, 8), (200, 40 * unit, 0)).save(folder / png)
    record = {**record_of(folder, png, layer, unit), **extra}
    return rec.write_json(folder / f"{stem}.json", record)


def catalogue_folder(root: Path, layer: str = "conv", **extra) -> Path:
    out = root / "cat"
    for unit in range(3):
        unit_folder(out / site_files.layer_folder(layer), f"channel_{unit:04d}", layer, unit,
                    **extra)  # fmt: skip
    return out


def test_gallery_and_catalogue_share_one_stylesheet_and_base(tmp_path):
    unit_folder(tmp_path / "run", "conv_channel_0000", "conv", 0)
    pages = [gallery.build(tmp_path / "run")]
    out = catalogue_folder(tmp_path)
    catalogue.build_site(out)
    pages += [out / "index.html", out / "conv" / "index.html", out / "conv" / "0001.html"]
    css = str(templating.static("midnite.css"))
    for page in pages:
        text = page.read_text()
        assert f"<style>\n{css}</style>" in text, page
        assert text.startswith('<!DOCTYPE html>\n<html lang="en">'), page
        assert '<p class="meta">' in text and "<h1>" in text, page


# identity and timing -----------------------------------------------------------------------------


def test_unit_page_prints_settings_once_and_timing_apart(tmp_path):
    out = tmp_path / "cat"
    for view, seconds in (("channel", 3.21), ("negative", 1.0), ("diversity", 0.04)):
        unit_folder(out / "conv", f"{view}_0000", "conv", 0, objective=view, view=view,
                    seconds=seconds, created="2024-01-01T00:00:00+00:00")  # fmt: skip
    catalogue.build_site(out)
    html = (out / "conv" / "0000.html").read_text()
    page = Page(html)
    assert html.count('<table class="settings">') == 1 and html.count("<th>steps</th>") == 1
    settings = html.split('<table class="settings">')[1].split("</table>")[0]
    assert "<th>lr</th><td>0.05</td>" in settings and "<th>size</th><td>[8, 8]</td>" in settings
    assert "seconds" not in settings and "3.2" not in settings and "2024" not in settings
    took = "took 3.2 s (channel), 1.0 s (negative), 0.0 s (diversity) on this machine"
    assert took in "".join(page.text)  # in the views' order, not the files'

    assert "2024-01-01" not in html  # the creation time is not shown at all
    results = html.split('<table class="results">')[1].split("</table>")[0]
    names = ("channel_0000.json", "negative_0000.json", "diversity_0000.json")
    assert [results.index(f">{n}<") for n in names] == sorted(
        results.index(f">{n}<") for n in names
    )
    assert results.count(">total_variation</th>") == 1


def test_settings_that_differ_between_views_are_named_per_view(tmp_path):
    out = tmp_path / "cat"
    unit_folder(out / "conv", "channel_0000", "conv", 0, view="channel")
    unit_folder(out / "conv", "negative_0000", "conv", 0, objective="negative", view="negative",
                run={**RUN, "seed": 7})  # fmt: skip
    catalogue.build_site(out)
    html = (out / "conv" / "0000.html").read_text()
    assert "<th>seed</th><td>channel: 0; negative: 7</td>" in html
    assert "<th>steps</th><td>3</td>" in html


# escaping ----------------------------------------------------------------------------------------


def test_markup_in_a_gallery_is_inert(tmp_path):
    folder = tmp_path / "run"
    unit_folder(folder, "conv_channel_0000", EVIL, 0, png=f"{EVIL_FILE}.png", model=EVIL,
                objective=EVIL, metrics={EVIL: 1.0})  # fmt: skip
    # a damaged unit whose reason names a planted file name
    path = unit_folder(folder, "conv_channel_0001", EVIL, 1, png=f"{EVIL_FILE}1.png")
    (folder / f"{EVIL_FILE}1.png").unlink()
    html = gallery.build(folder, title=EVIL).read_text()
    page = assert_inert(html, scripts=1)
    text = "".join(page.text)
    assert EVIL in text and f"its image '{EVIL_FILE}1.png' is missing" in text
    tile = next(attrs for tag, attrs in page.tags if tag == "figure" and attrs["data-unit"] == "0")
    assert tile["data-layer"] == EVIL
    img = next(attrs for tag, attrs in page.tags if tag == "img")
    assert img["src"] == templating.url(f"{EVIL_FILE}.png") and EVIL in img["title"]
    assert templating.url(path.name) in page.values()


def test_markup_in_a_catalogue_is_inert(tmp_path):
    out = catalogue_folder(tmp_path, EVIL, model=EVIL, run={**RUN, "device": EVIL},
                           metrics={EVIL: 2.0})  # fmt: skip
    layer = out / site_files.layer_folder(EVIL)
    example = f"examples/{EVIL_FILE}.png"  # markup in an example's file name
    nested = f"examples/{EVIL}.png"  # "</script>" makes it a nested path: never an example
    for name in (example, nested):
        (layer / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8)).save(layer / name)
    rows = [{"file": name, "value": 1.0, "box": [0, 0, 4, 4]} for name in (example, nested)]
    doc = {"format": site_files.EXAMPLES_FORMAT, "layer": EVIL, "units": {"1": rows}}
    rec.write_json(layer / site_files.EXAMPLES, doc)
    catalogue.build_site(out)
    index = assert_inert((out / "index.html").read_text(), scripts=3)
    assert EVIL in "".join(index.text)
    units = json.loads(index.scripts[0])
    assert {u["l"] for u in units} == {EVIL}
    assert json.loads(index.scripts[1]) == [site_files.layer_folder(EVIL)]
    assert EVIL in "".join(assert_inert((layer / "index.html").read_text(), scripts=1).text)
    unit = assert_inert((layer / "0001.html").read_text(), scripts=0)
    text = "".join(unit.text)
    assert text.count(EVIL) >= 4  # title, meta line, the device setting, the metric's name
    srcs = [attrs["src"] for tag, attrs in unit.tags if tag == "img"]
    assert templating.url(example) in srcs and templating.url(nested) not in srcs


def test_read_catalogue_orders_layers_by_the_plan_and_adds_planned_ones(tmp_path):
    out = catalogue_folder(tmp_path, "conv")
    unit_folder(out / "fc", "channel_0000", "fc", 0)
    (out / ".hidden").mkdir()
    entry = {"units": 3, "views": ["channel"], "planned": 3, "done": 0}
    site_files.write_plan(
        out, "planned-net", [{**entry, "layer": "later"}, {**entry, "layer": "fc"}]
    )
    model, layers, plan = catalogue.read_catalogue(out)
    assert model == "planned-net" and list(plan) == ["later", "fc"]
    assert [(x.folder, x.name, sorted(x.units)) for x in layers] == [
        ("later", "later", []),
        ("fc", "fc", [0]),
        ("conv", "conv", [0, 1, 2]),
    ]
    assert layers[2].model == RUN["model"] and layers[2].views() == ["channel"]
    with pytest.raises(UsageError, match=r"existing catalogue folder, got .*nowhere"):
        catalogue.read_catalogue(tmp_path / "nowhere")
