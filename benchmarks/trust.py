"""Trust reports on EfficientNet-Lite0, judged by Lite2 (issue #20).

For a few layers and a handful of units each: the 2-alternative score with synthetic
references (the feature recipe's pictures) beside natural references (top and bottom
examples), path agreement and seed stability. Natural images: crops of the shipped
photographs (``midnite.evaluation.photos.write_crops``). Prints a table, saves a figure.

    PYTHONPATH=src python benchmarks/trust.py [--units 4] [--steps 128] [--out trust.png]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

import torch

from midnite.engine import objectives, render
from midnite.evaluation.photos import write_crops
from midnite.evaluation.trust import TrustReport, assess
from midnite.evaluation.trust_stats import observe, path_layers
from midnite.images import load
from midnite.models import efficientnet_lite

LAYERS = ("_blocks.3", "_blocks.8", "_blocks.14")


def _args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--units", type=int, default=3, help="units per layer (0, 7, 14, ...)")
    p.add_argument("--steps", type=int, default=64, help="render steps (the recipe's: 256)")
    p.add_argument("--size", type=int, default=128, help="pixels a side")
    p.add_argument("--images", type=int, default=96, help="photo crops")
    p.add_argument("--pairs", type=int, default=100)
    p.add_argument("--views", type=int, default=2, help="pictures per unit (seed stability)")
    p.add_argument("--out", default="trust.png", help="the figure")
    return p.parse_args(argv)


def _run(args: argparse.Namespace) -> list[tuple[str, int, TrustReport, float]]:
    torch.manual_seed(0)
    model, judge = efficientnet_lite(0), efficientnet_lite(2)
    folder = write_crops(tempfile.mkdtemp(), args.images, args.size, 0)
    photos = torch.stack([load(p, size=args.size) for p in sorted(folder.glob("*.png"))])
    rows = []
    for layer in LAYERS:
        path = path_layers(model, layer, photos[:1])
        natural = observe(model, photos, target=layer, layers=path, judge=judge)
        step = max(1, natural.target.shape[1] // args.units)
        for unit in range(0, step * args.units, step):
            t = time.perf_counter()
            obj = objectives.channel(layer, unit)
            pics = render(model, obj, batch=args.views, seed=0, size=args.size,
                          steps=args.steps, progress=False).images  # fmt: skip
            vis = observe(model, pics, target=layer, layers=path, judge=judge)
            rep = TrustReport(target=repr(obj), recipe="feature", finite=True)
            assess(natural, vis, natural.target[:, unit], report=rep, pairs=args.pairs,
                   refs=9, seed=0)  # fmt: skip
            rows.append((layer, unit, rep, time.perf_counter() - t))
            print(f"{layer:10s} {unit:4d} score {rep.score:.2f} natural {rep.natural:.2f} "
                  f"path {rep.path:.2f} stability {rep.stability:.2f} "
                  f"flagged {rep.flagged} ({rows[-1][3]:.0f} s)", flush=True)  # fmt: skip
    return rows


def _table(rows: list[tuple[str, int, TrustReport, float]]) -> None:
    print("\n| layer | units | synthetic score | natural score | path | flagged | stability |")
    print("|---|---|---|---|---|---|---|")
    for layer in dict.fromkeys(r[0] for r in rows):
        reps = [r[2] for r in rows if r[0] == layer]

        def mean(name: str, reps: list[TrustReport] = reps) -> float:
            return statistics.mean(float(getattr(x, name)) for x in reps)

        flagged = sum(x.flagged for x in reps)
        print(f"| {layer} | {len(reps)} | {mean('score'):.2f} | {mean('natural'):.2f} | "
              f"{mean('path'):.2f} | {flagged} | {mean('stability'):.2f} |")  # fmt: skip
    reps = [r[2] for r in rows]
    syn = [float(x.score or 0) for x in reps]
    nat = [float(x.natural or 0) for x in reps]
    stab = [float(x.stability or 0) for x in reps]
    print(f"\nall {len(reps)} units: synthetic {statistics.mean(syn):.2f}, natural "
          f"{statistics.mean(nat):.2f}; correlation of synthetic score with seed stability "
          f"{statistics.correlation(syn, stab):.2f}")  # fmt: skip


def _figure(rows: list[tuple[str, int, TrustReport, float]], out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 4))
    for layer in dict.fromkeys(r[0] for r in rows):
        reps = [r[2] for r in rows if r[0] == layer]
        a.scatter([x.natural for x in reps], [x.score for x in reps], label=f"layer {layer}")
        b.scatter([x.stability for x in reps], [x.score for x in reps], label=f"layer {layer}")
    a.plot([0, 1], [0, 1], "k:", lw=1)
    a.set(xlabel="natural references", ylabel="synthetic references", title="2-alternative")
    b.set(xlabel="seed stability", ylabel="synthetic score", title="score vs stability")
    for ax in (a, b):
        ax.axhline(0.5, color="grey", lw=0.5)
    a.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    print(f"figure: {out}")


def main(argv: list[str]) -> int:
    args = _args(argv)
    rows = _run(args)
    _table(rows)
    _figure(rows, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
