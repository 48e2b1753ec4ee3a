"""The Ray executor's watchdog: a process of its own that SIGKILLs the processes a driver
started (a local Ray instance) when that driver dies without stopping it (Linux, ``/proc``).
"""

from __future__ import annotations

import contextlib
import inspect
import os
import subprocess
import sys

__all__ = ["descendants", "start_watchdog"]


def _stat(pid: int) -> tuple[int, str] | None:
    """``(parent pid, start time)`` of a live process from ``/proc``, ``None`` when gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[1]), fields[19]) if fields[0] not in "ZX" else None


def descendants(roots: dict[int, str]) -> dict[int, str]:
    """The processes below ``roots`` (pid: start time), with their start times."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (found := _stat(int(name))):
            children.setdefault(found[0], []).append(int(name))
    below: dict[int, str] = {}
    todo = list(roots)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in below and (found := _stat(child)):
                below[child] = found[1]
                todo.append(child)
    return below


def _watch(pids: dict[int, str]) -> None:
    """The watchdog's body, in its own process and session: when its stdin ends without
    ``stop`` the driver is gone, so ``pids`` (pid: start time) and their children are killed."""
    import os
    import signal
    import sys
    import time

    if sys.stdin.buffer.read().startswith(b"stop"):
        return
    for _ in range(5):  # again, for a child forked while the others went
        pids.update(descendants(pids))
        for pid, start in pids.items():
            found = _stat(pid)
            if found and found[1] == start:  # the same process, not a new one with its id
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)


def start_watchdog(before: set[int]) -> subprocess.Popen | None:
    """A watchdog over the processes this one started since ``before`` (Linux only)."""
    if not os.path.exists(f"/proc/{os.getpid()}/stat"):
        return None
    mine = {p: t for p, t in descendants({os.getpid(): ""}).items() if p not in before}
    parts = (_stat, descendants, _watch)
    code = "import contextlib, os\n" + "\n".join(inspect.getsource(f) for f in parts)
    return subprocess.Popen(
        [sys.executable, "-c", f"{code}\n_watch({mine!r})\n"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,  # out of reach of Ray's reaper and of Ctrl-C at the terminal
    )  # fmt: skip
