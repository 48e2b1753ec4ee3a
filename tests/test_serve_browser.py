"""``midnite serve`` as a real process on a free loopback port: a live render started from the
page in headless Chromium, a bounded load test while renders run, and SIGTERM mid-render.

The browser test needs Debian's ``chromium`` and ``chromium-driver`` and ``selenium``; its
screenshot goes to ``tests/artifacts/serve.png`` (or ``$MIDNITE_ARTIFACTS/serve.png``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from midnite.store import records as rec

from conftest import CLI_MODEL_SRC

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

ARTIFACTS = Path(os.environ.get("MIDNITE_ARTIFACTS", Path(__file__).parent / "artifacts"))
SRC = Path(__file__).resolve().parent.parent / "src"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def server(tmp_path: Path, *extra: str) -> Iterator[tuple[str, subprocess.Popen, Path]]:
    """``midnite serve`` on the tiny model in a subprocess; its base URL, process, folder."""
    model = tmp_path / "tiny.py"
    model.write_text(CLI_MODEL_SRC)
    folder = tmp_path / "site"
    folder.mkdir()
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "midnite", "serve", str(folder), "--model", f"{model}:net",
           "--port", str(port), *extra]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(base + "/api/layers", timeout=2).read()
                break
            except (urllib.error.URLError, ConnectionError):
                if proc.poll() is not None or time.monotonic() > end:
                    raise AssertionError(proc.communicate()[1].decode()[-2000:]) from None
                time.sleep(0.2)
        yield base, proc, folder
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.communicate(timeout=60)


def post(base: str, body: dict) -> dict:
    req = urllib.request.Request(base + "/api/render", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=10) as answer:
        return json.loads(answer.read())


def state(base: str, ident: str) -> dict:
    with urllib.request.urlopen(f"{base}/api/jobs/{ident}", timeout=10) as answer:
        return json.loads(answer.read())


@pytest.mark.browser
@pytest.mark.slow  # starts a real Chromium
def test_live_render_from_the_page(tmp_path, browser):
    from selenium.webdriver.support.ui import Select, WebDriverWait

    with server(tmp_path) as (base, _proc, folder):
        browser.get(base + "/")  # no site yet: the live page
        wait = WebDriverWait(browser, 60)
        wait.until(lambda d: d.execute_script("return document.body.dataset.ready === '1'"))
        Select(browser.find_element("id", "layer")).select_by_value("2")
        for name, value in (("unit", "3"), ("steps", "400"), ("size", "48")):
            field = browser.find_element("id", name)
            field.clear()
            field.send_keys(value)
        browser.find_element("id", "start").click()
        wait.until(lambda d: "running" in d.find_element("id", "status").text)
        wait.until(lambda d: d.execute_script("return document.getElementById('current').src"))
        points = browser.execute_script("return document.getElementById('line').points.length")
        assert points >= 1
        wait.until(lambda d: d.find_element("id", "status").text.startswith("done"))
        wait.until(lambda d: d.execute_script(
            "const i = document.getElementById('final'); return i.complete && i.naturalWidth"
        ))  # fmt: skip
        assert browser.execute_script("return document.getElementById('final').naturalWidth") == 48
        assert browser.execute_script("return document.getElementById('line').points.length") == 400
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "serve.png"))
        assert (folder / "2" / "channel_0003.png").is_file()
        browser.get(base + "/")  # now the site the runner built, with the live link
        assert browser.find_element("css selector", ".live-link a").get_attribute("href") == (
            base + "/live"
        )


@pytest.mark.slow
def test_pages_answer_while_two_renders_run(tmp_path):
    with server(tmp_path, "--max-jobs", "2", "--max-steps", "100000") as (base, _proc, folder):
        (folder / "page.html").write_text("<html><body>" + "x" * 5000 + "</body></html>")
        jobs = [post(base, {"layer": "2", "unit": u, "steps": 100000, "size": 64})["job"]
                for u in (0, 1)]  # fmt: skip
        while not all(state(base, j)["state"] == "running" for j in jobs):
            time.sleep(0.05)
        times: list[float] = []
        errors: list[str] = []

        def client(n: int) -> None:
            for _ in range(n):
                began = time.perf_counter()
                try:
                    with urllib.request.urlopen(base + "/page.html", timeout=10) as answer:
                        if answer.status != 200 or len(answer.read()) < 5000:
                            errors.append(f"status {answer.status}")
                except Exception as err:
                    errors.append(repr(err))
                times.append(time.perf_counter() - began)

        threads = [threading.Thread(target=client, args=(10,)) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(state(base, j)["state"] == "running" for j in jobs)  # rendering throughout
        for j in jobs:
            urllib.request.urlopen(urllib.request.Request(f"{base}/api/jobs/{j}", method="DELETE"))
        assert not errors and len(times) == 200
        median, p95 = statistics.median(times), sorted(times)[189]
        print(f"\nserve load: 200 pages from 20 clients while 2 renders ran: "
              f"median {median * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms")  # fmt: skip
        assert p95 < 2.0


@pytest.mark.slow
def test_sigterm_mid_render_leaves_no_half_written_file(tmp_path):
    with server(tmp_path, "--max-jobs", "2", "--max-steps", "100000") as (base, proc, folder):
        done = post(base, {"layer": "2", "unit": 0, "steps": 3, "size": 32})["job"]
        while state(base, done)["state"] != "done":
            time.sleep(0.05)
        jobs = [post(base, {"layer": "2", "unit": u, "steps": 100000, "size": 64})["job"]
                for u in (1, 2)]  # fmt: skip
        while not all(state(base, j)["step"] > 0 for j in jobs):
            time.sleep(0.05)
        events = urllib.request.urlopen(f"{base}/api/jobs/{jobs[0]}/events", timeout=30)
        proc.send_signal(signal.SIGTERM)
        tail = events.read().decode()  # the stream ends with the job's cancellation
        assert "event: cancelled" in tail
        status = proc.wait(timeout=60)
        assert status == 128 + signal.SIGTERM, proc.communicate()[1].decode()[-2000:]
    assert not [p for p in folder.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]
    found = rec.scan(folder / "2")
    assert not found.damaged
    assert sorted(p.name for p, _ in found.units) == ["channel_0000.json"]
    assert sorted(p.name for p in (folder / "2").glob("*.png")) == [
        "channel_0000.png",
        "channel_0000_alpha.png",
    ]
