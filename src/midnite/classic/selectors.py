"""The classic selectors: which neurons of a layer to maximize, as engine objectives.

A selector on a layer is an engine objective, ``selector.objective(layer)``: the weighted mean
of the neurons it selects, one number per image. ``SplitSelector(ChannelSplit(), [1])`` is
``objectives.channel(layer, 1)``, ``SplitSelector(NeuronSplit(), [783])`` class 783 of a
classifier's output, ``SimpleSelector(mask)`` the engine's ``objectives.mask``. Indices follow
Python (``-1`` is the last channel/row/column/neuron), resolved by the engine's one rule,
``checks.resolve_index``. A selection that selects nothing raises ``ValueError``, never NaN.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import Tensor

from midnite.classic.splits import (
    ChannelSplit,
    GroupSplit,
    Identity,
    IndexLike,
    LayerSplit,
    NeuronSplit,
    SizeLike,
    SpatialSplit,
    _index_entries,
    _per_image_shape,
)
from midnite.engine import objectives
from midnite.engine.checks import check_weights
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

_CACHE_SIZE = 16  # masks kept per selector: the layer size changes when the image is resized


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
