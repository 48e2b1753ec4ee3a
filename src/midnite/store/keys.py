"""Names and numbers that identify work: a unit's file stem, the batch plan, the one batch seed,
and digests of weights and files. Pure functions of their arguments (no folder is read)."""

from __future__ import annotations

import hashlib
import operator
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import overload

import torch

from midnite.errors import UsageError

__all__ = [
    "batch_seed",
    "layer_folder",
    "plan_batches",
    "sha256_file",
    "unit_stem",
    "weights_digest",
]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def unit_stem(layer: str, objective: str, unit: int) -> str:
    """The file name (without suffix) of a unit: ``<layer>_<objective>_<unit:04d>``.

    Characters other than letters, digits, ``.``, ``_`` and ``-`` in the layer name become
    ``-``; the model's output (layer ``""``) is called ``output``.
    """
    safe = _UNSAFE.sub("-", layer).strip("-") or "output"
    return f"{safe}_{objective}_{unit:04d}"


def layer_folder(layer: str) -> str:
    """A layer's name as one file-name part (``unit_stem``'s spelling): the catalogue's folder
    of the layer, ``output`` for the model's output (``""``). Never ``.`` or ``..``: a name of
    dots only has them as ``-``."""
    folder = unit_stem(layer, "x", 0).rsplit("_x_", 1)[0]
    return "-" * len(folder) if set(folder) == {"."} else folder


def plan_batches(units: Iterable[int], batch: int) -> list[list[int]]:
    """Split sorted unique ``units`` into batches of units with the same ``unit // batch``.

    The plan depends only on the indices, not on what is already on disk, so batch ``k`` always
    holds units ``k*batch .. k*batch + batch - 1`` that were asked for: ``0-15`` and ``0-7``
    share their first batches, and a rerun groups the units as the first run did.

    >>> plan_batches([0, 1, 2, 3, 5, 9], 4)
    [[0, 1, 2, 3], [5], [9]]
    """
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise UsageError(f"batch must be an int >= 1, got {batch!r}")
    plan: dict[int, list[int]] = {}
    for unit in sorted(set(units)):
        plan.setdefault(unit // batch, []).append(unit)
    return list(plan.values())


def _seed_of(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


@overload
def batch_seed(seed: int, units: Iterable[int], /) -> int: ...
@overload
def batch_seed(seed: int, layer: str, view: str, units: Iterable[int], /) -> int: ...
def batch_seed(seed: int, *rest: object) -> int:
    """The 63-bit seed of one batch: a function of the run's ``seed``, ``layer``, ``view`` (the
    objective: ``channel``, ``neuron``, ``class``, ``negative``, ``diversity``) and ``units``.

    ``batch_seed(seed, layer, view, units)`` is SHA-256 of
    ``"midnite-catalogue:{seed}:{layer}:{view}:{u0,u1,...}"`` (the catalogue's derivation, so its
    bytes stay as they were), top 64 bits shifted right by one. The same batch of the same
    unit in ``midnite render`` and ``midnite catalogue`` gets the same seed once both call it so.

    ``batch_seed(seed, units)``, the render command's older derivation (``"midnite:{seed}:..."``),
    is kept until its caller moves to the four-argument form.
    """
    if len(rest) == 1:
        (units,) = rest
        text = f"midnite:{_int(seed, 'seed')}:{_units(units)}"
    elif len(rest) == 3:
        layer, view, units = rest
        if not isinstance(layer, str) or not isinstance(view, str):
            raise UsageError(
                f"batch_seed's layer and view must be strings, got {type(layer).__name__} and "
                f"{type(view).__name__}"
            )
        text = f"midnite-catalogue:{_int(seed, 'seed')}:{layer}:{view}:{_units(units)}"
    else:
        raise UsageError(
            f"batch_seed takes (seed, layer, view, units) or (seed, units), got {1 + len(rest)} "
            "arguments"
        )
    return _seed_of(text)


def _int(value: object, name: str) -> int:
    """``value`` as an int (numpy's integers too); bools and floats are refused."""
    try:
        if isinstance(value, bool):
            raise TypeError
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise UsageError(f"{name} must be an int, got {type(value).__name__}: {value!r}") from None


def _units(units: object) -> str:
    if isinstance(units, (str, bytes)) or not isinstance(units, Iterable):
        raise UsageError(
            f"units must be an iterable of ints, got {type(units).__name__}: {units!r}"
        )
    return ",".join(str(_int(u, "each unit")) for u in units)


def weights_digest(model: torch.nn.Module) -> str:
    """16 hex digits of SHA-256 over the model's state dict (names, dtypes, shapes, bytes)."""
    digest = hashlib.sha256()
    for name, value in model.state_dict().items():
        if not isinstance(value, torch.Tensor):
            digest.update(f"{name}={value!r};".encode())
            continue
        t = value.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        try:
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        except (RuntimeError, TypeError):  # a quantized or otherwise exotic tensor
            digest.update(repr(t).encode())
    return digest.hexdigest()[:16]


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
