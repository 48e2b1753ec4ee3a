"""Top examples: the K images that excite each unit most, where in them, and the crop there.

``top_examples(model, layers, images, k)`` makes one streaming pass: each image is loaded once
(``midnite.images``), all layers are read from one forward pass per batch, and the state is a
running top K per unit (``units x k`` values, never all activations). ``merge`` joins shards
into the single pass's result. Nothing is written.

A unit is a channel: its score on an image is the maximum of its activation map over positions
(for a flat ``(B, C)`` layer, the value itself). Ties go to the smaller image id, so the result
does not depend on the order of images, batches or shards.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from midnite.analysis.fields import Box, ReceptiveField, check_layers, probe_layers
from midnite.analysis.fields import receptive_fields as receptive_fields
from midnite.analysis.stream import ImageId, Source, check_shard, image_source, loaded, placed
from midnite.engine.checks import (
    check_bool,
    check_int,
    check_positive_int,
    check_size,
    resolve_index,
)
from midnite.engine.config import check_model_dtype
from midnite.engine.hooks import ActivationCapture, frozen, input_channels
from midnite.engine.normalize import Normalize
from midnite.errors import UsageError
from midnite.images import (
    UnreadableImageError,
    UnreadableImageWarning,
    describe_skipped,
    list_images,
    load,
)

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


def load_image(source: object, size: int | tuple[int, int] = 224, channels: int = 3) -> Tensor:
    """An image as [0, 1] floats of ``size``: scaled to just cover it, then centre-cropped.

    ``midnite.images.load(source, size=size, channels=channels)``: the loader of the pass
    (looked up here at call time, so the pass and ``TopExamples.image`` share it).

    Shape:
        output ``(channels, H, W)`` with ``(H, W) = size`` (an int means a square).
    """
    return load(source, size=size, channels=channels)


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
            raise UsageError(
                f"layer {layer!r} is flat (output {res.shape}): its units have no spatial map, "
                "so no position and no crop; use .image() for the whole image"
            )
        if res.field is None:
            raise UsageError(
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
                raise UsageError(
                    f"image {ident} was given as a tensor or PIL image, which is not kept; pass "
                    "it again as image=..."
                )
            image = Path(self.root) / ident if self.root is not None else Path(ident)
        return load_image(image, self.size, self.channels)

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
# the pass


@dataclass
class _Pass:
    """What the stream of one pass gave: images through the model, decoded, and skipped."""

    seen: int = 0
    decoded: int = 0
    skipped: list[tuple[ImageId, str]] = dataclasses.field(default_factory=list)


def _stream(
    cap: ActivationCapture,
    source: Source,
    running: dict[str, _Running],
    settings: tuple[tuple[int, int], int, int, int, Normalize | None, torch.device, bool],
) -> _Pass:
    """Load every item once, run the model once per ``batch`` images, fold in the scores."""
    hw, channels, batch, workers, norm, dev, progress = settings
    done = _Pass(skipped=list(source.skipped))
    keys: list[int] = []
    batch_imgs: list[Tensor] = []

    def flush() -> None:
        x = torch.stack(batch_imgs).to(dev)
        with torch.no_grad():
            acts = cap(norm(x) if norm is not None else x)
            key_t = torch.tensor(keys, dtype=torch.int64, device=dev)
            for spec, state in running.items():
                state.update(acts[spec], key_t)
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
        stream = loaded(source.items, lambda item: load_image(item, hw, channels), workers)
        with contextlib.closing(stream) as items:
            for key, ident, item, img, reason in items:
                bar.update()
                if img is None:
                    done.skipped.append((ident, reason or "unreadable"))
                    continue
                done.decoded += isinstance(item, (str, os.PathLike, bytes))
                done.seen += 1
                keys.append(key)
                batch_imgs.append(img)
                if len(batch_imgs) == batch:
                    flush()
        if batch_imgs:
            flush()
    finally:
        bar.close()
    return done


def _report(done: _Pass, source: Source, whole: bool) -> None:
    """Warn once about the skipped entries (one per line); refuse a pass that saw no image."""
    skipped = sorted(done.skipped, key=lambda s: _sort_key(s[0]))
    if skipped:
        warnings.warn(
            f"skipped {len(skipped)} unreadable file(s) in {source.where}:\n"
            + describe_skipped(skipped),
            UnreadableImageWarning,
            stacklevel=3,
        )
    if done.seen == 0 and whole:
        why = (
            f"; all {len(skipped)} file(s) were unreadable, e.g. {skipped[0][1]}" if skipped else ""
        )
        raise UsageError(f"images: no readable image in {source.where}{why}")


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
    exclude: Iterable[object] = (),
) -> TopExamples:
    """For every unit (channel) of ``layers``, the ``k`` images with the highest score.

    A unit's score on an image is its activation map's maximum (for a ``(B, C)`` layer, the
    value); ``TopExamples`` holds the scores, image ids and grid positions of each unit's top
    ``k``, and cuts the crop of its receptive field (``crop``).

    ``images`` is one of:

    - a folder: walked recursively in sorted order by ``midnite.images.scan_folder`` (regular
      files only; ``exclude`` folders, such as the output folder, are not walked), JPEG and PNG
      by content; ids are the paths relative to it;
    - a list of image files: ids are the paths as given;
    - a mapping ``{name: file bytes, path, PIL image or tensor}``: ids are the names, in sorted
      order (a shard of a folder sent elsewhere: set ``root`` of the result to the folder, with
      ``dataclasses.replace``, to read its images again);
    - an iterable of images (tensors, arrays, PIL images or encoded bytes; a ``(B, C, H, W)``
      tensor is ``B`` images): ids are their indices.

    Every image is prepared by ``load_image`` (``midnite.images.load``: scaled to cover
    ``size``, centre-cropped, [0, 1]) and decoded once; ``workers`` threads decode ahead of the
    model. One forward pass per ``batch`` images reads all layers and stops after the deepest;
    the model is frozen and restored afterwards. ``normalize`` (``"imagenet"``, ``(mean,
    std)``) goes before the model. ``shard=(i, n)`` takes images ``i, i + n, ...`` (ids stay
    global), for ``merge``. ``fields`` measures each spatial layer's receptive field for
    ``box`` and ``crop`` (see ``receptive_fields``).

    Unreadable files (and entries the walk skips, and images holding NaN) are skipped, listed
    in ``skipped`` and reported in one warning, one per line. A folder without files, or no
    readable image at all (outside a shard), raises ``UsageError``. Memory: ``units x k`` per
    layer, one batch, and the list of file names.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_model_dtype(model)  # float32 images go in: a half model is named before any pass
    specs = check_layers(layers)
    k = check_positive_int("k", k)
    batch = check_positive_int("batch", batch)
    hw = check_size("size", size)
    fields = check_bool("fields", fields)
    progress = check_bool("progress", progress)
    workers = check_int("workers", workers, 0)
    part = check_shard(shard)
    dev, norm = placed(device, normalize)
    channels = input_channels(model)
    with frozen(model, dev), ActivationCapture(model, specs, early_stop=True) as cap:
        source = image_source(images, part, exclude)
        shapes, rfs = probe_layers(cap, hw, channels, norm, dev, fields)
        running = {s: _Running(shapes[s][0], k, dev) for s in specs}
        done = _stream(cap, source, running, (hw, channels, batch, workers, norm, dev, progress))
    _report(done, source, shard is None)
    return _result(k, hw, channels, source.root, running, shapes, rfs, source.id_table(), done)


