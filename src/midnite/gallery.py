"""A static, self-contained ``index.html`` for a folder of ``midnite render`` results.

``build(folder)`` reads every record in the folder (``midnite.records``) and writes one page
with inline CSS and JS and relative links only, so it works from ``file://`` without a server or
the internet: one tile per unit (image, layer, unit, activation, a link to its record) and
buttons that sort the tiles by unit or by activation. Where records list an attribution alpha
map (``alpha``), an "alpha map" button switches those tiles to the image composited with its
alpha map over a checkerboard (where the loss never read a pixel, only the checkerboard shows).
A damaged unit (``records.scan``: a record that is not valid, a PNG missing or not matching its
record) gets a tile that says "damaged: <reason>" instead of its image.
"""

from __future__ import annotations

import functools
import html
import math
import os
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from midnite.records import Damaged, Scan, atomic_write_text, scan

__all__ = ["INDEX", "build", "page"]

INDEX = "index.html"

_CSS = """
:root { color-scheme: light dark; --tile: 176px; }
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; }
h1 { font-size: 1.3rem; margin: 0 0 .3rem; }
.meta { color: #777; margin: 0 0 1rem; }
.controls { margin: 0 0 1rem; display: flex; gap: .5rem; align-items: center; }
.controls button { font: inherit; padding: .25rem .7rem; cursor: pointer; }
.controls button[aria-pressed="true"] { font-weight: bold; }
#grid { display: grid; gap: .8rem;
        grid-template-columns: repeat(auto-fill, minmax(var(--tile), 1fr)); }
.tile { margin: 0; }
.tile img { width: 100%; aspect-ratio: 1; object-fit: contain; display: block;
            background: #8884; }
.tile img.small { image-rendering: pixelated; }
.tile figcaption { font-size: 12px; margin-top: .25rem; }
.tile .act { font-variant-numeric: tabular-nums; }
.tile img.alpha { display: none;
  background: repeating-conic-gradient(#999 0% 25%, #ddd 0% 50%) 0 0 / 16px 16px; }
body.show-alpha .tile img.alpha { display: block; }
body.show-alpha .tile[data-alpha] img.plain { display: none; }
.tile .damaged-note { aspect-ratio: 1; display: flex; align-items: center; padding: .6rem;
                      box-sizing: border-box; font-size: 12px; overflow-wrap: anywhere;
                      color: #b00; background: #f002; border: 1px dashed #b008; }
.empty { color: #777; }
"""

_JS = """
(function () {
  var grid = document.getElementById("grid");
  var buttons = document.querySelectorAll(".controls button[data-sort]");
  var descending = true;
  function num(tile, key) {
    var v = parseFloat(tile.getAttribute(key));
    return isNaN(v) ? null : v;
  }
  function sortTiles(how) {
    var tiles = Array.prototype.slice.call(grid.querySelectorAll(".tile"));
    tiles.sort(function (a, b) {
      var oa = num(a, "data-order"), ob = num(b, "data-order");
      if (how === "activation") {
        var va = num(a, "data-activation"), vb = num(b, "data-activation");
        if (va === null && vb !== null) return 1;
        if (vb === null && va !== null) return -1;
        if (va !== vb) return descending ? vb - va : va - vb;
      }
      return oa - ob;
    });
    tiles.forEach(function (t) { grid.appendChild(t); });
    grid.setAttribute("data-sorted", how + (how === "activation" ?
      (descending ? "-desc" : "-asc") : ""));
    buttons.forEach(function (b) {
      b.setAttribute("aria-pressed", b.getAttribute("data-sort") === how ? "true" : "false");
    });
  }
  var alpha = document.getElementById("show-alpha");
  if (alpha) {
    alpha.addEventListener("click", function () {
      var on = document.body.classList.toggle("show-alpha");
      alpha.setAttribute("aria-pressed", on ? "true" : "false");
    });
  }
  buttons.forEach(function (b) {
    b.addEventListener("click", function () {
      var how = b.getAttribute("data-sort");
      if (how === "activation") {
        if (grid.getAttribute("data-sorted").indexOf("activation") === 0) {
          descending = !descending;
        } else {
          descending = true;
        }
        b.textContent = "activation " + (descending ? "\\u2193" : "\\u2191");
      }
      sortTiles(how);
    });
  });
})();
"""


def _fmt(value: object) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return f"{value:.4g}"
    return "n/a"


def _sort_key(rec: dict) -> tuple:
    unit = rec.get("unit")
    return (
        str(rec.get("layer", "")),
        str(rec.get("objective", "")),
        unit if isinstance(unit, int) and not isinstance(unit, bool) else -1,
        str(rec.get("model", "")),
    )


