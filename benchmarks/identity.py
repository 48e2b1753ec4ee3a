"""What is byte-identical: the same render at 1, 2 and 4 torch threads, and render vs catalogue.

Renders EfficientNet-Lite0 ``_blocks.8`` channels 0-3 (one batch, 96 px, 32 steps, seed 0) with
``midnite.jobs`` into a render folder (flat) and a catalogue folder (by layer) at each thread
count, then compares the PNG bytes of every unit across all runs and the float images' largest
difference against the 1-thread render. Prints one table row per run.

    python benchmarks/identity.py [--threads 1,2,4] [--units 4] [--steps 32] [--size 96]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, table

from midnite import jobs, models
from midnite.engine import layers as layer_table

LAYER = "_blocks.8"


def _run(model, out: Path, layout, units: int, steps: int, size: int) -> dict[int, str]:
    """Render the units into ``out`` with ``layout``; the SHA-256 of each unit's PNG."""
    shapes = {i.name: tuple(i.shape) for i in layer_table(model, size) if i.name == LAYER}
    settings = jobs.Settings(size=(size, size), steps=steps, batch=units, seed=0)
    work = jobs.plan(
        model, "efficientnet-lite0", [LAYER], shapes, settings=settings,
        views=["channel"], units=list(range(units)), layout=layout,
    )  # fmt: skip
    jobs.run(work, out, model=model, progress=False)
    found = {}
    for png in sorted(out.rglob("*.png")):
        if "_alpha" not in png.name and png.parent.name != "examples":
            unit = int(png.stem.rsplit("_", 1)[1])
            found[unit] = hashlib.sha256(png.read_bytes()).hexdigest()
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2,4")
    parser.add_argument("--units", type=int, default=4)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--size", type=int, default=96)
    args = parser.parse_args(argv)
    model = models.load("efficientnet-lite0")
    rows: list[list[object]] = []
    reference: dict[int, str] | None = None
    with tempfile.TemporaryDirectory() as tmp:
        for threads in [int(t) for t in args.threads.split(",")]:
            torch.set_num_threads(threads)
            here = None  # the render's digests at this thread count
            for name, layout in (("render", jobs.FLAT), ("catalogue", jobs.LAYERS)):
                out = Path(tmp) / f"{name}-{threads}"
                digests = _run(model, out, layout, args.units, args.steps, args.size)
                reference = reference or digests
                here = here or digests
                same = sum(digests[u] == reference[u] for u in reference)
                alike = sum(digests[u] == here[u] for u in here)
                rows.append(
                    [name, threads, f"{same} of {len(reference)}", f"{alike} of {len(here)}"]
                )
    print(machine())
    headers = [
        "command",
        "torch threads",
        "PNGs = the first run's",
        "PNGs = render's at these threads",
    ]
    print(table("same unit, view, size, steps and seed", headers, rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
