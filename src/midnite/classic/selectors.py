"""The classic selectors: which neurons of a layer to maximize, as engine objectives.

A selector on a layer is an engine objective, ``selector.objective(layer)``: the weighted mean
of the neurons it selects, one number per image. ``SplitSelector(ChannelSplit(), [1])`` is
``objectives.channel(layer, 1)``, ``SplitSelector(NeuronSplit(), [783])`` class 783 of a
classifier's output, ``SimpleSelector(mask)`` the engine's ``objectives.mask``. Indices follow
Python (``-1`` is the last channel/row/column/neuron), resolved by the engine's one rule,
``checks.resolve_index``. A selection that selects nothing raises ``ValueError``, never NaN.
"""

from __future__ import annotations

import itertools
import math
import operator
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from midnite.engine import objectives
from midnite.engine.checks import check_weights, resolve_index
from midnite.engine.device import resolve_device
from midnite.engine.hooks import OUTPUT
from midnite.engine.objectives import Objective

__all__ = [
    "ChannelSplit",
    "GroupSplit",
    "Identity",
    "LayerSplit",
    "NeuronSelector",
    "NeuronSplit",
    "SimpleSelector",
    "SpatialSplit",
    "SplitSelector",
]

IndexLike = Sequence[int] | int | Tensor
SizeLike = Sequence[int]  # torch.Size is a tuple

_CACHE_SIZE = 16  # masks kept per selector: the layer size changes when the image is resized


# ---------------------------------------------------------------------------------------------
# argument helpers


def _per_image_shape(size: Any) -> tuple[int, ...]:
    """``size`` as a tuple of positive ints (a per-image activation shape)."""
    if isinstance(size, Tensor) or not isinstance(size, (Sequence, torch.Size)):
        raise TypeError(
            "size must be a per-image activation shape such as (C, H, W) or (N,), "
            f"got {type(size).__name__}: {size!r}"
        )
    try:
        dims = tuple(operator.index(d) for d in size)
    except TypeError as err:
        raise TypeError(f"size must contain ints, got {tuple(size)!r}") from err
    if not dims or any(d < 1 for d in dims):
        raise ValueError(
            "size must be a non-empty per-image shape of positive ints such as (C, H, W) or (N,), "
            f"got {dims!r}"
        )
    return dims


def _index_entries(index: Any) -> tuple[int, ...]:
    """``index`` as a tuple of ints; accepts a sequence, a single int, or an integer tensor."""
    if isinstance(index, Tensor):
        if index.dtype.is_floating_point or index.dtype.is_complex or index.dtype == torch.bool:
            raise TypeError(f"index tensor must hold integers, got dtype {index.dtype}")
        if index.ndim > 1:
            raise ValueError(f"index tensor must be 0-d or 1-d, got shape {tuple(index.shape)}")
        return tuple(int(v) for v in index.reshape(-1).tolist())
    if hasattr(index, "tolist") and not isinstance(index, Sequence):  # numpy arrays and scalars
        index = index.tolist()
    if isinstance(index, (str, bytes)) or not isinstance(index, Sequence):
        index = [index]
    entries = []
    for value in index:
        if isinstance(value, bool):
            raise TypeError(f"index entries must be ints, got {value!r} (bool) in {list(index)!r}")
        try:
            entries.append(operator.index(value))
        except TypeError as err:
            raise TypeError(
                f"index entries must be ints, got {value!r} ({type(value).__name__}) "
                f"in {list(index)!r}"
            ) from err
    return tuple(entries)


def _mean_per_image(t: Tensor) -> Tensor:
    """Mean over all dims but the first: (B, ...) -> (B,)."""
    return t if t.ndim == 1 else t.flatten(1).mean(1)


def _region_mask(size: tuple[int, ...], region: tuple[Any, ...], device, dtype) -> Tensor:
    mask = torch.zeros(size, device=resolve_device(device), dtype=dtype)
    mask[region] = 1
    return mask


# ---------------------------------------------------------------------------------------------
# splits

_NEURON_AXES = {1: ("neuron",), 3: ("channel", "row", "column")}  # how messages name the axes


