"""Showing and saving images: ``show``/``show_normalized`` (matplotlib, lazy) and ``save_png``.

Images are tensors ``(C, H, W)`` (or ``(1, C, H, W)``, or ``(H, W)``) with values in [0, 1];
a uint8 image (0..255) is scaled to [0, 1]. Empty images and NaN or infinite values are errors.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from midnite.images import as_float_image, to_hwc, to_uint8


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
    arr = to_uint8(img)
    # not tempfile.mkstemp: its files are mode 0600, and the rename would keep that mode
    tmp = path.parent / f".{path.stem}.{uuid.uuid4().hex[:12]}.png.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            Image.fromarray(arr).save(fh, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def contact_sheet(images: list[Tensor], columns: int = 4, pad: int = 4) -> Tensor:
    """Tile images (each ``(C, H, W)``, resized to the largest) into one ``(C, H, W)`` image."""
    if not images:
        raise ValueError("contact_sheet needs at least one image, got none")
    if columns < 1:
        raise ValueError(f"columns must be >= 1, got {columns}")
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
