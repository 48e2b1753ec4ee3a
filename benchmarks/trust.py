"""Trust reports on EfficientNet-Lite0, judged by Lite2 (issue #20).

For a few layers and a handful of units each: the 2-alternative score with synthetic
references (the feature recipe's pictures; with and without the ``negative`` view's pictures
as min references, Borowski et al.'s setup) beside natural references (top and bottom
examples), path agreement and seed stability. Natural images: crops of the shipped
photographs (``midnite.evaluation.photos.write_crops``). Prints a table and writes a figure:
per layer the distribution of the scores, and the synthetic score against seed stability.

    PYTHONPATH=src python benchmarks/trust.py [--units 4] [--steps 64] [--out docs/trust.png]
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
MARKS = (("tab:purple", "o"), ("tab:brown", "s"), ("tab:gray", "^"))  # right panel's layers
Row = tuple[str, int, TrustReport, float | None, float]  # layer, unit, report, max-only, s


def _args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--units", type=int, default=4, help="units per layer (evenly spaced)")
    p.add_argument("--steps", type=int, default=64, help="render steps (the recipe's: 256)")
    p.add_argument("--size", type=int, default=128, help="pixels a side")
    p.add_argument("--images", type=int, default=96, help="photo crops")
    p.add_argument("--pairs", type=int, default=100)
    p.add_argument("--views", type=int, default=2, help="pictures per unit (seed stability)")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--out", default="trust.png", help="the figure")
    return p.parse_args(argv)


def _unit(args, model, judge, natural, path, layer: str, unit: int) -> Row:
    t = time.perf_counter()
    common = dict(batch=args.views, seed=0, size=args.size, steps=args.steps, progress=False)
    obj = objectives.channel(layer, unit)
    pics = render(model, obj, **common).images  # type: ignore[arg-type]
    mins = render(model, -objectives.channel(layer, unit), **common).images  # type: ignore[arg-type]
    seen = dict(target=layer, layers=path, judge=judge)
    vis = observe(model, pics, **seen)  # type: ignore[arg-type]
    neg = observe(model, mins, **seen)  # type: ignore[arg-type]
    values = natural.target[:, unit]
    opts = dict(pairs=args.pairs, refs=9, seed=0)
    plain = TrustReport(target=repr(obj), recipe="feature", finite=True)
    assess(natural, vis, values, report=plain, **opts)  # type: ignore[arg-type]
    rep = TrustReport(target=repr(obj), recipe="feature", finite=True)
    assess(natural, vis, values, report=rep, negative=neg, **opts)  # type: ignore[arg-type]
    return layer, unit, rep, plain.score, time.perf_counter() - t


def _run(args: argparse.Namespace) -> list[Row]:
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    model, judge = efficientnet_lite(0), efficientnet_lite(2)
    folder = write_crops(tempfile.mkdtemp(), args.images, args.size, 0)
    photos = torch.stack([load(p, size=args.size) for p in sorted(folder.glob("*.png"))])
    rows = []
    for layer in LAYERS:
        path = path_layers(model, layer, photos[:1])
        natural = observe(model, photos, target=layer, layers=path, judge=judge)
        step = max(1, natural.target.shape[1] // args.units)
        for unit in range(0, step * args.units, step):
            row = _unit(args, model, judge, natural, path, layer, unit)
            rep = row[2]
            print(f"{layer:10s} {unit:4d} score {rep.score:.2f} (max only {row[3]:.2f}) "
                  f"natural {rep.natural:.2f} path {rep.path:.2f} stability "
                  f"{rep.stability:.2f} flagged {rep.flagged} ({row[4]:.0f} s)",
                  flush=True)  # fmt: skip
            rows.append(row)
    return rows


def _table(rows: list[Row]) -> None:
    print("\n| layer | units | synthetic, max+min | synthetic, max only | natural | path "
          "| flagged | stability |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for layer in dict.fromkeys(r[0] for r in rows):
        mine = [r for r in rows if r[0] == layer]
        reps = [r[2] for r in mine]

        def mean(name: str, reps: list[TrustReport] = reps) -> float:
            return statistics.mean(float(getattr(x, name)) for x in reps)

        plain = statistics.mean(float(r[3] or 0) for r in mine)
        flagged = sum(x.flagged for x in reps)
        print(f"| `{layer}` | {len(reps)} | {mean('score'):.2f} | {plain:.2f} | "
              f"{mean('natural'):.2f} | {mean('path'):.2f} | {flagged} of {len(reps)} | "
              f"{mean('stability'):.2f} |")  # fmt: skip
    reps = [r[2] for r in rows]
    syn = [float(x.score or 0) for x in reps]
    nat = [float(x.natural or 0) for x in reps]
    stab = [float(x.stability or 0) for x in reps]
    plain = [float(r[3] or 0) for r in rows]
    print(f"\nall {len(reps)} units: synthetic {statistics.mean(syn):.2f} (max only "
          f"{statistics.mean(plain):.2f}), natural {statistics.mean(nat):.2f}; correlation of "
          f"the synthetic score with seed stability {statistics.correlation(syn, stab):.2f}; "
          f"{sum(r[4] for r in rows):.0f} s of unit work")  # fmt: skip


def _figure(rows: list[Row], out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = list(dict.fromkeys(r[0] for r in rows))
    kinds = (("natural", "natural refs", "tab:green"), ("score", "synthetic max+min", "tab:blue"),
             ("plain", "synthetic max only", "tab:orange"))  # fmt: skip
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    for li, layer in enumerate(layers):
        mine = [r for r in rows if r[0] == layer]
        for ki, (name, label, colour) in enumerate(kinds):
            ys = [float(r[3] or 0) if name == "plain" else float(getattr(r[2], name)) for r in mine]
            x = li * 4 + ki
            a.boxplot([ys], positions=[x], widths=0.6, showfliers=False,
                      medianprops={"color": colour})  # fmt: skip
            a.scatter([x] * len(ys), ys, s=14, color=colour, zorder=3,
                      label=label if li == 0 else None)  # fmt: skip
        b.scatter([r[2].stability for r in mine], [r[2].score for r in mine],
                  label=f"layer {layer}", color=MARKS[li % 3][0],
                  marker=MARKS[li % 3][1])  # fmt: skip
    a.set_xticks([li * 4 + 1 for li in range(len(layers))], layers)
    a.set(ylabel="2-alternative accuracy", ylim=(-0.05, 1.05),
          title="per layer: natural vs synthetic references")  # fmt: skip
    b.set(xlabel="seed stability (2 views)", ylabel="synthetic score (max+min)",
          title="score vs seed stability", ylim=(-0.05, 1.05))  # fmt: skip
    for ax in (a, b):
        ax.axhline(0.5, color="grey", lw=0.5, ls=":")
    a.legend(fontsize=7, loc="lower right")
    b.legend(fontsize=7)
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
