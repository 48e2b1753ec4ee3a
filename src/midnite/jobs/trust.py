"""The catalogue's trust pass: each rendered unit's and concept's ``TrustReport`` from the folder.

``add_trust(out, layers, model, judge)`` reads, per layer folder, the dataset examples already
saved (``examples.json``: no second pass over the user's images), the unit pictures
(``<view>_<unit:04d>.png``) and, where rendered, their min pictures (``negative_<unit:04d>.png``,
Borowski et al.'s min references), and writes ``DIR/<layer>/trust.json`` atomically::

    {"channel_0012": {"score": 0.81, "ci": [0.72, 0.87], "natural": 0.93, "path": 0.88,
                      "flagged": false, "verdict": "...", "recipe": "feature",
                      "min_references": true}}

(``min_references`` is there only when the unit's min pictures were used.)

Concepts (``concepts=``, ``jobs.concepts.concept_targets``) are scored against the same
example pool, the target their direction, and written to ``DIR/<layer>/concept_trust.json``
(keyed by the concept render's stem, so a refitted dictionary has no stale card).
``ray_trust`` does the same with one Ray task per layer (model and judge loaded there by name);
the driver reads and writes every file, so both give the same JSON.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from midnite.errors import UsageError
from midnite.evaluation.trust import TrustReport, assess
from midnite.evaluation.trust_stats import Observed, min_images, observe, path_layers
from midnite.images import UnreadableImageError, load
from midnite.store import records, site_files
from midnite.store.files import DamagedError, read_json, write_json

__all__ = [
    "CONCEPT_TRUST",
    "NEGATIVE",
    "TRUST",
    "LayerWork",
    "Target",
    "TrustSummary",
    "add_trust",
    "card",
    "layer_trust",
    "ray_trust",
    "read_cards",
    "recipe_of",
    "score_layer",
    "unit_work",
]

TRUST = "trust.json"  # a layer's units' reports
CHUNK = 32  # targets whose pictures go through the model and the judge in one pass
CONCEPT_TRUST = "concept_trust.json"  # a layer's concepts' reports
NEGATIVE = "negative"  # the view whose pictures are a unit's min references


@dataclass
class TrustSummary:
    """What ``add_trust`` did: layers written, pictures scored and flagged, layers skipped."""

    layers: list[str] = field(default_factory=list)
    scored: int = 0
    flagged: int = 0
    skipped: list[str] = field(default_factory=list)  # "layer: why"


@dataclass
class Target:
    """One picture to score: its stem, its PNG bytes, the recipe it names, the channel
    (``unit``) or ``direction`` ``(C,)`` it shows, optional min-picture bytes, and the file
    its entry goes to (``TRUST`` or ``CONCEPT_TRUST``)."""

    stem: str
    label: str
    picture: bytes
    recipe: str
    unit: int | None = None
    direction: Tensor | None = None
    negative: bytes | None = None
    file: str = TRUST


@dataclass
class LayerWork:
    """One layer's trust task, self-contained (bytes, no paths): it travels to a Ray worker."""

    layer: str
    pool: list[bytes]  # the layer's saved example images, by file name
    targets: list[Target]


def recipe_of(record: dict | None) -> str:
    """The recipe a unit record names (``settings.recipe``), ``"unknown"`` if none."""
    settings = record.get("settings") if isinstance(record, dict) else None
    recipe = settings.get("recipe") if isinstance(settings, dict) else None
    if isinstance(recipe, dict):
        recipe = recipe.get("name")
    return recipe if isinstance(recipe, str) else "unknown"


def _entry(rep: TrustReport, min_references: bool) -> dict:
    """A report as its file keeps it; ``min_references`` only when they were used."""
    entry = {
        "score": rep.score,
        "ci": None if rep.ci is None else list(rep.ci),
        "natural": rep.natural,
        "path": rep.path,
        "flagged": rep.flagged,
        "verdict": rep.verdict,
        "recipe": rep.recipe,
    }
    return {**entry, "min_references": True} if min_references else entry


