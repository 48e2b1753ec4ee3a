"""Expected time of a plan, from probe renders measured here (``midnite catalogue --dry-run``),
and of the whole command: its start, the model's load, dataset examples, workers' start and the
renders spread over the workers actually used, at the busy-ness measured during the probe."""

from __future__ import annotations

import heapq
import math
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from midnite.engine import render_config
from midnite.jobs.plan import Batch

__all__ = [
    "EXAMPLE_PROBE",
    "EXIT",
    "PROBE_REPEATS",
    "PROBE_STEPS",
    "RAY_START",
    "Busy",
    "Estimate",
    "RunTime",
    "busy",
    "estimate",
    "examples_seconds",
    "format_seconds",
    "process_age",
    "quick_probe_seconds",
    "run_time",
    "schedule",
    "writing_seconds",
]

# steps of the probe renders that time each layer (estimate): with 3, load noise of 0.1 s on a
# busy 2-core machine was ~30% of the cost per step (estimates of one layer: 26-73 s for 28 s)
PROBE_STEPS = 8
PROBE_REPEATS = 2  # each probe render is timed this often, the fastest kept (load only slows)
# seconds of a local Ray instance's start and stop beside the workers' model load: ``import
# ray`` 1.5 s, ``ray.init`` 11.9 s, ``ray.shutdown`` 1.6 s, measured with Ray 2.60 on the shared
# 2-core machine at load average 9 (2026-12-03, two runs alike; benchmarks/RESULTS.md)
RAY_START = 15.0
# Python's exit after a catalogue (torch's and midnite's modules torn down, workers joined):
# wall time less the time inside the process, 0.6-0.7 s for an import of midnite.cli and a
# model load on the idle 2-core machine (2026-12-03); without it the dry run read 1.16-1.26x
# short on small catalogues, by about 1.4 s each
EXIT = 0.7


@dataclass
class Estimate:
    """Expected seconds of a plan: ``total`` on one worker, ``longest`` batch, per layer and
    per batch (what the runner's progress bar starts its time left from)."""

    total: float
    longest: float
    per_layer: dict[str, float]
    per_batch: dict[Batch, float] = field(default_factory=dict)
    # layer: (fixed, per step, probe images); the CPU share this process got while probing
    cost: dict[str, tuple[float, float, int]] = field(default_factory=dict)
    share: float = 1.0
    # what a process's first render costs beyond a later one of the same batch (lazy imports
    # such as torch._dynamo's by the first optimizer: seconds on a busy machine)
    first: float = 0.0

    def workers(self, n: int) -> float:
        """Seconds on ``n`` workers, batches spread evenly (never below the longest batch)."""
        return max(self.total / n, self.longest)

    def priced(self, work: Sequence[Batch]) -> Estimate:
        """``work`` timed by these probes (``cost``), with no render: a plan of the probed layers
        with other steps, batches or units. A batch of a layer not probed is a ValueError."""
        missing = sorted({b.layer for b in work} - set(self.cost))
        if missing:
            raise ValueError(f"layers {missing} were not probed; probed: {sorted(self.cost)}")
        costs = []
        for b in work:
            fixed, step, images = self.cost[b.layer]
            costs.append(fixed + step * b.config.steps * b.images / images)
        per_layer: dict[str, float] = {}
        for b, c in zip(work, costs, strict=True):
            per_layer[b.layer] = per_layer.get(b.layer, 0.0) + c
        per_batch = dict(zip(work, costs, strict=True))
        longest = max(costs, default=0.0)
        return Estimate(
            sum(costs), longest, per_layer, per_batch, self.cost, self.share, self.first
        )


def estimate(
    model: torch.nn.Module,
    work: Sequence[Batch],
    steps: int = PROBE_STEPS,
    *,
    layers: int | None = None,
) -> Estimate:
    """Time ``work`` from a probe measured here: per layer, one batch for 1 and 1 + ``steps`` steps.

    ``layers``: probe at most this many layers, spread over the plan's order (first and last
    included); a layer between two probed ones costs what a straight line between theirs
    gives at its place in the plan (the quick estimate a long run prints before it starts).

    The cost of a step grows with the layer's depth (each forward pass ends after the layer),
    so each layer is probed, with its batch of the most images, after one unmeasured warm-up
    render; each probe render runs ``PROBE_REPEATS`` times and the fastest counts. The two
    give a fixed cost per batch (set-up) and a cost per step; a batch of that layer is taken to
    cost ``fixed + step * its steps * its images / the probe's images``. Writing files is not
    counted (milliseconds per unit). ``Estimate.workers(n)`` assumes ``n`` workers each as fast
    as this process: on a machine whose cores are busy with other work it is a lower bound.
    """
    if not work:
        return Estimate(0.0, 0.0, {})
    wall, cpu = time.perf_counter(), time.process_time()
    render_config(model, work[0].config.replace(steps=1), progress=False)  # warm-up
    warm = time.perf_counter() - wall
    cost: dict[str, tuple[float, float, int]] = {}  # layer: (fixed, per step, probe images)
    names = list(dict.fromkeys(b.layer for b in work))
    for layer in _probed(names, layers):
        biggest = max((b for b in work if b.layer == layer), key=lambda b: b.images)
        took = []
        for n in (1, 1 + steps):
            times = []
            for _ in range(PROBE_REPEATS):
                began = time.perf_counter()
                render_config(model, biggest.config.replace(steps=n), progress=False)
                times.append(time.perf_counter() - began)
            took.append(min(times))
        step = max(took[1] - took[0], 0.0) / steps
        cost[layer] = (max(took[0] - step, 0.0), step, biggest.images)
    # CPU seconds per wall second per torch thread: below 1 when other processes competed
    share = (time.process_time() - cpu) / max(time.perf_counter() - wall, 1e-9)
    share = min(1.0, share / max(1, torch.get_num_threads()))
    _interpolate(names, cost)
    fixed, step, _ = cost[work[0].layer]
    first = max(warm - fixed - step, 0.0)
    return Estimate(0.0, 0.0, {}, cost=cost, share=share, first=first).priced(work)


