"""A layer's concept pages: ``concepts.html`` (a grid: each concept's render and top crop) and
``concept_<i:04d>.html`` (its renders, top images under its heatmap with crops, its units
linked to their catalogue pages, the dictionary's quality figures, and its trust card when
``info["trust"]`` has one: the same card as a unit page). Relative links only, so the pages
work from ``file://``; values are escaped by the templates.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from pathlib import Path

from midnite.errors import UsageError
from midnite.pages.catalogue import unit_page
from midnite.pages.templating import render
from midnite.store import records as rec
from midnite.store.keys import layer_folder

__all__ = ["LAYER_PAGE", "build", "concept_page"]

LAYER_PAGE = "concepts.html"
OUTPUT = layer_folder("")  # the class output's folder beside the layer's


def concept_page(i: int) -> str:
    """The file name of concept ``i``'s page (in the layer's folder)."""
    return f"concept_{i:04d}.html"


def _renders(info: Mapping, done: Collection[str], i: int) -> list[dict]:
    """Concept ``i``'s renders: the first recipe's always (maybe "not rendered yet"), the
    others' only when rendered (a run may never plan them)."""
    out = []
    for pos, (recipe, view) in enumerate(info["views"].items()):
        stem = f"{view}_{i:04d}"
        if stem in done or pos == 0:
            out.append({"recipe": recipe, "png": f"{stem}.png" if stem in done else None})
    return out


def _classes(info: Mapping, folder: Path, i: int) -> list[dict]:
    """Concept ``i``'s classes (``info["classes"]``, optional): named by ``class_names`` when
    given, linked to the class output's unit page when the catalogue has one."""
    rows = info.get("classes") or []
    names = info.get("class_names") or []
    out = []
    for c, share in rows[i] if i < len(rows) else []:
        page = f"../{OUTPUT}/{unit_page(int(c))}"
        out.append({
            "index": int(c),
            "name": names[int(c)] if int(c) < len(names) else None,
            "share": float(share),
            "page": page if (folder / page).is_file() else None,
        })  # fmt: skip
    return out


def _concept(info: Mapping, done: Collection[str], examples: Mapping, folder: Path, i: int) -> dict:
    units = [
        {"unit": int(u), "weight": float(w), "page": unit_page(int(u))} for u, w in info["units"][i]
    ]
    return {
        "classes": _classes(info, folder, i),
        "index": i,
        "page": concept_page(i),
        "trust": (info.get("trust") or {}).get(i),
        "renders": _renders(info, done, i),
        "examples": list(examples.get(str(i), [])),
        "units": units,
    }


def build(
    folder: str | os.PathLike, info: Mapping, done: Collection[str], examples: Mapping
) -> Path:
    """Write the layer's concept pages in ``folder`` (atomically); returns the grid's path.

    ``info``: ``layer``, ``method``, ``digest``, ``quality``, ``views`` (``{recipe: view}``),
    ``units`` (per concept ``[(channel, weight), ...]``), ``model``; optionally ``classes``
    (per concept ``[(class, share), ...]``, ``Concepts.classes``), ``class_names`` and
    ``trust`` (``{concept: card}``, ``jobs.trust.card``'s fields);
    ``done``: the stems of the renders present; ``examples``: ``{str(i): [{value, heat,
    crop}, ...]}``.
    """
    missing = {"layer", "method", "digest", "quality", "views", "units", "model"} - set(info)
    if missing:
        raise UsageError(f"concept pages need {sorted(missing)} in info, got {sorted(info)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    items = [_concept(info, done, examples, folder, i) for i in range(len(info["units"]))]
    quality = sorted(info["quality"].items())
    layer_page = "index.html" if (folder / "index.html").is_file() else None  # a catalogue's
    common = {"info": info, "quality": quality, "count": len(items), "layer_page": layer_page}
    for pos, item in enumerate(items):
        page = render(
            "concept.html",
            title=f"concept {item['index']} of {info['layer']}",
            c=item,
            prev=items[pos - 1] if pos > 0 else None,
            next=items[pos + 1] if pos + 1 < len(items) else None,
            **common,
        )
        rec.write_page(folder / item["page"], page)
    grid = render("concepts.html", title=f"concepts of {info['layer']}", items=items, **common)
    return rec.write_page(folder / LAYER_PAGE, grid)
