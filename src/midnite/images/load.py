"""The one image loader: a file, its bytes or an in-memory image in, a [0, 1] ``(C, H, W)`` out.

Files go through ``read.read_file`` and ``read.decode`` (JPEG or PNG by content, EXIF
orientation applied); every image is converted by ``midnite.engine.checks.as_images``.
``fit`` scales an image to cover a size and centre-crops it; ``shrink`` makes thumbnails.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from midnite.engine.checks import as_images, check_positive_int, check_size
from midnite.errors import UsageError
from midnite.images.read import UnreadableImageError, _standard_mode, decode, read_file

__all__ = ["RESAMPLING", "fit", "load", "shrink"]

RESAMPLING = ("bilinear", "bicubic")  # both antialiased when shrinking


def _in_memory(source: object, where: str) -> object:
    """``source`` checked for NaN and infinities (an image holding them is unreadable)."""
    bad = False
    if isinstance(source, Tensor) and source.is_floating_point():
        bad = not bool(torch.isfinite(source).all())
    elif isinstance(source, np.ndarray) and source.dtype.kind == "f":
        bad = not bool(np.isfinite(source).all())
    if bad:
        raise UnreadableImageError(where, "holds NaN or infinite values")
    return source


def load(
    source: object,
    *,
    size: int | tuple[int, int] | None = None,
    channels: int | None = 3,
    resample: str = "bilinear",
) -> Tensor:
    """One image as float32 ``(C, H, W)`` values in [0, 1] on the CPU.

    ``source``: a JPEG or PNG file (a path, str or PathLike; decided by content) or its bytes,
    a PIL image, or a numpy array or tensor, ``(H, W)``, ``(H, W, C)`` or ``(C, H, W)``, uint8
    (0..255) or float in [0, 1], grey, RGB or RGBA. ``channels``: 3 (grey repeated, alpha
    dropped), 1 (luminance), or None (as it is, alpha dropped). ``size``: None keeps the
    image's size; an int (square) or ``(H, W)`` scales it to just cover that size, aspect
    kept, then crops the centre (``fit``).

    Raises ``UnreadableImageError`` (a ``UsageError``) for a file that is not a readable JPEG
    or PNG, and for images holding NaN or infinities; ``UsageError`` for other bad images.

    Shape:
        output ``(channels, H, W)``.
    """
    hw = None if size is None else check_size("size", size)
    if channels is not None:
        channels = check_positive_int("channels", channels)
    if resample not in RESAMPLING:
        raise UsageError(f"resample must be one of {RESAMPLING}, got {resample!r}")
    if isinstance(source, (bytes, bytearray, memoryview)):
        where = "the given bytes"
        image: object = decode(bytes(source), where)
    elif isinstance(source, (str, os.PathLike)):
        where = str(os.fspath(source))
        image = decode(read_file(source), where)
    elif isinstance(source, (Image.Image, Tensor, np.ndarray)):
        where = f"the given {type(source).__name__}"
        image = _in_memory(source, where)
    else:
        raise TypeError(
            "an image must be a file path, bytes, a PIL image, a numpy array or a tensor, got "
            f"{type(source).__name__}"
        )
    if isinstance(image, Image.Image):  # a writable copy: torch warns about read-only arrays
        try:
            image = np.array(_standard_mode(image))
        except Exception as err:  # a lazily opened PIL image can fail to decode here
            raise UnreadableImageError(
                where, f"cannot decode: {type(err).__name__}: {err}"
            ) from None
    try:
        batch = as_images(where, image, channels=channels)
    except ValueError as err:
        raise UsageError(str(err)) from None
    if batch.shape[0] != 1:
        raise UsageError(f"{where} must be one image, got a batch of {batch.shape[0]}")
    return batch[0] if hw is None else fit(batch[0], hw, resample=resample)


def fit(image: Tensor, size: int | tuple[int, int], *, resample: str = "bilinear") -> Tensor:
    """``image`` ``(C, H, W)`` scaled to just cover ``size``, aspect kept, centre cropped.

    The centre box with the aspect ratio of ``size`` is cut first, then resized (antialiased,
    clamped to [0, 1]), so nothing is padded and the longer side loses its two ends.
    """
    hw = check_size("size", size)
    if resample not in RESAMPLING:
        raise UsageError(f"resample must be one of {RESAMPLING}, got {resample!r}")
    if not isinstance(image, Tensor) or image.dim() != 3 or not image.is_floating_point():
        got = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise UsageError(f"fit needs a float image tensor (C, H, W), got {got}")
    h, w = image.shape[1:]
    scale = max(hw[0] / h, hw[1] / w)
    ch, cw = min(h, max(1, round(hw[0] / scale))), min(w, max(1, round(hw[1] / scale)))
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = image[:, top : top + ch, left : left + cw]
    if (ch, cw) != hw:
        crop = F.interpolate(crop[None], size=hw, mode=resample, antialias=True)[0].clamp(0, 1)
    return crop.contiguous()


def shrink(image: Tensor, size: int) -> tuple[Tensor, float]:
    """``image`` ``(C, H, W)`` scaled (area average) to at most ``size`` pixels a side, and
    the scale (1.0: returned as it is; images are never enlarged)."""
    size = check_positive_int("size", size)
    if not isinstance(image, Tensor) or image.dim() != 3:
        got = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise UsageError(f"shrink needs an image tensor (C, H, W), got {got}")
    h, w = image.shape[-2:]
    scale = min(1.0, size / max(h, w))
    if scale == 1.0:
        return image, scale
    hw = (max(1, round(h * scale)), max(1, round(w * scale)))
    return F.interpolate(image[None].float(), size=hw, mode="area")[0], scale
