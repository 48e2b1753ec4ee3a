"""The device that midnite runs on: a context variable, so it nests and is private to each thread.

``with midnite.device("cuda:0"): ...`` sets it for the block; ``get_device()`` reads it
(``cpu`` by default). A new thread starts at the default, and an exception leaves it restored.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import torch

_DEVICE: contextvars.ContextVar[torch.device | None] = contextvars.ContextVar(
    "midnite_device", default=None
)


def _as_device(spec: str | torch.device) -> torch.device:
    if isinstance(spec, torch.device):
        return spec
    if not isinstance(spec, str):
        raise TypeError(
            f"device must be a str or torch.device, got {type(spec).__name__}: {spec!r}"
        )
    try:
        return torch.device(spec)
    except RuntimeError as err:
        raise ValueError(
            f"device must name a torch device such as 'cpu' or 'cuda:0', got {spec!r}"
        ) from err


@contextlib.contextmanager
def device(spec: str | torch.device) -> Iterator[torch.device]:
    """Run the block on ``spec`` (e.g. ``"cuda:0"``); nests, thread-local, exception-safe."""
    dev = _as_device(spec)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {spec!r} was asked for, but CUDA is not available here; use 'cpu'"
        )
    token = _DEVICE.set(dev)
    try:
        yield dev
    finally:
        _DEVICE.reset(token)


def get_device() -> torch.device:
    """The device chosen by the innermost enclosing ``midnite.device(...)`` block, else ``cpu``."""
    return _DEVICE.get() or torch.device("cpu")


def resolve_device(spec: str | torch.device | None) -> torch.device:
    """``spec`` as a device, or the context's device when ``spec`` is None."""
    return get_device() if spec is None else _as_device(spec)
