"""``--steps auto`` / ``steps="auto"``: steps per layer from ``jobs.steps``'s measured schedule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from midnite import catalogue as cat
from midnite.cli import main
from midnite.engine import layers, recipes
from midnite.errors import UsageError
from midnite.jobs import steps as auto

MODEL_SRC = """
import torch
from torch import nn


def net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.Sequential(*[nn.Conv2d(4, 4, 3, padding=1) for _ in range(12)]),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    )
"""


def net() -> nn.Sequential:
    namespace: dict = {}
    exec(MODEL_SRC, namespace)
    return namespace["net"]()


@pytest.fixture
def model_file(tmp_path: Path) -> str:
    path = tmp_path / "tiny.py"
    path.write_text(MODEL_SRC)
    return f"{path}:net"


def run(*argv: object) -> int:
    return main([str(a) for a in argv])


def plan_of(model, names, steps, views=("channel",), recipe=None):
    shapes = {i.name: tuple(i.shape) for i in layers(model, (16, 16)) if i.shape}
    settings = cat.Settings(size=(16, 16), steps=steps, batch=4, recipe=recipe)
    return cat.plan(model, "tiny", names, shapes, settings=settings, views=views, units=[0, 1])


def test_schedule_is_the_measured_data_bounded_and_rounded():
    assert len(auto.SCHEDULE) >= 2 and auto.LITE0
    depths = [d for d, _ in auto.SCHEDULE]
    assert depths == sorted(depths) and len(set(depths)) == len(depths)
    assert all(s % 16 == 0 and 32 <= s <= 256 for _, s in auto.SCHEDULE)
    assert len({s for _, s in auto.SCHEDULE}) > 1  # a schedule, not one number
    for layer, (depth, s) in auto.LITE0.items():  # Lite0's layers: what was measured + margin
        assert auto.steps_at(depth) == min(256, s + auto.MARGIN), layer
        assert layer.startswith("_blocks.")


def test_steps_at_interpolates_rounds_up_and_clamps():
    s0, s1 = auto.SCHEDULE[0][1], auto.SCHEDULE[-1][1]
    assert auto.steps_at(0.0) == s0 and auto.steps_at(1.0) == s1
    for lo, hi in zip(auto.SCHEDULE[:-1], auto.SCHEDULE[1:], strict=True):
        mid = auto.steps_at((lo[0] + hi[0]) / 2)
        assert mid % 16 == 0 and min(lo[1], hi[1]) <= mid <= max(lo[1], hi[1])
        assert mid >= (lo[1] + hi[1]) / 2  # rounded up, never down
        assert mid - (lo[1] + hi[1]) / 2 < 16
    for bad in (-0.1, 1.5, "deep", float("nan")):
        with pytest.raises(ValueError, match=r"depth must be a number in \[0, 1\]"):
            auto.steps_at(bad)


def test_relative_depth_counts_leaf_modules_in_order():
    model = net()
    leaves = [n for n, m in model.named_modules() if not list(m.children())]
    assert len(leaves) == 17
    assert auto.relative_depth(model, "0") == pytest.approx(1 / 17)
    assert auto.relative_depth(model, "2.0") == pytest.approx(3 / 17)
    assert auto.relative_depth(model, "2") == pytest.approx(14 / 17)  # its last leaf
    assert auto.relative_depth(model, "") == 1.0
    with pytest.raises(ValueError, match="'nope' is no module of the model"):
        auto.relative_depth(model, "nope")


def test_auto_plans_each_layer_its_steps_per_the_schedule():
    model = net()
    names = [f"2.{i}" for i in range(12)]
    work = plan_of(model, names, "auto", views=("channel", "negative", "diversity"))
    for name in names:
        steps = {b.config.steps for b in work if b.layer == name}
        assert steps == {auto.steps_at(auto.relative_depth(model, name))}
        assert all(b.key(b.units[0])["steps"] == min(steps) for b in work if b.layer == name)
    planned = {b.config.steps for b in work}
    assert len(planned) > 1 and max(planned) <= 256  # fewer steps where the schedule says so
    fixed = plan_of(model, names, None)
    assert {b.config.steps for b in fixed} == {256}  # the recipe's


def test_auto_keeps_the_recipe_steps_where_the_schedule_was_not_measured():
    model = net()
    output = plan_of(model, [""], "auto")  # the class recipe on the output
    assert {b.config.steps for b in output} == {256}
    natural = plan_of(model, ["2.0"], "auto", recipe="natural")
    own = recipes.get("natural").steps  # 128 since #22
    assert {b.config.steps for b in natural} == {own}
    assert own != auto.steps_at(auto.relative_depth(model, "2.0"))  # so the schedule did not apply
    assert {b.config.steps for b in plan_of(model, ["2.0"], 40)} == {40}


@pytest.mark.parametrize("bad", ["fast", 0, -3, 2.5, True, "256"])
def test_plan_refuses_bad_steps_with_one_line(bad):
    with pytest.raises(UsageError, match=r"steps must be .*, got") as err:
        plan_of(net(), ["2.0"], bad)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("bad", ["0", "fast", "-1", "2.5", "2000000", ""])
def test_cli_refuses_bad_steps_naming_what_was_expected(bad, model_file, tmp_path, capsys):
    assert run("catalogue", model_file, "--out", tmp_path / "o", "--steps", bad) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"midnite: error: --steps must be an integer in [1, 1000000] or 'auto', got {bad!r}"
    )
    assert not (tmp_path / "o").exists()


def test_render_keeps_integer_steps_only(model_file, tmp_path, capsys):
    argv = ["render", model_file, "--layer", "2.0", "--out", tmp_path / "o", "--steps", "auto"]
    assert run(*argv) == 2
    assert "--steps must be an integer, got 'auto'" in capsys.readouterr().err


def test_catalogue_auto_records_the_steps_and_a_rerun_renders_nothing(model_file, tmp_path, capsys):
    out = tmp_path / "out"
    common = ["catalogue", model_file, "--out", out, "--units", "0-1", "--size", "16"]
    argv = [*common, "--layers", "2.0", "2.11", "--steps", "auto", "--no-progress"]
    assert run(*argv) == 0
    printed = capsys.readouterr().out
    assert "rendered 4 of 4 units" in printed
    model = net()
    deep, shallow = auto.layer_steps(model, "2.11"), auto.layer_steps(model, "2.0")
    assert f"recipes other than feature keep their own): 2.0 {shallow}, 2.11 {deep}\n" in printed
    for layer in ("2.0", "2.11"):
        want = auto.layer_steps(model, layer)
        for unit in (0, 1):
            record = json.loads((out / layer / f"channel_{unit:04d}.json").read_text())
            assert record["key"]["steps"] == want
            assert record["settings"]["steps"] == want
    pngs = {p: p.read_bytes() for p in sorted(out.rglob("*.png"))}
    assert run(*argv) == 0
    assert "rendered 0 of 4 units (4 up to date)" in capsys.readouterr().out
    assert {p: p.read_bytes() for p in sorted(out.rglob("*.png"))} == pngs
    # the same steps asked for by number are the same work: nothing to render
    same = auto.layer_steps(model, "2.0")
    assert run(*common, "--layers", "2.0", "--steps", same, "--no-progress") == 0
    assert "rendered 0 of 2 units (2 up to date)" in capsys.readouterr().out


def test_auto_image_is_the_prefix_of_a_longer_render():
    """The schedule was measured on snapshots of 256-step renders: a render of S steps is
    exactly the S-step snapshot of a longer one (nothing in the loop depends on the steps)."""
    model = net()
    (batch,) = plan_of(model, ["2.3"], 48)
    from midnite.engine import render_config

    long = render_config(model, batch.config.replace(steps=64), progress=False, snapshots=(48,))
    short = render_config(model, batch.config, progress=False)
    assert torch.equal(long.snapshots[48], short.images)


def test_lite0_depths_and_plan_follow_the_measurement():
    """The shipped depths are Lite0's own, and its catalogue plans each layer's steps."""
    from midnite import models

    model = models.load("efficientnet-lite0")
    for layer, (depth, _) in auto.LITE0.items():
        assert auto.relative_depth(model, layer) == pytest.approx(depth), layer
    shapes = {i.name: tuple(i.shape) for i in layers(model, (32, 32)) if i.shape}
    settings = cat.Settings(size=(32, 32), steps="auto", batch=8)
    names = ["_blocks.0", "_blocks.8", "_blocks.15", ""]
    work = cat.plan(model, "lite0", names, shapes, settings=settings, units=[0])
    got = {b.layer: b.config.steps for b in work}
    want = {n: min(256, auto.LITE0[n][1] + auto.MARGIN) for n in names[:3]}
    assert got == {**want, "": 256}  # the class output keeps the class recipe's
