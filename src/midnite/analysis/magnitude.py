"""The MACO magnitude of photographs given as files: read through ``midnite.images``, averaged
by the engine's ``midnite.engine.param.magnitude_from_images`` (which takes tensors only)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from midnite.engine import param
from midnite.engine.checks import check_int
from midnite.errors import UsageError
from midnite.images import (
    UnreadableImageError,
    UnreadableImageWarning,
    describe_skipped,
    load,
    scan_folder,
    shown,
)

__all__ = ["magnitude_from_images"]


def _files(images: object) -> tuple[list[tuple[str, Path]], list[tuple[str, str]], str]:
    """The files named by a folder (walked) or a list, the entries skipped, and where."""
    if isinstance(images, (str, os.PathLike)):
        if os.fspath(images) in ("", b"") or not Path(images).is_dir():
            raise UsageError(f"images must be a folder of image files, got {shown(str(images))}")
        listing = scan_folder(images)
        if not listing.files and not listing.skipped:
            raise UsageError(f"the folder {shown(str(images))} holds no files")
        named = [(name, Path(images) / name) for name in listing.files]
        return named, list(listing.skipped), f"in {shown(str(images))}"
    if isinstance(images, Sequence) and not isinstance(images, (str, bytes)):
        if not all(isinstance(p, (str, os.PathLike)) for p in images):
            raise TypeError("images must be a folder, a list of image files or a tensor")
        if not images:
            raise UsageError("images must name at least one file, got an empty list")
        return [(str(p), Path(p)) for p in images], [], "given"
    raise TypeError(
        "images must be a folder, a list of image files or a tensor (N, C, H, W), "
        f"got {type(images).__name__}"
    )


def magnitude_from_images(images: object, size: int = 256) -> Tensor:
    """A MACO magnitude template ``(3, size, size // 2 + 1)`` from natural photographs.

    ``images``: a folder (walked by ``midnite.images.scan_folder``: every regular file under
    it), a list of image files, or a float tensor (N, C, H, W) / (C, H, W) in [0, 1]. Files are
    read by ``midnite.images.load`` (centre square, antialiased bicubic to ``size``); those that
    are not readable images are skipped, named one per line in one ``UnreadableImageWarning``.
    The template itself is ``midnite.engine.param.magnitude_from_images`` of the batch.
    """
    size = check_int("size", size, 8)
    if size % 2:
        raise UsageError(f"size must be an even int >= 8, got {size}")
    if isinstance(images, Tensor):
        return param.magnitude_from_images(images, size)
    named, skipped, where = _files(images)
    total = len(named) + len(skipped)
    loaded = []
    for name, path in named:
        try:
            loaded.append(load(path, size=size, channels=3, resample="bicubic"))
        except UnreadableImageError as err:
            skipped.append((name, err.reason))
    if skipped:
        warnings.warn(
            f"magnitude_from_images: skipped {len(skipped)} of {total} files {where} that are "
            f"not readable images:\n{describe_skipped(sorted(skipped))}",
            UnreadableImageWarning,
            stacklevel=2,
        )
    if not loaded:
        raise UsageError(f"none of the {total} files {where} is a readable image")
    return param.magnitude_from_images(torch.stack(loaded), size)
