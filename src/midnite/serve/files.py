"""The served folder's files: a URL path maps to a regular file inside the folder, or to nothing.

Each part of the path must be one plain name (``store.paths.component``: no ``..``, ``/``,
``\\`` or NUL), hidden names (``.midnite.lock``, temporary files) are never served, and the
real path (symlinks resolved) must lie inside the folder's real path.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from midnite.store.paths import PathError, component, inside

__all__ = ["content_type", "resolve"]

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}


def content_type(path: Path) -> str:
    """The Content-Type of a served file (by its suffix; unknown: octet-stream)."""
    known = _TYPES.get(path.suffix.lower())
    return known or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def resolve(root: Path, url_path: str) -> Path | None:
    """The regular file under ``root`` that ``url_path`` (decoded, ``/``-separated) names; a
    folder means its ``index.html``. None for anything else (outside, hidden, missing)."""
    parts = [p for p in url_path.split("/") if p]
    try:
        for part in parts:
            component(part, what="path part")
            if part.startswith("."):
                return None
        path = inside(root, *parts)
    except PathError:
        return None
    base = root.resolve()
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):  # missing, a symlink loop
        return None
    if real.is_dir():
        real = (real / "index.html").resolve()
    if real != base and base not in real.parents:
        return None  # a symlink out of the folder
    return real if real.is_file() else None
