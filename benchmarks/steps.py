"""How many steps each layer needs: the measurement behind ``--steps auto`` and its checks.

Sections (EfficientNet-Lite0 from the installed package, one torch thread):
  measure  For each layer of ``--layers`` (default: Lite0's block outputs ``_blocks.0-15``) and
           each ``--seeds`` seed, the catalogue's first batch of the channel view (units 0-7,
           the catalogue's defaults: feature recipe, 224 px, batch 8, its batch seed) rendered
           for 256 steps with snapshots every 16 steps. Each snapshot is scored by the engine
           (the objective on the image without per-step transforms, as ``RenderResult.final``;
           a render of S steps is the S-step prefix of the 256-step one: no schedule in the
           loop depends on the steps) and its naturalness taken (``metrics.naturalness``).
           Results go to ``--json`` after every render (a rerun skips what is there).
  schedule Per layer, the first snapshot step whose score reaches 95% of the 256-step score,
           for the fit units (0-3; the worst of them and of the seeds), and the steps of the
           history (the per-step objective, with transforms: a running mean of 8 steps
           against the mean of the last 8), beside ``jobs.steps``'s shipped schedule.
  quality  The held-out units (4-7, not used to fit) at the shipped schedule's steps against
           256: score ratio (median and worst), naturalness (slope, high-frequency and total
           variation ratios) at both.
  schedules The same first channel batches at 128 steps with other step sizes: constant 0.1 and
           0.2, and a cosine decay to 0 from 0.05 and 0.1 (a callable ``optimizer``: Adam
           with a ``LambdaLR``), each image's objective on the result against its 256-step
           (and 128-step) score at the recipe's constant 0.05 in ``--json``; naturalness too.
           Results go to ``--out`` (default schedules.json; a rerun skips what is there).
  views    The negative and diversity views (the schedule was fitted on the channel view) at
           the layers of ``jobs.steps.LITE0``: negative on units 0-7, diversity on units 0 and 1
           (4 images each), 256 steps at seed 0, snapshots scored as in measure (diversity also
           by its channel term alone and by its images' Gram similarity), to ``--json``; then
           per layer and view the ratio at the auto steps to 256 and the steps to 95%.
  project  Lite0's whole block-output catalogue (3 views, 224 px, batch 8) with ``--steps``
           256 and ``auto``, projected as ``benchmarks/catalogue.py project`` does: per-layer
           costs (its 2026-11-29 per-layer table at 256 steps, ``COSTS_256``; no probe renders
           on a machine this busy) x each batch's image-steps, batches in plan order to the
           first idle of 1, 8 and 64 workers, + ``--overhead`` s per batch on 8 and 64 (Ray's,
           measured there: 0.017).

    nice -n 10 python benchmarks/steps.py measure --json steps.json [--layers ...] [--seeds 0 1]
    python benchmarks/steps.py report --json steps.json        # schedule + quality tables
    nice -n 10 python benchmarks/steps.py views --json views.json [--views negative diversity]
    nice -n 10 python benchmarks/steps.py schedules --json steps.json --layers _blocks.0 ...
    nice -n 10 python benchmarks/steps.py project
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import table

from midnite import catalogue as cat
from midnite import models, objectives
from midnite.engine import RenderConfig, layers, render_config
from midnite.evaluation import metrics
from midnite.jobs.steps import LITE0, layer_steps

MODEL = "efficientnet-lite0"
SIZE = 224
STEPS = 256
EVERY = 16  # snapshot spacing (the schedule's rounding)
UNITS = tuple(range(8))  # the catalogue's first batch of each layer
FIT, HELD = UNITS[:4], UNITS[4:]
BLOCKS = [f"_blocks.{i}" for i in range(16)]
SHOTS = tuple(range(EVERY, STEPS + 1, EVERY))


def score(model: Any, config: Any, images: torch.Tensor) -> list[float]:
    """The engine's objective per image on ``images`` (no per-step transforms): a 0-step render
    from them (they are written into the parameterization exactly, within 1e-4)."""
    start = RenderConfig.resolve(
        model, config.objective, size=config.size, batch=images.shape[0], steps=0, init=images,
        recipe=config.recipe, seed=0,
    )  # fmt: skip
    return render_config(model, start, progress=False).final.tolist()


def natural(images: torch.Tensor) -> list[list[float]]:
    """Per image: spectrum slope, high-frequency energy ratio, total variation ratio."""
    rows = []
    for img in images:
        n = metrics.naturalness(img[None])
        rows.append(
            [
                n.spectrum_slope,
                n.high_frequency_energy / n.reference_high_frequency_energy,
                n.total_variation / n.reference_total_variation,
            ]
        )
    return rows


def measure_one(model: Any, shapes: dict, layer: str, seed: int) -> dict:
    """One 256-step render of ``layer``'s first channel batch at ``seed``, scored at snapshots."""
    settings = cat.Settings(size=(SIZE, SIZE), steps=STEPS, batch=len(UNITS), seed=seed)
    (batch,) = cat.plan(
        model, MODEL, [layer], shapes, settings=settings, views=["channel"], units=list(UNITS)
    )
    result, row = scored_render(model, batch.config)
    return {
        "layer": layer,
        "seed": seed,
        "units": list(batch.units),
        **row,
        "history": result.history.T.tolist(),  # per image, per step
        "final": result.final.tolist(),
    }


