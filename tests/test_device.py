"""The device context: default, nesting, exceptions, threads, errors, resolve_device."""

from __future__ import annotations

import threading

import pytest
import torch

import midnite
from midnite.engine.device import device, get_device, resolve_device

CPU = torch.device("cpu")
CPU0 = torch.device("cpu:0")  # a second device that exists on every machine (not == CPU)


def test_public_names():
    assert midnite.device is device
    assert midnite.get_device is get_device


def test_default_is_cpu():
    assert get_device() == CPU
    assert resolve_device(None) == CPU


def test_sets_and_yields_the_device():
    with device("cpu:0") as dev:
        assert dev == CPU0
        assert get_device() == CPU0
        assert resolve_device(None) == CPU0
    assert get_device() == CPU


def test_accepts_torch_device():
    with device(CPU0):
        assert get_device() == CPU0


def test_nesting_restores_outer():
    with device("cpu:0"):
        with device("cpu"):
            assert get_device() == CPU
            with device("cpu:0"):
                assert get_device() == CPU0
            assert get_device() == CPU
        assert get_device() == CPU0
    assert get_device() == CPU


def test_exception_inside_restores():
    with pytest.raises(RuntimeError, match="boom"), device("cpu:0"), device("cpu:0"):
        raise RuntimeError("boom")
    assert get_device() == CPU
    with device("cpu:0"):
        with pytest.raises(KeyError), device("cpu"):
            raise KeyError("x")
        assert get_device() == CPU0


def test_threads_do_not_share_the_device():
    barrier = threading.Barrier(2, timeout=10)
    seen: dict[str, object] = {}

    def worker():
        try:
            seen["start"] = get_device()  # the main thread is inside device("cpu:0") now
            with device("cpu"):
                barrier.wait()  # both threads inside their own contexts
                seen["inside"] = get_device()
                barrier.wait()  # main has read its own device
        except Exception as err:  # reported to the main thread
            seen["error"] = err
            barrier.abort()

    with device("cpu:0"):
        thread = threading.Thread(target=worker)
        thread.start()
        barrier.wait()
        main_inside = get_device()
        barrier.wait()
        thread.join(timeout=10)
    assert "error" not in seen
    assert seen["start"] == CPU  # a new thread starts at the default
    assert seen["inside"] == CPU
    assert main_inside == CPU0  # the thread's setting did not leak


def test_thread_setting_does_not_leak_to_main():
    barrier = threading.Barrier(2, timeout=10)

    def worker():
        with device("cpu:0"):
            barrier.wait()
            barrier.wait()

    thread = threading.Thread(target=worker)
    thread.start()
    barrier.wait()
    try:
        assert get_device() == CPU
    finally:
        barrier.wait()
        thread.join(timeout=10)
    assert get_device() == CPU


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_unavailable_is_a_value_error():
    for spec in ("cuda:0", "cuda", torch.device("cuda", 0)):
        with pytest.raises(ValueError, match="CUDA is not available") as info, device(spec):
            pass
        assert repr(spec) in str(info.value)
    assert get_device() == CPU


def test_bad_specs():
    for bad in (0, None, 1.5, ["cpu"]):
        with pytest.raises(TypeError, match=f"str or torch.device, got {type(bad).__name__}"):
            device(bad).__enter__()
    with pytest.raises(ValueError, match="'gpu7'"), device("gpu7"):
        pass
    with pytest.raises(TypeError, match="got int"):
        resolve_device(3)
    with pytest.raises(ValueError, match="'nonsense'"):
        resolve_device("nonsense")
    assert get_device() == CPU


def test_resolve_device_explicit_wins():
    assert resolve_device("cpu") == CPU
    assert resolve_device(CPU0) is CPU0
    with device("cpu:0"):
        assert resolve_device("cpu") == CPU
        assert resolve_device(None) == CPU0


def test_devices_that_cannot_render_are_refused_by_name():
    for spec in ("meta", torch.device("meta")):
        with pytest.raises(ValueError, match="holds no values") as info:
            resolve_device(spec)
        assert repr(spec) in str(info.value)
        with pytest.raises(ValueError, match="holds no values"), device(spec):
            pass
    assert get_device() == CPU


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_render_and_layers_on_missing_cuda_say_so(cnn):
    with pytest.raises(ValueError, match="CUDA is not available"):
        midnite.layers(cnn, 8, device="cuda")
    objective = midnite.objectives.channel("0", 0)
    with pytest.raises(ValueError, match="CUDA is not available"):
        midnite.render(cnn, objective, size=8, steps=1, device="cuda:0", progress=False)
