"""What a ``--ray`` run leaves on the machine: loopback-only servers, nothing after a SIGKILL of
the driver, one line on SIGTERM, the environment and signal handlers given back.

Each test starts its own local Ray instance (``ray_cluster``: only in a loopback-only network
namespace). The listening test runs its drivers in a nested namespace whose loopback also
carries a routable address (10.9.9.9), the address Ray picks as "the machine's own".
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_catalogue import MODEL_SRC

SRC = str(Path(__file__).resolve().parents[1] / "src")
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}
OWN_ADDRESS = "10.9.9.9"
NESTED = (
    f"ip link set lo up && ip addr add {OWN_ADDRESS}/24 dev lo && ip route add default dev lo "
    '&& exec "$0" "$@"'
)


def sockets() -> list[tuple[str, str, int]]:
    """``(protocol, address, port)`` of every listening TCP and unconnected UDP socket (what
    answers to others) of this network namespace, from ``/proc/net``."""
    found = []
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        try:
            lines = Path(f"/proc/net/{proto}").read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            address, port = fields[1].split(":")
            if fields[3] != ("0A" if proto.startswith("tcp") else "07"):  # LISTEN, unconnected
                continue
            raw = bytes.fromhex(address)
            if proto.endswith("6"):
                raw = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                ip = socket.inet_ntop(socket.AF_INET6, raw)
            else:
                ip = socket.inet_ntop(socket.AF_INET, raw[::-1])
            found.append((proto, ip, int(port, 16)))
    return found


def processes() -> dict[int, tuple[int, str, str]]:
    """Every live process: pid -> (parent pid, start time, command line)."""
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            fields = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
            command = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue
        if fields[0] not in "ZX":  # a zombie has ended
            found[int(name)] = (int(fields[1]), fields[19], command)
    return found


def below(pid: int) -> dict[int, str]:
    """The processes under ``pid`` now: pid -> start time."""
    table = processes()
    found: dict[int, str] = {}
    todo = [pid]
    while todo:
        parent = todo.pop()
        for child, (ppid, start, _) in table.items():
            if ppid == parent and child not in found:
                found[child] = start
                todo.append(child)
    return found


def alive(pids: dict[int, str]) -> dict[int, str]:
    table = processes()
    return {p: table[p][2] for p, start in pids.items() if p in table and table[p][1] == start}


def kill_all(pids: dict[int, str]) -> None:
    """SIGKILL what is left of ``pids`` (a failed test leaves nothing behind)."""
    for pid in alive(pids):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The drivers' environment: this tree's midnite, a home of their own (``~/.ray``)."""
    home = tmp_path / "home"
    home.mkdir()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    return {**clean, "HOME": str(home), "PYTHONPATH": os.pathsep.join([SRC, *sys.path])}


@pytest.fixture
def model_file(tmp_path: Path) -> str:
    path = tmp_path / "tiny.py"
    path.write_text(MODEL_SRC)
    return f"{path}:net"


LISTEN_DRIVER = """
import json, sys
{sockets}
if sys.argv[1] == "midnite":
    from midnite.jobs.ray import RayExecutor

    with RayExecutor(sys.argv[2], workers=2) as executor:
        executor.pids()  # the workers are up
        print(json.dumps(sockets()))
else:  # a plain local instance, as midnite started it before
    import ray

    ray.init(address="local", include_dashboard=False, _node_ip_address="127.0.0.1",
             num_cpus=2, logging_level=40, log_to_driver=False)
    ray.get(ray.remote(lambda: 1).remote())
    print(json.dumps(sockets()))
    ray.shutdown()
"""


def nested_namespace_works() -> bool:
    try:
        done = subprocess.run(["unshare", "-rn", "sh", "-c", NESTED, "true"], capture_output=True)
    except OSError:
        return False
    return done.returncode == 0


