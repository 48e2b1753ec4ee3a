"""Tests for midnite._heap: freed memory stays in the heap inside the block, and only there."""

from __future__ import annotations

import resource
import statistics
import sys

import pytest
import torch

from midnite import _heap

glibc = pytest.mark.skipif(_heap._glibc() is None, reason="needs Linux with glibc")


def faults_per_round(rounds: int = 5, mib: int = 48) -> float:
    """Median minor page faults of allocating a ``mib`` MiB tensor that is filled and freed."""
    for _ in range(2):  # settle: the heap may need two blocks before one is free for reuse
        torch.ones(mib * 2**18)
    counts = []
    for _ in range(rounds):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        torch.ones(mib * 2**18)
        counts.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return statistics.median(counts)


@glibc
def test_memory_is_kept_inside_and_given_back_after(monkeypatch):
    monkeypatch.delenv("MIDNITE_RETAIN_HEAP", raising=False)
    pages = 48 * 2**20 / resource.getpagesize()
    if not _heap.enabled():
        pytest.skip("malloc tunables set in this environment")
    outside = faults_per_round()
    with _heap.retained_heap() as active:
        assert active
        inside = faults_per_round()
    after = faults_per_round()
    # outside, every allocation is mapped afresh and faulted in page by page (fewer with
    # transparent huge pages); inside, the second and later reuse the heap
    assert outside > 0.05 * pages
    assert inside < 0.01 * pages
    assert after > 0.05 * pages
    assert _heap._depth == 0


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
    from midnite.engine import Renderer

    monkeypatch.delenv("MIDNITE_RETAIN_HEAP", raising=False)
    seen = []
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3))
    with Renderer(model, obj.channel("0", 1), device="cpu"):
        seen.append(_heap._depth)
    assert seen == [1 if _heap.enabled() else 0]
    assert _heap._depth == 0
