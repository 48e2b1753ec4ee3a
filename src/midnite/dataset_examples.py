"""Dataset examples: the K images that excite each unit most, where in them, and the crop there.

``top_examples(model, layers, images, k)`` makes one streaming pass: each image is decoded once,
all layers are read from one forward pass per batch, and the state is a running top K per unit
(``units x k`` values, never all activations). ``merge`` joins shards into the single pass's result.

A unit is a channel: its score on an image is the maximum of its activation map over positions
(for a flat ``(B, C)`` layer, the value itself). Ties go to the smaller image id, so the result
does not depend on the order of images, batches or shards.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import os
import sys
import warnings
from collections import deque
from collections.abc import Generator, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TypeAlias

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor, nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from midnite.engine.checks import (
    check_bool,
    check_int,
    check_positive_int,
    check_size,
    resolve_index,
    unit_float,
)
from midnite.engine.device import resolve_device
from midnite.engine.hooks import ActivationCapture, frozen, input_channels
from midnite.engine.normalize import Normalize, as_normalize

__all__ = [
    "Example",
    "LayerExamples",
    "ReceptiveField",
    "TopExamples",
    "UnreadableImageError",
    "UnreadableImageWarning",
    "list_images",
    "load_image",
    "merge",
    "receptive_fields",
    "top_examples",
]

ImageId: TypeAlias = "str | int"  # a path relative to the folder (or as given), or an index
Box: TypeAlias = "tuple[int, int, int, int]"  # (top, left, bottom, right), bottom/right exclusive

_MAGIC = {b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG"}
_MODES = {1: "L", 3: "RGB"}
_PROBE_POSITIONS = 5  # rows (and columns) probed per layer: 0, 1, middle, last - 1, last


class UnreadableImageError(ValueError):
    """A file that is not a JPEG or PNG image, or one that cannot be decoded."""

    def __init__(self, where: str, reason: str):
        super().__init__(f"{where}: {reason}")
        self.where, self.reason = where, reason


class UnreadableImageWarning(UserWarning):
    """Some image files could not be read and were skipped (see ``TopExamples.skipped``)."""


# --------------------------------------------------------------------------------------------
# images


def list_images(folder: str | os.PathLike) -> list[str]:
    """Every file under ``folder``, recursively, as sorted POSIX paths relative to it.

    Names that start with a dot (files and folders) are left out. Whether a file is a JPEG or
    PNG is decided by its content when it is read, not by its name.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"images: no such folder {str(folder)!r}")
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        base = Path(dirpath)
        found += [(base / n).relative_to(root).as_posix() for n in filenames if n[:1] != "."]
    return sorted(found)


def load_image(
    source: str | os.PathLike | bytes | Image.Image | Tensor,
    size: int | tuple[int, int] = 224,
    channels: int = 3,
) -> Tensor:
    """An image as [0, 1] floats of ``size``: scaled to just cover it, then center-cropped.

    ``source`` is a JPEG or PNG file (by content) or its bytes, a PIL image, or a ``(C, H, W)``
    tensor (floats in [0, 1], or uint8). Files and PIL images are converted to ``L`` (1 channel)
    or ``RGB`` (3) after their EXIF orientation is applied; the aspect ratio is kept, so the
    longer side loses its two ends (nothing is padded). Raises ``UnreadableImageError`` for a
    file that is not a JPEG or PNG or fails to decode.

    Shape:
        output ``(channels, H, W)`` with ``(H, W) = size`` (an int means a square).
    """
    hw = check_size("size", size)
    channels = check_positive_int("channels", channels)
    if isinstance(source, Tensor):
        return _fit_tensor(source, hw, channels)
    if isinstance(source, Image.Image):
        return _fit_pil(source, hw, channels)
    mode = _mode(channels)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, where = bytes(source), "the given bytes"
    elif isinstance(source, (str, os.PathLike)):
        where = str(source)
        try:
            data = Path(source).read_bytes()
        except OSError as err:
            raise UnreadableImageError(where, f"cannot read: {err}") from err
    else:
        raise TypeError(
            "an image must be a file path, bytes, a PIL image or a (C, H, W) tensor, got "
            f"{type(source).__name__}"
        )
    if not any(data.startswith(magic) for magic in _MAGIC):
        raise UnreadableImageError(where, "not a JPEG or PNG file (by content)")
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            pil = ImageOps.exif_transpose(img).convert(mode)
    except Exception as err:  # Pillow raises many kinds for broken files
        raise UnreadableImageError(where, f"cannot decode: {type(err).__name__}: {err}") from err
    return _fit_pil(pil, hw, channels)