class LayerSplit(ABC):
    """A way to cut a per-image activation ``(C, H, W)`` or ``(N,)`` into selectable parts.

    ``get_mask(index, size)`` is the mask of one part; ``get_split(size)`` all of them.
    Masks are built on ``device`` (default: the ``midnite.device`` context) in ``dtype``
    (default: torch's default dtype).
    """

    _length: int | None = None  # number of index entries, when it does not depend on the size
    _form: str = ""  # how the index reads, for error messages

    def _check_length(self, index: tuple[int, ...]) -> None:
        if self._length is not None and len(index) != self._length:
            entries = "entry" if self._length == 1 else "entries"
            raise ValueError(
                f"{self!r} needs an index of {self._length} {entries} {self._form}, "
                f"got {list(index)!r}"
            )

    @abstractmethod
    def _resolve(self, index: tuple[int, ...], size: tuple[int, ...]) -> tuple[int, ...]:
        """Check ``index`` against ``size``; return it with negative entries made positive."""

    @abstractmethod
    def _region(self, index: tuple[int, ...], size: tuple[int, ...]) -> tuple[Any, ...]:
        """What ``mask[region] = 1`` sets for a resolved ``index`` (binary splits only)."""

    @abstractmethod
    def _indices(self, size: tuple[int, ...]) -> list[tuple[int, ...]]:
        """Every index of the split for ``size``, in the order ``get_split`` returns masks."""

    @abstractmethod
    def invert(self) -> LayerSplit:
        """The complementary split (Neuron <-> Identity, Channel <-> Spatial)."""

    def _objective(self, layer: str, index: tuple[int, ...]) -> Objective | None:
        """The engine objective selecting part ``index`` of ``layer``; None where the engine
        has none (one's own splits), and the selector falls back on ``_fast_mean``/masks."""
        return None

    def _fast_mean(self, act: Tensor, index: tuple[int, ...]) -> Tensor | None:
        """Mean of the selected part of ``act`` (B, *size) by indexing, or None if unsupported."""
        region = (slice(None), *self._region(index, tuple(act.shape[1:])))
        return _mean_per_image(act[region])

    def get_mask(
        self,
        index: IndexLike,
        size: SizeLike,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        """Float mask of shape ``size`` selecting the part given by ``index``.

        Raises ValueError for an index of the wrong length or a size the split cannot cut,
        IndexError for an index out of range.
        """
        size = _per_image_shape(size)
        idx = self._resolve(_index_entries(index), size)
        return _region_mask(size, self._region(idx, size), device, dtype)

    def get_split(
        self,
        size: SizeLike,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> list[Tensor]:
        """All masks of the split for ``size`` (e.g. ``C`` masks for ``ChannelSplit``)."""
        size = _per_image_shape(size)
        return [self.get_mask(idx, size, device=device, dtype=dtype) for idx in self._indices(size)]

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(type(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class NeuronSplit(LayerSplit):
    """One neuron: index ``[c, y, x]`` for a ``(C, H, W)`` layer, ``[n]`` for an ``(N,)`` layer.

    For other shapes the index has one entry per dimension.
    """

    def _resolve(self, index, size):
        form = {1: "([n])", 3: "([c, y, x])"}.get(len(size), f"(one per dim of {size})")
        if len(index) != len(size):
            raise ValueError(
                f"{self!r} needs an index of {len(size)} "
                f"{'entry' if len(size) == 1 else 'entries'} {form} for a layer of shape "
                f"{size}, got {list(index)!r}"
            )
        axes = _NEURON_AXES.get(len(size))
        if axes is None:
            return tuple(
                resolve_index(v, n, "position", f"dimension {d} of a layer")
                for d, (v, n) in enumerate(zip(index, size, strict=True))
            )
        return tuple(resolve_index(v, n, a) for v, n, a in zip(index, size, axes, strict=True))

    def _region(self, index, size):
        return index

    def _objective(self, layer, index):
        return objectives.element(layer, index)

    def _indices(self, size):
        return list(itertools.product(*(range(n) for n in size)))

    def invert(self) -> LayerSplit:
        return Identity()


class ChannelSplit(LayerSplit):
    """One channel ``[c]``: every position of channel ``c`` (dimension 0 of the per-image shape).

    For a flat ``(N,)`` layer a channel is one element.
    """

    _length, _form = 1, "([c])"

    def _resolve(self, index, size):
        self._check_length(index)
        return (resolve_index(index[0], size[0], "channel"),)

    def _region(self, index, size):
        return index

    def _objective(self, layer, index):
        return objectives.channel(layer, index[0])

    def _indices(self, size):
        return [(c,) for c in range(size[0])]

    def invert(self) -> LayerSplit:
        return SpatialSplit()


class SpatialSplit(LayerSplit):
    """One position ``[y, x]`` across all channels; only for ``(C, H, W)`` layers."""

    _length, _form = 2, "([y, x])"

    def _resolve(self, index, size):
        if len(size) != 3:
            raise ValueError(
                f"{self!r} needs a (C, H, W) layer, got a layer of shape {size}; "
                "use NeuronSplit or ChannelSplit for flat layers"
            )
        self._check_length(index)
        return (
            resolve_index(index[0], size[1], "row"),
            resolve_index(index[1], size[2], "column"),
        )

    def _region(self, index, size):
        return (slice(None), *index)

    def _objective(self, layer, index):
        return objectives.spatial(layer, index[0], index[1])

    def _indices(self, size):
        if len(size) != 3:
            self._resolve((0, 0), size)  # raises the error for non-(C, H, W) sizes
        return list(itertools.product(range(size[1]), range(size[2])))

    def invert(self) -> LayerSplit:
        return ChannelSplit()


class Identity(LayerSplit):
    """Everything: index ``[]`` selects the whole activation."""

    _length, _form = 0, "([])"

    def _resolve(self, index, size):
        self._check_length(index)
        return ()

    def _region(self, index, size):
        return ()

    def _objective(self, layer, index):
        return objectives.mean(layer)

    def _fast_mean(self, act, index):
        return act.flatten(1).mean(1)

    def _indices(self, size):
        return [()]

    def invert(self) -> LayerSplit:
        return NeuronSplit()


class GroupSplit(LayerSplit):
    """Factorized neuron groups (as in "The Building Blocks of Interpretability").

    Group ``[g]`` is the weighted mask ``channel_factors[g][:, None, None] *
    spatial_factors[g][None]``, for a ``(C, H, W)`` layer of exactly that ``C``, ``H`` and ``W``.

    Args:
        channel_factors: non-negative weights, shape ``(G, C)``.
        spatial_factors: non-negative weights, shape ``(G, H, W)``.

    Groups are not a partition of one axis, so the split has no inverse.
    """

    _length, _form = 1, "([g])"

    def __init__(self, channel_factors: Tensor, spatial_factors: Tensor) -> None:
        channel = self._as_factors(channel_factors, "channel_factors", 2, "(G, C)")
        spatial = self._as_factors(spatial_factors, "spatial_factors", 3, "(G, H, W)")
        if channel.shape[0] != spatial.shape[0]:
            raise ValueError(
                "channel_factors and spatial_factors must have the same number of groups G, got "
                f"{tuple(channel.shape)} and {tuple(spatial.shape)}"
            )
        self.channel_factors = channel
        self.spatial_factors = spatial

    @staticmethod
    def _as_factors(value: Any, name: str, ndim: int, form: str) -> Tensor:
        try:
            t = torch.as_tensor(value).detach()
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"{name} must be a tensor of shape {form}, got {value!r}") from err
        if t.dtype.is_complex or t.dtype == torch.bool:
            raise TypeError(f"{name} must hold real numbers, got dtype {t.dtype}")
        if t.ndim != ndim or t.numel() == 0:
            raise ValueError(
                f"{name} must be a non-empty tensor of shape {form}, got shape {tuple(t.shape)}"
            )
        t = t.to(device="cpu", dtype=torch.float64 if t.dtype == torch.float64 else torch.float32)
        if not torch.isfinite(t).all():
            raise ValueError(f"{name} must be finite, got non-finite values")
        if (t < 0).any():
            raise ValueError(f"{name} must be non-negative, got minimum {t.min().item()}")
        return t.clone()

    @property
    def num_groups(self) -> int:
        """Number of groups ``G``."""
        return self.channel_factors.shape[0]

    @property
    def size(self) -> tuple[int, int, int]:
        """The per-image layer shape ``(C, H, W)`` the factors fit."""
        return (self.channel_factors.shape[1], *self.spatial_factors.shape[1:])

    def _resolve(self, index, size):
        if size != self.size:
            raise ValueError(
                f"GroupSplit factors fit a layer of shape {self.size}, got a layer of shape {size}"
            )
        self._check_length(index)
        g = resolve_index(index[0], self.num_groups, "group", owner="a GroupSplit")
        if not (self.channel_factors[g].any() and self.spatial_factors[g].any()):
            raise ValueError(
                f"GroupSplit group {g} selects nothing: its channel or spatial factors are all zero"
            )
        return (g,)

    def _region(self, index, size):
        raise NotImplementedError("GroupSplit masks are weighted, not a region")

    def _objective(self, layer, index):
        # the group's weights fit one layer shape only, so they are known (and checked) now
        return objectives.mask(layer, self.get_mask(index, self.size, device="cpu"))

    def _fast_mean(self, act, index):
        return None

    def _indices(self, size):
        return [(g,) for g in range(self.num_groups)]

    def get_mask(self, index, size, *, device=None, dtype=None):
        """Weighted mask ``channel_factors[g][:, None, None] * spatial_factors[g][None]``."""
        size = _per_image_shape(size)
        (g,) = self._resolve(_index_entries(index), size)
        dev = resolve_device(device)
        dtype = dtype or torch.get_default_dtype()
        mask = self.channel_factors[g][:, None, None] * self.spatial_factors[g][None]
        return mask.to(device=dev, dtype=dtype)

    def invert(self) -> LayerSplit:
        raise NotImplementedError(
            "GroupSplit has no inverse: its groups are weighted masks over channels and "
            "positions together, not a partition of one axis"
        )

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        c, h, w = self.size
        return f"GroupSplit({self.num_groups} groups over (C, H, W)=({c}, {h}, {w}))"


# ---------------------------------------------------------------------------------------------
# selectors


class NeuronSelector(ABC):
    """Chooses neurons of a layer; on a layer it is an engine objective.

    ``objective(layer)`` is the objective that maps the layer's activations ``(B, *size)`` to
    ``(B,)`` = ``sum(mask * act) / sum(mask)`` per image, by indexing where it can;
    ``select_mean(act)`` computes the same on one batch of activations; ``get_mask(size)`` is
    the float mask of shape ``size``, cached and shared (do not modify it in place).
    """

    def __init__(self) -> None:
        self._cache: dict[tuple[Any, ...], tuple[Tensor, Tensor]] = {}
        self._mean_objective: Objective | None = None  # select_mean's, built once

    def objective(self, layer: str = OUTPUT) -> Objective:
        """The engine objective that maximizes this selection of ``layer`` (default: the
        model's output): checked against the layer's shape by its ``validate``."""
        return _SelectedMean(self, layer)

    @abstractmethod
    def validate(self, size: SizeLike) -> None:
        """Raise ValueError/IndexError if this selector does not fit a layer of shape ``size``."""

    @abstractmethod
    def _build_mask(self, size: tuple[int, ...]) -> Tensor:
        """The (uncached, validated) mask for ``size``, on the CPU."""

    def _fast_mean(self, act: Tensor) -> Tensor | None:
        return None

    def _mean(self, act: Tensor) -> Tensor:
        """The selected mean by indexing where the selector can, else by its mask's weights."""
        fast = self._fast_mean(act)
        if fast is not None:
            return fast
        _, weights = self._entry(_per_image_shape(act.shape[1:]), act.device, act.dtype)
        return act.flatten(1) @ weights

    def _entry(self, size: tuple[int, ...], device: torch.device, dtype: torch.dtype):
        key = (size, device, dtype)
        entry = self._cache.get(key)
        if entry is None:
            self.validate(size)
            mask = self._build_mask(size).to(torch.float64)
            total = mask.sum()
            if not total > 0:  # unreachable for validated selectors; never divide by zero
                raise ValueError(f"{self!r} selects nothing in a layer of shape {size}")
            weights = (mask / total).flatten()
            entry = (
                mask.to(device=device, dtype=dtype),
                weights.to(device=device, dtype=dtype),
            )
            while len(self._cache) >= _CACHE_SIZE:
                self._cache.pop(next(iter(self._cache)), None)
            self._cache[key] = entry
        return entry

    def get_mask(
        self,
        size: SizeLike,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        """Float mask of shape ``size`` (device: the ``midnite.device`` context by default).

        Cached per (size, device, dtype): the same tensor object is returned again.
        """
        size = _per_image_shape(size)
        dev = resolve_device(device)
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
        return self._entry(size, dev, dtype or torch.get_default_dtype())[0]

    def select_mean(self, act: Tensor) -> Tensor:
        """Weighted mean of the selected activations of each image: ``objective()`` on ``act``.

        Shape:
            act: ``(B, *size)``, a batch of activations; returns ``(B,)``, differentiable.
        """
        if not isinstance(act, Tensor):
            raise TypeError(f"act must be a torch.Tensor, got {type(act).__name__}")
        if act.ndim < 2:
            raise ValueError(
                "act must be a batch of activations (B, *size) with B first, "
                f"got shape {tuple(act.shape)}"
            )
        if not (act.dtype.is_floating_point or act.dtype.is_complex):
            act = act.to(torch.get_default_dtype())
        self.validate(act.shape[1:])
        objective = getattr(self, "_mean_objective", None)
        if objective is None:
            objective = self._mean_objective = self.objective(OUTPUT)
        return objective({OUTPUT: act})

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_cache"] = {}
        state["_mean_objective"] = None
        return state


class _SelectedMean(Objective):
    """A selector with no engine counterpart (one's own split or selector) on ``layer``:
    checked by the selector's ``validate``, computed by its indexing or its mask."""

    def __init__(self, selector: NeuronSelector, layer: str) -> None:
        if not isinstance(layer, str):
            raise TypeError(
                f"layer must be a str (a dotted module name), got {type(layer).__name__}"
            )
        self.selector = selector
        self.layer = layer
        self.layers = (layer,)

    def validate(self, shapes: Any) -> None:
        self.selector.validate(shapes[self.layer])

    def forward(self, acts: Any) -> Tensor:
        return self.selector._mean(acts[self.layer])

    def __repr__(self) -> str:
        where = "" if self.layer == OUTPUT else f", layer={self.layer!r}"
        return f"selected({self.selector!r}{where})"


class SplitSelector(NeuronSelector):
    """The part ``index`` of ``split``, e.g. ``SplitSelector(ChannelSplit(), [1])``.

    Args:
        split: a ``LayerSplit`` instance such as ``NeuronSplit()``.
        index: list/tuple of ints (a single int or a 0-/1-d integer tensor also works);
            negative entries count from the end.
    """

    def __init__(self, split: LayerSplit, index: IndexLike) -> None:
        super().__init__()
        if isinstance(split, type) and issubclass(split, LayerSplit):
            raise TypeError(
                f"split must be a LayerSplit instance, got the class {split.__name__}; "
                f"write {split.__name__}()"
            )
        if not isinstance(split, LayerSplit):
            raise TypeError(
                f"split must be a LayerSplit such as ChannelSplit(), got {type(split).__name__}"
            )
        self.split = split
        self.index = _index_entries(index)
        split._check_length(self.index)
        if isinstance(split, NeuronSplit) and not self.index:
            raise ValueError(
                f"{split!r} needs an index of 3 entries ([c, y, x]) or 1 entry ([n]), got []"
            )
        self._resolved: dict[tuple[int, ...], tuple[int, ...]] = {}

    def _resolve(self, size: tuple[int, ...]) -> tuple[int, ...]:
        idx = self._resolved.get(size)
        if idx is None:
            idx = self.split._resolve(self.index, size)
            self._resolved[size] = idx
        return idx

    def validate(self, size: SizeLike) -> None:
        self._resolve(_per_image_shape(size))

    def objective(self, layer: str = OUTPUT) -> Objective:
        """The engine objective for this part of ``layer``: ``channel``, ``neuron``'s
        ``element``, ``spatial``, ``mean`` or ``mask`` (a group's weights)."""
        objective = self.split._objective(layer, self.index)
        return super().objective(layer) if objective is None else objective

    def _build_mask(self, size):
        return self.split.get_mask(self._resolve(size), size, device="cpu")

    def _fast_mean(self, act):
        idx = self._resolve(_per_image_shape(act.shape[1:]))
        return self.split._fast_mean(act, idx)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_resolved"] = {}
        return state

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.split!r}, {list(self.index)!r})"


class SimpleSelector(NeuronSelector):
    """An explicit mask: bool, or non-negative weights.

    The mask must have the layer's per-image shape; dims of extent 1 broadcast (a ``(C, 1, 1)``
    mask weights channels at any spatial size).

    Raises:
        ValueError: at construction if the mask selects nothing, is negative or not finite;
            at ``validate`` if its shape does not fit the layer's.
    """

    def __init__(self, mask: Tensor) -> None:
        super().__init__()
        self.mask = check_weights("mask", mask)

    def validate(self, size: SizeLike) -> None:
        size = _per_image_shape(size)
        shape = tuple(self.mask.shape)
        if len(shape) != len(size) or any(
            m not in (1, s) for m, s in zip(shape, size, strict=True)
        ):
            raise ValueError(
                f"mask of shape {shape} does not fit a layer of per-image shape {size} "
                "(dims must match or be 1)"
            )

    def objective(self, layer: str = OUTPUT) -> Objective:
        """The engine objective ``objectives.mask(layer, mask)``: the mask's weighted mean."""
        return objectives.mask(layer, self.mask)

    def _build_mask(self, size):
        return self.mask.expand(size).contiguous()

    def __repr__(self) -> str:
        shape = tuple(self.mask.shape)
        nonzero = int(torch.count_nonzero(self.mask))
        kind = "binary" if bool(((self.mask == 0) | (self.mask == 1)).all()) else "weighted"
        return (
            f"SimpleSelector({kind} mask of shape {shape}, {nonzero}/{math.prod(shape)} selected)"
        )
