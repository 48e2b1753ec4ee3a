"""The catalogue folder's data files: the plan, dataset examples, and the names of the pages.

Reading and writing only (atomic writes through ``midnite.records``); the pages built from these
files are ``midnite.pages``. A file that is absent or damaged (unreadable, beyond
``store.files.read_json``'s size or depth limits, not the format) reads as empty, never an
error: ``report`` gets one line naming it, and the next run rewrites it. Every path comes from
names checked as single components (``store.paths``); symlinks under the folder are never
followed for writing (``PathError``, one line) and example files that are symlinks are not read.

Dataset examples (``EXAMPLES_FORMAT``), ``DIR/<layer>/examples.json``::

    {"format": "midnite.examples/1", "layer": "_blocks.8",
     "units": {"12": [{"file": "examples/3f2a....png", "value": 4.2,
                       "box": [y0, x0, y1, x1] or null, "sha256": "..."}, ...]}}

``file`` is ``examples/<name>.png``, relative to the layer folder; ``box`` is in that PNG's
pixels (bottom and right exclusive); ``sha256`` is the PNG's digest (``damaged_examples``
checks it); ``key`` (optional) says what the examples were computed from, so a rerun can tell
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
import io
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from PIL import Image

from midnite.errors import UsageError
from midnite.images import png_bytes
from midnite.store import records as rec
from midnite.store.files import DamagedError, read_json
from midnite.store.keys import layer_folder as _folder_name
from midnite.store.paths import PathError, component, inside

if TYPE_CHECKING:
    from midnite.analysis import TopExamples

__all__ = [
    "CONCEPTS_SUMMARY",
    "EXAMPLES",
    "EXAMPLES_FORMAT",
    "EXAMPLE_SIZE",
    "PLAN",
    "PLAN_FORMAT",
    "THUMB_SIZE",
    "TRUST",
    "damaged_examples",
    "layer_folder",
    "plan_classes",
    "read_concepts_summary",
    "read_examples",
    "read_examples_key",
    "read_plan",
    "read_trust",
    "thumbnail",
    "unit_page",
    "write_examples",
    "write_plan",
]

EXAMPLES = "examples.json"
EXAMPLES_FORMAT = "midnite.examples/1"
PLAN = "catalogue.json"
PLAN_FORMAT = "midnite.catalogue/1"
EXAMPLE_SIZE = 128  # the longest side of a saved example image, in pixels
THUMB_SIZE = 80  # the height of a unit's thumbnail, in pixels (a strip keeps its aspect)
TRUST = "trust.json"  # a layer's trust reports (the trust engineer's), by unit stem
CONCEPTS_SUMMARY = "concepts_summary.json"  # a layer's concepts (``midnite concepts``)


def unit_page(unit: int) -> str:
    """A unit's page, relative to its layer folder: ``0012.html``."""
    if not isinstance(unit, int) or isinstance(unit, bool) or unit < 0:
        raise UsageError(f"a unit's page needs a unit number >= 0, got {unit!r}")
    return f"{unit:04d}.html"


Report = Callable[[str], None]


def layer_folder(layer: str) -> str:
    """The folder of a layer (``store.keys.layer_folder``: ``unit_stem``'s spelling, ``output``
    for the output), checked as one path component (``PathError`` if over 255 bytes)."""
    if not isinstance(layer, str):
        raise UsageError(f"a layer folder needs a layer name (str), got {layer!r}")
    return component(_folder_name(layer), what=f"the folder of layer {layer[:40]!r}")


def _read_doc(path: Path, fmt: str, report: Report | None = None) -> dict | None:
    """The JSON object in ``path`` (``read_json``: size and depth limits) if its ``format`` is
    ``fmt``; None if absent or bad (a damaged file is named to ``report``)."""
    try:
        doc = read_json(path)
    except FileNotFoundError:
        return None
    except (OSError, DamagedError) as err:
        if report is not None:
            why = err.reason if isinstance(err, DamagedError) else str(err)
            report(f"{str(path)!r} is damaged ({why}); it is written again")
        return None
    if isinstance(doc, dict) and doc.get("format") == fmt:
        return doc
    if report is not None:
        report(f"{str(path)!r} is damaged (not a {fmt} file); it is written again")
    return None


def _real_folder(folder: Path) -> bool:
    """Whether ``folder`` is a folder and not a symlink (links are not followed)."""
    return folder.is_dir() and not folder.is_symlink()


