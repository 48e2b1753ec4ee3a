"""The dry run's whole-command estimate (``jobs.estimate``, ``cli.dry_run``): its parts, the
worker count the run uses, the busy-ness it measured. No timed assertions: the sums and the
rules are checked, the accuracy is measured by ``benchmarks/catalogue.py --dry-vs-run``."""

from __future__ import annotations

import re
import time
from argparse import Namespace
from pathlib import Path

import pytest

from midnite import jobs, models
from midnite.cli.catalogue import run_executor
from midnite.cli.dry_run import workers_used
from midnite.jobs import InProcess
from midnite.jobs.estimate import (
    EXIT,
    RAY_START,
    Busy,
    Estimate,
    estimate,
    examples_seconds,
    process_age,
    quick_probe_seconds,
    run_time,
    schedule,
    writing_seconds,
)
from midnite.jobs.pool import POOL_BATCHES, PoolExecutor
from test_catalogue import MODEL_SRC
from test_catalogue_examples import photos
from test_catalogue_ray import FAST, run


@pytest.fixture
def model_file(tmp_path: Path) -> str:
    path = tmp_path / "tiny.py"
    path.write_text(MODEL_SRC)
    return f"{path}:net"


def test_schedule_hands_batches_in_order_to_the_first_idle_worker():
    assert schedule([3.0, 1.0, 1.0, 1.0], 2) == 3.0  # 3 | 1+1+1
    assert schedule([1.0, 1.0, 3.0], 2) == 4.0  # 1+3 | 1: order matters
    assert schedule([2.0, 2.0], 1) == 4.0
    assert schedule([], 8) == 0.0


def test_busy_others_and_the_slowdown_of_n_workers():
    idle = Busy(cpus=2, load=0.1, share=0.99)
    assert idle.others() == 0.0 and idle.slowdown(2) == 1.0 and idle.slowdown(1) == 1.0
    assert idle.slowdown(4) == pytest.approx(0.99 / 0.5)  # 4 workers on 2 CPUs
    busy = Busy(cpus=2, load=3.0, share=2 / 3)  # a busy loop per CPU beside the probe
    assert busy.others() == pytest.approx(2.0)
    assert busy.slowdown(1) == 1.0  # the probe ran at that share: its time holds
    assert busy.slowdown(2) == pytest.approx((2 / 3) / 0.5)  # 2 workers + 2 loops on 2 CPUs
    text = busy.describe()
    assert "load average 3.0 on 2 CPU(s)" in text and "67% of a CPU" in text


def test_process_age_counts_this_process_since_its_start():
    first = process_age()
    assert first > 0
    time.sleep(0.1)
    assert process_age() >= first + 0.05


def _guess(share: float = 1.0) -> Estimate:
    cost = {"a": (1.0, 0.1, 4), "b": (2.0, 0.2, 4)}
    per_batch = {"x": 3.0, "y": 3.0, "z": 5.0}
    return Estimate(11.0, 5.0, {"a": 6.0, "b": 5.0}, per_batch, cost, share, first=2.0)  # type: ignore[arg-type]


def test_quick_probe_costs_a_warm_up_and_two_renders_per_probed_layer_twice():
    guess = _guess()
    # warm-up of "a" (1 + 0.1), then per layer 2 x (2 fixed + (2 + 4 steps) x step)
    expected = 1.1 + 2 * (2 * 1.0 + 6 * 0.1) + 2 * (2 * 2.0 + 6 * 0.2)
    assert quick_probe_seconds(guess, 3, 4) == pytest.approx(expected)
    assert quick_probe_seconds(guess, 1, 4) == pytest.approx(1.1 + 2 * (4.0 + 1.2))  # the last


