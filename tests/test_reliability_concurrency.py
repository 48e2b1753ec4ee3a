"""Runs into one folder: one writes, the others are refused with status 3; nothing is lost.

``records.lock_folder`` holds an exclusive ``flock`` on ``DIR/.midnite.lock`` for a run; the
kernel drops it when the process dies, so a killed run leaves no stale lock behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from midnite import records as rec
from midnite.cli import main

pytestmark = pytest.mark.skipif(os.name != "posix", reason="flock and kill are POSIX")

MODEL_SRC = """
import torch
from torch import nn


def net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, padding=1, stride=2)
    )
"""

# holds the folder's lock until its stdin closes (or it is killed)
HOLDER = """
import sys
from midnite import records
with records.lock_folder(sys.argv[1]):
    print("locked", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def command(tmp_path: Path) -> list[str]:
    (tmp_path / "tiny.py").write_text(MODEL_SRC)
    return ["render", f"{tmp_path / 'tiny.py'}:net", "--layer", "2", "--units", "0-5",
            "--batch", "2", "--steps", "2", "--size", "16", "--no-progress"]  # fmt: skip


def env() -> dict[str, str]:
    src = str(Path(rec.__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{path}" if path else src}


def hold_lock(folder: Path) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], env=env(),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
    return holder


def units_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}


def test_a_busy_folder_is_refused_with_the_writers_pid(command, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    holder = hold_lock(out)
    try:
        assert (out / rec.LOCK_NAME).read_text().strip() == str(holder.pid)
        assert main([*command, "--out", str(out)]) == 3
        err = capsys.readouterr().err.strip()
        assert err == (
            f"midnite: error: another midnite run is writing to {str(out)!r} (pid "
            f"{holder.pid}); wait for it or use another --out"
        )
        assert units_of(out) == {}
    finally:
        holder.communicate("")  # closes stdin: the holder ends and unlocks
    assert not (out / rec.LOCK_NAME).exists()  # an orderly end removes the lock file
    assert main([*command, "--out", str(out)]) == 0
    assert not (out / rec.LOCK_NAME).exists()


def test_the_lock_of_a_killed_run_is_no_obstacle(command, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    holder = hold_lock(out)
    # a half-written file of the killed run: its writer is gone, so it is cleaned up
    (out / f".2_channel_0000.png.p{holder.pid}.abcd{rec.TEMP_SUFFIX}").write_bytes(b"half")
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (out / rec.LOCK_NAME).exists()  # left behind, with the dead pid in it
    assert main([*command, "--out", str(out)]) == 0
    assert not any(p.name.startswith(".") for p in out.iterdir())
    assert len(rec.scan(out).units) == 6


def test_the_lock_is_released_after_an_error_and_an_interrupt(command, tmp_path, monkeypatch):
    out = tmp_path / "out"

    def interrupted(*args, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr("midnite.jobs.executors.render_config", interrupted)
    assert main([*command, "--out", str(out)]) == 130
    assert not (out / rec.LOCK_NAME).exists()
    with rec.lock_folder(out):  # free again
        pass


def test_lock_folder_in_one_process_refuses_a_second_holder(tmp_path):
    with rec.lock_folder(tmp_path) as path:
        assert path == tmp_path / rec.LOCK_NAME
        busy = pytest.raises(rec.FolderBusy, match=rf"\(pid {os.getpid()}\)")
        with busy, rec.lock_folder(tmp_path):
            pass
    with rec.lock_folder(tmp_path):
        pass


def test_concurrent_runs_into_one_folder_never_crash_nor_lose_work(command, tmp_path):
    reference = tmp_path / "reference"
    assert main([*command, "--out", str(reference)]) == 0
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "midnite", *command, "--out", str(out)]
    runs = [subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for _ in range(4)]  # fmt: skip
    began = time.monotonic()
    results = [(p.wait(timeout=240), *p.communicate()) for p in runs]
    assert time.monotonic() - began < 240
    for status, _, err in results:
        assert status in (0, 3), err
        assert "Traceback" not in err
        if status == 3:
            assert "another midnite run is writing to" in err
    assert any(status == 0 for status, _, _ in results)
    assert main([*command, "--out", str(out)]) == 0  # the final run: all up to date
    # every unit complete, byte for byte the single run's; no temporary files, no lock left
    assert units_of(out) == units_of(reference)
    found = rec.scan(out)
    assert found.damaged == [] and len(found.units) == 6
    ref = rec.scan(reference).valid()
    for path, record in found.units:
        assert record["key"] == ref[path.stem]["key"]
    assert not any(p.name.startswith(".") for p in out.iterdir())
