"""Deep units of EfficientNet-Lite0 rendered by midnite recipes, as a table (issue #13).

Units, fixed before any result was seen: ``UNITS_PER_LAYER`` evenly spaced channels
``k * C // UNITS_PER_LAYER`` of each layer in ``LAYERS`` (``_blocks.14``: C = 192, channels
0, 24, ..., 168; ``_blocks.15``: C = 320, channels 0, 40, ..., 280). ``--quick`` keeps the
first unit of each layer.

For each recipe (``--recipes feature,natural``; default ``feature``) and seed (``--seeds S``:
seeds 0 .. S-1), every unit is one image of one batch (``channel(layer, c)``: the channel's mean
activation), rendered at ``--size`` px for ``--steps`` (default: the recipe's) through
``quality.render_recipe`` (``render(recipe=NAME)`` where it exists). Reported per recipe and
layer, as means over units and seeds unless said:

- activation: the unit's objective on its image (images of another size, e.g. a recipe's larger
  canvas, are resized to ``--size`` first, as the model saw them while rendering);
- gain: ``metrics.activation_gain`` from a uniform gray start (0.5), the same for every recipe
  (the recipes start differently), with ``eps = GAIN_EPS`` = 1 because these block outputs are
  signed and of order 1-10 on photos while gray gives some units ~0.01 (a plain ratio would
  explode); median over units and seeds (heavy-tailed);
- robustness: ``metrics.robustness`` (8 random shifts of up to 8 px, rotations of up to 10
  degrees, zooms 0.9-1.1; ``eps`` 1 as for the gain): 1 = the image works as well when moved;
- seed stability: ``metrics.seed_stability`` of the unit's layer activations (all channels,
  position-sensitive) on its S images, per unit, then the mean over units (needs S >= 2);
- naturalness: ``metrics.naturalness`` beside the shipped photos, at the images' size or shrunk
  to ``quality.NATURAL_SIZE`` px where larger (as in ``quality.py``);
- seconds per image: the render's wall time over the batch size.

``--out DIR`` saves ``DIR/deep_units.png`` (one labelled row per recipe, layer and seed, one
column per unit) and every image as ``DIR/<recipe>/<layer>_c<channel>_s<seed>.png``.

    python benchmarks/deep_units.py [--recipes feature,natural] [--size 224] [--steps N]
                                    [--seeds 3] [--device cuda] [--threads N] [--json F] [--out D]
    python benchmarks/deep_units.py --quick      # a smoke run of seconds (used by the tests)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see quality.py

import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, sync, table, write_json
from quality import (
    NATURAL_HEADERS,
    NATURAL_SIZE,
    at_natural_size,
    labelled_rows,
    natural_columns,
    recipe_names,
    render_recipe,
)

from midnite import metrics
from midnite.engine.objectives import channel
from midnite.models import efficientnet_lite
from midnite.plot import save_png

LAYERS = ("_blocks.14", "_blocks.15")
UNITS_PER_LAYER = 8
GAIN_EPS = 1.0
GRAY = 0.5
ROBUSTNESS_N = 8


def units(model: nn.Module, quick: bool = False) -> list[tuple[str, int]]:
    """``(layer, channel)`` of the units: evenly spaced channels of each layer in ``LAYERS``."""
    modules = dict(model.named_modules())
    out = []
    for layer in LAYERS:
        c = _out_channels(modules[layer])
        picked = [k * c // UNITS_PER_LAYER for k in range(UNITS_PER_LAYER)]
        out += [(layer, ch) for ch in (picked[:1] if quick else picked)]
    return out


def _out_channels(module: nn.Module) -> int:
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1].out_channels  # an MBConv block ends in its projection convolution


class UnitScores:
    """Forward passes that read the layers of ``LAYERS``; ``score(images)[i]`` is unit i's
    mean activation on image i (the render objective)."""

    def __init__(self, model: nn.Module, unit_list: list[tuple[str, int]], size: int):
        self.model, self.units, self.size = model, unit_list, size
        self.device = next(model.parameters()).device

    @torch.no_grad()
    def activations(self, images: Tensor) -> dict[str, Tensor]:
        acts: dict[str, Tensor] = {}
        modules = dict(self.model.named_modules())
        hooks = [
            modules[name].register_forward_hook(
                lambda _m, _i, out, name=name: acts.__setitem__(name, out.detach())
            )
            for name in {layer for layer, _ in self.units}
        ]
        try:
            self.model(self.resized(images).to(self.device))
        finally:
            for h in hooks:
                h.remove()
        return {k: v.float().cpu() for k, v in acts.items()}

    def resized(self, images: Tensor) -> Tensor:
        if tuple(images.shape[-2:]) == (self.size, self.size):
            return images
        return F.interpolate(images, size=(self.size, self.size), mode="bilinear", antialias=True)

    def __call__(self, images: Tensor) -> Tensor:
        if len(images) != len(self.units):
            raise ValueError(f"expected one image per unit ({len(self.units)}), got {len(images)}")
        acts = self.activations(images)
        return torch.stack(
            [acts[layer][i, ch].mean() for i, (layer, ch) in enumerate(self.units)]
        ).double()


def run_recipe(
    model: nn.Module,
    recipe: str,
    unit_list: list[tuple[str, int]],
    *,
    size: int,
    steps: int | None,
    seeds: list[int],
    device: torch.device,
) -> tuple[list[dict], dict[int, Tensor]]:
    """Render every unit for every seed with ``recipe``; rows per layer and the images by seed."""
    score = UnitScores(model, unit_list, size)
    objectives = [channel(layer, ch) for layer, ch in unit_list]
    extra = {} if steps is None else {"steps": steps}
    images: dict[int, Tensor] = {}
    per_seed: dict[int, dict[str, Tensor]] = {}
    seconds, used_steps = 0.0, None
    for seed in seeds:
        sync(device)
        t0 = time.perf_counter()
        result = render_recipe(
            model, objectives, recipe, size=size, seed=seed, device=device, progress=False, **extra
        )
        sync(device)
        seconds += time.perf_counter() - t0
        used_steps = result.settings["steps"]
        batch = result.images.float()
        images[seed] = batch
        gray = torch.full((1, *batch.shape[1:]), GRAY)
        rob_gen = torch.Generator().manual_seed(seed)
        per_seed[seed] = {
            "activation": score(batch),
            "gain": metrics.activation_gain(score, batch, gray, eps=GAIN_EPS),
            "robustness": metrics.robustness(
                score, batch, n=ROBUSTNESS_N, eps=GAIN_EPS, generator=rob_gen
            ),
            "acts": score.activations(batch),
        }
    rows = []
    for layer in LAYERS:
        idx = [i for i, (lay, _) in enumerate(unit_list) if lay == layer]
        if not idx:
            continue

        def pooled(key: str, idx: list[int] = idx) -> list[float]:
            return [float(per_seed[s][key][i]) for s in seeds for i in idx]

        stability = (
            statistics.fmean(
                float(
                    metrics.seed_stability(
                        torch.stack([per_seed[s]["acts"][layer][i] for s in seeds])
                    )
                )
                for i in idx
            )
            if len(seeds) >= 2
            else float("nan")
        )
        layer_images = torch.cat([images[s][idx] for s in seeds])
        nat = metrics.naturalness(at_natural_size(layer_images))
        rows.append(
            {
                "recipe": recipe,
                "layer": layer,
                "units": len(idx),
                "seeds": len(seeds),
                "size": size,
                "out size": list(images[seeds[0]].shape[-2:]),
                "steps": used_steps,
                "activation": statistics.fmean(pooled("activation")),
                "gain (median)": statistics.median(pooled("gain")),
                "robustness": statistics.fmean(pooled("robustness")),
                "seed stability": stability,
                **natural_columns(nat),
                "naturalness": nat.to_dict(),
                "seconds per image": seconds / (len(seeds) * len(unit_list)),
            }
        )
    return rows, images


HEADERS = [
    "recipe",
    "layer",
    "units",
    "steps",
    "activation",
    "gain (median)",
    "robustness",
    "seed stability",
    *NATURAL_HEADERS,
    "seconds per image",
]


def save_figures(
    out: Path, unit_list: list[tuple[str, int]], all_images: dict[str, dict[int, Tensor]]
) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[Tensor]] = {}
    for recipe, by_seed in all_images.items():
        folder = out / recipe
        folder.mkdir(parents=True, exist_ok=True)
        for seed, batch in by_seed.items():
            for (layer, ch), img in zip(unit_list, batch, strict=True):
                save_png(img, folder / f"{layer.replace('.', '_')}_c{ch}_s{seed}.png")
        for layer in LAYERS:
            idx = [i for i, (lay, _) in enumerate(unit_list) if lay == layer]
            for seed, batch in by_seed.items():
                rows[f"{recipe} {layer} seed {seed}"] = [batch[i] for i in idx]
    columns = max(len(r) for r in rows.values())
    path = out / "deep_units.png"
    save_png(labelled_rows(rows, columns=columns, side=128), path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", default="feature", help="comma-separated recipe names")
    parser.add_argument("--size", type=int, default=224, help="model input size in px")
    parser.add_argument("--steps", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0 .. N-1 (>= 2)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", default=None, help="also write the table as JSON here")
    parser.add_argument("--out", default=None, help="save the images and a contact sheet here")
    parser.add_argument("--quick", action="store_true", help="2 units, 64 px, 4 steps, 2 seeds")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    missing = [r for r in recipes if r not in recipe_names()]
    if not recipes or missing:
        parser.error(f"unknown recipes {missing}; this midnite has {', '.join(recipe_names())}")
    if args.seeds < 2:
        parser.error(f"--seeds must be >= 2 (seed stability compares seeds), got {args.seeds}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    size, steps, seeds = (64, 4, [0, 1]) if args.quick else (args.size, args.steps, None)
    seeds = seeds or list(range(args.seeds))
    dev = torch.device(args.device)
    model = efficientnet_lite(0).to(dev).eval()
    unit_list = units(model, quick=args.quick)
    info = machine()
    print(f"midnite deep-units benchmark, {info}")
    print("units: " + ", ".join(f"{layer}:{ch}" for layer, ch in unit_list))
    began = time.perf_counter()
    rows, all_images = [], {}
    for recipe in recipes:
        t0 = time.perf_counter()
        recipe_rows, all_images[recipe] = run_recipe(
            model, recipe, unit_list, size=size, steps=steps, seeds=seeds, device=dev
        )
        rows += recipe_rows
        print(f"  {recipe}: {time.perf_counter() - t0:.0f} s", flush=True)
    title = (
        f"EfficientNet-Lite0 deep units ({len(unit_list)} channels, seeds {seeds[0]}-{seeds[-1]}, "
        f"{size} px): activation, gain from gray (median), robustness, seed stability, "
        f"naturalness at <= {NATURAL_SIZE} px beside photos"
    )
    print("\n" + table(title, HEADERS, [[r[h] for h in HEADERS] for r in rows]))
    payload = {
        "machine": info,
        "device": str(dev),
        "quick": args.quick,
        "units": [list(u) for u in unit_list],
        "seeds": seeds,
        "size": size,
        "rows": rows,
        "seconds": time.perf_counter() - began,
    }
    print(f"\ntotal {payload['seconds']:.0f} s")
    if args.out:
        print(f"contact sheet {save_figures(Path(args.out), unit_list, all_images)}")
    write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
