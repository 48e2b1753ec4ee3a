"""Executors run batches and yield their results; the runner alone writes files. They also run
the analysis passes over a folder: dataset examples and the reservoir of a concept fit.

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
from midnite.analysis.concepts import collect
from midnite.analysis.reservoir import Reservoir
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
    ``device``: where the analysis passes run (default: where the model's weights are).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        progress: bool = False,
        callback: Callable[[StepState], object] | None = None,
        device: torch.device | str | None = None,
    ):
        self.model = model
        self.device = device
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
