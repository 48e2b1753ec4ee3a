"""The page of a folder of ``midnite render`` results: ``index.html``, self-contained, ``file://``.

``build(folder)`` reads every record in the folder (``midnite.records``) and writes one page
(``templates/gallery.html``, CSS and JS inlined, relative links only): one tile per unit (image,
layer, unit, activation, a link to its record) and buttons that sort the tiles by unit or by
activation. Where records list an attribution alpha map (``alpha``), an "alpha map" button
switches those tiles to the image composited with its alpha map over a checkerboard. A damaged
unit (``records.scan``) gets a tile that says "damaged: <reason>" instead of its image.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from midnite.errors import UsageError
from midnite.pages.catalogue import Captions, caption
from midnite.pages.templating import fmt, render
from midnite.store import records as rec

__all__ = ["INDEX", "build", "page"]

INDEX = "index.html"


def _object(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def _number(value: object) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None  # type: ignore[arg-type]


def _sort_key(layer: object, objective: object, unit: object, model: object = "") -> tuple:
    whole = isinstance(unit, int) and not isinstance(unit, bool)
    return (str(layer or ""), str(objective or ""), unit if whole else -1, str(model or ""))


def _caption(record: dict, final: float | None, captions: Captions | None) -> str:
    """The tile's words: what its view optimizes and the value it reached."""
    view = str(record.get("view") or record.get("objective") or "")
    unit = record.get("unit")
    if not view or not isinstance(unit, int) or isinstance(unit, bool):
        return ""
    return caption(view, unit, final, captions)


def _tile(json_path: Path, record: dict, captions: Captions | None = None) -> dict:
    """What the template shows of a valid unit."""
    image = _object(record.get("image"))
    layer = str(record.get("layer", ""))
    unit = record.get("unit")
    activation = _object(record.get("activation"))
    final = _number(activation.get("final"))
    height = image.get("height")
    metrics = _object(record.get("metrics"))
    alpha = _object(record.get("alpha")).get("file")
    return {
        "damaged": False,
        "layer": layer,
        "unit": str(unit),
        "objective": str(record.get("objective", "")),
        "png": str(image.get("file", "")),
        "record": json_path.name,
        "activation": "" if final is None else repr(final),
        "final": final,
        "start": activation.get("start"),
        "alt": f"{record.get('objective', '')} {layer or '(output)'} unit {unit}",
        "tip": "; ".join(f"{k} {fmt(v)}" for k, v in metrics.items() if not isinstance(v, dict)),
        "small": isinstance(height, int) and height < 128,
        "alpha": alpha if isinstance(alpha, str) and alpha else None,
        "caption": _caption(record, final, captions),
    }


def _damaged_tile(bad: rec.Damaged) -> dict:
    """What the template shows of a damaged unit: its name where known, and why."""
    return {
        "damaged": True,
        "named": bad.layer is not None,
        "layer": bad.layer or "",
        "unit": "" if bad.unit is None else str(bad.unit),
        "objective": bad.objective or "",
        "stem": bad.stem,
        "reason": bad.reason,
        "record": "#" if bad.path.is_symlink() else bad.path.name,  # links lead nowhere out
    }


def _meta(valid: list[dict], damaged: int) -> str:
    models = sorted({str(r.get("model", "")) for r in valid})
    layers = sorted({str(r.get("layer", "")) or "(output)" for r in valid})
    objectives = sorted({str(r.get("objective", "")) for r in valid})
    return (
        f"{len(valid)} unit{'s' if len(valid) != 1 else ''}"
        f"{f' · {damaged} damaged' if damaged else ''}"
        f" · model {', '.join(models) or '-'}"
        f" · layer {', '.join(layers) or '-'} · objective {', '.join(objectives) or '-'}"
    )


def page(
    records: Sequence[tuple[Path, dict]],
    title: str = "midnite gallery",
    damaged: Sequence[rec.Damaged] = (),
    captions: Captions | None = None,
) -> str:
    """The HTML of a gallery of ``(json path, record)`` pairs (paths relative to the page).

    Tiles are sorted by layer, objective, unit and model; ``damaged`` units (``records.scan``)
    get a tile that says why instead of an image. ``captions``: each view's words
    (``midnite.jobs.views.captions()``; else neutral ones).
    """
    if not isinstance(title, str):
        raise UsageError(f"a gallery's title must be a str, got {title!r}")
    items = [
        (
            _sort_key(r.get("layer"), r.get("objective"), r.get("unit"), r.get("model")),
            _tile(p, r, captions),
        )
        for p, r in records
    ]
    items += [(_sort_key(d.layer, d.objective, d.unit), _damaged_tile(d)) for d in damaged]
    items.sort(key=lambda item: item[0])
    valid = [r for _, r in records]
    return render(
        "gallery.html",
        title=title,
        meta=_meta(valid, len(damaged)),
        tiles=[tile for _, tile in items],
        alpha=any(isinstance(_object(r.get("alpha")).get("file"), str) for r in valid),
    )


def build(
    folder: str | os.PathLike,
    title: str | None = None,
    *,
    found: rec.Scan | None = None,
    captions: Captions | None = None,
) -> Path:
    """Write ``folder/index.html`` for the units in ``folder`` (atomically); returns its path.

    ``found`` is the folder's ``records.scan`` where the caller has it (else it is scanned).
    Damaged units get a tile that says why; a folder without units gets a page that says so.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"gallery needs an existing folder of results, got {str(folder)!r}")
    found = rec.scan(folder) if found is None else found
    name = title or f"midnite gallery: {folder.resolve().name}"
    return rec.write_page(folder / INDEX, page(found.units, name, found.damaged, captions))
