"""The one resumable runner behind ``midnite render``, ``midnite catalogue`` and Python callers.

    summary = run(plan(model, "MODEL", layers, shapes, settings=s), "DIR", model=model)

It decides what is done (a valid record whose key is :meth:`Batch.key`; damaged units are
named and rendered again), renders the rest through an executor, writes each unit
(``jobs.write``: one finiteness check, one record builder, one PNG encoder) with Ctrl-C,
SIGTERM and SIGHUP held back until the batch's files are all written, reports progress
(``jobs.progress``) and calls a page builder before the first batch, after each batch and at
the end (``pages(scans, final)``). The caller holds the folder's lock
(``records.lock_folder``). Failed units are never saved: a rerun tries them again.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from midnite.engine import RenderResult
from midnite.errors import EXIT_INTERRUPTED, MidniteError, UsageError, WriteError
from midnite.jobs.executors import Executor, InProcess
from midnite.jobs.memory import render_failure
from midnite.jobs.pages import default_pages
from midnite.jobs.plan import Batch, canonical
from midnite.jobs.progress import Progress
from midnite.jobs.runs import other_runs, remove_units
from midnite.jobs.signals import deferred_interrupt, exit_status, signal_name
from midnite.jobs.write import failures, unit_metrics, write_unit
from midnite.store import records as rec
from midnite.store.paths import inside

__all__ = ["Interrupted", "Pages", "Summary", "deferred_interrupt", "run", "scan_plan", "todo"]

Pages = Callable[[Mapping[str, rec.Scan], bool], "Path | None"]


@dataclass
class Summary:
    """What ``run`` did: units (unit, view pairs) rendered, up to date, failed (with why)."""

    rendered: int = 0
    up_to_date: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    damaged: list[str] = field(default_factory=list)
    index: Path | None = None
    seconds: float = 0.0
    errors: list[BaseException] = field(default_factory=list)
    total: int = 0  # units this run set out to render
    out: Path | None = None  # the folder written to
    failed_units: list[int] = field(default_factory=list)

    @property
    def state(self) -> str:
        return f"{self.rendered} of {self.total} units written, every file complete"


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, SIGTERM or SIGHUP: the batch being written was finished; ``summary`` says how
    far, ``by`` what stopped it (``Ctrl-C``, ``SIGTERM``, ``SIGHUP``).

    The one midnite exception that is no ``MidniteError``: it must pass ``except Exception``
    as Ctrl-C does. ``exit_code`` is the command's status for it all the same: 130 for
    Ctrl-C (the class's), 128 + the signal's number otherwise (143 SIGTERM, 129 SIGHUP).
    """

    exit_code = EXIT_INTERRUPTED

    def __init__(self, summary: Summary, stop: BaseException | None = None):
        super().__init__()
        self.summary = summary
        self.by = "Ctrl-C" if stop is None else signal_name(stop)
        if stop is not None:
            self.exit_code = exit_status(stop)


@dataclass
class _Folders:
    """What the plan's folders hold, kept up to date as units are written (no rescan)."""

    shown: dict[str, dict[str, tuple[Path, dict]]]
    damaged: dict[str, dict[str, rec.Damaged]]

    def scans(self) -> dict[str, rec.Scan]:
        return {
            f: rec.Scan(list(self.shown[f].values()), list(self.damaged[f].values()))
            for f in self.shown
        }

    def record(self, folder: str, stem: str) -> dict | None:
        found = self.shown[folder].get(stem)
        return None if found is None else found[1]


def scan_plan(
    work: Sequence[Batch], out: Path, report: Callable[[str], None] | None = None
) -> _Folders:
    """Read the plan's folders; ``report`` gets a line per damaged unit found."""
    planned = {(b.folder(), b.stem(u)) for b in work for u in b.units}
    folders = _Folders({}, {})
    for folder in sorted({b.folder() for b in work}):
        path = out / folder
        found = rec.scan(path) if path.is_dir() else rec.Scan()
        folders.shown[folder] = {p.stem: (p, r) for p, r in found.units}
        folders.damaged[folder] = {bad.stem: bad for bad in found.damaged}
        for bad in found.damaged:
            where = f"{folder}/{bad}" if folder else str(bad)
            planned_here = (folder, bad.stem) in planned
            what = "rendering it again" if planned_here else "not in --units, left as it is"
            if report is not None:
                report(f"damaged unit {where}; {what}")
    return folders


