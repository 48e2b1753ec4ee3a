"""The runner's one progress bar: units written, the layer and view being rendered, the step
of a long batch, and the time left from the plan's per-batch costs.

The time left is the sum of the expected seconds of the batches not yet done: a batch costs
``seconds per image-step of its (layer, view) * its images * its steps``, measured on the
batches of that layer and view already done; before any is done, the probe's estimate
(``jobs.estimate``) scaled by how far the measured batches were from theirs. It is not a
running average over batches of other layers, whose cost per step differs many times over.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence

from tqdm.auto import tqdm

from midnite.engine import StepState
from midnite.jobs.estimate import format_seconds
from midnite.jobs.executors import InProcess
from midnite.jobs.plan import Batch

__all__ = ["Progress"]

_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} units [{elapsed}{postfix}]"


def _work(batch: Batch) -> float:
    return float(batch.images * batch.config.steps)


class Progress:
    """The bar over ``batches`` (in the order they are rendered), ``total`` units.

    ``expected``: seconds per batch from a probe (``Estimate.per_batch``), optional.
    ``enabled``: draw the bar (on stderr); the time left is computed either way. The bar is
    cleared when the run ends: the command's own last line says what was done, once.
    """

    def __init__(
        self,
        batches: Sequence[Batch],
        total: int,
        *,
        enabled: bool = True,
        expected: Mapping[Batch, float] | None = None,
    ):
        self.pending = list(batches)
        self.expected = dict(expected or {})
        self.spent: dict[tuple[str, str], list[float]] = {}  # (layer, view): [seconds, work]
        self.ratio = [0.0, 0.0]  # measured, expected seconds of done batches with an estimate
        self.busy = 0.0  # render seconds of done batches (several at once on Ray)
        self.began = time.perf_counter()
        self.attached: InProcess | None = None
        self.bar = tqdm(total=total, desc=self._desc(), disable=not enabled, file=sys.stderr,
                        leave=False, bar_format=_FORMAT, dynamic_ncols=True)  # fmt: skip

    def _desc(self) -> str:
        """``midnite <layer> <view>`` of the batch being rendered (the first pending)."""
        if not self.pending:
            return "midnite"
        b = self.pending[0]
        return f"midnite {b.layer or '(output)'} {b.view}"

    def _name(self) -> None:
        self.bar.set_description_str(self._desc(), False)

    def cost(self, batch: Batch) -> float | None:
        """Expected seconds of ``batch`` (None: nothing to go by yet)."""
        spent = self.spent.get((batch.layer, batch.view))
        if spent is not None and spent[1] > 0:
            return spent[0] / spent[1] * _work(batch)
        if batch in self.expected:
            scale = self.ratio[0] / self.ratio[1] if self.ratio[1] > 0 else 1.0
            return self.expected[batch] * scale
        same_layer = [v for (layer, _), v in self.spent.items() if layer == batch.layer]
        pool = same_layer or list(self.spent.values())
        work = sum(w for _, w in pool)
        return sum(s for s, _ in pool) / work * _work(batch) if work > 0 else None

    def left(self) -> float | None:
        """Expected seconds until the pending batches are done (None: unknown yet)."""
        costs = [self.cost(b) for b in self.pending]
        if not costs or any(c is None for c in costs):
            return None if costs else 0.0
        wall = time.perf_counter() - self.began
        parallel = max(self.busy / wall, 1.0) if wall > 0 and self.busy > 0 else 1.0
        return sum(c for c in costs if c is not None) / parallel

    def done(self, batch: Batch, seconds: float | None, units: int) -> None:
        """``batch`` is done (``units`` written or failed) after ``seconds`` of rendering."""
        if batch in self.pending:
            self.pending.remove(batch)
        if seconds is not None and seconds > 0:
            spent = self.spent.setdefault((batch.layer, batch.view), [0.0, 0.0])
            spent[0] += seconds
            spent[1] += _work(batch)
            self.busy += seconds
            if batch in self.expected:
                self.ratio[0] += seconds
                self.ratio[1] += self.expected[batch]
        self._name()
        self._left()
        self.bar.update(units)

    def step(self, state: StepState) -> None:
        """A step of the batch being rendered here (the engine's callback): shown on the bar,
        the time left counting the part of this batch already done."""
        if self.pending and state.step > 0:
            b = self.pending[0]
            left, cost = self.left(), self.cost(b)
            if left is not None and cost is not None:
                left = max(left - cost * min(state.step / b.config.steps, 1.0), 0.0)
            when = f", ~{format_seconds(left)} left" if left is not None else ""
            self.bar.set_postfix_str(f"step {state.step}/{b.config.steps}{when}", True)

    def _left(self) -> None:
        left = self.left()
        if left is not None:
            self.bar.set_postfix_str(f"~{format_seconds(left)} left", False)

    def attach(self, executor: object) -> None:
        """Show the steps of an in-process executor's batches (its step callback), until
        :meth:`close`."""
        if self.bar.disable or not isinstance(executor, InProcess) or executor.callback:
            return
        executor.callback = self.step
        self.attached = executor

    def close(self) -> None:
        """Clear the bar (the command's last line says what was done) and detach."""
        if self.attached is not None:
            self.attached.callback = None
            self.attached = None
        self.bar.close()
