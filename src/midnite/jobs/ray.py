"""The Ray executor: workers keep the model, batches are actor calls, the runner writes.

    with RayExecutor("path/model.py:net", address=None) as executor:  # None: local Ray
        summary = jobs.run(work, "DIR", executor=executor)

Imported only when asked for (``midnite catalogue --ray``): the rest of midnite never imports
Ray; ``midnite.catalogue_ray`` is this module's old path (``Ray`` the class's old name).
The contract (DESIGN section 7):

- Without an address a local Ray instance is started (asked for 127.0.0.1, no dashboard, quiet
  logs, ``num_cpus`` this machine's) and shut down at the end, also on an error or Ctrl-C.
  Ray 2.60 turns 127.0.0.1 into the machine's own address and its servers listen on every
  interface, so the local instance is not confined to the loopback. With an address
  (``HEAD:6379``) an existing cluster is joined (a port that does not answer as a gRPC server
  is an error within ``timeout`` seconds) and left running.
- One actor per worker builds the model once, from its *name* (``models.load``), and keeps it:
  no shared filesystem is needed; for a file model (``path.py:function``) the file's source is
  sent along (a file that imports files next to it is not supported). Each worker pins torch
  to ``threads`` threads (default 1), so its images are byte-identical to an in-process run
  with the same number of threads. Default workers: the cluster's CPUs // ``threads``.
- Each batch is one actor call returning its ``RenderResult``; results are taken as they
  complete (``ray.wait``) and only the driver writes files. A worker that dies mid-batch is
  restarted by Ray (``max_restarts``) and its call retried (``max_task_retries``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import socket
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from midnite.analysis import TopExamples, merge, top_examples
from midnite.engine import RenderResult
from midnite.errors import UsageError
from midnite.images import list_images
from midnite.jobs.plan import Batch

__all__ = ["INSTALL", "Ray", "RayError", "RayExecutor", "import_ray"]

INSTALL = "pip install 'midnite[ray]'"
RESTARTS = 3  # restarts of a lost worker (and retries of the batch it held)
CHUNK = 64  # images per dataset-examples task: the driver holds one chunk's bytes per worker


class RayError(UsageError, RuntimeError):
    """Ray is missing or the cluster cannot be reached: one line for people (exit status 2)."""


def import_ray() -> Any:
    """The ``ray`` module, or a :class:`RayError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise RayError(f"--ray needs Ray, which is not installed; install it: {INSTALL}") from None
    return ray


def model_spec(name: str) -> tuple[str, str | None]:
    """``(name a worker loads, file source or None)``: a file model travels as its source."""
    prefix, _, function = name.partition(":")
    if name.count(":") == 1 and prefix.endswith(".py") and Path(prefix).is_file():
        return f"{Path(prefix).name}:{function}", Path(prefix).read_text()
    return name, None


# an HTTP/2 connection preface and an empty SETTINGS frame: a gRPC server (Ray's GCS) answers
# with a SETTINGS frame (type 4) before anything else, whatever its authentication
_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def _reachable(address: str, timeout: float) -> None:
    """A :class:`RayError` unless a gRPC server answers at ``host:port`` within ``timeout``.

    ``ray.init`` waits minutes for a port that does not answer; this check takes seconds.
    """
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address:
        return  # "auto", ray:// and the like: Ray's own checks
    hint = "start it with 'ray start --head' on the head node, or leave out the address"
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(_PREFACE)
            head = s.recv(9)
    except OSError as err:
        why = "no answer" if isinstance(err, TimeoutError) else (err.strerror or str(err))
        raise RayError(f"cannot reach the Ray cluster at {address!r} ({why}); {hint}") from None
    if len(head) < 4 or head[3] != 4:
        raise RayError(f"no Ray cluster answers at {address!r} (not a gRPC server); {hint}")


class _Worker:
    """A Ray actor's body: the model, built once from its name, and a render per call."""

    def __init__(self, name: str, source: str | None, threads: int):
        import tempfile

        import torch

        from midnite import models

        torch.set_num_threads(threads)
        if source is None:
            self.model = models.load(name)
            return
        with tempfile.TemporaryDirectory(prefix="midnite-model-") as folder:  # loaded, removed
            file, _, function = name.partition(":")
            Path(folder, file).write_text(source)
            self.model = models.load(f"{Path(folder, file)}:{function}")

    def pid(self) -> int:
        return os.getpid()

    def examples(
        self, layers: list[str], images: dict[str, bytes], k: int, size: tuple[int, int]
    ) -> TopExamples:
        # shard=(0, 1): a chunk with no readable image is a result (merged), not an error
        return top_examples(self.model, layers, images, k, size=size, shard=(0, 1), progress=False)

    def render(self, config: Any) -> RenderResult:
        from midnite.engine import render_config

        return render_config(self.model, config, progress=False)


class RayExecutor:
    """A :class:`midnite.jobs.executors.Executor` over Ray actors (a context manager)."""

    def __init__(
        self,
        model: str,
        *,
        address: str | None = None,
        workers: int | None = None,
        threads: int = 1,
        timeout: float = 30.0,
    ):
        self.ray = import_ray()
        self.model, self.source = model_spec(model)
        self.address = address or None
        self.workers = workers
        self.threads = threads
        self.timeout = timeout
        self.actors: list[Any] = []
        self._connected = False

    def __enter__(self) -> RayExecutor:
        ray = self.ray
        quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
        if self.address is None:
            ray.init(
                address="local",
                include_dashboard=False,
                _node_ip_address="127.0.0.1",
                num_cpus=os.cpu_count() or 1,
                **quiet,
            )
        else:
            _reachable(self.address, min(self.timeout / 3, 5.0))
            try:
                ray.init(address=self.address, **quiet)
            except Exception as err:
                raise RayError(
                    f"cannot join the Ray cluster at {self.address!r}: {type(err).__name__}: "
                    f"{' '.join(str(err).split())[:200]}"
                ) from None
        self._connected = True
        try:
            self._start_workers()
        except BaseException:
            self.close()
            raise
        return self

    def _start_workers(self) -> None:
        ray = self.ray
        cpus = int(ray.cluster_resources().get("CPU", 1))
        n = self.workers or max(1, cpus // self.threads)
        actor = ray.remote(
            num_cpus=min(self.threads, cpus),
            max_restarts=RESTARTS,
            max_task_retries=RESTARTS,
        )(_Worker)
        self.actors = [actor.remote(self.model, self.source, self.threads) for _ in range(n)]

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Let the workers go; shut Ray down when this executor started it."""
        for a in self.actors:
            with contextlib.suppress(Exception):  # already gone
                self.ray.kill(a)
        self.actors = []
        if self._connected:  # a local instance stops; a joined cluster only loses this driver
            self.ray.shutdown()
            self._connected = False

    def pids(self) -> list[int]:
        """The workers' process ids (for tests)."""
        return list(self.ray.get([a.pid.remote() for a in self.actors]))

    def _spread(
        self, items: Sequence[Any], submit: Callable[[Any, Any], Any], lost: str
    ) -> Iterator[tuple[Any, Any]]:
        """``(item, result or the exception)`` of ``submit(actor, item)``, one item per idle
        worker, as each result arrives. A worker lost past its restarts is not used again; when
        none is left, the items not sent get ``RuntimeError(lost)``."""
        if not self.actors:
            raise RuntimeError("Ray executor: use it in a 'with' block (starts the workers)")
        ray = self.ray
        queue = list(reversed(items))
        pending: dict[Any, tuple[Any, Any]] = {}
        idle = list(self.actors)
        while queue or pending:
            while queue and idle:
                item, actor = queue.pop(), idle.pop()
                pending[submit(actor, item)] = (item, actor)
            if not pending:  # every worker lost past its restarts
                while queue:
                    yield queue.pop(), RuntimeError(lost)
                return
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            item, actor = pending.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayTaskError as err:  # the call raised: the cause
                cause = err.as_instanceof_cause()
                result = cause if isinstance(cause, Exception) else err
            except ray.exceptions.RayActorError as err:  # lost past its restarts: not used again
                result = err
                actor = None
            except Exception as err:
                result = err
            if actor is not None:
                idle.append(actor)
            yield item, result

    def run(self, batches: Sequence[Batch]) -> Iterator[tuple[Batch, RenderResult | Exception]]:
        """One batch per idle worker; each result is yielded as soon as it arrives."""
        yield from self._spread(
            batches,
            lambda actor, batch: actor.render.remote(batch.config),
            "every Ray worker was lost; a rerun renders what is missing",
        )

    def examples(
        self, layers: Sequence[str], folder: Path, k: int, size: tuple[int, int], progress: bool
    ) -> TopExamples:
        """``top_examples`` over ``folder``, in chunks of ``CHUNK`` files sent (as bytes) to idle
        workers, merged here as they come: the cluster needs no shared filesystem."""
        names = list_images(folder)
        chunks = [names[i : i + CHUNK] for i in range(0, len(names), CHUNK)]
        unreadable: list[tuple[str, str]] = []

        def submit(actor: Any, chunk: list[str]) -> Any:
            data = {}  # read here, when a worker is free: one chunk's bytes per worker
            for name in chunk:
                try:
                    data[name] = (folder / name).read_bytes()
                except OSError as err:
                    unreadable.append((name, f"cannot read: {err}"))
            return actor.examples.remote(list(layers), data, k, tuple(size))

        merged: TopExamples | None = None
        bar = tqdm(
            total=len(names),
            unit="img",
            desc="dataset examples",
            disable=not progress,
            file=sys.stderr,
        )
        try:
            for chunk, part in self._spread(chunks, submit, "every Ray worker was lost"):
                if isinstance(part, Exception):
                    raise part
                part = dataclasses.replace(part, root=str(folder))
                merged = part if merged is None else merge(merged, part)
                bar.update(len(chunk))
        finally:
            bar.close()
        assert merged is not None  # list_images found files: at least one chunk
        if unreadable:
            merged.skipped = sorted([*merged.skipped, *unreadable])
        if merged.seen == 0:
            raise ValueError(f"images: no readable image in the folder {str(folder)!r}")
        return merged


Ray = RayExecutor  # the old name (midnite.catalogue_ray.Ray)
