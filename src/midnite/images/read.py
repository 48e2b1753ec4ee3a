"""Reading image files: the one folder walk and the one file reader, safe on hostile folders.

Only regular files are opened (FIFOs, sockets, devices and symlinks to them are skipped; the
type is checked by ``stat`` before opening and by ``fstat`` after a non-blocking open, so a
FIFO swapped in cannot hang); at most ``MAX_FILE_BYTES`` are read per file; symlink loops,
dangling symlinks and entries that cannot be read are skipped and named, never fatal. Images
with more pixels than Pillow's ``Image.MAX_IMAGE_PIXELS`` are refused before decoding.
"""

from __future__ import annotations

import errno
import io
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageOps

from midnite.errors import UsageError

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_SKIPPED_SHOWN",
    "Listing",
    "UnreadableImageError",
    "UnreadableImageWarning",
    "decode",
    "describe_skipped",
    "list_images",
    "read_file",
    "scan_folder",
    "shown",
]

MAX_FILE_BYTES = 64 * 2**20  # bytes read from one file at most: a JPEG or PNG photo is far less
MAX_SKIPPED_SHOWN = 20  # skipped entries named one per line in a report; the rest are counted

_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")  # JPEG, PNG
_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


class UnreadableImageError(UsageError):
    """A file that cannot be read as a JPEG or PNG image (or an image holding NaN)."""

    def __init__(self, where: str, reason: str):
        super().__init__(f"{shown(where)}: {reason}")
        self.where, self.reason = where, reason


class UnreadableImageWarning(UserWarning):
    """Some image files could not be read and were skipped; the message names them."""


def shown(name: str) -> str:
    """``name`` quoted for one line of a report: ``repr``, so newlines, control characters and
    undecodable bytes show as escapes and cannot start a line of their own."""
    return repr(name)


