"""``midnite concepts``: fit, examples, renders and pages; a rerun refits and renders nothing,
other settings refit; bad input is one UsageError line (exit 2) and writes nothing."""

from __future__ import annotations

import argparse

import pytest

from midnite.cli import concepts as cli
from midnite.cli.options import Parser
from midnite.errors import EXIT_USAGE, MidniteError, UsageError
from midnite.evaluation.superposition import superposition_images
from midnite.images import png_bytes

N = 12


def _parser() -> argparse.ArgumentParser:
    parser = Parser(prog="midnite")  # as cli.build_parser makes it: one-line UsageErrors
    cli.register(parser.add_subparsers(dest="command"))
    return parser


def _run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    args.argv = argv
    return cli.run(args)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    (root / "net.py").write_text(
        "from midnite.evaluation.superposition import superposition_net\n"
        "def build():\n    return superposition_net()\n"
    )
    photos = root / "photos"
    photos.mkdir()
    x, _ = superposition_images(80, seed=0)
    for i, img in enumerate(x):
        (photos / f"{i:03d}.png").write_bytes(png_bytes(img))
    return root


def _argv(root, out, *more):
    return [
        "concepts", f"{root / 'net.py'}:build", "--layer", "mix", "--images",
        str(root / "photos"), "--n", str(N), "--out", str(out), "--size", "32", "--steps", "3",
        "--batch", "12", "--no-progress", "--examples", "3", *more,
    ]  # fmt: skip


def test_fit_render_pages_then_resume(setup, capsys):
    out = setup / "out"
    assert _run(_argv(setup, out)) == 0
    said = capsys.readouterr().out
    assert said.startswith(f"fitted {N} concepts of mix") and f"rendered {2 * N} " in said
    folder = out / "mix"
    for name in ("concepts.pt", cli.FIT_FILE, "concepts.html", "concept_0011.html"):
        assert (folder / name).is_file(), name
    pngs = sorted(p.name for p in folder.glob("concept_*.png") if not p.stem.endswith("_alpha"))
    assert len(pngs) == 2 * N and sum(p.endswith("_feature_0000.png") for p in pngs) == 1
    assert len(list((folder / "concept_examples").glob("*_heat.png"))) == 3 * N
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file()}
    assert _run(_argv(setup, out)) == 0
    said = capsys.readouterr().out
    assert said.startswith("loaded") and "rendered 0 " in said and f"({2 * N} up to date)" in said
    for name in ("concepts.pt", cli.FIT_FILE, pngs[0]):
        assert (folder / name).stat().st_mtime_ns == before[name]
    # other fit settings refit, and the new dictionary is rendered again (natural only here)
    assert _run(_argv(setup, out, "--n", "10", "--recipe", "natural")) == 0
    said = capsys.readouterr().out
    assert said.startswith("fitted 10 concepts") and "rendered 10 " in said
    assert (folder / "concepts.html").read_text().count('class="tile concept"') == 10


@pytest.mark.parametrize(
    ("more", "words"),
    [
        (["--layer", "mixx"], "unknown layer 'mixx'"),
        (["--n", "5000"], "n=5000 concepts need"),
        (["--method", "sae", "--n", "0"], "--n"),
    ],
)
def test_bad_input_one_line_nothing_written(setup, more, words):
    out = setup / f"bad{abs(hash(tuple(more)))}"
    with pytest.raises(MidniteError) as err:  # UsageError, or the options' OptionError
        _run(_argv(setup, out, *more))
    assert words in str(err.value) and "\n" not in str(err.value)
    assert err.value.exit_code == EXIT_USAGE
    assert not (out / "mix").exists()


def test_images_not_a_folder(setup, tmp_path):
    argv = _argv(setup, tmp_path / "o")
    argv[argv.index("--images") + 1] = str(tmp_path / "none")
    with pytest.raises(UsageError, match="--images must be a folder"):
        _run(argv)
    assert not (tmp_path / "o" / "mix").exists()