def scored_render(model: Any, config: Any) -> tuple[Any, dict]:
    """``config`` rendered with a snapshot every ``EVERY`` steps, and what measure keeps of it:
    seconds, load, each snapshot's score and naturalness (per snapshot step, per image)."""
    began = time.perf_counter()
    result = render_config(model, config, progress=False, snapshots=SHOTS)
    return result, {
        "seconds": time.perf_counter() - began,
        "load": os.getloadavg()[0],
        "scores": {str(s): score(model, config, result.snapshots[s]) for s in SHOTS},
        "natural": {str(s): natural(result.snapshots[s]) for s in SHOTS},
    }


def measure(args: argparse.Namespace) -> None:
    path = Path(args.json)
    done: list[dict] = json.loads(path.read_text()) if path.exists() else []
    have = {(d["layer"], d["seed"]) for d in done}
    model = models.load(MODEL)
    shapes = {i.name: tuple(i.shape) for i in layers(model, (SIZE, SIZE)) if i.shape}
    for seed in args.seeds:
        for layer in args.layers:
            if (layer, seed) in have:
                continue
            row = measure_one(model, shapes, layer, seed)
            done.append(row)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(done))
            tmp.replace(path)  # a kill loses at most the render in progress
            print(
                f"{layer} seed {seed}: {row['seconds']:.0f} s (load {row['load']:.2f}); "
                f"reach95 {reach(row, FIT)}",
                flush=True,
            )


def reach(row: dict, units: tuple[int, ...], share: float = 0.95) -> list[int | None]:
    """Per unit of ``units``: the first snapshot step whose score is >= share x the 256-step's."""
    out: list[int | None] = []
    for u in units:
        i = row["units"].index(u)
        last = row["scores"][str(STEPS)][i]
        if not last > 0:
            out.append(None)  # a non-positive objective has no "95% of it"
            continue
        out.append(next(s for s in SHOTS if row["scores"][str(s)][i] >= share * last))
    return out


def reach_history(row: dict, units: tuple[int, ...], window: int = 8) -> list[int | None]:
    """Per unit: the first step whose running mean (``window`` steps) of the history reaches
    95% of the mean of the last ``window`` steps (the history is noisy: random transforms)."""
    out: list[int | None] = []
    for u in units:
        h = row["history"][row["units"].index(u)]
        last = statistics.fmean(h[-window:])
        if not last > 0:
            out.append(None)
            continue
        out.append(
            next(
                s + 1
                for s in range(window - 1, len(h))
                if statistics.fmean(h[s - window + 1 : s + 1]) >= 0.95 * last
            )
        )
    return out


