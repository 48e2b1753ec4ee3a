"""The catalogue's own files checked like units: a plan or examples file beyond the JSON limits
is named and written again (never a blocked folder), damaged example PNGs are found by their
SHA-256 and computed again, and the images walk leaves the output folder out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from midnite.cli import main
from midnite.store import site_files

from conftest import CONV_MODEL_SRC

FAST = ["--steps", "2", "--size", "16", "--no-progress", "--layers", "0", "--units", "0-1"]
DEEP = "[" * 200_000 + "]" * 200_000


def run(*argv: object) -> int:
    return main([str(a) for a in argv])


def photos(folder: Path, n: int = 4) -> Path:
    g = torch.Generator().manual_seed(7)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        pixels = (torch.rand(20, 24, 3, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"p{i}.png")
    return folder


@pytest.fixture
def argv(tmp_path: Path) -> list[object]:
    (tmp_path / "tiny.py").write_text(CONV_MODEL_SRC)
    model = f"{tmp_path / 'tiny.py'}:net"
    return ["catalogue", model, "--out", tmp_path / "out", *FAST]


@pytest.mark.parametrize("name", ["catalogue.json", "0/examples.json"])
def test_a_file_nested_200000_deep_is_named_and_written_again(argv, tmp_path, capsys, name):
    out, images = tmp_path / "out", photos(tmp_path / "photos")
    assert run(*argv, "--images", images) == 0
    (out / name).write_text(DEEP)
    capsys.readouterr()
    assert run(*argv, "--images", images) == 0
    err = capsys.readouterr().err
    # named (the plan as the run starts, the examples by their pass), then written again
    assert f"{Path(name).name}' is damaged (nests 200000 levels deep" in err
    doc = json.loads((out / name).read_text())  # written again, well-formed
    assert doc["format"] in (site_files.PLAN_FORMAT, site_files.EXAMPLES_FORMAT)
    assert site_files.read_plan(out)[1]["0"]["done"] == 2
    assert site_files.read_examples(out / "0")  # the pages have their examples back


def test_deleted_and_corrupted_example_pngs_are_computed_again(argv, tmp_path, capsys):
    out, images = tmp_path / "out", photos(tmp_path / "photos")
    assert run(*argv, "--images", images) == 0
    files = sorted((out / "0" / "examples").iterdir())
    assert len(files) >= 2
    want = {f.name: f.read_bytes() for f in files}
    files[0].unlink()
    files[1].write_bytes(files[1].read_bytes()[:40])  # truncated
    assert len(site_files.damaged_examples(out, "0")) == 2
    shown = {r["file"] for rows in site_files.read_examples(out / "0").values() for r in rows}
    assert f"examples/{files[0].name}" not in shown and f"examples/{files[1].name}" not in shown
    capsys.readouterr()
    assert run(*argv, "--images", images) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "dataset examples of" in line]
    assert len(err) == 1 and "2 file(s) missing or changed" in err[0], err
    assert {f.name: f.read_bytes() for f in (out / "0" / "examples").iterdir()} == want
    assert site_files.damaged_examples(out, "0") == []
    capsys.readouterr()
    assert run(*argv, "--images", images) == 0  # now up to date: nothing read
    assert "1 up to date; 0 of 4 file(s) read" in capsys.readouterr().out


def test_out_inside_the_images_folder_is_not_read_as_photos(tmp_path, capsys):
    images = photos(tmp_path / "photos")
    (tmp_path / "tiny.py").write_text(CONV_MODEL_SRC)
    model = f"{tmp_path / 'tiny.py'}:net"
    out = images / "catalogue"
    assert run("catalogue", model, "--out", out, *FAST) == 0  # renders PNGs under --out
    assert run("catalogue", model, "--out", out, *FAST, "--images", images) == 0
    # the examples pass reads the 4 photos, not the PNGs the first run wrote under --out
    assert "4 of 4 file(s) read" in capsys.readouterr().out
    rows = site_files.read_examples(out / "0")
    assert all(r["file"].startswith("examples/") for rs in rows.values() for r in rs)
    doc = json.loads((out / "0" / "examples.json").read_text())
    assert doc["key"]["images"] == site_files.read_examples_key(out, "0")["images"]
