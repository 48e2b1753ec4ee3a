"""Writing a unit: the one finiteness check, the one record builder, the one unit writer.

Each unit's files are its PNG (``midnite.images.png_bytes``), where the layout asks for it
(render's and the catalogue's both do) and the unit has one image its attribution alpha map
(``alpha_png``), and its record, written last: a record exists only beside the files it
names, each written atomically (``records.atomic_write_bytes``).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import importlib.metadata
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import torch

from midnite.engine import RenderResult
from midnite.evaluation.metrics import summary
from midnite.images import alpha_png, png_bytes
from midnite.jobs.plan import Batch, canonical
from midnite.store import records as rec
from midnite.store.schema import Activation, AlphaFile, BatchPosition, ImageFile, Timing, UnitRecord

__all__ = ["Written", "build_record", "failures", "unit_metrics", "versions", "write_unit"]

_ALPHA_MEANING = "RGBA: the image, alpha = |d loss/d pixel| summed over steps / scale"


def failures(result: RenderResult) -> dict[int, str]:
    """The engine's ``result.failed``, plus any image or alpha map not finite all the same."""
    failed = dict(result.failed)
    finite = torch.isfinite(result.images).flatten(1).all(1).tolist()
    alpha = torch.isfinite(result.alpha).flatten(1).all(1).tolist()
    for i, (fine, fine_alpha) in enumerate(zip(finite, alpha, strict=True)):
        if not fine and i not in failed:
            failed[i] = "the image holds non-finite values"
        elif not fine_alpha and i not in failed:
            failed[i] = "the alpha map holds non-finite values"
    return failed


def versions(render_versions: dict) -> dict:
    """The render's versions plus those of the packages that shape a saved image."""
    found = dict(render_versions)
    for pkg in ("numpy", "pillow", "efficientnet-lite-pytorch", "torchvision", "timm"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[pkg] = importlib.metadata.version(pkg)
    return found


def unit_metrics(images: torch.Tensor, ok: Sequence[int]) -> list[dict]:
    """``midnite.metrics.summary`` per image, as one dict per image (those in ``ok`` only)."""
    metrics: list[dict] = [{} for _ in range(images.shape[0])]
    if not ok:
        return metrics
    try:
        per = summary(images[list(ok)], per_image=True)
    except ValueError as err:
        return [{"error": str(err)} for _ in metrics]
    for j, i in enumerate(ok):
        metrics[i] = {k: v[j] for k, v in per.items() if isinstance(v, list)}
    return metrics


def _rows(batch: Batch, unit: int) -> list[int]:
    """The images of ``result`` that make up ``unit``'s picture (a strip when several)."""
    if batch.spec.one_unit_per_batch:
        return list(range(batch.images))
    return [batch.units.index(unit)]


def build_record(
    batch: Batch,
    unit: int,
    result: RenderResult,
    files: dict[str, tuple[str, bytes]],
    *,
    alpha_scale: float | None = None,
    metrics: dict | None = None,
    command: Sequence[str] | None = None,
) -> UnitRecord:
    """The typed record of ``unit`` of ``batch`` (``store.UnitRecord``), from its ``result``.

    ``files``: ``{"image": (name, bytes)}`` and, with ``alpha_scale``, ``"alpha"``; several
    images per unit (a strip) give the mean activation and history over them. ``command``: the
    arguments after ``midnite`` when a command wrote it. Wall-clock values go to ``timing``
    only, outside what the record's identity compares.
    """
    rows = _rows(batch, unit)
    start = [float(result.start[r]) for r in rows]
    final = [float(result.final[r]) for r in rows]
    image_name, image_data = files["image"]
    alpha = None
    if "alpha" in files and alpha_scale is not None:
        alpha = AlphaFile(
            file=files["alpha"][0],
            sha256=hashlib.sha256(files["alpha"][1]).hexdigest(),
            scale=alpha_scale,
            meaning=_ALPHA_MEANING,
        )
    created = None
    if command is not None:
        now = datetime.datetime.now(datetime.timezone.utc)
        created = now.isoformat(timespec="seconds")
    return UnitRecord(
        model=batch.model,
        layer=batch.layer,
        unit=unit,
        objective=batch.view,
        view=batch.view,
        catalogue=True if batch.layout.per_layer else None,
        objective_repr=repr(batch.spec.unit_objective(batch.layer, unit)),
        key=_json(batch.key(unit)),
        run=_json(batch.run_config()),
        seed=batch.settings.seed if batch.settings else None,
        batch=BatchPosition(units=tuple(batch.units), position=rows[0], seed=batch.seed),
        settings=_json(result.settings),
        versions=_json(versions(result.settings.get("versions", {}))),
        activation=Activation(start=sum(start) / len(start), final=sum(final) / len(final)),
        history=tuple(sum(row) / len(row) for row in result.history[:, rows].tolist()),
        metrics=_json(metrics or {}),
        image=ImageFile(
            file=image_name,
            sha256=hashlib.sha256(image_data).hexdigest(),
            height=int(result.images.shape[-2]),
            width=int(result.images.shape[-1]) * len(rows),
        ),
        alpha=alpha,
        command=None if command is None else ("midnite", *command),
        timing=Timing(seconds=result.seconds, created=created),
    )


def _json(value: object) -> dict:
    return cast(dict, canonical(value))


class Written:
    """A unit just written: its record's path and the record as JSON values."""

    def __init__(self, path: Path, record: dict):
        self.path = path
        self.record = record


def write_unit(
    batch: Batch,
    unit: int,
    result: RenderResult,
    folder: Path,
    *,
    metrics: dict | None = None,
    command: Sequence[str] | None = None,
) -> Written:
    """Write ``unit``'s PNG (a strip for several images), alpha map and, last, its record."""
    rows = _rows(batch, unit)
    name = batch.stem(unit)
    image = result.images[rows[0]] if len(rows) == 1 else torch.cat(list(result.images), dim=-1)
    data = png_bytes(image)
    rec.atomic_write_bytes(folder / f"{name}.png", data)
    files = {"image": (f"{name}.png", data)}
    scale = None
    if batch.layout.alpha and len(rows) == 1:
        alpha = alpha_png(result.images[rows[0]], result.alpha[rows[0]])
        if alpha is not None:  # the record, written last, lists it
            rec.atomic_write_bytes(folder / f"{name}_alpha.png", alpha[0])
            files["alpha"] = (f"{name}_alpha.png", alpha[0])
            scale = alpha[1]
    record = build_record(
        batch, unit, result, files, alpha_scale=scale, metrics=metrics, command=command
    )
    path = rec.write_record(folder / f"{name}.json", record)
    return Written(path, record.to_json())
