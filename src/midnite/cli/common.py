"""What the ``midnite`` commands share beyond parsing: the device, the model, the output
folder and the layer table, each checked with a one-line ``UsageError``."""

from __future__ import annotations

import importlib.metadata
import sys
import tempfile
from pathlib import Path

import torch

from midnite import models
from midnite.engine import input_channels, layers, resolve_device
from midnite.errors import UsageError
from midnite.store.paths import MAX_NAME_BYTES

__all__ = [
    "default_size",
    "device",
    "float32",
    "layer_table",
    "load",
    "own_version",
    "prepare_out",
]


def own_version() -> str:
    try:
        return importlib.metadata.version("midnite")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def device(spec: str | None) -> torch.device:
    """The device ``spec`` names, or the engine's one-line reason why not (meta, no CUDA)."""
    try:
        return resolve_device(spec)
    except (TypeError, ValueError) as err:
        raise UsageError(f"--device: {err}") from None


def load(name: str) -> torch.nn.Module:
    """The model ``name`` (``models.load``); whatever loading raises, even ``SystemExit`` from a
    user's model file, is one ``UsageError`` line."""
    try:
        model = models.load(name)
    except SystemExit as err:  # a model file calling sys.exit() on import
        raise UsageError(
            f"could not load model {name!r}: it called sys.exit({err.code!r}) while loading"
        ) from None
    except Exception as err:  # one line for people, whatever the loader raised
        msg = str(err) or type(err).__name__
        if not isinstance(err, (ValueError, ImportError)):
            msg = f"could not load model {name!r}: {type(err).__name__}: {msg}"
        raise UsageError(msg) from None
    return float32(model)


def float32(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with float32 weights: the command loaded it, so a half-precision model is
    converted in place (one note on stderr) rather than failing at its first forward pass."""
    kinds = {t.dtype for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()}
    if kinds - {torch.float32}:
        shown = ", ".join(sorted(str(k).removeprefix("torch.") for k in kinds))
        print(f"midnite: the model's {shown} weights are used as float32", file=sys.stderr)
        model.float()
    return model


def default_size(name: str) -> tuple[int, int]:
    side = models.input_size(name)
    return side, side


def prepare_out(folder: str) -> Path:
    """``--out``: made if missing and checked writable; each name in the path must be at most
    255 bytes, NUL is refused (one ``UsageError`` line each)."""
    if not folder.strip():
        raise UsageError(f"--out must name a folder, got {folder!r}")
    if "\0" in folder:
        raise UsageError(f"--out must be a path without NUL characters, got {folder!r}")
    for part in Path(folder).parts:
        size = len(part.encode("utf-8", "surrogateescape"))
        if size > MAX_NAME_BYTES:
            raise UsageError(
                f"--out: each folder name must be at most {MAX_NAME_BYTES} bytes, got one of "
                f"{size} bytes ({part[:20]!r}...)"
            )
    out = Path(folder)
    if out.exists() and not out.is_dir():
        raise UsageError(f"output folder {folder!r} exists and is not a folder; give a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out) as fh:
            fh.write(b"midnite")
    except OSError as err:
        reason = err.strerror or str(err)
        raise UsageError(
            f"cannot write to output folder {folder!r} ({reason}); give a writable folder"
        ) from None
    return out


PNG_CHANNELS = (1, 3, 4)  # grey, RGB, RGBA: what the files the commands write can hold


def layer_table(model, name: str, size: tuple[int, int], dev):
    """The model's layers on ``size`` images (``engine.layers``); one ``UsageError`` line if it
    does not run, or takes a channel count no PNG of the commands can hold."""
    channels = input_channels(model)
    if channels not in PNG_CHANNELS:
        raise UsageError(
            f"{name} takes {channels} input channels; the commands save PNG images of 1, 3 or 4 "
            "channels (midnite.render in Python renders any channel count)"
        )
    try:
        return layers(model, size, device=dev)
    except Exception as err:
        raise UsageError(
            f"{name} does not run on {size[0]}x{size[1]} images ({type(err).__name__}: "
            f"{err}); try another --size"
        ) from None
