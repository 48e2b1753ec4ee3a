"""Live render jobs: a bounded queue, at most ``max_jobs`` renders at once in worker threads,
each cancellable and time-limited, each written into the served folder by the one runner.

A job is a one-unit plan (``jobs.plan`` in the ``LAYERS`` layout) rendered on the engine's
step loop (``render_config`` with a step callback and snapshots), then written by ``jobs.run``
under the folder's lock: atomic, keyed, and "up to date" when the same request comes again.
A cancelled or timed-out render raises in its callback, so nothing of it is ever written.
"""

from __future__ import annotations

import base64
import copy
import queue
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import torch

from midnite.engine import RenderResult, StepState, render_config
from midnite.errors import MidniteError, UsageError
from midnite.images import png_bytes
from midnite.jobs import LAYERS, Batch, Settings, plan, run
from midnite.jobs import concepts as J
from midnite.jobs.plan import canonical, layer_folder
from midnite.jobs.runner import Pages
from midnite.jobs.views import captions
from midnite.pages import catalogue as site
from midnite.serve.concepts import dictionaries
from midnite.store import records as rec

__all__ = ["STATES", "TERMINAL", "Job", "JobManager", "Limits", "QueueFull", "Request"]

STATES = ("queued", "running", "done", "failed", "cancelled")
TERMINAL = frozenset({"done", "failed", "cancelled"})
SNAPSHOTS = 8  # current images sent per render (about every steps/8 steps)


class QueueFull(MidniteError):
    """The queue of waiting renders is full (HTTP 429)."""


class _Stop(MidniteError):
    """Raised in the step callback: the render ends and nothing of it is written."""


@dataclass(frozen=True)
class Limits:
    """What one server accepts: renders at once, waiting renders, steps, size, seconds."""

    max_jobs: int = 1
    queue: int = 4
    max_steps: int = 512
    max_size: int = 512
    seconds: float = 600.0
    kept: int = 200  # finished jobs remembered (the oldest forgotten first)


@dataclass(frozen=True)
class Request:
    """One render asked for: ``layer`` (''=output), ``unit``, ``view``, ``steps``, ``size``;
    ``init``: a start image ``(C, H, W)`` (feature accentuation) with ``init_penalty``."""

    layer: str
    unit: int
    view: str
    steps: int
    size: int
    recipe: str | None = None
    init: torch.Tensor | None = field(default=None, compare=False, repr=False)
    init_penalty: float = 0.0


@dataclass
class Job:
    """A render's state as the API shows it; ``events`` is the progress stream so far."""

    id: str
    request: Request
    state: str = "queued"
    step: int = 0
    objective: float | None = None
    image: str | None = None  # the finished PNG's address under the served folder
    error: str | None = None
    up_to_date: bool = False
    created: float = field(default_factory=time.monotonic)
    events: list[tuple[str, dict]] = field(default_factory=list)
    cancel: threading.Event = field(default_factory=threading.Event)

    def to_json(self) -> dict:
        r = self.request
        return {
            "job": self.id,
            "state": self.state,
            "layer": r.layer,
            "unit": r.unit,
            "view": r.view,
            "steps": r.steps,
            "size": r.size,
            "step": self.step,
            "objective": self.objective,
            "image": self.image,
            "error": self.error,
            "up_to_date": self.up_to_date,
        }


