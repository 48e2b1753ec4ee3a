"""Paths under an output folder: every name is checked as one path component (``component``)
and joined under the folder by ``inside``, which never follows a symlink out of it when writing.
"""

from __future__ import annotations

import os
from pathlib import Path

from midnite.errors import UsageError

__all__ = ["MAX_NAME_BYTES", "PathError", "component", "inside"]

MAX_NAME_BYTES = 255  # NAME_MAX of ext4, APFS, NTFS (in UTF-8 bytes)


class PathError(UsageError):
    """A name that is not one plain path component, or a path that would leave its folder."""


def component(name: object, *, what: str = "name") -> str:
    """``name`` if it is one plain path component, else :class:`PathError` saying why.

    Refused: a non-string, the empty string, ``.`` and ``..``, names holding ``/`` or ``\\``
    (on every system, so a folder written on Linux reads the same on Windows), NUL, and names
    over 255 bytes in UTF-8. Any other character is allowed (unicode look-alikes of ``/`` are
    ordinary characters to the file system).
    """
    if not isinstance(name, str):
        raise PathError(f"{what} must be a string, got {type(name).__name__}: {name!r}")
    if name in ("", ".", ".."):
        raise PathError(f"{what} must be a file or folder name, got {name!r}")
    for bad, words in (("/", "'/'"), ("\\", "'\\'"), ("\0", "NUL")):
        if bad in name:
            raise PathError(f"{what} must be one path component without {words}, got {name!r}")
    size = len(name.encode("utf-8", "surrogateescape"))
    if size > MAX_NAME_BYTES:
        raise PathError(
            f"{what} must be at most {MAX_NAME_BYTES} bytes in UTF-8, got {size} bytes "
            f"({name[:20]!r}...)"
        )
    return name


def inside(root: str | os.PathLike, *components: str, write: bool = False) -> Path:
    """``root / c1 / c2 / ...`` with each ``ci`` checked by :func:`component`.

    With ``write=True`` (the path is about to be written or a folder made on it) every step
    below ``root`` that exists must be a real folder or file, not a symlink: a symlinked step
    (a layer folder replaced by a link to elsewhere) raises :class:`PathError`, so nothing is
    written through it outside ``root``. ``root`` itself may be a symlink (the user chose it).
    Reading (``write=False``) only checks the names.
    """
    path = Path(root)
    for i, name in enumerate(components):
        path = path / component(name, what=f"path component {i + 1}")
        if write and path.is_symlink():
            raise PathError(
                f"{str(path)!r} is a symbolic link; midnite writes only into real folders "
                f"under {str(root)!r} (remove the link and run again)"
            )
    return path