def test_run_time_adds_every_part_the_command_spends(monkeypatch):
    monkeypatch.setattr("midnite.jobs.pool.cpus", lambda: 2)
    one = run_time(_guess(), 1, start=2.0, load=0.5, prepare=1.0, examples=3.0, writing=0.5)
    assert one.parts["renders"] == 11.0 and one.parts["first render"] == 2.0
    assert one.parts["files and pages"] == 0.5
    assert "workers' start" not in one.parts and "Ray start" not in one.parts
    assert one.parts["exit"] == EXIT  # the probe had a whole CPU
    assert one.total == pytest.approx(2.0 + 0.5 + 1.0 + 3.0 + 2.0 + 11.0 + 0.5 + EXIT)
    two = run_time(_guess(), 2, start=2.0, load=0.5)
    assert two.parts["workers' start"] == pytest.approx(2.5)  # each loads as this process did
    assert two.parts["renders"] == pytest.approx(8.0)  # 3 | 3, then 5 on the first idle
    ray = run_time(_guess(), 2, start=2.0, load=0.5, examples=3.0, ray=True)
    assert ray.parts["Ray start"] == RAY_START and ray.parts["dataset examples"] == 1.5
    busy = run_time(_guess(share=2 / 3), 2)  # two more processes compete: each worker slower
    assert busy.parts["renders"] == pytest.approx(8.0 * (2 / 3) / 0.5)
    assert busy.parts["exit"] == pytest.approx(EXIT * 1.5)  # as slow as the probe
    assert "start 2.0 s" in one.describe() and "renders 11 s" in one.describe()


def test_estimate_measures_the_share_and_the_first_render(model_file):
    model = models.load(model_file)
    work = jobs.plan(
        model, model_file, ["1.2"], {"1.2": (6, 8, 8)},
        settings=jobs.Settings(size=(16, 16), steps=3, batch=2), units=[0, 1, 2, 3],
    )  # fmt: skip
    guess = estimate(model, work, steps=2)
    assert 0 < guess.share <= 1 and guess.first >= 0
    assert set(guess.cost) == {"1.2"} and guess.cost["1.2"][2] == 2
    assert list(guess.per_batch) == work


def test_priced_times_another_plan_of_the_probed_layers_without_rendering(model_file):
    model = models.load(model_file)
    shapes = {"1.2": (6, 8, 8), "1.1": (4, 8, 8)}

    def plan(steps, layers=("1.2",)):
        return jobs.plan(
            model, model_file, list(layers), shapes,
            settings=jobs.Settings(size=(16, 16), steps=steps, batch=2), units=[0, 1, 2, 3],
        )  # fmt: skip

    guess = _guess()  # layer "a": 1 s fixed, 0.1 s a step for 4 images
    guess.cost["1.2"] = (1.0, 0.1, 4)
    longer = guess.priced(plan(8))  # two batches of 2 images, 8 steps: 1 + 0.1 x 8 x 2 / 4
    assert list(longer.per_batch.values()) == pytest.approx([1.4, 1.4])
    assert longer.total == pytest.approx(2.8) and longer.longest == pytest.approx(1.4)
    assert longer.per_layer == pytest.approx({"1.2": 2.8})
    assert longer.share == guess.share and longer.first == guess.first
    real = estimate(model, plan(3), steps=2)
    again = real.priced(plan(3))
    assert again.per_layer == pytest.approx(real.per_layer) and again.total == real.total
    with pytest.raises(ValueError, match=r"\['1.1'\] were not probed"):
        guess.priced(plan(3, ("1.1", "1.2")))


def test_writing_seconds_runs_two_batches_into_a_temporary_folder(model_file, tmp_path):
    model = models.load(model_file)
    work = jobs.plan(
        model, model_file, ["1.2"], {"1.2": (6, 8, 8)},
        settings=jobs.Settings(size=(16, 16), steps=3, batch=1), units=[0, 1, 2, 3],
    )  # fmt: skip
    assert writing_seconds(model, work[:2], {"1.2": (6, 8, 8)}) > 0
    assert writing_seconds(model, work[:1]) > 0  # one batch: its writing and the end's
    assert writing_seconds(model, []) == 0.0


