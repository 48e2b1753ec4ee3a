"""Keep freed memory in the process heap while rendering (Linux glibc only; elsewhere a no-op).

glibc hands every block above its mmap threshold (128 KiB to 32 MiB) back to the kernel when it
is freed, so each optimizer step faults in its activation tensors page by page again, thousands
of page faults per image and step (``benchmarks/speed.py`` measures the cost). Inside
:func:`retained_heap` large blocks come from the heap and freed memory stays there for the next
step; on exit the usual limits are set again and the heap is trimmed, so the memory goes back
to the system. The cost is a somewhat higher peak of resident memory.

glibc stops adapting its mmap threshold once these limits have been set (its documented
behaviour for ``mallopt``). Set ``MIDNITE_RETAIN_HEAP=0``, or any of glibc's own malloc
tunables, to keep midnite's hands off the allocator.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import platform
import sys
import threading
from collections.abc import Iterator

__all__ = ["enabled", "retained_heap"]

# mallopt parameters and glibc's defaults for them (malloc/malloc.c)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_DEFAULT_TRIM_THRESHOLD, _DEFAULT_MMAP_MAX = 128 * 1024, 65536
_NEVER_TRIM = 2**31 - 1  # an int: mallopt takes a C int

_lock = threading.Lock()
_depth = 0
_libc: ctypes.CDLL | None = None
_looked_up = False


def _glibc() -> ctypes.CDLL | None:
    """glibc, or None where the C library is another (looked up once)."""
    global _libc, _looked_up
    if not _looked_up:
        _looked_up = True
        if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
                libc.malloc_trim.argtypes = [ctypes.c_size_t]
                _libc = libc
            except (OSError, AttributeError, ValueError):
                _libc = None
    return _libc


def _user_tuned() -> bool:
    """True when the user set glibc's malloc tunables (their choice wins) or opted out."""
    if os.environ.get("MIDNITE_RETAIN_HEAP", "1").strip().lower() in ("0", "false", "no", "off"):
        return True
    if "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        return True
    return any(k.startswith("MALLOC_") and k.endswith("_") for k in os.environ)


def enabled() -> bool:
    """Whether :func:`retained_heap` changes anything in this process."""
    return not _user_tuned() and _glibc() is not None


@contextlib.contextmanager
def retained_heap() -> Iterator[bool]:
    """For the block, freed memory stays in the heap; yields whether that is in effect.

    Nests and may be entered from several threads; the outermost exit restores glibc's
    defaults and trims the heap.
    """
    global _depth
    libc = _glibc() if not _user_tuned() else None
    if libc is None:
        yield False
        return
    with _lock:
        if _depth == 0:
            libc.mallopt(_M_MMAP_MAX, 0)
            libc.mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM)
        _depth += 1
    try:
        yield True
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                libc.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
                libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)
                libc.malloc_trim(0)
