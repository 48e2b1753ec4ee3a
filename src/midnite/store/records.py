"""On-disk results of ``midnite render`` and ``midnite catalogue``: one PNG and one JSON record
per unit, written atomically; reading a folder back (``scan``) and the run a record belongs to.

A unit is *complete* when its PNG and its record exist, the record is valid
(``UnitRecord.from_json``), the record's ``key`` equals the key the current settings give and
the PNG's SHA-256 equals the one in the record; where the record lists an attribution alpha map
(``alpha``), that file must match its SHA-256 too. Records are read with limits
(``files.read_json``): a file too big, too deep or not JSON is a damaged unit, named and
rendered again. Units are rendered in batches planned from the unit indices alone
(``plan_batches``) with a seed from ``batch_seed``, so a rerun renders each missing unit in the
same company, with the same seed, as an uninterrupted run would have.

``midnite.records`` is this module (the old import path); it also holds the names of
``midnite.store.files`` and ``midnite.store.keys`` it always had.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from midnite.store.files import (
    LOCK_NAME,
    STALE_SECONDS,
    TEMP_SUFFIX,
    DamagedError,
    FolderBusy,
    atomic_write_bytes,
    atomic_write_text,
    canonical,
    clean_temp,
    jsonable,
    lock_folder,
    read_json,
    write_json,
    write_page,
)
from midnite.store.keys import (
    batch_seed,
    layer_folder,
    plan_batches,
    sha256_file,
    unit_stem,
    weights_digest,
)
from midnite.store.paths import inside
from midnite.store.schema import (
    FORMAT,
    FORMATS,
    RUN_FIELDS,
    RecordError,
    UnitRecord,
    _run_of_v1,
)

__all__ = [
    "FORMAT",
    "FORMATS",
    "LOCK_NAME",
    "RUN_FIELDS",
    "STALE_SECONDS",
    "TEMP_SUFFIX",
    "Damaged",
    "DamagedError",
    "FolderBusy",
    "RecordError",
    "Scan",
    "UnitRecord",
    "atomic_write_bytes",
    "atomic_write_text",
    "batch_seed",
    "canonical",
    "check_record",
    "clean_temp",
    "is_complete",
    "jsonable",
    "layer_folder",
    "load_record",
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
    "write_page",
    "write_record",
]


def check_record(record: object) -> dict:
    """``record`` itself if it is a valid midnite record of a version this midnite reads
    (``UnitRecord.from_json`` says), else :class:`RecordError` naming the first bad field."""
    UnitRecord.from_json(record)
    return record  # type: ignore[return-value]  # from_json accepts dicts only


def load_record(path: str | os.PathLike) -> UnitRecord:
    """The typed record in the file at ``path`` (read within ``read_json``'s limits).

    Raises ``FileNotFoundError`` when there is none and :class:`DamagedError` (a
    :class:`RecordError` when the JSON is not a valid record) saying why it cannot be used.
    """
    return UnitRecord.from_json(read_json(path))


def write_record(path: str | os.PathLike, record: UnitRecord) -> Path:
    """Write ``record.to_json()`` to ``path`` atomically (strict JSON); returns ``path``.

    The object is checked first (``UnitRecord.from_json``; the constructor does not check
    types): a record built wrong raises :class:`RecordError` and nothing is written. Write the
    unit's PNGs first: a record on disk means its files are complete.
    """
    if not isinstance(record, UnitRecord):
        raise TypeError(f"record must be a UnitRecord, got {type(record).__name__}")
    obj = record.to_json()
    UnitRecord.from_json(obj)
    return write_json(path, obj)


def read_record(path: str | os.PathLike) -> dict | None:
    """The valid record at ``path`` as its JSON object, or None when it is missing, unreadable
    or not valid (``scan`` says why)."""
    try:
        return check_record(read_json(path))
    except (OSError, DamagedError):
        return None


def _check_files(folder: Path, record: UnitRecord) -> None:
    """RecordError unless the record's PNG (and alpha map, where listed) exists and has the
    record's SHA-256."""
    files = [("image", record.image.file, record.image.sha256)]
    if record.alpha is not None:
        files.append(("alpha map", record.alpha.file, record.alpha.sha256))
    for what, name, sha256 in files:
        png = inside(folder, name)
        if png.is_symlink():  # never followed: a page would show a file from elsewhere
            raise RecordError(f"its {what} {name!r} is a symbolic link (not followed)")
        if not png.is_file():
            raise RecordError(f"its {what} {name!r} is missing")
        try:
            digest = sha256_file(png)
        except OSError as err:
            raise RecordError(f"its {what} {name!r} cannot be read ({err.strerror})") from None
        if digest != sha256:
            raise RecordError(
                f"its {what} {name!r} does not match the record's SHA-256 (truncated or changed)"
            )


def is_complete(folder: str | os.PathLike, stem: str, key: Mapping) -> bool:
    """Whether ``stem``.json in ``folder`` is a valid record of ``key`` whose PNG matches it.

    The record's ``key`` must equal ``key`` (after a JSON round trip) and the PNG's SHA-256
    must equal the record's ``image.sha256`` (the alpha map's its ``alpha.sha256``, if listed).
    """
    folder = Path(folder)
    try:
        record = load_record(inside(folder, f"{stem}.json"))
    except (OSError, DamagedError):
        return False
    if record.key != canonical(key):
        return False
    try:
        _check_files(folder, record)
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
    """What ``scan`` found in a folder: valid ``units`` (record path, the record's JSON object
    as on disk) and ``damaged`` ones, each by name."""

    units: list[tuple[Path, dict]] = field(default_factory=list)
    damaged: list[Damaged] = field(default_factory=list)

    def valid(self) -> dict[str, dict]:
        """``{stem: record's JSON object}`` of the valid units."""
        return {path.stem: record for path, record in self.units}

    def records(self) -> dict[str, UnitRecord]:
        """``{stem: typed record}`` of the valid units (older versions converted)."""
        return {path.stem: UnitRecord.from_json(record) for path, record in self.units}


def _is_index(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


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
    midnite's and are passed over. A record is damaged when ``read_json`` refuses it (unreadable,
    over its size or depth limit, not UTF-8, not JSON), it is not a valid record, or its PNG (or
    listed alpha map) is missing, a symbolic link or does not match its SHA-256; a record that
    is a symbolic link is damaged too (links are never followed). Nothing in a folder raises.
    """
    folder = Path(folder)
    found = Scan()
    for path in sorted(folder.glob("*.json")):
        if path.name.startswith("."):
            continue
        ours = bool(_STEM.match(path.stem)) or path.with_suffix(".png").is_file()
        if path.is_symlink():  # never followed: it could name a file outside the folder
            if ours:
                found.damaged.append(_damaged(path, "its record is a symbolic link (not followed)"))
            continue
        try:
            record = read_json(path)
        except (OSError, DamagedError) as err:
            if ours:
                why = err.reason if isinstance(err, DamagedError) else f"cannot be read ({err})"
                found.damaged.append(_damaged(path, f"its record {why}"))
            continue
        fmt = record.get("format") if isinstance(record, dict) else None
        if not ours and not (isinstance(fmt, str) and fmt.startswith("midnite.record/")):
            continue  # someone else's JSON
        try:
            _check_files(folder, UnitRecord.from_json(record))
        except RecordError as err:
            found.damaged.append(_damaged(path, str(err), record))
            continue
        found.units.append((path, record))  # type: ignore[arg-type]  # from_json: a dict
    return found


def read_records(folder: str | os.PathLike) -> list[tuple[Path, dict]]:
    """``(json path, record)`` of every valid unit in ``folder`` (see ``scan``), by name."""
    return scan(folder).units


def run_of(record: Mapping | UnitRecord) -> dict:
    """The run configuration a valid record belongs to (the ``RUN_FIELDS`` it has).

    Records carry it as ``run``; for a ``midnite.record/1`` object it is taken from the key and
    settings (without ``weights`` and ``batch``, which /1 did not record).
    """
    run = record.run if isinstance(record, UnitRecord) else record.get("run")
    if not isinstance(run, Mapping):
        return _run_of_v1(record)  # type: ignore[arg-type]  # a Mapping here
    return {k: run[k] for k in RUN_FIELDS if k in run}


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