def test_examples_seconds_is_the_per_image_cost_times_the_files(model_file, tmp_path, monkeypatch):
    """On a clock of its own: a pass costs 0.1 s + 0.05 s an image, the first 0.3 s more."""
    import sys
    from types import SimpleNamespace

    from midnite import analysis

    E = sys.modules["midnite.jobs.estimate"]  # the module (midnite.jobs.estimate: the function)

    clock = [0.0]
    monkeypatch.setattr(E, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    real, calls = analysis.top_examples, []

    def timed(model, layers, images, *args, **kwargs):
        clock[0] += 0.1 + 0.05 * len(images) + (0.3 if not calls else 0.0)
        calls.append(len(images))
        return real(model, layers, images, *args, **kwargs)

    monkeypatch.setattr(analysis, "top_examples", timed)
    model = models.load(model_file)
    files = sorted(p for p in photos(tmp_path / "p", n=8).rglob("img*"))
    units = {"1.2": [0, 1]}
    assert examples_seconds(model, ["1.2"], [], 3, (16, 16), units) == 0.0
    few = examples_seconds(model, ["1.2"], files, 3, (16, 16), units)  # type: ignore[arg-type]
    assert calls == [1, 1, 8] and few == pytest.approx(0.3 + 0.1 + 0.05 * 8)
    calls.clear()
    many = examples_seconds(model, ["1.2"], files * 100, 3, (16, 16), units)  # type: ignore[arg-type]
    assert many == pytest.approx(0.3 + 0.1 + 0.05 * 800)


@pytest.mark.parametrize("batches", [1, 3, 4, 8, 9])
@pytest.mark.parametrize("workers", [None, 1, 2])
def test_the_dry_run_counts_the_workers_the_run_uses(model_file, monkeypatch, batches, workers):
    monkeypatch.setattr("midnite.jobs.pool.cpus", lambda: 2)
    args = Namespace(ray=None, ray_insecure=False, workers=workers, threads=None, model=model_file)
    monkeypatch.setattr(PoolExecutor, "start", lambda self: None)  # no process needed
    for on_cpu in (True, False):
        n = workers_used(args, batches, on_cpu)
        with run_executor(args, None, batches=batches, on_cpu=on_cpu) as executor:  # type: ignore[arg-type]
            used = executor.workers if isinstance(executor, PoolExecutor) else 1
            assert isinstance(executor, (PoolExecutor, InProcess))
        assert n == used
    assert workers_used(args, POOL_BATCHES * 2, True) == (workers or 2)
    args.ray = ""
    assert workers_used(args, 1, True) == (workers or 2)  # local Ray: the CPUs / --threads


def _expected(text: str) -> str:
    line = next(x for x in text.splitlines() if x.startswith("expected time of the command"))
    assert re.match(r"expected time of the command: [\d.]+ (s|min|h) on \d+ worker", line)
    return line


def test_the_dry_run_prints_the_whole_command_and_the_busyness(model_file, tmp_path, capsys):
    argv = ["catalogue", model_file, "--out", tmp_path / "out", *FAST, "--layers", "1.0", "1.2"]
    assert run(*argv, "--workers", 1, "--dry-run") == 0
    line = _expected(capsys.readouterr().out)
    assert "on 1 worker(s) in this process, 1 thread(s) each" in line
    for part in ("start", "model load", "plan", "renders", "load average", "% of a CPU"):
        assert part in line
    assert "workers' start" not in line and "dataset examples" not in line
    images = photos(tmp_path / "photos")
    assert run(*argv, "--workers", 2, "--images", images, "--dry-run") == 0
    line = _expected(capsys.readouterr().out)
    assert "on 2 worker(s) in a pool" in line
    assert "workers' start" in line and "dataset examples" in line
    assert run(*argv, "--ray", "--workers", 3, "--dry-run") == 0  # Ray is not started
    line = _expected(capsys.readouterr().out)
    assert "on 3 worker(s) on local Ray" in line and "Ray start" in line
    assert not (tmp_path / "out").exists()
