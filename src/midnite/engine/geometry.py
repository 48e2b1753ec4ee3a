"""Image geometry as plain functions: affine resampling, random crops, resize, and the random
draws they share (every number from a ``generator``; None: torch's default for the device).

``midnite.engine.transforms`` wraps them as per-step ``Transform`` modules and re-exports them.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from midnite.engine.checks import (
    check_choice,
    check_generator,
    check_image,
    check_int,
    check_real,
    check_size,
)

__all__ = ["MAX_SIDE", "affine", "random_affine", "random_crops", "resize"]


_SAMPLE_PADDING_MODES = ("reflection", "border", "zeros")


def _scale_range(scales: object) -> tuple[float, float]:
    """``scales`` as a pair ``(low, high)`` of positive floats with ``low <= high``."""
    if not isinstance(scales, (tuple, list)) or len(scales) != 2:
        raise TypeError(f"scales must be a pair (low, high), got {scales!r}")
    low = check_real("scales[0]", scales[0], gt=0.0)
    high = check_real("scales[1]", scales[1], gt=0.0)
    if low > high:
        raise ValueError(f"scales must satisfy low <= high, got {scales!r}")
    return low, high


def _uniform(
    shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device
) -> Tensor:
    """U[0, 1) float32 numbers on the generator's device (``device`` when it is None)."""
    generator = check_generator(generator)
    where = device if generator is None else generator.device
    return torch.rand(shape, generator=generator, device=where)


def _randint(
    high: int, shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device
) -> Tensor:
    """Integers in [0, high), drawn on the generator's device (``device`` when it is None),
    returned on ``device``."""
    generator = check_generator(generator)
    where = device if generator is None else generator.device
    drawn = torch.randint(0, high, shape, generator=generator, device=where)
    return drawn.to(device, non_blocking=True)


def _border_mode(pad: int, h: int, w: int) -> str:
    """'reflect' where torch allows it (pad < size), else 'replicate' (tiny images)."""
    return "reflect" if pad < h and pad < w else "replicate"


def affine(
    x: Tensor,
    angle_deg: Tensor,
    scale: Tensor,
    shift: Tensor,
    padding_mode: str = "reflection",
    pad: int = 0,
) -> Tensor:
    """Rotate, scale and translate each image about its centre in ONE bilinear resampling.

    ``angle_deg`` (B,): counter-clockwise as displayed (y axis down); ``scale`` (B,): > 1 zooms
    in; ``shift`` (B, 2): (dx, dy) in pixels, content moves right/down. The output is the
    input's size grown by ``pad`` pixels on every side (the image stays centred); samples
    falling outside come from ``padding_mode`` ("reflection": mirrored about the border, so no
    black frame; "border"; "zeros"). Differentiable in ``x``. On the CPU a batch smaller than
    the thread count comes back in the channels-last memory layout (``reshape`` it, not ``view``).

    Shape: (B, C, H, W) -> (B, C, H + 2 pad, W + 2 pad).
    """
    check_image("image", x)
    check_choice("padding_mode", padding_mode, _SAMPLE_PADDING_MODES)
    pad = check_int("pad", pad, 0)
    b, _, h, w = x.shape
    ho, wo = h + 2 * pad, w + 2 * pad
    # theta is built where the parameters live (the generator's device for the random
    # transforms) and moved to x's device once: no kernel launches for a CPU generator.
    pdev = next((p.device for p in (angle_deg, scale, shift) if isinstance(p, Tensor)), None)
    wdt = torch.float64 if x.dtype == torch.float64 else torch.float32
    try:
        angle = torch.as_tensor(angle_deg, device=pdev, dtype=wdt).expand(b)
        scale = torch.as_tensor(scale, device=pdev, dtype=wdt).expand(b)
        shift = torch.as_tensor(shift, device=pdev, dtype=wdt).expand(b, 2)
    except RuntimeError as err:
        raise ValueError(
            f"angle_deg and scale must be scalars or shaped ({b},), shift (2,) or ({b}, 2) for a "
            f"batch of {b}; got shapes {tuple(torch.as_tensor(angle_deg).shape)}, "
            f"{tuple(torch.as_tensor(scale).shape)}, {tuple(torch.as_tensor(shift).shape)}"
        ) from err
    sizes = (h, w, ho, wo)
    if angle.device.type in _HOST_DEVICES:
        # a handful of numbers per image: Python floats cost less than ~25 tiny tensor ops
        rows = [
            _theta_row(math.cos(math.radians(a)) / s, math.sin(math.radians(a)) / s, tx, ty, *sizes)
            for a, s, (tx, ty) in zip(angle.tolist(), scale.tolist(), shift.tolist(), strict=True)
        ]
        theta = torch.tensor(rows, dtype=wdt).view(b, 2, 3)
    else:  # where the draws live (a GPU): no host round trip
        cos, sin = torch.cos(torch.deg2rad(angle)) / scale, torch.sin(torch.deg2rad(angle)) / scale
        tx, ty = shift.unbind(1)
        entries = _theta_row(cos, sin, tx, ty, h, w, ho, wo)
        theta = torch.stack(entries, dim=1).view(b, 2, 3)
    theta = theta.to(device=x.device, dtype=x.dtype, non_blocking=True)
    return _grid_sample(x, _affine_grid(theta, ho, wo), padding_mode)


