"""Concepts through the one runner: a view per dictionary, its batches, its examples, its pages.

``concept_views(concepts)`` registers the views ``concept_<digest>`` (natural recipe) and
``concept_<digest>_feature`` (feature recipe) whose objective for unit ``i`` is
``concepts.objective(i)`` and whose key holds the dictionary's digest, so a rerun with the same
dictionary renders nothing and a refit renders again. ``plan_concepts`` makes their batches
(``jobs.plan``, ``LAYERS`` layout: ``DIR/<layer>/concept_<digest>[_feature]_<i:04d>.png``);
``write_examples`` writes each concept's top crops and heatmaps; ``render_concepts`` runs the
plan with ``jobs.run`` and builds ``pages.concepts``. ``dictionary`` fits (the activation pass
on an executor: in-process or sharded over Ray workers) or loads a layer's saved dictionary, so
``midnite concepts`` and ``midnite catalogue --concepts`` resume alike. With ``--trust``,
``concept_targets`` gives ``jobs.trust`` each rendered concept (natural recipe, its direction)
and the pages show the card of ``<layer>/concept_trust.json``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from midnite.analysis.attribution import by_class, top_classes
from midnite.analysis.concepts import Concepts, learn
from midnite.errors import UsageError
from midnite.images import list_images, png_bytes
from midnite.jobs.executors import Executor
from midnite.jobs.plan import LAYERS, Batch, Settings, canonical, layer_folder, plan
from midnite.jobs.runner import Summary, run
from midnite.jobs.trust import CONCEPT_TRUST, Target, read_cards, recipe_of
from midnite.jobs.views import REGISTRY, View, register_view
from midnite.pages import concepts as concept_pages
from midnite.pages.classes import unit_names
from midnite.store import records as rec
from midnite.store.concepts import load_concepts, save_concepts
from midnite.store.files import DamagedError, atomic_write_bytes, read_json, write_json

__all__ = [
    "CLASSES",
    "DICTIONARY",
    "EXAMPLES",
    "FIT_FILE",
    "RECIPES",
    "SUMMARY",
    "concept_targets",
    "concept_views",
    "concepts_pages",
    "dictionary",
    "dictionary_digest",
    "done_units",
    "examples_of",
    "plan_concepts",
    "refresh_concept_pages",
    "render_concepts",
    "saved_dictionary",
    "with_concept_pages",
    "write_classes",
    "write_examples",
    "write_summary",
]

RECIPES = ("natural", "feature")  # the views of a concept, first the default
EXAMPLES = "concept_examples"  # the sub-folder of a layer's folder holding crops and heatmaps
DICTIONARY = "concepts.pt"  # a layer's saved dictionary (store.concepts)
FIT_FILE = "concepts_fit.json"  # what it was fitted from: the same settings load it


def _fitted_with(fit_file: Path) -> object:
    try:
        return read_json(fit_file)
    except (DamagedError, ValueError, OSError):  # unreadable: fit again
        return None


def _fit_settings(model_name, layer, images, n, method, seed, size) -> dict:
    return {
        "model": model_name,
        "layer": layer,
        "images": str(Path(images).resolve()),
        "n": n,
        "method": method,
        "seed": seed,
        "size": list(size),
    }


def _saved(model, layer: str, folder: Path, wanted: dict) -> Concepts | None:
    path, fit_file = folder / DICTIONARY, folder / FIT_FILE
    if path.is_file() and fit_file.is_file() and _fitted_with(fit_file) == wanted:
        try:
            return load_concepts(path, model, layer)
        except (UsageError, DamagedError):  # damaged, or its model file changed: fit again
            return None
    return None


def saved_dictionary(
    model: torch.nn.Module,
    model_name: str,
    layer: str,
    images: str | os.PathLike,
    n: int,
    out: str | os.PathLike,
    *,
    method: str | None = None,
    seed: int = 0,
    size: tuple[int, int] = (224, 224),
) -> Concepts | None:
    """The dictionary ``dictionary`` would load (same settings), or None: it would fit one."""
    wanted = _fit_settings(model_name, layer, images, n, method, seed, size)
    return _saved(model, layer, Path(out) / layer_folder(layer), wanted)


def dictionary(
    executor: Executor,
    model: torch.nn.Module,
    model_name: str,
    layer: str,
    images: str | os.PathLike,
    n: int,
    out: str | os.PathLike,
    *,
    method: str | None = None,
    seed: int = 0,
    size: tuple[int, int] = (224, 224),
    progress: bool = False,
    report: Callable[[str], None] | None = None,
) -> tuple[Concepts, bool]:
    """``layer``'s dictionary of ``n`` concepts: loaded from ``out/<layer>/concepts.pt`` when
    its fit file names these settings, else fitted (``executor.reservoir`` over the folder
    ``images``, ``out`` left out; ``analysis.concepts.learn`` here) and saved, the fit file
    last (a one-line error, e.g. more concepts than rows, writes nothing). Returns
    ``(concepts, fitted)``."""
    folder = Path(out) / layer_folder(layer)
    wanted = _fit_settings(model_name, layer, images, n, method, seed, size)
    saved = _saved(model, layer, folder, wanted)
    if saved is not None:
        return saved, False
    path = folder / DICTIONARY
    if not Path(images).is_dir():
        raise UsageError(f"--images must be a folder of images, got {str(images)!r}")
    if report is not None:
        report(f"fitting {n} concepts of {layer} on the images of {str(images)!r}")
    res = executor.reservoir(layer, Path(images), size, progress, [Path(out)], seed=seed)
    concepts = learn(model, res, n, method)
    folder.mkdir(parents=True, exist_ok=True)
    save_concepts(path, concepts)
    write_json(folder / FIT_FILE, wanted)  # last: a fit file names a saved dictionary
    # returned as loaded: loading renormalizes the rows, so a rerun's digest is the same
    return load_concepts(path, model, layer), True


def dictionary_digest(concepts: Concepts) -> str:
    """16 hex digits over what decides a concept's render: layer, method, directions, encoder."""
    if not isinstance(concepts, Concepts):
        raise UsageError(f"expected Concepts, got {type(concepts).__name__}")
    h = hashlib.sha256(f"{concepts.layer}\0{concepts.method}\0".encode())
    h.update(concepts.directions.detach().float().cpu().contiguous().numpy().tobytes())
    for name, value in sorted((concepts.encoder or {}).items()):
        h.update(name.encode())
        h.update(value.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _builder(concepts: Concepts) -> Callable[[str, Sequence[int]], list]:
    def build(layer: str, units: Sequence[int]) -> list:
        if layer != concepts.layer:
            raise UsageError(f"this dictionary is of layer {concepts.layer!r}, not {layer!r}")
        return [concepts.objective(u) for u in units]

    return build


def concept_views(concepts: Concepts) -> dict[str, str]:
    """Register (again, harmlessly) the views of ``concepts``; ``{recipe: view name}``."""
    digest = dictionary_digest(concepts)
    names = {}
    for recipe in RECIPES:
        name = f"concept_{digest}" + ("" if recipe == RECIPES[0] else f"_{recipe}")
        view = View(
            name,
            _builder(concepts),
            f"maximizes concept direction (dictionary {digest}, {recipe} recipe)",
            key={"concepts": digest},
        )
        register_view(view, replace=name in REGISTRY)
        names[recipe] = name
    return names


def plan_concepts(
    concepts: Concepts,
    model_name: str,
    settings: Settings,
    *,
    recipes: Sequence[str] = RECIPES,
    units: Sequence[int] | None = None,
) -> list[Batch]:
    """The batches rendering ``units`` (default: every concept) in each of ``recipes``."""
    names = concept_views(concepts)
    unknown = [r for r in recipes if r not in names]
    if unknown or not recipes:
        raise UsageError(f"concept recipes must be some of {', '.join(RECIPES)}, got {recipes}")
    shapes: dict[str, tuple[int, ...]] = {concepts.layer: (concepts.n,)}
    work: list[Batch] = []
    for recipe in dict.fromkeys(recipes):
        chosen = dataclasses.replace(settings, recipe=recipe)
        work += plan(
            concepts.model,
            model_name,
            [concepts.layer],
            shapes,
            settings=chosen,
            views=[names[recipe]],
            units=units,
            layout=LAYERS,
        )
    return work


def _examples_of(images: object, te, layer: str, i: int) -> list[tuple[float, Tensor]]:
    out = []
    for rank, ex in enumerate(te.examples(layer, i)):
        given = images[int(ex.image)] if isinstance(images, Tensor) else None
        out.append((ex.value, te.image(layer, i, rank, image=given)))
    return out


def write_examples(concepts: Concepts, images: object, out: str | os.PathLike, k: int = 6) -> dict:
    """Each concept's ``k`` top images: the crop at its maximum and the image under its heatmap,
    as PNGs in ``out/<layer>/concept_examples/``; returns (and writes as
    ``concept_examples.json``) ``{concept: [{value, crop, heat}, ...]}`` with relative paths."""
    folder = Path(out) / layer_folder(concepts.layer)
    (folder / EXAMPLES).mkdir(parents=True, exist_ok=True)
    te = concepts.top_examples(images, k)
    layer = concepts.layer
    found: dict[str, list[dict]] = {}
    for i in range(concepts.n):
        rows = []
        pics = _examples_of(images, te, layer, i)
        maps = concepts.maps(torch.stack([p for _, p in pics]))[:, i] if pics else None
        for rank, (value, pic) in enumerate(pics):
            assert maps is not None  # pics is not empty here
            heat = F.interpolate(maps[rank][None, None], size=pic.shape[1:], mode="bilinear")[0]
            heat = heat / heat.max().clamp_min(1e-12)
            shaded = pic * (0.25 + 0.75 * heat.clamp(0, 1))
            stem = f"{EXAMPLES}/{i:04d}_{rank:02d}"
            atomic_write_bytes(folder / f"{stem}_heat.png", png_bytes(shaded))
            try:
                crop = te.crop(layer, i, rank, image=pic)
                atomic_write_bytes(folder / f"{stem}_crop.png", png_bytes(crop))
                crop_file = f"{stem}_crop.png"
            except UsageError:  # a flat layer or no receptive field: no crop
                crop_file = None
            rows.append({"value": value, "heat": f"{stem}_heat.png", "crop": crop_file})
        found[str(i)] = rows
    write_json(folder / f"{EXAMPLES}.json", found)
    return found


def _weighty(units: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """The units whose weight is at least 1% of the largest (rounding noise left out)."""
    top = max(abs(w) for _, w in units)
    return [(u, w) for u, w in units if abs(w) >= 0.01 * top]


def _describe(concepts: Concepts, names: Mapping[str, str]) -> dict:
    return {
        "layer": concepts.layer,
        "method": concepts.method,
        "digest": dictionary_digest(concepts),
        "quality": dict(concepts.quality),
        "views": dict(names),
        "units": [_weighty(concepts.units(i, 5)) for i in range(concepts.n)],
    }


def concepts_pages(
    concepts: Concepts, out: str | os.PathLike, examples: Mapping | None = None, model: str = ""
):
    """A ``pages`` callback for ``jobs.run``: the layer's concept pages from the runner's scan."""
    folder = Path(out) / layer_folder(concepts.layer)
    info = {**_describe(concepts, concept_views(concepts)), "model": model}

    def build(scans: Mapping[str, rec.Scan], final: bool) -> Path:
        scan = scans.get(layer_folder(concepts.layer))
        valid = scan.valid() if scan is not None else {}
        shown = {**info, **_read_classes(concepts, folder), "trust": _read_trust(concepts, folder)}
        return concept_pages.build(folder, shown, set(valid), examples or {})

    return build


def render_concepts(
    concepts: Concepts,
    model_name: str,
    out: str | os.PathLike,
    settings: Settings,
    *,
    recipes: Sequence[str] = RECIPES,
    examples: Mapping | None = None,
    executor: Executor | None = None,
    progress: bool = False,
    report: Callable[[str], None] | None = None,
) -> Summary:
    """Render every concept of ``concepts`` into ``out`` (resumable) and build its pages and
    ``concepts_summary.json``; ``Summary.index`` is the layer's ``concepts.html``."""
    work = plan_concepts(concepts, model_name, settings, recipes=recipes)
    grid = Path(out) / layer_folder(concepts.layer) / concept_pages.LAYER_PAGE
    return run(
        work,
        out,
        executor=executor,
        model=concepts.model,
        progress=progress,
        report=report,
        pages=with_concept_pages(
            lambda scans, final: grid,
            [(concepts, examples or {})],
            out,
            model_name,
        ),
    )


def done_units(work: Sequence[Batch], out: str | os.PathLike) -> int:
    """How many units of ``work`` hold a record with their key in ``out``."""
    total = 0
    for b in work:
        folder = Path(out) / b.folder()
        valid = rec.scan(folder).valid() if folder.is_dir() else {}
        total += sum(
            (valid.get(b.stem(u)) or {}).get("key") == canonical(b.key(u)) for u in b.units
        )
    return total


def examples_of(
    concepts: Concepts, images: object, out: str | os.PathLike, k: int, fitted: bool
) -> dict:
    """The concepts' top crops and heatmaps (``write_examples``; of a folder ``images``, the
    files outside ``out``), read back instead when they were written for this dictionary (not
    ``fitted`` now) and cover every concept."""
    listed = Path(out) / layer_folder(concepts.layer) / f"{EXAMPLES}.json"
    if not fitted and listed.is_file():
        try:
            found = read_json(listed)
        except (DamagedError, ValueError, OSError):
            found = None
        if isinstance(found, dict) and len(found) == concepts.n:
            return found
    if isinstance(images, (str, os.PathLike)) and Path(images).is_dir():
        images = [Path(images) / name for name in list_images(images, exclude=[out])]
    write_classes(concepts, images, out)
    return write_examples(concepts, images, out, k)


CLASSES = "concept_classes.json"  # a layer's concepts' classes (``Concepts.classes``)
TOP_CLASSES = 5


def write_classes(concepts: Concepts, images: object, out: str | os.PathLike) -> dict | None:
    """``out/<layer>/concept_classes.json``: ``{"digest", "outputs", "classes": [[[class,
    share], ...] per concept]}``, the classes each concept matters most for; None (and no
    file) when the model's output is not ``(batch, classes)``."""
    try:
        table, counts = by_class(concepts, images)
    except UsageError as err:
        if "(batch, classes)" in str(err):
            return None
        raise
    data = {
        "digest": dictionary_digest(concepts),
        "outputs": table.shape[0],
        "classes": top_classes(table, counts, TOP_CLASSES),
    }
    folder = Path(out) / layer_folder(concepts.layer)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / CLASSES, data)
    return data


def _read_classes(concepts: Concepts, folder: Path) -> dict:
    """``classes`` and ``class_names`` for the concept pages, from ``concept_classes.json``
    when it was written for this dictionary (anything else: none shown)."""
    try:
        data = read_json(folder / CLASSES)
    except (DamagedError, ValueError, OSError):
        return {}
    if not isinstance(data, dict) or data.get("digest") != dictionary_digest(concepts):
        return {}
    outputs = data.get("outputs")
    names = unit_names(outputs if isinstance(outputs, int) else None)
    return {"classes": data.get("classes") or [], "class_names": list(names or [])}


SUMMARY = "concepts_summary.json"  # a layer's concepts for the catalogue's layer page


def write_summary(concepts: Concepts, out: str | os.PathLike, done: Collection[str]) -> Path:
    """``out/<layer>/concepts_summary.json`` (atomically): ``{"n", "page", "method",
    "concepts": [{"i", "page", "image"}]}``, ``image`` the natural render's PNG name, or None
    while it is not rendered (``done``: the stems of the valid renders)."""
    view = concept_views(concepts)[RECIPES[0]]
    items = []
    for i in range(concepts.n):
        stem = f"{view}_{i:04d}"
        image = f"{stem}.png" if stem in done else None
        items.append({"i": i, "page": concept_pages.concept_page(i), "image": image})
    summary = {
        "n": concepts.n,
        "page": concept_pages.LAYER_PAGE,
        "method": concepts.method,
        "concepts": items,
    }
    return write_json(Path(out) / layer_folder(concepts.layer) / SUMMARY, summary)


def with_concept_pages(
    pages: Callable[[Mapping[str, rec.Scan], bool], Path],
    layers: Sequence[tuple[Concepts, Mapping]],
    out: str | os.PathLike,
    model: str = "",
) -> Callable[[Mapping[str, rec.Scan], bool], Path]:
    """A ``pages`` callback for ``jobs.run``: ``pages`` (e.g. the catalogue's site), then the
    concept pages and ``concepts_summary.json`` of each ``(concepts, examples)`` layer whose
    renders changed (all of them the first time and at the end). Returns ``pages``' result."""
    builders = [(c, concepts_pages(c, out, ex, model)) for c, ex in layers]
    shown: dict[str, frozenset] = {}

    def build(scans: Mapping[str, rec.Scan], final: bool) -> Path:
        index = pages(scans, final)
        for concepts, pages_of in builders:
            scan = scans.get(layer_folder(concepts.layer))
            done = frozenset(scan.valid() if scan is not None else ())
            if final or shown.get(concepts.layer) != done:
                pages_of(scans, final)
                write_summary(concepts, out, done)
                shown[concepts.layer] = done
        return index

    return build


def concept_targets(concepts: Concepts) -> Callable[[Path], list[Target]]:
    """For ``jobs.trust``'s ``concepts=``: given the layer's folder, a ``Target`` per rendered
    concept (its natural-recipe PNG, as the concept page shows it; its direction), written to
    ``concept_trust.json`` under the render's stem."""
    view = concept_views(concepts)[RECIPES[0]]

    def targets(folder: Path) -> list[Target]:
        found = []
        for i in range(concepts.n):
            png = folder / f"{view}_{i:04d}.png"
            if not png.is_file():
                continue
            found.append(
                Target(
                    stem=png.stem,
                    label=f"concept {i} of {concepts.layer!r}",
                    picture=png.read_bytes(),
                    recipe=recipe_of(rec.read_record(png.with_suffix(".json"))),
                    direction=concepts.directions[i].detach().float().cpu().clone(),
                    file=CONCEPT_TRUST,
                )
            )
        return found

    return targets


def _read_trust(concepts: Concepts, folder: Path) -> dict[int, dict]:
    """``{concept: card}`` from ``concept_trust.json``, for this dictionary's renders only."""
    view = concept_views(concepts)[RECIPES[0]]
    cards = read_cards(folder / CONCEPT_TRUST)
    return {i: cards[f"{view}_{i:04d}"] for i in range(concepts.n) if f"{view}_{i:04d}" in cards}


def refresh_concept_pages(
    layers: Sequence[tuple[Concepts, Mapping]], out: str | os.PathLike, model: str = ""
) -> None:
    """Build the concept pages of each ``(concepts, examples)`` layer again from the folder
    (after the trust pass wrote their cards)."""
    for concepts, examples in layers:
        name = layer_folder(concepts.layer)
        folder = Path(out) / name
        scans = {name: rec.scan(folder)} if folder.is_dir() else {}
        concepts_pages(concepts, out, examples, model)(scans, True)
