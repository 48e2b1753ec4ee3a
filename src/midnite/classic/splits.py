"""The classic splits: ways to cut a layer's activations into neurons, channels, positions.

``selectors`` turns a split and an index into an engine objective; this module holds the
splits and the argument helpers they share with the selectors.

Indices follow Python (``-1`` is the last channel/row/column/neuron), resolved by the engine's
one rule, ``checks.resolve_index``.
"""

from __future__ import annotations

import itertools
import operator
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from midnite.engine import objectives
from midnite.engine.checks import resolve_index
from midnite.engine.device import resolve_device
from midnite.engine.objectives import Objective

__all__ = [
    "ChannelSplit",
    "GroupSplit",
    "Identity",
    "LayerSplit",
    "NeuronSplit",
    "SpatialSplit",
]

IndexLike = Sequence[int] | int | Tensor
SizeLike = Sequence[int]  # torch.Size is a tuple


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
