"""A known-answer model: a tiny conv net with hand-set weights and a planted grating detector.

``grating_net()`` has one detector whose ideal input is known (``planted_pattern``), so a feature
visualization can be scored against ground truth with ``recovery_score``.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import Tensor, nn

from midnite.engine.checks import check_positive_int, check_real
from midnite.metrics import power_spectrum

__all__ = ["grating_net", "planted_pattern", "recovery_score"]

#: Names of the ``grating_net`` channels, in order; channel 0 is the planted detector.
CHANNELS = (
    "target",  # Gabor at (orientation, period): the planted detector
    "orthogonal",  # Gabor at orientation + 90 deg, same period
    "diagonal",  # Gabor at orientation + 45 deg, same period
    "coarse",  # Gabor at orientation, twice the period
    "red_green",  # colour-opponent blob (R - G); a luminance blob (center-surround) if C < 3
    "center_surround",  # difference of Gaussians on luminance
)


def _check_grating_args(orientation_deg: float, period: float, channels: int) -> None:
    check_real("orientation_deg", orientation_deg)
    check_real("period", period, ge=2.0)  # pixels; 2 is the Nyquist limit
    check_positive_int("channels", channels)


def _wave(
    height: int, width: int, orientation_deg: float, period: float, phase: float, centered: bool
) -> Tensor:
    """cos(2π (x cosθ + y sinθ) / period + phase) on a (height, width) grid, float64."""
    y = torch.arange(height, dtype=torch.float64)
    x = torch.arange(width, dtype=torch.float64)
    if centered:
        y, x = y - (height - 1) / 2, x - (width - 1) / 2
    theta = math.radians(orientation_deg)
    proj = x[None, :] * math.cos(theta) + y[:, None] * math.sin(theta)
    return torch.cos(2 * math.pi * proj / period + phase)


def _gaussian(size: int, sigma: float) -> Tensor:
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    return g[:, None] * g[None, :]


def _gabor(size: int, orientation_deg: float, period: float) -> Tensor:
    """Zero-mean, unit-norm even Gabor kernel (size, size), float64."""
    env = _gaussian(size, 0.6 * period)
    k = _wave(size, size, orientation_deg, period, 0.0, centered=True) * env
    k = k - env * (k.sum() / env.sum())  # remove the DC response, keep the envelope's shape
    return k / k.norm()


def grating_net(
    orientation_deg: float = 45.0,
    period: float = 6.0,
    channels: int = 3,
    kernel_size: int | None = None,
) -> nn.Sequential:
    """A conv net whose ``conv`` channel 0 is a hand-set detector of one sinusoidal grating.

    Layers (``named_modules`` names): ``conv`` (Conv2d, ``channels`` -> 6, no padding, zero bias),
    ``relu``, ``pool`` (global average), ``flatten``. Output channel / logit ``k`` is the mean over
    positions of ``relu`` channel ``k``, so output 0 is exactly "channel 0's mean activation".

    Planted detector: ``conv`` (and ``relu``) channel 0, an even, zero-mean, unit-norm Gabor with
    the given orientation and period, the same on every colour channel (divided by ``channels``),
    i.e. a luminance grating detector. ``planted_pattern(h, w, orientation_deg, period)`` (any
    phase) is the stimulus it is tuned to: the other channels answer it weakly, and pixel-space
    gradient ascent on it within [0, 1] finds the same grating, squared off. Distractor
    channels 1-5 (see ``CHANNELS``): Gabors at +90 deg, +45 deg and twice the period, a red-green
    colour-opponent blob (a luminance blob when ``channels < 3``) and a center-surround detector.

    Orientation: the stripes' normal (the wave vector) is at ``orientation_deg`` from the x axis
    (image columns), y pointing down (image rows): 0 deg gives vertical stripes, 90 horizontal.

    ``kernel_size`` defaults to ``2 * ceil(period) + 1`` (two periods). The model is in eval mode,
    float32 on the CPU, and its parameters do not require grad.
    """
    _check_grating_args(orientation_deg, period, channels)
    if kernel_size is None:
        kernel_size = 2 * math.ceil(period) + 1
    if not isinstance(kernel_size, int) or isinstance(kernel_size, bool) or kernel_size < 3:
        raise ValueError(f"kernel_size must be an int >= 3, got {kernel_size!r}")
    size = kernel_size
    lum = [
        _gabor(size, orientation_deg, period),
        _gabor(size, orientation_deg + 90.0, period),
        _gabor(size, orientation_deg + 45.0, period),
        _gabor(size, orientation_deg, 2.0 * period),
    ]
    center = _gaussian(size, period / 4)
    surround = _gaussian(size, period / 2)
    dog = center / center.sum() - surround / surround.sum()
    dog = dog / dog.norm()
    weight = torch.zeros(len(CHANNELS), channels, size, size, dtype=torch.float64)
    for k, kern in enumerate(lum):
        weight[k] = kern / channels
    blob = center / center.norm()
    if channels >= 3:
        weight[4, 0], weight[4, 1] = blob / 2, -blob / 2
    else:
        weight[4] = -dog / channels  # off-center luminance blob
    weight[5] = dog / channels

    conv = nn.Conv2d(channels, len(CHANNELS), size, bias=True)
    with torch.no_grad():
        conv.weight.copy_(weight.float())
        conv.bias.zero_()  # type: ignore[union-attr]  # made with bias=True
    net = nn.Sequential(
        OrderedDict(
            conv=conv,
            relu=nn.ReLU(),
            pool=nn.AdaptiveAvgPool2d(1),
            flatten=nn.Flatten(),
        )
    )
    net.requires_grad_(False)
    return net.eval()


def planted_pattern(
    height: int,
    width: int,
    orientation_deg: float = 45.0,
    period: float = 6.0,
    channels: int = 3,
    phase: float = 0.0,
) -> Tensor:
    """The grating that ``grating_net``'s channel 0 detects, in [0, 1].

    ``0.5 + 0.5 cos(2π (x cosθ + y sinθ) / period + phase)`` with ``θ = orientation_deg`` and
    x, y the column and row index; gray (the same on every channel). The arguments must match
    the ``grating_net`` call; ``phase`` (radians) does not matter to the detector.

    Shape: ``(channels, height, width)``, float32.
    """
    _check_grating_args(orientation_deg, period, channels)
    for name, v in (("height", height), ("width", width)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")
    g = 0.5 + 0.5 * _wave(height, width, orientation_deg, period, float(phase), centered=False)
    return g.float().expand(channels, height, width).clone()


def _luminance(x: Tensor, name: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() == 4 and x.shape[0] == 1:
        x = x[0]
    if x.dim() == 2:
        x = x[None]
    if x.dim() != 3:
        raise ValueError(
            f"{name} must be (H, W), (C, H, W) or (1, C, H, W), got shape {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    return x.double().mean(0, keepdim=True)[None]  # (1, 1, H, W)


def recovery_score(image: Tensor, pattern: Tensor, radius: float = 3.0) -> Tensor:
    """Phase-invariant share of an image's contrast energy at the pattern's spatial frequency.

    ``score = Σ_{f ∈ N} P_img(f) / Σ_{f ≠ 0} P_img(f)``, where ``P`` is the power spectrum of the
    mean-removed, Hann-windowed luminance (channel mean) and ``N`` is every frequency within
    ``radius`` frequency bins (of ``1/H``, ``1/W``) of the pattern's spectral peak or its mirror.
    The power spectrum ignores phase, so any shift of the grating scores the same; colour is
    ignored (the planted detector sees luminance only).

    Measured on 64x64 with the defaults (period 6, 45 deg): the pattern itself and a shifted copy
    ~0.999, uniform noise ~0.012 (≈ the area share of ``N``), the orthogonal grating ~0,
    100 steps of clamped pixel-space gradient ascent on channel 0 from noise ~0.75. A score above
    ~0.2 (over ten times noise, a quarter of what plain ascent reaches) means the grating was
    recovered; the area share of ``N`` (about
    ``2π radius² / (H W)``) is the chance level, so compare images of one size.

    Shape: image and pattern ``(H, W)``, ``(C, H, W)`` or ``(1, C, H, W)`` with the same H, W;
    returns a 0-dim float64 tensor (use ``float()``). A constant image scores 0.
    """
    img, pat = _luminance(image, "image"), _luminance(pattern, "pattern")
    if img.shape[-2:] != pat.shape[-2:]:
        raise ValueError(
            "image and pattern must have the same height and width, got "
            f"{tuple(img.shape[-2:])} and {tuple(pat.shape[-2:])}"
        )
    if not radius > 0:
        raise ValueError(f"radius must be > 0 (frequency bins), got {radius!r}")
    h, w = img.shape[-2:]
    p_img = power_spectrum(img.to(pat.device))[0]  # (H, W)
    p_pat = power_spectrum(pat)[0]
    if not bool(p_pat.max() > 0):
        raise ValueError("pattern must not be constant (it has no spatial frequency)")
    peak = int(torch.argmax(p_pat))
    fy = torch.fft.fftfreq(h, dtype=torch.float64, device=pat.device) * h  # in bins
    fx = torch.fft.fftfreq(w, dtype=torch.float64, device=pat.device) * w
    py, px = fy[peak // w], fx[peak % w]
    d_plus = (fy[:, None] - py) ** 2 + (fx[None, :] - px) ** 2
    d_minus = (fy[:, None] + py) ** 2 + (fx[None, :] + px) ** 2
    near = torch.minimum(d_plus, d_minus) <= radius**2
    near[0, 0] = False
    total = p_img.sum() - p_img[0, 0]
    if not bool(total > 0):
        return total.new_zeros(())
    return (p_img * near).sum() / total
