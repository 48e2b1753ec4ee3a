"""The catalogue's site: static pages over what ``midnite catalogue`` wrote, from ``file://``.

    build_site("DIR")                       # DIR/index.html, DIR/<layer>/index.html, unit pages
    write_examples("DIR", top, ["_blocks.8"])  # DIR/<layer>/examples.json + examples/*.png

``build_site`` is a pure function of the files in ``DIR``: the ``midnite.record/2`` records of
each layer folder (``DIR/<layer>/<view>_<unit:04d>.json`` and ``.png``), where present the
layer's dataset examples (``DIR/<layer>/examples.json``) and the catalogue's plan
(``DIR/catalogue.json``, written by ``midnite catalogue``: what each layer is to hold, so the index
says how much of it is done). It writes

- ``DIR/index.html``: the model, its layers (units, views, renders done of planned), and a
  search box that finds a unit by layer and unit number (``_blocks.8 12``, ``8/12``);
- ``DIR/<layer>/index.html``: a grid of the layer's units (channel view thumbnails);
- ``DIR/<layer>/<unit:04d>.html``: one unit (a stable address): its views, metrics, record
  settings and dataset examples with the activating region marked.

Pages use inline CSS and JS and relative links only. Damaged units (a record that fails the
schema, a PNG that does not match its SHA-256) are shown as damaged; every string read from a
record is HTML-escaped.

Dataset examples format (``EXAMPLES_FORMAT``), ``DIR/<layer>/examples.json``::

    {"format": "midnite.examples/1", "layer": "_blocks.8",
     "units": {"12": [{"file": "examples/3f2a....png", "value": 4.2,
                       "box": [y0, x0, y1, x1] or null}, ...]}}

``file`` is relative to the layer folder; ``box`` is in that PNG's pixels (bottom and right
exclusive); ``key`` (optional) says what the examples were computed from, so a rerun can tell
whether they are up to date. ``write_examples`` writes it from a ``dataset_examples.TopExamples``.

Plan format (``PLAN_FORMAT``), ``DIR/catalogue.json``, one entry per layer folder (``write_plan``
replaces the entries of the layers it is given and keeps the others)::

    {"format": "midnite.catalogue/1", "model": "efficientnet-lite0",
     "layers": {"_blocks.8": {"layer": "_blocks.8", "units": 80, "views": ["channel"],
                              "planned": 80, "done": 80}}}
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import torch
from PIL import Image

from midnite import records as rec
from midnite.images import png_bytes

if TYPE_CHECKING:
    from midnite.dataset_examples import TopExamples

__all__ = [
    "EXAMPLES",
    "EXAMPLES_FORMAT",
    "PLAN",
    "PLAN_FORMAT",
    "build_site",
    "read_examples_key",
    "unit_page",
    "write_examples",
    "write_plan",
]

INDEX = "index.html"
EXAMPLES = "examples.json"
EXAMPLES_FORMAT = "midnite.examples/1"
PLAN = "catalogue.json"
PLAN_FORMAT = "midnite.catalogue/1"
EXAMPLE_SIZE = 128  # the longest side of a saved example image, in pixels
VIEW_ORDER = ("channel", "negative", "diversity")
_STEM = re.compile(r"^(?P<view>[A-Za-z]+)_(?P<unit>\d{4,})$")

esc = html.escape


def unit_page(unit: int) -> str:
    """A unit's page, relative to its layer folder: ``0012.html``."""
    return f"{unit:04d}.html"


def layer_folder(layer: str) -> str:
    """The folder of a layer (``records.unit_stem``'s spelling; the output is ``output``)."""
    return rec.unit_stem(layer, "x", 0).rsplit("_x_", 1)[0]


# dataset examples ------------------------------------------------------------------------------


def _shrink(image: torch.Tensor, size: int) -> tuple[torch.Tensor, float]:
    """``image`` scaled (area average) to at most ``size`` pixels a side, and the scale."""
    h, w = image.shape[-2:]
    scale = min(1.0, size / max(h, w))
    if scale == 1.0:
        return image, scale
    hw = (max(1, round(h * scale)), max(1, round(w * scale)))
    return torch.nn.functional.interpolate(image[None], size=hw, mode="area")[0], scale