def _result(
    k: int,
    hw: tuple[int, int],
    channels: int,
    root: str | None,
    running: dict[str, _Running],
    shapes: dict[str, tuple[int, ...]],
    rfs: dict[str, ReceptiveField | None],
    id_of: dict[int, ImageId] | None,
    done: _Pass,
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
    skipped = sorted(done.skipped, key=lambda s: _sort_key(s[0]))
    return TopExamples(k, hw, channels, root, images, layers, done.seen, done.decoded, skipped)


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
        raise UsageError("merge needs at least one result")
    for r in results:
        if not isinstance(r, TopExamples):
            raise TypeError(f"merge takes TopExamples, got {type(r).__name__}")
    first = results[0]
    for r in results[1:]:
        for name in ("k", "size", "channels", "root"):
            if getattr(r, name) != getattr(first, name):
                raise UsageError(
                    f"cannot merge results with different {name}: {getattr(first, name)!r} and "
                    f"{getattr(r, name)!r}"
                )
        theirs = {s: (v.shape, v.field) for s, v in r.layers.items()}
        ours = {s: (v.shape, v.field) for s, v in first.layers.items()}
        if theirs != ours:
            raise UsageError(
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
        _Pass(sum(r.seen for r in results), sum(r.decoded for r in results), skipped),
    )
