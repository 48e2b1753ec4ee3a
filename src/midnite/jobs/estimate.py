"""Expected time of a plan, from probe renders measured here (``midnite catalogue --dry-run``)."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from midnite.engine import render_config
from midnite.jobs.plan import Batch

__all__ = ["PROBE_REPEATS", "PROBE_STEPS", "Estimate", "estimate", "format_seconds"]

# steps of the probe renders that time each layer (estimate): with 3, load noise of 0.1 s on a
# busy 2-core machine was ~30% of the cost per step (estimates of one layer: 26-73 s for 28 s)
PROBE_STEPS = 8
PROBE_REPEATS = 2  # each probe render is timed this often, the fastest kept (load only slows)


@dataclass
class Estimate:
    """Expected seconds of a plan: ``total`` on one worker, ``longest`` batch, per layer and
    per batch (what the runner's progress bar starts its time left from)."""

    total: float
    longest: float
    per_layer: dict[str, float]
    per_batch: dict[Batch, float] = field(default_factory=dict)

    def workers(self, n: int) -> float:
        """Seconds on ``n`` workers, batches spread evenly (never below the longest batch)."""
        return max(self.total / n, self.longest)


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
    render_config(model, work[0].config.replace(steps=1), progress=False)  # warm-up
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
    _interpolate(names, cost)
    costs = []
    for b in work:
        fixed, step, images = cost[b.layer]
        costs.append(fixed + step * b.config.steps * b.images / images)
    per_layer: dict[str, float] = {}
    for b, c in zip(work, costs, strict=True):
        per_layer[b.layer] = per_layer.get(b.layer, 0.0) + c
    return Estimate(sum(costs), max(costs), per_layer, dict(zip(work, costs, strict=True)))


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