def write_examples(
    folder: str | os.PathLike,
    result: TopExamples,
    layers: Sequence[str],
    *,
    size: int = EXAMPLE_SIZE,
    units: Mapping[str, Sequence[int]] | None = None,
    keys: Mapping[str, object] | None = None,
) -> list[Path]:
    """Save each unit's top images of ``layers`` (a ``TopExamples``) under ``folder/<layer>/``.

    Each example image is scaled to at most ``size`` pixels a side and saved once per layer as
    ``examples/<digest>.png`` (decoded once for all ``layers``: a later layer copies the file);
    ``examples.json`` lists per unit ``{file, value, box}`` with the receptive-field box in the
    saved PNG's pixels (null for flat layers). Examples whose image is not kept (given as
    tensors) are left out. ``units`` (``{layer: units}``) limits the units written (default:
    all); ``keys`` (``{layer: JSON-able}``) are stored for ``read_examples_key``. Returns the
    ``examples.json`` paths.
    """
    out = Path(folder)
    written = []
    made: dict[str, tuple[Path, float]] = {}  # image id: (a saved PNG, scale), across layers
    for layer in layers:
        res = result[layer]
        target = out / layer_folder(layer)
        (target / "examples").mkdir(parents=True, exist_ok=True)
        saved: dict[str, tuple[str, float]] = {}  # image id: (file, scale) in this layer
        rows_of: dict[str, list[dict]] = {}
        wanted = range(res.units) if units is None or layer not in units else units[layer]
        for unit in wanted:
            rows = []
            for rank, ex in enumerate(result.examples(layer, unit)):
                ident = str(ex.image)
                if ident not in saved:
                    rel = f"examples/{hashlib.sha256(ident.encode()).hexdigest()[:16]}.png"
                    if ident in made:
                        source, scale = made[ident]
                        rec.atomic_write_bytes(target / rel, source.read_bytes())
                    else:
                        try:
                            image = result.image(layer, unit, rank)
                        except (ValueError, OSError):
                            continue
                        image, scale = _shrink(image, size)
                        rec.atomic_write_bytes(target / rel, png_bytes(image))
                        made[ident] = (target / rel, scale)
                    saved[ident] = (rel, scale)
                rel, scale = saved[ident]
                box = None
                if ex.box is not None:
                    top, left, bottom, right = ex.box
                    box = [math.floor(top * scale), math.floor(left * scale)]
                    box += [math.ceil(bottom * scale), math.ceil(right * scale)]
                rows.append({"file": rel, "value": float(ex.value), "box": box})
            rows_of[str(unit)] = rows
        doc: dict[str, object] = {"format": EXAMPLES_FORMAT, "layer": layer, "units": rows_of}
        if keys is not None and layer in keys:
            doc["key"] = rec.jsonable(keys[layer])
        written.append(rec.write_json(target / EXAMPLES, doc))
    return written


