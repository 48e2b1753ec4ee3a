"""Nothing outside the output folder: hostile names and symlinks seeded in a catalogue folder and
a render folder change nothing outside it (a watched sibling folder is checksummed) through
``build_site``, ``gallery.build`` and a catalogue rerun, and no page links to a file outside."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest
import torch
from PIL import Image

from midnite.cli import main
from midnite.pages import catalogue as site
from midnite.pages import gallery
from midnite.store import PathError

from conftest import CONV_MODEL_SRC

FAST = ["--steps", "2", "--size", "16", "--no-progress"]
HOSTILE_KEYS = ["/abs/evil", "../watched", "../watched/deep", "a/b", "x\0y", "n" * 256, "..", ""]


def run(*argv: object) -> int:
    return main([str(a) for a in argv])


def photos(folder: Path, n: int = 4) -> Path:
    g = torch.Generator().manual_seed(5)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        pixels = (torch.rand(20, 24, 3, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"p{i}.png")
    return folder


def checksum(folder: Path) -> dict[str, str]:
    """Every entry under ``folder`` (links not followed): its kind and content digest."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root) / name
            rel = str(path.relative_to(folder))
            if path.is_symlink():
                out[rel] = "link " + os.readlink(path)
            elif path.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def links_stay_inside(folder: Path) -> list[str]:
    """Every page under ``folder`` (real files, links not followed); fails on a link or image
    source that leaves the folder, also through a symlink."""
    root = Path(os.path.realpath(folder))
    pages = []
    for dirpath, _, files in os.walk(folder):
        for name in files:
            page = Path(dirpath) / name
            if not name.endswith(".html") or page.is_symlink():
                continue
            pages.append(str(page.relative_to(folder)))
            for url in re.findall(r'(?:href|src)="([^"]*)"', page.read_text()):
                if url.startswith(("#", "data:", "https://", "http://")) or not url:
                    continue
                assert not url.startswith(("/", "file:", "\\")), (page, url)
                target = Path(os.path.realpath(Path(dirpath) / url.split("#")[0]))
                assert target == root or root in target.parents, (page, url, target)
    return pages


@pytest.fixture
def model_file(tmp_path: Path) -> str:
    path = tmp_path / "tiny.py"
    path.write_text(CONV_MODEL_SRC)
    return f"{path}:net"


@pytest.fixture
def watched(tmp_path: Path) -> Path:
    """A sibling folder a hostile name might reach: a layer-like folder, an index, a photo."""
    folder = tmp_path / "watched"
    (folder / "outside_layer").mkdir(parents=True)
    (folder / "index.html").write_text("<p>the user's own page</p>")
    (folder / "outside.html").write_text("<p>another page of the user's</p>")
    (folder / "outside.json").write_text("{}")
    photos(folder / "pictures", 1)
    return folder


def seed_catalogue(out: Path, watched: Path) -> None:
    """Every hostile name of issue 24 in a catalogue folder that a first run made."""
    plan = json.loads((out / "catalogue.json").read_text())
    entry = {"units": 2, "views": ["channel"], "planned": 2, "done": 2}
    for key in [*HOSTILE_KEYS, str(watched / "abs")]:
        plan["layers"][key] = {**entry, "layer": key}
    plan["layers"]["honest-key"] = {**entry, "layer": "../watched"}  # key and layer disagree
    (out / "catalogue.json").write_text(json.dumps(plan))
    # a stray layer folder that is a symlink to a folder outside, holding a copy of a unit
    for name in ("channel_0000.json", "channel_0000.png"):
        (watched / "outside_layer" / name).write_bytes((out / "0" / name).read_bytes())
    (out / "linked").symlink_to(watched / "outside_layer", target_is_directory=True)
    # the top page replaced by a symlink to a page outside
    (out / "index.html").unlink()
    (out / "index.html").symlink_to(watched / "outside.html")
    # a unit page replaced by a symlink, a record's PNG replaced by a symlink to a file outside
    (out / "0" / "0001.html").unlink()
    (out / "0" / "0001.html").symlink_to(watched / "index.html")
    png = out / "0" / "channel_0001.png"
    png.unlink()
    png.symlink_to(next((watched / "pictures").iterdir()))
    # dataset examples naming files outside, and an example file that is a symlink
    doc = json.loads((out / "0" / "examples.json").read_text())
    rows = doc["units"]["0"]
    (out / "0" / "examples" / "link.png").symlink_to(next((watched / "pictures").iterdir()))
    for bad in ("/etc/passwd", "../../watched/pictures/p0.png", "examples/../../x.png",
                "examples/link.png", "examples/a/b.png"):  # fmt: skip
        rows.append({**rows[0], "file": bad})
    (out / "0" / "examples.json").write_text(json.dumps(doc))