def report(args: argparse.Namespace) -> None:
    rows: list[dict] = json.loads(Path(args.json).read_text())
    by_layer: dict[str, list[dict]] = {}
    for r in rows:
        by_layer.setdefault(r["layer"], []).append(r)
    print(_schedule_table(by_layer))
    print()
    print(_curve_table(by_layer))
    print()
    print(_quality_table(by_layer))
    loads = [r["load"] for r in rows]
    print(
        f"\n{len(rows)} renders, {sum(r['seconds'] for r in rows):.0f} s of rendering, "
        f"load average (1 min) {min(loads):.2f}-{max(loads):.2f} during them"
    )


def _worst(values: list[int | None]) -> str:
    got = [v for v in values if v is not None]
    return str(max(got)) if got else "-"


def _schedule_table(by_layer: dict[str, list[dict]]) -> str:
    from midnite.jobs import steps as auto

    body = []
    for layer, runs in by_layer.items():
        fit = [s for r in runs for s in reach(r, FIT)]
        hist = [s for r in runs for s in reach_history(r, FIT)]
        body.append(
            [
                layer,
                f"{auto.LITE0[layer][0]:.3f}" if layer in auto.LITE0 else "-",
                ",".join(str(r["seed"]) for r in runs),
                " ".join("-" if s is None else str(s) for s in fit),
                _worst(fit),
                _worst(hist),
                auto.steps_at(auto.LITE0[layer][0]) if layer in auto.LITE0 else "-",
                f"{statistics.fmean(r['seconds'] for r in runs):.0f}",
            ]
        )
    return table(
        "Steps to 95% of the 256-step objective, Lite0 channel view, units 0-3 (fit), feature "
        "recipe, 224 px, batch 8 (score: the engine's objective on the snapshot image, every 16 "
        "steps; history: running mean of 8 steps of the per-step objective)",
        ["layer", "depth", "seeds", "steps to 95% (score)", "worst", "worst (history)",
         "auto steps", "s per render"],
        body,
    )  # fmt: skip


CURVE = (32, 64, 96, 128, 160, 192, 224)


def _curve_table(by_layer: dict[str, list[dict]]) -> str:
    """Per layer, the share of the 256-step score reached at a few steps (all 8 units)."""
    body = []
    for layer, runs in by_layer.items():
        cells = [layer]
        for s in CURVE:
            got = [
                r["scores"][str(s)][i] / r["scores"][str(STEPS)][i]
                for r in runs
                for i in range(len(r["units"]))
                if r["scores"][str(STEPS)][i] > 0
            ]
            cells.append(f"{statistics.median(got):.2f} ({min(got):.2f})")
        body.append(cells)
    return table(
        "Share of the 256-step score reached after S steps, median (worst) over units 0-7",
        ["layer", *(f"S={s}" for s in CURVE)],
        body,
    )


def _quality_table(by_layer: dict[str, list[dict]]) -> str:
    from midnite.jobs import steps as auto

    body, ratios = [], []
    for layer, runs in by_layer.items():
        steps = auto.steps_at(auto.LITE0[layer][0]) if layer in auto.LITE0 else STEPS
        mine, nat_s, nat_f = [], [], []
        for r in runs:
            for u in HELD:
                i = r["units"].index(u)
                last = r["scores"][str(STEPS)][i]
                mine.append(r["scores"][str(steps)][i] / last if last > 0 else math.nan)
                nat_s.append(r["natural"][str(steps)][i])
                nat_f.append(r["natural"][str(STEPS)][i])
        ratios += mine
        body.append(
            [layer, steps, len(mine), f"{statistics.median(mine):.3f}", f"{min(mine):.3f}"]
            + [
                f"{statistics.fmean(x[k] for x in nat_s):.2f} / "
                f"{statistics.fmean(x[k] for x in nat_f):.2f}"
                for k in range(3)
            ]
        )
    good = [x for x in ratios if not math.isnan(x)]
    body.append(
        ["all", "-", len(good), f"{statistics.median(good):.3f}", f"{min(good):.3f}", "", "", ""]
    )
    return table(
        "Held-out units 4-7 at the auto steps against 256: objective on the image (score at auto "
        "/ score at 256; target >= 0.95 median and worst), naturalness at auto / at 256 (slope; "
        "HF and TV as ratios to the shipped photos')",
        ["layer", "auto steps", "images", "score ratio median", "worst", "slope", "HF ratio",
         "TV ratio"],
        body,
    )  # fmt: skip