def _object(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def _tile(order: int, json_path: Path, rec: dict) -> str:
    esc = html.escape
    image = _object(rec.get("image"))
    png = quote(str(image.get("file", "")))
    record = quote(json_path.name)
    layer = str(rec.get("layer", ""))
    layer_text = layer if layer else "(output)"
    unit = rec.get("unit")
    activation = _object(rec.get("activation"))
    final = activation.get("final")
    start = activation.get("start")
    act_attr = (
        repr(float(final))
        if isinstance(final, (int, float)) and not isinstance(final, bool) and math.isfinite(final)
        else ""
    )
    alt = f"{rec.get('objective', '')} {layer_text} unit {unit}"
    height = image.get("height")
    small = isinstance(height, int) and height < 128
    metrics = _object(rec.get("metrics"))
    tip = "; ".join(f"{k} {_fmt(v)}" for k, v in metrics.items() if not isinstance(v, dict))
    alpha_file = _object(rec.get("alpha")).get("file")
    has_alpha, alpha_img = "", ""
    if isinstance(alpha_file, str) and alpha_file:
        has_alpha = ' data-alpha=""'
        alpha_img = (
            f'<img class="alpha{" small" if small else ""}" src="{quote(alpha_file)}" '
            f'alt="{esc(alt)}, alpha map" title="alpha map: |d loss/d pixel| over the run">'
        )
    plain = "plain small" if small else "plain"
    return (
        f'<figure class="tile" data-order="{order}" data-unit="{esc(str(unit))}" '
        f'data-layer="{esc(layer)}" data-activation="{act_attr}"{has_alpha}>\n'
        f'  <a href="{png}"><img class="{plain}" src="{png}" alt="{esc(alt)}" '
        f'title="{esc(tip)}">{alpha_img}</a>\n'
        f"  <figcaption><b>{esc(layer_text)}</b> · {esc(str(rec.get('objective', '')))} "
        f"<b>{esc(str(unit))}</b><br>\n"
        f'  activation <span class="act">{_fmt(final)}</span> '
        f'<small>(start {_fmt(start)})</small> · <a class="record" href="{record}">record</a>'
        f"</figcaption>\n</figure>"
    )


def _damaged_tile(order: int, bad: Damaged) -> str:
    esc = html.escape
    layer = bad.layer if bad.layer is not None else ""
    unit = "" if bad.unit is None else str(bad.unit)
    name = f"<b>{esc(layer or '(output)')}</b> · {esc(bad.objective or '')} <b>{esc(unit)}</b>"
    if bad.layer is None:
        name = f"<b>{esc(bad.stem)}</b>"
    return (
        f'<figure class="tile damaged" data-order="{order}" data-unit="{esc(unit)}" '
        f'data-layer="{esc(layer)}" data-activation="">\n'
        f'  <div class="damaged-note">damaged: {esc(bad.reason)}</div>\n'
        f"  <figcaption>{name}<br>\n"
        f'  {esc(bad.stem)} · <a class="record" href="{quote(bad.path.name)}">record</a>'
        f"</figcaption>\n</figure>"
    )


def page(
    records: list[tuple[Path, dict]],
    title: str = "midnite gallery",
    damaged: list[Damaged] | tuple[Damaged, ...] = (),
) -> str:
    """The HTML of a gallery of ``(json path, record)`` pairs (paths relative to the page).

    ``damaged`` units (``records.scan``) get a tile that says why instead of an image.
    """
    # (sort key, tile maker) for every unit, the damaged among them
    items: list[tuple[tuple, Callable[[int], str]]] = [
        (_sort_key(r), functools.partial(_tile, json_path=p, rec=r)) for p, r in records
    ]
    items += [
        (
            _sort_key({"layer": d.layer or "", "objective": d.objective or "", "unit": d.unit}),
            functools.partial(_damaged_tile, bad=d),
        )
        for d in damaged
    ]
    items.sort(key=lambda item: item[0])
    valid = [r for _, r in records]
    models = sorted({str(r.get("model", "")) for r in valid})
    layers = sorted({str(r.get("layer", "")) or "(output)" for r in valid})
    objectives = sorted({str(r.get("objective", "")) for r in valid})
    esc = html.escape
    bad = f" · {len(damaged)} damaged" if damaged else ""
    meta = (
        f"{len(valid)} unit{'s' if len(valid) != 1 else ''}{bad}"
        f" · model {', '.join(models) or '-'}"
        f" · layer {', '.join(layers) or '-'} · objective {', '.join(objectives) or '-'}"
    )
    tiles = "\n".join(make(i) for i, (_, make) in enumerate(items))
    alpha_button = ""
    if any(isinstance(_object(r.get("alpha")).get("file"), str) for r in valid):
        alpha_button = (
            '\n  <button type="button" id="show-alpha" aria-pressed="false" title="the image '
            'with its attribution map as alpha, over a checkerboard">alpha map</button>'
        )
    if not items:
        tiles = '<p class="empty">No results yet.</p>'
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>{esc(title)}</h1>
<p class="meta">{esc(meta)}</p>
<div class="controls">sort by
  <button type="button" id="sort-unit" data-sort="unit" aria-pressed="true">unit</button>
  <button type="button" id="sort-activation" data-sort="activation"
          aria-pressed="false">activation &#8595;</button>{alpha_button}
</div>
<div id="grid" data-sorted="unit">
{tiles}
</div>
<script>{_JS}</script>
</body>
</html>
"""


def build(
    folder: str | os.PathLike, title: str | None = None, *, found: Scan | None = None
) -> Path:
    """Write ``folder/index.html`` for the units in ``folder`` (atomically); returns its path.

    ``found`` is the folder's ``records.scan`` where the caller has it (else it is scanned).
    Damaged units get a tile that says why; a folder without units gets a page that says so.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"gallery needs an existing folder of results, got {str(folder)!r}")
    found = scan(folder) if found is None else found
    name = title or f"midnite gallery: {folder.resolve().name}"
    return atomic_write_text(folder / INDEX, page(found.units, name, found.damaged))