def _pool(where: Path, layer: str, pairs: int, refs: int) -> list[bytes]:
    """The bytes of ``layer``'s saved example images (every unit's, each file once, by name);
    a one-line ``UsageError`` when there are too few for ``pairs`` pairs."""
    rows = site_files.read_examples(where)
    files = sorted({r["file"] for unit_rows in rows.values() for r in unit_rows})
    need = min_images(pairs, refs)
    if len(files) < need:
        raise UsageError(
            f"layer {layer!r} has {len(files)} saved example images; trust needs at least "
            f"{need} for {pairs} pairs with {refs} references a side"
        )
    return [(where / f).read_bytes() for f in files]


def _bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes() if path.is_file() else None
    except OSError:
        return None


def unit_work(
    folder: str | os.PathLike,
    layer: str,
    *,
    view: str = "channel",
    pairs: int = 100,
    refs: int = 9,
    extra: Callable[[Path], Iterable[Target]] | None = None,
) -> LayerWork:
    """``layer``'s task: its example pool and a ``Target`` per ``<view>_<unit:04d>.png``, with
    ``negative_<unit:04d>.png`` as min references where it exists; ``extra(layer folder)``
    adds more targets (concepts). Raises ``UsageError`` when the pool is too small."""
    where = Path(folder) / site_files.layer_folder(layer)
    pool = _pool(where, layer, pairs, refs)
    targets = []
    for png in sorted(where.glob(f"{view}_[0-9][0-9][0-9][0-9].png")):
        picture = _bytes(png)
        if picture is None:
            continue
        unit = int(png.stem.rsplit("_", 1)[1])
        targets.append(
            Target(
                stem=png.stem,
                label=f"channel({layer!r}, {unit})",
                picture=picture,
                recipe=recipe_of(records.read_record(png.with_suffix(".json"))),
                unit=unit,
                negative=_bytes(where / f"{NEGATIVE}_{unit:04d}.png") if view != NEGATIVE else None,
            )
        )
    targets += list(extra(where)) if extra is not None else []
    return LayerWork(layer, pool, targets)


def _image(data: bytes | None, size: int) -> Tensor | None:
    """A picture's bytes as ``(1, 3, H, W)``, or None when absent or unreadable."""
    if data is None:
        return None
    try:
        return load(data, size=size, channels=3)[None]
    except UnreadableImageError:
        return None


def score_layer(
    work: LayerWork,
    model: nn.Module,
    judge: nn.Module,
    *,
    pairs: int = 100,
    refs: int = 9,
    seed: int = 0,
    size: int = site_files.EXAMPLE_SIZE,
    judge_layer: str | None = None,
) -> dict[str, dict]:
    """``{file: {stem: entry}}`` for the targets of ``work``: each picture (and its min
    pictures) observed like the pool's images, all loaded at ``size`` px, and ``assess``-ed
    against the pool; a unit's values are its channel means, a concept's their dot product
    with its direction (the direction objective, linear in the channel means)."""
    if judge is model:
        raise UsageError("judge must be a different network from model (it took part), got model")
    pool = torch.stack([load(b, size=size, channels=3) for b in work.pool])
    path = path_layers(model, work.layer, pool[:1])
    common: dict[str, Any] = dict(target=work.layer, layers=path, judge=judge)
    natural = observe(model, pool, judge_layer=judge_layer, **common)
    out: dict[str, dict] = {TRUST: {}, CONCEPT_TRUST: {}}
    todo: list[tuple[Target, TrustReport, list[Tensor]]] = []  # the pictures to observe
    for t in work.targets:
        if t.unit is not None and t.unit >= natural.target.shape[1]:
            continue
        pic = _image(t.picture, size)
        if pic is None:
            continue
        rep = TrustReport(target=t.label, recipe=t.recipe, finite=bool(torch.isfinite(pic).all()))
        neg = _image(t.negative, size)
        shown = [pic] if neg is None or not bool(torch.isfinite(neg).all()) else [pic, neg]
        todo.append((t, rep, shown if rep.finite else []))
    for lo in range(0, len(todo), CHUNK):  # one pass per chunk, not one per picture
        chunk = todo[lo : lo + CHUNK]
        pics = [p for _, _, shown in chunk for p in shown]
        seen = observe(model, torch.cat(pics), judge_layer=judge_layer, **common) if pics else None
        at = 0
        for t, rep, shown in chunk:
            if seen is not None and shown:
                vis = seen.rows(at, at + len(shown[0]))
                mins = seen.rows(at + len(shown[0]), at + sum(map(len, shown)))
                at += sum(map(len, shown))
                _assess(natural, t, rep, vis, mins if len(shown) == 2 else None,
                        pairs=pairs, refs=refs, seed=seed)  # fmt: skip
            out.setdefault(t.file, {})[t.stem] = _entry(rep, len(shown) == 2)
    return out