def _sha256(path: Path) -> str | None:
    """The SHA-256 of a regular file that is not a symlink; None if it cannot be read."""
    if path.is_symlink() or not path.is_file():
        return None
    try:
        return rec.sha256_file(path)
    except OSError:
        return None


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
    ``examples.json`` lists per unit ``{file, value, box, sha256}`` with the receptive-field box
    in the saved PNG's pixels (null for flat layers) and the PNG's digest. Examples whose image
    is not kept (given as tensors) are left out. ``units`` (``{layer: units}``) limits the
    units written (default: all); ``keys`` (``{layer: JSON-able}``) are stored for
    ``read_examples_key``. Returns the ``examples.json`` paths. A layer folder (or its
    ``examples``) that is a symlink is refused (``PathError``) before anything is written.
    """
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise UsageError(f"write_examples needs a size of at least 1 pixel, got {size!r}")
    out = Path(folder)
    for layer in layers:  # every folder checked before anything is written
        inside(out, layer_folder(layer), "examples", write=True)
    written = []
    made: dict[str, tuple[Path, float]] = {}  # image id: (a saved PNG, scale), across layers
    for layer in layers:
        res = result[layer]
        target = out / layer_folder(layer)
        (target / "examples").mkdir(parents=True, exist_ok=True)
        saved: dict[str, tuple[str, float, str]] = {}  # image id: (file, scale, sha256) here
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
                        data = source.read_bytes()
                    else:
                        try:
                            image = result.image(layer, unit, rank)
                        except (ValueError, OSError):
                            continue
                        image, scale = _shrink(image, size)
                        data = png_bytes(image)
                        made[ident] = (target / rel, scale)
                    rec.atomic_write_bytes(target / rel, data)
                    saved[ident] = (rel, scale, hashlib.sha256(data).hexdigest())
                rel, scale, digest = saved[ident]
                box = _scaled_box(ex.box, scale)
                rows.append({"file": rel, "value": float(ex.value), "box": box, "sha256": digest})
            rows_of[str(unit)] = rows
        doc: dict[str, object] = {"format": EXAMPLES_FORMAT, "layer": layer, "units": rows_of}
        if keys is not None and layer in keys:
            doc["key"] = rec.jsonable(keys[layer])
        written.append(rec.write_json(target / EXAMPLES, doc))
    return written


def read_examples_key(
    folder: str | os.PathLike, layer: str, report: Report | None = None
) -> object:
    """The ``key`` stored with ``layer``'s examples under ``folder``; None if absent, damaged
    (named to ``report``) or in a layer folder that is a symlink."""
    target = Path(folder) / layer_folder(layer)
    if not _real_folder(target):
        return None
    doc = _read_doc(target / EXAMPLES, EXAMPLES_FORMAT, report)
    return None if doc is None else doc.get("key")


def _example_file(folder: Path, file: object) -> Path | None:
    """``folder/examples/<name>`` for a row's ``file``, None unless it is exactly that (one
    plain name, ``examples`` not a symlink)."""
    if not isinstance(file, str):
        return None
    parts = file.split("/")
    if len(parts) != 2 or parts[0] != "examples":
        return None
    try:
        path = inside(folder, *parts)
    except PathError:
        return None
    return None if path.parent.is_symlink() else path


def damaged_examples(folder: str | os.PathLike, layer: str) -> list[str]:
    """The example files of ``layer``'s ``examples.json`` under ``folder`` that are missing, a
    symlink or do not match their recorded SHA-256 (``"examples/x.png: why"``); [] if none (or
    no examples)."""
    target = Path(folder) / layer_folder(layer)
    doc = _read_doc(target / EXAMPLES, EXAMPLES_FORMAT) if _real_folder(target) else None
    units = None if doc is None else doc.get("units")
    bad: dict[str, str] = {}
    good: set[str] = set()  # each file hashed once
    for rows in units.values() if isinstance(units, dict) else ():
        for row in rows if isinstance(rows, list) else ():
            file = row.get("file") if isinstance(row, dict) else None
            if not isinstance(file, str) or file in bad or file in good:
                continue
            path = _example_file(target, file)
            if path is None:
                bad[file] = "not a file name under examples/"
            elif path.is_symlink():
                bad[file] = "a symbolic link (not followed)"
            elif not path.is_file():
                bad[file] = "missing"
            elif _sha256(path) != row.get("sha256"):
                bad[file] = "does not match its SHA-256 (changed or truncated)"
            else:
                good.add(file)
    return [f"{file}: {why}" for file, why in bad.items()]


def _good_box(box: object) -> bool:
    return (
        isinstance(box, list)
        and len(box) == 4
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)
    )


def read_examples(layer_dir: str | os.PathLike) -> dict[int, list[dict]]:
    """``{unit: [{file, value, box}]}`` of ``layer_dir/examples.json``; {} if absent or bad.

    Rows whose file is not ``examples/<name>`` (absolute, ``..``, deeper), is a symlink, is
    missing or does not match its ``sha256`` are left out; a box that is not four numbers reads
    as None. A ``layer_dir`` that is a symlink has no examples.
    """
    folder = Path(layer_dir)
    if not _real_folder(folder):
        return {}
    doc = _read_doc(folder / EXAMPLES, EXAMPLES_FORMAT)
    digests: dict[Path, str | None] = {}
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
            path = _example_file(folder, file)
            if path is None:
                continue
            if path not in digests:
                digests[path] = _sha256(path)
            if digests[path] is None or row.get("sha256", digests[path]) != digests[path]:
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


def _planned_folder(sub: object, entry: dict) -> bool:
    """Whether ``sub`` is the folder of the entry's layer (so a path taken from the plan is
    one checked component: never absolute, ``..``, ``a/b``, NUL or over 255 bytes)."""
    layer = entry.get("layer")
    try:
        return isinstance(layer, str) and sub == layer_folder(layer)
    except UsageError:
        return False


def _shape(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(_count(v) for v in value)


def read_plan(
    folder: str | os.PathLike, report: Report | None = None
) -> tuple[str, dict[str, dict]]:
    """``(model, {layer folder: entry})`` of ``folder/catalogue.json``; ``("", {})`` if absent
    or damaged (named to ``report``).

    Entries that lack a field, hold a wrong type, or whose key is not ``layer_folder`` of their
    ``layer`` (a path, ``..``, NUL, a name over 255 bytes) are left out.
    """
    doc = _read_doc(Path(folder) / PLAN, PLAN_FORMAT, report)
    if doc is None:
        return "", {}
    layers = doc.get("layers")
    good = {}
    for sub, entry in (layers if isinstance(layers, dict) else {}).items():
        if not isinstance(entry, dict):
            continue
        if (
            _planned_folder(sub, entry)
            and all(_count(entry.get(k)) for k in ("units", "planned", "done"))
            and isinstance(entry.get("views"), list)
        ):
            good[sub] = {k: v for k, v in entry.items() if k != "shape"}
            if _shape(entry.get("shape")):
                good[sub]["shape"] = entry["shape"]
    model = doc.get("model")
    return (model if isinstance(model, str) else ""), good


def plan_classes(folder: str | os.PathLike) -> list[str] | None:
    """The class names the plan records for the model's output (``write_plan``'s ``classes``);
    None if it records none (or the plan is absent or damaged)."""
    doc = _read_doc(Path(folder) / PLAN, PLAN_FORMAT)
    names = None if doc is None else doc.get("classes")
    fine = isinstance(names, list) and all(isinstance(n, str) for n in names)
    return names if fine and names else None


def write_plan(
    folder: str | os.PathLike,
    model: str,
    layers: Sequence[dict],
    report: Report | None = None,
    classes: Sequence[str] | None = None,
) -> Path:
    """Record in ``folder/catalogue.json`` what each of ``layers`` is to hold and how much is done.

    Each entry: ``{"layer", "units", "views", "planned", "done"}`` (``planned``/``done`` count
    renders: a unit in two views is two) and, where known, ``"shape"`` (the layer's output
    shape). Entries of other layers already there are kept (a catalogue grows by runs over
    other layers); a changed ``model`` starts the plan afresh. A damaged plan (``report`` names
    it) is written anew; entries ``read_plan`` refuses are dropped. ``classes``: the model's
    own names of its output units (kept from an earlier run when not given).
    """
    out = Path(folder)
    old_model, entries = read_plan(out, report)
    kept = plan_classes(out) if old_model == model else None
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
        if entry.get("shape") is not None:
            entries[layer_folder(entry["layer"])]["shape"] = [int(v) for v in entry["shape"]]
    doc: dict[str, object] = {"format": PLAN_FORMAT, "model": model, "layers": entries}
    names = list(classes) if classes is not None else kept
    if names:
        doc["classes"] = [str(n) for n in names]
    with contextlib.suppress(OSError, DamagedError):  # unchanged: left untouched (mtime kept)
        if read_json(out / PLAN) == rec.jsonable(doc):
            return out / PLAN
    return rec.write_json(out / PLAN, doc)


# thumbnails, trust reports and concepts beside a layer's units -----------------------------------


def _thumb_digest(path: Path) -> str | None:
    """The PNG digest a thumbnail was made from (its JPEG comment); None if none or unreadable."""
    if path.is_symlink() or not path.is_file():
        return None
    try:
        with Image.open(path) as im:
            found = im.info.get("comment")
    except (OSError, ValueError):
        return None
    return found.decode("ascii", "replace") if isinstance(found, bytes) else None


def thumbnail(folder: str | os.PathLike, png: str, sha256: str) -> tuple[str, int, int] | None:
    """``(name, width, height)`` of ``<stem>.thumb.jpg`` beside ``folder/png``, made once.

    The thumbnail is ``THUMB_SIZE`` pixels high (a strip keeps its aspect), a JPEG of a few KB
    whose comment holds ``sha256``, the PNG's digest from its record: it is made again only when
    that digest changes (or the thumbnail is missing, damaged or a symlink). None if the PNG
    is not a plain file name in ``folder`` or cannot be read.
    """
    if not isinstance(png, str) or "/" in png or not png.endswith(".png"):
        return None
    source, name = Path(folder) / png, png[: -len(".png")] + ".thumb.jpg"
    target = Path(folder) / name
    if _thumb_digest(target) == sha256:
        with contextlib.suppress(OSError, ValueError), Image.open(target) as im:
            return name, im.width, im.height
    if source.is_symlink() or not source.is_file():
        return None
    try:
        with Image.open(source) as im:
            im = im.convert("RGB")
            width = max(1, round(im.width * THUMB_SIZE / im.height))
            small = im.resize((width, THUMB_SIZE), Image.Resampling.BOX)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    data = io.BytesIO()
    small.save(data, "JPEG", quality=82, comment=sha256.encode("ascii", "replace"))
    rec.write_page(target, data.getvalue())
    return name, small.width, small.height


def _fraction(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if 0.0 <= value <= 1.0 else None


def read_trust(layer_dir: str | os.PathLike) -> dict[str, dict]:
    """``{unit stem: {"score", "flagged", "verdict", ...}}`` of ``layer_dir/trust.json``; {}
    if absent or damaged. Entries without a score in [0, 1] are left out; ``flagged`` is a bool
    (False if not one), ``verdict`` a str ("" if not one); ``ci`` (two fractions), ``natural``,
    ``path`` (fractions), ``recipe`` (a str) and ``min_references`` (True) only where valid."""
    folder = Path(layer_dir)
    if not _real_folder(folder):
        return {}
    try:
        doc = read_json(folder / TRUST)
    except (OSError, DamagedError):
        return {}
    out = {}
    for stem, entry in (doc if isinstance(doc, dict) else {}).items():
        score = _fraction(entry.get("score")) if isinstance(entry, dict) else None
        if score is None:
            continue
        flagged, verdict = entry.get("flagged"), entry.get("verdict")
        card: dict = {
            "score": score,
            "flagged": flagged if isinstance(flagged, bool) else False,
            "verdict": verdict if isinstance(verdict, str) else "",
        }
        ci = entry.get("ci")
        if isinstance(ci, list) and len(ci) == 2 and None not in (bounds := _fractions(ci)):
            card["ci"] = bounds
        for key in ("natural", "path"):
            if (value := _fraction(entry.get(key))) is not None:
                card[key] = value
        if isinstance(entry.get("recipe"), str):
            card["recipe"] = entry["recipe"]
        if entry.get("min_references") is True:
            card["min_references"] = True
        out[str(stem)] = card
    return out


def _fractions(values: list) -> list[float | None]:
    return [_fraction(v) for v in values]


def _relative(value: object) -> str | None:
    """A relative path inside the layer folder (no ``..``, not absolute, no scheme), or None."""
    if not isinstance(value, str) or not value or value.startswith("/") or ":" in value:
        return None
    parts = value.split("/")
    if any(p in ("", ".", "..") or "\\" in p or "\0" in p for p in parts):
        return None
    return value


def read_concepts_summary(layer_dir: str | os.PathLike) -> dict | None:
    """``{"n", "page", "method", "concepts": [{"i", "page", "image"}]}`` of
    ``layer_dir/concepts_summary.json`` with every path relative inside the layer folder (else
    None: ``page``, or ``image``, which may be None); None if absent, damaged or pageless."""
    folder = Path(layer_dir)
    if not _real_folder(folder):
        return None
    try:
        doc = read_json(folder / CONCEPTS_SUMMARY)
    except (OSError, DamagedError):
        return None
    if not isinstance(doc, dict) or _relative(doc.get("page")) is None:
        return None
    concepts = []
    rows = doc.get("concepts")
    for row in rows if isinstance(rows, list) else []:
        i = row.get("i") if isinstance(row, dict) else None
        if isinstance(i, int) and not isinstance(i, bool) and _relative(row.get("page")):
            concepts.append({"i": i, "page": row["page"], "image": _relative(row.get("image"))})
    method = doc.get("method")
    return {
        "n": len(concepts),
        "page": doc["page"],
        "method": method if isinstance(method, str) else "",
        "concepts": concepts,
    }
