"""The process-pool executor: N spawned worker processes, each holding the model and ``threads``
torch threads, render batches; results come back to this process, which alone writes files.

    with PoolExecutor("efficientnet-lite0", workers=2) as executor:
        summary = jobs.run(work, "DIR", executor=executor)

Contract:

- Each worker loads MODEL once *by its name*, with the Ray workers' own code
  (``jobs.ray._Worker``: ``models.load``, ``torch.set_num_threads(threads)``, default 1), so
  its images are byte-identical to an in-process run, or a Ray run, with the same threads.
- Batches go one per idle worker and each result is yielded as it arrives; a worker that dies
  is not used again and its batch fails (a rerun renders it); no retries, no scheduler.
- Dataset examples and the concept reservoir run in *this* process (``InProcess`` of the
  model given, else of MODEL loaded here once): one streaming pass, not sharded.
- Ctrl-C and SIGTERM end the workers: they ignore SIGINT (the parent decides), the parent
  terminates them on close, on an error and when a run is left with batches in flight; a worker
  whose parent is gone (even SIGKILLed) exits at its next read of the pipe. Workers are started
  lazily (first batch) or by ``with``; :meth:`close` ends them.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection as mpc
import os
import signal
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from midnite.analysis import TopExamples
from midnite.analysis.reservoir import Reservoir
from midnite.engine import RenderResult
from midnite.engine.checks import check_positive_int
from midnite.errors import RenderError
from midnite.jobs.executors import InProcess
from midnite.jobs.plan import Batch

__all__ = ["POOL_BATCHES", "PoolError", "PoolExecutor", "cpus", "pool_workers"]

# the default pool only for runs of at least this many batches per worker: starting the
# workers (spawn, import torch, load the model, each) cost ~10 s on a loaded 2-core machine,
# more than 4 small Lite0 batches in one process gained back (benchmarks/threads.py)
POOL_BATCHES = 4
FAILED = r"render: \d+ of \d+ image\(s\) failed"  # reported per unit by the runner instead


class PoolError(RenderError, RuntimeError):
    """A worker could not start (its model did not load) or died (exit status 1)."""


def cpus() -> int:
    """The CPUs this process may run on (``os.sched_getaffinity``, else ``os.cpu_count``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def pool_workers(batches: int, requested: int | None = None) -> int:
    """Worker processes for a run of ``batches`` batches: ``requested`` when given (at most one
    per batch), else one per CPU (:func:`cpus`) when the run has ``POOL_BATCHES`` batches per
    CPU, else 1 (this process renders alone)."""
    if requested is not None:
        return max(1, min(requested, batches))
    n = cpus()
    return n if n > 1 and batches >= POOL_BATCHES * n else 1


def _serve(conn: Any, name: str, source: str | None, threads: int) -> None:
    """A worker's body: load the model, then answer ``(method, args)`` until ``None`` or until
    the parent's end of the pipe is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: parent decides
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    from midnite.jobs.ray import _Worker  # Ray itself is not imported

    warnings.filterwarnings("ignore", message=FAILED, category=RuntimeWarning)
    try:
        worker = _Worker(name, source, threads)
        conn.send(("ok", os.getpid()))
    except BaseException as err:  # even SystemExit from a model file: one line for the parent
        with contextlib.suppress(OSError):
            conn.send(("err", PoolError(f"{type(err).__name__}: {err}")))
        return
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if message is None:
            return
        method, args = message
        try:
            answer: tuple[str, Any] = ("ok", getattr(worker, method)(*args))
        except Exception as err:
            answer = ("err", err)
        try:
            conn.send(answer)
        except (OSError, ValueError):  # the parent is gone
            return
        except Exception as err:  # an exception that does not pickle
            conn.send(("err", RuntimeError(f"{type(err).__name__}: {err}")))


class PoolExecutor:
    """A :class:`midnite.jobs.executors.Executor` over ``workers`` spawned processes.

    ``model_name``: what ``midnite.models.load`` takes (a built-in name, ``file.py:function``);
    ``workers``: processes (default: the CPUs this process may use); ``threads``: torch threads
    per worker (default 1); ``model``: the model already loaded here, for the dataset examples
    and the reservoir (else loaded by name when first needed).
    """

    def __init__(
        self,
        model_name: str,
        *,
        workers: int | None = None,
        threads: int = 1,
        model: torch.nn.Module | None = None,
    ):
        from midnite.jobs.ray import model_spec

        self.workers = check_positive_int("workers", workers) if workers is not None else cpus()
        self.threads = check_positive_int("threads", threads)
        self.model_name = model_name
        self.name, self.source = model_spec(model_name)
        self.model = model
        self._procs: list[Any] = []
        self._conns: list[Any] = []

    def __enter__(self) -> PoolExecutor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Start the workers and wait until each has loaded the model (a :class:`PoolError`
        naming why when one cannot)."""
        if self._procs:
            return
        context = multiprocessing.get_context("spawn")
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # inherited by them
        try:
            for _ in range(self.workers):
                here, there = context.Pipe()
                proc = context.Process(
                    target=_serve, args=(there, self.name, self.source, self.threads), daemon=True
                )
                proc.start()
                there.close()  # only the worker holds its end: the parent's death is its EOF
                self._procs.append(proc)
                self._conns.append(here)
        except BaseException:
            self.close()
            raise
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        try:
            for conn in self._conns:
                status, said = self._receive(conn)
                if status != "ok":
                    raise said
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _receive(conn: Any) -> tuple[str, Any]:
        try:
            return conn.recv()
        except (EOFError, OSError):
            return "err", PoolError("a pool worker died (killed, or out of memory)")

    def pids(self) -> list[int]:
        """The workers' process ids (for tests)."""
        return [p.pid for p in self._procs]

    def close(self) -> None:
        """End the workers: idle ones are told to leave, the rest terminated; none is left."""
        procs, conns = self._procs, self._conns
        self._procs, self._conns = [], []
        for conn in conns:
            with contextlib.suppress(OSError, ValueError):
                conn.send(None)
        for proc in procs:
            proc.join(timeout=0.5)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for conn in conns:
            conn.close()

    def run(self, batches: Sequence[Batch]) -> Iterator[tuple[Batch, RenderResult | Exception]]:
        """One batch per idle worker; each result is yielded as soon as it arrives. Left with
        batches in flight (Ctrl-C, an error, a caller that stops), the pool is closed."""
        self.start()
        queue = list(reversed(batches))
        idle = list(self._conns)
        pending: dict[Any, Batch] = {}
        try:
            while queue or pending:
                while queue and idle:
                    conn, batch = idle.pop(), queue.pop()
                    try:
                        conn.send(("render", (batch.config,)))
                    except (OSError, ValueError):  # this worker is gone: not used again
                        queue.append(batch)
                        continue
                    pending[conn] = batch
                if not pending:
                    while queue:
                        yield queue.pop(), PoolError("every pool worker died; a rerun renders it")
                    return
                for conn in mpc.wait(list(pending)):
                    batch = pending.pop(conn)
                    status, said = self._receive(conn)
                    if status == "ok" or not isinstance(said, PoolError):
                        idle.append(conn)
                    yield batch, said
        finally:
            if pending:
                self.close()

    def _local(self) -> InProcess:
        if self.model is None:
            from midnite import models

            self.model = models.load(self.model_name).float()
        return InProcess(self.model)

    def examples(
        self,
        layers: Sequence[str],
        folder: Path,
        k: int,
        size: tuple[int, int],
        progress: bool,
        exclude: Sequence[Path] = (),
    ) -> TopExamples:
        """``top_examples`` in this process (see the module's contract)."""
        return self._local().examples(layers, folder, k, size, progress, exclude)

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
        """``analysis.concepts.collect`` in this process (see the module's contract)."""
        return self._local().reservoir(
            layer, folder, size, progress, exclude, seed=seed, rows_per_image=rows_per_image,
            max_rows=max_rows,
        )  # fmt: skip
