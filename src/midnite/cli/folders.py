"""What kind of midnite folder ``DIR`` is, so one command never replaces another's pages.

A catalogue folder holds the catalogue's plan (``catalogue.json``) or layer folders of unit
records; a render folder holds unit records at its top. ``render`` refuses a catalogue folder
and ``catalogue`` a render folder (one line naming the other command), and a ``DIR/index.html``
that is not a file is refused before anything is written.
"""

from __future__ import annotations

from pathlib import Path

from midnite.errors import UsageError
from midnite.pages.catalogue import INDEX, PLAN
from midnite.store.files import DamagedError, read_json

__all__ = ["CATALOGUE", "EMPTY", "RENDER", "check_for", "kind"]

CATALOGUE, RENDER, EMPTY = "catalogue", "render", "empty"


def _has_units(folder: Path) -> bool:
    """Whether ``folder`` holds a unit record (a JSON with its PNG beside it, or one in the
    record format); stops at the first, reads no PNG."""
    for path in folder.glob("*.json"):
        if path.name.startswith(".") or path.name == PLAN:
            continue
        if path.with_suffix(".png").is_file():
            return True
        try:
            found = read_json(path)
        except (OSError, DamagedError):
            continue
        if isinstance(found, dict) and str(found.get("format", "")).startswith("midnite.record/"):
            return True
    return False


def kind(folder: Path) -> str:
    """``"catalogue"``, ``"render"`` or ``"empty"`` (no midnite results) for ``folder``."""
    if (folder / PLAN).is_file():
        return CATALOGUE
    if _has_units(folder):
        return RENDER
    for sub in sorted(folder.iterdir()):
        visible = not sub.name.startswith(".") and not sub.is_symlink()
        if visible and sub.is_dir() and _has_units(sub):
            return CATALOGUE
    return EMPTY


def check_for(folder: Path, command: str) -> None:
    """Refuse ``folder`` for ``command`` (``render`` or ``catalogue``) when it holds the other
    command's results or its ``index.html`` is not a file; a one-line ``UsageError``."""
    page = folder / INDEX
    if page.is_symlink() or (page.exists() and not page.is_file()):
        raise UsageError(
            f"{str(page)!r} is not a file (a folder or a link), so the page midnite writes there "
            "cannot be; move it away or give another --out"
        )
    found = kind(folder)
    if found not in (EMPTY, command):
        raise UsageError(
            f"{str(folder)!r} holds the results of 'midnite {found}' (its index.html is "
            f"{found}'s); give another --out, or add to it with 'midnite {found}'"
        )
