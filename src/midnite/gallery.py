"""A static, self-contained ``index.html`` for a folder of ``midnite render`` results.

``build(folder)`` reads every record in the folder (``midnite.records``) and writes one page
with inline CSS and JS and relative links only, so it works from ``file://`` without a server
or the internet: one tile per unit (image, layer, unit, activation, a link to its record) and
buttons that sort the tiles by unit or by activation.
"""

from __future__ import annotations

import html
import math
import os
from pathlib import Path
from urllib.parse import quote

from midnite.records import atomic_write_text, read_records

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


def _sort_key(item: tuple[Path, dict]) -> tuple:
    _, rec = item
    unit = rec.get("unit")
    return (
        str(rec.get("model", "")),
        str(rec.get("layer", "")),
        str(rec.get("objective", "")),
        unit if isinstance(unit, int) else -1,
    )


def _tile(order: int, json_path: Path, rec: dict) -> str:
    esc = html.escape
    image = rec.get("image", {})
    png = quote(str(image.get("file", "")))
    record = quote(json_path.name)
    layer = rec.get("layer", "")
    layer_text = layer if layer else "(output)"
    unit = rec.get("unit")
    activation = rec.get("activation", {})
    final = activation.get("final")
    start = activation.get("start")
    act_attr = (
        repr(float(final)) if isinstance(final, (int, float)) and math.isfinite(final) else ""
    )
    alt = f"{rec.get('objective', '')} {layer_text} unit {unit}"
    height = image.get("height")
    small = ' class="small"' if isinstance(height, int) and height < 128 else ""
    metrics = rec.get("metrics") or {}
    tip = "; ".join(f"{k} {_fmt(v)}" for k, v in metrics.items() if not isinstance(v, dict))
    return (
        f'<figure class="tile" data-order="{order}" data-unit="{esc(str(unit))}" '
        f'data-layer="{esc(layer)}" data-activation="{act_attr}">\n'
        f'  <a href="{png}"><img src="{png}"{small} alt="{esc(alt)}" title="{esc(tip)}"></a>\n'
        f"  <figcaption><b>{esc(layer_text)}</b> · {esc(str(rec.get('objective', '')))} "
        f"<b>{esc(str(unit))}</b><br>\n"
        f'  activation <span class="act">{_fmt(final)}</span> '
        f'<small>(start {_fmt(start)})</small> · <a class="record" href="{record}">record</a>'
        f"</figcaption>\n</figure>"
    )


def page(records: list[tuple[Path, dict]], title: str = "midnite gallery") -> str:
    """The HTML of a gallery of ``(json path, record)`` pairs (paths relative to the page)."""
    items = sorted(records, key=_sort_key)
    models = sorted({str(r.get("model", "")) for _, r in items})
    layers = sorted({str(r.get("layer", "")) or "(output)" for _, r in items})
    objectives = sorted({str(r.get("objective", "")) for _, r in items})
    esc = html.escape
    meta = (
        f"{len(items)} unit{'s' if len(items) != 1 else ''} · model {', '.join(models) or '-'}"
        f" · layer {', '.join(layers) or '-'} · objective {', '.join(objectives) or '-'}"
    )
    tiles = "\n".join(_tile(i, path, rec) for i, (path, rec) in enumerate(items))
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
          aria-pressed="false">activation &#8595;</button>
</div>
<div id="grid" data-sorted="unit">
{tiles}
</div>
<script>{_JS}</script>
</body>
</html>
"""


def build(folder: str | os.PathLike, title: str | None = None) -> Path:
    """Write ``folder/index.html`` for the records in ``folder`` (atomically); returns its path.

    Records whose PNG is missing are left out; a folder without records gets a page that says so.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"gallery needs an existing folder of results, got {str(folder)!r}")
    records = read_records(folder)
    name = title or f"midnite gallery: {folder.resolve().name}"
    return atomic_write_text(folder / INDEX, page(records, name))
