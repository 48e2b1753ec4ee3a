"""Tiny hand-built models for fast tests, and helpers to check that a model was left as it was."""

from __future__ import annotations

import faulthandler
import os
import shutil
import socket
from pathlib import Path

import pytest
import torch
from torch import nn

# Model files the command-line tests load as `path/to/file.py:net` (written to tmp_path)
CLI_MODEL_SRC = """
import torch
from torch import nn


def net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 6, 3, padding=1, stride=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 5),
    )


def not_a_model():
    return 42
"""

CONV_MODEL_SRC = """
import torch
from torch import nn


def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 3, padding=1))
"""


def gen(seed: int = 0) -> torch.Generator:
    """A CPU generator seeded with ``seed``."""
    return torch.Generator().manual_seed(seed)


def rand_image(b: int = 2, c: int = 3, h: int = 16, w: int = 16, seed: int = 0) -> torch.Tensor:
    """A seeded uniform image batch ``(b, c, h, w)``."""
    return torch.rand(b, c, h, w, generator=gen(seed))


def tiny_cnn(in_channels: int = 3, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(in_channels, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 6, 3, padding=1, stride=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 5),
    )


class ResidualToy(nn.Module):
    """Stem, two residual blocks with skip connections, head."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.block1 = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.block2 = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(8, 4)
        self.calls = {"block2": 0, "head": 0}

    def forward(self, x):
        x = self.stem(x)
        x = x + self.block1(x)
        self.calls["block2"] += 1
        x = x + self.block2(x)
        self.calls["head"] += 1
        return self.head(x.mean((2, 3)))


class InplaceNet(nn.Module):
    """A conv followed by in-place ReLUs: captured values must be the module's own output."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(2)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.relu2 = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu2(self.conv2(self.relu(self.conv(x))))


class ReuseNet(nn.Module):
    """One activation module used at two places in the forward pass."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.act = nn.Tanh()

    def forward(self, x):
        return self.act(self.conv2(self.act(self.conv1(x))))


class TupleNet(nn.Module):
    def __init__(self, as_dict: bool = False):
        super().__init__()
        torch.manual_seed(4)
        self.features = tiny_cnn()
        self.as_dict = as_dict

    def forward(self, x):
        logits = self.features(x)
        if self.as_dict:
            return {"logits": logits, "aux": logits.detach() * 0}
        return logits, logits.detach() * 0


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def bench_module(name: str):
    """``benchmarks/<name>.py`` as a fresh module (its own imports, such as ``_common``, found
    there); named ``<name>_bench`` so that it never shadows a midnite module of the same name."""
    import importlib.util
    import sys

    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location(f"{name}_bench", BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module


def model_state(model: nn.Module) -> dict:
    """Everything midnite must leave as it was."""
    return {
        "flags": [p.requires_grad for p in model.parameters()],
        "modes": [m.training for m in model.modules()],
        "data": [p.data_ptr() for p in model.parameters()],
        "values": [p.detach().clone() for p in model.parameters()],
        "grads": [p.grad for p in model.parameters()],
        "hooks": hook_count(model),
    }


def hook_count(model: nn.Module) -> int:
    return sum(
        len(m._forward_hooks)
        + len(m._forward_pre_hooks)
        + len(m._backward_hooks)
        + len(getattr(m, "_backward_pre_hooks", {}))
        for m in model.modules()
    )


def assert_same_state(before: dict, model: nn.Module) -> None:
    after = model_state(model)
    assert after["flags"] == before["flags"]
    assert after["modes"] == before["modes"]
    assert after["data"] == before["data"]
    assert all(torch.equal(a, b) for a, b in zip(after["values"], before["values"], strict=True))
    assert all(g is None for g in after["grads"])
    assert after["hooks"] == 0


@pytest.fixture
def cnn() -> nn.Sequential:
    model = tiny_cnn()
    model.train()  # the user's mode: midnite must run in eval and put train back
    return model


@pytest.fixture
def one_thread():
    """Run the test with one torch thread, and give the count back afterwards.

    On a 2-core CPU shared with other processes, OpenMP threads spinning at barriers can make a
    2-thread run ~100x slower (the speed benchmark's smoke run: 10 minutes instead of 5 s).
    """
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


CHROMIUM = os.environ.get("MIDNITE_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("MIDNITE_CHROMEDRIVER") or shutil.which("chromedriver") or ""


@pytest.fixture
def browser(tmp_path):
    """Headless Chromium through selenium; skips without Chromium, chromedriver or selenium."""
    if not Path(CHROMIUM).is_file() or not CHROMEDRIVER:
        pytest.skip("no Chromium or chromedriver")
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1000,800",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


RAY_TEST_SECONDS = 240  # a Ray test that runs longer is stuck: its process is ended with a trace
LOOPBACK_ONLY = "unshare -rn sh -c 'ip link set lo up && exec python -m pytest -m ray_cluster'"


@pytest.fixture(autouse=True)
def _ray_cluster_guard(request):
    """``ray_cluster`` tests: only where the loopback is the only network, and bounded in time.

    midnite's local Ray instance listens on 127.0.0.1 only, but the heads the tests start (and a
    plain ``ray.init``) listen on every interface; in a network namespace of its own with only
    the loopback (``scripts/test.sh`` makes one), nothing can reach them.
    """
    if request.node.get_closest_marker("ray_cluster") is None:
        yield
        return
    others = [name for _, name in socket.if_nameindex() if name != "lo"]
    if others:
        pytest.skip(f"Ray tests need a loopback-only network (found {others}): {LOOPBACK_ONLY}")
    faulthandler.dump_traceback_later(RAY_TEST_SECONDS, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