def _interpolate(names: list[str], cost: dict[str, tuple[float, float, int]]) -> None:
    """Fill in the cost of each layer not probed, on a line between its probed neighbours."""
    probed = [i for i, n in enumerate(names) if n in cost]
    for i, layer in enumerate(names):
        if layer in cost:
            continue
        lo = max(j for j in probed if j < i)
        hi = min(j for j in probed if j > i)
        t = (i - lo) / (hi - lo)
        (f0, s0, n0), (f1, s1, n1) = cost[names[lo]], cost[names[hi]]
        # per image: the probes of two layers may have had batches of different sizes
        cost[layer] = (f0 + t * (f1 - f0), (1 - t) * s0 / n0 + t * s1 / n1, 1)


def _probed(names: list[str], most: int | None) -> list[str]:
    """At most ``most`` of ``names``, evenly spread, the first and the last among them."""
    if most is None or most >= len(names):
        return names
    if most <= 1:
        return names[-1:]
    picks = {round(i * (len(names) - 1) / (most - 1)) for i in range(most)}
    return [names[i] for i in sorted(picks)]


def format_seconds(seconds: float) -> str:
    """``42 s``, ``12.5 min`` or ``3.2 h``."""
    if not math.isfinite(seconds):
        return "?"
    if seconds < 120:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


# the whole command ----------------------------------------------------------------------------

EXAMPLE_PROBE = 8  # images in the timed pass that estimates the dataset examples


@dataclass(frozen=True)
class Busy:
    """How busy this machine was while the probe ran: ``cpus`` this process may use, the
    1-minute load average, and the ``share`` of a CPU one torch thread of this process got
    (CPU seconds per wall second; 1.0 on an idle machine)."""

    cpus: int
    load: float
    share: float

    def others(self) -> float:
        """Runnable processes of other work the share implies: ``cpus / share - 1``, 0 when
        the probe had a CPU to itself (share 0.95 or more)."""
        return 0.0 if self.share >= 0.95 else max(0.0, self.cpus / self.share - 1)

    def slowdown(self, workers: int) -> float:
        """How many times the probe's time a render takes on each of ``workers`` one-thread
        workers sharing the CPUs fairly with the other work (1.0 for one worker)."""
        each = min(1.0, self.cpus / (self.others() + workers))
        return max(1.0, min(self.share, 1.0) / each) if workers > 1 else 1.0

    def describe(self) -> str:
        return (
            f"load average {self.load:.1f} on {self.cpus} CPU(s); the probe got "
            f"{100 * self.share:.0f}% of a CPU"
        )


def busy(share: float) -> Busy:
    """:class:`Busy` of this machine now, with the CPU ``share`` measured by a probe."""
    from midnite.jobs.pool import cpus

    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    return Busy(cpus(), load, share)


def schedule(costs: Sequence[float], workers: int) -> float:
    """Wall time of ``costs`` handed out in order to the first idle of ``workers`` workers (as
    the pool and the Ray executor do)."""
    ends = [0.0] * max(1, workers)
    for c in costs:
        heapq.heapreplace(ends, ends[0] + c)
    return max(ends)


def process_age() -> float:
    """Seconds since this process started (Python's start and the imports so far), from
    ``/proc``; 0.0 where that cannot be read."""
    try:
        start = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        up = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, up - start / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


def quick_probe_seconds(guess: Estimate, layers: int, steps: int) -> float:
    """What ``estimate(..., steps, layers=layers)`` of the same plan costs, from ``guess``'s
    per-layer costs: a warm-up render, then per probed layer renders of 1 and 1 + ``steps``
    steps, each ``PROBE_REPEATS`` times."""
    names = list(guess.per_layer)
    if not names:
        return 0.0
    fixed, step, _ = guess.cost[names[0]]
    total = fixed + step
    for layer in _probed(names, layers):
        fixed, step, _ = guess.cost[layer]
        total += PROBE_REPEATS * (2 * fixed + (2 + steps) * step)
    return total


