"""The catalogue's pages: static HTML over what ``midnite catalogue`` wrote, from ``file://``.

    build_site("DIR")   # DIR/index.html, DIR/<layer>/index.html, DIR/<layer>/<unit:04d>.html

``build_site`` is a pure function of the files in ``DIR``: the records of each layer folder
(``DIR/<layer>/<view>_<unit:04d>.json`` and ``.png``), where present the layer's dataset examples
and the catalogue's plan (both read by ``midnite.store.site_files``, re-exported here). It writes

- ``DIR/index.html``: the model, its layers (units, views, renders done of planned), and a
  search box that finds a unit by layer and unit number (``_blocks.8 12``, ``8/12``);
- ``DIR/<layer>/index.html``: a grid of the layer's units (channel view thumbnails);
- ``DIR/<layer>/<unit:04d>.html``: one unit (a stable address): its views, dataset examples
  with the activating region marked, its settings (once) and each view's results; wall-clock
  time is shown apart from the settings ("took ... on this machine").

Damaged units (a record that fails the schema, a PNG that does not match its SHA-256) are shown
as damaged; the templates escape every string read from a file.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from midnite.errors import UsageError
from midnite.pages.classes import unit_names
from midnite.pages.templating import render
from midnite.store import records as rec
from midnite.store.paths import inside
from midnite.store.site_files import (
    EXAMPLE_SIZE,
    EXAMPLES,
    EXAMPLES_FORMAT,
    PLAN,
    PLAN_FORMAT,
    layer_folder,
    plan_classes,
    read_concepts_summary,
    read_examples,
    read_examples_key,
    read_plan,
    read_trust,
    thumbnail,
    unit_page,
    write_examples,
    write_plan,
)

__all__ = [
    "EXAMPLES",
    "EXAMPLES_FORMAT",
    "EXAMPLE_SIZE",
    "INDEX",
    "MEANINGS",
    "PLAN",
    "PLAN_FORMAT",
    "Captions",
    "Layer",
    "Site",
    "Unit",
    "build_site",
    "caption",
    "layer_folder",
    "read_catalogue",
    "read_examples_key",
    "unit_page",
    "write_examples",
    "write_plan",
]

INDEX = "index.html"
Captions = Mapping[str, Callable[[int, "float | None"], str]]  # view: words for (unit, final)
VIEW_ORDER = ("channel", "negative", "diversity")
SETTINGS = ("model", "size", "steps", "lr", "seed", "device", "weights")  # shown of ``run``
_STEM = re.compile(r"^(?P<view>[A-Za-z]+)_(?P<unit>\d{4,})$")


@dataclass
class Unit:
    """One unit of a layer: its views' records and damaged views (with why)."""

    unit: int
    views: dict[str, tuple[Path, dict]] = field(default_factory=dict)
    damaged: dict[str, tuple[Path, str]] = field(default_factory=dict)


@dataclass
class Layer:
    """One layer folder: its units, dataset examples and the model its records name."""

    folder: str
    name: str  # the layer's name from its records ("" for the output); folder if none say
    units: dict[int, Unit]
    examples: dict[int, list[dict]]
    model: str = ""
    trust: dict[str, dict] = field(default_factory=dict)  # unit stem: report (trust.json)
    concepts: dict | None = None  # concepts_summary.json
    thumbs: dict[int, tuple[str, int, int]] = field(default_factory=dict)  # unit: thumbnail
    names: Sequence[str] | None = None  # class names of the output's units
    _views: tuple[int, list[str]] | None = field(default=None, repr=False, compare=False)

    @property
    def display(self) -> str:
        return self.name or "(output)"

    def views(self) -> list[str]:
        """The views any unit has, in ``VIEW_ORDER`` (kept per unit count: a page of each of
        a layer's units asks, and a scan each time made a site quadratic in units)."""
        if self._views is None or self._views[0] != len(self.units):
            found = {v for u in self.units.values() for v in (*u.views, *u.damaged)}
            order = sorted(found, key=lambda v: (VIEW_ORDER.index(v) if v in VIEW_ORDER else 9, v))
            self._views = (len(self.units), order)
        return list(self._views[1])


# reading a catalogue ---------------------------------------------------------------------------


