"""``midnite.jobs``: the view registry, plans, the one runner behind render and catalogue."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest
import torch

from midnite import jobs, models
from midnite import records as rec
from midnite.cli import build_parser, main
from midnite.engine import layers, objectives
from midnite.errors import MemoryShortage, RenderError, UsageError
from midnite.jobs import executors, memory
from midnite.jobs.signals import deferred_interrupt
from midnite.jobs.views import REGISTRY
from test_catalogue import MODEL_SRC

SAME = ["--size", "16", "--steps", "3", "--seed", "5", "--batch", "2", "--no-progress"]


@pytest.fixture
def model_file(tmp_path: Path) -> str:
    path = tmp_path / "tiny.py"
    path.write_text(MODEL_SRC)
    return f"{path}:net"


@pytest.fixture
def tiny(model_file):
    model = models.load(model_file)
    shapes = {i.name: tuple(i.shape) for i in layers(model, 16) if i.shape}
    return model_file, model, shapes


def run(*argv: object) -> int:
    return main([str(a) for a in argv])


@pytest.mark.parametrize("view", ["channel", "neuron"])
def test_render_and_catalogue_write_the_same_bytes(model_file, tmp_path, view):
    a, b = tmp_path / "render", tmp_path / "catalogue"
    assert run("render", model_file, "--layer", "1.1", "--units", "0-4", "--objective", view,
               *SAME, "--out", a) == 0  # fmt: skip
    assert run("catalogue", model_file, "--layers", "1.1", "--units", "0-4", "--views", view,
               *SAME, "--out", b) == 0  # fmt: skip
    for unit in range(5):
        flat = (a / f"1.1_{view}_{unit:04d}.png").read_bytes()
        assert flat == (b / "1.1" / f"{view}_{unit:04d}.png").read_bytes(), unit
        ours = json.loads((a / f"1.1_{view}_{unit:04d}.json").read_text())
        theirs = json.loads((b / "1.1" / f"{view}_{unit:04d}.json").read_text())
        assert ours["key"] == theirs["key"]  # one run key
        assert ours["batch"] == theirs["batch"]  # one seed derivation, one batching
    # a different seed changes the bytes (the test above could not pass by accident)
    c = tmp_path / "other"
    assert run("catalogue", model_file, "--layers", "1.1", "--units", "0", "--views", view,
               *SAME[:4], "--seed", "6", "--batch", "2", "--no-progress",
               "--out", c) == 0  # fmt: skip
    assert (c / "1.1" / f"{view}_0000.png").read_bytes() != (
        a / f"1.1_{view}_0000.png"
    ).read_bytes()


def test_the_registry_holds_the_views_with_captions():
    assert jobs.view_names()[:5] == ["channel", "negative", "diversity", "neuron", "class"]
    assert jobs.get_view("negative").caption == "minimizes the channel"
    diversity = jobs.get_view("diversity")
    assert diversity.images == jobs.DIVERSITY_IMAGES and diversity.positions
    assert diversity.one_unit_per_batch and not jobs.get_view("channel").one_unit_per_batch
    assert repr(jobs.get_view("class").unit_objective("", 3)) == repr(objectives.class_logit(3))
    with pytest.raises(UsageError, match=r"unknown view 'sideways'; accepted: channel, negative"):
        jobs.get_view("sideways")


def test_a_new_view_is_one_registration(tiny, tmp_path):
    name, model, shapes = tiny
    half = jobs.View(
        "half",
        lambda layer, units: [0.5 * objectives.channel(layer, u) for u in units],
        "maximizes half the channel",
    )
    try:
        assert jobs.register_view(half) is half
        with pytest.raises(UsageError, match="registered already"):
            jobs.register_view(half)
        settings = jobs.Settings(size=(16, 16), steps=2, batch=2)
        work = jobs.plan(
            model, name, ["1.1"], shapes, settings=settings, views=["half"], units=[0, 1, 2]
        )
        assert [(b.view, b.units) for b in work] == [("half", (0, 1)), ("half", (2,))]
        summary = jobs.run(work, tmp_path, model=model, progress=False)
        assert summary.rendered == 3 and not summary.failed
        record = json.loads((tmp_path / "1.1" / "half_0002.json").read_text())
        assert record["view"] == "half" and record["objective_repr"].startswith("0.5")
        assert jobs.run(work, tmp_path, model=model, progress=False).rendered == 0
    finally:
        REGISTRY.pop("half", None)


@pytest.mark.parametrize(
    ("view", "words"),
    [
        (jobs.View("two words", lambda layer, units: [], "x"), "must be a word"),
        (jobs.View("many", lambda layer, units: [], "x", images=0), "images must be >= 1"),
        ("channel", "expects a View, got str"),
    ],
)
def test_bad_registrations_are_refused(view, words):
    with pytest.raises(UsageError, match=words):
        jobs.register_view(view)  # type: ignore[arg-type]


def test_the_flat_layout_from_python_writes_what_render_writes(tiny, tmp_path):
    name, model, shapes = tiny
    settings = jobs.Settings(size=(16, 16), steps=2, batch=2)
    work = jobs.plan(
        model, name, ["1.1"], shapes, settings=settings, units=[0, 1], layout=jobs.FLAT
    )
    out = tmp_path / "flat"
    seen: list[int] = []
    summary = jobs.run(work, out, model=model, progress=False,
                       check=lambda left: seen.append(sum(len(m) for _, m in left)))  # fmt: skip
    assert seen == [2] and summary.rendered == 2 and summary.total == 2
    expected = [f"1.1_channel_000{u}{e}" for u in (0, 1) for e in (".png", ".json", "_alpha.png")]
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(["index.html", *expected])
    assert summary.index == out / "index.html"
    assert all(rec.is_complete(out, f"1.1_channel_000{u}", work[0].key(u)) for u in (0, 1))
    again = jobs.run(work, out, model=model, progress=False, check=seen.append)
    assert (again.rendered, again.up_to_date, len(seen)) == (0, 2, 1)  # no check: nothing to do


def test_a_check_that_refuses_leaves_the_folder_untouched(tiny, tmp_path):
    name, model, shapes = tiny
    work = jobs.plan(model, name, ["1.1"], shapes, settings=jobs.Settings(size=(16, 16), steps=1))

    def refuse(left):
        raise MemoryShortage("too big")

    with pytest.raises(MemoryShortage, match="too big"):
        jobs.run(work, tmp_path / "out", model=model, progress=False, check=refuse)
    assert not list((tmp_path / "out").rglob("*.png"))


def test_stop_on_error_ends_the_run_with_one_line(tiny, tmp_path, monkeypatch):
    name, model, shapes = tiny
    work = jobs.plan(model, name, ["1.1"], shapes, settings=jobs.Settings(size=(16, 16), steps=1),
                     units=[0, 1])  # fmt: skip

    def boom(model, config, progress=True):
        raise RuntimeError("boom")

    monkeypatch.setattr(executors, "render_config", boom)
    monkeypatch.delenv("MIDNITE_TRACEBACK", raising=False)
    with pytest.raises(RenderError, match=r"rendering units 0-1 failed \(RuntimeError: boom\); "
                       r"0 of 2 units written"):  # fmt: skip
        jobs.run(work, tmp_path, model=model, progress=False, stop_on_error=True)
    summary = jobs.run(work, tmp_path, model=model, progress=False)  # collected instead
    assert len(summary.failed) == 2 and summary.failed_units == [0, 1]
    assert isinstance(summary.errors[0], RuntimeError)


def test_render_failure_tells_memory_from_other_errors(tiny):
    name, model, shapes = tiny
    (batch,) = jobs.plan(model, name, ["1.1"], shapes, settings=jobs.Settings(size=(16, 16)),
                         units=[2, 3])  # fmt: skip
    oom = memory.render_failure(MemoryError(), batch.units, batch.config, "s")
    assert isinstance(oom, MemoryShortage) and "out of memory rendering units 2-3" in str(oom)
    assert "2 image(s) of 16x16 on cpu" in str(oom)
    other = memory.render_failure(ValueError("bad\nthing"), batch.units, batch.config, "s")
    assert (
        type(other) is RenderError
        and str(other) == "rendering units 2-3 failed (ValueError: bad thing); s"
    )


def test_probe_is_one_image_and_multi_image_views_probe_their_channel(tiny):
    name, model, shapes = tiny
    settings = jobs.Settings(size=(16, 16), steps=1, batch=4)
    views = ["negative", "diversity"]
    work = jobs.plan(model, name, ["1.1"], shapes, settings=settings, views=views, units=[1, 2])
    negative, diversity = work[0], work[-1]
    assert negative.probe().batch == 1 and "[-channel('1.1', 1)]" in repr(
        negative.probe().objective
    )
    assert diversity.images == jobs.DIVERSITY_IMAGES
    assert diversity.probe().batch == 1 and "diversity" not in repr(diversity.probe().objective)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_deferred_interrupt_holds_sigint_and_sigterm_then_raises():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    done = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with pytest.raises(KeyboardInterrupt), deferred_interrupt():
            os.kill(os.getpid(), sig)
            done.append(sig)  # the block ran on to its end
        assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    assert done == [signal.SIGINT, signal.SIGTERM]
    with deferred_interrupt():  # no signal: nothing raised
        pass


def test_each_command_registers_its_own_sub_parser():
    from midnite import cli

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert (
        list(sub.choices)
        == list(cli.COMMANDS)
        == [
            "layers",
            "render",
            "gallery",
            "catalogue",
            "concepts",
            "serve",
        ]
    )
    for module in cli.COMMANDS.values():
        assert callable(module.register) and callable(module.run)


def test_old_paths_are_the_new_objects():
    import midnite.catalogue as cat
    import midnite.catalogue_ray as old_ray
    import midnite.jobs.ray as new_ray

    assert old_ray is new_ray and new_ray.Ray is new_ray.RayExecutor
    assert cat.plan is jobs.plan and cat.run is jobs.run and cat.Batch is jobs.Batch
    assert issubclass(jobs.CatalogueError, UsageError)
    assert issubclass(new_ray.RayError, UsageError)


def test_the_one_run_key_changes_with_any_setting(tiny):
    name, model, shapes = tiny
    base = jobs.Settings(size=(16, 16), steps=2)
    (a,) = jobs.plan(model, name, ["1.1"], shapes, settings=base, units=[0])
    for changed in (
        jobs.Settings(size=(16, 16), steps=3),
        jobs.Settings(size=(16, 16), steps=2, seed=1),
        jobs.Settings(size=(16, 16), steps=2, init_penalty=0.5, init=torch.rand(3, 16, 16)),
    ):
        (b,) = jobs.plan(model, name, ["1.1"], shapes, settings=changed, units=[0])
        assert jobs.canonical(b.key(0)) != jobs.canonical(a.key(0)), changed


@pytest.mark.slow
def test_lite0_render_and_catalogue_write_the_same_bytes(tmp_path):
    a, b = tmp_path / "render", tmp_path / "catalogue"
    same = ["--size", "32", "--steps", "2", "--seed", "3", "--batch", "2", "--no-progress"]
    name = "efficientnet-lite0"
    assert run("render", name, "--layer", "_blocks.2", "--units", "0-2", *same, "--out", a) == 0
    assert run("catalogue", name, "--layers", "_blocks.2", "--units", "0-2", "--views",
               "channel", *same, "--out", b) == 0  # fmt: skip
    for unit in range(3):
        flat = (a / f"_blocks.2_channel_{unit:04d}.png").read_bytes()
        assert flat == (b / "_blocks.2" / f"channel_{unit:04d}.png").read_bytes(), unit