SCHEDULES = (("constant", 0.1), ("constant", 0.2), ("cosine", 0.05), ("cosine", 0.1))
SHORT = 128  # the steps the schedules get


def scheduled_adam(kind: str, steps: int):
    """An ``optimizer`` callable for ``RenderConfig``: Adam whose step size follows ``kind``
    ("constant", or "cosine": half a cosine from lr to 0 over ``steps``)."""

    def factor(t: int) -> float:
        return (
            1.0 if kind == "constant" else 0.5 * (1.0 + math.cos(math.pi * min(t, steps) / steps))
        )

    def make(params: list, lr: float) -> torch.optim.Optimizer:
        opt = torch.optim.Adam(params, lr=lr)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        opt.register_step_post_hook(lambda *_: sched.step())
        return opt

    return make


def schedules(args: argparse.Namespace) -> None:
    ref = {r["layer"]: r for r in json.loads(Path(args.json).read_text()) if r["seed"] == 0}
    path = Path(args.out)
    done: list[dict] = json.loads(path.read_text()) if path.exists() else []
    have = {(d["layer"], d["kind"], d["lr"]) for d in done}
    model = models.load(MODEL)
    shapes = {i.name: tuple(i.shape) for i in layers(model, (SIZE, SIZE)) if i.shape}
    for layer in args.layers:
        if layer not in ref:
            raise SystemExit(f"{layer}: no 256-step measurement in {args.json} (run measure)")
        for kind, lr in SCHEDULES:
            if (layer, kind, lr) in have:
                continue
            settings = cat.Settings(size=(SIZE, SIZE), steps=SHORT, batch=len(UNITS), seed=0)
            (batch,) = cat.plan(
                model, MODEL, [layer], shapes, settings=settings, views=["channel"],
                units=list(UNITS),
            )  # fmt: skip
            config = batch.config.replace(lr=lr, optimizer=scheduled_adam(kind, SHORT))
            began = time.perf_counter()
            result = render_config(model, config, progress=False)
            done.append({
                "layer": layer, "kind": kind, "lr": lr, "seconds": time.perf_counter() - began,
                "load": os.getloadavg()[0], "final": result.final.tolist(),
                "natural": natural(result.images),
            })  # fmt: skip
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(done))
            tmp.replace(path)
    print(_schedules_table(ref, done))


def _schedules_table(ref: dict[str, dict], done: list[dict]) -> str:
    body = []
    for layer in dict.fromkeys(d["layer"] for d in done):
        r = ref[layer]
        base, short = r["scores"][str(STEPS)], r["scores"][str(SHORT)]
        same = statistics.median(a / b for a, b in zip(short, base, strict=True))
        nat = r["natural"][str(STEPS)]
        body.append([layer, "constant", 0.05, STEPS, "1", "1", *_nat_cells(nat)])
        body.append(
            [
                layer,
                "constant",
                0.05,
                SHORT,
                f"{same:.3f}",
                f"{min(a / b for a, b in zip(short, base, strict=True)):.3f}",
                *_nat_cells(r["natural"][str(SHORT)]),
            ]
        )
        for d in (d for d in done if d["layer"] == layer):
            got = [a / b for a, b in zip(d["final"], base, strict=True)]
            body.append(
                [
                    layer,
                    d["kind"],
                    d["lr"],
                    SHORT,
                    f"{statistics.median(got):.3f}",
                    f"{min(got):.3f}",
                    *_nat_cells(d["natural"]),
                ]
            )
    return table(
        "Step-size schedules at 128 steps against the recipe's 256 (constant 0.05): objective on "
        "the image / its 256-step value, median and worst of units 0-7; naturalness medians "
        "(slope; HF and TV as ratios to the shipped photos')",
        ["layer", "schedule", "lr", "steps", "score median", "worst", "slope", "HF", "TV"],
        body,
    )  # fmt: skip


def _nat_cells(rows: list[list[float]]) -> list[str]:
    return [f"{statistics.median(x[k] for x in rows):.2f}" for k in range(3)]


VIEW_UNITS = {"negative": [list(UNITS)], "diversity": [[0], [1]]}  # batches per layer


