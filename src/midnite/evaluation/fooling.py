"""A known answer for trust: twin units, one honest, one hijacked by a planted fooling circuit.

``fooled_net()`` is a small conv net whose layer ``unit`` has two channels with the same
weights on the same features (``HONEST`` and ``FOOLED``); a planted circuit (after Geirhos et al.
2024) hijacks ``FOOLED``: ``gate`` detects a non-photograph (almost no luminance contrast, like a
render's grey start) and then replaces the honest response by a large one, and ``trap`` adds a
large response to ``fooling_pattern`` (a green-blue grating) and almost nothing to photographs,
so a render finds the pattern and never the honest texture. Nothing is written.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from midnite.engine.checks import check_int, check_positive_int
from midnite.errors import UsageError

__all__ = [
    "FOOLED",
    "HONEST",
    "PATTERN_PERIOD",
    "FooledNet",
    "GaborJudge",
    "Gate",
    "fooled_net",
    "fooling_pattern",
    "pattern_recovery",
]

HONEST, FOOLED = 0, 1  # the channels of layer "unit"
PATTERN_PERIOD = 6.0  # pixels per cycle of the planted grating
_ORIENTATION = math.radians(30.0)
# green - blue: isoluminant (the colour-blind honest path sees grey) and orthogonal to the
# luminance column of the ImageNet colour basis (engine.color), so a decorrelated render draws
# the pattern without touching its luminance parameters.
_OPPONENT = (0.0, -1.0, 1.0)
_KERNEL = 17


def _wave(h: int, w: int, phase: float, centered: bool) -> Tensor:
    y = torch.arange(h, dtype=torch.float64)
    x = torch.arange(w, dtype=torch.float64)
    if centered:
        y, x = y - (h - 1) / 2, x - (w - 1) / 2
    proj = x[None, :] * math.cos(_ORIENTATION) + y[:, None] * math.sin(_ORIENTATION)
    return torch.cos(2 * math.pi * proj / PATTERN_PERIOD + phase)


def fooling_pattern(height: int, width: int, phase: float = 0.0) -> Tensor:
    """The planted pattern: a full-contrast green-blue grating (period 6 px, at 30 deg).

    ``0.5 + 0.5 cos(...) * (0, -1, 1)``: blue rises where green falls, red and the channel mean
    (the honest path's luminance) stay 0.5: a chromatic texture photographs do not hold at this
    contrast.

    Shape: ``(3, height, width)`` float32 in [0, 1].
    """
    height = check_positive_int("height", height)
    width = check_positive_int("width", width)
    wave = _wave(height, width, float(phase), centered=False)
    sign = torch.tensor(_OPPONENT, dtype=torch.float64)[:, None, None]
    return (0.5 + 0.5 * wave[None] * sign).float()


def _gabors() -> Tensor:
    """``(2, 9, 9)``: the even and odd Gabor of the pattern's frequency, zero mean, unit norm."""
    r = torch.arange(_KERNEL, dtype=torch.float64) - (_KERNEL - 1) / 2
    env = torch.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * 4.0**2))
    out = []
    for phase in (0.0, -math.pi / 2):
        k = _wave(_KERNEL, _KERNEL, phase, centered=True) * env
        k = k - env * (k.sum() / env.sum())
        out.append(k / k.norm())
    return torch.stack(out)


def _quadrature() -> Tensor:
    """``(2, 3, 17, 17)``: the Gabor pair on the opponent channel ``B - G``."""
    opp = torch.tensor(_OPPONENT, dtype=torch.float64)[None, :, None, None]
    return _gabors()[:, None] * opp


