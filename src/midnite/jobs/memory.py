"""Memory before and during a render: what is available, whether a batch fits, and the
one-line errors (``MemoryShortage`` exit 4, ``RenderError`` exit 1) a failed render becomes."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from pathlib import Path

import torch

from midnite.engine import RenderConfig
from midnite.engine.renderer import MemoryEstimate, estimate_memory
from midnite.errors import MemoryShortage, MidniteError, RenderError

__all__ = [
    "available_memory",
    "check_memory",
    "gib",
    "is_out_of_memory",
    "one_line",
    "render_failure",
]


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**28 else f"{n / 2**20:.0f} MiB"


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def available_memory(dev: torch.device) -> int | None:
    """Bytes a render can still allocate on ``dev`` (None where that is not known).

    CUDA: the device's free memory plus what torch's cache holds unused. CPU: the least of
    MemAvailable (/proc/meminfo), the cgroup's limit minus its usage, and the address-space and
    data limits (``ulimit -v``, ``-d``) minus what the process uses.
    """
    if dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        return free + torch.cuda.memory_reserved(dev) - torch.cuda.memory_allocated(dev)
    if dev.type != "cpu":
        return None
    found: list[int] = []
    status: dict[str, int] = {}
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
        for line in Path("/proc/self/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmSize", "VmData"):
                status[name] = int(value.split()[0]) * 1024
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):  # cgroup v2
                base = "/sys/fs/cgroup" + line[3:].strip()
                limit, used = _read_int(f"{base}/memory.max"), _read_int(f"{base}/memory.current")
                if limit is not None and used is not None:
                    found.append(limit - used)
    try:
        import resource
    except ImportError:  # not POSIX
        resource = None  # type: ignore[assignment]
    if resource is not None:
        for limit_name, used_name in (("RLIMIT_AS", "VmSize"), ("RLIMIT_DATA", "VmData")):
            soft, _ = resource.getrlimit(getattr(resource, limit_name))
            if soft != resource.RLIM_INFINITY and used_name in status:
                # new threads' stacks and malloc arenas count against these limits too
                found.append(soft - status[used_name] - VIRTUAL_HEADROOM)
    return max(0, min(found)) if found else None


VIRTUAL_HEADROOM = 128 * 2**20  # measured: a render's address space grows ~100 MiB beyond its data

_OOM = re.compile(r"out of memory|can't allocate memory|cannot allocate memory", re.IGNORECASE)


def is_out_of_memory(err: BaseException) -> bool:
    oom = getattr(torch, "OutOfMemoryError", ())
    return (
        isinstance(err, MemoryError)
        or (oom and isinstance(err, oom))
        or (isinstance(err, RuntimeError) and bool(_OOM.search(str(err))))
    )


def one_line(err: object) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def check_memory(model, config: RenderConfig, batch: int, dev: torch.device) -> None:
    """Refuse a render that will not fit in memory, suggesting a --batch that does."""
    available = available_memory(dev)
    if available is None:
        return
    try:
        need: MemoryEstimate = estimate_memory(model, config.replace(batch=1))
    except Exception as err:
        if is_out_of_memory(err):
            raise MemoryShortage(
                f"not enough memory on {dev} for even one {config.size[0]}x{config.size[1]} "
                f"image ({one_line(err)}); use a smaller --size"
            ) from None
        raise RenderError(
            f"the first pass failed ({type(err).__name__}: {one_line(err)})"
        ) from None
    if need.bytes(batch) <= available:
        return
    fits = need.max_batch(available)
    size = f"{config.size[0]}x{config.size[1]}"
    advice = (
        f"use --batch {fits} (or a smaller --size)"
        if fits
        else f"even --batch 1 needs {gib(need.bytes(1))}: use a smaller --size"
    )
    raise MemoryShortage(
        f"rendering {batch} {size} image(s) at once needs about {gib(need.bytes(batch))} "
        f"({gib(need.per_image)} per image) on {dev}, but {gib(available)} is available; "
        f"{advice}"
    )


def render_failure(
    err: BaseException, units: Sequence[int], config: RenderConfig, state: str
) -> MidniteError:
    """The one-line error for a render of ``units`` that raised ``err`` (``state``: what is
    written): ``MemoryShortage`` when it ran out of memory, else ``RenderError``."""
    span = f"{units[0]}-{units[-1]}" if len(units) > 1 else str(units[0])
    if is_out_of_memory(err):
        return MemoryShortage(
            f"out of memory rendering units {span} ({config.batch} image(s) of "
            f"{config.size[0]}x{config.size[1]} on {config.device}): {one_line(err)}; {state}. "
            "Use a smaller --batch or --size"
        )
    return RenderError(
        f"rendering units {span} failed ({type(err).__name__}: {one_line(err)}); {state}"
    )