def read_examples_key(folder: str | os.PathLike, layer: str) -> object:
    """The ``key`` stored with ``layer``'s examples under ``folder``; None if absent or bad."""
    try:
        doc = json.loads((Path(folder) / layer_folder(layer) / EXAMPLES).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("format") != EXAMPLES_FORMAT:
        return None
    return doc.get("key")


# the plan ---------------------------------------------------------------------------------------


def _read_plan(out: Path) -> tuple[str, dict[str, dict]]:
    """``(model, {folder: entry})`` of ``out/catalogue.json``; ``("", {})`` if absent or bad."""
    try:
        doc = json.loads((out / PLAN).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "", {}
    if not isinstance(doc, dict) or doc.get("format") != PLAN_FORMAT:
        return "", {}
    layers = doc.get("layers")
    good = {}
    for folder, entry in (layers if isinstance(layers, dict) else {}).items():
        if not isinstance(entry, dict):
            continue
        numbers = [entry.get(k) for k in ("units", "planned", "done")]
        if (
            isinstance(folder, str)
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in numbers)
            and isinstance(entry.get("layer"), str)
            and isinstance(entry.get("views"), list)
        ):
            good[folder] = entry
    model = doc.get("model")
    return (model if isinstance(model, str) else ""), good


def write_plan(folder: str | os.PathLike, model: str, layers: Sequence[dict]) -> Path:
    """Record in ``folder/catalogue.json`` what each of ``layers`` is to hold and how much is done.

    Each entry: ``{"layer", "units", "views", "planned", "done"}`` (``planned``/``done`` count
    renders: a unit in two views is two). Entries of other layers already there are kept (a
    catalogue grows by runs over other layers); a changed ``model`` starts the plan afresh.
    """
    out = Path(folder)
    old_model, entries = _read_plan(out)
    if old_model != model:
        entries = {}
    for entry in layers:
        entries[layer_folder(entry["layer"])] = {
            "layer": entry["layer"],
            "units": int(entry["units"]),
            "views": list(entry["views"]),
            "planned": int(entry["planned"]),
            "done": int(entry["done"]),
        }
    doc = {"format": PLAN_FORMAT, "model": model, "layers": entries}
    with contextlib.suppress(OSError, ValueError):  # unchanged: left untouched (mtime kept)
        if json.loads((out / PLAN).read_text(encoding="utf-8")) == rec.jsonable(doc):
            return out / PLAN
    return rec.write_json(out / PLAN, doc)


def _read_examples(folder: Path) -> dict[int, list[dict]]:
    """``{unit: [{file, value, box}]}`` from ``folder/examples.json``; {} if absent or bad."""
    path = folder / EXAMPLES
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict) or doc.get("format") != EXAMPLES_FORMAT:
        return {}
    units = doc.get("units")
    out: dict[int, list[dict]] = {}
    if not isinstance(units, dict):
        return {}
    for key, rows in units.items():
        if not (isinstance(key, str) and key.isdigit() and isinstance(rows, list)):
            continue
        good = []
        for row in rows:
            if not isinstance(row, dict) or not isinstance(row.get("file"), str):
                continue
            file = row["file"]
            if file.startswith("/") or ".." in Path(file).parts or not (folder / file).is_file():
                continue
            box = row.get("box")
            ok = (
                isinstance(box, list)
                and len(box) == 4
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)
            )
            good.append({"file": file, "value": row.get("value"), "box": box if ok else None})
        out[int(key)] = good
    return out


# reading a catalogue ---------------------------------------------------------------------------


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

    @property
    def display(self) -> str:
        return self.name or "(output)"

    def views(self) -> list[str]:
        found = {v for u in self.units.values() for v in (*u.views, *u.damaged)}
        return sorted(found, key=lambda v: (VIEW_ORDER.index(v) if v in VIEW_ORDER else 9, v))


def _natural(text: str) -> list:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text)]


def _read_layer(folder: Path) -> Layer | None:
    found = rec.scan(folder)
    if not found.units and not found.damaged:
        return None
    units: dict[int, Unit] = {}
    names: list[str] = []
    models: list[str] = []
    for path, record in found.units:
        view = str(record.get("view") or record.get("objective") or "channel")
        unit = record["unit"]
        units.setdefault(unit, Unit(unit)).views[view] = (path, record)
        names.append(str(record.get("layer", "")))
        models.append(str(record.get("model", "")))
    for bad in found.damaged:
        match = _STEM.match(bad.stem)
        unit = bad.unit if bad.unit is not None else (int(match["unit"]) if match else None)
        if unit is None:
            continue
        view = match["view"] if match else str(bad.objective or "?")
        units.setdefault(unit, Unit(unit)).damaged[view] = (bad.path, bad.reason)
    name = max(set(names), key=names.count) if names else folder.name
    model = max(set(models), key=models.count) if models else ""
    return Layer(folder.name, name, dict(sorted(units.items())), _read_examples(folder), model)