def _left(work: Sequence[Batch], folders: _Folders) -> tuple[list[tuple[Batch, list[int]]], int]:
    left, done = [], 0
    for batch in work:
        missing = [
            u
            for u in batch.units
            if (folders.record(batch.folder(), batch.stem(u)) or {}).get("key")
            != canonical(batch.key(u))
        ]
        done += len(batch.units) - len(missing)
        if missing:
            left.append((batch, missing))
    return left, done


def todo(
    work: Sequence[Batch], out: Path, report: Callable[[str], None] | None = None
) -> tuple[list[tuple[Batch, list[int]]], int]:
    """``(batch, its units not complete in out)`` where some are, and how many units are.

    ``report`` gets a line per damaged unit found, saying whether this plan renders it again.
    """
    return _left(work, scan_plan(work, Path(out), report))


def run(
    work: Sequence[Batch],
    out: str | os.PathLike,
    *,
    executor: Executor | None = None,
    model: object = None,
    progress: bool = True,
    report: Callable[[str], None] | None = None,
    pages: Pages | None = None,
    check: Callable[[list[tuple[Batch, list[int]]]], Mapping[Batch, float] | None] | None = None,
    stop_on_error: bool = False,
    overwrite: bool = False,
    command: Sequence[str] | None = None,
    expected: Mapping[Batch, float] | None = None,
    shapes: Mapping[str, Sequence[int]] | None = None,
    class_names: Sequence[str] | None = None,
) -> Summary:
    """Render the units of ``work`` not yet complete in ``out`` and write them.

    ``executor`` defaults to :class:`InProcess` of ``model``. ``report`` gets one line per
    event worth a person's notice (a damaged unit, a failed unit, units removed).
    ``pages(scans, final)`` builds the pages after each batch and at the end (its result is
    ``Summary.index``; default: the layout's, ``jobs.pages.default_pages``).
    ``check(left)`` gets the ``(batch, units to render)`` pairs before anything is written or
    removed (a memory check, a line saying what is to be done); what it returns, if not
    None, is taken as ``expected`` (a probe's per-batch seconds).
    A batch that raises is reported in ``Summary.failed`` (its exception in ``errors``), or
    with ``stop_on_error`` ends the run as a ``RenderError`` or ``MemoryShortage``; a unit
    that turns non-finite is not saved. ``overwrite``: in a ``one_run`` layout, remove the
    units of another run configuration instead of refusing them.
    ``progress``: one bar (``jobs.progress``): layer, view, the step of an in-process batch,
    time left from per-batch costs (``expected``: a probe's ``Estimate.per_batch``). The
    pages are built before the first batch too, so a stopped run leaves its plan and pages;
    ``shapes`` (each layer's) and ``class_names`` (the output's; default: the model's
    ``class_names`` attribute) go to the default pages. Ctrl-C (and SIGTERM, SIGHUP under
    ``signals.stop_on_signals``) raises :class:`Interrupted` once the batch's files are
    written and the pages are up to date.
    """
    executor = _executor(executor, model)
    (out := Path(out)).mkdir(parents=True, exist_ok=True)
    summary = Summary(out=out)
    began = time.perf_counter()
    folders, others, left = _prepare(work, out, summary, report, overwrite)
    if left and check is not None:
        expected = check(left) or expected
    if others:  # --overwrite, once this run is known to start
        remove_units(out, others, report)
    pages = pages or default_pages(work, out, shapes, _class_names(class_names, model, executor))

    def build(final: bool) -> Path | None:
        return pages(folders.scans(), final)

    bar = Progress([b for b, _ in left], summary.total, enabled=progress, expected=expected)
    bar.attach(executor)  # an in-process batch's steps show on the bar
    try:
        if left:
            build(False)  # the plan and the pages from the start: a stopped run leaves them
            _render(executor, left, out, folders, summary, report, build, bar, stop_on_error,
                    command)  # fmt: skip
    except KeyboardInterrupt as stop:
        bar.close()
        with contextlib.suppress(Exception):
            summary.index = build(True)
        summary.seconds = time.perf_counter() - began
        raise Interrupted(summary, stop) from None
    except OSError as err:
        bar.close()
        raise _write_error(out, err, summary) from None
    except MidniteError:
        bar.close()
        with contextlib.suppress(Exception):
            build(True)
        raise
    bar.close()
    try:
        summary.index = build(True)
    except OSError as err:
        raise _write_error(out, err, summary) from None
    summary.seconds = time.perf_counter() - began
    return summary


