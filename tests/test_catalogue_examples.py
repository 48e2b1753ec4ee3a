"""``midnite catalogue --images DIR --top-k K``: dataset examples for every catalogued unit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from midnite import catalogue as cat
from midnite import dataset_examples as dx
from midnite import models
from midnite.cli import main
from test_catalogue import FAST, MODEL_SRC


def run(*argv: object) -> int:
    return main([str(a) for a in argv])


@pytest.fixture
def model_file(tmp_path: Path) -> str:
    path = tmp_path / "tiny.py"
    path.write_text(MODEL_SRC)
    return f"{path}:net"


def photos(folder: Path, n: int = 12) -> Path:
    """``n`` random-colour PNGs and JPEGs of different sizes in a folder tree, plus junk."""
    g = torch.Generator().manual_seed(3)
    for i in range(n):
        h, w = 20 + (5 * i) % 13, 24 + (7 * i) % 17
        pixels = (torch.rand(h, w, 3, generator=g) * 255).to(torch.uint8).numpy()
        sub = folder / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(sub / f"img{i:02d}.{'png' if i % 3 else 'jpg'}")
    (folder / "notes.txt").write_text("not an image")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)  # truncated
    return folder


def examples(out: Path, layer: str) -> dict:
    return json.loads((out / layer / "examples.json").read_text())


def test_examples_equal_a_direct_pass_and_reach_the_unit_pages(model_file, tmp_path, capsys):
    images, out = photos(tmp_path / "photos"), tmp_path / "out"
    argv = ["catalogue", model_file, "--out", out, *FAST, "--layers", "1.0", "1.2", "--units"]
    assert run(*argv, "0-2", "--images", images, "--top-k", 3) == 0
    captured = capsys.readouterr()
    assert "skipped 2 of 14 file(s)" in captured.err and "notes.txt" in captured.err
    assert "2 layer(s) computed; 12 of 14 file(s) read, 2 unreadable skipped" in captured.out
    model = models.load(model_file)
    with pytest.warns(dx.UnreadableImageWarning):
        want = dx.top_examples(model, ["1.0", "1.2"], images, 3, size=16, progress=False)
    for layer in ("1.0", "1.2"):
        doc = examples(out, layer)
        assert sorted(doc["units"], key=int) == ["0", "1", "2"]  # the catalogued units only
        for unit in range(3):
            rows = doc["units"][str(unit)]
            direct = want.examples(layer, unit)
            assert [r["value"] for r in rows] == pytest.approx([e.value for e in direct])
            assert all(r["box"] is not None for r in rows)
    page = (out / "1.2" / "0001.html").read_text()
    assert "dataset examples" in page and page.count('class="box"') == 3
    # a rerun: examples up to date, nothing read; a changed --top-k computes them again
    assert run(*argv, "0-2", "--images", images, "--top-k", 3) == 0
    assert "2 up to date; 0 of 14 file(s) read" in capsys.readouterr().out
    assert run(*argv, "0-2", "--images", images, "--top-k", 2) == 0
    assert "2 layer(s) computed" in capsys.readouterr().out
    assert len(examples(out, "1.0")["units"]["0"]) == 2


def test_each_image_is_decoded_once_for_all_layers(model_file, tmp_path, monkeypatch):
    images, out = photos(tmp_path / "photos"), tmp_path / "out"
    decoded: list[str] = []
    real = dx.load_image

    def counting(source, *a, **kw):
        decoded.append(str(source))
        return real(source, *a, **kw)

    monkeypatch.setattr(dx, "load_image", counting)
    argv = ["catalogue", model_file, "--out", out, *FAST, "--units", "0-1"]
    assert run(*argv, "--layers", "1.0", "1.1", "1.2", "--images", images, "--top-k", 2) == 0
    # one pass: every file once (the two unreadable ones too); then every distinct example
    # image once more for its thumbnail, however many layers and units show it
    tops = set()
    for layer in ("1.0", "1.1", "1.2"):
        tops |= {r["file"] for rows in examples(out, layer)["units"].values() for r in rows}
    assert len(decoded) == 14 + len(tops)
    assert len(set(decoded[:14])) == 14


def test_add_examples_api_and_bad_folders(model_file, tmp_path):
    model = models.load(model_file)
    shapes = {"1.0": (4, 16, 16)}
    work = cat.plan(model, "m", ["1.0"], shapes, settings=cat.Settings(size=(16, 16), steps=1))
    ex = cat.InProcess(model)
    (tmp_path / "empty").mkdir()
    with pytest.raises(cat.CatalogueError, match="holds no files"):
        cat.add_examples(work, tmp_path / "empty", 2, tmp_path / "o", executor=ex, progress=False)
    with pytest.raises(cat.CatalogueError, match="no such folder"):
        cat.add_examples(work, tmp_path / "nope", 2, tmp_path / "o", executor=ex, progress=False)
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.txt").write_text("x")
    with pytest.raises(cat.CatalogueError, match="no readable image"):
        cat.add_examples(work, junk, 2, tmp_path / "o", executor=ex, progress=False)
    lines: list[str] = []
    found = cat.add_examples(
        work,
        photos(tmp_path / "p"),
        2,
        tmp_path / "o",
        executor=ex,
        progress=False,
        report=lines.append,
    )
    assert found.computed == ["1.0"] and found.seen == 12 and len(found.skipped) == 2
    assert len(lines) == 1 and "skipped 2 of 14" in lines[0]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--top-k", "3"], "--top-k needs --images DIR"),
        (["--images", "{tmp}/missing"], "--images: expected a folder of JPEG/PNG images"),
        (["--images", "{tmp}/empty"], "holds no files"),
        (["--images", "{tmp}/junk"], "no readable image"),
        (["--images", "{tmp}/empty", "--top-k", "0"], "--top-k"),
    ],
)
def test_bad_images_input_is_one_line_and_status_2(model_file, tmp_path, capsys, extra, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.txt").write_text("x")
    extra = [e.replace("{tmp}", str(tmp_path)) for e in extra]
    out = tmp_path / "out"
    assert run("catalogue", model_file, "--out", out, *FAST, "--layers", "1.0", *extra) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not list(out.rglob("*.png"))  # nothing rendered


def test_dry_run_mentions_the_examples_pass(model_file, tmp_path, capsys):
    images = photos(tmp_path / "photos")
    argv = ["catalogue", model_file, "--out", tmp_path / "o", *FAST, "--layers", "1.0"]
    assert run(*argv, "--images", images, "--dry-run") == 0
    assert "dataset examples: top 9 per unit from 14 file(s)" in capsys.readouterr().out
