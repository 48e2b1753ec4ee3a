"""Step time on a GPU at batch 1 and 64, exact and ``accel="fast"``, and the batching gain.

EfficientNet-Lite0, channel ``_blocks.8``:k (one unit per image), 224 px, the default stack.
A step's cost is its marginal cost ((time of ``long`` steps - time of ``short``) / the
difference), measured in alternating rounds, medians; the batching gain is 64 x the batch-1
step over the batch-64 step (images per second, batched over one by one). Needs CUDA:

    python benchmarks/gpu.py [--device cuda:0] [--rounds 5] [--json F]

Prints a Markdown table for ``benchmarks/RESULTS.md``; refuses to run without CUDA.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import interleaved, machine, table, write_json

import midnite
from midnite import objectives as obj
from midnite.engine.accel import accel_plan
from midnite.models import load

LAYER = "_blocks.8"


def step_times(dev: torch.device, rounds: int) -> list[dict]:
    model = load("efficientnet-lite0")
    short, long = 8, 40

    def fn(batch: int, steps: int, accel: str):
        objs = [obj.channel(LAYER, i) for i in range(batch)]

        def run() -> None:
            midnite.render(
                model, objs, size=224, steps=steps, progress=False, device=dev, accel=accel
            )

        return run

    cases = [(b, a) for b in (1, 64) for a in ("exact", "fast")]
    fns = {(b, a, n): fn(b, n, a) for b, a in cases for n in (short, long)}
    # warmup 2: the first fast render compiles and records the CUDA graphs
    t = interleaved(fns, dev, rounds=rounds, reps=1, warmup=2)
    step = {(b, a): (t[(b, a, long)] - t[(b, a, short)]) / (long - short) for b, a in cases}
    rows = []
    for accel in ("exact", "fast"):
        one, many = step[(1, accel)], step[(64, accel)]
        rows.append(
            {
                "accel": accel,
                "batch 1 ms/step": 1e3 * one,
                "batch 64 ms/step": 1e3 * many,
                "ms per image at 64": 1e3 * many / 64,
                "batching gain": 64 * one / many,
                "vs exact (batch 64)": step[(64, "exact")] / many,
                "skipped": "; ".join(accel_plan(accel, dev).skipped.values()) or "-",
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    dev = torch.device(args.device)
    if dev.type != "cuda" or not torch.cuda.is_available():
        print(f"benchmarks/gpu.py needs a CUDA device, got {args.device!r} (CUDA available: "
              f"{torch.cuda.is_available()})", file=sys.stderr)  # fmt: skip
        return 2
    info = machine()
    print(f"midnite GPU benchmark, {info}", flush=True)
    t0 = time.perf_counter()
    rows = step_times(dev, args.rounds)
    title = f"EfficientNet-Lite0 {LAYER} at 224 px on {info.get('gpu', dev)}: step times"
    print(table(title, list(rows[0]), [list(r.values()) for r in rows]))
    print(f"({time.perf_counter() - t0:.0f} s)")
    write_json(args.json, {"machine": info, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