def _theta_row(cos, sin, tx, ty, h: int, w: int, ho: int, wo: int) -> list:
    """affine_grid's theta (6 entries, row-major) for floats or (B,) tensors alike.

    Output pixel p (centred, px) samples input A (p - t), A = R(angle) / scale (``cos`` and
    ``sin`` come divided by the scale). affine_grid measures p in units of (wo / 2, ho / 2) px
    and grid_sample reads the input in (w / 2, h / 2) px, hence the size ratios.
    """
    return [
        cos * (wo / w),
        -sin * (ho / w),
        -(cos * tx - sin * ty) * (2.0 / w),
        sin * (wo / h),
        cos * (ho / h),
        -(sin * tx + cos * ty) * (2.0 / h),
    ]


_HOST_DEVICES = ("cpu",)  # where affine() builds theta from Python floats (tests clear it)


@functools.lru_cache(maxsize=64)
def _pixel_centres(n: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """Centres of ``n`` pixels in grid_sample's normalized units (align_corners=False)."""
    with torch.inference_mode(False), torch.no_grad():
        return ((torch.arange(n, dtype=torch.float64) * 2.0 + 1.0) / n - 1.0).to(device, dtype)


def _affine_grid(theta: Tensor, ho: int, wo: int) -> Tensor:
    """``F.affine_grid(theta, (B, 1, ho, wo), align_corners=False)`` as two broadcast sums.

    affine_grid builds a homogeneous base grid and multiplies it with a K=3 ``bmm``; two
    broadcast sums over the row and column coordinates do the same work with less memory traffic.
    """
    b = theta.shape[0]
    xs = _pixel_centres(wo, theta.device, theta.dtype)
    ys = _pixel_centres(ho, theta.device, theta.dtype)[:, None]
    grid = torch.empty(b, ho, wo, 2, device=theta.device, dtype=theta.dtype)
    for k in range(2):
        along_x = theta[:, k, 0, None, None] * xs  # (B, 1, wo)
        along_y = torch.addcmul(theta[:, k, 2, None, None], theta[:, k, 1, None, None], ys)
        torch.add(along_x, along_y, out=grid[..., k])
    return grid


def _grid_sample(x: Tensor, grid: Tensor, padding_mode: str) -> Tensor:
    """Bilinear ``grid_sample``; on the CPU a batch smaller than the thread count is cut into
    bands of output rows, one per thread.

    PyTorch's CPU kernel parallelizes over the batch only, so a single image runs on one core;
    its backward (a scatter) is the costliest step of the per-step transforms, so the idle
    cores are put to work on bands of the one image. Each band reads all of ``x`` (an expanded
    view, no copy at batch 1); the gradients of the bands are summed.
    """
    b, c, h, w = x.shape
    ho, wo = grid.shape[1:3]
    bands = 1
    if x.device.type == "cpu" and b < torch.get_num_threads():
        bands = min(-(-torch.get_num_threads() // b), ho)
    if bands == 1:
        return F.grid_sample(
            x, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False
        )
    rows = -(-ho // bands)
    if rows * bands != ho:  # repeat the last row to fill the last band; cut off below
        grid = torch.cat([grid, grid[:, -1:].expand(b, rows * bands - ho, wo, 2)], dim=1)
    xs = x.expand(bands, c, h, w) if b == 1 else x.repeat_interleave(bands, dim=0)
    y = F.grid_sample(
        xs,
        grid.reshape(b * bands, rows, wo, 2),
        mode="bilinear",
        padding_mode=padding_mode,
        align_corners=False,
    )
    # (B, bands, C, rows, W) -> channels-last (B, C, H, W): the copy that joins the bands
    # also gives the layout the engine feeds to the model on the CPU
    y = y.view(b, bands, c, rows, wo).permute(0, 1, 3, 4, 2).reshape(b, bands * rows, wo, c)
    return y[:, :ho].permute(0, 3, 1, 2)


def random_affine(
    x: Tensor,
    *,
    max_shift: float = 0.0,
    degrees: float = 0.0,
    scales: tuple[float, float] = (1.0, 1.0),
    padding_mode: str = "reflection",
    generator: torch.Generator | None = None,
    pad: int = 0,
) -> Tensor:
    """:func:`affine` with per-image parameters drawn uniformly from ``generator``.

    Shift in [-max_shift, max_shift] px per axis (continuous), angle in [-degrees, degrees],
    scale in ``scales = (low, high)``; the same names as :class:`RandomAffine`. Four numbers are
    drawn per image, in that order.

    Shape: (B, C, H, W) -> (B, C, H + 2 pad, W + 2 pad).
    """
    check_image("image", x)
    max_shift = check_real("max_shift", max_shift, ge=0.0)
    degrees = check_real("degrees", degrees, ge=0.0)
    low, high = _scale_range(scales)
    u = _uniform((x.shape[0], 4), generator, x.device)
    if x.dtype == torch.float64:
        u = u.double()
    shift = (2.0 * u[:, :2] - 1.0) * max_shift
    angle = (2.0 * u[:, 2] - 1.0) * degrees
    scale = low + u[:, 3] * (high - low)
    return affine(x, angle, scale, shift, padding_mode, pad)


def random_crops(
    x: Tensor,
    size: tuple[int, int],
    *,
    crops: int = 1,
    scales: tuple[float, float] = (1.0, 1.0),
    noise: float = 0.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``crops`` random boxes of each image, each resized to ``size``, plus Gaussian noise.

    A box covers a fraction uniform in ``scales`` (within (0, 1]) of each side of the image (so
    it has the image's aspect ratio), placed uniformly where it fits; one bilinear resampling
    per box (no antialiasing: a box much larger than ``size`` aliases). Then N(0, ``noise``)
    is added to every pixel. Draws per box: scale, x, y; then the noise. The output is box-major:
    rows ``k * B .. k * B + B - 1`` are box ``k`` of images 0..B-1 (MACO's crops, with boxes
    that stay inside the image).

    Shape: (B, C, H, W) -> (crops * B, C, size[0], size[1]).
    """
    check_image("image", x)
    ho, wo = check_size("size", size)
    n = check_int("crops", crops, 1)
    low, high = _scale_range(scales)
    if high > 1.0:
        raise ValueError(f"scales must lie in (0, 1] (fractions of the image), got {scales!r}")
    noise = check_real("noise", noise, ge=0.0)
    b = x.shape[0]
    u = _uniform((n * b, 3), generator, x.device)
    wdt = torch.float64 if x.dtype == torch.float64 else torch.float32
    u = u.to(device=x.device, dtype=wdt, non_blocking=True)
    s = low + u[:, 0] * (high - low)
    cx = (2.0 * u[:, 1] - 1.0) * (1.0 - s)
    cy = (2.0 * u[:, 2] - 1.0) * (1.0 - s)
    zero = torch.zeros_like(s)
    theta = torch.stack([s, zero, cx, zero, s, cy], dim=1).view(n * b, 2, 3).to(x.dtype)
    xs = x if n == 1 else x.repeat(n, 1, 1, 1)
    y = _grid_sample(xs, _affine_grid(theta, ho, wo), "reflection")
    if noise > 0:
        generator = check_generator(generator)
        where = x.device if generator is None else generator.device
        eps = torch.randn(y.shape, generator=generator, device=where)
        y = y + noise * eps.to(device=x.device, dtype=y.dtype, non_blocking=True)
    return y


MAX_SIDE = 32768  # the largest image side resize makes


def resize(x: Tensor, factor: float) -> Tensor:
    """Bilinear resize to (max(1, round(H f)), max(1, round(W f))), Python's ``round``.

    Antialiased when a side shrinks. A side over ``MAX_SIDE`` pixels is refused: such a factor
    is a mistake, and torch would fail inside its allocator.

    Shape: (B, C, H, W) -> (B, C, H', W').
    """
    check_image("image", x)
    factor = check_real("factor", factor, gt=0.0)
    _, _, h, w = x.shape
    nh, nw = max(1, round(h * factor)), max(1, round(w * factor))
    if max(nh, nw) > MAX_SIDE:
        raise ValueError(
            f"resizing a {h}x{w} image by {factor:g} would make it {nh}x{nw}; sides up to "
            f"{MAX_SIDE} px are accepted"
        )
    return F.interpolate(
        x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=nh < h or nw < w
    )
