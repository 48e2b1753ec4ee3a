"""On-disk results of ``midnite render``: one PNG and one JSON record per unit, written atomically.

A unit is *complete* when its PNG and its record exist, the record's ``key`` equals the key the
current settings give and the PNG's SHA-256 equals the one in the record. Units are rendered in
batches planned from the unit indices alone (``plan_batches``), and a batch's seed comes from
the run's seed and the batch's units (``batch_seed``), so a rerun renders each missing unit in
the same company, with the same seed, as an uninterrupted run would have; finished files are
never rewritten. With ``batch=1`` a unit's image depends only on the settings, seed and unit.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = [
    "FORMAT",
    "TEMP_SUFFIX",
    "atomic_write_bytes",
    "atomic_write_text",
    "batch_seed",
    "clean_temp",
    "is_complete",
    "jsonable",
    "plan_batches",
    "read_record",
    "read_records",
    "sha256_file",
    "unit_stem",
    "write_json",
]

FORMAT = "midnite.record/1"
TEMP_SUFFIX = ".midnite-tmp"


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, fsync it, then rename it to ``path``.

    Readers see the old file or the new one, never a part; on any exception (also a
    KeyboardInterrupt) the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
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


def clean_temp(folder: str | os.PathLike) -> int:
    """Remove temporary files a killed run left in ``folder``; returns how many were removed."""
    removed = 0
    for tmp in Path(folder).glob(f".*{TEMP_SUFFIX}"):
        tmp.unlink(missing_ok=True)
        removed += 1
    for tmp in Path(folder).glob(".*.png.tmp"):  # midnite.plot.save_png's temporary files
        tmp.unlink(missing_ok=True)
        removed += 1
    return removed


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


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_record(path: str | os.PathLike) -> dict | None:
    """The record at ``path``, or None when it is missing, unreadable or not a midnite record."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        return None
    return record


def is_complete(folder: str | os.PathLike, stem: str, key: Mapping) -> bool:
    """Whether ``stem``.png and ``stem``.json exist in ``folder`` and match ``key``.

    The record's ``key`` must equal ``key`` (after a JSON round trip) and the PNG's SHA-256
    must equal the record's ``image.sha256``.
    """
    folder = Path(folder)
    png = folder / f"{stem}.png"
    record = read_record(folder / f"{stem}.json")
    if record is None or not png.is_file():
        return False
    if record.get("key") != json.loads(json.dumps(jsonable(key))):
        return False
    image = record.get("image")
    return isinstance(image, dict) and image.get("sha256") == sha256_file(png)


def read_records(folder: str | os.PathLike) -> list[tuple[Path, dict]]:
    """``(json path, record)`` of every midnite record in ``folder`` whose PNG exists, by name."""
    found = []
    for path in sorted(Path(folder).glob("*.json")):
        record = read_record(path)
        if record is None:
            continue
        image = record.get("image")
        if isinstance(image, dict) and (path.parent / str(image.get("file", ""))).is_file():
            found.append((path, record))
    return found