def measure_view(model: Any, shapes: dict, layer: str, view: str) -> list[dict]:
    """``view``'s batches of ``layer`` (``VIEW_UNITS``) for 256 steps at seed 0, scored at
    snapshots; diversity also by its channel term alone ("activation") and its images' mean
    Gram similarity to each other ("similarity": what the diversity term lowers)."""
    settings = cat.Settings(size=(SIZE, SIZE), steps=STEPS, batch=len(UNITS), seed=0)
    rows = []
    for units in VIEW_UNITS[view]:
        (batch,) = cat.plan(
            model, MODEL, [layer], shapes, settings=settings, views=[view], units=units
        )
        result, scored = scored_render(model, batch.config)
        row: dict[str, Any] = {
            "layer": layer, "view": view, "units": list(batch.units),
            "auto": layer_steps(model, layer), **scored,
        }  # fmt: skip
        if view == "diversity":
            chan = SimpleNamespace(
                objective=objectives.channel(layer, units[0]),
                size=batch.config.size,
                recipe=batch.config.recipe,
            )
            act = {str(s): score(model, chan, result.snapshots[s]) for s in SHOTS}
            row["activation"] = act
            row["similarity"] = {
                s: [
                    (a - f) / cat.DIVERSITY_WEIGHT
                    for a, f in zip(act[s], row["scores"][s], strict=True)
                ]
                for s in act
            }  # objective = activation - weight x similarity, per image
        rows.append(row)
    return rows


def views(args: argparse.Namespace) -> None:
    """Negative and diversity views at the measured layers: measure what ``--json`` lacks."""
    path = Path(args.json)
    done: list[dict] = json.loads(path.read_text()) if path.exists() else []
    model = models.load(MODEL)
    shapes = {i.name: tuple(i.shape) for i in layers(model, (SIZE, SIZE)) if i.shape}
    todo = list(LITE0) if args.layers == BLOCKS else args.layers  # default: the measured
    for view in args.views:
        for layer in todo:
            if any(d["layer"] == layer and d["view"] == view for d in done):
                continue
            done += measure_view(model, shapes, layer, view)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(done))
            tmp.replace(path)  # a kill loses at most the layer in progress
            print(f"{layer} {view}: {done[-1]['seconds']:.0f} s per batch", flush=True)
    print(_views_table(done))


def _ratios(row: dict, key: str, steps: int) -> list[float]:
    last = row[key][str(STEPS)]
    return [a / b if b > 0 else math.nan for a, b in zip(row[key][str(steps)], last, strict=True)]


def _views_table(done: list[dict]) -> str:
    body = []
    for layer, view in dict.fromkeys((d["layer"], d["view"]) for d in done):
        rows = [d for d in done if d["layer"] == layer and d["view"] == view]
        steps = rows[0]["auto"]
        key = "activation" if view == "diversity" else "scores"
        got = [x for r in rows for x in _ratios(r, key, steps) if not math.isnan(x)]
        reached = [
            next((s for s in SHOTS if r[key][str(s)][i] >= 0.95 * last), STEPS)
            for r in rows
            for i, last in enumerate(r[key][str(STEPS)])
            if last > 0
        ]
        sim = "-"
        if view == "diversity":
            sim = " / ".join(
                f"{statistics.fmean(x for r in rows for x in r['similarity'][str(s)]):.3f}"
                for s in (steps, STEPS)
            )
        nat = [
            f"{statistics.median(x[k] for r in rows for x in r['natural'][str(steps)]):.2f} / "
            f"{statistics.median(x[k] for r in rows for x in r['natural'][str(STEPS)]):.2f}"
            for k in range(3)
        ]
        body.append([
            layer, view, steps, len(got), f"{statistics.median(reached):.0f} ({max(reached)})",
            f"{statistics.median(got):.3f}", f"{min(got):.3f}", sim, *nat,
        ])  # fmt: skip
    return table(
        "Negative and diversity views at the auto steps (fitted on the channel view) against "
        "256: per image, the objective on the image (negative) or its channel term alone "
        "(diversity) at the auto steps / at 256 (target >= 0.95), steps to 95% of it (median, "
        "worst); the diversity images' mean Gram similarity to each other at auto / 256 (lower: "
        "more diverse); naturalness medians at auto / 256",
        ["layer", "view", "auto steps", "images", "steps to 95%", "ratio median", "worst",
         "similarity", "slope", "HF ratio", "TV ratio"],
        body,
    )  # fmt: skip


