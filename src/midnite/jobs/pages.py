"""Page builders the runner calls (``pages(scans, final)``): the gallery of a flat folder
(``midnite.pages.gallery``) and the catalogue's site (``midnite.pages.catalogue``), both brought
up to date after every batch, each page captioned in words by the view registry."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from midnite.jobs.plan import Batch, canonical, layer_folder
from midnite.jobs.views import captions
from midnite.pages import catalogue as site
from midnite.pages import gallery
from midnite.store import records as rec

__all__ = ["build_index", "catalogue_pages", "default_pages", "folder_gallery"]


def folder_gallery(out: Path):
    """A ``pages`` callback: ``out/index.html`` of the flat folder, from the runner's scan."""

    def build(scans: Mapping[str, rec.Scan], final: bool) -> Path:
        return gallery.build(out, found=scans.get(""), captions=captions())

    return build


def _fingerprint(found: rec.Scan) -> tuple:
    """What a layer's pages show of its scan: each unit's record and image, damaged units."""
    units = sorted((p.name, str(r.get("key")), str((r.get("image") or {}).get("sha256")))
                   for p, r in found.units)  # fmt: skip
    return tuple(units), tuple(sorted(str(d.path.name) for d in found.damaged))


Shapes = Mapping[str, Sequence[int]]  # layer: its output shape


class _CataloguePages:
    """The catalogue's ``pages`` callback (see :func:`catalogue_pages`)."""

    def __init__(
        self,
        work: Sequence[Batch],
        out: Path,
        shapes: Shapes | None = None,
        class_names: Sequence[str] | None = None,
    ):
        self.work, self.out = work, out
        self.shapes, self.class_names = shapes, class_names
        self.site: site.Site | None = None
        self.prints: dict[str, tuple] = {}

    def __call__(self, scans: Mapping[str, rec.Scan], final: bool) -> Path:
        _write_plan(self.work, self.out, scans, self.shapes, self.class_names)
        prints = {f: _fingerprint(s) for f, s in scans.items()}
        changed = [f for f in scans if prints[f] != self.prints.get(f)]
        self.prints = prints
        if self.site is None or final:
            self.site = site.Site(self.out, captions(), self.class_names)
            return self.site.build()
        index = self.out / site.INDEX
        for folder in changed:
            index = self.site.update(folder, scans[folder])
        return index


def catalogue_pages(
    work: Sequence[Batch],
    out: Path,
    shapes: Shapes | None = None,
    class_names: Sequence[str] | None = None,
):
    """A ``pages`` callback: the catalogue's site, up to date after every batch.

    Each call records the plan and how much of it is done (``site.write_plan``, from the
    runner's scans: nothing is read again); the first call and the final one build every page,
    the others only the pages of the layers whose units changed, and the model page.
    ``shapes``: each layer's output shape, shown on the model page; ``class_names``: the
    output units' names (recorded in the plan; default ImageNet's for a 1,000-unit output).
    """
    return _CataloguePages(work, out, shapes, class_names)


def _entries(
    work: Sequence[Batch], valid: Mapping[str, Mapping[str, dict]], shapes: Shapes | None = None
) -> list[dict]:
    """The plan's entry per layer: units, views, renders planned and done (``valid``: each
    layer folder's valid records by stem), and its shape where ``shapes`` has it."""
    entries = []
    for layer in dict.fromkeys(b.layer for b in work):
        batches = [b for b in work if b.layer == layer]
        records = valid.get(layer_folder(layer), {})
        done = sum(
            (records.get(b.stem(u)) or {}).get("key") == canonical(b.key(u))
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
                "shape": None if shapes is None or layer not in shapes else list(shapes[layer]),
            }
        )
    return entries


def _write_plan(
    work: Sequence[Batch],
    out: Path,
    scans: Mapping[str, rec.Scan],
    shapes: Shapes | None = None,
    class_names: Sequence[str] | None = None,
) -> None:
    if work:
        valid = {f: {p.stem: r for p, r in s.units} for f, s in scans.items()}
        entries = _entries(work, valid, shapes)
        site.write_plan(out, work[0].model, entries, classes=class_names)


def build_index(work: Sequence[Batch], out: Path) -> Path:
    """Record the plan and how much of it is done (``site.write_plan``), then build the site.

    Returns ``out/index.html`` (see ``midnite.pages.catalogue``: model, layer and unit pages).
    """
    valid = {}
    for layer in dict.fromkeys(b.layer for b in work):
        folder = out / layer_folder(layer)
        valid[layer_folder(layer)] = rec.scan(folder).valid() if folder.is_dir() else {}
    if work:
        site.write_plan(out, work[0].model, _entries(work, valid))
    return site.build_site(out, captions())


def default_pages(
    work: Sequence[Batch],
    out: Path,
    shapes: Shapes | None = None,
    class_names: Sequence[str] | None = None,
):
    """The pages of the plan's layout: the catalogue's site, or the flat folder's gallery."""
    if work and not work[0].layout.per_layer:
        return folder_gallery(out)
    return catalogue_pages(work, out, shapes, class_names)
