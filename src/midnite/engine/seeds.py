"""The random sources of a render: one seed gives one start image and one series of per-step draws.

``generators(seed, device)``: a CPU generator for the start image (the same on any device) and
one on the render's device for the per-step transforms.
"""

from __future__ import annotations

from typing import NamedTuple, cast

import torch

from midnite.engine.config import _check_seed

__all__ = ["Generators", "generators", "make_generator"]


def make_generator(seed: int, device: torch.device) -> torch.Generator:
    """A generator on ``device`` seeded with ``seed``, an int in [0, 2**63)."""
    if isinstance(seed, torch.Generator) or seed is None:
        raise TypeError(f"seed must be an int in [0, 2**63), got {type(seed).__name__}")
    return _seeded(_check_seed(seed), device)  # type: ignore[arg-type]


def _seeded(seed: int, device: torch.device) -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


class Generators(NamedTuple):
    """The random sources of one render: its seed, and a generator for each kind of draw."""

    seed: int
    init: torch.Generator  # on the CPU: one seed starts from one image on any device
    step: torch.Generator  # on the render's device: per-step transforms


def generators(seed: int | torch.Generator | None, device: torch.device) -> Generators:
    """The generators of a render seeded with ``seed`` (None: a fresh random seed).

    A generator given as ``seed`` is used for the per-step draws as is; the start image comes
    from a CPU generator seeded with its initial seed.
    """
    if isinstance(seed, torch.Generator):  # torch seeds may reach 2**64 - 1: taken as they are
        value = seed.initial_seed()
        return Generators(value, _seeded(value, torch.device("cpu")), seed)
    value = cast(int, _check_seed(seed))  # None: a fresh random seed
    return Generators(value, _seeded(value, torch.device("cpu")), _seeded(value, device))
