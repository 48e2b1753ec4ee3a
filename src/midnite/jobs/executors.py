"""Executors run batches and yield their results; the runner alone writes files. They also run
the analysis passes over a folder: dataset examples and the reservoir of a concept fit.

:class:`InProcess` renders batches one after another in this process (with ``threads``,
torch's thread count is set for the run and given back after); ``midnite.jobs.pool.PoolExecutor``
renders them in spawned worker processes (the CLI's default, see ``cli.options.choose_executor``);
``midnite.jobs.ray.RayExecutor`` on Ray workers (imported only when asked for).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch

from midnite.analysis import TopExamples, top_examples
from midnite.analysis.concepts import collect
from midnite.analysis.reservoir import Reservoir
from midnite.engine import RenderResult, StepState, render_config
from midnite.engine.checks import check_positive_int
from midnite.jobs.plan import Batch

__all__ = ["Executor", "InProcess", "torch_threads"]


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """``torch.set_num_threads(threads)`` for the block (``None``: unchanged), then back."""
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Executor(Protocol):
    """Runs batches and yields ``(batch, result or the exception it raised)``, in any order;
    computes dataset examples (``dataset_examples.top_examples``) over a folder of images."""

    def run(self, batches: Sequence[Batch]) -> Iterator[tuple[Batch, RenderResult | Exception]]:
        """Render each batch once."""
        ...

    def examples(
        self,
        layers: Sequence[str],
        folder: Path,
        k: int,
        size: tuple[int, int],
        progress: bool,
        exclude: Sequence[Path] = (),
    ) -> TopExamples:
        """Every unit's top ``k`` images of ``folder`` (ids relative to it; ``root`` = folder),
        never reading the ``exclude`` folders (the output folder)."""
        ...

    def reservoir(
        self,
        layer: str,
        folder: Path,
        size: tuple[int, int],
        progress: bool,
        exclude: Sequence[Path] = (),
        *,
        seed: int = 0,
        rows_per_image: int = 8,
        max_rows: int = 20_000,
    ) -> Reservoir:
        """``analysis.concepts.collect`` of ``layer`` over ``folder``: the same reservoir
        however the pass is split (ids are the paths relative to ``folder``)."""
        ...


class InProcess:
    """The default executor: renders the batches one after another in this process.

    ``progress``: the engine's per-step progress bar for each batch; ``callback``: the
    engine's step callback (``render_config(..., callback=)``), e.g. the runner's bar;
    ``device``: where the analysis passes run (default: where the model's weights are);
    ``threads``: torch threads while batches render (default: leave torch's setting as it is),
    the count before is given back after each batch.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        progress: bool = False,
        callback: Callable[[StepState], object] | None = None,
        device: torch.device | str | None = None,
        threads: int | None = None,
    ):
        self.model = model
        self.threads = None if threads is None else check_positive_int("threads", threads)
        self.device = device
        self.progress = progress
        self.callback = callback

    def run(self, batches: Sequence[Batch]) -> Iterator[tuple[Batch, RenderResult | Exception]]:
        steps: dict[str, Any] = {} if self.callback is None else {"callback": self.callback}
        for batch in batches:
            try:
                # failed images are reported per unit instead
                with warnings.catch_warnings(), torch_threads(self.threads):
                    warnings.filterwarnings(
                        "ignore",
                        message=r"render: \d+ of \d+ image\(s\) failed",
                        category=RuntimeWarning,
                    )
                    result: RenderResult | Exception = render_config(
                        self.model, batch.config, progress=self.progress, **steps
                    )
            except Exception as err:  # reported by the runner; KeyboardInterrupt goes on up
                result = err
            yield batch, result

    def _device(self) -> torch.device | str | None:
        if self.device is not None:
            return self.device
        return next((p.device for p in self.model.parameters()), None)

    def examples(
        self,
        layers: Sequence[str],
        folder: Path,
        k: int,
        size: tuple[int, int],
        progress: bool,
        exclude: Sequence[Path] = (),
    ) -> TopExamples:
        device = self._device()
        return top_examples(
            self.model,
            layers,
            folder,
            k,
            size=size,
            device=device,
            progress=progress,
            exclude=exclude,
        )

    def reservoir(
        self,
        layer: str,
        folder: Path,
        size: tuple[int, int],
        progress: bool,
        exclude: Sequence[Path] = (),
        *,
        seed: int = 0,
        rows_per_image: int = 8,
        max_rows: int = 20_000,
    ) -> Reservoir:
        device = self._device()
        return collect(
            self.model, layer, folder, seed=seed, rows_per_image=rows_per_image,
            max_rows=max_rows, size=size, device=device, progress=progress, exclude=exclude,
        )  # fmt: skip