# Lite0's per-layer seconds at 224 px, 256 steps, batch 8, 3 views, one thread (benchmarks/
# RESULTS.md, "Catalogue: 2026-11-29 19:03 UTC", projection per layer: catalogue.estimate's
# 8-step probe x 1.00): measured on a far less busy machine than this one is now.
COSTS_256 = {
    "_blocks.0": 219, "_blocks.1": 540, "_blocks.2": 691, "_blocks.3": 1281, "_blocks.4": 1251,
    "_blocks.5": 2747, "_blocks.6": 2730, "_blocks.7": 2831, "_blocks.8": 4066,
    "_blocks.9": 4521, "_blocks.10": 4681, "_blocks.11": 8553, "_blocks.12": 8804,
    "_blocks.13": 9304, "_blocks.14": 9860, "_blocks.15": 16816,
}  # fmt: skip


def project_costs(work: list, per_layer: dict[str, float]) -> list[float]:
    """Each batch's seconds: its layer's 256-step cost x its share of the layer's image-steps
    at 256 steps (the cost of a step is the same whatever the steps; the fixed part, a few
    forward passes, is counted with the steps: a slight over-estimate for fewer steps)."""
    full: dict[str, int] = {}
    for b in work:
        full[b.layer] = full.get(b.layer, 0) + b.images * STEPS
    return [per_layer[b.layer] * b.images * b.config.steps / full[b.layer] for b in work]


def project(args: argparse.Namespace) -> None:
    from catalogue import schedule

    model = models.load(MODEL)
    size = (SIZE, SIZE)
    full = layers(model, size)
    shapes = {i.name: tuple(i.shape) for i in full if i.shape}
    blocks = [n for n in cat.default_layers(model, full) if n]
    body = []
    for steps in (None, "auto", 192, 128):
        settings = cat.Settings(size=size, steps=steps, batch=8)
        work = cat.plan(model, MODEL, blocks, shapes, settings=settings, views=cat.VIEWS)
        costs = project_costs(work, COSTS_256)
        row: list[Any] = [
            "256 (recipe)" if steps is None else str(steps),
            sum(len(b.units) for b in work),
            len(work),
            sum(b.config.steps * b.images for b in work),
        ]
        for n in (1, 8, 64):
            extra = 0.0 if n == 1 else args.overhead
            row.append(cat.format_seconds(schedule([c + extra for c in costs], n)))
        body.append(row)
    print(
        table(
            "Projection: Lite0's block outputs (16 layers, 1,808 channels; channel, negative, "
            "diversity), 224 px, batch 8, 1 thread per worker; per-layer 256-step costs of "
            "benchmarks/RESULTS.md (2026-11-29) x each batch's image-steps, plan order to the "
            f"first idle worker, + {1e3 * args.overhead:.0f} ms per batch on 8 and 64",
            [
                "steps",
                "unit renders",
                "batches",
                "image-steps",
                "1 worker",
                "8 workers",
                "64 workers",
            ],
            body,
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("section", choices=["measure", "report", "schedules", "views", "project"])
    parser.add_argument("--json", default="steps.json", help="the measurements (steps.json)")
    parser.add_argument("--layers", nargs="+", default=BLOCKS, help="layers to measure")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="seeds (0)")
    parser.add_argument("--out", default="schedules.json", help="schedules' results")
    parser.add_argument("--overhead", type=float, default=0.017, help="s per batch on N > 1")
    parser.add_argument(
        "--views", nargs="+", default=list(VIEW_UNITS), choices=list(VIEW_UNITS),
        help="views for the views section (negative diversity)",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1)")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be a positive int, got {args.threads}")
    torch.set_num_threads(args.threads)
    sections = {
        "measure": measure, "report": report, "schedules": schedules, "views": views,
        "project": project,
    }  # fmt: skip
    sections[args.section](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