def _assess(natural: Observed, t: Target, rep: TrustReport, vis: Observed,
            mins: Observed | None, **options: int) -> None:  # fmt: skip
    """``assess`` one target against the pool: a unit's values are its channel means, a
    concept's their dot product with its direction."""
    if t.unit is not None:
        values = natural.target[:, t.unit]
    else:
        assert t.direction is not None  # a Target names a unit or a direction
        values = natural.target @ t.direction.float()
    try:
        assess(natural, vis, values, report=rep, negative=mins, **options)
    except UsageError as err:  # a target that hardly varies over the examples
        rep.problem = str(err)  # not scored, not flagged: nothing says it misleads


def layer_trust(
    folder: str | os.PathLike,
    layer: str,
    model: nn.Module,
    judge: nn.Module,
    *,
    view: str = "channel",
    pairs: int = 100,
    refs: int = 9,
    **options: Any,
) -> dict[str, dict]:
    """``{unit stem: entry}`` for the rendered units of ``layer`` in the catalogue ``folder``
    (``unit_work`` then ``score_layer``; ``options``: ``seed``, ``size``, ``judge_layer``).
    Raises ``UsageError`` (one line) when the layer has too few examples for ``pairs``."""
    if judge is model:
        raise UsageError("judge must be a different network from model (it took part), got model")
    work = unit_work(folder, layer, view=view, pairs=pairs, refs=refs)
    return score_layer(work, model, judge, pairs=pairs, refs=refs, **options)[TRUST]


Scorer = Callable[[list[LayerWork]], Iterator[tuple[LayerWork, dict | Exception]]]


def _add(
    folder: str | os.PathLike,
    layers: Sequence[str],
    scorer: Scorer,
    *,
    report: Callable[[str], None] | None,
    concepts: Mapping[str, Callable[[Path], Iterable[Target]]],
    view: str,
    pairs: int,
    refs: int,
) -> TrustSummary:
    """Gather each layer's work here, score it with ``scorer``, write its files here."""
    summary = TrustSummary()

    def skip(layer: str, err: Exception) -> None:
        summary.skipped.append(f"{layer}: {err}")
        if report is not None:
            report(f"trust of {layer!r} skipped: {err}")

    works = []
    for layer in layers:
        try:
            works.append(unit_work(folder, layer, view=view, pairs=pairs, refs=refs,
                                   extra=concepts.get(layer)))  # fmt: skip
        except UsageError as err:
            skip(layer, err)
    for work, docs in scorer(works):
        if isinstance(docs, UsageError):
            skip(work.layer, docs)
            continue
        if isinstance(docs, Exception):
            raise docs
        where = Path(folder) / site_files.layer_folder(work.layer)
        for name, doc in docs.items():
            if doc or name == TRUST:
                write_json(where / name, doc)
        summary.layers.append(work.layer)
        entries = [e for doc in docs.values() for e in doc.values()]
        summary.scored += sum(1 for e in entries if e["score"] is not None)
        summary.flagged += sum(1 for e in entries if e["flagged"])
    return summary


def add_trust(
    folder: str | os.PathLike,
    layers: Sequence[str],
    model: nn.Module,
    judge: nn.Module,
    *,
    report: Callable[[str], None] | None = None,
    concepts: Mapping[str, Callable[[Path], Iterable[Target]]] | None = None,
    view: str = "channel",
    pairs: int = 100,
    refs: int = 9,
    **options: Any,
) -> TrustSummary:
    """Write ``DIR/<layer>/trust.json`` (and ``concept_trust.json`` for the layers in
    ``concepts``: ``{layer: extra targets}``) for each of ``layers`` in this process
    (``score_layer``'s ``options``); a layer without enough saved examples is skipped and named
    to ``report`` in one line; ``judge is model`` is refused."""
    if judge is model:
        raise UsageError("judge must be a different network from model (it took part), got model")

    def scorer(works: list[LayerWork]) -> Iterator[tuple[LayerWork, dict | Exception]]:
        for work in works:
            try:
                yield work, score_layer(work, model, judge, pairs=pairs, refs=refs, **options)
            except UsageError as err:
                yield work, err

    return _add(folder, layers, scorer, report=report, concepts=concepts or {}, view=view,
                pairs=pairs, refs=refs)  # fmt: skip