def _read(out: Path) -> list[Layer]:
    layers = []
    for sub in sorted((p for p in out.iterdir() if p.is_dir()), key=lambda p: _natural(p.name)):
        if sub.name.startswith("."):
            continue
        layer = _read_layer(sub)
        if layer is not None:
            layers.append(layer)
    return layers


# pages -----------------------------------------------------------------------------------------

_CSS = """
:root { color-scheme: light dark; }
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; }
h1 { font-size: 1.3rem; margin: 0 0 .3rem; } h2 { font-size: 1.1rem; margin: 1.2rem 0 .4rem; }
nav { margin: 0 0 .8rem; } .meta { color: #777; }
td, th { padding: .15rem .7rem; text-align: left; vertical-align: top; }
.grid { display: grid; gap: .6rem; grid-template-columns: repeat(auto-fill, minmax(96px, 1fr)); }
.grid figure { margin: 0; } .grid img { width: 100%; aspect-ratio: 1; display: block; }
img.px { image-rendering: pixelated; background: #8884; }
.views { display: flex; flex-wrap: wrap; gap: 1rem; } .views figure { margin: 0; }
.views img { height: 192px; }
.damaged { color: #b00; background: #f002; border: 1px dashed #b008; padding: .4rem;
           font-size: 12px; overflow-wrap: anywhere; }
.examples { display: flex; flex-wrap: wrap; gap: .6rem; } .examples figure { margin: 0; }
.ex { position: relative; display: inline-block; line-height: 0; }
.ex img { width: 128px; height: auto; }
.ex .box { position: absolute; border: 2px solid #f40; box-sizing: border-box; }
#results a { display: block; }
"""


def _page(title: str, body: str, script: str = "") -> str:
    tail = f"<script>{script}</script>\n" if script else ""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"{body}\n{tail}</body>\n</html>\n"
    )


def _fmt(value: object) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return f"{value:.4g}"
    return "n/a"


