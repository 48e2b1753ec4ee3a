"""Encoding images: a [0, 1] tensor as uint8 pixels and as PNG bytes (the one PNG encoder).

Images are tensors ``(C, H, W)`` (or ``(1, C, H, W)``, or ``(H, W)``) with values in [0, 1];
a uint8 image (0..255) is scaled to [0, 1]. Empty images and NaN or infinite values are errors.
The same tensor always gives the same bytes (Pillow's PNG writer at its defaults).
"""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image
from torch import Tensor

__all__ = ["alpha_png", "as_float_image", "png_bytes", "to_hwc", "to_uint8"]


def as_float_image(img: object) -> Tensor:
    """``img`` as a finite, non-empty float tensor on the CPU; uint8 0..255 scaled to [0, 1]."""
    if not isinstance(img, Tensor):
        raise TypeError(f"expected an image tensor (C, H, W), got {type(img).__name__}")
    if img.numel() == 0:
        raise ValueError(f"expected an image with pixels, got an empty tensor {tuple(img.shape)}")
    if img.dtype == torch.uint8:
        return img.detach().cpu().float() / 255.0
    if not img.is_floating_point():
        raise TypeError(
            f"expected a floating-point image in [0, 1] or a uint8 image in 0..255, got dtype "
            f"{img.dtype}"
        )
    img = img.detach().float().cpu()
    bad = int((~torch.isfinite(img)).sum())
    if bad:
        raise ValueError(
            f"the image holds {bad} NaN or infinite values of {img.numel()}; nothing to show "
            "(did the render diverge? see RenderResult.final)"
        )
    return img


def to_hwc(img: Tensor) -> np.ndarray:
    """A ``(C, H, W)`` tensor as an ``(H, W, C)`` (or ``(H, W)``) float numpy array."""
    img = as_float_image(img)
    if img.dim() == 4 and img.shape[0] == 1:
        img = img[0]
    if img.dim() == 2:
        return img.numpy()
    if img.dim() != 3 or img.shape[0] not in (1, 3, 4):
        raise ValueError(f"expected an image (C, H, W) with C in 1, 3, 4, got {tuple(img.shape)}")
    arr = img.permute(1, 2, 0).numpy()
    return arr[..., 0] if arr.shape[-1] == 1 else arr


def to_uint8(img: Tensor) -> np.ndarray:
    """``(H, W, C)`` uint8 array of a [0, 1] image (values clipped, rounded)."""
    return (np.clip(to_hwc(img), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def png_bytes(image: Tensor) -> bytes:
    """The PNG file of a [0, 1] image (grey for one channel, RGB or RGBA), as bytes."""
    buf = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buf, format="PNG")
    return buf.getvalue()


def alpha_png(image: Tensor, alpha: Tensor) -> tuple[bytes, float] | None:
    """An RGBA PNG of ``image`` with its alpha map as the alpha channel, and the map's maximum.

    The alpha channel is the map divided by its maximum (0 where the loss never read a pixel);
    ``A / 255 * maximum`` gives the map back to 1/255 of its maximum. None for images that are
    neither grey nor RGB.
    """
    if image.dim() != 3 or image.shape[0] not in (1, 3):
        return None
    rgb = to_uint8(image)
    if rgb.ndim == 2:
        rgb = rgb[..., None]
    if rgb.shape[2] == 1:
        rgb = np.repeat(rgb, 3, axis=2)
    scale = float(alpha.max())
    a = alpha.double() / scale if scale > 0 else alpha.double() * 0
    channel = (a.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()
    buf = io.BytesIO()
    Image.fromarray(np.dstack([rgb, channel]), mode="RGBA").save(buf, format="PNG")
    return buf.getvalue(), scale
