"""On-disk results of ``midnite render``: one PNG and one JSON record per unit, written atomically.

A unit is *complete* when its PNG and its record exist, the record passes the schema check
(``check_record``), the record's ``key`` equals the key the current settings give and the PNG's
SHA-256 equals the one in the record; where the record lists an attribution alpha map
(``alpha``: an RGBA PNG, the image with the map as its alpha channel), that file must match its
SHA-256 too. Records without ``alpha`` (older midnites) are complete without one. Units are
rendered in batches planned from the unit indices alone (``plan_batches``), and a batch's seed
comes from the run's seed and the batch's units (``batch_seed``), so a rerun renders each
missing unit in the same company, with the same seed, as an uninterrupted run would have;
finished files are never rewritten.

Records are versioned: ``midnite.record/2`` (written now) adds ``run`` (the run configuration a
folder holds, ``RUN_FIELDS``) and, in ``key``, the ``--batch`` size and the digest of the model's
weights to ``midnite.record/1``, which is still read (its units are rendered again when their
configuration is asked for, because their keys lack those fields). ``scan`` reads a folder:
valid units, and damaged ones with the reason (truncated or altered JSON, a missing PNG, a PNG
that does not match its record's SHA-256).

One run writes into a folder at a time: ``lock_folder`` holds an exclusive ``flock`` on
``.midnite.lock`` for the run (the kernel releases it when the process dies, so a killed run
leaves no stale lock), and ``clean_temp`` removes only temporary files whose writer is gone.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

__all__ = [
    "FORMAT",
    "FORMATS",
    "LOCK_NAME",
    "RUN_FIELDS",
    "TEMP_SUFFIX",
    "Damaged",
    "FolderBusy",
    "RecordError",
    "Scan",
    "atomic_write_bytes",
    "atomic_write_text",
    "batch_seed",
    "check_record",
    "clean_temp",
    "is_complete",
    "jsonable",
    "lock_folder",
    "plan_batches",
    "read_record",
    "read_records",
    "run_conflicts",
    "run_of",
    "scan",
    "sha256_file",
    "unit_stem",
    "weights_digest",
    "write_json",
]

FORMAT = "midnite.record/2"
FORMATS = ("midnite.record/1", FORMAT)  # the versions this midnite reads
TEMP_SUFFIX = ".midnite-tmp"
LOCK_NAME = ".midnite.lock"
STALE_SECONDS = 600  # a temporary file without a writer's pid, untouched this long, is nobody's

# what a folder holds one of: the settings that are not in a unit's file name
RUN_FIELDS = (
    "model",
    "weights",
    "size",
    "steps",
    "lr",
    "seed",
    "batch",
    "device",
    "recipe",
    "init",  # SHA-256 of the --init image's values, or None (records before it: not compared)
    "init_penalty",
)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, fsync it, then rename it to ``path``.

    Readers see the old file or the new one, never a part; on any exception (also a
    KeyboardInterrupt) the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    # the writer's pid in the name: clean_temp leaves the files of live writers alone
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.p{os.getpid()}.", suffix=TEMP_SUFFIX, dir=path.parent
    )
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
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


def jsonable(value: object) -> object:
    """``value`` with non-finite floats as None and tuples as lists, so strict JSON can hold it."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def write_json(path: str | os.PathLike, obj: object) -> Path:
    """Write ``obj`` as indented, strict JSON (NaN/inf become null), atomically."""
    text = json.dumps(jsonable(obj), indent=2, allow_nan=False, ensure_ascii=False)
    return atomic_write_text(path, text + "\n")


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


