"""Concept dictionaries on EfficientNet-Lite0 (issue #19 item 6): fit time and peak memory
against the number of images, reconstruction R2, sparsity, and stability across two seeds.

Images: ``python -m midnite.photos DIR N`` (crops of the photographs shipped with the
project), written once into a temporary folder. Each fit runs in its own process so that its
peak resident memory (``ru_maxrss``, the model and torch included) is its own. Stability: the
fits at seeds 0 and 1 on the largest image count, matched one to one (``concepts.stability``).

    python benchmarks/concepts.py [--images 64,256] [--layer _blocks.8] [--n 32] [--size 224]
                                  [--threads N] [--json F]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, table, write_json


def one(photos: str, count: int, layer: str, n: int, size: int, seed: int, save: str) -> dict:
    """Fit on the first ``count`` photos in this process; the figures and the peak memory."""
    from midnite import models
    from midnite.analysis import concepts as C

    files = sorted(Path(photos).glob("*.png"))[:count]
    model = models.load("efficientnet-lite0")
    t0 = time.perf_counter()
    c = C.fit(model, layer, files, n, seed=seed, size=size)
    seconds = time.perf_counter() - t0
    torch.save(c.directions, save)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux -> MiB
    return {
        "images": count,
        "seed": seed,
        "method": c.method,
        "seconds": seconds,
        "peak_mib": peak,
        "r2": float(c.quality["r2"]),
        "sparsity": float(c.quality["sparsity"]),
        "dead": float(c.quality["dead"]),
        "rows": int(c.quality["rows"]),
    }


def _child(args: argparse.Namespace, photos: str, count: int, seed: int, save: str) -> dict:
    cmd = [sys.executable, __file__, "--one", photos, str(count), str(seed), save]
    cmd += ["--layer", args.layer, "--n", str(args.n), "--size", str(args.size)]
    cmd += ["--threads", str(args.threads)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", default="64,256")
    p.add_argument("--layer", default="_blocks.8")
    p.add_argument("--n", type=int, default=32)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json")
    p.add_argument("--one", nargs=4, metavar=("PHOTOS", "COUNT", "SEED", "SAVE"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.one:
        photos, count, seed, save = args.one
        out = one(photos, int(count), args.layer, args.n, args.size, int(seed), save)
        print(json.dumps(out))
        return 0
    counts = [int(c) for c in args.images.split(",")]
    from midnite.analysis import dictionary as dic
    from midnite.evaluation.photos import write_crops

    with tempfile.TemporaryDirectory() as tmp:
        photos = str(write_crops(Path(tmp) / "photos", max(counts)))
        runs = [_child(args, photos, c, 0, f"{tmp}/d_{c}_0.pt") for c in counts]
        other = _child(args, photos, counts[-1], 1, f"{tmp}/d_{counts[-1]}_1.pt")
        a = torch.load(f"{tmp}/d_{counts[-1]}_0.pt", weights_only=True)
        b = torch.load(f"{tmp}/d_{counts[-1]}_1.pt", weights_only=True)
        cos = dic.match(a, b)[0]
    rows = [
        [r["images"], r["method"], r["rows"], r["seconds"], r["peak_mib"], r["r2"], r["sparsity"]]
        for r in [*runs, other]
    ]
    rows[-1][0] = f"{other['images']} (seed 1)"
    title = f"Lite0 {args.layer}, {args.n} concepts, {args.size} px, {args.threads} threads"
    print(table(title, ["images", "method", "rows", "fit s", "peak MiB", "R2", "sparsity"], rows))
    print(
        f"\nstability (seeds 0 and 1, {counts[-1]} images, matched one to one): mean cosine "
        f"{float(cos.mean()):.3f}, {int((cos >= 0.9).sum())}/{len(cos)} at >= 0.9"
    )
    info = machine()
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    write_json(args.json, {"machine": info, "runs": [*runs, other], "stability": cos.tolist()})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