def _obj(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def _img(record: dict, path: Path, alt: str, cls: str = "px") -> str:
    image = _obj(record.get("image"))
    src = quote(str(image.get("file") or path.with_suffix(".png").name))
    return f'<img class="{cls}" src="{src}" alt="{esc(alt)}">'


def _thumb(layer: Layer, unit: Unit) -> str:
    alt = f"{layer.display} unit {unit.unit}"
    for view in ("channel", *layer.views()):
        if view in unit.views:
            path, record = unit.views[view]
            return _img(record, path, f"{alt} ({view})")
    reason = next(iter(unit.damaged.values()), (None, "no views"))[1]
    return f'<div class="damaged">damaged: {esc(reason)}</div>'


def _unit_html(layer: Layer, unit: Unit, model: str, root: Path) -> str:
    n = unit.unit
    title = f"{layer.display} unit {n}"
    units = list(layer.units)
    i = units.index(n)
    nav = ['<a href="../index.html">model</a>', '<a href="index.html">layer</a>']
    if i > 0:
        nav.append(f'<a rel="prev" href="{unit_page(units[i - 1])}">&larr; unit {units[i - 1]}</a>')
    if i + 1 < len(units):
        nav.append(f'<a rel="next" href="{unit_page(units[i + 1])}">unit {units[i + 1]} &rarr;</a>')
    views = []
    for view in layer.views():
        if view in unit.views:
            path, record = unit.views[view]
            act = _obj(record.get("activation"))
            views.append(
                f'<figure class="view" data-view="{esc(view)}">'
                f'<a href="{quote(path.with_suffix(".png").name)}">'
                f"{_img(record, path, f'{title} ({view})')}</a>"
                f"<figcaption>{esc(view)} · objective {_fmt(act.get('final'))} "
                f'· <a class="record" href="{quote(path.name)}">record</a></figcaption></figure>'
            )
        elif view in unit.damaged:
            path, reason = unit.damaged[view]
            views.append(
                f'<figure class="view" data-view="{esc(view)}"><div class="damaged">'
                f"{esc(view)} damaged: {esc(reason)}</div><figcaption>"
                f'<a class="record" href="{quote(path.name)}">record</a></figcaption></figure>'
            )
    rows = []
    for view, (path, record) in unit.views.items():
        run = _obj(record.get("run"))
        act = _obj(record.get("activation"))
        metrics = _obj(record.get("metrics"))
        got = {
            "objective start": _fmt(act.get("start")),
            "objective final": _fmt(act.get("final")),
            **{str(k): _fmt(v) for k, v in metrics.items() if not isinstance(v, dict)},
            **{
                k: str(run.get(k))
                for k in ("model", "size", "steps", "lr", "seed", "device", "weights")
                if k in run
            },
            "seconds": _fmt(record.get("seconds")),
        }
        cells = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in got.items())
        rows.append(
            f'<h3>{esc(view)} · <a class="record" href="{quote(path.name)}">{esc(path.name)}</a>'
            f"</h3>\n<table>{cells}</table>"
        )
    examples = ""
    if n in layer.examples:
        figs = []
        for k, ex in enumerate(layer.examples[n]):
            box = ""
            size = _size(root / ex["file"])
            if ex["box"] is not None and size is not None:
                h, w = size
                y0, x0, y1, x1 = ex["box"]
                box = (
                    f'<div class="box" style="top:{100 * y0 / h:.3f}%;left:{100 * x0 / w:.3f}%;'
                    f'height:{100 * (y1 - y0) / h:.3f}%;width:{100 * (x1 - x0) / w:.3f}%"></div>'
                )
            figs.append(
                f'<figure><span class="ex"><img src="{quote(ex["file"])}" '
                f'alt="example {k + 1} of {esc(title)}">{box}</span>'
                f"<figcaption>{_fmt(ex['value'])}</figcaption></figure>"
            )
        examples = '<h2>dataset examples</h2>\n<div class="examples">' + "\n".join(figs) + "</div>"
    body = (
        f"<nav>{' · '.join(nav)}</nav>\n<h1>{esc(title)}</h1>\n"
        f'<p class="meta">model {esc(model or "-")} · layer {esc(layer.display)}</p>\n'
        f'<div class="views">{"".join(views)}</div>\n{examples}\n'
        f"<h2>records</h2>\n{chr(10).join(rows) or '<p>no valid record</p>'}"
    )
    return _page(f"midnite catalogue: {title}", body)


def _size(path: Path) -> tuple[int, int] | None:
    """``(height, width)`` of an image file, None if it cannot be read."""
    try:
        with Image.open(path) as im:
            return (im.height, im.width)
    except (OSError, ValueError):
        return None


def _layer_html(layer: Layer, model: str) -> str:
    tiles = []
    for unit in layer.units.values():
        bad = " damaged" if unit.damaged else ""
        tiles.append(
            f'<figure class="unit{bad}" data-unit="{unit.unit}"><a href="{unit_page(unit.unit)}">'
            f"{_thumb(layer, unit)}</a><figcaption>"
            f'<a href="{unit_page(unit.unit)}">unit {unit.unit}</a>'
            f"{' · damaged' if bad else ''}</figcaption></figure>"
        )
    damaged = sum(bool(u.damaged) for u in layer.units.values())
    body = (
        '<nav><a href="../index.html">model</a></nav>\n'
        f"<h1>{esc(layer.display)}</h1>\n"
        f'<p class="meta">model {esc(model or "-")} · {len(layer.units)} units · views '
        f"{esc(', '.join(layer.views()))}{f' · {damaged} damaged' if damaged else ''}</p>\n"
        f'<div class="grid">{"".join(tiles)}</div>'
    )
    return _page(f"midnite catalogue: {layer.display}", body)


