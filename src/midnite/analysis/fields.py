"""Receptive fields by gradient: the input box each position of a layer's activation grid sees.

``receptive_fields(model, layers, size)`` probes a model with seeded noise (one forward pass,
one backward pass per layer) and fits a stride and two offsets per axis; ``probe_layers`` is
the same probe as used by the top-examples pass, which also needs the layers' output shapes.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

import torch
from torch import Tensor, nn

from midnite.analysis.stream import placed
from midnite.engine.checks import check_size, resolve_index
from midnite.engine.hooks import ActivationCapture, frozen, input_channels
from midnite.engine.normalize import Normalize
from midnite.errors import UsageError

__all__ = ["Box", "ReceptiveField", "check_layers", "probe_layers", "receptive_fields"]

Box: TypeAlias = "tuple[int, int, int, int]"  # (top, left, bottom, right), bottom/right exclusive

_PROBE_POSITIONS = 5  # rows (and columns) probed per layer: 0, 1, middle, last - 1, last


def check_layers(layers: object) -> list[str]:
    """``layers`` (a name or a list of names) as a list of distinct names, in order."""
    specs = [layers] if isinstance(layers, str) else layers
    if not isinstance(specs, Iterable) or not all(isinstance(s, str) for s in specs):
        raise TypeError(f"layers must be a layer name or a list of names, got {layers!r}")
    specs = list(dict.fromkeys(specs))
    if not specs:
        raise UsageError("layers must name at least one layer, got none")
    return specs


@dataclass(frozen=True)
class ReceptiveField:
    """The input box that each position of one layer's activation grid looks at.

    Along each axis the box of position ``p`` is ``[p * stride + start, p * stride + end)``,
    clipped to the image; ``start`` (``end``) is None when every position's box reaches the
    image's first (last) pixel, as for layers whose field is larger than the image.
    """

    size: tuple[int, int]  # input (H, W)
    grid: tuple[int, int]  # activation (h, w)
    stride: tuple[float, float]
    start: tuple[float | None, float | None]
    end: tuple[float | None, float | None]

    def box(self, y: int, x: int) -> Box:
        """``(top, left, bottom, right)`` in input pixels of grid position ``(y, x)``."""
        top, bottom = self._axis(0, y)
        left, right = self._axis(1, x)
        return top, left, bottom, right

    def _axis(self, axis: int, pos: int) -> tuple[int, int]:
        n, g = self.size[axis], self.grid[axis]
        pos = resolve_index(pos, g, "row" if axis == 0 else "column", "this activation grid")
        s, a, b = self.stride[axis], self.start[axis], self.end[axis]
        lo = 0 if a is None else min(n - 1, max(0, math.floor(pos * s + a + 1e-6)))
        hi = n if b is None else max(0, min(n, math.ceil(pos * s + b - 1e-6)))
        return lo, max(hi, lo + 1)


def _fit_axis(spans: dict[int, tuple[int, int]], n: int, g: int) -> tuple[float, ...] | None:
    """``(stride, start, end)`` (start/end NaN for None) from measured spans ``{pos: (lo, hi)}``.

    Starts above 0 and ends below ``n`` are unclipped: two of either give the stride (else the
    ratio of sizes; snapped to an integer or 1 / integer within 15 %), and the widest offsets
    over all unclipped measurements give the box.
    """
    if not spans:
        return None
    starts = {p: lo for p, (lo, _) in spans.items() if lo > 0}
    ends = {p: hi for p, (_, hi) in spans.items() if hi < n}
    slopes = [
        (pts[max(pts)] - pts[min(pts)]) / (max(pts) - min(pts))
        for pts in (starts, ends)
        if len(pts) >= 2
    ]
    stride = sum(slopes) / len(slopes) if slopes else n / g
    # a max-pool or an off ReLU can move an edge by a few pixels: an integer stride (or, for
    # an upsampled layer, 1 / integer) close to the measured one is the stride
    if stride >= 0.75 and abs(stride - round(stride)) <= 0.15 * round(stride):
        stride = round(stride)
    elif 0 < stride < 0.75 and abs(1 / stride - round(1 / stride)) <= 0.15 * round(1 / stride):
        stride = 1 / round(1 / stride)
    stride = float(stride)
    start = min((lo - p * stride for p, lo in starts.items()), default=math.nan)
    end = max((hi - p * stride for p, hi in ends.items()), default=math.nan)
    return stride, start, end


def _probe_positions(g: int) -> list[int]:
    return sorted({0, 1, g // 2, g - 2, g - 1} & set(range(g)))


def _field(act: Tensor, x: Tensor, probes: int, retain: bool) -> ReceptiveField | None:
    """The receptive field of a ``(B, C, h, w)`` activation of ``x``: a gradient probe.

    Image ``i * probes + j`` is read at the ``i``-th probed row and column; the input pixels
    with a non-zero gradient of the channel sum there (over its ``probes`` random images) are
    that position's box.
    """
    h, w = act.shape[2:]
    rows, cols = _probe_positions(h), _probe_positions(w)
    n_img = x.shape[0]
    n_pos = n_img // probes
    pairs = [(rows[min(i, len(rows) - 1)], cols[min(i, len(cols) - 1)]) for i in range(n_pos)]
    ys = torch.tensor([pairs[i // probes][0] for i in range(n_img)], device=act.device)
    xs = torch.tensor([pairs[i // probes][1] for i in range(n_img)], device=act.device)
    picked = act[torch.arange(n_img, device=act.device), :, ys, xs]  # (B, C)
    (grad,) = torch.autograd.grad(picked.sum(), x, retain_graph=retain)
    support = grad.detach().abs().sum(1).view(-1, probes, *x.shape[2:]).amax(1) > 0  # (P, H, W)
    spans: tuple[dict[int, tuple[int, int]], dict[int, tuple[int, int]]] = ({}, {})
    for (y, xx), mask in zip(pairs, support, strict=True):
        for axis, pos in ((0, y), (1, xx)):
            hit = mask.any(1 - axis).nonzero().flatten()
            if hit.numel():
                lo, hi = int(hit[0]), int(hit[-1]) + 1
                old = spans[axis].get(pos, (lo, hi))
                spans[axis][pos] = (min(lo, old[0]), max(hi, old[1]))
    fits = [_fit_axis(spans[a], x.shape[2 + a], (h, w)[a]) for a in (0, 1)]
    if fits[0] is None or fits[1] is None:
        return None

    def opt(v: float) -> float | None:
        return None if math.isnan(v) else v

    return ReceptiveField(
        size=(x.shape[2], x.shape[3]),
        grid=(h, w),
        stride=(fits[0][0], fits[1][0]),
        start=(opt(fits[0][1]), opt(fits[1][1])),
        end=(opt(fits[0][2]), opt(fits[1][2])),
    )


def probe_layers(
    cap: ActivationCapture,
    hw: tuple[int, int],
    channels: int,
    norm: Normalize | None,
    dev: torch.device,
    fields: bool,
) -> tuple[dict[str, tuple[int, ...]], dict[str, ReceptiveField | None]]:
    """Per-image output shapes of the layers and (with ``fields``) their receptive fields."""
    probes = 2
    n = _PROBE_POSITIONS * probes if fields else 1
    gen = torch.Generator(device=dev).manual_seed(0)
    x = torch.rand((n, channels, *hw), generator=gen, device=dev)
    x.requires_grad_(fields)
    with torch.set_grad_enabled(fields):
        acts = cap(norm(x) if norm is not None else x)
    shapes = {spec: tuple(acts[spec].shape[1:]) for spec in cap.specs}
    for spec, shape in shapes.items():
        if len(shape) not in (1, 3):
            raise UsageError(
                f"layer {spec!r} outputs (B, {', '.join(map(str, shape))}); dataset examples "
                "need (B, C, H, W) (a unit is a channel, its score the maximum of its map) or "
                "(B, C)"
            )
    out: dict[str, ReceptiveField | None] = dict.fromkeys(cap.specs)
    if fields:
        spatial = [s for s in cap.specs if len(shapes[s]) == 3]
        for i, spec in enumerate(spatial):
            act = acts[spec]
            if not act.requires_grad:
                warnings.warn(
                    f"layer {spec!r} does not depend differentiably on the input, so its "
                    "receptive field is unknown and its examples have no crops",
                    stacklevel=3,
                )
                continue
            try:
                out[spec] = _field(act, x, probes, retain=i < len(spatial) - 1)
            except RuntimeError as err:  # an operation without a backward, say
                warnings.warn(
                    f"layer {spec!r}: the gradient probe failed ({err}), so its examples have no "
                    "crops",
                    stacklevel=3,
                )
                continue
            if out[spec] is None:
                warnings.warn(
                    f"layer {spec!r}: the gradient probe found no input pixel that moves it, "
                    "so its examples have no crops",
                    stacklevel=3,
                )
    return shapes, out


def receptive_fields(
    model: nn.Module,
    layers: str | Sequence[str],
    size: int | tuple[int, int] = 224,
    *,
    device: str | torch.device | None = None,
    normalize: object = None,
) -> dict[str, ReceptiveField | None]:
    """The receptive field of every ``(B, C, H, W)`` layer (None for flat ones), by gradient.

    One forward pass of 10 uniform-noise images (seeded), then per layer one backward pass: the
    input pixels with a non-zero gradient of the channel sum at a grid position are its box,
    measured at rows and columns 0, 1, middle, last - 1, last; a stride and two offsets per
    axis fitted to those give every other position's box. Limits: a ReLU that is off or a
    max-pool that routes elsewhere on the probe images can make a box a little smaller than
    the theoretical field; a global operation before the layer (attention, squeeze-excite,
    global pooling) makes it the whole image; a model that is not translation-equivariant gets
    the widest fitted box.
    """
    specs = check_layers(layers)
    hw = check_size("size", size)
    dev, norm = placed(device, normalize)
    with frozen(model, dev), ActivationCapture(model, specs, early_stop=True) as cap:
        return probe_layers(cap, hw, input_channels(model), norm, dev, fields=True)[1]