def data_url(image: torch.Tensor) -> str:
    """A ``(C, H, W)`` image in [0, 1] as a PNG data URL."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode("ascii")


class JobManager:
    """Queues, runs, cancels and reports live renders of ``model`` into ``folder``.

    ``shapes``: each layer's output shape (``engine.layers``); ``device``: where renders run.
    Each worker thread renders on its own copy of ``model``, so renders never share hooks and
    ``model`` itself stays free for other work (``fires``).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        name: str,
        folder: Path,
        shapes: dict[str, tuple[int, ...]],
        *,
        limits: Limits = Limits(),
        device: str = "cpu",
    ):
        self.name, self.folder, self.shapes, self.limits = name, Path(folder), shapes, limits
        self.device = device
        # the folder's concept dictionaries of this model: their views render concept i
        self.concepts = dictionaries(model, self.folder)
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._write = threading.Lock()  # one runner at a time writes into the folder
        self._waiting: queue.Queue[Job | None] = queue.Queue()
        self._queued = 0
        self._closed = False
        self._site: site.Site | None = None  # the catalogue's pages, kept between renders
        self._stamp: int | None = None  # index.html's mtime when this server last wrote it
        # each thread renders on its own copy: renders never share hooks (nor the caller's model)
        self._models = [copy.deepcopy(model) for _ in range(limits.max_jobs)]
        self._threads = [
            threading.Thread(target=self._work, args=(m,), name=f"midnite-render-{i}", daemon=True)
            for i, m in enumerate(self._models)
        ]
        for thread in self._threads:
            thread.start()

    # the API's side -----------------------------------------------------------------------
    def submit(self, request: Request) -> Job:
        """Queue ``request``; :class:`QueueFull` when ``limits.queue`` renders already wait."""
        with self._lock:
            if self._closed:
                raise QueueFull("the server is shutting down; no new renders")
            if self._queued >= self.limits.queue:
                raise QueueFull(
                    f"{self._queued} renders are waiting (the queue holds {self.limits.queue}); "
                    "try again when one has finished"
                )
            job = Job(uuid.uuid4().hex[:16], request)
            self.jobs[job.id] = job
            self._queued += 1
            self._forget()
        self._waiting.put(job)
        return job

    def get(self, ident: str) -> Job | None:
        return self.jobs.get(ident)

    def cancel(self, ident: str) -> Job | None:
        """Cancel a job: a queued one never starts, a running one stops at its next step."""
        job = self.jobs.get(ident)
        if job is None:
            return None
        with self._lock:
            job.cancel.set()
            if job.state == "queued":
                self._queued -= 1
                self._finish(job, "cancelled", error="cancelled before it started")
        return job

    def stop(self) -> None:
        """Refuse new jobs and cancel every job (returns at once; see :meth:`close`)."""
        with self._lock:
            self._closed = True
            ids = list(self.jobs)
        for ident in ids:
            self.cancel(ident)

    def close(self, wait: float = 30.0) -> None:
        """:meth:`stop`, then end the workers (waiting up to ``wait`` s for a write to end)."""
        self.stop()
        for _ in self._threads:
            self._waiting.put(None)
        end = time.monotonic() + wait
        for thread in self._threads:
            thread.join(max(0.0, end - time.monotonic()))

    def _forget(self) -> None:
        done = [j for j in self.jobs.values() if j.state in TERMINAL]
        for job in done[: max(0, len(done) - self.limits.kept)]:
            del self.jobs[job.id]

    def _finish(self, job: Job, state: str, **fields: object) -> None:
        for key, value in fields.items():
            setattr(job, key, value)
        job.state = state
        job.events.append((state, job.to_json()))

    # the workers' side ----------------------------------------------------------------------
    def _work(self, model: torch.nn.Module) -> None:
        while True:
            job = self._waiting.get()
            if job is None:
                return
            with self._lock:
                if job.state != "queued":
                    continue  # cancelled while waiting
                self._queued -= 1
                job.state = "running"
            try:
                self._render(model, job)
            except _Stop as stop:
                with self._lock:
                    state = "failed" if "time limit" in str(stop) else "cancelled"
                    self._finish(job, state, error=str(stop))
            except Exception as err:  # one line for the page; the server goes on
                with self._lock:
                    message = " ".join(str(err).split()) or type(err).__name__
                    self._finish(job, "failed", error=message[:300])

    def plan(self, model: torch.nn.Module, r: Request) -> list[Batch]:
        """The one-unit plan of ``r`` (``jobs.plan``, ``LAYERS`` layout, batch 1)."""
        concept = self.concepts.get(r.view)
        settings = Settings(
            size=(r.size, r.size), steps=r.steps, batch=1, seed=0, device=self.device,
            recipe=r.recipe or (concept.recipe if concept else None), init=r.init,
            init_penalty=r.init_penalty,
        )  # fmt: skip
        shape = (concept.n,) if concept else self.shapes[r.layer]
        return plan(
            model, self.name, [r.layer], {r.layer: shape},
            settings=settings, views=[r.view], units=[r.unit], layout=LAYERS,
        )  # fmt: skip

    def _render(self, model: torch.nn.Module, job: Job) -> None:
        work = self.plan(model, job.request)
        if not work:
            raise UsageError(f"view {job.request.view!r} needs a layer with positions (C, H, W)")
        batch = work[0]
        address = "/" + quote(f"{batch.folder()}/{batch.stem(job.request.unit)}.png")
        if self._held(batch, job.request.unit):
            with self._lock:
                job.up_to_date = True
                self._finish(job, "done", image=address)
            return
        result = self._steps(model, batch, job)
        with self._write, rec.lock_folder(self.folder):
            summary = run(work, self.folder, executor=_Done(batch, result), progress=False,
                          pages=self._pages(batch.folder()))  # fmt: skip
        if summary.failed:
            raise RuntimeError(next(iter(summary.failed.values())))
        with self._lock:
            job.up_to_date = summary.up_to_date > 0
            self._finish(job, "done", image=address)

    def _pages(self, sub: str) -> Pages:
        """The runner's page builder for a live render: at the end only, the layer's pages and
        the model page (``pages.catalogue.Site.update``); the catalogue's plan is left as it is.
        The site is read again when another run changed ``index.html`` since this one wrote it.
        """

        def build(scans: Mapping[str, rec.Scan], final: bool) -> Path | None:
            if not final or sub not in scans:
                return None
            index = self.folder / site.INDEX
            stamp = index.stat().st_mtime_ns if index.is_file() else None
            if self._site is None or stamp != self._stamp:
                self._site = site.Site(self.folder, captions())
            path = self._site.update(sub, scans[sub])
            self._stamp = path.stat().st_mtime_ns
            self._concept_pages(sub, scans)
            return path

        return build

    def _concept_pages(self, sub: str, scans: Mapping[str, rec.Scan]) -> None:
        """The concept pages and summary of the dictionaries of layer folder ``sub``."""
        done = set(scans[sub].valid())
        seen: set[int] = set()
        for view in self.concepts.values():
            if layer_folder(view.layer) != sub or id(view.concepts) in seen:
                continue
            seen.add(id(view.concepts))
            J.concepts_pages(view.concepts, self.folder, view.examples, self.name)(scans, True)
            J.write_summary(view.concepts, self.folder, done)

    def _held(self, batch: Batch, unit: int) -> bool:
        """The folder holds this render from another batching (a catalogue's batch of 8): the
        same key but for the batch, so it is shown rather than replaced by a batch-1 render."""
        stem = self.folder / batch.folder() / batch.stem(unit)
        record = rec.read_record(stem.with_suffix(".json"))
        if not record or not stem.with_suffix(".png").is_file():
            return False
        ours = canonical(batch.key(unit))
        theirs = record.get("key")
        if not isinstance(ours, dict) or not isinstance(theirs, dict):
            return False
        drop = set(BATCHING)
        return {k: v for k, v in theirs.items() if k not in drop} == {
            k: v for k, v in ours.items() if k not in drop
        }

    def _steps(self, model: torch.nn.Module, batch: Batch, job: Job) -> RenderResult | None:
        """The render on the step loop, or None when the folder already holds it."""
        from midnite.jobs import todo

        if not todo([batch], self.folder)[0]:
            return None
        steps = batch.config.steps
        every = max(1, steps // SNAPSHOTS)
        began = time.monotonic()

        def step(state: StepState) -> None:
            if job.cancel.is_set():
                raise _Stop("cancelled")
            if time.monotonic() - began > self.limits.seconds:
                raise _Stop(f"stopped at the time limit of {self.limits.seconds:g} s")
            value = float(state.objective[0])
            job.step, job.objective = state.step, value
            event: dict = {"step": state.step, "objective": value}
            if state.images is not None:
                event["image"] = data_url(state.images[0])
            job.events.append(("progress", event))

        snaps = range(every, steps + 1, every)
        return render_config(model, batch.config, progress=False, callback=step, snapshots=snaps)


# what a batch adds to a render's key: its size, its units, the digest of its config
BATCHING = ("batch", "batch_units", "settings")


class _Done:
    """An executor that hands the runner a render already made (None: nothing to render)."""

    def __init__(self, batch: Batch, result: RenderResult | None):
        self.batch, self.result = batch, result

    def run(self, batches: Sequence[Batch]) -> Iterator[tuple[Batch, RenderResult | Exception]]:
        for batch in batches:
            if self.result is None:
                yield batch, RuntimeError("the folder changed while rendering; ask again")
            else:
                yield batch, self.result

    def examples(self, layers, folder, k, size, progress, exclude=()):
        """Not offered: a live render's plan has no dataset examples (``jobs.add_examples``)."""
        raise UsageError("live renders compute no dataset examples; use midnite catalogue")

    def reservoir(self, layer, folder, size, progress, exclude=(), **sample):
        """Not offered: a live render fits no concepts (``jobs.concepts.dictionary``)."""
        raise UsageError("live renders fit no concepts; use midnite concepts")