def _one_line(text: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def describe_skipped(skipped: Sequence[tuple[object, str]], limit: int = MAX_SKIPPED_SHOWN) -> str:
    """One line per skipped ``(name, reason)`` (the first ``limit``), then a count of the rest;
    a name is a path (quoted) or an image index (as it is).

    Names are quoted (``shown``) and reasons escaped, so each entry stays one line.
    """
    lines = [
        f"  {shown(name) if isinstance(name, str) else name}: {_one_line(reason)}"
        for name, reason in skipped[:limit]
    ]
    if len(skipped) > limit:
        lines.append(f"  (and {len(skipped) - limit} more)")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# the walk


@dataclass(frozen=True)
class Listing:
    """What a folder walk found: image candidates and the entries it skipped, with reasons.

    ``files`` are POSIX paths relative to the folder, sorted; ``skipped`` is ``(name, reason)``
    sorted by name (folders end in ``/``).
    """

    files: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _kind(mode: int) -> str:
    return next((what for test, what in _KINDS if test(mode)), "not a regular file")


def _stat_reason(err: OSError, link: bool) -> str:
    if err.errno == errno.ELOOP:
        return "a symlink loop"
    if link and err.errno == errno.ENOENT:
        return "a dangling symlink"
    return f"cannot be read: {err.strerror or err}"


def _folder(folder: object) -> Path:
    if not isinstance(folder, (str, os.PathLike)):
        raise TypeError(f"images: a folder must be a path (str), got {type(folder).__name__}")
    if os.fspath(folder) in ("", b""):
        raise UsageError("images: the folder name is empty (it would walk the current folder)")
    root = Path(folder)
    if not root.is_dir():
        raise UsageError(f"images: no such folder {shown(str(folder))}")
    return root


def _identities(paths: Iterable[object]) -> set[tuple[int, int]]:
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    found = set()
    for p in paths:
        if not isinstance(p, (str, os.PathLike)) or os.fspath(p) in ("", b""):
            raise UsageError(f"images: exclude must list folder paths, got {p!r}")
        try:
            st = os.stat(p)
        except OSError:
            continue  # a folder that does not exist excludes nothing
        found.add((st.st_dev, st.st_ino))
    return found


def scan_folder(folder: str | os.PathLike, *, exclude: Iterable[object] = ()) -> Listing:
    """Every regular file under ``folder``, recursively, and every entry skipped, with why.

    Names starting with a dot are left out silently, and so are the ``exclude`` folders (say,
    the output folder). Skipped and named: FIFOs, sockets, devices (and symlinks to them),
    dangling symlinks, symlink loops, symlinks to folders (not followed, so no walk can loop or
    leave the folder), and files or folders that cannot be read. Whether a file is a JPEG or PNG
    is decided by its content when it is read, not by its name. An empty name is refused.
    """
    root = _folder(folder)
    excluded = _identities(exclude)
    files: list[str] = []
    skipped: list[tuple[str, str]] = []
    top = os.stat(root)
    seen = {(top.st_dev, top.st_ino)}
    stack = [""]
    while stack:
        rel = stack.pop()
        try:
            with os.scandir(root / rel if rel else root) as it:
                entries = list(it)
        except OSError as err:
            skipped.append((f"{rel}/", f"folder cannot be read: {err.strerror or err}"))
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            name = f"{rel}/{entry.name}" if rel else entry.name
            link = entry.is_symlink()
            try:
                st = os.stat(entry.path)  # follows symlinks
            except OSError as err:
                skipped.append((name, _stat_reason(err, link)))
                continue
            if stat.S_ISDIR(st.st_mode):
                ident = (st.st_dev, st.st_ino)
                if link:
                    skipped.append((f"{name}/", "a symlink to a folder (not followed)"))
                elif ident in seen:  # a bind mount of a folder inside itself
                    skipped.append((f"{name}/", "a folder met before (a mount loop)"))
                elif ident not in excluded:
                    seen.add(ident)
                    stack.append(name)
            elif stat.S_ISREG(st.st_mode):
                files.append(name)
            else:
                skipped.append((name, f"not a regular file ({_kind(st.st_mode)})"))
    return Listing(sorted(files), sorted(skipped))


def list_images(folder: str | os.PathLike, *, exclude: Iterable[object] = ()) -> list[str]:
    """The files of ``scan_folder(folder, exclude=exclude)``: sorted POSIX paths relative to it.

    What the walk skipped is left out silently here; ``scan_folder`` names it.
    """
    return scan_folder(folder, exclude=exclude).files


# --------------------------------------------------------------------------------------------
# one file


def read_file(path: str | os.PathLike, *, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file, at most ``limit`` of them; ``UnreadableImageError`` else.

    The file type is checked before opening (``stat``) and after (``fstat`` of a descriptor
    opened with ``O_NONBLOCK``), so neither a FIFO nor a device can block or feed without end.
    """
    where = os.fspath(path)
    if where in ("", b""):
        raise UsageError("images: the file name is empty")
    where = str(where)
    try:
        st = os.stat(path)
        link = os.path.islink(path)
    except OSError as err:
        raise UnreadableImageError(where, _stat_reason(err, os.path.islink(path))) from None
    if not stat.S_ISREG(st.st_mode):
        what = "a symlink to " * link + _kind(st.st_mode)
        raise UnreadableImageError(where, f"not a regular file ({what})")
    if st.st_size > limit:
        raise UnreadableImageError(where, f"{st.st_size} bytes, over the limit of {limit}")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    except OSError as err:
        raise UnreadableImageError(where, f"cannot open: {err.strerror or err}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped between stat and open
            raise UnreadableImageError(where, "not a regular file (changed while opening)")
        chunks, total = [], 0
        while total <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as err:
        raise UnreadableImageError(where, f"cannot read: {err.strerror or err}") from None
    finally:
        os.close(fd)
    if total > limit:
        raise UnreadableImageError(where, f"more than {limit} bytes (it grew while read)")
    return b"".join(chunks)


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from a JPEG's frame header (SOFn), None if not found."""
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
        elif marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
        elif 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height = int.from_bytes(data[i + 5 : i + 7], "big")
            return int.from_bytes(data[i + 7 : i + 9], "big"), height
        else:
            i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return None


def _declared_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` as the file's header states it (PNG IHDR, JPEG SOFn)."""
    if data.startswith(_MAGIC[1]) and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data.startswith(_MAGIC[0]):
        return _jpeg_size(data)
    return None


def _standard_mode(img: Image.Image) -> Image.Image:
    """``img`` as grey (L), RGB or RGBA: palettes, bilevel, 16-bit, CMYK and grey+alpha."""
    if img.mode in ("L", "RGB", "RGBA"):
        return img
    if "A" in img.getbands() or "transparency" in img.info:
        return img.convert("RGBA")
    return img.convert("L" if img.mode in ("1", "I;16", "I", "F") else "RGB")


def decode(data: bytes, where: str = "the given bytes") -> Image.Image:
    """A JPEG or PNG file's bytes (by content) as a PIL image in L, RGB or RGBA mode.

    The EXIF orientation is applied. ``UnreadableImageError`` for other content, a broken
    file, or more pixels than ``PIL.Image.MAX_IMAGE_PIXELS`` (checked from the header, before
    Pillow decodes or warns).
    """
    if not data.startswith(_MAGIC):
        raise UnreadableImageError(where, "not a JPEG or PNG file (by content)")
    declared, limit = _declared_size(data), Image.MAX_IMAGE_PIXELS
    if declared is not None and limit is not None and declared[0] * declared[1] > limit:
        raise UnreadableImageError(
            where,
            f"{declared[0]}x{declared[1]} pixels, over Pillow's limit of {limit} (a "
            "decompression bomb?)",
        )
    try:
        with Image.open(io.BytesIO(data), formats=("JPEG", "PNG")) as img:
            img.load()
            return _standard_mode(ImageOps.exif_transpose(img) or img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise UnreadableImageError(
            where, f"too many pixels (a decompression bomb?): {err}"
        ) from None
    except Exception as err:  # Pillow raises many kinds for broken files
        raise UnreadableImageError(where, f"cannot decode: {type(err).__name__}: {err}") from None
