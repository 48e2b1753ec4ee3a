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
    """``spec`` as a torch device that exists here, else ValueError (TypeError for a non-spec)."""
    if isinstance(spec, torch.device):
        dev = spec
    elif isinstance(spec, str):
        try:
            dev = torch.device(spec)
        except RuntimeError as err:
            raise ValueError(
                f"device must name a torch device such as 'cpu' or 'cuda:0', got {spec!r}"
            ) from err
    else:
        raise TypeError(
            f"device must be a str or torch.device, got {type(spec).__name__}: {spec!r}"
        )
    _check_available(dev, spec)
    return dev


def _check_available(dev: torch.device, spec: object) -> None:
    if dev.type == "meta":
        raise ValueError(
            f"device {spec!r} holds no values, so nothing can be rendered on it; use 'cpu' or a "
            "GPU such as 'cuda:0'"
        )
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {spec!r} was asked for, but CUDA is not available here; use 'cpu'"
            )
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ValueError(
                f"device {spec!r} was asked for, but this machine has {count} CUDA device(s): "
                f"'cuda:0'..'cuda:{count - 1}'"
            )
    elif dev.type != "cpu":
        try:
            torch.empty(0, device=dev)
        except (RuntimeError, AssertionError) as err:
            raise ValueError(
                f"device {spec!r} was asked for, but torch cannot use it here ({err}); use 'cpu'"
            ) from err


@contextlib.contextmanager
def device(spec: str | torch.device) -> Iterator[torch.device]:
    """Run the block on ``spec`` (e.g. ``"cuda:0"``); nests, thread-local, exception-safe."""
    dev = _as_device(spec)
    token = _DEVICE.set(dev)
    try:
        yield dev
    finally:
        _DEVICE.reset(token)


def get_device() -> torch.device:
    """The device chosen by the innermost enclosing ``midnite.device(...)`` block, else ``cpu``."""
    return _DEVICE.get() or torch.device("cpu")


def resolve_device(spec: str | torch.device | None) -> torch.device:
    """``spec`` as a device that exists here, or the context's device when ``spec`` is None."""
    return get_device() if spec is None else _as_device(spec)
