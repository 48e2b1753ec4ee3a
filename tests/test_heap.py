"""Tests for midnite.engine._heap: freed memory stays in the heap inside the block only."""

from __future__ import annotations

import ctypes
import resource
import sys

import pytest
import torch

from midnite.engine import _heap

glibc = pytest.mark.skipif(_heap._glibc() is None, reason="needs Linux with glibc")


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd",
            "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


def mallinfo() -> _MallInfo2:
    libc = _heap._glibc()
    if not hasattr(libc, "mallinfo2"):
        pytest.skip("glibc without mallinfo2 (< 2.33)")
    libc.mallinfo2.restype = _MallInfo2
    return libc.mallinfo2()


MIB48 = 48 * 2**20


def big_tensor_placement() -> tuple[int, int]:
    """(bytes newly mmapped, bytes newly in use in the heap) while a 48 MiB tensor lives."""
    before = mallinfo()
    t = torch.ones(MIB48 // 4)
    during = mallinfo()
    del t
    return during.hblkhd - before.hblkhd, during.uordblks - before.uordblks


@glibc
def test_big_blocks_come_from_the_heap_and_stay_there_inside_only(monkeypatch):
    monkeypatch.delenv("MIDNITE_RETAIN_HEAP", raising=False)
    if not _heap.enabled():
        pytest.skip("malloc tunables set in this environment")
    mapped, in_heap = big_tensor_placement()
    assert mapped >= MIB48 and in_heap < MIB48  # glibc's default: its own mapping, unmapped on free
    with _heap.retained_heap() as active:
        assert active
        mapped, in_heap = big_tensor_placement()
        assert mapped == 0 and in_heap >= MIB48
        torch.ones(MIB48 // 4)  # allocated and freed: it stays resident for the next one
        assert mallinfo().fordblks >= MIB48
        kept = resident_bytes()
    # on exit the heap is trimmed: the freed memory goes back to the system
    assert kept - resident_bytes() >= 0.9 * MIB48
    assert _heap._depth == 0


def resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


@glibc
def test_nests_and_restores_only_at_the_outermost_exit(monkeypatch):
    monkeypatch.delenv("MIDNITE_RETAIN_HEAP", raising=False)
    if not _heap.enabled():
        pytest.skip("malloc tunables set in this environment")
    calls = []
    real = _heap._glibc()

    class Spy:
        def mallopt(self, param, value):
            calls.append((param, value))
            return real.mallopt(param, value)

        def malloc_trim(self, pad):
            calls.append(("trim", pad))
            return real.malloc_trim(pad)

    monkeypatch.setattr(_heap, "_libc", Spy())
    with _heap.retained_heap(), _heap.retained_heap():
        assert calls == [(_heap._M_MMAP_MAX, 0), (_heap._M_TRIM_THRESHOLD, _heap._NEVER_TRIM)]
    assert calls[2:] == [
        (_heap._M_MMAP_MAX, _heap._DEFAULT_MMAP_MAX),
        (_heap._M_TRIM_THRESHOLD, _heap._DEFAULT_TRIM_THRESHOLD),
        ("trim", 0),
    ]
    assert _heap._depth == 0


@glibc
def test_restored_after_an_exception(monkeypatch):
    monkeypatch.delenv("MIDNITE_RETAIN_HEAP", raising=False)
    if not _heap.enabled():
        pytest.skip("malloc tunables set in this environment")
    with pytest.raises(KeyboardInterrupt), _heap.retained_heap():
        raise KeyboardInterrupt
    assert _heap._depth == 0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MIDNITE_RETAIN_HEAP", "0"),
        ("MIDNITE_RETAIN_HEAP", "off"),
        ("MALLOC_TRIM_THRESHOLD_", "1000000"),
        ("GLIBC_TUNABLES", "glibc.malloc.mmap_max=0"),
    ],
)
def test_user_settings_keep_it_off(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    monkeypatch.setattr(_heap, "_libc", None)  # any call into libc would fail
    monkeypatch.setattr(_heap, "_glibc", lambda: pytest.fail("libc looked up"))
    assert not _heap.enabled()
    with _heap.retained_heap() as active:
        assert active is False


def test_no_op_without_glibc(monkeypatch):
    monkeypatch.delenv("MIDNITE_RETAIN_HEAP", raising=False)
    monkeypatch.setattr(_heap, "_glibc", lambda: None)
    assert not _heap.enabled()
    with _heap.retained_heap() as active:
        assert active is False
    assert _heap._depth == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")
def test_render_runs_with_the_heap_kept(monkeypatch):
    from midnite import objectives as obj
    from midnite.engine.passes import Renderer

    monkeypatch.delenv("MIDNITE_RETAIN_HEAP", raising=False)
    seen = []
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3))
    with Renderer(model, obj.channel("0", 1), device="cpu"):
        seen.append(_heap._depth)
    assert seen == [1 if _heap.enabled() else 0]
    assert _heap._depth == 0