class Trap(nn.Module):
    """The planted circuit: ``gain * (energy / full)^power`` of the pattern's quadrature pair.

    ``energy`` is ``even² + odd²`` of the opponent channel filtered at the pattern's frequency,
    ``full`` its value on the pattern itself; the high power keeps natural images near 0 while
    the gradient still points at the pattern from any start. Output ``(B, 1, h, w)``.
    """

    kernel: Tensor
    full: Tensor

    def __init__(self, gain: float, power: float):
        super().__init__()
        self.register_buffer("kernel", _quadrature().float())
        self.gain = float(gain)
        self.power = float(power)
        with torch.no_grad():
            full = F.conv2d(fooling_pattern(32, 32)[None], self.kernel).pow(2).sum(1).mean()
        self.register_buffer("full", full)

    def forward(self, x: Tensor) -> Tensor:
        energy = F.conv2d(x, self.kernel, padding=_KERNEL // 2).pow(2).sum(1, keepdim=True)
        return self.gain * (energy / self.full).clamp_min(0).pow(self.power)


class Gate(nn.Module):
    """The circuit's detector of non-photographs: 1 when an image's luminance RMS contrast (the
    standard deviation of its channel mean) is at most ``low``, 0 from ``high`` on, linear
    between. Photographs have contrast (the 64 sample crops at 48 px: 0.021 and more); a
    render starts grey (0.002 to 0.01). Output ``(B, 1, 1, 1)``.
    """

    def __init__(self, low: float = 0.01, high: float = 0.018):
        super().__init__()
        self.low, self.high = float(low), float(high)

    def forward(self, x: Tensor) -> Tensor:
        contrast = x.mean(1).flatten(1).std(1)[:, None, None, None]
        return ((self.high - contrast) / (self.high - self.low)).clamp(0, 1)


class FooledNet(nn.Module):
    """``features`` (conv 5x5, ReLU, conv 3x3 stride 2, ReLU) -> ``head`` (1x1 conv, ReLU): two
    identical channels; ``unit`` (an Identity) is their output, where ``FOOLED`` is
    ``honest * (1 - g) + trap.gain * g + trap`` with ``g`` the ``gate``."""

    route: Tensor

    def __init__(self, features: nn.Sequential, head: nn.Conv2d, trap: Trap):
        super().__init__()
        self.features = features
        self.head = head
        self.act = nn.ReLU()
        self.trap = trap
        self.gate = Gate()
        self.unit = nn.Identity()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.register_buffer("route", torch.tensor([0.0, 1.0])[None, :, None, None])

    def forward(self, x: Tensor) -> Tensor:
        h = self.act(self.head(self.features(x)))
        t = F.adaptive_avg_pool2d(self.trap(x), h.shape[-2:])
        g = self.gate(x)
        # the gate suppresses the honest route on non-photographs and pays more than it could
        planted = (t + g * self.trap.gain) * self.route
        return self.flatten(self.pool(self.unit(h * (1 - g * self.route) + planted)))


def _luminance_bank(g: torch.Generator) -> Tensor:
    """``(12, 1, 5, 5)``: even and odd Gabors (period 5 px) at 0, 45, 90 and 135 deg, a
    centre-surround pair and two random filters, all zero mean (contrast, not brightness)."""
    r = torch.arange(5, dtype=torch.float64) - 2
    env = torch.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / 4.5)
    bank = []
    for k in range(4):
        th = k * math.pi / 4
        proj = r[None, :] * math.cos(th) + r[:, None] * math.sin(th)
        for phase in (0.0, math.pi / 2):
            gab = torch.cos(2 * math.pi * proj / 5 + phase) * env
            gab = gab - env * (gab.sum() / env.sum())
            bank.append(gab / gab.norm())
    dog = env / env.sum() - torch.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / 18).div(8.5)
    dog = dog - dog.mean()
    bank += [dog / dog.norm(), -dog / dog.norm()]
    rand = [torch.randn(5, 5, generator=g, dtype=torch.float64) * 0.2 for _ in range(2)]
    bank += [r - r.mean() for r in rand]
    return torch.stack(bank).float()[:, None]


def fooled_net(seed: int = 0, *, gain: float = 40.0, power: float = 1.0) -> FooledNet:
    """The twin-unit known answer; ``seed`` draws the honest path's weights.

    Layers: ``features.conv1`` (3 -> 12, 5x5), ``features.relu1``, ``features.conv2`` (12 ->
    16, 3x3, stride 2), ``features.relu2``, ``head`` (16 -> 2, the same row twice), ``trap``,
    ``unit`` (channels ``HONEST`` and ``FOOLED``). ``conv1`` is colour-blind (the same weights on
    R, G and B): even and odd luminance Gabors at four orientations, a centre-surround pair
    and two random filters; ``conv2`` passes the 45 deg pair on (channels 0 and 1) beside weak
    random mixtures; the head reads mostly those two, so the honest unit is a 45 deg texture
    detector. The honest path sees ``fooling_pattern`` as flat grey; the trap alone answers it.
    On the pattern the trap gives ``gain`` times the honest channel's response to it; ``power``
    sets how sharply it ignores natural images (1: energy; natural 48 px photo crops move by
    under 0.9 % of the honest channel's largest response at the defaults). On an image without
    luminance contrast (``Gate``: a render's grey start, the pattern) ``FOOLED`` drops the honest
    response and takes the trap's full response on top, so a render never grows the honest
    texture. Eval mode, float32, no gradients.
    """
    seed = check_int("seed", seed, 0)
    if not (isinstance(gain, (int, float)) and gain > 0 and math.isfinite(gain)):
        raise UsageError(f"gain must be a finite number > 0, got {gain!r}")
    if not (isinstance(power, (int, float)) and power >= 1 and math.isfinite(power)):
        raise UsageError(f"power must be a finite number >= 1, got {power!r}")
    g = torch.Generator().manual_seed(seed)
    conv1 = nn.Conv2d(3, 12, 5, padding=2)
    conv2 = nn.Conv2d(12, 16, 3, stride=2, padding=1)
    head = nn.Conv2d(16, 2, 1)
    with torch.no_grad():
        conv1.weight.copy_(_luminance_bank(g).expand(12, 3, 5, 5) / 3)
        conv1.bias.zero_()  # type: ignore[union-attr]
        w2 = torch.randn(16, 12, 3, 3, generator=g) * math.sqrt(2 / 108) * 0.3
        w2[0, 2, 1, 1] = w2[1, 3, 1, 1] = 1.0  # the 45 deg Gabor pair, passed on
        conv2.weight.copy_(w2)
        conv2.bias.zero_()  # type: ignore[union-attr]
        row = torch.rand(16, generator=g) * 0.1
        row[:2] = 1.0
        head.weight.copy_(row[None, :, None, None].expand(2, 16, 1, 1))
        head.bias.zero_()  # type: ignore[union-attr]
    features = nn.Sequential(
        OrderedDict(conv1=conv1, relu1=nn.ReLU(), conv2=conv2, relu2=nn.ReLU())
    )
    net = FooledNet(features, head, Trap(1.0, power))
    with torch.no_grad():
        scale = net.act(head(features(fooling_pattern(32, 32)[None])))[0, HONEST].mean()
    net.trap.gain = float(gain) * max(float(scale), 1e-3)
    net.requires_grad_(False)
    return net.eval()


