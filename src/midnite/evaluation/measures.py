"""Image statistics for feature visualizations: torch-native, batched, on any device and dtype.

Images are ``(B, C, H, W)`` in [0, 1] (a single ``(C, H, W)`` image is taken as ``B = 1``):
power spectrum, spectrum slope, high-frequency energy, total variation, colourfulness, the
saturated fraction, and the feature-based diversity and seed stability. No model, no files.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "colorfulness",
    "gram_diversity",
    "high_frequency_energy",
    "power_spectrum",
    "saturated_fraction",
    "seed_stability",
    "spectrum_slope",
    "total_variation",
]

# --------------------------------------------------------------------------------------------
# helpers


def _images(x: object, name: str = "images") -> Tensor:
    """``x`` as a floating (B, C, H, W) tensor; float16/bfloat16 are computed in float32."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4:
        raise ValueError(f"{name} must be (B, C, H, W) or (C, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor in [0, 1], got {x.dtype}")
    if x.shape[0] == 0 or x.numel() == 0:
        raise ValueError(f"{name} must hold at least one image, got shape {tuple(x.shape)}")
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    bad = int((~torch.isfinite(x)).sum())
    if bad:
        raise ValueError(
            f"{name} must be finite, got {bad} NaN or infinite values of {x.numel()} "
            "(a metric of such images would mean nothing)"
        )
    return x