@pytest.mark.ray_cluster
def test_the_local_instance_listens_on_the_loopback_only(tmp_path, env, model_file):
    pytest.importorskip("ray")
    if not nested_namespace_works():
        pytest.skip("needs 'unshare -rn' (a nested network namespace) and 'ip'")
    import inspect

    code = LISTEN_DRIVER.format(sockets="import socket\nfrom pathlib import Path\n")
    code = code.replace("\nif sys.argv", inspect.getsource(sockets) + "\nif sys.argv", 1)
    found = {}
    for mode in ("plain", "midnite"):
        argv = ["unshare", "-rn", "sh", "-c", NESTED, sys.executable, "-c", code, mode, model_file]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr[-2000:]
        found[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    # the control: in this namespace a plain local instance is reachable from outside
    assert {ip for _, ip, _ in found["plain"]} - LOOPBACK
    mine = found["midnite"]
    assert len([s for s in mine if s[0].startswith("tcp")]) >= 4  # GCS, raylet, agents, workers
    assert [s for s in mine if s[1] not in LOOPBACK] == []


SLEEPING_DRIVER = """
import sys, time
from midnite.jobs.ray import RayExecutor

with RayExecutor(sys.argv[1], workers=2) as executor:
    executor.pids()
    print("ready", flush=True)
    time.sleep(120)
"""


@pytest.mark.ray_cluster
def test_after_a_sigkill_of_the_driver_no_ray_process_is_left(env, model_file):
    pytest.importorskip("ray")
    argv = [sys.executable, "-c", SLEEPING_DRIVER, model_file]
    driver = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    ray: dict[int, str] = {}
    try:
        assert driver.stdout is not None
        assert driver.stdout.readline().strip() == "ready"
        ray = below(driver.pid)
        names = " ".join(alive(ray).values())
        assert len(ray) >= 5 and "gcs_server" in names and "raylet" in names, names
        watchdog = {
            pid: start
            for pid, (_, start, command) in processes().items()
            if "_watch(" in command and f"{next(iter(ray))}: " in command
        }
        assert len(watchdog) == 1  # in its own session: not below the driver
        ray.update(watchdog)
        driver.kill()
        driver.wait(10)
        deadline = time.monotonic() + 10
        while alive(ray) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive(ray), alive(ray)
    finally:
        driver.kill()
        kill_all(ray)


TERM_MODEL = """
import time


class Slow(nn.Module):
    def forward(self, x):
        time.sleep(0.05)
        return x


def slow():
    return nn.Sequential(Slow(), net())
"""


@pytest.mark.ray_cluster
def test_sigterm_of_a_ray_run_is_one_line_and_stops_like_ctrl_c(tmp_path, env):
    pytest.importorskip("ray")
    path = tmp_path / "slow.py"
    path.write_text(MODEL_SRC + TERM_MODEL)
    out = tmp_path / "out"
    argv = [f"{path}:slow", "--out", str(out), "--steps", "3", "--size", "16", "--no-progress"]
    argv += ["--batch", "1", "--units", "0-5", "--layers", "1.1", "1.2", "--views"]
    argv += ["channel,negative", "--ray", "--workers", "2"]
    code = "import sys; from midnite.cli import main; sys.exit(main(sys.argv[1:]))"
    driver = subprocess.Popen(
        [sys.executable, "-c", code, "catalogue", *argv],
        env=env, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    ray: dict[int, str] = {}
    try:
        deadline = time.monotonic() + 120
        while len(list(out.rglob("*.json"))) < 2 and time.monotonic() < deadline:
            assert driver.poll() is None, "the run ended before SIGTERM"
            ray.update(below(driver.pid))
            time.sleep(0.05)
        driver.send_signal(signal.SIGTERM)
        _, err = driver.communicate(timeout=60)
        assert driver.returncode == 143  # like Ctrl-C, with SIGTERM's conventional status
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("midnite: stopped by SIGTERM;"), err[-3000:]
        deadline = time.monotonic() + 10
        while alive(ray) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ray and not alive(ray)  # the executor shut the local instance down
    finally:
        driver.kill()
        kill_all(ray)


@pytest.mark.ray_cluster
def test_the_environment_and_sigterm_handler_are_given_back(tmp_path, model_file, monkeypatch):
    pytest.importorskip("ray")
    from midnite.jobs.ray import LOOPBACK_MODE, RayExecutor

    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # Ray would write ~/.ray/auth_token
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # the user's, for their own clusters
    environ, handler = dict(os.environ), signal.getsignal(signal.SIGTERM)
    with RayExecutor(model_file, workers=1) as executor:
        assert len(executor.pids()) == 1
        assert os.environ[LOOPBACK_MODE] == "0" and os.environ["RAY_AUTH_MODE"] == "token"
        assert signal.getsignal(signal.SIGTERM) is not handler
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)  # Ray's own handler would sys.exit(15)
            time.sleep(5)
    assert dict(os.environ) == environ
    assert signal.getsignal(signal.SIGTERM) is handler
    assert not (tmp_path / "home" / ".ray").exists()  # the instance's token was its own


def test_malformed_addresses_are_one_line_before_anything_loads(tmp_path, capfd):
    from midnite.cli import main

    for address in (":", "head:", ":6379", "a b:1", "head:0", "head:65536", "head:63x", "/x:1"):
        status = main(["catalogue", "missing.py:net", "--out", str(tmp_path), "--ray", address])
        err = capfd.readouterr().err
        assert status == 2 and len(err.strip().splitlines()) == 1, (address, err)
        assert "expected the address of a Ray head as HOST:PORT" in err and repr(address) in err


def test_well_formed_addresses_pass_the_check():
    from midnite.jobs.ray import check_address

    for address in ("auto", "10.0.0.5:6379", "head.example:1", "[::1]:6379", "ray://h:10001"):
        assert check_address(address) == address


def test_ray_insecure_needs_an_address(model_file, tmp_path, capfd):
    from midnite.cli import main

    argv = ["catalogue", model_file, "--out", str(tmp_path / "out"), "--steps", "1"]
    assert main([*argv, "--ray-insecure"]) == 2
    assert "--ray-insecure needs --ray ADDRESS" in capfd.readouterr().err
    pytest.importorskip("ray")
    assert main([*argv, "--ray", "--ray-insecure"]) == 2
    assert "--ray-insecure is for joining a cluster" in capfd.readouterr().err