def test_hostile_catalogue_folder_changes_nothing_outside(model_file, tmp_path, watched):
    out = tmp_path / "out"
    argv = ["catalogue", model_file, "--out", out, *FAST, "--layers", "0", "--units", "0-1"]
    assert run(*argv, "--images", photos(tmp_path / "photos")) == 0
    seed_catalogue(out, watched)
    before = checksum(watched)

    site.build_site(out)
    assert checksum(watched) == before
    assert not (out / "index.html").is_symlink() and not (out / "0" / "0001.html").is_symlink()
    pages = links_stay_inside(out)
    assert "index.html" in pages and "0/0000.html" in pages
    assert not any(p.startswith("linked") for p in pages)  # the symlinked folder is not read
    assert "outside_layer" not in (out / "index.html").read_text()
    unit = (out / "0" / "0000.html").read_text()
    assert "passwd" not in unit and "link.png" not in unit and "watched" not in unit
    _, layers, planned = site.read_catalogue(out)
    assert sorted(planned) == ["0"] and [x.folder for x in layers] == ["0"]
    assert "symbolic link" in layers[0].units[1].damaged["channel"][1]  # the linked PNG

    # a rerun through the CLI: the plan is rewritten without the hostile keys, the damaged
    # unit (its PNG a symlink) is rendered again into a real file
    assert run(*argv, "--images", tmp_path / "photos") == 0
    assert checksum(watched) == before
    assert sorted(json.loads((out / "catalogue.json").read_text())["layers"]) == ["0"]
    png = out / "0" / "channel_0001.png"
    assert png.is_file() and not png.is_symlink()
    links_stay_inside(out)
    assert not (tmp_path / "a").exists() and not Path("/abs/evil").exists()


def test_planned_layer_folder_that_is_a_symlink_is_refused(model_file, tmp_path, watched):
    out = tmp_path / "out"
    argv = ["catalogue", model_file, "--out", out, *FAST, "--layers", "0", "--units", "0-1"]
    assert run(*argv) == 0
    (out / "0").rename(tmp_path / "moved")
    (out / "0").symlink_to(watched / "outside_layer", target_is_directory=True)
    before = checksum(watched)
    with pytest.raises(PathError, match=r"'0' is a symbolic link|/0' is a symbolic link"):
        site.build_site(out)
    assert checksum(watched) == before
    # with --images, the examples pass refuses the folder before anything is rendered
    assert run(*argv, "--images", photos(tmp_path / "photos")) == 2
    assert checksum(watched) == before


def test_rerun_does_not_write_through_a_symlinked_layer_folder(model_file, tmp_path, watched):
    out = tmp_path / "out"
    argv = ["catalogue", model_file, "--out", out, *FAST, "--layers", "0", "--units", "0-1"]
    assert run(*argv) == 0
    (out / "0").rename(tmp_path / "moved")
    (out / "0").symlink_to(watched / "outside_layer", target_is_directory=True)
    before = checksum(watched)
    assert run(*argv) == 2
    assert checksum(watched) == before


def test_page_where_a_folder_stands_is_refused_in_one_line(model_file, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["catalogue", model_file, "--out", out, *FAST, "--layers", "0", "--units", "0"]
    assert run(*argv) == 0
    (out / "0" / "index.html").unlink()
    (out / "0" / "index.html").mkdir()
    (out / "0" / "index.html" / "mine.txt").write_text("kept")
    with pytest.raises(PathError, match=r"index.html' is a folder where midnite writes a file"):
        site.build_site(out)
    capsys.readouterr()
    assert run(*argv) == 2  # the up-to-date rerun: one line, exit 2, the folder kept
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is a folder where midnite writes a file" in err
    assert (out / "0" / "index.html" / "mine.txt").read_text() == "kept"


def test_hostile_render_folder_changes_nothing_outside(tmp_path, model_file, watched):
    out = tmp_path / "render"
    argv = ["render", model_file, "--layer", "0", "--units", "0-1", "--out", out, *FAST]
    assert run(*argv) == 0
    records = sorted(out.glob("*.json"))
    assert len(records) == 2
    (out / "index.html").unlink()
    (out / "index.html").symlink_to(watched / "index.html")
    # a record replaced by a symlink to a record outside (its PNG beside it too)
    outside = watched / "outside_layer"
    for suffix in (".json", ".png"):
        (outside / records[1].with_suffix(suffix).name).write_bytes(
            records[1].with_suffix(suffix).read_bytes()
        )
    records[1].unlink()
    records[1].symlink_to(outside / records[1].name)
    # a record naming a file outside
    doc = json.loads(records[0].read_text())
    doc["image"]["file"] = "../watched/pictures/p0.png"
    (out / "0_channel_0009.json").write_text(json.dumps({**doc, "unit": 9}))
    (out / "sub").symlink_to(outside, target_is_directory=True)
    before = checksum(watched)

    gallery.build(out)
    assert checksum(watched) == before
    assert not (out / "index.html").is_symlink()
    page = (out / "index.html").read_text()
    assert links_stay_inside(out) == ["index.html"]
    assert page.count("symbolic link (not followed)") == 1
    assert run(*argv) == 0  # a rerun renders the linked unit again into real files
    assert checksum(watched) == before
    assert not records[1].is_symlink() and records[1].is_file()
    links_stay_inside(out)
