"""``midnite catalogue --images DIR --concepts N``: each (C, H, W) layer's concepts fitted (NMF,
or the SAE for a signed layer), rendered in the same run as the units, with pages and a
``concepts_summary.json``; a rerun fits and renders nothing; bad input is one line (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from midnite.cli import main
from midnite.evaluation.superposition import superposition_images
from midnite.images import png_bytes

SRC = (
    "from midnite.evaluation.superposition import superposition_net\n"
    "def build():\n    return superposition_net(signed=True)\n"
)
N = 4


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cc")
    (root / "net.py").write_text(SRC)
    photos = root / "photos"
    (photos / "sub").mkdir(parents=True)
    x, _ = superposition_images(40, seed=0)
    for i, img in enumerate(x):
        (photos / ("sub" if i % 2 else "") / f"{i:02d}.png").write_bytes(png_bytes(img))
    return root


def _argv(root: Path, out: Path, *more: object) -> list[str]:
    argv = ["catalogue", f"{root / 'net.py'}:build", "--layers", "act", "mix", "--units", "0-1",
            "--images", root / "photos", "--out", out, "--size", 32, "--steps", 2, "--batch", 4,
            "--top-k", 2, "--no-progress", *more]  # fmt: skip
    return [str(a) for a in argv]


def test_catalogue_with_concepts_fits_renders_pages_then_resumes(setup, capsys, one_thread):
    out = setup / "out"
    assert main(_argv(setup, out, "--concepts", N, "--concepts-feature")) == 0
    said = capsys.readouterr()
    assert "rendered 20 of 20 renders (4 units, 16 concepts; 0 up to date" in said.out
    assert said.err.count("fitting 4 concepts of") == 2
    for layer, method in (("act", "nmf"), ("mix", "sae")):  # mix is signed: the SAE
        folder = out / layer
        summary = json.loads((folder / "concepts_summary.json").read_text())
        assert summary["n"] == N and summary["method"] == method
        assert summary["page"] == "concepts.html" and (folder / "concepts.html").is_file()
        for i, item in enumerate(summary["concepts"]):
            assert item["i"] == i and (folder / item["page"]).is_file()
            assert item["image"].endswith(f"_{i:04d}.png") and "_feature_" not in item["image"]
            assert (folder / item["image"]).is_file()
        assert len(list(folder.glob("concept_*_feature_????.png"))) == N
        assert (folder / "concept_examples.json").is_file()
    plan = json.loads((out / "catalogue.json").read_text())
    assert "concept" not in json.dumps(plan["layers"])  # the plan is the units'
    assert (out / "index.html").is_file()
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("concepts.pt")}
    assert main(_argv(setup, out, "--concepts", N, "--concepts-feature")) == 0
    said = capsys.readouterr()
    assert "rendered 0 of 20 renders (4 units, 16 concepts; 20 up to date" in said.out
    assert "fitting" not in said.err
    assert stamps == {p: p.stat().st_mtime_ns for p in out.rglob("concepts.pt")}
    assert main(_argv(setup, out, "--concepts", N, "--concepts-feature", "--dry-run")) == 0
    said = capsys.readouterr().out
    assert "concepts: 4 per layer in 2 layer(s), 16 concept renders (natural, feature), 16 " \
           "already done; 2 dictionary(ies) saved, 0 to fit" in said  # fmt: skip


def test_concepts_bad_input_is_one_line_and_writes_nothing_for_the_layer(setup, capsys):
    out = setup / "bad"
    cases = [
        (["--concepts", 0], "--concepts must be an int >= 1, got 0"),
        (["--concepts", "x"], "--concepts"),
        (["--concepts-feature"], "--concepts-feature needs --concepts N"),
    ]
    for more, words in cases:
        assert main(_argv(setup, out, *more)) == 2
        err = capsys.readouterr().err.strip()
        assert words in err and "\n" not in err, err
    argv = _argv(setup, out, "--concepts", 3)
    at = argv.index("--images")
    del argv[at : at + 2]  # --images DIR
    at = argv.index("--top-k")
    del argv[at : at + 2]  # it needs --images too
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "--concepts needs --images DIR" in err and "\n" not in err
    assert main(_argv(setup, out, "--concepts", 5000)) == 2  # more than the rows collected
    said = capsys.readouterr().err.strip().splitlines()
    assert said[0].startswith("midnite: fitting 5000 concepts of act")  # what it was doing
    assert said[1].startswith("midnite: error: --concepts 5000, layer 'act': n=5000 concepts")
    assert len(said) == 2
    assert not list(out.rglob("concepts*"))  # no dictionary, fit file or page of any layer
