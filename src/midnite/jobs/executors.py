"""Executors run batches and yield their results; the runner alone writes files.

:class:`InProcess` (the default) renders batches one after another in this process;
``midnite.jobs.ray.RayExecutor`` renders them on Ray workers (imported only when asked for).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch

from midnite.analysis import TopExamples, top_examples
from midnite.engine import RenderResult, StepState, render_config
from midnite.jobs.plan import Batch

__all__ = ["Executor", "InProcess"]


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


class InProcess:
    """The default executor: renders the batches one after another in this process.

    ``progress``: the engine's per-step progress bar for each batch; ``callback``: the
    engine's step callback (``render_config(..., callback=)``), e.g. the runner's bar.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        progress: bool = False,
        callback: Callable[[StepState], object] | None = None,
    ):
        self.model = model
        self.progress = progress
        self.callback = callback

    def run(self, batches: Sequence[Batch]) -> Iterator[tuple[Batch, RenderResult | Exception]]:
        steps: dict[str, Any] = {} if self.callback is None else {"callback": self.callback}
        for batch in batches:
            try:
                with warnings.catch_warnings():  # failed images are reported per unit instead
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

    def examples(
        self,
        layers: Sequence[str],
        folder: Path,
        k: int,
        size: tuple[int, int],
        progress: bool,
        exclude: Sequence[Path] = (),
    ) -> TopExamples:
        device = next((p.device for p in self.model.parameters()), None)
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
