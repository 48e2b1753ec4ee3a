"""The catalogue folder's data files: the plan, dataset examples, and the names of the pages.

Reading and writing only (atomic writes through ``midnite.records``); the pages built from these
files are ``midnite.pages``. A file that is absent or damaged reads as empty, never an error.

Dataset examples (``EXAMPLES_FORMAT``), ``DIR/<layer>/examples.json``::

    {"format": "midnite.examples/1", "layer": "_blocks.8",
     "units": {"12": [{"file": "examples/3f2a....png", "value": 4.2,
                       "box": [y0, x0, y1, x1] or null}, ...]}}

``file`` is relative to the layer folder; ``box`` is in that PNG's pixels (bottom and right
exclusive); ``key`` (optional) says what the examples were computed from, so a rerun can tell
whether they are up to date. ``write_examples`` writes it from a ``dataset_examples.TopExamples``.

The plan (``PLAN_FORMAT``), ``DIR/catalogue.json``, one entry per layer folder (``write_plan``
replaces the entries of the layers it is given and keeps the others)::

    {"format": "midnite.catalogue/1", "model": "efficientnet-lite0",
     "layers": {"_blocks.8": {"layer": "_blocks.8", "units": 80, "views": ["channel"],
                              "planned": 80, "done": 80}}}
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from midnite.errors import UsageError
from midnite.images import png_bytes
from midnite.store import records as rec

if TYPE_CHECKING:
    from midnite.analysis import TopExamples

__all__ = [
    "EXAMPLES",
    "EXAMPLES_FORMAT",
    "EXAMPLE_SIZE",
    "PLAN",
    "PLAN_FORMAT",
    "layer_folder",
    "read_examples",
    "read_examples_key",
    "read_plan",
    "unit_page",
    "write_examples",
    "write_plan",
]

EXAMPLES = "examples.json"
EXAMPLES_FORMAT = "midnite.examples/1"
PLAN = "catalogue.json"
PLAN_FORMAT = "midnite.catalogue/1"
EXAMPLE_SIZE = 128  # the longest side of a saved example image, in pixels


def unit_page(unit: int) -> str:
    """A unit's page, relative to its layer folder: ``0012.html``."""
    if not isinstance(unit, int) or isinstance(unit, bool) or unit < 0:
        raise UsageError(f"a unit's page needs a unit number >= 0, got {unit!r}")
    return f"{unit:04d}.html"


def layer_folder(layer: str) -> str:
    """The folder of a layer (``records.unit_stem``'s spelling; the output is ``output``)."""
    if not isinstance(layer, str):
        raise UsageError(f"a layer folder needs a layer name (str), got {layer!r}")
    return rec.unit_stem(layer, "x", 0).rsplit("_x_", 1)[0]


def _read_doc(path: Path, fmt: str) -> dict | None:
    """The JSON object in ``path`` if its ``format`` is ``fmt``; None if absent or bad."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) and doc.get("format") == fmt else None


# dataset examples ------------------------------------------------------------------------------


def _shrink(image: torch.Tensor, size: int) -> tuple[torch.Tensor, float]:
    """``image`` scaled (area average) to at most ``size`` pixels a side, and the scale."""
    h, w = image.shape[-2:]
    scale = min(1.0, size / max(h, w))
    if scale == 1.0:
        return image, scale
    hw = (max(1, round(h * scale)), max(1, round(w * scale)))
    return torch.nn.functional.interpolate(image[None], size=hw, mode="area")[0], scale


def _scaled_box(box: tuple[int, int, int, int] | None, scale: float) -> list[int] | None:
    """A receptive-field box in the saved PNG's pixels (outward rounding), None if flat."""
    if box is None:
        return None
    top, left, bottom, right = box
    return [
        math.floor(top * scale),
        math.floor(left * scale),
        math.ceil(bottom * scale),
        math.ceil(right * scale),
    ]


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
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise UsageError(f"write_examples needs a size of at least 1 pixel, got {size!r}")
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
                box = _scaled_box(ex.box, scale)
                rows.append({"file": rel, "value": float(ex.value), "box": box})
            rows_of[str(unit)] = rows
        doc: dict[str, object] = {"format": EXAMPLES_FORMAT, "layer": layer, "units": rows_of}
        if keys is not None and layer in keys:
            doc["key"] = rec.jsonable(keys[layer])
        written.append(rec.write_json(target / EXAMPLES, doc))
    return written


def read_examples_key(folder: str | os.PathLike, layer: str) -> object:
    """The ``key`` stored with ``layer``'s examples under ``folder``; None if absent or bad."""
    doc = _read_doc(Path(folder) / layer_folder(layer) / EXAMPLES, EXAMPLES_FORMAT)
    return None if doc is None else doc.get("key")


def _good_box(box: object) -> bool:
    return (
        isinstance(box, list)
        and len(box) == 4
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)
    )


def read_examples(layer_dir: str | os.PathLike) -> dict[int, list[dict]]:
    """``{unit: [{file, value, box}]}`` of ``layer_dir/examples.json``; {} if absent or bad.

    Rows whose file is absolute, leaves the folder (``..``) or is missing are left out; a box
    that is not four numbers reads as None.
    """
    folder = Path(layer_dir)
    doc = _read_doc(folder / EXAMPLES, EXAMPLES_FORMAT)
    units = None if doc is None else doc.get("units")
    if not isinstance(units, dict):
        return {}
    out: dict[int, list[dict]] = {}
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
            good.append(
                {"file": file, "value": row.get("value"), "box": box if _good_box(box) else None}
            )
        out[int(key)] = good
    return out


# the plan ---------------------------------------------------------------------------------------


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def read_plan(folder: str | os.PathLike) -> tuple[str, dict[str, dict]]:
    """``(model, {layer folder: entry})`` of ``folder/catalogue.json``; ``("", {})`` if absent.

    Entries that lack a field or hold a wrong type are left out.
    """
    doc = _read_doc(Path(folder) / PLAN, PLAN_FORMAT)
    if doc is None:
        return "", {}
    layers = doc.get("layers")
    good = {}
    for sub, entry in (layers if isinstance(layers, dict) else {}).items():
        if not isinstance(entry, dict):
            continue
        if (
            isinstance(sub, str)
            and all(_count(entry.get(k)) for k in ("units", "planned", "done"))
            and isinstance(entry.get("layer"), str)
            and isinstance(entry.get("views"), list)
        ):
            good[sub] = entry
    model = doc.get("model")
    return (model if isinstance(model, str) else ""), good


def write_plan(folder: str | os.PathLike, model: str, layers: Sequence[dict]) -> Path:
    """Record in ``folder/catalogue.json`` what each of ``layers`` is to hold and how much is done.

    Each entry: ``{"layer", "units", "views", "planned", "done"}`` (``planned``/``done`` count
    renders: a unit in two views is two). Entries of other layers already there are kept (a
    catalogue grows by runs over other layers); a changed ``model`` starts the plan afresh.
    """
    out = Path(folder)
    old_model, entries = read_plan(out)
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
