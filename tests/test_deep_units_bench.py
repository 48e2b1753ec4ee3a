"""benchmarks/deep_units.py: its unit list, its scores, and a smoke run of its --quick form."""

from __future__ import annotations

import importlib
import json
import math
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def deep_units():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module("deep_units")
    finally:
        sys.path.remove(str(BENCHMARKS))


class _Blocks(nn.Module):
    """Stand-in for Lite0's block names: ``_blocks.14`` (16 channels), ``_blocks.15`` (24)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        layers = [nn.Identity() for _ in range(14)]
        layers += [nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 24, 3, padding=1)]
        self._blocks = nn.ModuleList(layers)
        self.seen_sizes: list[tuple[int, int]] = []

    def forward(self, x):
        self.seen_sizes.append(tuple(x.shape[-2:]))
        for block in self._blocks:
            x = block(x)
        return x.mean(dim=(2, 3))


def test_units_are_evenly_spaced_channels_fixed_in_advance(deep_units):
    net = _Blocks()
    assert deep_units.units(net) == [("_blocks.14", c) for c in range(0, 16, 2)] + [
        ("_blocks.15", c) for c in range(0, 24, 3)
    ]
    assert deep_units.units(net, quick=True) == [("_blocks.14", 0), ("_blocks.15", 0)]
    assert deep_units.LAYERS == ("_blocks.14", "_blocks.15") and deep_units.UNITS_PER_LAYER == 8


def test_unit_scores_read_each_images_own_unit_at_the_render_size(deep_units):
    net = _Blocks()
    unit_list = [("_blocks.14", 3), ("_blocks.15", 5)]
    score = deep_units.UnitScores(net, unit_list, size=16)
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    got = score(images)
    small = nn.functional.interpolate(images, size=(16, 16), mode="bilinear", antialias=True)
    with torch.no_grad():
        a14 = net._blocks[14](small)
        a15 = net._blocks[15](a14)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got.float(), torch.stack([a14[0, 3].mean(), a15[1, 5].mean()]))
    assert net.seen_sizes[-1] == (16, 16)
    assert not net._blocks[14]._forward_hooks and not net._blocks[15]._forward_hooks
    with pytest.raises(ValueError, match=r"one image per unit \(2\), got 3"):
        score(torch.rand(3, 3, 16, 16))


def test_bad_arguments_are_refused(deep_units, capsys):
    with pytest.raises(SystemExit):
        deep_units.main(["--recipes", "feature,nope"])
    assert "unknown recipes ['nope']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        deep_units.main(["--seeds", "1"])
    assert "--seeds must be >= 2" in capsys.readouterr().err


@pytest.mark.slow  # renders on Lite0
def test_quick_run_prints_the_table_and_writes_json_and_a_contact_sheet(
    deep_units, one_thread, tmp_path, capsys
):
    out, path = tmp_path / "img", tmp_path / "d.json"
    argv = ["--quick", "--recipes", "feature,class", "--json", str(path), "--out", str(out)]
    assert deep_units.main(argv) == 0
    text = capsys.readouterr().out
    assert "units: _blocks.14:0, _blocks.15:0" in text
    for header in deep_units.HEADERS:
        assert f" {header} " in text
    data = json.loads(path.read_text())
    assert data["units"] == [["_blocks.14", 0], ["_blocks.15", 0]] and data["seeds"] == [0, 1]
    rows = data["rows"]
    assert [(r["recipe"], r["layer"]) for r in rows] == [
        (recipe, layer) for recipe in ("feature", "class") for layer in deep_units.LAYERS
    ]
    for row in rows:
        assert row["steps"] == 4 and row["units"] == 1
        if row["recipe"] == "feature":  # 4 steps already raise the unit above gray's
            assert row["gain (median)"] > 1
        assert -1 <= row["seed stability"] <= 1 and math.isfinite(row["robustness"])
        assert row["naturalness"]["reference"] == "shipped photos at 64x64 px"
        assert row["seconds per image"] > 0
    assert (out / "deep_units.png").is_file()
    assert (out / "feature" / "_blocks_15_c0_s1.png").is_file()