def _mode(channels: int) -> str:
    if channels not in _MODES:
        raise ValueError(
            f"image files become 1-channel (L) or 3-channel (RGB) tensors; this model takes "
            f"{channels} input channels, so pass (C, H, W) tensors instead of files"
        )
    return _MODES[channels]


def _cover(h: int, w: int, hw: tuple[int, int]) -> tuple[int, int]:
    """The size that ``(h, w)`` scales to so that it just covers ``hw``, aspect ratio kept."""
    scale = max(hw[0] / h, hw[1] / w)
    return max(hw[0], round(h * scale)), max(hw[1], round(w * scale))


def _fit_pil(img: Image.Image, hw: tuple[int, int], channels: int) -> Tensor:
    mode = _mode(channels)
    if img.mode != mode:
        img = img.convert(mode)
    nh, nw = _cover(img.height, img.width, hw)
    if (nh, nw) != (img.height, img.width):
        img = img.resize((nw, nh), Image.Resampling.BILINEAR)  # antialiased when shrinking
    top, left = (nh - hw[0]) // 2, (nw - hw[1]) // 2
    img = img.crop((left, top, left + hw[1], top + hw[0]))
    arr = np.array(img, dtype=np.uint8).reshape(hw[0], hw[1], channels)
    return torch.from_numpy(arr).permute(2, 0, 1).float().div_(255)


def _fit_tensor(x: Tensor, hw: tuple[int, int], channels: int) -> Tensor:
    if x.dim() != 3 or x.shape[0] != channels:
        raise ValueError(
            f"an image tensor must be (C, H, W) with C = {channels} (the model's input "
            f"channels), got shape {tuple(x.shape)}"
        )
    x = unit_float("an image tensor", x)
    nh, nw = _cover(x.shape[1], x.shape[2], hw)
    if (nh, nw) != tuple(x.shape[1:]):
        x = F.interpolate(x[None], size=(nh, nw), mode="bilinear", antialias=True)[0]
    top, left = (nh - hw[0]) // 2, (nw - hw[1]) // 2
    return x[:, top : top + hw[0], left : left + hw[1]].contiguous()


# --------------------------------------------------------------------------------------------
# receptive fields


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


