"""The catalogue folder's data files (``midnite.store.site_files``): names, plan, examples."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from midnite import records as rec
from midnite.errors import UsageError
from midnite.store import site_files as sf


def test_unit_page_and_layer_folder_names():
    assert sf.unit_page(12) == "0012.html" and sf.unit_page(12345) == "12345.html"
    assert sf.layer_folder("_blocks.8") == "_blocks.8"
    assert sf.layer_folder("") == "output"
    assert sf.layer_folder('a<b>&"c') == "a-b-c"
    for bad in (-1, 1.0, True, "3"):
        with pytest.raises(UsageError, match=r"unit number >= 0, got"):
            sf.unit_page(bad)
    with pytest.raises(UsageError, match=r"layer name \(str\), got 3"):
        sf.layer_folder(3)  # type: ignore[arg-type]


def test_plan_round_trip_and_damaged_entries(tmp_path):
    entry = {"layer": "a.b", "units": 4, "views": ["channel"], "planned": 4, "done": 1}
    sf.write_plan(tmp_path, "net", [entry])
    assert sf.read_plan(tmp_path) == ("net", {"a.b": entry})
    doc = json.loads((tmp_path / sf.PLAN).read_text())
    doc["layers"]["bad"] = {**entry, "done": -1}
    doc["layers"]["worse"] = {**entry, "units": True}
    doc["layers"]["worst"] = "not an entry"
    rec.write_json(tmp_path / sf.PLAN, doc)
    assert sf.read_plan(tmp_path) == ("net", {"a.b": entry})  # the bad entries left out
    (tmp_path / sf.PLAN).write_text(json.dumps({**doc, "format": "other/1"}))
    assert sf.read_plan(tmp_path) == ("", {})
    (tmp_path / sf.PLAN).write_text("[" * 100_000)  # too deep to parse: damaged, not fatal
    assert sf.read_plan(tmp_path) == ("", {})
    assert sf.read_plan(tmp_path / "nowhere") == ("", {})


def test_read_examples_keeps_only_files_inside_the_layer_folder(tmp_path):
    layer = tmp_path / "conv"
    (layer / "examples").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(layer / "examples" / "a.png")
    Image.new("RGB", (4, 4)).save(tmp_path / "outside.png")
    rows = [
        {"file": "examples/a.png", "value": 2.5, "box": [0, 0, 2, 2]},
        {"file": "examples/a.png", "value": 1.0, "box": [0, 0, True, 2]},  # not four numbers
        {"file": "../outside.png", "value": 1.0, "box": None},
        {"file": str(tmp_path / "outside.png"), "value": 1.0, "box": None},
        {"file": "examples/missing.png", "value": 1.0, "box": None},
        {"value": 1.0},
    ]
    doc = {"format": sf.EXAMPLES_FORMAT, "layer": "conv", "units": {"3": rows, "x": rows},
           "key": {"k": 1}}  # fmt: skip
    rec.write_json(layer / sf.EXAMPLES, doc)
    assert sf.read_examples(layer) == {
        3: [
            {"file": "examples/a.png", "value": 2.5, "box": [0, 0, 2, 2]},
            {"file": "examples/a.png", "value": 1.0, "box": None},
        ]
    }
    assert sf.read_examples_key(tmp_path, "conv") == {"k": 1}
    assert sf.read_examples_key(tmp_path, "other") is None
    (layer / sf.EXAMPLES).write_text("{broken")
    assert sf.read_examples(layer) == {} and sf.read_examples_key(tmp_path, "conv") is None


def test_write_examples_refuses_a_bad_size(tmp_path):
    with pytest.raises(UsageError, match=r"size of at least 1 pixel, got 0"):
        sf.write_examples(tmp_path, None, ["conv"], size=0)  # type: ignore[arg-type]
