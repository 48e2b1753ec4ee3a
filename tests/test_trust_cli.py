"""``midnite catalogue --trust``: each layer's trust.json from the saved examples, shown on the
pages; bad options are one line with status 2 and nothing is rendered."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from midnite.cli import main

from conftest import CLI_MODEL_SRC

JUDGE_SRC = """
import torch
from torch import nn


def judge():
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(3, 8, 5, padding=2, stride=2), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
"""


@pytest.fixture
def setup(tmp_path):
    (tmp_path / "tiny.py").write_text(CLI_MODEL_SRC)
    (tmp_path / "judge.py").write_text(JUDGE_SRC)
    photos = tmp_path / "photos"
    photos.mkdir()
    g = torch.Generator().manual_seed(0)
    for i in range(90):  # smooth random colour fields: every unit's examples differ
        low = torch.rand(3, 4, 4, generator=g)
        img = torch.nn.functional.interpolate(low[None], size=32, mode="bilinear")[0]
        Image.fromarray((img * 255).byte().permute(1, 2, 0).numpy()).save(photos / f"{i}.png")
    return tmp_path, photos


def _cmd(tmp_path, photos, *extra):
    return ["catalogue", f"{tmp_path / 'tiny.py'}:net", "--layers", "3", "--size", "32",
            "--steps", "4", "--no-progress", "--images", str(photos), "--top-k", "24",
            "--out", str(tmp_path / "out"), *extra]  # fmt: skip


def test_catalogue_trust_writes_scores_and_pages(setup):
    tmp_path, photos = setup
    judge = f"{tmp_path / 'judge.py'}:judge"
    assert main(_cmd(tmp_path, photos, "--trust", "--judge", judge)) == 0
    doc = json.loads((tmp_path / "out" / "3" / "trust.json").read_text())
    assert sorted(doc) == [f"channel_{u:04d}" for u in range(6)]
    for entry in doc.values():
        assert set(entry) >= {"score", "ci", "natural", "path", "flagged", "verdict", "recipe"}
        assert entry["recipe"] == "feature" and isinstance(entry["verdict"], str)
        if entry["score"] is not None:
            assert 0 <= entry["ci"][0] <= entry["score"] <= entry["ci"][1] <= 1
    page = (tmp_path / "out" / "3" / "0002.html").read_text()
    assert doc["channel_0002"]["verdict"].split()[0] in page  # the trust card shows it
    assert "trust" in (tmp_path / "out" / "3" / "index.html").read_text()


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--trust"], None),  # no --images: see below
        (["--judge", "x.py:j"], "--judge needs --trust"),
    ],
)
def test_trust_options_are_checked_first(setup, capsys, extra, words):
    tmp_path, photos = setup
    cmd = _cmd(tmp_path, photos, *extra)
    if words is None:
        at = cmd.index("--images")
        del cmd[at : at + 4]  # --images DIR --top-k 24
        words = "--trust needs --images"
    assert main(cmd) == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "out" / "3").exists()


def test_the_judge_must_be_another_network(setup, capsys):
    tmp_path, photos = setup
    model = f"{tmp_path / 'tiny.py'}:net"
    assert main(_cmd(tmp_path, photos, "--trust", "--judge", model)) == 2
    assert "different network" in capsys.readouterr().err


def test_a_unit_that_cannot_be_scored_is_not_flagged(setup):
    tmp_path, photos = setup
    judge = f"{tmp_path / 'judge.py'}:judge"
    assert main(_cmd(tmp_path, photos, "--trust", "--judge", judge)) == 0
    doc = json.loads((tmp_path / "out" / "3" / "trust.json").read_text())
    unscored = [e for e in doc.values() if e["score"] is None]
    assert unscored  # this tiny net has dead channels: constant over every photo
    for entry in unscored:
        assert entry["flagged"] is False and entry["verdict"].startswith("not scored:")
