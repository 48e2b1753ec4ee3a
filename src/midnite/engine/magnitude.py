"""The MACO magnitude template: the Fourier magnitude of natural photographs, at any size.

``maco_magnitude`` reads the template that ships inside the package (the engine's one read of
a file, and of package data only); ``magnitude_from_images`` makes one from an image tensor
(files and folders: ``midnite.analysis.magnitude_from_images``).
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from midnite.engine.checks import check_int, check_positive_int
from midnite.engine.color import ColorDecorrelation

__all__ = ["MAGNITUDE_FILE", "maco_magnitude", "magnitude_from_images", "resize_magnitude"]


MAGNITUDE_FILE = "maco_magnitude.npy"
"""The shipped magnitude template in ``midnite/data``: (3, 256, 129) float16 (see
``maco_magnitude``)."""

# logit(photo) is taken of photos clipped to [_PHOTO_EPS, 1 - _PHOTO_EPS]: saturated pixels
# would otherwise turn into +-9 steps whose edges fill the high frequencies.
_PHOTO_EPS = 0.02
# Below this radius (in the template's frequency bins) the template is extrapolated as 1/f
# along rays rather than interpolated: there bilinear interpolation would mix in the DC term.
_LOW_BINS = 1.5


def _check_magnitude(magnitude: object) -> Tensor:
    if not isinstance(magnitude, Tensor):
        raise TypeError(
            f"magnitude must be a torch.Tensor (C, H, W // 2 + 1), got {type(magnitude).__name__}"
        )
    if magnitude.dim() != 3 or magnitude.shape[1] < 2 or magnitude.shape[2] < 2:
        raise ValueError(
            "magnitude must have shape (C, H, W // 2 + 1) with H >= 2 and W // 2 + 1 >= 2, "
            f"got {tuple(magnitude.shape)}"
        )
    if magnitude.dtype.is_complex or not magnitude.is_floating_point():
        raise TypeError(f"magnitude must be a real floating-point tensor, got {magnitude.dtype}")
    if not bool(torch.isfinite(magnitude).all()) or bool((magnitude < 0).any()):
        raise ValueError("magnitude must hold finite, non-negative values")
    return magnitude


def resize_magnitude(magnitude: Tensor, height: int, width: int) -> Tensor:
    """A magnitude template ``(C, Hs, Ws // 2 + 1)`` (rfft2 layout, ``norm="ortho"``, ``Ws``
    even) sampled at the rfft2 frequencies of an ``height`` x ``width`` image: ``(C, height,
    width // 2 + 1)``, float32, DC set to 0.

    The template is read as a function of frequency in cycles per pixel (natural images are
    close to scale invariant, and ortho-normalized magnitudes do not grow with the image), so
    any size works: bilinear interpolation on the template's grid, and below 1.5 of its
    frequency bins a 1/f extrapolation along each ray from that radius (a canvas larger than
    the template has frequencies the template never saw). It cannot know the anisotropy of
    frequencies below the template's lowest.
    """
    magnitude = _check_magnitude(magnitude).detach().to("cpu", torch.float64)
    height = check_positive_int("height", height)
    width = check_positive_int("width", width)
    _, hs, ks = magnitude.shape
    ws = 2 * (ks - 1)
    # rows in fftshift order, -hs//2 .. (hs-1)//2, plus +hs/2 (the same frequency as -hs/2)
    grid_t = torch.roll(magnitude, hs // 2, dims=1)
    if hs % 2 == 0:
        grid_t = torch.cat([grid_t, grid_t[:, :1]], dim=1)
    low, high = -(hs // 2), (hs - 1) // 2 + (hs % 2 == 0)  # row index range of grid_t
    fy = torch.fft.fftfreq(height, dtype=torch.float64)[:, None] * hs  # in template bins
    fx = torch.fft.rfftfreq(width, dtype=torch.float64)[None, :] * ws
    fy, fx = torch.broadcast_tensors(fy, fx)
    r = torch.sqrt(fy * fy + fx * fx)
    stretch = torch.where(r < _LOW_BINS, _LOW_BINS / r.clamp(min=1e-12), torch.ones_like(r))
    gy, gx = fy * stretch, fx * stretch
    # grid_sample with align_corners=True: -1 is the first row/column, +1 the last
    sample = torch.stack([gx / (ks - 1) * 2 - 1, (gy - low) / (high - low) * 2 - 1], dim=-1)
    out = F.grid_sample(
        grid_t[None], sample[None], mode="bilinear", padding_mode="border", align_corners=True
    )[0]
    out = out * torch.where(r < _LOW_BINS, stretch, torch.ones_like(r))  # 1/f below _LOW_BINS
    out[:, 0, 0] = 0.0
    return out.to(torch.float32)


def maco_magnitude(height: int, width: int | None = None, channels: int = 3) -> Tensor:
    """The shipped magnitude template resized to ``height`` x ``width``:
    ``(channels, height, width // 2 + 1)`` float32 (see ``resize_magnitude``).

    Made from public-domain and CC0 photographs (``midnite/data/README.md``) in the colour space
    ``MacoImage`` trains in: logit of the pixels, decorrelated colour. ``channels`` other than 3
    get the root mean square of the three channels in each (an approximation for grey images).
    """
    width = height if width is None else width
    channels = check_positive_int("channels", channels)
    with resources.as_file(resources.files("midnite") / "data" / MAGNITUDE_FILE) as path:
        if not path.is_file():
            raise FileNotFoundError(
                f"the MACO magnitude template {path} is missing: reinstall midnite, or make it "
                "with scripts/make_magnitude.py"
            )
        data = np.load(path, allow_pickle=False)
    template = torch.from_numpy(data.astype(np.float32))
    if channels != template.shape[0]:
        template = template.square().mean(0, keepdim=True).sqrt().expand(channels, -1, -1)
    return resize_magnitude(template, height, width)


def _tensor_batch(images: object, size: int) -> Tensor:
    """A float image tensor as (N, 3, size, size) in [0, 1]: centre square, resized."""
    if not isinstance(images, Tensor):
        raise TypeError(
            "images must be a float tensor (N, C, H, W) or (C, H, W) (files and folders: "
            f"midnite.analysis.magnitude_from_images), got {type(images).__name__}"
        )
    x = images if images.dim() == 4 else images[None] if images.dim() == 3 else None
    if x is None or x.shape[1] not in (1, 3) or not x.is_floating_point():
        raise ValueError(
            "images must be a float tensor (N, C, H, W) or (C, H, W) with C 1 or 3, values "
            f"in [0, 1], got {images.dtype} {tuple(images.shape)}"
        )
    if x.shape[0] == 0 or min(x.shape[-2:]) < 2:
        raise ValueError(f"images must hold at least one image, got {tuple(x.shape)}")
    x = x.detach().to("cpu", torch.float32).expand(-1, 3, -1, -1)
    h, w = x.shape[-2:]
    s = min(h, w)
    x = x[..., (h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    if s != size:
        x = F.interpolate(x, size=(size, size), mode="bicubic", antialias=s > size)
    return x.clamp(0, 1)


def magnitude_from_images(images: object, size: int = 256) -> Tensor:
    """A MACO magnitude template from natural photographs: ``(3, size, size // 2 + 1)``.

    ``images``: a float tensor (N, C, H, W) / (C, H, W) in [0, 1] with 1 or 3 channels (grey
    images are repeated to RGB); files and folders are read by the tooling's
    ``midnite.analysis.magnitude_from_images``, which calls this function. Each image's
    centre square is resized to ``size`` (an even int >= 8), taken to the space ``MacoImage``
    trains in (logit of the pixels clipped to [0.02, 0.98], decorrelated colour), and the
    magnitude of its ``rfft2(norm="ortho")`` under a Hann window (of unit mean square, so that
    the border jump adds no cross to the spectrum) is averaged over the images; the DC term
    (the mean colour) is set to 0: MACO images are centred on grey. A few photos give a noisy
    template: the shipped one averages crops and mirror images of several
    (``scripts/make_magnitude.py``).
    """
    size = check_int("size", size, 8)
    if size % 2:
        raise ValueError(f"size must be an even int >= 8, got {size}")
    x = _tensor_batch(images, size)
    decorrelation = ColorDecorrelation(3)
    raw = decorrelation.inverse(torch.logit(x.clamp(_PHOTO_EPS, 1.0 - _PHOTO_EPS)))
    # a Hann window (unit mean square) hides the jump between opposite borders, which would
    # otherwise add a cross of energy on the frequency axes (a grid texture in the images)
    raw = raw.double() - raw.double().mean((-2, -1), keepdim=True)
    hann = torch.hann_window(size, periodic=False, dtype=torch.float64)
    window = hann[:, None] * hann[None, :]
    window = window / window.square().mean().sqrt()
    magnitude = torch.fft.rfft2(raw * window, norm="ortho").abs().mean(0)
    magnitude[:, 0, 0] = 0.0
    return magnitude.to(torch.float32)
