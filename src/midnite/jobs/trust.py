"""The catalogue's trust pass: each rendered unit's ``TrustReport`` from what the folder holds.

``add_trust(out, model, judge)`` reads, per layer folder, the dataset examples already saved
(``examples.json``: no second pass over the user's images) and the unit pictures
(``<view>_<unit:04d>.png``), and writes ``DIR/<layer>/trust.json`` atomically::

    {"channel_0012": {"score": 0.81, "ci": [0.72, 0.87], "natural": 0.93, "path": 0.88,
                      "flagged": false, "verdict": "...", "recipe": "feature"}}
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from midnite.errors import UsageError
from midnite.evaluation.trust import TrustReport, assess
from midnite.evaluation.trust_stats import min_images, observe, path_layers
from midnite.images import UnreadableImageError, load
from midnite.store import records, site_files
from midnite.store.files import write_json

__all__ = ["TRUST", "TrustSummary", "add_trust", "layer_trust", "recipe_of"]

TRUST = "trust.json"


@dataclass
class TrustSummary:
    """What ``add_trust`` did: layers written, units scored, units flagged, what was skipped."""

    layers: list[str] = field(default_factory=list)
    scored: int = 0
    flagged: int = 0
    skipped: list[str] = field(default_factory=list)  # "layer: why"


def recipe_of(record: dict | None) -> str:
    """The recipe a unit record names (``settings.recipe``), ``"unknown"`` if none."""
    settings = record.get("settings") if isinstance(record, dict) else None
    recipe = settings.get("recipe") if isinstance(settings, dict) else None
    if isinstance(recipe, dict):
        recipe = recipe.get("name")
    return recipe if isinstance(recipe, str) else "unknown"


def _entry(rep: TrustReport) -> dict:
    return {
        "score": rep.score,
        "ci": None if rep.ci is None else list(rep.ci),
        "natural": rep.natural,
        "path": rep.path,
        "flagged": rep.flagged,
        "verdict": rep.verdict,
        "recipe": rep.recipe,
    }


def layer_trust(
    folder: str | os.PathLike,
    layer: str,
    model: nn.Module,
    judge: nn.Module,
    *,
    view: str = "channel",
    pairs: int = 100,
    refs: int = 9,
    seed: int = 0,
    size: int = site_files.EXAMPLE_SIZE,
    judge_layer: str | None = None,
) -> dict[str, dict]:
    """``{unit stem: entry}`` for the rendered units of ``layer`` in the catalogue ``folder``.

    The natural images are the layer's saved examples (every unit's, each file once), the
    pictures the saved PNGs, both loaded at ``size`` px; the target of a unit is its channel
    mean. Raises ``UsageError`` (one line) when the layer has too few examples for ``pairs``.
    """
    if judge is model:
        raise UsageError("judge must be a different network from model (it took part), got model")
    where = Path(folder) / site_files.layer_folder(layer)
    rows = site_files.read_examples(where)
    files = sorted({r["file"] for unit_rows in rows.values() for r in unit_rows})
    need = min_images(pairs, refs)
    if len(files) < need:
        raise UsageError(
            f"layer {layer!r} has {len(files)} saved example images; trust needs at least "
            f"{need} for {pairs} pairs with {refs} references a side"
        )
    pool = torch.stack([load(where / f, size=size, channels=3) for f in files])
    path = path_layers(model, layer, pool[:1])
    natural = observe(model, pool, target=layer, layers=path, judge=judge, judge_layer=judge_layer)
    out: dict[str, dict] = {}
    for png in sorted(where.glob(f"{view}_[0-9][0-9][0-9][0-9].png")):
        unit = int(png.stem.rsplit("_", 1)[1])
        if unit >= natural.target.shape[1]:
            continue
        try:
            pic = load(png, size=size, channels=3)[None]
        except UnreadableImageError:
            continue
        rep = TrustReport(
            target=f"channel({layer!r}, {unit})",
            recipe=recipe_of(records.read_record(png.with_suffix(".json"))),
            finite=bool(torch.isfinite(pic).all()),
        )
        if rep.finite:
            vis = observe(
                model, pic, target=layer, layers=path, judge=judge, judge_layer=judge_layer
            )
            values = natural.target[:, unit]
            try:
                assess(natural, vis, values, report=rep, pairs=pairs, refs=refs, seed=seed)
            except UsageError as err:  # a unit that hardly varies over the examples
                rep.problem = str(err)  # not scored, not flagged: nothing says it misleads
        out[png.stem] = _entry(rep)
    return out


def add_trust(
    folder: str | os.PathLike,
    layers: Sequence[str],
    model: nn.Module,
    judge: nn.Module,
    *,
    report: Callable[[str], None] | None = None,
    **options: object,
) -> TrustSummary:
    """Write ``DIR/<layer>/trust.json`` for each of ``layers`` (``layer_trust``'s options);
    a layer without enough saved examples is skipped and named to ``report`` in one line;
    ``judge is model`` is refused."""
    if judge is model:
        raise UsageError("judge must be a different network from model (it took part), got model")
    summary = TrustSummary()
    for layer in layers:
        try:
            doc = layer_trust(folder, layer, model, judge, **options)  # type: ignore[arg-type]
        except UsageError as err:
            summary.skipped.append(f"{layer}: {err}")
            if report is not None:
                report(f"trust of {layer!r} skipped: {err}")
            continue
        write_json(Path(folder) / site_files.layer_folder(layer) / TRUST, doc)
        summary.layers.append(layer)
        summary.scored += sum(1 for e in doc.values() if e["score"] is not None)
        summary.flagged += sum(1 for e in doc.values() if e["flagged"])
    return summary
