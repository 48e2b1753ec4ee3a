"""``midnite catalogue --dry-run``: the plan, what is done, and the expected time of the whole
command as it would run here (``jobs.estimate``), with the busy-ness measured; also the worker
count a run uses (``workers_used``, the one rule for the dry run and the run)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from midnite.errors import MemoryShortage, RenderError
from midnite.jobs import PROBE_STEPS, check_memory, estimate, format_seconds, todo
from midnite.jobs.estimate import (
    examples_seconds,
    quick_probe_seconds,
    run_time,
    writing_seconds,
)
from midnite.jobs.memory import is_out_of_memory, one_line
from midnite.jobs.pool import cpus, pool_workers

__all__ = ["dry_run", "probe_failed", "workers_used"]


def dry_run(
    args,
    model,
    work,
    shapes,
    units,
    dev,
    images,
    timed,
    *,
    concepts: int,
    top_k: int,
    quick: tuple[int, int, int],
) -> int:
    """``--dry-run``: the plan, what is done already, and the expected time of the command
    (``jobs.estimate.run_time``: start, model load, examples, workers' start, renders).

    ``timed``: (this process's age when the model's load began, ``perf_counter`` then, the
    load's seconds); ``concepts``: concept batches the run adds (for the worker count);
    ``quick``: (renders from which a run makes its quick probe, its layers, its steps)."""
    start, began, loaded = timed
    out = Path(args.out)
    names = list(shapes)
    print(f"plan: {len(names)} layer(s), {units} unit renders in {len(work)} batch(es) on {dev}")
    for name in names:
        mine = [b for b in work if b.layer == name]
        views = ", ".join(dict.fromkeys(b.view for b in mine)) or "-"
        count = len({u for b in mine for u in b.units})
        shape = "x".join(map(str, shapes[name]))
        print(
            f"  {name or '(output)'}  [{shape}]  {count} units  views {views}  "
            f"{len(mine)} batch(es)  {sum(len(b.units) for b in mine)} renders"
        )
    left, renders = work, units
    if out.is_dir():
        pending, done = todo(work, out)
        left, renders = [b for b, _ in pending], units - done
        print(f"{done} of {units} unit renders already done in {str(out)!r}")
    if not left:
        print("nothing to render")
        return 0
    check_memory(model, work[-1].probe(), max(b.images for b in work), dev)  # as the run does
    prepare = time.perf_counter() - began - loaded
    try:
        guess = estimate(model, left)
        examples = _examples_seconds(model, work, images, top_k, dev)
        writing = writing_seconds(model, left, shapes)
    except Exception as err:
        raise probe_failed(err) from None
    print(
        f"expected time of {renders} renders (measured on {dev}: one "
        f"batch per layer for 1 and {1 + PROBE_STEPS} steps): "
        + ", ".join(
            f"{n} worker{'s' if n > 1 else ''} {format_seconds(guess.workers(n))}"
            for n in (1, 8, 64)
        )
        + " (each worker as fast as this process)"
    )
    on_ray = args.ray is not None
    n = workers_used(args, len(left) + concepts, dev.type == "cpu")
    quick_probe = 0.0
    if renders >= quick[0]:
        quick_probe = quick_probe_seconds(guess, quick[1], quick[2])
    whole = run_time(
        guess, n, start=start, load=loaded, prepare=prepare, quick_probe=quick_probe,
        examples=examples, writing=writing, ray=on_ray,
    )  # fmt: skip
    where = "on local Ray" if on_ray else ("in a pool" if n > 1 else "in this process")
    print(
        f"expected time of the command: {format_seconds(whole.total)} on {n} worker(s) "
        f"{where}, {args.threads or 1} thread(s) each ({whole.describe()}); measured while "
        f"{whole.busy.describe()}"
        + ("" if not concepts else "; concept dictionaries and renders not included")
    )
    print("dry run: nothing rendered")
    return 0


def _examples_seconds(model, work, images, top_k: int, dev) -> float:
    """The dataset examples pass the run would make (0 without ``--images``)."""
    if images is None:
        return 0.0
    layers = list(dict.fromkeys(b.layer for b in work))
    units = {x: sorted({u for b in work if b.layer == x for u in b.units}) for x in layers}
    files = [images[0] / name for name in images[1]]
    size = work[0].config.size
    return examples_seconds(model, layers, files, top_k, size, units, dev)


def workers_used(args: argparse.Namespace, batches: int, on_cpu: bool) -> int:
    """The workers a run of ``batches`` batches uses: Ray's (``--workers``, else the CPUs over
    ``--threads``; a remote cluster's size is not known here), else ``pool_workers``'s rule
    (``--workers``; by default only ``on_cpu``), 1 meaning this process."""
    if args.ray is not None:
        return args.workers or max(1, cpus() // (args.threads or 1))
    asked = args.workers if args.workers is not None or on_cpu else 1
    return pool_workers(max(1, batches), asked)


def probe_failed(err: Exception) -> Exception:
    """The one-line error a failed probe render becomes."""
    if is_out_of_memory(err):
        return MemoryShortage(f"the probe render ran out of memory: {one_line(err)}")
    return RenderError(f"the probe render failed ({type(err).__name__}: {one_line(err)})")
