"""``steps="auto"``: a catalogue's steps per layer, from a schedule measured on EfficientNet-Lite0.

Contract: ``layer_steps(model, layer)`` is the steps a feature-recipe render of ``layer`` gets
under ``steps="auto"``: ``steps_at(relative_depth(model, layer))``, a piecewise-linear schedule
over the layer's relative depth in its model (``SCHEDULE``, measured on Lite0's block outputs;
``LITE0`` holds the measurement), rounded up to a multiple of 16 and clamped to [32, 256].
Any other recipe (class, natural, transformer) keeps its own steps: the schedule was measured
with the feature recipe only. Pure: the same model and layer give the same steps everywhere.
"""

from __future__ import annotations

import bisect
import math

from torch import nn

from midnite.engine import RenderConfig
from midnite.engine.config import check_steps
from midnite.engine.recipes import FEATURE
from midnite.errors import UsageError

__all__ = [
    "AUTO",
    "LITE0",
    "MARGIN",
    "MAX_STEPS",
    "MIN_STEPS",
    "SCHEDULE",
    "auto_applies",
    "fixed_steps",
    "layer_steps",
    "relative_depth",
    "steps_at",
]

AUTO = "auto"
MIN_STEPS, MAX_STEPS, ROUND = 32, 256, 16

MARGIN = 16  # steps added to each measured layer's worst: one snapshot interval

LITE0: dict[str, tuple[float, int]] = {
    "_blocks.0": (7 / 118, 224),
    "_blocks.2": (21 / 118, 176),
    "_blocks.4": (35 / 118, 176),
    "_blocks.6": (49 / 118, 208),
    "_blocks.8": (63 / 118, 160),
    "_blocks.12": (91 / 118, 192),
    "_blocks.15": (112 / 118, 240),
}
"""Lite0's block outputs measured (``benchmarks/steps.py measure``, 2026-12-03: 7 of the 16
layers, seed 0, the catalogue's first channel batch; units 0-3 fitted, 4-7 held out): relative
depth (leaf modules, of 118) and the first multiple of 16 steps at which every fitted unit's
objective on its image (no per-step transforms) reached 95% of its 256-step value. Not
monotone in depth: the first block's channels keep rising to the end (median 81% of the
256-step value at 128 steps), the middle ones level off soonest (91-93%). With the measured
steps alone the held-out units' worst was 0.911 (``_blocks.2``; median 0.971), so the
schedule adds ``MARGIN``; with it, held out: median 0.979, worst 0.938 (``_blocks.2``; 2 of
28 below 0.95). The negative and diversity views at these steps (``steps.py views``, 56 images
each): median 0.979 and 0.974, worst 0.944 and 0.936; neither levels off sooner."""

SCHEDULE: tuple[tuple[float, int], ...] = tuple(
    sorted((depth, min(MAX_STEPS, steps + MARGIN)) for depth, steps in LITE0.values())
)
"""``(relative depth, steps)`` knots in increasing depth (``LITE0``'s steps + ``MARGIN``);
between knots a straight line, before the first its steps, after the last its steps (rounded
up to 16, clamped to [32, 256])."""


def relative_depth(model: nn.Module, layer: str) -> float:
    """Where ``layer`` ends in ``model``, in (0, 1]: the position of its last leaf module among
    the model's leaf modules in registration order (``named_modules``), over their count; the
    output ``""`` and a leaf-less layer are 1.0 where they end the model.

    Registration order is the forward order of the block-structured networks a catalogue's
    default layers come from (EfficientNet, ResNet, ViT blocks)."""
    if not isinstance(layer, str):
        raise TypeError(f"layer must be a layer name (str), got {type(layer).__name__}")
    leaves = [name for name, mod in model.named_modules() if next(mod.children(), None) is None]
    if layer == "" or not leaves:
        return 1.0
    prefix = layer + "."
    mine = [i for i, name in enumerate(leaves) if name == layer or name.startswith(prefix)]
    if not mine:
        raise ValueError(
            f"layer {layer!r} is no module of the model; expected a name of "
            "model.named_modules() (see 'midnite layers MODEL')"
        )
    return (mine[-1] + 1) / len(leaves)


def steps_at(depth: float) -> int:
    """The schedule's steps at relative ``depth`` (0-1): a line between ``SCHEDULE``'s knots,
    rounded up to a multiple of 16, clamped to [32, 256]."""
    if not isinstance(depth, (int, float)) or not 0.0 <= depth <= 1.0:
        raise ValueError(f"depth must be a number in [0, 1], got {depth!r}")
    depths = [d for d, _ in SCHEDULE]
    i = bisect.bisect_left(depths, depth)
    if i == 0:
        raw = float(SCHEDULE[0][1])
    elif i == len(SCHEDULE):
        raw = float(SCHEDULE[-1][1])
    else:
        (d0, s0), (d1, s1) = SCHEDULE[i - 1], SCHEDULE[i]
        raw = s0 + (depth - d0) / (d1 - d0) * (s1 - s0)
    steps = ROUND * math.ceil(raw / ROUND - 1e-9)
    return min(MAX_STEPS, max(MIN_STEPS, steps))


def layer_steps(model: nn.Module, layer: str) -> int:
    """``steps="auto"``'s steps for a feature-recipe render of ``layer`` of ``model``."""
    return steps_at(relative_depth(model, layer))


def auto_applies(config: RenderConfig) -> bool:
    """Whether ``config`` renders as the schedule was measured: the feature recipe with its
    own parameterization and step size, from noise (no init). Other configs keep their steps."""
    return (
        config.recipe == FEATURE
        and config.param == FEATURE.param
        and config.lr == FEATURE.lr
        and config.init is None
    )


def fixed_steps(steps: object) -> int | None:
    """A plan's ``steps`` setting checked: the int asked for, or None for the recipe's (None)
    and per layer (``"auto"``); anything else a one-line :class:`UsageError` naming what was
    expected."""
    if steps is None or steps == AUTO:
        return None
    if isinstance(steps, str):
        raise UsageError(f"steps must be a positive int or 'auto', got {steps!r}")
    try:
        return check_steps("steps", steps)
    except (TypeError, ValueError) as err:
        raise UsageError(f"{err} (or 'auto': steps per layer)") from None