def _natural(text: str) -> list:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text)]


def _commonest(values: list[str], default: str) -> str:
    return max(sorted(set(values)), key=values.count) if values else default


CONCEPT_VIEWS = "concept_"  # views of concepts (jobs.concepts), not of units


def _read_layer(folder: Path, found: rec.Scan | None = None) -> Layer | None:
    found = rec.scan(folder) if found is None else found
    if not found.units and not found.damaged:
        return None
    units: dict[int, Unit] = {}
    names: list[str] = []
    models: list[str] = []
    for path, record in found.units:
        view = str(record.get("view") or record.get("objective") or "channel")
        if view.startswith(CONCEPT_VIEWS):  # a concept's render: its concept pages show it
            continue
        unit = record["unit"]
        units.setdefault(unit, Unit(unit)).views[view] = (path, record)
        names.append(str(record.get("layer", "")))
        models.append(str(record.get("model", "")))
    for bad in found.damaged:
        if bad.stem.startswith(CONCEPT_VIEWS):
            continue
        match = _STEM.match(bad.stem)
        number = bad.unit if bad.unit is not None else (int(match["unit"]) if match else None)
        if number is None:
            continue
        view = match["view"] if match else str(bad.objective or "?")
        units.setdefault(number, Unit(number)).damaged[view] = (bad.path, bad.reason)
    return Layer(
        folder.name,
        _commonest(names, folder.name),
        dict(sorted(units.items())),
        read_examples(folder),
        _commonest(models, ""),
        read_trust(folder),
        read_concepts_summary(folder),
    )


def read_catalogue(folder: str | os.PathLike) -> tuple[str, list[Layer], dict[str, dict]]:
    """``(model, layers, plan)`` of a catalogue folder, layers in the plan's order.

    Layers are the sub-folders holding records, plus planned layers with nothing rendered yet;
    the model is the plan's, else the one most records name. Sub-folders that are symlinks are
    not read (a page never shows a file from outside ``folder``).
    """
    out = Path(folder)
    if not out.is_dir():
        raise UsageError(f"build_site needs an existing catalogue folder, got {str(out)!r}")
    planned_model, planned = read_plan(out)
    layers = []
    subs = (p for p in out.iterdir() if p.is_dir() and not p.is_symlink())
    for sub in sorted(subs, key=lambda p: _natural(p.name)):
        layer = None if sub.name.startswith(".") else _read_layer(sub)
        if layer is not None:
            layers.append(layer)
    found = {layer.folder for layer in layers}
    for sub_name, entry in planned.items():  # planned layers with nothing rendered yet
        if sub_name not in found:
            layers.append(Layer(sub_name, entry["layer"], {}, {}, planned_model))
    order = list(planned)
    layers.sort(key=lambda x: order.index(x.folder) if x.folder in order else len(order))
    models = [layer.model for layer in layers if layer.model]
    return planned_model or _commonest(models, ""), layers, planned


# what the templates show -----------------------------------------------------------------------


