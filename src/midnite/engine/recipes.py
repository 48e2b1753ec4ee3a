"""Render recipes: the values ``RenderConfig.resolve`` (so ``render``) fills in where unset.

``for_objective(objective)`` picks ``CLASS`` when every part of the objective reads the model's
output (class visualization) and ``FEATURE`` otherwise. ``FEATURE`` is Lucid's defaults.
``CLASS`` adds a stronger per-step stack (``transforms.class_transforms``: wide zoom, rotation
and shift) and a larger step, so that a class image made on one model is classified as that
class by others (transferability, ``benchmarks/quality.py``); what it cannot promise: a
photograph-like image, or transfer to models trained very differently from the one rendered.
"""

from __future__ import annotations

from dataclasses import dataclass

from midnite.engine.hooks import OUTPUT
from midnite.engine.objectives import Objective


@dataclass(frozen=True)
class Recipe:
    """Defaults for ``RenderConfig.resolve``; ``transforms`` is a name in ``transforms.STACKS``."""

    name: str
    steps: int
    lr: float
    param: str = "fourier"
    decorrelate: bool = True
    transforms: str = "standard"
    notes: str = ""


FEATURE = Recipe(
    name="feature",
    steps=256,
    lr=0.05,
    notes="Lucid's defaults: Fourier, decorrelated colour, pad/jitter/scale/rotate each step.",
)

CLASS = Recipe(
    name="class",
    steps=256,
    lr=0.08,
    transforms="class",
    notes=(
        "Class visualization that other models recognize: Fourier, decorrelated colour, 256 Adam "
        "steps at lr 0.08 on the class logit, and the 'class' per-step stack (random shift "
        "+-32 px, rotation +-30 deg, zoom 0.6-2x in one resampling; one forward per image). "
        "Tuned on EfficientNet-Lite0 for ten ImageNet classes fixed beforehand and judged by "
        "Lite1 and Lite2 (benchmarks/quality.py; results in benchmarks/RESULTS.md)."
    ),
)


def for_objective(objective: Objective) -> Recipe:
    """``CLASS`` when the objective reads only the model's output, else ``FEATURE``."""
    return CLASS if objective.layers and set(objective.layers) == {OUTPUT} else FEATURE