def examples_seconds(
    model: torch.nn.Module,
    layers: Sequence[str],
    files: Sequence[str | os.PathLike],
    k: int,
    size: tuple[int, int],
    units: dict[str, list[int]],
    device: torch.device | str | None = None,
) -> float:
    """Expected seconds of the dataset examples of ``layers`` over ``files`` (the whole pass
    and the writing): one pass over 1 and one over ``EXAMPLE_PROBE`` of the files, timed, give
    a fixed cost and a cost per image, times the file count; the second pass's examples are
    written to a temporary folder, timed, and scaled to the distinct images the run saves. A
    first pass over one file, before those, times what only a process's first pass costs."""
    from midnite.analysis import top_examples
    from midnite.store.site_files import write_examples

    sample = [str(f) for f in files[:EXAMPLE_PROBE]]
    if not sample or not layers:
        return 0.0
    took = []
    for part in (sample[:1], sample[:1], sample):  # the first: one-time costs (lazy imports)
        began = time.perf_counter()
        found = top_examples(model, layers, part, k, size=size, device=device, progress=False)
        took.append(time.perf_counter() - began)
    once, one, most = took
    per_image = max(most - one, 0.0) / (len(sample) - 1) if len(sample) > 1 else one
    passes = max(once - one, 0.0) + max(one - per_image, 0.0) + per_image * len(files)
    with tempfile.TemporaryDirectory(prefix="midnite-dry-") as tmp:
        began = time.perf_counter()
        write_examples(tmp, found, layers, units=units)
        wrote = time.perf_counter() - began
    saved = min(len(files), max(len(u) for u in units.values()) * k) if units else len(files)
    return passes + wrote * saved / len(sample)


def writing_seconds(
    model: torch.nn.Module,
    work: Sequence[Batch],
    shapes: dict[str, tuple[int, ...]] | None = None,
) -> float:
    """What the runner spends beyond the renders of ``work`` (PNGs, records, thumbnails, the
    site after each batch and at the end): two of its batches at 1 step run by ``jobs.run``
    with the catalogue's pages into a temporary folder, the time between one result and the
    next taken: the first batch's (one-time costs such as the templates' loading), the
    second's for each further batch, and the end's."""
    import dataclasses

    from midnite.jobs.executors import InProcess
    from midnite.jobs.pages import catalogue_pages
    from midnite.jobs.runner import run

    if not work:
        return 0.0
    two = [dataclasses.replace(b, config=b.config.replace(steps=1)) for b in work[:2]]
    gaps: list[float] = []

    class Clocked(InProcess):
        def run(self, batches):
            for found in super().run(batches):
                handed = time.perf_counter()
                yield found
                gaps.append(time.perf_counter() - handed)  # the runner wrote this batch
            gaps.append(time.perf_counter())  # then the runner's end: the last build

    with tempfile.TemporaryDirectory(prefix="midnite-dry-") as tmp:
        pages = catalogue_pages(work, Path(tmp), shapes)
        run(two, tmp, executor=Clocked(model), progress=False, pages=pages)
        end = time.perf_counter() - gaps.pop()
    return gaps[0] + gaps[-1] * (len(work) - 1) + end


@dataclass
class RunTime:
    """The expected wall time of a whole command, by part (``parts``, in order), on
    ``workers`` workers, at the busy-ness ``busy`` measured during the probe."""

    parts: dict[str, float]
    workers: int
    busy: Busy

    @property
    def total(self) -> float:
        return sum(self.parts.values())

    def describe(self) -> str:
        return ", ".join(f"{k} {format_seconds(v)}" for k, v in self.parts.items() if v > 0)


def run_time(
    guess: Estimate,
    workers: int,
    *,
    start: float = 0.0,
    load: float = 0.0,
    prepare: float = 0.0,
    quick_probe: float = 0.0,
    examples: float = 0.0,
    writing: float = 0.0,
    ray: bool = False,
) -> RunTime:
    """The command's expected wall time: its ``start`` (Python and imports), the model's
    ``load``, ``prepare`` (layer shapes, plan, memory check), the ``quick_probe`` a long run
    makes, the workers' start (each loads the model as this process did; Ray's own start
    ``RAY_START`` first), the dataset ``examples`` pass (sharded over Ray's workers), the first
    render's one-time cost (``Estimate.first``), the batches handed in plan order to the
    first idle of ``workers`` (``schedule``), the ``writing`` of their files and pages in
    this process and Python's ``EXIT``; the renders and the workers' start are slowed by
    ``Busy.slowdown`` of the busy-ness the probe measured."""
    seen = busy(guess.share)
    slow = seen.slowdown(workers)
    parts = {"start": start, "model load": load, "plan": prepare, "quick probe": quick_probe}
    if ray:
        parts["Ray start"] = RAY_START
    if ray or workers > 1:
        parts["workers' start"] = (start + load) * slow
    parts["dataset examples"] = examples / workers if ray else examples
    # each worker's at the same time; a quick probe pays it in this process first
    parts["first render"] = guess.first * (slow + (quick_probe > 0 and (ray or workers > 1)))
    parts["renders"] = schedule([c * slow for c in guess.per_batch.values()], workers)
    parts["files and pages"] = writing
    parts["exit"] = EXIT / min(1.0, max(guess.share, 0.1))  # slowed as the probe was
    return RunTime(parts, workers, seen)
