"""Files of an output folder: atomic writes, strict JSON in and out (with limits), temporary
files, and the one-run-per-folder lock.

Nothing here knows what a record is: ``midnite.store.records`` builds on these.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import stat
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from midnite.errors import BusyError, MidniteError
from midnite.store.paths import PathError

__all__ = [
    "LOCK_NAME",
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "STALE_SECONDS",
    "TEMP_SUFFIX",
    "DamagedError",
    "FolderBusy",
    "atomic_write_bytes",
    "atomic_write_text",
    "canonical",
    "clean_temp",
    "jsonable",
    "lock_folder",
    "read_json",
    "write_json",
    "write_page",
]

TEMP_SUFFIX = ".midnite-tmp"
LOCK_NAME = ".midnite.lock"
STALE_SECONDS = 600  # a temporary file without a writer's pid, untouched this long, is nobody's
MAX_JSON_BYTES = 16 * 1024 * 1024  # a record is a few kB; the plan of a huge catalogue < 1 MiB
MAX_JSON_DEPTH = 64  # records nest 3 deep


class DamagedError(MidniteError, ValueError):
    """A file in an output folder that cannot be trusted (unreadable, too big, not valid); the
    message says why. Its unit is damaged: reported and rendered again, never fatal.

    ``reason`` is the message without the file's name (``"is not UTF-8 text"``).
    """

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = message if reason is None else reason


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, durable: bool = True) -> Path:
    """Write ``data`` to a temporary file beside ``path``, fsync it (unless not ``durable``),
    then rename it to ``path``.

    Readers see the old file or the new one, never a part; on any exception (also a
    KeyboardInterrupt) the temporary file is removed and ``path`` is left as it was. A symlink
    at ``path`` is replaced by the file (its target is not written); a folder at ``path`` is
    refused with :class:`~midnite.store.paths.PathError` (nothing of the user's is removed).
    """
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        raise PathError(
            f"{str(path)!r} is a folder where midnite writes a file; move it away and run again"
        )
    # the writer's pid in the name: clean_temp leaves the files of live writers alone
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.p{os.getpid()}.", suffix=TEMP_SUFFIX, dir=path.parent
    )
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.chmod(tmp, _file_mode(path))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _file_mode(path: Path) -> int:
    """The mode ``path`` has, or the one ``open`` would give a new file (mkstemp gives 0o600)."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0o022)
        os.umask(umask)
        return 0o666 & ~umask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """``atomic_write_bytes`` of UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_page(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write a derived file (a page, a thumbnail) atomically, unless ``path`` holds these
    bytes already. Not fsynced: it is remade from the records, and a site rebuilt after every
    batch would otherwise pay a disk flush per unit page (16 s for 4,000 pages here)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    path = Path(path)
    try:
        same = not path.is_symlink() and path.stat().st_size == len(raw)
        if same and path.read_bytes() == raw:
            return path
    except OSError:
        pass  # absent or unreadable: written below
    return atomic_write_bytes(path, raw, durable=False)


def jsonable(value: object) -> object:
    """``value`` with non-finite floats as None and tuples as lists, so strict JSON can hold it."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def canonical(value: object) -> object:
    """``value`` as it reads back from a file ``write_json`` wrote (tuples as lists, keys as
    strings, non-finite floats as None): compare a key with a record's key in this form."""
    return json.loads(json.dumps(jsonable(value), allow_nan=False))


def write_json(path: str | os.PathLike, obj: object) -> Path:
    """Write ``obj`` as indented, strict JSON (NaN/inf become null), atomically."""
    text = json.dumps(jsonable(obj), indent=2, allow_nan=False, ensure_ascii=False)
    return atomic_write_text(path, text + "\n")


def _depth(text: str) -> int:
    """The deepest nesting of arrays and objects in JSON ``text`` (brackets inside strings do
    not count); linear time, no recursion."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def read_json(
    path: str | os.PathLike,
    *,
    max_bytes: int = MAX_JSON_BYTES,
    max_depth: int = MAX_JSON_DEPTH,
) -> object:
    """The strict JSON value in the file at ``path``, read within limits.

    Raises :class:`DamagedError` saying why when the file cannot be read or is not a regular
    file (a FIFO or device: never opened for reading, so nothing hangs), is over ``max_bytes``,
    is not UTF-8, nests arrays/objects deeper than ``max_depth``, or is not valid strict JSON
    (``NaN`` and ``Infinity`` are refused). A missing file raises ``FileNotFoundError``.
    """
    path = Path(path)

    def damaged(reason: str) -> DamagedError:
        return DamagedError(f"{str(path)!r} {reason}", reason)

    try:
        data = _read_regular(path, max_bytes + 1)
    except FileNotFoundError:
        raise
    except OSError as err:
        raise damaged(f"cannot be read ({err.strerror or err})") from None
    if data is None:
        raise damaged("is not a regular file (a FIFO, device or folder is not read)")
    if len(data) > max_bytes:
        raise damaged(f"is over {max_bytes} bytes (the limit for a midnite JSON file)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise damaged("is not UTF-8 text") from None
    # a file with no more brackets than the limit cannot nest deeper: most files are not scanned
    brackets = text.count("[") + text.count("{")
    deepest = _depth(text) if brackets > max_depth else 0
    if deepest > max_depth:
        raise damaged(f"nests {deepest} levels deep (at most {max_depth} are read)")
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as err:
        where = f"at line {err.lineno} column {err.colno}"
        raise damaged(f"is not valid JSON ({err.msg} {where}; truncated?)") from None
    except RecursionError:  # not reached within max_depth; a guard all the same
        raise damaged("nests too deep to be read") from None
    except ValueError as err:  # an integer of more digits than Python converts
        raise damaged(f"is not valid JSON ({err})") from None


def _read_regular(path: Path, limit: int) -> bytes | None:
    """Up to ``limit`` bytes of the regular file at ``path`` (after symlinks); None when it is
    something else. Opened without blocking, so a FIFO never hangs the reader."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read(limit)
    finally:
        os.close(fd)


def _refuse_constant(name: str) -> object:
    raise json.JSONDecodeError(f"{name} is not strict JSON", name, 0)


_TEMP_PID = re.compile(r"\.p(\d+)\.[^.]+" + re.escape(TEMP_SUFFIX) + "$")


def clean_temp(folder: str | os.PathLike, *, stale_seconds: float = STALE_SECONDS) -> int:
    """Remove temporary files that no live writer owns from ``folder``; returns how many.

    ``atomic_write_bytes`` puts its pid in the names of its files: those of a process that is
    gone are removed, those of live processes (this one too) are left. Files without a pid
    (``midnite.plot.save_png``'s, older midnites') are removed once untouched for
    ``stale_seconds``: a write takes milliseconds.
    """
    removed = 0
    now = time.time()
    candidates = [*Path(folder).glob(f".*{TEMP_SUFFIX}"), *Path(folder).glob(".*.png.tmp")]
    for tmp in candidates:
        match = _TEMP_PID.search(tmp.name)
        if match is not None:
            stale = not _alive(int(match.group(1)))
        else:
            try:
                stale = now - tmp.stat().st_mtime > stale_seconds
            except OSError:
                continue
        if stale:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                removed += 1
    return removed


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists (where that cannot be told safely: True)."""
    if pid == os.getpid():
        return True
    if os.name != "posix":
        return True  # os.kill(pid, 0) would end the process on Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: another user's live process
        return True
    return True


# one run per folder ------------------------------------------------------------------------


class FolderBusy(BusyError):
    """Another live process holds the folder's lock (``lock_folder``)."""

    def __init__(self, folder: Path, pid: int | None):
        self.folder, self.pid = folder, pid
        who = f"pid {pid}" if pid is not None else "pid unknown"
        super().__init__(
            f"another midnite run is writing to {str(folder)!r} ({who}); wait for it or use "
            "another --out"
        )


@contextlib.contextmanager
def lock_folder(folder: str | os.PathLike) -> Iterator[Path]:
    """Hold ``folder``'s lock for the block, or raise :class:`FolderBusy` at once.

    An exclusive ``flock`` on the folder itself (POSIX) and on ``folder/.midnite.lock``, which
    holds the owner's pid for the message others get: deleting that file during a run does not
    let a second run in. The kernel releases the locks when their process ends, however it
    ends, so a killed run never blocks the next one; the file is removed when the block ends.
    Where neither ``fcntl`` nor ``msvcrt`` exists, runs are not kept apart.
    """
    folder = Path(folder)
    dir_fd = _lock_dir(folder)
    try:
        with _lock_file(folder) as path:
            yield path
    finally:
        if dir_fd is not None:
            os.close(dir_fd)  # releases the folder's lock, after the file is gone


def _lock_dir(folder: Path) -> int | None:
    """An open descriptor of ``folder`` holding its exclusive lock, None where folders cannot
    be locked (Windows, a file system without ``flock`` on folders); FolderBusy if another
    holds it."""
    if os.name != "posix":
        return None
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return None  # the lock file's open says what is wrong with the folder
    try:
        locked = _try_lock(fd)
    except OSError:
        os.close(fd)
        return None
    if not locked:
        pid = None
        with contextlib.suppress(OSError):
            pid_fd = os.open(folder / LOCK_NAME, os.O_RDONLY)
            pid = _read_pid(pid_fd)
            os.close(pid_fd)
        os.close(fd)
        raise FolderBusy(folder, pid)
    return fd


@contextlib.contextmanager
def _lock_file(folder: Path) -> Iterator[Path]:
    """Hold the lock of ``folder/.midnite.lock`` (with this process's pid in it)."""
    path = folder / LOCK_NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(fd):
            pid = _read_pid(fd)
            os.close(fd)
            raise FolderBusy(folder, pid)
        # a finishing run removes the file after we opened it: lock the one at the path
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield path
    finally:
        with contextlib.suppress(OSError):
            path.unlink()  # before the lock goes: no one locks a file about to vanish
        os.close(fd)  # releases the lock


def _try_lock(fd: int) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows
        try:
            import msvcrt
        except ImportError:
            return True
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def _read_pid(fd: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        os.lseek(fd, 0, os.SEEK_SET)
        return int(os.read(fd, 32).decode().strip())
    return None
