"""``--ray HEAD:PORT`` against heads started as the README says: token authentication (the
token found as Ray's tools find it), a missing or wrong token, a head without authentication
(refused unless ``--ray-insecure``). Each error is one line on stderr, without Ray's logs.

The heads run in this loopback-only network namespace (``ray_cluster``), each with a home of
its own, so no ``~/.ray`` of the user's is read or written.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from midnite.cli import main
from test_catalogue import MODEL_SRC
from test_ray_footprint import below, kill_all

TOKEN = "5f0c6a1e9b2d4c7f8a3e6b1d0c9f2a4e5f0c6a1e9b2d4c7f8a3e6b1d0c9f2a4e"
FAST = ["--steps", "3", "--size", "16", "--no-progress", "--batch", "2", "--layers", "1.1"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def head(home: Path, mode: str) -> Iterator[str]:
    """A Ray head on 127.0.0.1 with ``RAY_AUTH_MODE=mode`` (its token: ``TOKEN`` in its
    ``~/.ray/auth_token``, as ``ray get-auth-token --generate`` leaves it); its address."""
    ray = pytest.importorskip("ray")
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text(TOKEN)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(HOME=str(home), RAY_AUTH_MODE=mode)
    port = free_port()
    cli = str(Path(sys.executable).with_name("ray"))
    if not os.path.exists(cli):
        cli = str(Path(ray.__file__).parents[3] / "bin" / "ray")
    argv = [cli, "start", "--head", "--block", "--port", str(port), "--num-cpus", "2"]
    argv += ["--node-ip-address", "127.0.0.1", "--include-dashboard", "false"]
    process = subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    started: dict[int, str] = {}
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert process.poll() is None, "ray start --head ended"
            started.update(below(process.pid))
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            time.sleep(0.2)
        time.sleep(2)  # the raylet registers
        started.update(below(process.pid))
        yield f"127.0.0.1:{port}"
    finally:
        # A throwaway head: `ray start --block` and its GCS outlive a SIGTERM by 30 s and more
        # (measured), so after a short grace the group and anything that left it are killed.
        started.update(below(process.pid))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(2)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        kill_all(started)
        process.wait()


@pytest.fixture(scope="module")
def token_head(tmp_path_factory) -> Iterator[str]:
    with head(tmp_path_factory.mktemp("head") / "home", "token") as address:
        yield address


@pytest.fixture
def driver_home(tmp_path: Path, monkeypatch) -> Path:
    """This process as a new user's driver machine: a home of its own, no Ray variables."""
    home = tmp_path / "driver-home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def model_file(tmp_path: Path) -> str:
    path = tmp_path / "tiny.py"
    path.write_text(MODEL_SRC)
    return f"{path}:net"


def pngs(folder: Path) -> dict[str, bytes]:
    units = (p for p in sorted(folder.rglob("*.png")) if not p.name.endswith("_alpha.png"))
    return {str(p.relative_to(folder)): p.read_bytes() for p in units}


def one_line(capfd) -> str:
    err = capfd.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err[-3000:]
    return err


@pytest.mark.ray_cluster
def test_joins_a_head_with_token_auth_using_the_token_file(
    token_head, driver_home, model_file, tmp_path, one_thread, capfd
):
    (driver_home / ".ray").mkdir()
    (driver_home / ".ray" / "auth_token").write_text(TOKEN)  # copied from the head
    a, b = tmp_path / "a", tmp_path / "b"
    argv = ["catalogue", model_file, *FAST, "--units", "0-3", "--out"]
    assert main([*argv, str(a)]) == 0
    capfd.readouterr()
    assert main([*argv, str(b), "--ray", token_head]) == 0
    assert not capfd.readouterr().err.strip()  # none of Ray's log lines
    assert len(pngs(a)) == 4 and pngs(a) == pngs(b)
    assert "RAY_AUTH_MODE" not in os.environ  # given back


@pytest.mark.ray_cluster
def test_joins_with_the_token_in_the_environment(
    token_head, driver_home, model_file, tmp_path, monkeypatch
):
    monkeypatch.setenv("RAY_AUTH_TOKEN", TOKEN)
    out = tmp_path / "out"
    argv = ["catalogue", model_file, "--out", str(out), *FAST, "--units", "0-1"]
    assert main([*argv, "--ray", token_head]) == 0
    assert len(pngs(out)) == 2


@pytest.mark.ray_cluster
def test_no_token_here_is_one_line_saying_how_to_fix_it(
    token_head, driver_home, model_file, tmp_path, capfd
):
    began = time.monotonic()
    argv = ["catalogue", model_file, "--out", str(tmp_path / "out"), *FAST, "--ray", token_head]
    assert main(argv) == 2
    err = one_line(capfd)
    assert "requires token authentication and no token was found" in err
    assert "~/.ray/auth_token" in err and "RAY_AUTH_TOKEN" in err
    assert time.monotonic() - began < 30
    assert not list((tmp_path / "out").rglob("*.png"))


@pytest.mark.ray_cluster
def test_a_wrong_token_is_one_line_naming_where_it_came_from(
    token_head, driver_home, model_file, tmp_path, capfd, monkeypatch
):
    monkeypatch.setenv("RAY_AUTH_TOKEN", "0" * 64)
    argv = ["catalogue", model_file, "--out", str(tmp_path / "out"), *FAST, "--ray", token_head]
    assert main(argv) == 2
    err = one_line(capfd)
    assert f"the Ray cluster at {token_head!r} rejected the authentication token" in err
    assert "from RAY_AUTH_TOKEN:" in err


@pytest.mark.ray_cluster
def test_a_head_without_authentication_is_refused_unless_insecure(
    tmp_path, driver_home, model_file, capfd
):
    out = tmp_path / "out"
    argv = ["catalogue", model_file, "--out", str(out), *FAST, "--units", "0-1"]
    with head(tmp_path / "head-home", "disabled") as address:
        assert main([*argv, "--ray", address]) == 2
        err = one_line(capfd)
        assert "has authentication disabled" in err and "--ray-insecure" in err
        assert not list(out.rglob("*.png"))
        assert main([*argv, "--ray", address, "--ray-insecure"]) == 0
    assert len(pngs(out)) == 2
