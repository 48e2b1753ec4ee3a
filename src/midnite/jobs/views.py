"""The view registry: what a unit's picture optimizes, one registration per view.

A view names an objective builder ``objective(layer, units)`` (one objective per image of a
batch, or one objective for the whole batch), how many images a unit gets, how units are
grouped into batches, whether the layer needs positions ``(C, H, W)``, and a caption in words.
A new view (a concept direction, say) is one :func:`register_view` call; plans, the runner,
records and pages look views up here and branch on nothing else.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from midnite.engine import Objective, objectives
from midnite.errors import UsageError

__all__ = [
    "CATALOGUE_VIEWS",
    "DIVERSITY_IMAGES",
    "DIVERSITY_WEIGHT",
    "REGISTRY",
    "View",
    "captions",
    "get_view",
    "register_view",
    "view_names",
]

DIVERSITY_IMAGES = 4  # images per unit in the diversity view
# weight of objectives.diversity (minus a mean cosine of Gram matrices) against the channel.
# Measured on efficientnet-lite0 _blocks.8 unit 3 (96 px, 64 steps, 4 images): weight 0, 3, 10,
# 30 gave Gram similarity 0.86, 0.67, 0.33, 0.10 at 100%, 98%, 86%, 72% of the channel's mean
# activation: 10 buys most of the diversity for little of the activation.
DIVERSITY_WEIGHT = 10.0

ObjectiveBuilder = Callable[[str, Sequence[int]], "Objective | list[Objective]"]


@dataclass(frozen=True)
class View:
    """One way to picture a unit.

    ``objective(layer, units)``: a list with one objective per unit (a batch of units), or a
    single objective rendered ``images`` times (``images > 1``: one unit per batch, saved as
    one strip of its images). ``positions``: the layer must output ``(C, H, W)`` (a plan leaves
    the view out for flat layers). ``caption``: what the picture does, in words. ``key``:
    settings of the view that decide its pictures (added to each unit's key). ``aim``,
    ``reached`` and ``sign``: the caption of one unit (:meth:`describe`): what it optimizes
    (``{unit}`` is the unit) and what the value reached means, the objective times ``sign``
    (``{value}``); ``note``: what else a reader must know (e.g. "not comparable").
    """

    name: str
    objective: ObjectiveBuilder
    caption: str
    images: int = 1
    positions: bool = False
    key: Mapping[str, object] = field(default_factory=dict)
    aim: str = "{view} of unit {unit}"
    reached: str = "the objective reached {value}"
    sign: float = 1.0
    note: str = ""

    def describe(self, unit: int, final: float | None) -> str:
        """One unit's caption in words, e.g. "minimizes channel 5: its mean activation
        reached -20.94" (``final``: the record's final objective; None or not finite: the
        aim alone)."""
        text = self.aim.format(view=self.name, unit=unit)
        if final is not None and math.isfinite(final):
            text += ": " + self.reached.format(value=f"{self.sign * final:.4g}")
        return text + (f" ({self.note})" if self.note else "")

    @property
    def one_unit_per_batch(self) -> bool:
        """Whether each batch holds one unit (its ``images`` images) instead of ``unit // B``."""
        return self.images > 1

    def unit_objective(self, layer: str, unit: int) -> Objective:
        """The objective of one unit (as its record names it)."""
        built = self.objective(layer, [unit])
        return built[0] if isinstance(built, list) else built


REGISTRY: dict[str, View] = {}


def register_view(view: View, *, replace: bool = False) -> View:
    """Add ``view`` to the registry (``replace`` to change an existing one); returns it."""
    if not isinstance(view, View):
        raise UsageError(f"register_view expects a View, got {type(view).__name__}")
    if not view.name or not view.name.isidentifier():
        raise UsageError(f"a view name must be a word such as 'channel', got {view.name!r}")
    if view.images < 1:
        raise UsageError(f"view {view.name!r}: images must be >= 1, got {view.images}")
    if view.name in REGISTRY and not replace:
        raise UsageError(f"view {view.name!r} is registered already; pass replace=True")
    REGISTRY[view.name] = view
    return view


def view_names() -> list[str]:
    """The registered views' names, in registration order."""
    return list(REGISTRY)


def get_view(name: str) -> View:
    """The view registered as ``name``, or a UsageError listing the accepted names."""
    view = REGISTRY.get(name)
    if view is None:
        raise UsageError(f"unknown view {name!r}; accepted: {', '.join(REGISTRY)} (a comma list)")
    return view


def captions() -> dict[str, Callable[[int, float | None], str]]:
    """Every registered view's :meth:`View.describe`, by name: what the pages caption with."""
    return {name: view.describe for name, view in REGISTRY.items()}


def _diversity(layer: str, units: Sequence[int]) -> Objective:
    (unit,) = units
    return objectives.channel(layer, unit) + DIVERSITY_WEIGHT * objectives.diversity(layer)


_ACTIVATION = "its mean activation reached {value}"

register_view(
    View(
        "channel",
        lambda layer, units: [objectives.channel(layer, u) for u in units],
        "maximizes the channel",
        aim="maximizes channel {unit}",
        reached=_ACTIVATION,
    )
)
register_view(
    View(
        "negative",
        lambda layer, units: [-objectives.channel(layer, u) for u in units],
        "minimizes the channel",
        aim="minimizes channel {unit}",
        reached=_ACTIVATION,
        sign=-1.0,
    )
)
register_view(
    View(
        "diversity",
        _diversity,
        f"maximizes the channel in {DIVERSITY_IMAGES} images that differ",
        images=DIVERSITY_IMAGES,
        positions=True,
        key={"diversity": {"images": DIVERSITY_IMAGES, "weight": DIVERSITY_WEIGHT}},
        aim=f"maximizes channel {{unit}} in {DIVERSITY_IMAGES} images that differ",
        reached="the objective reached {value}",
        note=f"it includes the diversity term (weight {DIVERSITY_WEIGHT:g}), so it is not "
        "comparable to the other views' values",
    )
)
register_view(
    View(
        "neuron",
        lambda layer, units: [objectives.neuron(layer, u) for u in units],
        "maximizes the centre neuron",
        aim="maximizes the centre neuron of channel {unit}",
        reached="its activation reached {value}",
    )
)
register_view(
    View(
        "class",
        lambda layer, units: [objectives.class_logit(u, layer) for u in units],
        "maximizes the class logit",
        aim="maximizes the logit of class {unit}",
        reached="the logit reached {value}",
    )
)

CATALOGUE_VIEWS = ("channel", "negative", "diversity")  # the catalogue's standard views