def _executor(executor: Executor | None, model: object) -> Executor:
    """``executor``, else an in-process one of ``model``."""
    if executor is not None:
        return executor
    if model is None:
        raise UsageError("run needs an executor or a model")
    return InProcess(model)  # type: ignore[arg-type]


def _class_names(given: Sequence[str] | None, model: object, executor: Executor):
    """``given``, else the model's ``class_names`` attribute (a list or tuple), else None."""
    if given is not None:
        return given
    holder = model if model is not None else getattr(executor, "model", None)
    names = getattr(holder, "class_names", None)
    return names if isinstance(names, (list, tuple)) else None


def _write_error(out: Path, err: OSError, summary: Summary) -> WriteError:
    return WriteError(
        f"writing results to {str(out)!r} failed ({err.strerror or err}); "
        f"{summary.state}. Run the same command again to resume."
    )


def _prepare(
    work: Sequence[Batch],
    out: Path,
    summary: Summary,
    report: Callable[[str], None] | None,
    overwrite: bool,
) -> tuple[_Folders, list[tuple[Path, dict]], list[tuple[Batch, list[int]]]]:
    """What the folders hold, the units of another run (``one_run``), what is left to do."""
    for folder in {b.folder() for b in work}:
        if folder:
            inside(out, folder, write=True)  # a layer folder that is a symlink: refused now
        if (out / folder).is_dir():
            rec.clean_temp(out / folder)  # only files of writers that are gone: we hold the lock

    def damaged(line: str) -> None:
        summary.damaged.append(line)
        if report is not None:
            report(line)

    folders = scan_plan(work, out, damaged)
    others: list[tuple[Path, dict]] = []
    if work and work[0].layout.one_run:
        others = other_runs(out, work[0].run_config(), folders.scans()[""], overwrite)
        for path, _ in others:
            folders.shown[""].pop(path.stem, None)
    left, summary.up_to_date = _left(work, folders)
    summary.total = sum(len(m) for _, m in left)
    return folders, others, left


def _render(executor, left, out, folders, summary, report, build, bar, stop_on_error, command):
    """The render-and-write loop of ``run``: one batch's files at a time, Ctrl-C held back."""
    missing = dict(left)  # batches compare by their fields: a copy from a worker finds its own
    for batch, result in executor.run([b for b, _ in left]):
        units = missing[batch]
        if isinstance(result, Exception):
            if stop_on_error:
                if os.environ.get("MIDNITE_TRACEBACK"):
                    raise result
                raise render_failure(result, batch.units, batch.config, summary.state)
            summary.errors.append(result)
            why = f"{type(result).__name__}: {' '.join(str(result).split())[:200]}"
            for unit in units:
                summary.failed[_where(batch, unit)] = why
                summary.failed_units.append(unit)
            bar.done(batch, None, len(units))
            continue
        with deferred_interrupt():
            _write_batch(batch, units, result, out, folders, summary, report, command)
            build(False)
        bar.done(batch, result.seconds, len(units))


def _where(batch: Batch, unit: int) -> str:
    folder = batch.folder()
    return f"{folder}/{batch.stem(unit)}" if folder else batch.stem(unit)


def _write_batch(
    batch: Batch,
    units: list[int],
    result: RenderResult,
    out: Path,
    folders: _Folders,
    summary: Summary,
    report: Callable[[str], None] | None,
    command: Sequence[str] | None,
) -> None:
    """Write the batch's ``units`` that finished; name each one that did not."""
    folder = inside(out, batch.folder(), write=True) if batch.folder() else out
    folder.mkdir(parents=True, exist_ok=True)
    failed = failures(result)
    one = not batch.spec.one_unit_per_batch
    ok = [i for i in range(result.images.shape[0]) if i not in failed]
    metrics = unit_metrics(result.images, ok) if one else None
    for unit in units:
        i = batch.units.index(unit) if one else None
        why = failed.get(i) if one else next(iter(failed.values()), None)  # type: ignore[arg-type]
        if why is not None:  # no finished unit for a non-finite render
            where = _where(batch, unit)
            summary.failed[where] = why
            summary.failed_units.append(unit)
            if report is not None:
                report(f"unit {unit} ({where}) failed, nothing saved: {why}")
            continue
        written = write_unit(
            batch,
            unit,
            result,
            folder,
            metrics=metrics[i] if metrics is not None and i is not None else None,
            command=command,
        )
        stem = batch.stem(unit)
        folders.shown[batch.folder()][stem] = (written.path, written.record)
        folders.damaged[batch.folder()].pop(stem, None)
        summary.rendered += 1
