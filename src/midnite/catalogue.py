"""A whole-model catalogue: every unit of many layers, in several views, as pure batches.

    work = plan(model, "MODEL", layers=select_layers(table), views=("channel", "negative"))
    summary = run(model, work, "DIR")      # renders what is missing, writes DIR/index.html

The contract:

- ``plan`` returns :class:`Batch` items ``(layer, view, units, settings, seed)``. A batch's
  images are a pure function of the model's weights, those fields and the library versions:
  its seed comes from the run's seed, the layer, the view and the units alone
  (:func:`batch_seed`), so the same plan gives the same bytes wherever it runs (on the same
  kind of device with the same versions of midnite and torch).
- Records are keyed (:meth:`Batch.key`) by the weights' digest (``records.weights_digest``),
  every setting and the midnite version: a rerun renders nothing, a changed setting renders
  everything again, an added layer renders only that layer. Damaged units (a record that is
  not valid, a PNG that does not match it) are rendered again.
- Files: ``DIR/<layer>/<view>_<unit:04d>.png`` and ``.json`` (``<layer>`` as in
  ``records.unit_stem``: the output is ``output``), written atomically by the driver only, as
  ``midnite.record/2`` records with ``objective`` the view and ``view`` and ``catalogue``
  added; ``DIR/catalogue.json`` records the plan and ``midnite.site`` builds the pages from it
  all (``DIR/index.html``, a page per layer and per unit).
- Executors run batches and yield results (:class:`Executor`): :class:`InProcess` (default)
  renders them one after another here; ``midnite.catalogue_ray.Ray`` renders them on Ray
  workers (imported only when asked for: this module never imports Ray).

Views: ``channel`` maximizes ``objectives.channel(layer, u)``; ``negative`` maximizes its
negation; ``diversity`` renders ``DIVERSITY_IMAGES`` images of one unit at once, maximizing
``channel(layer, u) + DIVERSITY_WEIGHT * diversity(layer)`` (``diversity`` rewards Gram
matrices that differ, so the images show different facets), saved as one PNG strip. Layers
without positions (flat outputs) have no diversity view: it is left out of their plan.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import hashlib
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch
from tqdm.auto import tqdm

from midnite import records as rec
from midnite import site
from midnite.dataset_examples import (
    TopExamples,
    UnreadableImageWarning,
    list_images,
    top_examples,
)
from midnite.engine import (
    LayerTable,
    Objective,
    RenderConfig,
    RenderResult,
    objectives,
    render_config,
    versions,
)
from midnite.images import png_bytes

__all__ = [
    "DIVERSITY_IMAGES",
    "DIVERSITY_WEIGHT",
    "PROBE_REPEATS",
    "PROBE_STEPS",
    "VIEWS",
    "Batch",
    "CatalogueError",
    "Estimate",
    "ExamplesSummary",
    "Executor",
    "InProcess",
    "Settings",
    "Summary",
    "add_examples",
    "batch_seed",
    "default_layers",
    "estimate",
    "plan",
    "run",
    "select_layers",
]

VIEWS = ("channel", "negative", "diversity")
DIVERSITY_IMAGES = 4  # images per unit in the diversity view
# weight of objectives.diversity (minus a mean cosine of Gram matrices) against the channel.
# Measured on efficientnet-lite0 _blocks.8 unit 3 (96 px, 64 steps, 4 images): weight 0, 3, 10,
# 30 gave Gram similarity 0.86, 0.67, 0.33, 0.10 at 100%, 98%, 86%, 72% of the channel's mean
# activation: 10 buys most of the diversity for little of the activation.
DIVERSITY_WEIGHT = 10.0
# steps of the probe renders that time each layer (estimate): with 3, load noise of 0.1 s on a
# busy 2-core machine was ~30% of the cost per step (estimates of one layer: 26-73 s for 28 s)
PROBE_STEPS = 8
PROBE_REPEATS = 2  # each probe render is timed this often, the fastest kept (load only slows)


class CatalogueError(ValueError):
    """A mistake in what was asked for (a layer pattern, a view, units): one line."""


# layers -------------------------------------------------------------------------------------


def _usable(table: LayerTable) -> dict[str, tuple[int, ...]]:
    """``{name: shape}`` of the layers with units that run once per forward pass."""
    return {i.name: tuple(i.shape) for i in table if i.shape and i.calls == 1}


def _display(name: str) -> str:
    return name or "(output)"


def default_layers(model: torch.nn.Module, table: LayerTable) -> list[str]:
    """The default layers: the outputs of the model's repeated blocks, then its output.

    The rule: among the ``nn.Sequential`` and ``nn.ModuleList`` modules whose children are all
    blocks (modules with submodules of their own), siblings (same parent) whose names differ
    only in trailing digits (``layer1``, ``layer2``) form a group; the group with the most
    blocks wins (the first in module order on a tie), so EfficientNet gives
    ``_blocks.N``, timm ``blocks.N`` (or ``blocks.S.N`` for staged models) and torchvision's
    ResNet ``layerN.M``. Its blocks that output a ``(C, H, W)`` map (token layers count, as
    ``(D, h, w)``) are taken, in forward order, plus the model's output (``""``) when it is a
    flat vector of at least 2 values (reads as classes).
    """
    shapes = _usable(table)
    groups: dict[str, list[str]] = {}
    for name, module in model.named_modules():
        if not isinstance(module, (torch.nn.Sequential, torch.nn.ModuleList)):
            continue
        children = list(module.named_children())
        if len(children) < 2 or not all(any(True for _ in c.children()) for _, c in children):
            continue
        parent, _, own = name.rpartition(".")
        prefix = f"{name}." if name else ""
        group = (parent, own.rstrip("0123456789"), bool(name))  # layer1, layer2: one group
        groups.setdefault(str(group), []).extend(prefix + c for c, _ in children)
    chosen: list[str] = []
    if groups:
        best = max(groups.values(), key=len)  # max keeps the first of equals
        chosen = [n for n in best if len(shapes.get(n, ())) == 3]
    order = {i.name: k for k, i in enumerate(table)}
    chosen.sort(key=lambda n: order.get(n, 0))
    out = shapes.get("")
    if out is not None and len(out) == 1 and out[0] >= 2:
        chosen.append("")
    return chosen


def select_layers(
    model: torch.nn.Module, table: LayerTable, patterns: Sequence[str] | None = None
) -> list[str]:
    """Layer names matching the fnmatch ``patterns`` (in forward order), else ``default_layers``.

    ``(output)`` names the model's output. A pattern that matches no layer with units is a
    :class:`CatalogueError` with close matches.
    """
    shapes = _usable(table)
    if patterns is None:
        found = default_layers(model, table)
        if not found:
            raise CatalogueError(
                "found no repeated blocks with (C, H, W) outputs and no class output; name "
                "layers with --layers PATTERN (see 'midnite layers MODEL')"
            )
        return found
    if not patterns:
        raise CatalogueError("--layers needs at least one PATTERN")
    names = [i.name for i in table if i.name in shapes]
    chosen: set[str] = set()
    for pattern in patterns:
        if not pattern.strip():
            raise CatalogueError(f"empty layer pattern {pattern!r}; give a glob such as 'blocks.*'")
        hits = [n for n in names if fnmatch.fnmatchcase(_display(n), pattern)]
        if not hits:
            close = difflib.get_close_matches(
                pattern, [_display(n) for n in names], n=5, cutoff=0.5
            )
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise CatalogueError(
                f"layer pattern {pattern!r} matches no layer with units{hint} (accepted: fnmatch "
                "globs over the names 'midnite layers MODEL' lists; '(output)' is the output)"
            )
        chosen.update(hits)
    return [n for n in names if n in chosen]


# the plan -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """The settings every batch of a catalogue shares (``steps`` and ``lr`` None: the recipe's)."""

    size: tuple[int, int]
    steps: int | None = None
    lr: float | None = None
    batch: int = 8
    seed: int = 0
    device: str = "cpu"


def batch_seed(seed: int, layer: str, view: str, units: Iterable[int]) -> int:
    """A 63-bit seed for one batch: a function of the run's seed, layer, view and units only."""
    text = f"midnite-catalogue:{seed}:{layer}:{view}:{','.join(map(str, units))}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


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

    @property
    def images(self) -> int:
        return self.config.batch

    @functools.cached_property
    def settings_digest(self) -> str:
        """16 hex digits over the config's ``to_json()`` (every setting, recipe values included)."""
        settings = self.config.to_json()
        settings.pop("versions", None)
        text = json.dumps(rec.jsonable(settings), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def key(self, unit: int) -> dict:
        """What decides ``unit``'s image: a record with another key is rendered again."""
        cfg = self.config
        key = {
            "catalogue": 1,
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
        }
        if self.view == "diversity":
            key["diversity"] = {"images": DIVERSITY_IMAGES, "weight": DIVERSITY_WEIGHT}
        return key

    def folder(self) -> str:
        return layer_folder(self.layer)

    def stem(self, unit: int) -> str:
        return f"{self.view}_{unit:04d}"


@functools.cache
def _midnite_version() -> str:
    return versions()["midnite"]


def layer_folder(layer: str) -> str:
    """The sub-folder of a layer's files (``records.unit_stem``'s spelling of the layer)."""
    return rec.unit_stem(layer, "x", 0).rsplit("_x_", 1)[0]


def _objective(layer: str, view: str, units: Sequence[int]) -> Objective | list[Objective]:
    if view == "channel":
        return [objectives.channel(layer, u) for u in units]
    if view == "negative":
        return [-objectives.channel(layer, u) for u in units]
    (unit,) = units
    return objectives.channel(layer, unit) + DIVERSITY_WEIGHT * objectives.diversity(layer)


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
) -> list[Batch]:
    """The batches of a catalogue of ``layers`` (``shapes``: each one's output shape).

    ``units``: unit indices for every layer (None: all of each layer's units), or a range text
    parsed by ``parse_units(text, count)`` (the CLI's); a unit past a layer's count is a
    :class:`CatalogueError`. Repeated views count once. Channel and negative views batch units by
    ``unit // settings.batch`` (``records.plan_batches``); a diversity batch is one unit's
    ``DIVERSITY_IMAGES`` images. The plan depends on no file: what is done is decided later.
    """
    bad = [v for v in views if v not in VIEWS]
    if bad or not views:
        raise CatalogueError(
            f"unknown view {(bad or [''])[0]!r}; accepted: {', '.join(VIEWS)} (a comma list)"
        )
    views = list(dict.fromkeys(views))
    weights = rec.weights_digest(model)
    work: list[Batch] = []
    for layer in layers:
        shape = shapes[layer]
        count = shape[0]
        if units is None:
            chosen = list(range(count))
        elif isinstance(units, str):
            if parse_units is None:
                raise TypeError("plan: units as text needs parse_units (e.g. cli.parse_units)")
            try:
                chosen = parse_units(units, count)
            except Exception as err:  # the parser's own error type, whatever it is
                raise CatalogueError(f"layer {_display(layer)!r}: {err}") from None
        else:
            chosen = sorted({int(u) for u in units})
            if not chosen or chosen[0] < 0 or chosen[-1] >= count:
                raise CatalogueError(
                    f"layer {_display(layer)!r}: units {chosen} out of range for {count} units; "
                    f"accepted: 0-{count - 1}"
                )
        for view in views:
            if view == "diversity" and len(shape) < 2:
                continue  # no positions: diversity (Gram matrices) is not defined
            groups = (
                [[u] for u in chosen]
                if view == "diversity"
                else rec.plan_batches(chosen, settings.batch)
            )
            for group in groups:
                seed = batch_seed(settings.seed, layer, view, group)
                obj = _objective(layer, view, group)
                n = DIVERSITY_IMAGES if view == "diversity" else len(group)
                config = RenderConfig.resolve(
                    model,
                    obj,
                    size=settings.size,
                    batch=n,
                    steps=settings.steps,
                    lr=settings.lr,
                    device=settings.device,
                    seed=seed,
                )
                work.append(
                    Batch(layer, view, tuple(group), seed, config, model_name, weights, settings)
                )
    return work


# executing ----------------------------------------------------------------------------------


class Executor(Protocol):
    """Runs batches and yields ``(batch, result or the exception it raised)``, in any order;
    computes dataset examples (``dataset_examples.top_examples``) over a folder of images."""

    def run(self, batches: Sequence[Batch]) -> Iterator[tuple[Batch, RenderResult | Exception]]:
        """Render each batch once."""
        ...

    def examples(
        self, layers: Sequence[str], folder: Path, k: int, size: tuple[int, int], progress: bool
    ) -> TopExamples:
        """Every unit's top ``k`` images of ``folder`` (ids relative to it; ``root`` = folder)."""
        ...


class InProcess:
    """The default executor: renders the batches one after another in this process."""

    def __init__(self, model: torch.nn.Module):
        self.model = model

    def run(self, batches: Sequence[Batch]) -> Iterator[tuple[Batch, RenderResult | Exception]]:
        for batch in batches:
            try:
                result: RenderResult | Exception = render_config(
                    self.model, batch.config, progress=False
                )
            except Exception as err:  # reported per unit by the driver
                result = err
            yield batch, result

    def examples(
        self, layers: Sequence[str], folder: Path, k: int, size: tuple[int, int], progress: bool
    ) -> TopExamples:
        device = next((p.device for p in self.model.parameters()), None)
        return top_examples(
            self.model, layers, folder, k, size=size, device=device, progress=progress
        )


# the driver: what is done, writing, the index -----------------------------------------------


@dataclass
class Summary:
    """What ``run`` did: units (unit, view pairs) rendered, up to date, failed (with why)."""

    rendered: int = 0
    up_to_date: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    damaged: list[str] = field(default_factory=list)
    index: Path | None = None
    seconds: float = 0.0
    errors: list[BaseException] = field(default_factory=list)


def _canonical(value: object) -> object:
    return json.loads(json.dumps(rec.jsonable(value)))


def todo(
    work: Sequence[Batch], out: Path, report: Callable[[str], None] | None = None
) -> tuple[list[tuple[Batch, list[int]]], int]:
    """``(batch, its units not complete in out)`` where some are, and how many units are.

    ``report`` gets a line per damaged unit found, saying whether this plan renders it again.
    """
    valid: dict[str, dict[str, dict]] = {}
    planned = {(b.folder(), b.stem(u)) for b in work for u in b.units}
    for folder in sorted({b.folder() for b in work}):
        found = rec.scan(out / folder) if (out / folder).is_dir() else rec.Scan()
        valid[folder] = found.valid()
        for bad in found.damaged:
            what = "rendering it again" if (folder, bad.stem) in planned else "not in this plan"
            if report is not None:
                report(f"damaged unit {folder}/{bad}; {what}")
    left, done = [], 0
    for batch in work:
        have = valid[batch.folder()]
        missing = [
            u
            for u in batch.units
            if (have.get(batch.stem(u)) or {}).get("key") != _canonical(batch.key(u))
        ]
        done += len(batch.units) - len(missing)
        if missing:
            left.append((batch, missing))
    return left, done


def _record(batch: Batch, unit: int, result: RenderResult, data: bytes, name: str) -> dict:
    i = batch.units.index(unit)
    rows = range(result.images.shape[0]) if batch.view == "diversity" else [i]
    start = [float(result.start[r]) for r in rows]
    final = [float(result.final[r]) for r in rows]
    return {
        "format": rec.FORMAT,
        "model": batch.model,
        "layer": batch.layer,
        "unit": unit,
        "objective": batch.view,
        "view": batch.view,
        "catalogue": True,
        "objective_repr": repr(batch.config.objective),
        "key": batch.key(unit),
        "run": {
            "model": batch.model,
            "weights": batch.weights,
            "size": list(batch.config.size),
            "steps": batch.config.steps,
            "lr": batch.config.lr,
            "seed": batch.settings.seed if batch.settings else None,
            "batch": batch.settings.batch if batch.settings else len(batch.units),
            "device": str(batch.config.device),
            "recipe": batch.config.to_json()["recipe"],
        },
        "batch": {"units": list(batch.units), "position": i, "seed": batch.seed},
        "settings": result.settings,
        "versions": dict(result.settings.get("versions", {})),
        "activation": {"start": sum(start) / len(start), "final": sum(final) / len(final)},
        "history": [sum(row) / len(row) for row in result.history[:, list(rows)].tolist()],
        "metrics": {},
        "image": {
            "file": f"{name}.png",
            "sha256": hashlib.sha256(data).hexdigest(),
            "height": int(result.images.shape[-2]),
            "width": int(result.images.shape[-1]) * len(rows),
        },
        "seconds": result.seconds,
    }


def _write(
    batch: Batch, missing: Sequence[int], result: RenderResult, out: Path, summary: Summary
) -> int:
    """Write the batch's ``missing`` units that finished; returns how many were missing."""
    folder = out / batch.folder()
    folder.mkdir(parents=True, exist_ok=True)
    failures = dict(result.failed)
    finite = torch.isfinite(result.images).flatten(1).all(1).tolist()
    for i, fine in enumerate(finite):
        if not fine:
            failures.setdefault(i, "the image holds non-finite values")
    for unit in missing:
        name = batch.stem(unit)
        where = f"{batch.folder()}/{name}"
        if batch.view == "diversity":
            if failures:
                summary.failed[where] = next(iter(failures.values()))
                continue
            image = torch.cat(list(result.images), dim=-1)  # one strip, left to right
        else:
            i = batch.units.index(unit)
            if i in failures:
                summary.failed[where] = failures[i]
                continue
            image = result.images[i]
        data = png_bytes(image)
        rec.atomic_write_bytes(folder / f"{name}.png", data)
        rec.write_json(folder / f"{name}.json", _record(batch, unit, result, data, name))
        summary.rendered += 1
    return len(missing)


def run(
    work: Sequence[Batch],
    out: str | os.PathLike,
    *,
    executor: Executor | None = None,
    model: torch.nn.Module | None = None,
    progress: bool = True,
    report: Callable[[str], None] | None = None,
) -> Summary:
    """Render the units of ``work`` not yet complete in ``out``, write them and the index.

    ``executor`` defaults to :class:`InProcess` of ``model``. The caller holds ``out``'s lock
    (``records.lock_folder``). A batch that raises or turns non-finite is reported in
    ``Summary.failed`` (its exceptions in ``errors``) and nothing of it is saved.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = Summary()
    began = time.perf_counter()
    for folder in {b.folder() for b in work}:
        if (out / folder).is_dir():
            rec.clean_temp(out / folder)

    def damaged(line: str) -> None:
        summary.damaged.append(line)
        if report is not None:
            report(line)

    left, summary.up_to_date = todo(work, out, report=damaged)
    if executor is None:
        if model is None:
            raise ValueError("run needs an executor or a model")
        executor = InProcess(model)
    missing = dict(left)  # batches compare by their fields: a copy from a worker finds its own
    total = sum(len(m) for m in missing.values())
    bar = tqdm(total=total, unit="unit", desc="catalogue", disable=not progress, file=sys.stderr)
    try:
        for batch, result in executor.run([b for b, _ in left]):
            if isinstance(result, Exception):
                summary.errors.append(result)
                why = f"{type(result).__name__}: {' '.join(str(result).split())[:200]}"
                for unit in missing[batch]:
                    summary.failed[f"{batch.folder()}/{batch.stem(unit)}"] = why
                bar.update(len(missing[batch]))
                continue
            bar.update(_write(batch, missing[batch], result, out, summary))
    finally:
        bar.close()
        summary.seconds = time.perf_counter() - began
        summary.index = build_index(work, out)
    return summary


def build_index(work: Sequence[Batch], out: Path) -> Path:
    """Record the plan and how much of it is done (``site.write_plan``), then build the site.

    Returns ``out/index.html`` (see ``midnite.site``: model, layer and unit pages).
    """
    entries = []
    for layer in dict.fromkeys(b.layer for b in work):
        batches = [b for b in work if b.layer == layer]
        folder = out / layer_folder(layer)
        valid = rec.scan(folder).valid() if folder.is_dir() else {}
        done = sum(
            (valid.get(b.stem(u)) or {}).get("key") == _canonical(b.key(u))
            for b in batches
            for u in b.units
        )
        entries.append(
            {
                "layer": layer,
                "units": len({u for b in batches for u in b.units}),
                "views": list(dict.fromkeys(b.view for b in batches)),
                "planned": sum(len(b.units) for b in batches),
                "done": done,
            }
        )
    if work:
        site.write_plan(out, work[0].model, entries)
    return site.build_site(out)


# dataset examples -----------------------------------------------------------------------------


@dataclass
class ExamplesSummary:
    """What ``add_examples`` did: layers computed and up to date, images seen, files skipped."""

    computed: list[str] = field(default_factory=list)
    up_to_date: list[str] = field(default_factory=list)
    images: int = 0  # files in the folder
    seen: int = 0  # images that went through the model (0 when every layer was up to date)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, why) unreadable


def _listing_digest(folder: Path, names: Sequence[str]) -> str:
    """16 hex digits over each file's name, size and modification time (not its bytes)."""
    h = hashlib.sha256()
    for name in names:
        st = (folder / name).stat()
        h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def add_examples(
    work: Sequence[Batch],
    images: str | os.PathLike,
    k: int,
    out: str | os.PathLike,
    *,
    executor: Executor,
    progress: bool = True,
    report: Callable[[str], None] | None = None,
) -> ExamplesSummary:
    """Each catalogued unit's top ``k`` images of the folder ``images``, written for the site.

    One pass (``executor.examples``) over the layers whose examples are missing or stale reads
    every image once; ``site.write_examples`` saves them as ``DIR/<layer>/examples.json`` with
    a key of the folder's listing (names, sizes, times), ``k``, size, weights, units and midnite
    version, so a rerun with the same key does nothing. Unreadable files are skipped, counted
    and reported (``report``); a folder without files or without a readable image is a
    ``CatalogueError``.
    """
    folder = Path(images)
    try:
        names = list_images(folder)
    except ValueError as err:
        raise CatalogueError(f"--images: {str(err).removeprefix('images: ')}") from None
    if not names:
        raise CatalogueError(f"--images: the folder {str(folder)!r} holds no files")
    out = Path(out)
    summary = ExamplesSummary(images=len(names))
    if not work:
        return summary
    layers = list(dict.fromkeys(b.layer for b in work))
    units = {
        layer: sorted({u for b in work if b.layer == layer for u in b.units}) for layer in layers
    }
    first = work[0]
    base = {
        "images": _listing_digest(folder, names),
        "k": k,
        "size": list(first.config.size),
        "weights": first.weights,
        "midnite": _midnite_version(),
    }
    keys = {layer: _canonical({**base, "units": units[layer]}) for layer in layers}
    todo_layers = [x for x in layers if site.read_examples_key(out, x) != keys[x]]
    summary.up_to_date = [x for x in layers if x not in todo_layers]
    if not todo_layers:
        return summary
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnreadableImageWarning)  # counted and reported below
        try:
            result = executor.examples(todo_layers, folder, k, first.config.size, progress)
        except ValueError as err:  # no readable image at all
            raise CatalogueError(f"--images: {str(err).removeprefix('images: ')}") from None
    summary.seen = result.seen
    summary.skipped = [(str(i), why) for i, why in result.skipped]
    if summary.skipped and report is not None:
        shown = "; ".join(f"{i}: {why}" for i, why in summary.skipped[:3])
        more = f" (and {len(summary.skipped) - 3} more)" if len(summary.skipped) > 3 else ""
        report(
            f"dataset examples: skipped {len(summary.skipped)} of {len(names)} file(s) in "
            f"{str(folder)!r} that are not readable JPEG or PNG images: {shown}{more}"
        )
    site.write_examples(out, result, todo_layers, units=units, keys=keys)
    summary.computed = todo_layers
    return summary