class FolderBusy(Exception):
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

    An exclusive ``flock`` on ``folder/.midnite.lock``, which holds the owner's pid for the
    message others get. The kernel releases the lock when its process ends, however it ends, so
    a killed run never blocks the next one; the file is removed when the block ends. Where
    neither ``fcntl`` nor ``msvcrt`` exists, runs are not kept apart.
    """
    path = Path(folder) / LOCK_NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(fd):
            pid = _read_pid(fd)
            os.close(fd)
            raise FolderBusy(Path(folder), pid)
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


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def unit_stem(layer: str, objective: str, unit: int) -> str:
    """The file name (without suffix) of a unit: ``<layer>_<objective>_<unit:04d>``.

    Characters other than letters, digits, ``.``, ``_`` and ``-`` in the layer name become
    ``-``; the model's output (layer ``""``) is called ``output``.
    """
    safe = _UNSAFE.sub("-", layer).strip("-") or "output"
    return f"{safe}_{objective}_{unit:04d}"


def plan_batches(units: Iterable[int], batch: int) -> list[list[int]]:
    """Split sorted unique ``units`` into batches of units with the same ``unit // batch``.

    The plan depends only on the indices, not on what is already on disk, so batch ``k`` always
    holds units ``k*batch .. k*batch + batch - 1`` that were asked for: ``0-15`` and ``0-7``
    share their first batches, and a rerun groups the units as the first run did.

    >>> plan_batches([0, 1, 2, 3, 5, 9], 4)
    [[0, 1, 2, 3], [5], [9]]
    """
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be an int >= 1, got {batch!r}")
    plan: dict[int, list[int]] = {}
    for unit in sorted(set(units)):
        plan.setdefault(unit // batch, []).append(unit)
    return list(plan.values())


def batch_seed(seed: int, units: Iterable[int]) -> int:
    """A 63-bit seed for the batch of ``units`` of a run with ``seed`` (stable across runs)."""
    text = f"midnite:{seed}:{','.join(map(str, units))}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def weights_digest(model: torch.nn.Module) -> str:
    """16 hex digits of SHA-256 over the model's state dict (names, dtypes, shapes, bytes)."""
    digest = hashlib.sha256()
    for name, value in model.state_dict().items():
        if not isinstance(value, torch.Tensor):
            digest.update(f"{name}={value!r};".encode())
            continue
        t = value.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        try:
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        except (RuntimeError, TypeError):  # a quantized or otherwise exotic tensor
            digest.update(repr(t).encode())
    return digest.hexdigest()[:16]


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# reading: the schema, damaged units, the run a record belongs to ----------------------------


