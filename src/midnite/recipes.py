"""Render recipes: the settings ``render`` uses for what the caller leaves unset.

``for_objective(objective)`` picks ``CLASS`` when every part of the objective reads the model's
output (class visualization) and ``FEATURE`` otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from midnite._model import OUTPUT
from midnite.objectives import Objective


@dataclass(frozen=True)
class Recipe:
    """Defaults for ``render``; ``transforms`` is a factory name understood by the engine."""

    name: str
    steps: int
    lr: float
    param: str = "fourier"
    decorrelate: bool = True
    transforms: str = "standard"
    notes: str = ""
    extra: dict = field(default_factory=dict)


FEATURE = Recipe(
    name="feature",
    steps=256,
    lr=0.05,
    notes="Lucid's defaults: Fourier, decorrelated colour, pad/jitter/scale/rotate each step.",
)

CLASS = Recipe(
    name="class",
    steps=256,
    lr=0.05,
    notes="Placeholder until tuned against EfficientNet-Lite1/2 judges.",
)


def for_objective(objective: Objective) -> Recipe:
    """``CLASS`` when the objective reads only the model's output, else ``FEATURE``."""
    return CLASS if objective.layers and set(objective.layers) == {OUTPUT} else FEATURE