def _features(x: object, name: str = "features", min_dim: int = 2) -> Tensor:
    """``x`` as a floating (B, ...) tensor with B >= 2, flattened to (B, -1) rows per image."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < min_dim:
        raise ValueError(
            f"{name} must have at least {min_dim} dims (B, ...), got shape {tuple(x.shape)}"
        )
    if x.shape[0] < 2:
        raise ValueError(f"{name} needs B >= 2 images to compare, got B = {x.shape[0]}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    return x


def _mean_pairwise_cosine(rows: Tensor) -> Tensor:
    """Mean cosine similarity over the B(B-1)/2 pairs of rows of a (B, D) tensor."""
    unit = F.normalize(rows, dim=1)
    sim = unit @ unit.T
    i, j = torch.triu_indices(len(rows), len(rows), offset=1, device=rows.device)
    return sim[i, j].mean()


def _window(n: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """Symmetric Hann window without its zero end points (so every pixel counts)."""
    return torch.hann_window(n + 2, periodic=False, dtype=dtype, device=device)[1:-1]


def power_spectrum(images: Tensor) -> Tensor:
    """Channel-mean |FFT|² of the mean-removed, Hann-windowed images: (B, C, H, W) -> (B, H, W).

    Windowing keeps the wrap-around edge of a non-periodic image from adding spurious power.
    """
    h, w = images.shape[-2:]
    x = images - images.mean(dim=(-2, -1), keepdim=True)
    flat = images.amax(dim=(-2, -1), keepdim=True) == images.amin(dim=(-2, -1), keepdim=True)
    x = x.masked_fill(flat, 0.0)  # exactly constant: no rounding residue in the spectrum
    x = x * (_window(h, x.device, x.dtype)[:, None] * _window(w, x.device, x.dtype)[None, :])
    return torch.fft.fft2(x).abs().square().mean(dim=1)


def _radius(h: int, w: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """Radial frequency of each FFT bin as a fraction of Nyquist (0.5 cycles/px), (H, W)."""
    fy = torch.fft.fftfreq(h, device=device, dtype=dtype) / 0.5
    fx = torch.fft.fftfreq(w, device=device, dtype=dtype) / 0.5
    return torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)


# --------------------------------------------------------------------------------------------
# model-free image metrics


def spectrum_slope(images: Tensor) -> Tensor:
    """Slope of the radially averaged power spectrum on log-log axes, per image.

    ``P(f)`` is the channel-mean power ``|FFT|²`` of the mean-removed, Hann-windowed image,
    averaged over annuli of integer radius ``r = 1 .. min(H, W) // 2`` in units of
    ``1 / min(H, W)`` cycles/px (DC and the corners beyond Nyquist excluded); the slope is the
    least-squares fit of ``log P`` against ``log r``. Natural photos are near -2 (amplitude ∝ 1/f),
    white noise near 0; a steeper (more negative) slope means a smoother image, a flatter one
    high-frequency clutter. A constant image gives 0. The fit weighs every annulus the same, so
    high frequencies (more annuli) dominate it.

    Shape: ``(B, C, H, W)`` or ``(C, H, W)`` with ``min(H, W) >= 4``; returns ``(B,)``.
    """
    images = _images(images)
    h, w = images.shape[-2:]
    n_bins = min(h, w) // 2
    if n_bins < 2:
        raise ValueError(f"spectrum_slope needs height and width >= 4, got {(h, w)}")
    power = power_spectrum(images).flatten(1)  # (B, H*W)
    r = _radius(h, w, images.device, images.dtype) * (min(h, w) / 2)  # in 1/min(H, W) units
    idx = torch.round(r).long().flatten()
    keep = (idx >= 1) & (idx <= n_bins)
    idx, power = idx[keep] - 1, power[:, keep]
    sums = power.new_zeros(len(power), n_bins).index_add_(1, idx, power)
    counts = torch.bincount(idx, minlength=n_bins).to(power.dtype)
    radial = sums / counts
    logp = torch.log(radial.clamp_min(torch.finfo(radial.dtype).tiny))
    logr = torch.log(torch.arange(1, n_bins + 1, device=power.device, dtype=power.dtype))
    xc = logr - logr.mean()
    yc = logp - logp.mean(dim=1, keepdim=True)
    return (yc * xc).sum(dim=1) / xc.square().sum()


def high_frequency_energy(images: Tensor, cutoff: float = 0.5) -> Tensor:
    """Share of spectral energy above ``cutoff`` times the Nyquist frequency, per image.

    ``E = Σ_{ρ(f) > cutoff} P(f) / Σ_{f ≠ 0} P(f)`` with ``P`` as in ``spectrum_slope`` and
    ``ρ(f) = sqrt(fx² + fy²) / 0.5`` the radial frequency in units of Nyquist (the corners of the
    spectrum reach ρ = √2). White noise gives the share of frequency bins above the cutoff (about
    ``1 - π cutoff² / 4`` for ``cutoff <= 1``); a smooth image about 0. A constant image gives 0.

    Shape: ``(B, C, H, W)`` or ``(C, H, W)``; returns ``(B,)``.
    """
    images = _images(images)
    if not (isinstance(cutoff, (int, float)) and 0 <= cutoff < math.sqrt(2)):
        raise ValueError(f"cutoff must be a number in [0, sqrt(2)) (x Nyquist), got {cutoff!r}")
    h, w = images.shape[-2:]
    power = power_spectrum(images)
    power[:, 0, 0] = 0  # DC (already ~0 after mean removal)
    rho = _radius(h, w, images.device, images.dtype)
    total = power.sum(dim=(1, 2))
    high = (power * (rho > cutoff)).sum(dim=(1, 2))
    return torch.where(total > 0, high / total.clamp_min(torch.finfo(total.dtype).tiny), 0.0)


def total_variation(images: Tensor) -> Tensor:
    """Anisotropic L1 total variation per pixel: mean |horizontal step| + mean |vertical step|.

    ``TV = mean_{c,y,x} |I[c,y,x+1] - I[c,y,x]| + mean_{c,y,x} |I[c,y+1,x] - I[c,y,x]|``, each
    mean over its ``C·H·(W-1)`` or ``C·(H-1)·W`` neighbour pairs. 0 for a constant image; 1 for
    0/1 stripes one pixel wide; 2 for a one-pixel 0/1 checkerboard.

    Shape: ``(B, C, H, W)`` or ``(C, H, W)`` with H, W >= 2; returns ``(B,)``.
    """
    images = _images(images)
    h, w = images.shape[-2:]
    if h < 2 or w < 2:
        raise ValueError(f"total_variation needs height and width >= 2, got {(h, w)}")
    dx = (images[..., :, 1:] - images[..., :, :-1]).abs().mean(dim=(1, 2, 3))
    dy = (images[..., 1:, :] - images[..., :-1, :]).abs().mean(dim=(1, 2, 3))
    return dx + dy


def colorfulness(images: Tensor) -> Tensor:
    """Hasler & Süsstrunk (2003) colourfulness per image, on the 0-255 scale of the paper.

    With ``R, G, B`` scaled to 0-255, ``rg = R - G``, ``yb = (R + G)/2 - B``:
    ``M = sqrt(std(rg)² + std(yb)²) + 0.3 sqrt(mean(rg)² + mean(yb)²)`` (population std over
    pixels). The paper's scale then applies: ~15 slightly, ~33 moderately, ~45 averagely, ~59
    quite, ~82 highly, ~109 extremely colourful. 0 for any gray image; 85.5 for pure red.

    Shape: ``(B, 3, H, W)`` or ``(3, H, W)`` RGB; returns ``(B,)``.
    """
    images = _images(images)
    if images.shape[1] != 3:
        raise ValueError(f"colorfulness needs 3 (RGB) channels, got {images.shape[1]}")
    r, g, b = (255.0 * images).unbind(dim=1)
    rg = (r - g).flatten(1)
    yb = (0.5 * (r + g) - b).flatten(1)
    std = torch.sqrt(rg.var(dim=1, unbiased=False) + yb.var(dim=1, unbiased=False))
    mean = torch.sqrt(rg.mean(dim=1).square() + yb.mean(dim=1).square())
    return std + 0.3 * mean


def saturated_fraction(images: Tensor, eps: float = 1 / 255) -> Tensor:
    """Share of values (all channels and pixels) within ``eps`` of 0 or 1, per image.

    ``S = mean [x <= eps or x >= 1 - eps]``. High values mean clipped, blown-out images (often the
    sign of a too-large step size with clamping).

    Shape: ``(B, C, H, W)`` or ``(C, H, W)``; returns ``(B,)``.
    """
    images = _images(images)
    if not (isinstance(eps, (int, float)) and 0 <= eps < 0.5):
        raise ValueError(f"eps must be a number in [0, 0.5), got {eps!r}")
    sat = (images <= eps) | (images >= 1 - eps)
    return sat.flatten(1).to(images.dtype).mean(dim=1)


# --------------------------------------------------------------------------------------------
# feature-based metrics


def gram_diversity(features: Tensor) -> Tensor:
    """1 - mean pairwise cosine similarity of the images' Gram matrices (style diversity).

    ``G_i = F_i F_iᵀ`` with ``F_i`` the ``(C, H·W)`` activations of image ``i``; the result is
    ``1 - mean_{i<j} cos(vec G_i, vec G_j)``. Gram matrices ignore where things are, so this
    measures diversity of "what" (textures, parts), not of layout. 0 for identical images; with
    non-negative (post-ReLU) features it lies in [0, 1]. An all-zero image counts as
    dissimilar to everything (cosine 0).

    Shape: ``(B, C, H, W)`` (or ``(B, C, N)``) with B >= 2; returns a 0-dim tensor.
    """
    features = _features(features, min_dim=3)
    f = features.flatten(2)  # (B, C, N)
    gram = f @ f.transpose(1, 2) / f.shape[-1]
    return 1.0 - _mean_pairwise_cosine(gram.flatten(1))


def seed_stability(features: Tensor) -> Tensor:
    """Mean pairwise cosine similarity of flattened activations of results from different seeds.

    ``stability = mean_{i<j} cos(vec F_i, vec F_j)``: 1 when every seed gives the same
    activations, ~0 for unrelated ones (negative only for signed features). Unlike
    ``gram_diversity`` it is position-sensitive.

    Shape: ``(B, ...)`` with B >= 2 (e.g. ``(B, C, H, W)`` activations or the images themselves);
    returns a 0-dim tensor.
    """
    features = _features(features, min_dim=2)
    return _mean_pairwise_cosine(features.flatten(1))
