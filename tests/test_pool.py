"""The process-pool executor: the same bytes as one process at one thread, the thread policy,
bad input in one line, and no worker left behind after Ctrl-C, SIGTERM or a killed parent."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from argparse import Namespace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from midnite import jobs
from midnite.cli.catalogue import run_executor
from midnite.jobs import InProcess
from midnite.jobs.pool import POOL_BATCHES, PoolError, PoolExecutor, cpus, pool_workers
from midnite.jobs.watchdog import descendants
from midnite.store import records as rec
from test_catalogue import MODEL_SRC
from test_catalogue_ray import FAST, SLOW_SRC, pngs, records, run


@pytest.fixture
def model_file(tmp_path: Path) -> str:
    path = tmp_path / "tiny.py"
    path.write_text(MODEL_SRC)
    return f"{path}:net"


def test_pool_and_one_process_write_the_same_bytes(model_file, tmp_path, one_thread):
    a, b = tmp_path / "a", tmp_path / "b"
    argv = ["catalogue", model_file, *FAST, "--layers", "1.0", "1.2", "--views", "channel,negative"]
    assert run(*argv, "--out", a, "--workers", 1) == 0  # in-process, the default threads
    assert run(*argv, "--out", b, "--workers", 2) == 0
    assert len(pngs(a)) == 16 and pngs(a) == pngs(b)
    assert records(a) == records(b)  # records' keys and values, timings aside
    assert run(*argv, "--out", b, "--workers", 2) == 0  # a rerun: up to date
    assert pngs(a) == pngs(b)


@pytest.mark.ray_cluster
def test_in_process_pool_and_local_ray_write_the_same_bytes(model_file, tmp_path):
    """Issue #22: the same small catalogue in-process with the default threads, with
    ``--workers 2`` and on local Ray gives identical PNG bytes (and records)."""
    pytest.importorskip("ray")
    argv = ["catalogue", model_file, *FAST, "--layers", "1.0", "1.2", "--views", "channel,negative"]
    ways = {"one": ["--workers", 1], "pool": ["--workers", 2], "ray": ["--ray", "--workers", 2]}
    for name, extra in ways.items():
        assert run(*argv, "--out", tmp_path / name, *extra) == 0
    found = {name: pngs(tmp_path / name) for name in ways}
    assert len(found["one"]) == 16
    assert found["one"] == found["pool"] == found["ray"]
    assert records(tmp_path / "one") == records(tmp_path / "pool") == records(tmp_path / "ray")


def test_pool_in_the_python_api_and_its_workers_end(model_file, tmp_path, one_thread):
    from midnite import models

    model = models.load(model_file)
    work = jobs.plan(
        model, model_file, ["1.2"], {"1.2": (6, 8, 8)},
        settings=jobs.Settings(size=(16, 16), steps=3, batch=2), units=[0, 1, 2, 3],
    )  # fmt: skip
    reference = jobs.run(work, tmp_path / "a", executor=InProcess(model), progress=False)
    with PoolExecutor(model_file, workers=2) as executor:
        pids = executor.pids()
        assert len(pids) == 2 and all(_alive(p) for p in pids)
        summary = jobs.run(work, tmp_path / "b", executor=executor, progress=False)
    assert summary.rendered == reference.rendered == 4
    assert pngs(tmp_path / "a") == pngs(tmp_path / "b")
    assert not any(_alive(p) for p in pids)


def test_a_batch_that_raises_fails_only_itself(model_file):
    from midnite import models

    model = models.load(model_file)
    work = jobs.plan(
        model, model_file, ["1.2"], {"1.2": (6, 8, 8)},
        settings=jobs.Settings(size=(16, 16), steps=2, batch=2), units=[0, 1, 2, 3],
    )  # fmt: skip
    broken = SimpleNamespace(config=None)  # a batch the engine refuses
    with PoolExecutor(model_file, workers=1) as executor:
        found = list(executor.run([broken, *work]))  # type: ignore[list-item]
        assert isinstance(found[0][1], Exception) and not isinstance(found[0][1], PoolError)
        assert [isinstance(r, Exception) for _, r in found[1:]] == [False, False]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in "ZX"
    except OSError:
        return False


def test_the_default_rule_and_bad_values():
    n = cpus()
    assert n == len(os.sched_getaffinity(0))
    assert pool_workers(3, 2) == 2 and pool_workers(1, 4) == 1  # at most one per batch
    assert pool_workers(POOL_BATCHES * n - 1) == 1  # a short run: this process alone
    assert pool_workers(POOL_BATCHES * n) == (n if n > 1 else 1)
    for bad in (0, -1, "2"):
        with pytest.raises((ValueError, TypeError), match="workers"):
            PoolExecutor("x.py:net", workers=bad)  # type: ignore[arg-type]
        with pytest.raises((ValueError, TypeError), match="threads"):
            PoolExecutor("x.py:net", threads=bad)  # type: ignore[arg-type]
        with pytest.raises((ValueError, TypeError), match="threads"):
            InProcess(torch.nn.Identity(), threads=bad)  # type: ignore[arg-type]


def test_the_cli_picks_the_executor_by_the_rule(model_file, monkeypatch):
    args = Namespace(ray=None, ray_insecure=False, workers=None, threads=None, model=model_file)
    model = torch.nn.Identity()
    monkeypatch.setattr("midnite.jobs.pool.cpus", lambda: 2)
    with run_executor(args, model, batches=3) as executor:
        assert isinstance(executor, InProcess) and executor.threads == 1
    with run_executor(args, model, batches=3, on_cpu=False) as executor:
        assert isinstance(executor, InProcess)
    args.threads = 3
    with run_executor(args, model, batches=4, on_cpu=False) as executor:
        assert isinstance(executor, InProcess) and executor.threads == 3
    args.workers, args.threads = 2, None
    with run_executor(args, model, batches=4, on_cpu=False) as executor:
        assert isinstance(executor, PoolExecutor) and executor.workers == 2
        pids = executor.pids()
    assert not any(_alive(p) for p in pids)


def test_in_process_threads_are_set_for_the_run_and_given_back(model_file):
    from midnite import models

    model = models.load(model_file)
    work = jobs.plan(
        model, model_file, ["1.2"], {"1.2": (6, 8, 8)},
        settings=jobs.Settings(size=(16, 16), steps=2, batch=4), units=[0, 1, 2, 3],
    )  # fmt: skip
    seen: list[int] = []
    executor = InProcess(model, threads=1, callback=lambda s: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert not any(isinstance(r, Exception) for _, r in executor.run(work))
        assert seen and set(seen) == {1}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--workers", "0"], "--workers must be"),
        (["--threads", "0"], "--threads must be"),
        (["--threads", "two"], "--threads must be an integer, got 'two'"),
    ],
)
def test_bad_workers_and_threads_are_one_line(model_file, tmp_path, capsys, argv, expected):
    assert run("catalogue", model_file, "--out", tmp_path / "out", *FAST, *argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err


def _slow_run(tmp_path: Path) -> tuple[subprocess.Popen, Path, list[str]]:
    path = tmp_path / "slow.py"
    path.write_text("import time\n" + MODEL_SRC + SLOW_SRC)
    out = tmp_path / "out"
    # 16 batches of one unit: 4 written when the parent is stopped, 12 left (~1 s of work)
    argv = [f"{path}:slow", "--out", str(out), *FAST, "--batch", "1", "--units", "0-3"]
    argv += ["--layers", "1.1", "1.2", "--views", "channel,negative", "--workers", "2"]
    code = "import sys; from midnite.cli import main; sys.exit(main(sys.argv[1:]))"
    driver = subprocess.Popen(
        [sys.executable, "-c", code, "catalogue", *argv],
        start_new_session=True, stderr=subprocess.PIPE,
    )  # fmt: skip
    return driver, out, argv


def _wait_for_records(driver: subprocess.Popen, out: Path, n: int) -> dict[int, str]:
    """The driver's children once ``n`` records are written."""
    deadline = time.monotonic() + 120
    while sum(p.name != "catalogue.json" for p in out.rglob("*.json")) < n:
        assert driver.poll() is None, "the run ended before it could be stopped"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    children = descendants({driver.pid: ""})
    assert len(children) >= 2
    return children


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "SIGKILL"])
def test_stopping_the_parent_leaves_no_worker_and_no_half_file(tmp_path, how):
    driver, out, argv = _slow_run(tmp_path)
    try:
        children = _wait_for_records(driver, out, 4)
        if how == "SIGINT":  # Ctrl-C at a terminal: the whole process group gets it
            os.killpg(driver.pid, signal.SIGINT)
        else:
            driver.send_signal(getattr(signal, how))
        status = driver.wait(60)
        deadline = time.monotonic() + 30
        while any(_alive(p) for p in children) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(p) for p in children), "a worker outlived its parent"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(driver.pid, signal.SIGKILL)
        driver.wait(10)
    assert status == {"SIGINT": 130, "SIGTERM": 143, "SIGKILL": -9}[how]
    if how != "SIGKILL":  # a killed parent may leave a temp file; the next run cleans it
        assert not [p for p in out.rglob("*") if p.name.endswith(rec.TEMP_SUFFIX)]
    for folder in ("1.1", "1.2"):
        assert not rec.scan(out / folder).damaged if (out / folder).is_dir() else True
    # the rerun renders what is missing; in this process (the pool's start is tested above)
    assert run("catalogue", *argv[:-2], "--workers", "1") == 0
    assert len([p for p in out.rglob("*.json") if p.name != "catalogue.json"]) == 16