Spec = tuple[str, str | None]  # a model's name and, for a file model, its source


def _ray_layer(model: Spec, judge: Spec, threads: int, work: LayerWork, options: dict) -> dict:
    """One Ray task: load the model and the judge by name, score one layer."""
    from midnite.jobs.ray import build_model

    built = build_model(*model, threads), build_model(*judge, threads)
    return score_layer(work, *built, **options)


def ray_trust(
    executor: Any,
    folder: str | os.PathLike,
    layers: Sequence[str],
    judge: str,
    *,
    report: Callable[[str], None] | None = None,
    concepts: Mapping[str, Callable[[Path], Iterable[Target]]] | None = None,
    view: str = "channel",
    pairs: int = 100,
    refs: int = 9,
    **options: Any,
) -> TrustSummary:
    """``add_trust`` on the Ray cluster of an open ``jobs.ray.RayExecutor``: one task per layer
    (its examples and pictures sent as bytes; the executor's model and ``judge`` loaded there by
    name), the results written here in layer order. The tasks ask for no CPU: the executor's
    actors hold them all and sit idle once the renders are done."""
    from midnite.jobs.ray import RESTARTS, model_spec

    if model_spec(judge)[0] == executor.model:
        raise UsageError(f"judge must be a different network from the model, got {judge!r}")
    ray = executor.ray
    task = ray.remote(num_cpus=0, max_retries=RESTARTS)(_ray_layer)
    opts = {"pairs": pairs, "refs": refs, **options}

    def scorer(works: list[LayerWork]) -> Iterator[tuple[LayerWork, dict | Exception]]:
        model = (executor.model, executor.source)
        refs_ = [task.remote(model, model_spec(judge), executor.threads, w, opts) for w in works]
        for work, ref in zip(works, refs_, strict=True):
            try:
                yield work, ray.get(ref)
            except ray.exceptions.RayTaskError as err:  # the task raised: the cause
                cause = err.as_instanceof_cause()
                yield work, cause if isinstance(cause, Exception) else err

    return _add(folder, layers, scorer, report=report, concepts=concepts or {}, view=view,
                pairs=pairs, refs=refs)  # fmt: skip


def _fraction(value: object) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1
    return float(value) if ok else None  # type: ignore[arg-type]


def card(entry: object) -> dict | None:
    """A trust entry checked for a page: ``score``/``natural`` in [0, 1] or None, ``ci`` two
    such numbers or None, ``path`` in [0, 1] or None, ``flagged``/``min_references`` bools,
    ``verdict``/``recipe`` strings; None when ``entry`` is not a dict with a verdict."""
    if not isinstance(entry, dict) or not isinstance(entry.get("verdict"), str):
        return None
    ci = entry.get("ci")
    bounds = [_fraction(x) for x in ci] if isinstance(ci, list) and len(ci) == 2 else None
    recipe = entry.get("recipe")
    return {
        "score": _fraction(entry.get("score")),
        "ci": bounds if bounds is not None and None not in bounds else None,
        "natural": _fraction(entry.get("natural")),
        "path": _fraction(entry.get("path")),
        "flagged": entry.get("flagged") is True,
        "verdict": entry["verdict"],
        "recipe": recipe if isinstance(recipe, str) else "unknown",
        "min_references": entry.get("min_references") is True,
    }


def read_cards(path: str | os.PathLike) -> dict[str, dict]:
    """``{stem: card}`` of a trust file (``trust.json``, ``concept_trust.json``); {} when it
    is absent or damaged; entries that are no card are left out."""
    try:
        doc = read_json(Path(path))
    except (OSError, ValueError, DamagedError):
        return {}
    found = {str(k): card(v) for k, v in doc.items()} if isinstance(doc, dict) else {}
    return {k: v for k, v in found.items() if v is not None}
