"""Render recipes: the values ``RenderConfig.resolve`` (so ``render``) fills in where unset.

``for_objective(objective)`` picks ``CLASS`` when every part of the objective reads the model's
output (class visualization) and ``FEATURE`` otherwise. ``FEATURE`` is Lucid's defaults.
``CLASS`` adds a stronger per-step stack (``transforms.class_transforms``: wide zoom, rotation
and shift) and a larger step, so that a class image made on one model is classified as that
class by others (transferability, ``benchmarks/quality.py``); what it cannot promise: a
photograph-like image, or transfer to models trained very differently from the one rendered.
``TRANSFORMER`` is for feature objectives on vision transformers; ``for_model(model, objective)``
picks it when the objective reads a token layer (``midnite.engine.tokens``). ``NATURAL`` is
MACO (``param="maco"``: natural images' Fourier magnitude, trained phase, random crops of a
larger canvas), chosen by name only: ``render(..., recipe="natural")``.

Every recipe is in ``RECIPES`` by name; ``get(name)`` looks one up (an unknown name is an error
that lists them). A recipe that renders a canvas holds its ``settings.Crops``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from midnite.engine.hooks import OUTPUT, parse_layer
from midnite.engine.objectives import Objective, as_objective
from midnite.engine.settings import Crops, MacoColour
from midnite.engine.tokens import TokenReader

MACO_CROPS = Crops()
"""What ``param="maco"`` gets under a recipe without crops of its own (``NATURAL`` has its
own): on a canvas 1.25x the input (``Recipe.canvas``), 4 boxes of 0.5-1.0 of its side per
image and step, noise 0.05. MACO's own (a 1280 px canvas, 6 boxes of 0.20-0.25, 1000 steps)
costs far more than a 2-core CPU gives in seconds, and its canvas is mostly unseen at the
model's input size."""


@dataclass(frozen=True)
class Recipe:
    """Defaults for ``RenderConfig.resolve``; ``transforms`` is a name in ``transforms.STACKS``
    or None; ``crops`` the random crops of a canvas (None: the image is the model's input),
    ``canvas`` the canvas side over the model's input side where crops are used without a
    canvas of their own, and ``colour`` what ``param="maco"`` renders get (None: the template's
    own)."""

    name: str
    steps: int
    lr: float
    param: str = "fourier"
    decorrelate: bool = True
    transforms: str | None = "standard"
    crops: Crops | None = field(default=None)
    canvas: float = 1.25
    colour: MacoColour | None = None
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


TRANSFORMER = Recipe(
    name="transformer",
    steps=256,
    lr=0.05,
    param="pixel",
    transforms="patch",
    notes=(
        "Vision transformers: pixels with decorrelated colour, and the 'patch' per-step stack "
        "(jitter by whole 16 px patches; the size is kept, so a fixed token grid takes it; for "
        "other patches pass transforms=transforms.patch_transforms(p)). On "
        "known_answer.grating_vit (48 and 64 px, 256 steps, seeds 0-2) pixels recover the "
        "planted grating at 0.96-1.0 with no per-step transforms, whole-patch jitter or 2 px "
        "shifts, where the Fourier parameterization stalls at under half the unit's response "
        "to its pattern (recovery 0.08-0.41; chance 0.02-0.03); the 'class' stack's wide zoom "
        "and rotation lose it with either (0.08-0.54)."
    ),
)


NATURAL_CROPS = Crops(count=2)
"""The natural recipe's crops: 2 boxes of 0.5-1.0 of a 1.25x canvas per image and step (4 before
issue #22: the same transfer within one class of ten, at half the cost per step)."""

NATURAL_COLOUR = MacoColour(saturation=1.75, mean=True)
"""The natural recipe's colour: chroma 1.75x the template's and a trained mean colour (issue #22).
Ten classes at seeds 0 and 1: colourfulness 57.6 and 59.7 at 224 px against the photos' 66.2
and the template's own 32.8 and 33.0; top-1 (Lite0/1/2) 10/9/10 and 10/10/9 against 10/9/8 and
10/9/9; slope +0.07/+0.09 against +0.03/+0.07, HF 1.31/1.39x against 1.27/1.29x, TV 1.28/1.27x
against 1.22x. Chroma 2.0 reached 64-67 but lost a class from one judge's top 5."""

NATURAL = Recipe(
    name="natural",
    steps=128,
    lr=0.1,
    param="maco",
    transforms="class",
    crops=NATURAL_CROPS,
    colour=NATURAL_COLOUR,
    notes=(
        "Natural-looking class and deep-channel images (MACO, Fel et al. 2023): the Fourier "
        "magnitude of photographs, only the phase trained (128 Adam steps at lr 0.1), on a "
        "canvas 1.25x the model's input; each step the model sees 2 random boxes of 0.5-1.0 of "
        "the canvas side per image, resized to its input, with N(0, 0.05) noise, then the "
        "'class' per-step stack on each box; the template's chroma 1.75x and a trained mean "
        "colour (NATURAL_COLOUR). Issue #22 cut it from 256 steps and 4 boxes (4x the cost) "
        "and added the colour, measured on EfficientNet-Lite0 class logits judged by Lite1 and "
        "Lite2 at 240/260 px (benchmarks/quality.py, ten classes; benchmarks/RESULTS.md). "
        "Top-1 Lite0/Lite1/Lite2 10/10/9 before (seed 0), 10/9/10 and 10/10/9 now (seeds 0 "
        "and 1); top-5 10/10/10. Naturalness at 224 px against 25 crops of five photographs "
        "(metrics.naturalness(size=224)): slope difference +0.13 before, +0.07 and +0.09 now; "
        "high-frequency energy 1.72x before, 1.31x and 1.39x now; total variation 1.20x, 1.28x "
        "and 1.27x; colourfulness 33 before, 58 and 60 now (photos 66). decorrelate=False "
        "gives colourfulness 122, slope +0.26 and ratios 1.9x: not taken. "
        "What it cannot promise: transfer as good on classes it was not tuned on (ten other "
        "classes: Lite1/Lite2 top-1 7/7 and 7/6 at seeds 0 and 1, where the class recipe has "
        "9/9; cars fail), or a sharp object on a plain background (the canvas is textured all "
        "over)."
    ),
)

RECIPES: dict[str, Recipe] = {r.name: r for r in (FEATURE, CLASS, TRANSFORMER, NATURAL)}
"""Every recipe by name (``render(..., recipe=NAME)``, ``midnite render --recipe NAME``)."""


def get(name: str) -> Recipe:
    """The recipe called ``name`` (a key of ``RECIPES``); an unknown name lists them all."""
    if not isinstance(name, str):
        raise TypeError(
            f"recipe must be a recipe name (str) or a Recipe, got {type(name).__name__}"
        )
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(
            f"unknown recipe {name!r}; recipes: {', '.join(sorted(RECIPES))}"
        ) from None


def for_objective(objective: Objective) -> Recipe:
    """``CLASS`` when the objective reads only the model's output, else ``FEATURE``."""
    return CLASS if objective.layers and set(objective.layers) == {OUTPUT} else FEATURE


def for_model(model: nn.Module, objective: Objective | list[Objective]) -> Recipe:
    """``for_objective``, except ``TRANSFORMER`` for a feature objective under a token model."""
    objective = as_objective(objective)
    recipe = for_objective(objective)
    if (
        recipe is FEATURE
        and TokenReader(model, [parse_layer(s).name for s in objective.layers]).owners()
    ):
        return TRANSFORMER
    return recipe
