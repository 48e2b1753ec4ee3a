"""The catalogue folder's data files (``midnite.store.site_files``): names, plan, examples."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from midnite import records as rec
from midnite.errors import UsageError
from midnite.store import PathError
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


def test_plan_keys_must_be_the_folder_of_their_layer(tmp_path):
    entry = {"units": 1, "views": ["channel"], "planned": 1, "done": 1}
    layers = {key: {**entry, "layer": key} for key in ("/abs", "../x", "a/b", "x\0y", "n" * 256)}
    layers["..-x"] = {**entry, "layer": "../x"}  # the folder of layer '../x': kept
    layers["liar"] = {**entry, "layer": "conv"}  # a key that is not its layer's folder
    layers["conv"] = {**entry, "layer": "conv"}
    rec.write_json(tmp_path / sf.PLAN, {"format": sf.PLAN_FORMAT, "model": "m", "layers": layers})
    assert sorted(sf.read_plan(tmp_path)[1]) == ["..-x", "conv"]
    assert sf.layer_folder("..") == "--" and sf.layer_folder("../x") == "..-x"
    with pytest.raises(PathError, match=r"at most 255 bytes in UTF-8, got 300 bytes"):
        sf.layer_folder("n" * 300)
    with pytest.raises(PathError, match=r"at most 255 bytes"):
        sf.write_plan(tmp_path, "m", [{**entry, "layer": "n" * 300}])


def test_a_damaged_plan_is_named_and_written_again(tmp_path):
    (tmp_path / sf.PLAN).write_text("[" * 200_000 + "]" * 200_000)
    said: list[str] = []
    entry = {"layer": "conv", "units": 1, "views": ["channel"], "planned": 1, "done": 0}
    sf.write_plan(tmp_path, "m", [entry], report=said.append)
    assert len(said) == 1 and "catalogue.json' is damaged (nests 200000 levels deep" in said[0]
    assert sf.read_plan(tmp_path) == ("m", {"conv": entry})
    (tmp_path / sf.PLAN).write_text('{"format": "other/1"}')
    assert sf.read_plan(tmp_path, said.append) == ("", {})
    assert "is damaged (not a midnite.catalogue/1 file)" in said[-1]


def test_examples_behind_symlinks_are_neither_read_nor_written(tmp_path):
    outside = tmp_path / "outside"
    (outside / "examples").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(outside / "examples" / "a.png")
    rows = [{"file": "examples/a.png", "value": 1.0, "box": None}]
    doc = {"format": sf.EXAMPLES_FORMAT, "layer": "conv", "units": {"0": rows}, "key": 1}
    rec.write_json(outside / sf.EXAMPLES, doc)
    out = tmp_path / "out"
    out.mkdir()
    (out / "conv").symlink_to(outside, target_is_directory=True)
    assert sf.read_examples(out / "conv") == {} and sf.read_examples_key(out, "conv") is None
    with pytest.raises(PathError, match=r"is a symbolic link; midnite writes only into"):
        sf.write_examples(out, None, ["conv"])  # type: ignore[arg-type]  # refused first
    (out / "conv").unlink()
    (out / "conv" / "examples").mkdir(parents=True)
    (out / "conv" / "examples" / "a.png").symlink_to(outside / "examples" / "a.png")
    rec.write_json(out / "conv" / sf.EXAMPLES, doc)
    assert sf.read_examples(out / "conv") == {0: []}  # a symlinked example file is left out
    assert sf.damaged_examples(out, "conv") == ["examples/a.png: a symbolic link (not followed)"]


def test_damaged_examples_checks_each_file_against_its_sha256(tmp_path):
    layer = tmp_path / "conv"
    (layer / "examples").mkdir(parents=True)
    data = {}
    for name, colour in (("a", "red"), ("b", "blue"), ("c", "cyan")):
        Image.new("RGB", (4, 4), colour).save(layer / "examples" / f"{name}.png")
        data[name] = rec.sha256_file(layer / "examples" / f"{name}.png")
    rows = [
        {"file": f"examples/{n}.png", "value": 1.0, "box": None, "sha256": data[n]} for n in data
    ]
    rows.append({"file": "../a.png", "value": 1.0, "box": None})
    doc = {"format": sf.EXAMPLES_FORMAT, "layer": "conv", "units": {"0": rows, "1": rows[:1]}}
    rec.write_json(layer / sf.EXAMPLES, doc)
    assert sf.damaged_examples(tmp_path, "conv") == ["../a.png: not a file name under examples/"]
    (layer / "examples" / "a.png").unlink()
    (layer / "examples" / "b.png").write_bytes(b"\x89PNG")
    assert sf.damaged_examples(tmp_path, "conv") == [
        "examples/a.png: missing",
        "examples/b.png: does not match its SHA-256 (changed or truncated)",
        "../a.png: not a file name under examples/",
    ]
    assert [r["file"] for r in sf.read_examples(layer)[0]] == ["examples/c.png"]