def _obj(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def _png(path: Path, record: dict) -> str:
    """The image file of a record (its ``image.file``, else the PNG beside the record)."""
    return str(_obj(record.get("image")).get("file") or path.with_suffix(".png").name)


def _size(path: Path) -> tuple[int, int] | None:
    """``(height, width)`` of an image file, None if it cannot be read."""
    try:
        with Image.open(path) as im:
            return (im.height, im.width)
    except (OSError, ValueError):
        return None


def _examples(rows: list[dict], root: Path) -> list[dict]:
    """Example rows with the box as (top, left, height, width) percent of the image, or None."""
    out = []
    for ex in rows:
        box, size = None, _size(root / ex["file"])
        if ex["box"] is not None and size is not None:
            h, w = size
            y0, x0, y1, x1 = ex["box"]
            box = (100 * y0 / h, 100 * x0 / w, 100 * (y1 - y0) / h, 100 * (x1 - x0) / w)
        out.append({"file": ex["file"], "value": ex["value"], "box": box})
    return out


def _number(value: object) -> float | None:
    fine = isinstance(value, (int, float)) and not isinstance(value, bool)
    return float(value) if fine and math.isfinite(value) else None  # type: ignore[arg-type]


def caption(view: str, unit: int, final: object, captions: Captions | None = None) -> str:
    """A view's caption in words: ``captions[view](unit, final)`` (the view registry's, e.g.
    "minimizes channel 5: its mean activation reached -20.94"), else a neutral one."""
    value = _number(final)
    words = (captions or {}).get(view)
    if words is not None:
        return words(unit, value)
    return f"{view} view of unit {unit}" + ("" if value is None else f": objective {value:.4g}")


def _alpha(record: dict) -> str | None:
    found = _obj(record.get("alpha")).get("file")
    return found if isinstance(found, str) and found else None


def _views(layer: Layer, unit: Unit, captions: Captions | None = None) -> list[dict]:
    views = []
    for view in layer.views():
        if view in unit.views:
            path, record = unit.views[view]
            final = _obj(record.get("activation")).get("final")
            views.append(
                {"view": view, "reason": None, "png": path.with_suffix(".png").name,
                 "src": _png(path, record), "final": final, "record": path.name,
                 "caption": caption(view, unit.unit, final, captions), "alpha": _alpha(record)}
            )  # fmt: skip
        elif view in unit.damaged:
            path, reason = unit.damaged[view]
            link = "#" if path.is_symlink() else path.name  # a link never leads out
            views.append({"view": view, "reason": reason, "record": link})
    return views


def _valid(layer: Layer, unit: Unit) -> list[tuple[str, Path, dict]]:
    """``(view, record path, record)`` of a unit's valid views, in the layer's view order."""
    return [(view, *unit.views[view]) for view in layer.views() if view in unit.views]


def _settings(views: list[tuple[str, Path, dict]]) -> list[tuple[str, str]]:
    """The run settings of a unit's views, each once (per view where the views differ)."""
    rows = []
    for key in SETTINGS:
        values = {
            view: str(_obj(record.get("run"))[key])
            for view, _, record in views
            if key in _obj(record.get("run"))
        }
        if len(set(values.values())) == 1:
            rows.append((key, next(iter(values.values()))))
        elif values:
            rows.append((key, "; ".join(f"{view}: {value}" for view, value in values.items())))
    return rows


START, FINAL = "objective at the start", "objective at the end"
# what each number of a unit's results means (metrics: midnite.evaluation.metrics)
MEANINGS = {
    START: "the value the view optimizes, on the starting image",
    FINAL: "the value the view optimizes, on the saved image (its caption says it in words)",
    "spectrum_slope": "slope of the image's power spectrum (log-log); natural photos about -2",
    "high_frequency_energy": "share of the image's energy at high spatial frequencies",
    "total_variation": "mean absolute difference of neighbouring pixels (noisiness)",
    "colorfulness": "Hasler-Suesstrunk colourfulness of the image",
    "saturated_fraction": "share of pixel values at 0 or 1",
}


def _results(views: list[tuple[str, Path, dict]]) -> tuple[list[str], list[dict], list[str]]:
    """``(row names, per view {view, record, results}, timings)`` of a unit's valid views."""
    keys = [START, FINAL]
    records, timing = [], []
    for view, path, record in views:
        act = _obj(record.get("activation"))
        metrics = {
            str(k): v for k, v in _obj(record.get("metrics")).items() if not isinstance(v, dict)
        }
        keys += [k for k in metrics if k not in keys]
        results = {START: act.get("start"), FINAL: act.get("final")}
        records.append({"view": view, "record": path.name, "results": {**results, **metrics}})
        seconds = record.get("seconds")
        if isinstance(seconds, (int, float)) and not isinstance(seconds, bool):
            timing.append(f"{seconds:.1f} s ({view})")
    return keys, records, timing


def _neighbour(units: list[int], i: int) -> dict | None:
    return {"unit": units[i], "page": unit_page(units[i])} if 0 <= i < len(units) else None


def _class_name(layer: Layer, unit: int) -> str:
    names = layer.names
    return names[unit] if names is not None and 0 <= unit < len(names) else ""


def _trust(layer: Layer, unit: Unit) -> dict | None:
    """The unit's trust report (``trust.json``): its first view's that has one, or None."""
    for view in layer.views():
        if view in unit.views and unit.views[view][0].stem in layer.trust:
            return {"view": view, **layer.trust[unit.views[view][0].stem]}
    return None


def _unit_html(
    layer: Layer, unit: Unit, model: str, root: Path, captions: Captions | None = None
) -> str:
    label = _class_name(layer, unit.unit)
    name = f"{layer.display} unit {unit.unit}" + (f" · {label}" if label else "")
    units = list(layer.units)
    i = units.index(unit.unit)
    valid = _valid(layer, unit)
    keys, records, timing = _results(valid)
    return render(
        "catalogue_unit.html",
        title=f"midnite catalogue: {name}",
        name=name,
        model=model,
        layer=layer.display,
        prev=_neighbour(units, i - 1),
        next=_neighbour(units, i + 1),
        views=_views(layer, unit, captions),
        examples=_examples(layer.examples.get(unit.unit, []), root),
        settings=_settings(valid),
        result_keys=[(key, MEANINGS.get(key, "")) for key in keys],
        records=records,
        timing=timing,
        trust=_trust(layer, unit),
    )


def _tile_view(layer: Layer, unit: Unit) -> str | None:
    """The view a unit's tile shows: channel where rendered, else its first valid view."""
    return next((v for v in ("channel", *layer.views()) if v in unit.views), None)


def _tile(layer: Layer, unit: Unit) -> dict:
    tile = {"unit": unit.unit, "page": unit_page(unit.unit), "damaged": bool(unit.damaged),
            "name": _class_name(layer, unit.unit), "thumb": layer.thumbs.get(unit.unit),
            "activation": None, "trust": _trust(layer, unit)}  # fmt: skip
    view = _tile_view(layer, unit)
    if view is not None:
        final = _number(_obj(unit.views[view][1].get("activation")).get("final"))
        tile.update(view=view, reason=None, activation=final)
    else:
        reason = next(iter(unit.damaged.values()), (None, "no views"))[1]
        tile.update(view=None, reason=reason)
    return tile


def _layer_html(layer: Layer, model: str, entry: dict | None, has_concepts: bool) -> str:
    tiles = [_tile(layer, unit) for unit in layer.units.values()]
    return render(
        "catalogue_layer.html",
        title=f"midnite catalogue: {layer.display}",
        layer=layer.display,
        model=model,
        views=layer.views(),
        tiles=tiles,
        damaged=sum(bool(u.damaged) for u in layer.units.values()),
        has_concepts=has_concepts,  # `midnite concepts` wrote this layer's concept pages
        concepts=layer.concepts,
        has_trust=any(t["trust"] is not None for t in tiles),
        progress=None if entry is None else f"{entry['done']} of {entry['planned']} done",
    )


STRIP = 8  # thumbnails of a layer's first units on the model page


def _index_html(layers: list[Layer], model: str, planned: dict[str, dict]) -> str:
    rows, index = [], []
    done_all = planned_all = 0
    for layer in layers:
        plan = planned.get(layer.folder)
        done = sum(len(u.views) for u in layer.units.values())
        done_all += plan["done"] if plan else done
        planned_all += plan["planned"] if plan else done
        rows.append(
            {
                "folder": layer.folder,
                "name": layer.display,
                "shape": plan.get("shape") if plan else None,
                "units": plan["units"] if plan else len(layer.units),
                "views": plan["views"] if plan else layer.views(),
                "done": plan["done"] if plan else done,
                "planned": plan["planned"] if plan else done,
                "damaged": sum(len(u.damaged) for u in layer.units.values()),
                "strip": [
                    {"unit": u, "page": unit_page(u), "thumb": layer.thumbs[u]}
                    for u in list(layer.thumbs)[:STRIP]
                ],
            }
        )
        index += [
            {"l": layer.name, "f": layer.folder, "u": u, "p": unit_page(u),
             "n": _class_name(layer, u)}
            for u in layer.units
        ]  # fmt: skip
    title = f"midnite catalogue: {model or '-'}"
    return render("catalogue_index.html", title=title, layers=rows, units=index,
                  progress=f"{done_all} of {planned_all} done")  # fmt: skip


def build_site(
    folder: str | os.PathLike,
    captions: Captions | None = None,
    class_names: Sequence[str] | None = None,
) -> Path:
    """Write the catalogue's pages in ``folder`` from its records; returns ``folder/index.html``.

    Layer folders are ``folder``'s sub-folders holding records; each gets ``index.html`` and a
    page per unit ``<unit:04d>.html``, and each unit's tile a thumbnail beside its PNG
    (``store.site_files.thumbnail``: made once, again when the PNG's digest changes). A damaged
    unit is shown as damaged, never an error. A planned layer folder that is a symlink, or a
    folder where a page goes, is refused with ``store.PathError`` (one line; nothing written
    through it); a page that is a symlink is replaced by the page (the link's target is left
    alone). ``captions``: each view's words (``midnite.jobs.views.captions()``; else neutral
    ones). ``class_names``: names of the output's units (default: the plan's, else ImageNet's
    when the output has 1,000 units).
    """
    return Site(folder, captions, class_names).build()


class Site:
    """The pages of one catalogue folder, kept up to date layer by layer as a run writes.

    ``Site(folder)`` reads the folder once (``read_catalogue``); :meth:`build` writes every
    page; :meth:`update` takes one layer folder's new scan (the runner keeps it up to date) and
    rewrites that layer's pages and the model page only, re-reading the plan (a small file).
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        captions: Captions | None = None,
        class_names: Sequence[str] | None = None,
    ):
        self.out = Path(folder)
        self.captions = captions
        self.class_names = None if class_names is None else list(class_names)
        self.model, layers, self.planned = read_catalogue(self.out)
        self.layers = {layer.folder: layer for layer in layers}

    def build(self) -> Path:
        """Every layer's pages and the model page; returns ``index.html``."""
        for layer in self.layers.values():
            self._write_layer(layer)
        return self._write_index()

    def update(self, sub: str, found: rec.Scan) -> Path:
        """Rewrite the pages of layer folder ``sub`` from ``found``, then the model page."""
        planned_model, self.planned = read_plan(self.out)
        layer = _read_layer(self.out / sub, found)
        if layer is not None:
            self.layers[sub] = layer
            self._write_layer(layer)
        models = [x.model for x in self.layers.values() if x.model]
        self.model = planned_model or _commonest(models, "")
        return self._write_index()

    def _names(self, layer: Layer) -> Sequence[str] | None:
        """Names of the output's units: given, the plan's, or ImageNet's for 1,000 units."""
        if layer.name:
            return None
        entry = self.planned.get(layer.folder) or {}
        shape = entry.get("shape")
        units = shape[0] if shape else entry.get("units", max(layer.units, default=-1) + 1)
        given = self.class_names or plan_classes(self.out)
        return unit_names(units if given is None else len(given), given)

    def _thumbs(self, layer: Layer, target: Path) -> None:
        layer.thumbs = {}
        for unit in layer.units.values():
            view = _tile_view(layer, unit)
            if view is not None:
                path, record = unit.views[view]
                digest = str(_obj(record.get("image")).get("sha256", ""))
                made = thumbnail(target, _png(path, record), digest)
                if made is not None:
                    layer.thumbs[unit.unit] = made

    def _write_layer(self, layer: Layer) -> None:
        target = inside(self.out, layer.folder, write=True)
        target.mkdir(exist_ok=True)  # a planned layer with nothing rendered yet
        layer.names = self._names(layer)
        self._thumbs(layer, target)
        for unit in layer.units.values():
            page = _unit_html(layer, unit, self.model, target, self.captions)
            rec.write_page(target / unit_page(unit.unit), page)
        concepts = (target / "concepts.html").is_file()
        entry = self.planned.get(layer.folder)
        rec.write_page(target / INDEX, _layer_html(layer, self.model, entry, concepts))

    def _write_index(self) -> Path:
        for sub, entry in self.planned.items():  # planned layers with nothing rendered yet
            if sub not in self.layers:
                self.layers[sub] = Layer(sub, entry["layer"], {}, {}, self.model)
                self._write_layer(self.layers[sub])
        layers = list(self.layers.values())
        order = list(self.planned)
        layers.sort(key=lambda x: order.index(x.folder) if x.folder in order else len(order))
        page = _index_html(layers, self.model, self.planned)
        return rec.write_page(self.out / INDEX, page)