def _probe(
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
            raise ValueError(
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
    specs = _check_layers(layers)
    hw = check_size("size", size)
    dev = resolve_device(device)
    norm = as_normalize(normalize)
    norm = None if norm is None else norm.to(dev)
    with frozen(model, dev), ActivationCapture(model, specs, early_stop=True) as cap:
        return _probe(cap, hw, input_channels(model), norm, dev, fields=True)[1]


# --------------------------------------------------------------------------------------------
# results


class Example(NamedTuple):
    """One of a unit's top images: its score, id, grid position and input box (None if flat)."""

    value: float
    image: ImageId
    position: tuple[int, int] | None
    box: Box | None


@dataclass
class LayerExamples:
    """The top images of every unit (channel) of one layer, best first.

    Shape:
        ``values``, ``image_index``: ``(C, n)`` with ``n = min(k, images seen)``;
        ``image_index`` indexes ``TopExamples.images``; ``positions``: ``(C, n, 2)`` int64
        ``(y, x)`` in the activation grid, None for a flat ``(B, C)`` layer.
    """

    layer: str
    shape: tuple[int, ...]  # per-image output shape: (C, h, w) or (C,)
    values: Tensor = dataclasses.field(repr=False)
    image_index: Tensor = dataclasses.field(repr=False)
    positions: Tensor | None = dataclasses.field(repr=False)
    field: ReceptiveField | None

    @property
    def units(self) -> int:
        return self.shape[0]


@dataclass
class TopExamples:
    """What ``top_examples`` found: per layer, each unit's top images, plus what was skipped.

    ``images`` lists only the ids that some unit's top K holds, sorted; ``seen`` counts the
    images that went through the model, ``decoded`` those decoded from files, and ``skipped``
    holds ``(id, reason)`` for each unreadable file.
    """

    k: int
    size: tuple[int, int]
    channels: int
    root: str | None  # the folder that string ids are relative to (None: ids are paths as given)
    images: list = dataclasses.field(repr=False)  # list[ImageId]
    layers: dict[str, LayerExamples]
    seen: int
    decoded: int
    skipped: list[tuple[ImageId, str]] = dataclasses.field(repr=False)

    def __getitem__(self, layer: str) -> LayerExamples:
        if layer not in self.layers:
            raise KeyError(f"no layer {layer!r} in these results; they hold {list(self.layers)}")
        return self.layers[layer]

    def _pick(self, layer: str, unit: int, rank: int) -> tuple[LayerExamples, int, int]:
        res = self[layer]
        unit = resolve_index(unit, res.units, "unit", f"layer {layer!r}")
        rank = resolve_index(rank, res.values.shape[1], "rank", f"unit {unit} of {layer!r}")
        return res, unit, rank

    def examples(self, layer: str, unit: int) -> list[Example]:
        """The unit's top images, best first."""
        res = self[layer]
        unit = resolve_index(unit, res.units, "unit", f"layer {layer!r}")
        out = []
        for r in range(res.values.shape[1]):
            pos = None if res.positions is None else tuple(res.positions[unit, r].tolist())
            box = None if pos is None or res.field is None else res.field.box(*pos)
            image = self.images[int(res.image_index[unit, r])]
            out.append(Example(float(res.values[unit, r]), image, pos, box))
        return out

    def box(self, layer: str, unit: int, rank: int = 0) -> Box:
        """``(top, left, bottom, right)``: the receptive field around the maximum, in pixels."""
        res, unit, rank = self._pick(layer, unit, rank)
        if res.positions is None:
            raise ValueError(
                f"layer {layer!r} is flat (output {res.shape}): its units have no spatial map, "
                "so no position and no crop; use .image() for the whole image"
            )
        if res.field is None:
            raise ValueError(
                f"layer {layer!r} has no receptive field (top_examples(..., fields=False), or "
                "the gradient probe found none), so no crop"
            )
        y, x = res.positions[unit, rank].tolist()
        return res.field.box(y, x)

    def image(self, layer: str, unit: int, rank: int = 0, *, image: object = None) -> Tensor:
        """The whole example image as the model saw it, decoded again from its file.

        Images given as tensors or PIL images (integer ids) are not kept: pass it as ``image``.

        Shape:
            output ``(channels, H, W)``, ``(H, W) = size``.
        """
        res, unit, rank = self._pick(layer, unit, rank)
        if image is None:
            ident = self.images[int(res.image_index[unit, rank])]
            if not isinstance(ident, str):
                raise ValueError(
                    f"image {ident} was given as a tensor or PIL image, which is not kept; pass "
                    "it again as image=..."
                )
            image = Path(self.root) / ident if self.root is not None else Path(ident)
        return load_image(image, self.size, self.channels)  # type: ignore[arg-type]

    def crop(self, layer: str, unit: int, rank: int = 0, *, image: object = None) -> Tensor:
        """The part of the example image inside the unit's receptive field at its maximum.

        Shape:
            output ``(channels, bottom - top, right - left)`` of ``box(layer, unit, rank)``.
        """
        top, left, bottom, right = self.box(layer, unit, rank)
        return self.image(layer, unit, rank, image=image)[:, top:bottom, left:right]

    def merge(self, *others: TopExamples) -> TopExamples:
        """This result joined with results of other shards (see ``merge``)."""
        return merge(self, *others)


# --------------------------------------------------------------------------------------------
# the running top K


def _best(values: Tensor, keys: Tensor, pos: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """Per row, the ``k`` best columns: larger value first, then smaller key (image order).

    Shape:
        inputs ``(C, m)``; outputs ``(C, min(k, m))``.
    """
    order = torch.argsort(keys, dim=1, stable=True)
    values, keys, pos = values.gather(1, order), keys.gather(1, order), pos.gather(1, order)
    order = torch.argsort(values, dim=1, descending=True, stable=True)[:, :k]
    return values.gather(1, order), keys.gather(1, order), pos.gather(1, order)


class _Running:
    """The running top K of one layer: ``(C, <=k)`` values, image keys and flat positions."""

    def __init__(self, units: int, k: int, dev: torch.device):
        self.k = k
        self.values = torch.empty((units, 0), device=dev)
        self.keys = torch.empty((units, 0), dtype=torch.int64, device=dev)
        self.pos = torch.empty((units, 0), dtype=torch.int64, device=dev)

    def update(self, act: Tensor, keys: Tensor) -> None:
        """Fold one batch in. ``act``: ``(B, C, h, w)`` or ``(B, C)``; ``keys``: ``(B,)``."""
        act = act.detach()
        if act.dim() == 4:
            best, where = act.flatten(2).max(2)  # the first maximum in row-major order
        else:
            best, where = act, torch.zeros(act.shape, dtype=torch.int64, device=act.device)
        best = best.float()
        best = torch.where(torch.isnan(best), -math.inf, best)  # a NaN map never wins
        units = best.shape[1]
        self.values, self.keys, self.pos = _best(
            torch.cat([self.values, best.T], 1),
            torch.cat([self.keys, keys.expand(units, -1)], 1),
            torch.cat([self.pos, where.T], 1),
            self.k,
        )


# --------------------------------------------------------------------------------------------
# sources of images


@dataclass
class _Source:
    items: Iterable[tuple[int, ImageId, object]]  # (key, id, item); key order = id order
    total: int | None
    root: str | None
    where: str


def _check_layers(layers: object) -> list[str]:
    specs = [layers] if isinstance(layers, str) else layers
    if not isinstance(specs, Iterable) or not all(isinstance(s, str) for s in specs):
        raise TypeError(f"layers must be a layer name or a list of names, got {layers!r}")
    specs = list(dict.fromkeys(specs))
    if not specs:
        raise ValueError("layers must name at least one layer, got none")
    return specs


def _check_shard(shard: object) -> tuple[int, int]:
    if shard is None:
        return 0, 1
    if not isinstance(shard, (tuple, list)) or len(shard) != 2:
        raise ValueError(f"shard must be (index, count), got {shard!r}")
    count = check_positive_int("shard count", shard[1])
    index = check_int("shard index", shard[0], 0)
    if index >= count:
        raise ValueError(f"shard index must be in 0..{count - 1}, got {index}")
    return index, count


def _is_path(x: object) -> bool:
    return isinstance(x, (str, os.PathLike))


def _source(images: object, shard: tuple[int, int]) -> _Source:
    index, count = shard
    if _is_path(images):
        path = Path(images)  # type: ignore[arg-type]
        if path.is_dir():
            names = list_images(path)
            if not names:
                raise ValueError(f"images: the folder {str(images)!r} holds no files")
            keyed = list(enumerate(names))[index::count]
            items = [(key, name, path / name) for key, name in keyed]
            return _Source(items, len(items), str(path), f"the folder {str(images)!r}")
        if not path.is_file():
            raise ValueError(f"images: no such folder or file {str(images)!r}")
        images = [images]
    if isinstance(images, Mapping):
        ids = list(images)
        if not all(isinstance(i, str) for i in ids):
            raise TypeError(f"images: a mapping's keys must be names (str), got {ids[:3]!r}")
        keyed = list(enumerate(sorted(ids)))[index::count]
        items = [(key, ident, images[ident]) for key, ident in keyed]
        return _Source(items, len(items), None, "the given images")
    if isinstance(images, (Image.Image, Tensor)) and not (
        isinstance(images, Tensor) and images.dim() == 4
    ):
        images = [images]
    if isinstance(images, (list, tuple)) and images and all(_is_path(p) for p in images):
        ids = sorted(str(p) for p in images)
        items = [(key, ident, Path(ident)) for key, ident in list(enumerate(ids))[index::count]]
        return _Source(items, len(items), None, "the given files")
    if not isinstance(images, Iterable) or isinstance(images, (str, bytes)):
        raise TypeError(
            "images must be a folder, a list of image files, or an iterable of (C, H, W) "
            f"tensors or PIL images, got {type(images).__name__}"
        )
    total = None
    if hasattr(images, "__len__"):
        n = len(images)  # type: ignore[arg-type]
        total = len(range(index, n, count))
    gen = ((i, i, item) for i, item in enumerate(images) if i % count == index)
    return _Source(gen, total, None, "the given images")


def _load(item: object, hw: tuple[int, int], channels: int) -> tuple[Tensor | None, str | None]:
    """``(image, None)``, or ``(None, reason)`` for an unreadable file."""
    try:
        return load_image(item, hw, channels), None  # type: ignore[arg-type]
    except UnreadableImageError as err:
        return None, err.reason


def _loaded(
    items: Iterable[tuple[int, ImageId, object]], hw: tuple[int, int], channels: int, workers: int
) -> Generator[tuple[int, ImageId, object, Tensor | None, str | None], None, None]:
    """The items with their loaded images, in order; ``workers`` threads decode ahead."""
    if workers == 0:
        for key, ident, item in items:
            yield key, ident, item, *_load(item, hw, channels)
        return
    pool = ThreadPoolExecutor(workers, thread_name_prefix="midnite-decode")
    ahead: deque[tuple[int, ImageId, object, Future]] = deque()
    try:
        for key, ident, item in items:
            ahead.append((key, ident, item, pool.submit(_load, item, hw, channels)))
            if len(ahead) > 4 * workers:
                k, i, it, fut = ahead.popleft()
                yield k, i, it, *fut.result()
        while ahead:
            k, i, it, fut = ahead.popleft()
            yield k, i, it, *fut.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# --------------------------------------------------------------------------------------------
# the pass


def top_examples(
    model: nn.Module,
    layers: str | Sequence[str],
    images: object,
    k: int = 9,
    *,
    size: int | tuple[int, int] = 224,
    batch: int = 32,
    device: str | torch.device | None = None,
    normalize: object = None,
    shard: tuple[int, int] | None = None,
    fields: bool = True,
    workers: int = 0,
    progress: bool = True,
) -> TopExamples:
    """For every unit (channel) of ``layers``, the ``k`` images with the highest score.

    A unit's score on an image is its activation map's maximum (for a ``(B, C)`` layer, the
    value); ``TopExamples`` holds the scores, image ids and grid positions of each unit's top
    ``k``, and cuts the crop of its receptive field (``crop``).

    ``images`` is one of:

    - a folder: walked recursively in sorted order, JPEG and PNG by content; ids are the paths
      relative to it;
    - a list of image files: ids are the paths as given;
    - a mapping ``{name: file bytes, path, PIL image or tensor}``: ids are the names, in sorted
      order (a shard of a folder sent elsewhere: set ``root`` of the result to the folder, with
      ``dataclasses.replace``, to read its images again);
    - an iterable of ``(C, H, W)`` tensors, PIL images or encoded bytes (a ``(B, C, H, W)``
      tensor is ``B`` images): ids are their indices.

    Every image is prepared by ``load_image`` (scaled to cover ``size``, center-cropped, [0, 1])
    and decoded once; ``workers`` threads decode ahead of the model. One forward pass per
    ``batch`` images reads all layers and stops after the deepest; the model is frozen and
    restored afterwards. ``normalize`` (``"imagenet"``, ``(mean, std)``) goes before the model.
    ``shard=(i, n)`` takes images ``i, i + n, ...`` (ids stay global), for ``merge``.
    ``fields`` measures each spatial layer's receptive field for ``box`` and ``crop`` (see
    ``receptive_fields``).

    Unreadable files are skipped, listed in ``skipped`` and reported in one warning. A folder
    without files, or no readable image at all (outside a shard), raises ``ValueError``.
    Memory: ``units x k`` per layer, one batch, and the list of file names.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    specs = _check_layers(layers)
    k = check_positive_int("k", k)
    batch = check_positive_int("batch", batch)
    hw = check_size("size", size)
    fields = check_bool("fields", fields)
    progress = check_bool("progress", progress)
    workers = check_int("workers", workers, 0)
    part = _check_shard(shard)
    dev = resolve_device(device)
    norm = as_normalize(normalize)
    norm = None if norm is None else norm.to(dev)
    channels = input_channels(model)
    with frozen(model, dev), ActivationCapture(model, specs, early_stop=True) as cap:
        source = _source(images, part)
        shapes, rfs = _probe(cap, hw, channels, norm, dev, fields)
        running = {s: _Running(shapes[s][0], k, dev) for s in specs}
        seen = decoded = 0
        skipped: list[tuple[ImageId, str]] = []
        keys: list[int] = []
        batch_imgs: list[Tensor] = []

        def flush() -> None:
            x = torch.stack(batch_imgs).to(dev)
            with torch.no_grad():
                acts = cap(norm(x) if norm is not None else x)
                key_t = torch.tensor(keys, dtype=torch.int64, device=dev)
                for spec in specs:
                    running[spec].update(acts[spec], key_t)
            keys.clear()
            batch_imgs.clear()

        bar = tqdm(
            total=source.total,
            unit="img",
            desc="dataset examples",
            disable=not progress,
            leave=False,
            file=sys.stderr,
        )
        try:
            stream = contextlib.closing(_loaded(source.items, hw, channels, workers))
            with stream as loaded:
                for key, ident, item, img, reason in loaded:
                    bar.update()
                    if img is None:
                        skipped.append((ident, reason or "unreadable"))
                        continue
                    decoded += isinstance(item, (str, os.PathLike, bytes))
                    seen += 1
                    keys.append(key)
                    batch_imgs.append(img)
                    if len(batch_imgs) == batch:
                        flush()
            if batch_imgs:
                flush()
        finally:
            bar.close()

    if skipped:
        first = "; ".join(f"{i}: {r}" for i, r in skipped[:3])
        more = f" (and {len(skipped) - 3} more)" if len(skipped) > 3 else ""
        warnings.warn(
            f"skipped {len(skipped)} unreadable file(s) in {source.where}: {first}{more}",
            UnreadableImageWarning,
            stacklevel=2,
        )
    if seen == 0 and shard is None:
        why = (
            f"; all {len(skipped)} file(s) were unreadable, e.g. {skipped[0][1]}" if skipped else ""
        )
        raise ValueError(f"images: no readable image in {source.where}{why}")
    id_of = _id_table(source)
    return _result(
        k, hw, channels, source.root, running, shapes, rfs, id_of, seen, decoded, skipped
    )


def _id_table(source: _Source) -> dict[int, ImageId] | None:
    """key -> id for sources whose ids are not their keys (None: the id is the key)."""
    if isinstance(source.items, list):
        return {key: ident for key, ident, _ in source.items}
    return None


def _result(
    k: int,
    hw: tuple[int, int],
    channels: int,
    root: str | None,
    running: dict[str, _Running],
    shapes: dict[str, tuple[int, ...]],
    rfs: dict[str, ReceptiveField | None],
    id_of: dict[int, ImageId] | None,
    seen: int,
    decoded: int,
    skipped: list[tuple[ImageId, str]],
) -> TopExamples:
    """Move the running states to the CPU and name their images (only the referenced ones)."""
    states = {s: (r.values.cpu(), r.keys.cpu(), r.pos.cpu()) for s, r in running.items()}
    used = torch.unique(torch.cat([keys.flatten() for _, keys, _ in states.values()]))
    images = [int(key) if id_of is None else id_of[int(key)] for key in used.tolist()]
    layers = {}
    for spec, (values, keys, flat) in states.items():
        shape = shapes[spec]
        positions = None
        if len(shape) == 3:
            positions = torch.stack([flat // shape[2], flat % shape[2]], -1)
        index = torch.searchsorted(used, keys.contiguous())
        layers[spec] = LayerExamples(spec, shape, values, index, positions, rfs[spec])
    return TopExamples(k, hw, channels, root, images, layers, seen, decoded, skipped)


# --------------------------------------------------------------------------------------------
# merging shards


def _sort_key(ident: ImageId) -> tuple[int, str | int]:
    return (0, ident) if isinstance(ident, int) else (1, ident)


def merge(*results: TopExamples) -> TopExamples:
    """Join the results of disjoint shards into what one pass over all their images gives.

    The results must come from the same model, layers, ``k``, ``size`` and folder. The outcome
    does not depend on their order: ties go to the smaller image id.
    """
    if not results:
        raise ValueError("merge needs at least one result")
    for r in results:
        if not isinstance(r, TopExamples):
            raise TypeError(f"merge takes TopExamples, got {type(r).__name__}")
    first = results[0]
    for r in results[1:]:
        for name in ("k", "size", "channels", "root"):
            if getattr(r, name) != getattr(first, name):
                raise ValueError(
                    f"cannot merge results with different {name}: {getattr(first, name)!r} and "
                    f"{getattr(r, name)!r}"
                )
        theirs = {s: (v.shape, v.field) for s, v in r.layers.items()}
        ours = {s: (v.shape, v.field) for s, v in first.layers.items()}
        if theirs != ours:
            raise ValueError(
                "cannot merge results of different layers, shapes or receptive fields: "
                f"{list(ours)} and {list(theirs)}"
            )
    kinds = {type(i) for r in results for i in r.images}
    if len(kinds) > 1:
        raise TypeError(
            "cannot merge results that name images by path with results that name them by index"
        )
    union = sorted({i for r in results for i in r.images}, key=_sort_key)
    rank = {ident: n for n, ident in enumerate(union)}
    running = {}
    for spec, lay in first.layers.items():
        values, keys, pos = [], [], []
        for r in results:
            res = r.layers[spec]
            lookup = torch.tensor([rank[i] for i in r.images], dtype=torch.int64)
            values.append(res.values)
            keys.append(lookup[res.image_index] if lookup.numel() else res.image_index)
            flat = torch.zeros_like(res.image_index)
            if res.positions is not None:
                flat = res.positions[..., 0] * lay.shape[2] + res.positions[..., 1]
            pos.append(flat)
        state = _Running(lay.units, first.k, torch.device("cpu"))
        state.values, state.keys, state.pos = _best(
            torch.cat(values, 1), torch.cat(keys, 1), torch.cat(pos, 1), first.k
        )
        running[spec] = state
    shapes = {s: v.shape for s, v in first.layers.items()}
    rfs = {s: v.field for s, v in first.layers.items()}
    skipped = sorted((s for r in results for s in r.skipped), key=lambda s: _sort_key(s[0]))
    return _result(
        first.k,
        first.size,
        first.channels,
        first.root,
        running,
        shapes,
        rfs,
        dict(enumerate(union)),
        sum(r.seen for r in results),
        sum(r.decoded for r in results),
        skipped,
    )
