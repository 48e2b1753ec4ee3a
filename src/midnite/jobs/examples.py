"""The dataset-examples pass of a catalogue: each unit's top images of a folder (the output
folder excluded), computed once per layer and key (``executor.examples``), saved for the pages
(``site.write_examples``) and computed again when a saved example file is missing or changed."""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from midnite.engine import versions
from midnite.images import UnreadableImageWarning, describe_skipped, scan_folder
from midnite.jobs.executors import Executor
from midnite.jobs.plan import Batch, CatalogueError, canonical
from midnite.pages import catalogue as site
from midnite.store import site_files

__all__ = ["ExamplesSummary", "add_examples"]


@dataclass
class ExamplesSummary:
    """What ``add_examples`` did: layers computed and up to date, images seen, files skipped."""

    computed: list[str] = field(default_factory=list)
    up_to_date: list[str] = field(default_factory=list)
    images: int = 0  # files in the folder
    seen: int = 0  # images that went through the model (0 when every layer was up to date)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, why) unreadable
    repaired: list[str] = field(default_factory=list)  # layers whose saved files were damaged


def _listing_digest(folder: Path, names: Sequence[str]) -> str:
    """16 hex digits over each file's name, size and modification time (not its bytes)."""
    h = hashlib.sha256()
    for name in names:
        st = (folder / name).stat()
        h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _walk(folder: Path, out: Path, report: Callable[[str], None] | None) -> list[str]:
    """The files of ``folder`` (``out`` left out); entries skipped are reported, one a line."""
    try:
        listing = scan_folder(folder, exclude=[out])
    except ValueError as err:
        raise CatalogueError(f"--images: {str(err).removeprefix('images: ')}") from None
    if listing.skipped and report is not None:
        report(
            f"dataset examples: skipped {len(listing.skipped)} entries of {str(folder)!r}:\n"
            + describe_skipped(listing.skipped)
        )
    return listing.files


def _damaged(out: Path, layers: list[str], report: Callable[[str], None] | None) -> list[str]:
    """The ``layers`` whose saved example PNGs are missing or changed, each said in one line."""
    found = []
    for layer in layers:
        bad = site_files.damaged_examples(out, layer)
        if bad:
            found.append(layer)
            if report is not None:
                report(
                    f"dataset examples of {layer!r}: {len(bad)} file(s) missing or changed "
                    f"(first: {bad[0]}); computing them again"
                )
    return found


def add_examples(
    work: Sequence[Batch],
    images: str | os.PathLike,
    k: int,
    out: str | os.PathLike,
    *,
    executor: Executor,
    progress: bool = True,
    report: Callable[[str], None] | None = None,
) -> ExamplesSummary:
    """Each catalogued unit's top ``k`` images of the folder ``images``, written for the site.

    One pass (``executor.examples``) over the layers whose examples are missing or stale reads
    every image once; ``site.write_examples`` saves them as ``DIR/<layer>/examples.json`` with
    a key of the folder's listing (names, sizes, times), ``k``, size, weights, units and midnite
    version, so a rerun with the same key does nothing unless a saved example PNG is missing or
    does not match its SHA-256 (then the layer is computed again, said in one line). The walk
    leaves out the output folder ``out``. Entries the walk skips and unreadable files are
    skipped, counted and reported (``report``), one line each; a damaged ``examples.json`` is
    named and computed again; a folder without files or without a readable image is a
    ``CatalogueError``.
    """
    folder = Path(images)
    out = Path(out)
    names = _walk(folder, out, report)
    if not names:
        raise CatalogueError(f"--images: the folder {str(folder)!r} holds no files")
    summary = ExamplesSummary(images=len(names))
    if not work:
        return summary
    layers = list(dict.fromkeys(b.layer for b in work))
    units = {
        layer: sorted({u for b in work if b.layer == layer for u in b.units}) for layer in layers
    }
    first = work[0]
    base = {
        "images": _listing_digest(folder, names),
        "k": k,
        "size": list(first.config.size),
        "weights": first.weights,
        "midnite": versions()["midnite"],
    }
    keys = {layer: canonical({**base, "units": units[layer]}) for layer in layers}
    todo_layers = [x for x in layers if site.read_examples_key(out, x, report) != keys[x]]
    summary.repaired = _damaged(out, [x for x in layers if x not in todo_layers], report)
    todo_layers += summary.repaired
    summary.up_to_date = [x for x in layers if x not in todo_layers]
    if not todo_layers:
        return summary
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnreadableImageWarning)  # counted and reported below
        try:
            result = executor.examples(
                todo_layers, folder, k, first.config.size, progress, exclude=[out]
            )
        except ValueError as err:  # no readable image at all
            raise CatalogueError(f"--images: {str(err).removeprefix('images: ')}") from None
    summary.seen = result.seen
    summary.skipped = [(str(i), why) for i, why in result.skipped]
    if summary.skipped and report is not None:
        report(
            f"dataset examples: skipped {len(summary.skipped)} of {len(names)} file(s) in "
            f"{str(folder)!r} that are not readable JPEG or PNG images:\n"
            + describe_skipped(summary.skipped)
        )
    site.write_examples(out, result, todo_layers, units=units, keys=keys)
    summary.computed = todo_layers
    return summary