# the estimate ---------------------------------------------------------------------------------


@dataclass
class Estimate:
    """Expected seconds of a plan: ``total`` on one worker, ``longest`` batch, per layer."""

    total: float
    longest: float
    per_layer: dict[str, float]

    def workers(self, n: int) -> float:
        """Seconds on ``n`` workers, batches spread evenly (never below the longest batch)."""
        return max(self.total / n, self.longest)


def estimate(model: torch.nn.Module, work: Sequence[Batch], steps: int = PROBE_STEPS) -> Estimate:
    """Time ``work`` from a probe measured here: per layer, one batch for 1 and 1 + ``steps`` steps.

    The cost of a step grows with the layer's depth (each forward pass ends after the layer),
    so each layer is probed, with its batch of the most images, after one unmeasured warm-up
    render; each probe render runs ``PROBE_REPEATS`` times and the fastest counts. The two
    give a fixed cost per batch (set-up) and a cost per step; a batch of that layer is taken to
    cost ``fixed + step * its steps * its images / the probe's images``. Writing files is not
    counted (milliseconds per unit). ``Estimate.workers(n)`` assumes ``n`` workers each as fast
    as this process: on a machine whose cores are busy with other work it is a lower bound.
    """
    if not work:
        return Estimate(0.0, 0.0, {})
    render_config(model, work[0].config.replace(steps=1), progress=False)  # warm-up
    cost: dict[str, tuple[float, float, int]] = {}  # layer: (fixed, per step, probe images)
    for layer in dict.fromkeys(b.layer for b in work):
        biggest = max((b for b in work if b.layer == layer), key=lambda b: b.images)
        took = []
        for n in (1, 1 + steps):
            times = []
            for _ in range(PROBE_REPEATS):
                began = time.perf_counter()
                render_config(model, biggest.config.replace(steps=n), progress=False)
                times.append(time.perf_counter() - began)
            took.append(min(times))
        step = max(took[1] - took[0], 0.0) / steps
        cost[layer] = (max(took[0] - step, 0.0), step, biggest.images)
    costs = []
    for b in work:
        fixed, step, images = cost[b.layer]
        costs.append(fixed + step * b.config.steps * b.images / images)
    per_layer: dict[str, float] = {}
    for b, c in zip(work, costs, strict=True):
        per_layer[b.layer] = per_layer.get(b.layer, 0.0) + c
    return Estimate(sum(costs), max(costs), per_layer)


def format_seconds(seconds: float) -> str:
    """``42 s``, ``12.5 min`` or ``3.2 h``."""
    if not math.isfinite(seconds):
        return "?"
    if seconds < 120:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