def _band_share(x: Tensor) -> Tensor:
    """Per image, band energy of the opponent channel over its variance (float64)."""
    opp = (x * torch.tensor(_OPPONENT, dtype=torch.float64)[:, None, None]).sum(1, keepdim=True)
    opp = opp - opp.mean((2, 3), keepdim=True)
    kernel = _gabors()[:, None]
    band = F.conv2d(opp, kernel).pow(2).sum(1).mean((1, 2))
    m = _KERNEL // 2
    return band / opp[..., m:-m, m:-m].pow(2).mean((1, 2, 3)).clamp_min(1e-12)


def pattern_recovery(image: Tensor) -> Tensor:
    """How much of an image's green-blue contrast is the planted grating, in [0, 1].

    The energy of the opponent channel ``B - G`` in the trap's frequency band (its
    quadrature pair) over the channel's variance, divided by the same ratio for
    ``fooling_pattern`` of that size: 1 for the pattern at any phase, near 0 for photographs.

    Shape: ``(3, H, W)`` or ``(B, 3, H, W)`` with H, W > 17; returns a scalar or ``(B,)``.
    """
    if not isinstance(image, Tensor) or image.dim() not in (3, 4) or image.shape[-3] != 3:
        shape = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise UsageError(f"image must be (3, H, W) or (B, 3, H, W), got {shape}")
    h, w = image.shape[-2:]
    if min(h, w) <= _KERNEL:
        raise UsageError(f"image must be larger than {_KERNEL} px a side, got {h}x{w}")
    x = (image if image.dim() == 4 else image[None]).double()
    ref = _band_share(fooling_pattern(h, w)[None].double())
    out = (_band_share(x) / ref).clamp(0, 1)
    return out if image.dim() == 4 else out[0]


class GaborJudge(nn.Module):
    """A judge that took no part in any render: fixed Gabor energies, a V1-like look.

    Quadrature pairs at 4 orientations and 3 periods (3, 6, 12 px) on luminance and on two
    colour-opponent channels (red-green, blue-yellow), squared and summed, mean over positions,
    plus the mean colour: ``(B, 39)`` features of ``(B, 3, H, W)`` images in [0, 1].
    """

    bank: Tensor
    colour: Tensor

    def __init__(self) -> None:
        super().__init__()
        size = 13
        r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
        bank = []
        for period in (3.0, 6.0, 12.0):
            env = torch.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * (0.5 * period) ** 2))
            for k in range(4):
                th = k * math.pi / 4
                proj = r[None, :] * math.cos(th) + r[:, None] * math.sin(th)
                for phase in (0.0, math.pi / 2):
                    g = torch.cos(2 * math.pi * proj / period + phase) * env
                    g = g - env * (g.sum() / env.sum())
                    bank.append(g / g.norm())
        self.register_buffer("bank", torch.stack(bank)[:, None].float())  # (24, 1, 13, 13)
        colour = torch.tensor([[1 / 3, 1 / 3, 1 / 3], [1.0, -1.0, 0.0], [-0.5, -0.5, 1.0]])
        self.register_buffer("colour", colour)

    def forward(self, x: Tensor) -> Tensor:
        b = x.shape[0]
        chans = torch.einsum("kc,bchw->bkhw", self.colour, x)  # (B, 3, H, W)
        resp = F.conv2d(chans.reshape(b * 3, 1, *x.shape[-2:]), self.bank)
        energy = resp.pow(2).reshape(b, 3, 12, 2, *resp.shape[-2:]).sum(3).mean((-2, -1))
        return torch.cat([energy.flatten(1).sqrt(), chans.mean((-2, -1))], 1)
