"""Showing and saving images: ``show``/``show_normalized`` (matplotlib, lazy) and ``save_png``.

Images are tensors ``(C, H, W)`` (or ``(1, C, H, W)``, or ``(H, W)``) with values in [0, 1];
a uint8 image (0..255) is scaled to [0, 1]. Empty images and NaN or infinite values are errors.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from midnite.engine.checks import check_int, check_positive_int
from midnite.errors import UsageError
from midnite.images import as_float_image, png_bytes, to_hwc, to_uint8

__all__ = [
    "as_float_image",
    "contact_sheet",
    "normalized",
    "save_png",
    "show",
    "show_normalized",
    "to_hwc",
    "to_uint8",
]


def normalized(img: Tensor) -> Tensor:
    """Min-max normalize to [0, 1] (a constant image becomes 0.5 gray)."""
    img = as_float_image(img)
    lo, hi = img.min(), img.max()
    if hi - lo < 1e-12:
        return torch.full_like(img, 0.5)
    return (img - lo) / (hi - lo)


def show(img: Tensor, scale: float = 1.0):
    """Plot an image with matplotlib; ``scale`` enlarges the figure. Returns the figure."""
    if not (isinstance(scale, (int, float)) and scale > 0):
        raise ValueError(f"scale must be a number > 0, got {scale!r}")
    try:
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError("show() needs matplotlib: pip install 'midnite[plot]'") from err
    arr = np.clip(to_hwc(img), 0.0, 1.0)
    fig = plt.figure(figsize=(4 * scale, 4 * scale))
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None, vmin=0.0, vmax=1.0)
    ax.axis("off")
    fig.tight_layout()
    if plt.get_backend().lower() not in ("agg", "pdf", "svg", "ps", "cairo", "template"):
        plt.show()
    return fig


def show_normalized(img: Tensor, scale: float = 1.0):
    """``show`` after min-max normalization, so faint results become visible."""
    return show(normalized(img), scale)


def save_png(img: Tensor, path: str | os.PathLike) -> Path:
    """Save a [0, 1] image as PNG atomically (temporary file, then rename). Returns the path."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"save_png writes .png files, got {str(path)!r}")
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f"cannot save {str(path)!r}: its folder {str(path.parent)!r} does not exist"
        )
    data = png_bytes(img)
    # not tempfile.mkstemp: its files are mode 0600, and the rename would keep that mode
    tmp = path.parent / f".{path.stem}.{uuid.uuid4().hex[:12]}.png.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def contact_sheet(images: Tensor | Sequence[Tensor], columns: int = 4, pad: int = 4) -> Tensor:
    """Tile images (each ``(C, H, W)``, resized to the largest) into one ``(C, H, W)`` image.

    ``images``: a list of ``(C, H, W)`` tensors or one batch tensor ``(B, C, H, W)``.
    """
    if isinstance(images, Tensor):
        if images.dim() != 4:
            raise UsageError(
                "contact_sheet takes a list of (C, H, W) images or a batch (B, C, H, W), got a "
                f"tensor of shape {tuple(images.shape)}"
            )
        images = list(images)
    elif not isinstance(images, Sequence):
        raise TypeError(
            "contact_sheet takes a list of (C, H, W) images or a batch (B, C, H, W), got "
            f"{type(images).__name__}"
        )
    if len(images) == 0:
        raise UsageError("contact_sheet needs at least one image, got none")
    columns, pad = check_positive_int("columns", columns), check_int("pad", pad, 0)
    imgs = [as_float_image(i) for i in images]
    c = max(i.shape[0] for i in imgs)
    h = max(i.shape[1] for i in imgs)
    w = max(i.shape[2] for i in imgs)
    rows = (len(imgs) + columns - 1) // columns
    sheet = torch.ones(c, rows * (h + pad) + pad, columns * (w + pad) + pad)
    for k, img in enumerate(imgs):
        img = img.expand(c, -1, -1) if img.shape[0] == 1 else img
        img = torch.nn.functional.interpolate(img[None], size=(h, w), mode="bilinear")[0]
        r, col = divmod(k, columns)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        sheet[:, y : y + h, x : x + w] = img.clamp(0, 1)
    return sheet
