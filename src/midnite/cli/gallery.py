"""``midnite gallery``: (re)build the pages of a midnite folder: ``DIR/index.html`` of a
``midnite render`` folder, or the whole site of a ``midnite catalogue`` folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from midnite.cli.folders import CATALOGUE, kind
from midnite.cli.options import EPILOG, wrap
from midnite.errors import EXIT_FAILED, EXIT_OK, UsageError, WriteError
from midnite.jobs.views import captions
from midnite.pages import catalogue, gallery
from midnite.store import records as rec

__all__ = ["register", "run"]


def register(sub: Any) -> None:
    """Add the ``gallery`` sub-parser to ``sub`` (argparse's subparsers)."""
    gal = sub.add_parser(
        "gallery",
        help="(re)build the pages of a folder of results (render or catalogue)",
        description=wrap(
            "(Re)build the pages of DIR: DIR/index.html of a 'midnite render' folder, or the "
            "model, layer and unit pages of a 'midnite catalogue' folder. Every unit's record is "
            "checked (schema, and its PNG against the SHA-256 it records); damaged units are "
            "named on stderr, shown as damaged on the page, and the exit status is 1."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    gal.add_argument("folder", metavar="DIR")


def _catalogue(folder: Path, text: str) -> int:
    """The site of a catalogue folder; exit 1 when damaged units are found."""
    try:
        page = catalogue.build_site(folder, captions())
    except OSError as err:
        raise WriteError(f"cannot write the pages into {text!r} ({err.strerror})") from None
    _, layers, _ = catalogue.read_catalogue(folder)
    units = sum(len(layer.units) for layer in layers)
    damaged = [
        f"{layer.folder}/{path.name}"
        for layer in layers
        for unit in layer.units.values()
        for path, _ in unit.damaged.values()
    ]
    for bad in damaged:
        print(f"midnite: damaged unit {bad}", file=sys.stderr)
    note = f", {len(damaged)} damaged" if damaged else ""
    print(f"catalogue: {len(layers)} layer(s), {units} units{note}: {page}")
    return EXIT_FAILED if damaged else EXIT_OK


def run(args: argparse.Namespace) -> int:
    """(Re)build the pages of DIR; exit 1 when damaged units are found."""
    folder = Path(args.folder)
    if not folder.is_dir():
        raise UsageError(
            f"no folder {args.folder!r}; give the --out folder of 'midnite render' or "
            "'midnite catalogue'"
        )
    page = folder / gallery.INDEX
    if page.is_symlink() or (page.exists() and not page.is_file()):
        raise UsageError(f"{str(page)!r} is not a file (a folder or a link); move it away")
    if kind(folder) == CATALOGUE:
        return _catalogue(folder, args.folder)
    found = rec.scan(folder)
    if not found.units and not found.damaged:
        raise UsageError(
            f"no midnite results (PNG + JSON record) in {args.folder!r}; "
            "'midnite render ... --out DIR' or 'midnite catalogue ... --out DIR' writes them "
            "and builds their pages"
        )
    for bad in found.damaged:
        print(f"midnite: damaged unit {bad}", file=sys.stderr)
    try:
        built = gallery.build(folder, found=found, captions=captions())
    except OSError as err:
        raise WriteError(
            f"cannot write the gallery into {args.folder!r} ({err.strerror})"
        ) from None
    damaged = f", {len(found.damaged)} damaged" if found.damaged else ""
    print(f"{len(found.units)} units{damaged}: {built}")
    return EXIT_FAILED if found.damaged else EXIT_OK
