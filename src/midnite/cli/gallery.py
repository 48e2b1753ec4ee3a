"""``midnite gallery``: (re)build ``DIR/index.html`` of a ``midnite render`` folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from midnite.cli.options import EPILOG, wrap
from midnite.errors import EXIT_FAILED, EXIT_OK, UsageError, WriteError
from midnite.pages import gallery
from midnite.store import records as rec

__all__ = ["register", "run"]


def register(sub: Any) -> None:
    """Add the ``gallery`` sub-parser to ``sub`` (argparse's subparsers)."""
    gal = sub.add_parser(
        "gallery",
        help="(re)build index.html for a folder of results",
        description=wrap(
            "(Re)build DIR/index.html. Every unit's record is checked (schema, and its PNG "
            "against the SHA-256 it records); damaged units are named on stderr, shown as "
            "damaged on the page, and the exit status is 1."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    gal.add_argument("folder", metavar="DIR")


def run(args: argparse.Namespace) -> int:
    """(Re)build DIR/index.html of a flat folder; exit 1 when damaged units are found."""
    folder = Path(args.folder)
    if not folder.is_dir():
        raise UsageError(f"no folder {args.folder!r}; give the --out folder of 'midnite render'")
    found = rec.scan(folder)
    if not found.units and not found.damaged:
        raise UsageError(
            f"no midnite results (PNG + JSON record) in {args.folder!r}; "
            "run 'midnite render ... --out DIR' first"
        )
    for bad in found.damaged:
        print(f"midnite: damaged unit {bad}", file=sys.stderr)
    try:
        page = gallery.build(folder, found=found)
    except OSError as err:
        raise WriteError(
            f"cannot write the gallery into {args.folder!r} ({err.strerror})"
        ) from None
    damaged = f", {len(found.damaged)} damaged" if found.damaged else ""
    print(f"{len(found.units)} units{damaged}: {page}")
    return EXIT_FAILED if found.damaged else EXIT_OK