_SEARCH_JS = """
(function () {
  var units = JSON.parse(document.getElementById("units").textContent);
  var box = document.getElementById("search"), out = document.getElementById("results");
  function find(q) {
    var m = q.trim().match(/^(.*?)[\\s\\/:]+#?(\\d+)$/);
    if (!m) return [];
    var name = m[1].trim(), n = parseInt(m[2], 10), hits = [];
    units.forEach(function (u) {
      if (u.u !== n) return;
      var l = u.l || "(output)", f = u.f;
      if (name === l || name === f || l.endsWith("." + name) || f.endsWith("." + name)) {
        hits.push(u);
      }
    });
    return hits;
  }
  function show() {
    out.textContent = "";
    var hits = find(box.value);
    hits.forEach(function (u) {
      var a = document.createElement("a");
      a.href = encodeURIComponent(u.f) + "/" + u.p;
      a.textContent = (u.l || "(output)") + " unit " + u.u;
      out.appendChild(a);
    });
    if (!hits.length && box.value.trim()) out.textContent = "no such unit";
    return hits;
  }
  box.addEventListener("input", show);
  box.form.addEventListener("submit", function (e) {
    e.preventDefault();
    var a = show().length ? out.querySelector("a") : null;
    if (a) window.location.href = a.href;
  });
})();
"""


def _index_html(layers: list[Layer], model: str, planned: dict[str, dict]) -> str:
    rows, index = [], []
    for layer in layers:
        plan = planned.get(layer.folder)
        done = sum(bool(u.views) and not u.damaged for u in layer.units.values())
        views = plan["views"] if plan else layer.views()
        renders = (
            f"{plan['done']} of {plan['planned']}"
            if plan
            else str(sum(len(u.views) for u in layer.units.values()))
        )
        damaged = sum(len(u.damaged) for u in layer.units.values())
        units = plan["units"] if plan else len(layer.units)
        rows.append(
            f'<tr><td><a href="{quote(layer.folder)}/index.html">{esc(layer.display)}</a></td>'
            f"<td>{units}</td><td>{done}</td><td>{esc(', '.join(views))}</td>"
            f"<td>{renders}{f' ({damaged} damaged)' if damaged else ''}</td></tr>"
        )
        index += [
            {"l": layer.name, "f": layer.folder, "u": u, "p": unit_page(u)} for u in layer.units
        ]
    data = json.dumps(index).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    body = (
        f"<h1>midnite catalogue: {esc(model or '-')}</h1>\n"
        f'<form id="find" autocomplete="off"><label>find a unit <input id="search" type="search" '
        f'placeholder="_blocks.8 12 or 8/12"></label> <button type="submit">go</button></form>\n'
        f'<div id="results"></div>\n'
        f"<table>\n<tr><th>layer</th><th>units</th><th>units done</th><th>views</th>"
        f"<th>renders done</th></tr>\n{chr(10).join(rows)}\n</table>\n"
        f'<script type="application/json" id="units">{data}</script>'
    )
    return _page(f"midnite catalogue: {model or '-'}", body, _SEARCH_JS)


def build_site(folder: str | os.PathLike) -> Path:
    """Write the catalogue's pages in ``folder`` from its records; returns ``folder/index.html``.

    Layer folders are ``folder``'s sub-folders holding records; each gets ``index.html`` and a
    page per unit ``<unit:04d>.html``. A damaged unit is shown as damaged, never an error.
    """
    out = Path(folder)
    if not out.is_dir():
        raise ValueError(f"build_site needs an existing catalogue folder, got {str(out)!r}")
    planned_model, planned = _read_plan(out)
    layers = _read(out)
    found = {layer.folder for layer in layers}
    for sub, entry in planned.items():  # planned layers with nothing rendered yet
        if sub not in found:
            layers.append(Layer(sub, entry["layer"], {}, {}, planned_model))
    order = list(planned)
    layers.sort(key=lambda x: order.index(x.folder) if x.folder in order else len(order))
    models = [layer.model for layer in layers if layer.model]
    model = planned_model or (max(set(models), key=models.count) if models else "")
    for layer in layers:
        target = out / layer.folder
        target.mkdir(exist_ok=True)  # a planned layer with nothing rendered yet
        for unit in layer.units.values():
            page = _unit_html(layer, unit, model, target)
            rec.atomic_write_text(target / unit_page(unit.unit), page)
        rec.atomic_write_text(target / INDEX, _layer_html(layer, model))
    return rec.atomic_write_text(out / INDEX, _index_html(layers, model, planned))
