"""Page builders the runner calls (``pages(scans, final)``): the gallery of a flat folder
(``midnite.gallery``, after each batch) and the catalogue's site (``midnite.site``, at the end)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from midnite.jobs.plan import Batch, canonical, layer_folder
from midnite.pages import catalogue as site
from midnite.pages import gallery
from midnite.store import records as rec

__all__ = ["build_index", "catalogue_pages", "default_pages", "folder_gallery"]


def folder_gallery(out: Path):
    """A ``pages`` callback: ``out/index.html`` of the flat folder, from the runner's scan."""

    def build(scans: Mapping[str, rec.Scan], final: bool) -> Path:
        return gallery.build(out, found=scans.get(""))

    return build


def catalogue_pages(work: Sequence[Batch], out: Path):
    """A ``pages`` callback: the catalogue's site (``build_index``), once, at the end."""

    def build(scans: Mapping[str, rec.Scan], final: bool) -> Path | None:
        return build_index(work, out) if final else None

    return build


def build_index(work: Sequence[Batch], out: Path) -> Path:
    """Record the plan and how much of it is done (``site.write_plan``), then build the site.

    Returns ``out/index.html`` (see ``midnite.site``: model, layer and unit pages).
    """
    entries = []
    for layer in dict.fromkeys(b.layer for b in work):
        batches = [b for b in work if b.layer == layer]
        folder = out / layer_folder(layer)
        valid = rec.scan(folder).valid() if folder.is_dir() else {}
        done = sum(
            (valid.get(b.stem(u)) or {}).get("key") == canonical(b.key(u))
            for b in batches
            for u in b.units
        )
        entries.append(
            {
                "layer": layer,
                "units": len({u for b in batches for u in b.units}),
                "views": list(dict.fromkeys(b.view for b in batches)),
                "planned": sum(len(b.units) for b in batches),
                "done": done,
            }
        )
    if work:
        site.write_plan(out, work[0].model, entries)
    return site.build_site(out)


def default_pages(work: Sequence[Batch], out: Path):
    """The pages of the plan's layout: the catalogue's site, or the flat folder's gallery."""
    if work and not work[0].layout.per_layer:
        return folder_gallery(out)
    return catalogue_pages(work, out)