class RecordError(ValueError):
    """A record that is not a valid midnite record; the message says what is wrong."""


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"number {value!r}"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return f"string {text!r}"
    if isinstance(value, list):
        return f"an array of {len(value)}"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_index(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


_SHA256 = re.compile(r"^[0-9a-f]{64}$")

# what each kind of value must be: (test, words for the message)
_KINDS: dict[str, tuple[Callable[[object], bool], str]] = {
    "string": (lambda v: isinstance(v, str), "a string"),
    "integer": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "index": (_is_index, "an integer >= 0"),
    "number": (_is_number, "a finite number"),
    "number?": (lambda v: v is None or _is_number(v), "a finite number or null"),
    "object": (lambda v: isinstance(v, dict), "an object"),
    "numbers?": (
        lambda v: isinstance(v, list) and all(x is None or _is_number(x) for x in v),
        "an array of numbers or nulls",
    ),
    "strings": (
        lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
        "an array of strings",
    ),
    "file": (
        lambda v: isinstance(v, str) and v not in ("", ".", "..") and not re.search(r"[/\\]", v),
        "a file name in the record's folder",
    ),
    "sha256": (lambda v: isinstance(v, str) and bool(_SHA256.match(v)), "64 hex digits"),
}

# midnite.record/1: what every record has (dotted names reach into objects)
_REQUIRED_1 = {
    "model": "string",
    "layer": "string",
    "unit": "index",
    "objective": "string",
    "key": "object",
    "activation": "object",
    "activation.start": "number?",
    "activation.final": "number?",
    "metrics": "object",
    "image": "object",
    "image.file": "file",
    "image.sha256": "sha256",
}
# midnite.record/2: the run configuration, and the key's --batch and weights digest
_REQUIRED_2 = {**_REQUIRED_1, "run": "object", "key.batch": "index", "key.weights": "string"}
# checked where present
_OPTIONAL = {
    "objective_repr": "string",
    "seed": "integer",
    "batch": "object",
    "settings": "object",
    "versions": "object",
    "history": "numbers?",
    "seconds": "number",
    "created": "string",
    "command": "strings",
    "image.height": "index",
    "image.width": "index",
    "alpha": "object",
    "alpha.file": "file",
    "alpha.sha256": "sha256",
    "alpha.scale": "number",
}
# an object listed here must hold these fields when present
_OPTIONAL_REQUIRED = {"alpha": ("alpha.file", "alpha.sha256", "alpha.scale")}
_SCHEMAS = {FORMATS[0]: _REQUIRED_1, FORMAT: _REQUIRED_2}
_MISSING = object()


def _get(record: Mapping, dotted: str) -> object:
    value: object = record
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def check_record(record: object) -> dict:
    """``record`` if it is a valid midnite record of a version this midnite reads.

    Raises :class:`RecordError` naming the first field that is missing or of the wrong kind,
    what it must be and what it is.
    """
    if not isinstance(record, dict):
        raise RecordError(f"a record must be a JSON object, got {_describe(record)}")
    fmt = record.get("format", _MISSING)
    if fmt is _MISSING:
        raise RecordError("the record has no 'format'")
    if fmt not in _SCHEMAS:
        raise RecordError(
            f"'format' must be one of {', '.join(FORMATS)}, got {_describe(fmt)} (written by a "
            "newer midnite?)"
        )
    for name, kind in _SCHEMAS[str(fmt)].items():
        value = _get(record, name)
        test, words = _KINDS[kind]
        if value is _MISSING:
            raise RecordError(f"'{name}' is missing; it must be {words}")
        if not test(value):
            raise RecordError(f"'{name}' must be {words}, got {_describe(value)}")
    for name, kind in _OPTIONAL.items():
        value = _get(record, name)
        test, words = _KINDS[kind]
        if value is not _MISSING and not test(value):
            raise RecordError(f"'{name}' must be {words}, got {_describe(value)}")
    for outer, inner in _OPTIONAL_REQUIRED.items():
        for name in inner:
            if _get(record, outer) is not _MISSING and _get(record, name) is _MISSING:
                raise RecordError(f"'{name}' is missing; it must be {_KINDS[_OPTIONAL[name]][1]}")
    return record


def read_record(path: str | os.PathLike) -> dict | None:
    """The valid record at ``path``, or None when it is missing, unreadable or not valid.

    ``scan`` says why a record is not valid.
    """
    try:
        return check_record(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError):  # RecordError and JSON errors are ValueErrors
        return None


def _check_image(folder: Path, record: Mapping) -> None:
    """RecordError unless the record's PNG (and alpha map, where listed) exists and has the
    record's SHA-256."""
    files = [("image", record["image"])]
    if isinstance(record.get("alpha"), Mapping):
        files.append(("alpha map", record["alpha"]))
    for what, entry in files:
        name = entry["file"]
        png = folder / name
        if not png.is_file():
            raise RecordError(f"its {what} {name!r} is missing")
        try:
            digest = sha256_file(png)
        except OSError as err:
            raise RecordError(f"its {what} {name!r} cannot be read ({err.strerror})") from None
        if digest != entry["sha256"]:
            raise RecordError(
                f"its {what} {name!r} does not match the record's SHA-256 (truncated or changed)"
            )


def is_complete(folder: str | os.PathLike, stem: str, key: Mapping) -> bool:
    """Whether ``stem``.json in ``folder`` is a valid record of ``key`` whose PNG matches it.

    The record's ``key`` must equal ``key`` (after a JSON round trip) and the PNG's SHA-256
    must equal the record's ``image.sha256`` (the alpha map's its ``alpha.sha256``, if listed).
    """
    folder = Path(folder)
    record = read_record(folder / f"{stem}.json")
    if record is None or record.get("key") != json.loads(json.dumps(jsonable(key))):
        return False
    try:
        _check_image(folder, record)
    except RecordError:
        return False
    return True


_STEM = re.compile(r"^(?P<layer>.+)_(?P<objective>channel|neuron|class)_(?P<unit>\d{4,})$")


@dataclass(frozen=True)
class Damaged:
    """A unit whose files cannot be trusted: its name, its record's path and why."""

    stem: str
    path: Path
    reason: str
    layer: str | None = None  # from the record where it says, else from the file name
    objective: str | None = None
    unit: int | None = None

    def __str__(self) -> str:
        return f"{self.stem}: {self.reason}"


@dataclass
class Scan:
    """What ``scan`` found in a folder: valid ``units`` and ``damaged`` ones, each by name."""

    units: list[tuple[Path, dict]] = field(default_factory=list)
    damaged: list[Damaged] = field(default_factory=list)

    def valid(self) -> dict[str, dict]:
        """``{stem: record}`` of the valid units."""
        return {path.stem: record for path, record in self.units}


def _damaged(path: Path, reason: str, record: object = None) -> Damaged:
    match = _STEM.match(path.stem)
    layer = objective = None
    unit = None
    if match:
        layer, objective, unit = match["layer"], match["objective"], int(match["unit"])
    if isinstance(record, dict):
        layer = record["layer"] if isinstance(record.get("layer"), str) else layer
        objective = record["objective"] if isinstance(record.get("objective"), str) else objective
        unit = record["unit"] if _is_index(record.get("unit")) else unit
    return Damaged(path.stem, path, reason, layer, objective, unit)


def scan(folder: str | os.PathLike) -> Scan:
    """Read every record in ``folder``: valid units, and damaged ones with the reason.

    A ``*.json`` file is a unit's record when it parses with a ``format`` of
    ``midnite.record/...``, or, when it does not parse or has no such format, when its name is a
    unit's (``unit_stem``) or a PNG of the same name lies beside it; other JSON files are not
    midnite's and are passed over. A record is damaged when it is not valid JSON, fails
    ``check_record``, or its PNG (or listed alpha map) is missing or does not match its SHA-256.
    """
    folder = Path(folder)
    found = Scan()
    for path in sorted(folder.glob("*.json")):
        if path.name.startswith("."):
            continue
        ours = bool(_STEM.match(path.stem)) or path.with_suffix(".png").is_file()
        record: object = None
        try:
            record = json.loads(path.read_bytes().decode("utf-8"))
        except OSError as err:
            if ours:
                found.damaged.append(_damaged(path, f"its record cannot be read ({err.strerror})"))
            continue
        except UnicodeDecodeError:
            if ours:
                found.damaged.append(_damaged(path, "its record is not UTF-8 text"))
            continue
        except json.JSONDecodeError as err:
            if ours:
                reason = (
                    f"its record is not valid JSON ({err.msg} at line {err.lineno} column "
                    f"{err.colno}; truncated?)"
                )
                found.damaged.append(_damaged(path, reason))
            continue
        fmt = record.get("format") if isinstance(record, dict) else None
        if not ours and not (isinstance(fmt, str) and fmt.startswith("midnite.record/")):
            continue  # someone else's JSON
        try:
            check_record(record)
            _check_image(folder, record)  # type: ignore[arg-type]
        except RecordError as err:
            found.damaged.append(_damaged(path, str(err), record))
            continue
        found.units.append((path, record))  # type: ignore[arg-type]
    return found


def read_records(folder: str | os.PathLike) -> list[tuple[Path, dict]]:
    """``(json path, record)`` of every valid unit in ``folder`` (see ``scan``), by name."""
    return scan(folder).units


def run_of(record: Mapping) -> dict:
    """The run configuration a valid record belongs to (``RUN_FIELDS`` it has).

    ``midnite.record/2`` records carry it as ``run``; for ``/1`` it is taken from the key and
    settings (without ``weights`` and ``batch``, which /1 did not record).
    """
    run = record.get("run")
    if isinstance(run, Mapping):
        return {k: run[k] for k in RUN_FIELDS if k in run}
    key = record.get("key")
    found = {k: key[k] for k in RUN_FIELDS if isinstance(key, Mapping) and k in key}
    settings = record.get("settings")
    if isinstance(settings, Mapping) and "recipe" in settings:
        found["recipe"] = settings["recipe"]
    return found


def run_conflicts(ours: Mapping, theirs: Mapping) -> list[str]:
    """The ``RUN_FIELDS`` in which two run configurations differ (fields both have).

    ``steps`` and ``lr`` are compared only between units of the same recipe: class and
    feature units of one run take each their recipe's defaults.
    """
    same_recipe = ours.get("recipe") == theirs.get("recipe") or None in (
        ours.get("recipe"),
        theirs.get("recipe"),
    )
    differ = []
    for name in RUN_FIELDS:
        if name == "recipe" or name not in ours or name not in theirs:
            continue
        if name in ("steps", "lr") and not same_recipe:
            continue
        if jsonable(ours[name]) != jsonable(theirs[name]):
            differ.append(name)
    return differ
