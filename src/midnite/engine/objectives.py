"""Objectives: what a render maximizes, computed per image from the activations of named layers.

An objective maps ``{layer spec: batch activation}`` to a ``(B,)`` tensor, one value per image,
to be maximized. Objectives combine with ``+``, ``-``, ``*``/``/`` by numbers and ``sum(...)``;
a list of objectives given to ``render`` means one objective per batch image. Indices follow
Python (``channel(layer, -1)`` is the last channel) and are checked against the layer's shape
by ``validate``, before the first step, with ``midnite.engine.checks.resolve_index``.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

from midnite.engine.checks import check_int, check_weights, resolve_index
from midnite.engine.hooks import OUTPUT

Acts = Mapping[str, Tensor]


class Objective:
    """Base class. Subclasses set ``layers`` and implement ``forward(acts) -> (B,)``."""

    layers: tuple[str, ...] = ()

    def forward(self, acts: Acts) -> Tensor:
        raise NotImplementedError

    def validate(self, shapes: Mapping[str, tuple[int, ...]]) -> None:
        """Check indices against the per-image output shapes of the layers (before any step)."""

    def __call__(self, acts: Acts) -> Tensor:
        return self.forward(acts)

    # algebra ------------------------------------------------------------------------------
    def __add__(self, other: object) -> Objective:
        if isinstance(other, numbers.Real) and not isinstance(other, bool):
            return _Sum([(1.0, self)], float(other))
        if isinstance(other, Objective):
            return _Sum([(1.0, self), (1.0, other)])
        return NotImplemented

    def __radd__(self, other: object) -> Objective:
        return self.__add__(other)  # makes sum([...]) work (0 + obj)

    def __neg__(self) -> Objective:
        return _Sum([(-1.0, self)])

    def __sub__(self, other: object) -> Objective:
        if isinstance(other, Objective) or (
            isinstance(other, numbers.Real) and not isinstance(other, bool)
        ):
            return self + (-other)
        return NotImplemented

    def __rsub__(self, other: object) -> Objective:
        if isinstance(other, numbers.Real) and not isinstance(other, bool):
            return (-self) + other
        return NotImplemented

    def __mul__(self, other: object) -> Objective:
        if isinstance(other, numbers.Real) and not isinstance(other, bool):
            return _Sum([(float(other), self)])
        if isinstance(other, Objective):
            raise TypeError("objectives multiply with numbers only, got two objectives")
        return NotImplemented

    __rmul__ = __mul__

    def __truediv__(self, other: object) -> Objective:
        if isinstance(other, numbers.Real) and not isinstance(other, bool):
            if other == 0:
                raise ValueError("cannot divide an objective by 0")
            return self * (1.0 / float(other))
        return NotImplemented


def _format_weight(weight: float) -> str:
    return f"{weight:g}"


class _Sum(Objective):
    terms: list[tuple[float, Objective]]
    constant: float

    def __init__(self, terms: list[tuple[float, Objective]], constant: float = 0.0):
        flat: list[tuple[float, Objective]] = []
        for w, obj in terms:
            if isinstance(obj, _Sum):
                flat.extend((w * w2, o2) for w2, o2 in obj.terms)
                constant += w * obj.constant
            else:
                flat.append((w, obj))
        self.terms = flat
        self.constant = constant
        self.layers = tuple(dict.fromkeys(name for _, o in flat for name in o.layers))

    def forward(self, acts: Acts) -> Tensor:
        total = None
        for w, obj in self.terms:
            value = obj(acts) * w if w != 1.0 else obj(acts)
            total = value if total is None else total + value
        assert total is not None  # a _Sum always has a term
        return total + self.constant if self.constant else total

    def validate(self, shapes: Mapping[str, tuple[int, ...]]) -> None:
        for _, obj in self.terms:
            obj.validate(shapes)

    def __repr__(self) -> str:
        parts = []
        for w, obj in self.terms:
            sign = "-" if w < 0 else "+"
            mag = abs(w)
            term = repr(obj) if mag == 1.0 else f"{_format_weight(mag)} * {obj!r}"
            parts.append((sign, term))
        text = ("-" if parts[0][0] == "-" else "") + parts[0][1]
        for sign, term in parts[1:]:
            text += f" {sign} {term}"
        if self.constant:
            text += f" {'-' if self.constant < 0 else '+'} {_format_weight(abs(self.constant))}"
        return text


def _where(layer: str) -> str:
    """How messages name ``layer``."""
    return "the model's output" if layer == OUTPUT else f"layer {layer!r}"


def _needs_chw(what: str, layer: str, shape: tuple[int, ...]) -> None:
    if len(shape) != 3:
        raise ValueError(f"{what} needs a (C, H, W) layer; {_where(layer)} has shape {shape}")


class _LayerObjective(Objective):
    """An objective on a single layer."""

    def __init__(self, layer: str):
        if not isinstance(layer, str):
            raise TypeError(
                f"layer must be a str (a dotted module name), got {type(layer).__name__}"
            )
        self.layer = layer
        self.layers = (layer,)

    def _layer_repr(self) -> str:
        return repr(self.layer)


class _Neuron(_LayerObjective):
    def __init__(self, layer: str, unit: int, y: int | None, x: int | None):
        super().__init__(layer)
        if (y is None) != (x is None):
            raise ValueError(f"neuron needs both y and x or neither, got y={y!r}, x={x!r}")
        self.unit = check_int("unit", unit)
        self.y = None if y is None else check_int("y", y)
        self.x = None if x is None else check_int("x", x)

    def validate(self, shapes: Mapping[str, tuple[int, ...]]) -> None:
        shape = shapes[self.layer]
        where = _where(self.layer)
        resolve_index(self.unit, shape[0], "channel" if len(shape) > 1 else "unit", where)
        if self.y is not None:
            _needs_chw("neuron(y, x)", self.layer, shape)
            resolve_index(self.y, shape[1], "row", where)
            resolve_index(self.x, shape[2], "column", where)

    def forward(self, acts: Acts) -> Tensor:
        act = acts[self.layer]
        if act.dim() == 2:
            return act[:, self.unit]
        if self.y is None or self.x is None:  # the centre neuron, as Lucid does
            return act[:, self.unit, act.shape[-2] // 2, act.shape[-1] // 2]
        return act[:, self.unit, self.y, self.x]

    def __repr__(self) -> str:
        pos = "" if self.y is None else f", y={self.y}, x={self.x}"
        return f"neuron({self._layer_repr()}, {self.unit}{pos})"


class _Channel(_LayerObjective):
    def __init__(self, layer: str, unit: int):
        super().__init__(layer)
        self.unit = check_int("unit", unit)

    def validate(self, shapes: Mapping[str, tuple[int, ...]]) -> None:
        resolve_index(self.unit, shapes[self.layer][0], "channel", _where(self.layer))

    def forward(self, acts: Acts) -> Tensor:
        act = acts[self.layer][:, self.unit]
        return act.flatten(1).mean(1) if act.dim() > 1 else act

    def __repr__(self) -> str:
        return f"channel({self._layer_repr()}, {self.unit})"


class _Spatial(_LayerObjective):
    def __init__(self, layer: str, y: int, x: int):
        super().__init__(layer)
        self.y, self.x = check_int("y", y), check_int("x", x)

    def validate(self, shapes: Mapping[str, tuple[int, ...]]) -> None:
        shape = shapes[self.layer]
        _needs_chw("spatial", self.layer, shape)
        resolve_index(self.y, shape[1], "row", _where(self.layer))
        resolve_index(self.x, shape[2], "column", _where(self.layer))

    def forward(self, acts: Acts) -> Tensor:
        return acts[self.layer][:, :, self.y, self.x].mean(1)

    def __repr__(self) -> str:
        return f"spatial({self._layer_repr()}, y={self.y}, x={self.x})"


class _Element(_LayerObjective):
    """One activation at a full per-image index (one entry per dimension of the layer)."""

    def __init__(self, layer: str, index: Sequence[int]):
        super().__init__(layer)
        if isinstance(index, (str, bytes)) or not isinstance(index, Sequence):
            raise TypeError(
                f"index must be a sequence of ints such as (c, y, x), got "
                f"{type(index).__name__}: {index!r}"
            )
        self.index = tuple(check_int(f"index[{i}]", v) for i, v in enumerate(index))

    def validate(self, shapes: Mapping[str, tuple[int, ...]]) -> None:
        shape = shapes[self.layer]
        where = _where(self.layer)
        if len(self.index) != len(shape):
            raise ValueError(
                f"element index {list(self.index)} needs {len(shape)} entries, one per "
                f"dimension of {where}'s per-image shape {shape}"
            )
        if len(shape) == 3:
            axes = [("channel", where), ("row", where), ("column", where)]
        elif len(shape) == 1:
            axes = [("unit", where)]
        else:
            axes = [("position", f"dimension {d} of {where}") for d in range(len(shape))]
        for value, extent, (what, owner) in zip(self.index, shape, axes, strict=True):
            resolve_index(value, extent, what, owner)

    def forward(self, acts: Acts) -> Tensor:
        index: tuple[slice | int, ...] = (slice(None), *self.index)
        return acts[self.layer][index]

    def __repr__(self) -> str:
        return f"element({self._layer_repr()}, {list(self.index)})"


class _Mean(_LayerObjective):
    def forward(self, acts: Acts) -> Tensor:
        return acts[self.layer].flatten(1).mean(1)

    def __repr__(self) -> str:
        return f"mean({self._layer_repr()})"


_MASK_CACHE_SIZE = 16  # weight vectors kept per mask: the layer grows when the image is resized


class _Mask(_LayerObjective):
    """The weighted mean ``sum(w * act) / sum(w)`` per image, by one matrix-vector product."""

    def __init__(self, layer: str, weights: Tensor):
        super().__init__(layer)
        self.weights = check_weights("weights", weights)
        self._flat: dict[tuple[object, ...], Tensor] = {}

    def _check_fits(self, shape: tuple[int, ...]) -> None:
        own = tuple(self.weights.shape)
        if len(own) != len(shape) or any(w not in (1, s) for w, s in zip(own, shape, strict=True)):
            raise ValueError(
                f"weights of shape {own} do not fit {_where(self.layer)} of per-image shape "
                f"{shape} (dims must match or be 1)"
            )

    def validate(self, shapes: Mapping[str, tuple[int, ...]]) -> None:
        self._check_fits(tuple(shapes[self.layer]))

    def _flat_weights(
        self, shape: tuple[int, ...], device: torch.device, dtype: torch.dtype
    ) -> Tensor:
        """``w / sum(w)`` expanded to ``shape`` and flattened: built once per shape and device."""
        key = (shape, device, dtype)
        flat = self._flat.get(key)
        if flat is None:
            self._check_fits(shape)
            full = self.weights.expand(shape).contiguous().to(torch.float64)
            total = full.sum()
            if not total > 0:  # weights too small for float64; never divide by zero
                raise ValueError(f"{self!r} selects nothing in a layer of shape {shape}")
            flat = (full / total).flatten().to(device=device, dtype=dtype)
            while len(self._flat) >= _MASK_CACHE_SIZE:
                self._flat.pop(next(iter(self._flat)))
            self._flat[key] = flat
        return flat

    def forward(self, acts: Acts) -> Tensor:
        act = acts[self.layer]
        return act.flatten(1) @ self._flat_weights(tuple(act.shape[1:]), act.device, act.dtype)

    def __getstate__(self) -> dict[str, object]:
        state = self.__dict__.copy()
        state["_flat"] = {}
        return state

    def __repr__(self) -> str:
        return f"mask({self._layer_repr()}, <weights of shape {tuple(self.weights.shape)}>)"


class _DeepDream(_LayerObjective):
    def forward(self, acts: Acts) -> Tensor:
        return acts[self.layer].flatten(1).square().mean(1)

    def __repr__(self) -> str:
        return f"deepdream({self._layer_repr()})"


class _Direction(_LayerObjective):
    def __init__(self, layer: str, vector: Tensor, cosine_power: float):
        super().__init__(layer)
        # detached: a vector cut from a weight (fc.weight[k]) must not tie every step's graph
        # to it (a second backward would fail) nor put gradients into the user's model
        vector = torch.as_tensor(vector).detach().to(torch.float32).flatten()
        if vector.numel() == 0 or not torch.isfinite(vector).all() or vector.norm() == 0:
            raise ValueError("direction needs a finite, non-zero vector with one value per channel")
        self.vector = vector / vector.norm()
        self.cosine_power = cosine_power

    def validate(self, shapes: Mapping[str, tuple[int, ...]]) -> None:
        channels = shapes[self.layer][0]
        if self.vector.numel() != channels:
            raise ValueError(
                f"direction vector has {self.vector.numel()} values, expected one per channel "
                f"of {self.layer!r} ({channels})"
            )

    def forward(self, acts: Acts) -> Tensor:
        act = acts[self.layer]
        vec = self.vector.to(act.device, act.dtype)
        shape = (1, -1) + (1,) * (act.dim() - 2)
        dot = (act * vec.view(shape)).sum(1)
        if self.cosine_power:
            cos = dot / act.norm(dim=1).clamp_min(1e-8)
            dot = dot * cos.clamp_min(1e-2) ** self.cosine_power
        return dot.flatten(1).mean(1) if dot.dim() > 1 else dot

    def __repr__(self) -> str:
        return f"direction({self._layer_repr()}, <{self.vector.numel()} values>)"


class _Diversity(_LayerObjective):
    """Minus each image's mean cosine similarity of its Gram matrix to the others'."""

    def validate(self, shapes: Mapping[str, tuple[int, ...]]) -> None:
        shape = shapes[self.layer]
        if len(shape) < 2:
            raise ValueError(
                f"diversity needs a layer with channels and positions (C, H, W); "
                f"{self.layer!r} has shape {shape}"
            )

    def forward(self, acts: Acts) -> Tensor:
        act = acts[self.layer]
        b = act.shape[0]
        if b < 2:
            raise ValueError(f"diversity needs a batch of at least 2 images, got {b}")
        flat = act.flatten(2)
        gram = torch.bmm(flat, flat.transpose(1, 2)).flatten(1)
        gram = torch.nn.functional.normalize(gram, dim=1)
        sim = gram @ gram.T
        off = sim.sum(1) - sim.diagonal()
        return -off / (b - 1)

    def __repr__(self) -> str:
        return f"diversity({self._layer_repr()})"


class _Custom(_LayerObjective):
    def __init__(self, layer: str, fn: Callable[[Tensor], Tensor], name: str):
        super().__init__(layer)
        self.fn, self.name = fn, name

    def forward(self, acts: Acts) -> Tensor:
        value = self.fn(acts[self.layer])
        if not isinstance(value, Tensor):
            raise TypeError(
                f"objective {self.name!r} must return a tensor of one value per image, shape "
                f"({acts[self.layer].shape[0]},), got {type(value).__name__}"
            )
        if value.dim() != 1 or value.shape[0] != acts[self.layer].shape[0]:
            raise ValueError(
                f"objective {self.name!r} must return one value per image, shape "
                f"({acts[self.layer].shape[0]},), got {tuple(value.shape)}"
            )
        return value

    def __repr__(self) -> str:
        return f"{self.name}({self._layer_repr()})"


class PerImage(Objective):
    """One objective per batch image: image ``k`` is scored by ``objectives[k]`` alone."""

    def __init__(self, objectives: Sequence[Objective]):
        objectives = list(objectives)
        if not objectives:
            raise ValueError("PerImage needs at least one objective, got an empty list")
        for i, obj in enumerate(objectives):
            if not isinstance(obj, Objective):
                raise TypeError(f"objective {i} must be an Objective, got {type(obj).__name__}")
        self.objectives = objectives
        self.layers = tuple(dict.fromkeys(n for o in objectives for n in o.layers))

    def __len__(self) -> int:
        return len(self.objectives)

    def validate(self, shapes: Mapping[str, tuple[int, ...]]) -> None:
        for obj in self.objectives:
            obj.validate(shapes)

    def forward(self, acts: Acts) -> Tensor:
        batch = next(iter(acts.values())).shape[0]
        if batch != len(self.objectives):
            raise ValueError(
                f"{len(self.objectives)} per-image objectives need a batch of "
                f"{len(self.objectives)} images, got {batch}"
            )
        values = [
            obj({k: v[i : i + 1] for k, v in acts.items()}) for i, obj in enumerate(self.objectives)
        ]
        return torch.cat(values)

    def __repr__(self) -> str:
        return f"PerImage([{', '.join(map(repr, self.objectives))}])"


# public constructors ----------------------------------------------------------------------


def neuron(layer: str, unit: int, y: int | None = None, x: int | None = None) -> Objective:
    """One neuron: channel ``unit`` at ``(y, x)`` (default: the centre), or unit of a flat layer.

    Negative ``unit``, ``y`` and ``x`` count from the end.
    """
    return _Neuron(layer, unit, y, x)


def channel(layer: str, unit: int) -> Objective:
    """The mean of channel ``unit`` over all positions (a flat layer: that unit); ``-1`` is
    the last channel."""
    return _Channel(layer, unit)


def spatial(layer: str, y: int, x: int) -> Objective:
    """The mean over all channels at position ``(y, x)``; negative ones count from the end."""
    return _Spatial(layer, y, x)


def element(layer: str, index: Sequence[int]) -> Objective:
    """The one activation at ``index``, one entry per dimension of the layer's per-image shape:
    ``(c, y, x)`` for a ``(C, H, W)`` layer, ``(n,)`` for a flat one."""
    return _Element(layer, index)


def mean(layer: str) -> Objective:
    """The mean of the whole layer's activation."""
    return _Mean(layer)


