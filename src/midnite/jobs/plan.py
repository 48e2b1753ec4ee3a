"""Plans: the pure work items (:class:`Batch`) of a render or a catalogue, and their keys.

A batch's images are a pure function of the model's weights, its fields and the library
versions: its seed comes from the run's seed, the layer, the view and the units alone
(``store.keys.batch_seed``, the one derivation), and units are grouped by ``unit // batch``
(or one per batch for views with several images per unit), so ``midnite render`` and
``midnite catalogue`` give the same bytes for the same unit, view and settings.
:meth:`Batch.key` is the one run key: a record with another key is rendered again. Where the
files go is the plan's :class:`Layout`.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from midnite.engine import Init, RenderConfig, versions
from midnite.engine.config import init_digest
from midnite.errors import UsageError
from midnite.jobs.steps import AUTO, auto_applies, fixed_steps, layer_steps
from midnite.jobs.views import View, get_view
from midnite.store.files import canonical, jsonable
from midnite.store.keys import batch_seed, layer_folder, plan_batches, unit_stem, weights_digest

__all__ = [
    "FLAT",
    "LAYERS",
    "Batch",
    "CatalogueError",
    "Layout",
    "Settings",
    "batch_seed",
    "canonical",
    "layer_folder",
    "plan",
]


class CatalogueError(UsageError):
    """A mistake in what was asked for (a layer pattern, a view, units): one line."""


@dataclass(frozen=True)
class Layout:
    """Where a plan's files go and what goes with them.

    ``per_layer``: ``DIR/<layer>/<view>_<unit:04d>`` (the catalogue) instead of
    ``DIR/<layer>_<view>_<unit:04d>`` (``midnite render``); ``alpha``: write each unit's
    attribution alpha map beside its PNG; ``one_run``: the folder holds the units of one run
    configuration (another's are refused, or removed with ``overwrite``).
    """

    name: str
    per_layer: bool
    alpha: bool
    one_run: bool


FLAT = Layout("flat", per_layer=False, alpha=True, one_run=True)
LAYERS = Layout("layers", per_layer=True, alpha=True, one_run=False)


@dataclass(frozen=True)
class Settings:
    """The settings every batch of a plan shares (``steps``, ``lr``, ``recipe``, ``param``
    None: the recipe's; ``steps="auto"``: per layer, ``jobs.steps``). ``init``: every image
    starts from it (feature accentuation)."""

    size: tuple[int, int]
    steps: int | str | None = None
    lr: float | None = None
    batch: int = 8
    seed: int = 0
    device: str = "cpu"
    recipe: str | None = None
    param: str | None = None
    init: torch.Tensor | None = field(default=None, compare=False, repr=False)
    init_penalty: float = 0.0


@functools.cache
def _midnite_version() -> str:
    return versions()["midnite"]


@dataclass(frozen=True)
class Batch:
    """One pure work item: the images of ``units`` of ``layer`` in ``view``.

    ``config`` is the whole ``RenderConfig`` (recipe filled in, objective, batch and ``seed``);
    ``weights`` the model's digest, ``model`` its name (for the records).
    """

    layer: str
    view: str
    units: tuple[int, ...]
    seed: int
    config: RenderConfig = field(compare=False, repr=False)
    model: str = ""
    weights: str = ""
    settings: Settings | None = None
    layout: Layout = LAYERS

    @property
    def images(self) -> int:
        return self.config.batch

    @property
    def spec(self) -> View:
        """The registered view."""
        return get_view(self.view)

    @functools.cached_property
    def settings_digest(self) -> str:
        """16 hex digits over the config's ``to_json()`` (every setting, recipe values included)."""
        settings = self.config.to_json()
        settings.pop("versions", None)
        text = json.dumps(jsonable(settings), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def key(self, unit: int) -> dict:
        """The run key: what decides ``unit``'s image. A record with another is rendered again."""
        cfg = self.config
        return {
            "model": self.model,
            "weights": self.weights,
            "layer": self.layer,
            "objective": self.view,
            "view": self.view,
            "unit": unit,
            "steps": cfg.steps,
            "size": list(cfg.size),
            "lr": cfg.lr,
            "seed": self.settings.seed if self.settings else None,
            "batch": self.settings.batch if self.settings else len(self.units),
            "batch_units": list(self.units),
            "device": str(cfg.device),
            "settings": self.settings_digest,
            "midnite": _midnite_version(),
            "torch": torch.__version__,
            "recipe": cfg.to_json()["recipe"],
            "param": cfg.param,
            **self._start(),
            **({"canvas": list(cfg.canvas)} if cfg.canvas is not None else {}),
            **self.spec.key,
        }

    def _start(self) -> dict:
        """The init image's digest and penalty, for renders from one (feature accentuation)."""
        cfg = self.config
        if cfg.init is None:
            return {}
        return {"init": init_digest(cfg.init.image), "init_penalty": cfg.init.penalty}

    def run_config(self) -> dict:
        """The run configuration (``records.RUN_FIELDS``) a ``one_run`` folder holds one of."""
        cfg = self.config
        return {
            "model": self.model,
            "weights": self.weights,
            "size": list(cfg.size),
            "steps": cfg.steps,
            "lr": cfg.lr,
            "seed": self.settings.seed if self.settings else None,
            "batch": self.settings.batch if self.settings else len(self.units),
            "device": str(cfg.device),
            "recipe": cfg.to_json()["recipe"],
            "init": None if cfg.init is None else init_digest(cfg.init.image),
            "init_penalty": 0.0 if cfg.init is None else cfg.init.penalty,
        }

    def probe(self) -> RenderConfig:
        """One image of this batch (its first unit) as a config: what memory estimates take.

        A view of several images per unit (an objective over the batch) is probed by the
        ``channel`` view of its unit: the same layer's forward and backward pass.
        """
        spec = get_view("channel") if self.spec.one_unit_per_batch else self.spec
        first = spec.objective(self.layer, [self.units[0]])
        return self.config.replace(objective=first, batch=1)

    def folder(self) -> str:
        """The sub-folder of the unit files ('' in the flat layout)."""
        return layer_folder(self.layer) if self.layout.per_layer else ""

    def stem(self, unit: int) -> str:
        """A unit's file name without suffix."""
        if self.layout.per_layer:
            return f"{self.view}_{unit:04d}"
        return unit_stem(self.layer, self.view, unit)


def _display(name: str) -> str:
    return name or "(output)"


def _chosen_units(
    layer: str,
    count: int,
    units: str | Sequence[int] | None,
    parse_units: Callable[[str, int], list[int]] | None,
) -> list[int]:
    if units is None:
        return list(range(count))
    if isinstance(units, str):
        if parse_units is None:
            raise TypeError("plan: units as text needs parse_units (e.g. cli.parse_units)")
        try:
            return parse_units(units, count)
        except Exception as err:  # the parser's own error type, whatever it is
            raise CatalogueError(f"layer {_display(layer)!r}: {err}") from None
    chosen = sorted({int(u) for u in units})
    if not chosen or chosen[0] < 0 or chosen[-1] >= count:
        raise CatalogueError(
            f"layer {_display(layer)!r}: units {chosen} out of range for {count} units; "
            f"accepted: 0-{count - 1}"
        )
    return chosen


def _views(views: Sequence[str]) -> list[View]:
    if not views:
        raise CatalogueError("no view given; accepted: a comma list of registered views")
    try:
        return [get_view(v) for v in dict.fromkeys(views)]
    except UsageError as err:
        raise CatalogueError(str(err)) from None


def plan(
    model: torch.nn.Module,
    model_name: str,
    layers: Sequence[str],
    shapes: dict[str, tuple[int, ...]],
    *,
    settings: Settings,
    views: Sequence[str] = ("channel",),
    units: str | Sequence[int] | None = None,
    parse_units: Callable[[str, int], list[int]] | None = None,
    layout: Layout = LAYERS,
) -> list[Batch]:
    """The batches of ``views`` of ``layers`` (``shapes``: each one's output shape).

    ``units``: unit indices for every layer (None: all of each layer's units), or a range text
    parsed by ``parse_units(text, count)`` (the CLI's); a unit past a layer's count is a
    :class:`CatalogueError`. Repeated views count once; a view that needs positions is left
    out for flat layers. Units are batched by ``unit // settings.batch``
    (``records.plan_batches``), or one per batch for views with several images per unit.
    ``settings.steps="auto"``: each layer's feature-recipe batches get ``jobs.steps``'s
    schedule (``layer_steps``), other batches their recipe's steps; each key holds the steps.
    The plan depends on no file: what is done is decided by the runner.
    """
    fixed_steps(settings.steps)
    chosen_views = _views(views)
    weights = weights_digest(model)
    work: list[Batch] = []
    for layer in layers:
        shape = shapes[layer]
        chosen = _chosen_units(layer, shape[0], units, parse_units)
        auto = layer_steps(model, layer) if settings.steps == AUTO else None
        for view in chosen_views:
            if view.positions and len(shape) < 2:
                continue  # no positions: e.g. diversity (Gram matrices) is not defined
            groups = (
                [[u] for u in chosen]
                if view.one_unit_per_batch
                else plan_batches(chosen, settings.batch)
            )
            for group in groups:
                seed = batch_seed(settings.seed, layer, view.name, group)
                config = _config(model, settings, view.objective(layer, group), view, group, seed)
                if auto is not None and auto_applies(config):
                    config = config.replace(steps=auto)
                work.append(
                    Batch(
                        layer,
                        view.name,
                        tuple(group),
                        seed,
                        config,
                        model_name,
                        weights,
                        settings,
                        layout,
                    )
                )
    return work


def _config(
    model: torch.nn.Module, settings: Settings, objective, view: View, group: list[int], seed: int
) -> RenderConfig:
    try:
        return RenderConfig.resolve(
            model,
            objective,
            size=settings.size,
            batch=view.images if view.one_unit_per_batch else len(group),
            steps=fixed_steps(settings.steps),
            lr=settings.lr,
            device=settings.device,
            seed=seed,
            init=None
            if settings.init is None
            else Init(settings.init, penalty=settings.init_penalty),
            recipe=settings.recipe,
            param=settings.param,
        )
    except (TypeError, ValueError) as err:
        if isinstance(err, UsageError):
            raise
        raise CatalogueError(str(err)) from None