def mask(layer: str, weights: Tensor) -> Objective:
    """The weighted mean ``sum(weights * act) / sum(weights)`` of the layer's activation.

    ``weights``: bool or non-negative numbers, not all zero, of the layer's per-image shape;
    dimensions of extent 1 broadcast (a ``(C, 1, 1)`` mask weights channels at any size). The
    normalized weights are built once per layer shape, device and dtype, not every step.
    """
    return _Mask(layer, weights)


def deepdream(layer: str) -> Objective:
    """The mean squared activation of the whole layer (DeepDream)."""
    return _DeepDream(layer)


def class_logit(unit: int, layer: str = OUTPUT) -> Objective:
    """Class ``unit`` of a classifier's output (logits, or probabilities after a softmax)."""
    return _Neuron(layer, unit, None, None)


def direction(layer: str, vector: Tensor, cosine_power: float = 0.0) -> Objective:
    """The mean over positions of the dot product with ``vector`` (one value per channel).

    ``cosine_power > 0`` weights the dot product by the cosine to the power (Olah et al.'s
    "direction_neuron"-style tweak), favouring images that point along the direction.
    """
    return _Direction(layer, vector, cosine_power)


def diversity(layer: str) -> Objective:
    """Rewards images of a batch whose Gram matrices at ``layer`` differ (Lucid's diversity)."""
    return _Diversity(layer)


def custom(layer: str, fn: Callable[[Tensor], Tensor], name: str = "custom") -> Objective:
    """Any ``fn(batch activation) -> (B,)`` on ``layer``, to be maximized."""
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    return _Custom(layer, fn, name)


def as_objective(obj: object) -> Objective:
    """An Objective as is; a list or tuple of them as one objective per batch image."""
    if isinstance(obj, Objective):
        return obj
    if isinstance(obj, (list, tuple)):
        return PerImage(obj)
    raise TypeError(
        "expected an Objective (e.g. midnite.objectives.channel('_blocks.8', 3)) or a list of "
        f"them, got {type(obj).__name__}"
    )
