"""The unit record's schema, in one place: frozen dataclasses whose fields and types are the
schema. ``UnitRecord.from_json`` checks a JSON object against them (``RecordError`` names the
field, what it must be and what it is) and ``to_json`` gives the object written to disk.

Versions: ``midnite.record/3`` (``FORMAT``) is written, with the wall-clock values in ``timing``;
``/1`` and ``/2`` are read and converted: top-level ``seconds`` and ``created`` (where a record
has no ``timing``) go to ``timing``, and a ``/1`` record's ``run`` is taken from its key and
settings. ``/2`` also requires ``key.batch`` and ``key.weights``.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, TypeVar, Union, get_args, get_origin, get_type_hints

from midnite.store.files import DamagedError

__all__ = [
    "FORMAT",
    "FORMATS",
    "RUN_FIELDS",
    "Activation",
    "AlphaFile",
    "BatchPosition",
    "ImageFile",
    "RecordError",
    "Timing",
    "UnitRecord",
    "describe",
]

FORMAT = "midnite.record/3"
FORMATS = ("midnite.record/1", "midnite.record/2", FORMAT)  # the versions this midnite reads

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


class RecordError(DamagedError):
    """A record that is not a valid midnite record; the message says what is wrong."""


Json = Any  # a value strict JSON holds (checked where the schema says more)


@dataclass(frozen=True)
class Check:
    """A condition on a value beyond its Python type, and the words for it in a message."""

    test: Callable[[Any], bool]
    words: str


_SHA256 = re.compile(r"^[0-9a-f]{64}$")
Index = Annotated[int, Check(lambda v: v >= 0, "an integer >= 0")]
FileName = Annotated[
    str,
    Check(
        lambda v: v not in ("", ".", "..") and not re.search(r"[/\\\0]", v),
        "a file name in the record's folder",
    ),
]
Sha256 = Annotated[str, Check(lambda v: bool(_SHA256.match(v)), "64 hex digits")]


def describe(value: object) -> str:
    """A short description of a JSON value for messages: ``number -1``, ``an object``..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"number {value!r}"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return f"string {text!r}"
    if isinstance(value, (list, tuple)):
        return f"an array of {len(value)}"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


# checking values against field types -------------------------------------------------------

_PLAIN: dict[object, tuple[Callable[[Any], bool], str]] = {
    str: (lambda v: isinstance(v, str), "a string"),
    int: (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    float: (  # an int is finite however big (math.isfinite would overflow on it)
        lambda v: (
            (isinstance(v, int) and not isinstance(v, bool))
            or (isinstance(v, float) and math.isfinite(v))
        ),
        "a finite number",
    ),
    bool: (lambda v: isinstance(v, bool), "true or false"),
    dict: (lambda v: isinstance(v, dict), "an object"),
}
_ARRAY_WORDS = {"a string": "strings", "an integer": "integers", "a finite number": "numbers"}


def _nullable(tp: object) -> object | None:
    """``X`` when ``tp`` is ``X | None``, else None."""
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0]
    return None


def _words(tp: object) -> str:
    """What a value of type ``tp`` must be, in words."""
    inner = _nullable(tp)
    if inner is not None:
        return f"{_words(inner)} or null"
    origin = get_origin(tp)
    if origin is Annotated:
        return next(m.words for m in get_args(tp)[1:] if isinstance(m, Check))
    if origin is tuple:
        item = get_args(tp)[0]
        nullable = _nullable(item) is not None
        base = _words(_nullable(item) or item)
        plural = _ARRAY_WORDS.get(base, base)
        return f"an array of {plural}{' or nulls' if nullable else ''}"
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return "an object"
    return _PLAIN[get_origin(tp) or tp][1]


def _fits(tp: object, value: object) -> bool:
    """Whether the JSON ``value`` is of type ``tp`` (dataclass parts are checked by their own)."""
    inner = _nullable(tp)
    if inner is not None:
        return value is None or _fits(inner, value)
    origin = get_origin(tp)
    if origin is Annotated:
        base, *marks = get_args(tp)
        return _fits(base, value) and all(m.test(value) for m in marks if isinstance(m, Check))
    if origin is tuple:
        return isinstance(value, (list, tuple)) and all(_fits(get_args(tp)[0], v) for v in value)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return isinstance(value, dict)
    return _PLAIN[origin or tp][0](value)


def _value(tp: object, value: Json, name: str) -> Any:
    """The field value of type ``tp`` for a JSON ``value`` that fits it (arrays become tuples,
    objects are copied, parts are built)."""
    tp = _nullable(tp) or tp
    if value is None:
        return None
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return tp._from_object(value, f"{name}.")  # type: ignore[attr-defined]
    if get_origin(tp) is tuple:
        return tuple(value)
    if isinstance(value, dict):
        return _copy(value)
    return value


def _copy(value: Json) -> Json:
    """A deep copy of a JSON value (so a frozen record shares nothing mutable with its input)."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


P = TypeVar("P", bound="Part")


@dataclass(frozen=True, kw_only=True)
class Part:
    """A JSON object of the record. Its fields are the schema: a field without a default is
    required; one with a default may be absent (None means absent). ``extra`` keeps fields this
    midnite does not know, so a record read and written again loses nothing."""

    extra: dict[str, Json] = field(default_factory=dict)
    _HINTS: ClassVar[dict[type, dict[str, Any]]] = {}

    @classmethod
    def _fields(cls) -> list[tuple[dataclasses.Field, Any]]:
        hints = Part._HINTS.get(cls)
        if hints is None:
            hints = Part._HINTS[cls] = get_type_hints(cls, include_extras=True)
        return [(f, hints[f.name]) for f in dataclasses.fields(cls) if f.name != "extra"]

    @classmethod
    def _from_object(cls: type[P], obj: object, prefix: str = "") -> P:
        """The part for the JSON object ``obj``; field names in messages start with ``prefix``."""
        if not isinstance(obj, dict):
            what = f"'{prefix[:-1]}'" if prefix else "a record"
            raise RecordError(f"{what} must be a JSON object, got {describe(obj)}")
        values: dict[str, Any] = {}
        for f, tp in cls._fields():
            name = prefix + f.name
            optional = f.default is not dataclasses.MISSING or (
                f.default_factory is not dataclasses.MISSING
            )
            if f.name not in obj:
                if optional:
                    continue
                raise RecordError(f"'{name}' is missing; it must be {_words(tp)}")
            value = obj[f.name]
            if isinstance(value, Part):  # built already (the top-level timing of /1 and /2)
                values[f.name] = value
                continue
            if optional:  # None means absent: null is not a value of an optional field
                tp = _nullable(tp) or tp
            if not _fits(tp, value):
                raise RecordError(f"'{name}' must be {_words(tp)}, got {describe(value)}")
            values[f.name] = _value(tp, value, name)
        known = {f.name for f, _ in cls._fields()}
        extra = {k: _copy(v) for k, v in obj.items() if k not in known}
        return cls(extra=extra, **values)

    def to_json(self) -> dict[str, Json]:
        """The JSON object of this part (absent fields left out, unknown ones kept)."""
        out: dict[str, Json] = {}
        for f, _ in self._fields():
            value = getattr(self, f.name)
            if value is None and f.default is None:
                continue
            out[f.name] = _json(value)
        out.update(_copy(self.extra))
        return out


def _json(value: object) -> Json:
    if isinstance(value, Part):
        return value.to_json()
    if isinstance(value, tuple):
        return [_json(v) for v in value]
    return _copy(value)


# the parts of a record ---------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ImageFile(Part):
    """A PNG beside the record: its name in the folder and SHA-256 (and size in pixels)."""

    file: FileName
    sha256: Sha256
    height: Index | None = None
    width: Index | None = None


@dataclass(frozen=True, kw_only=True)
class AlphaFile(Part):
    """An attribution alpha map: an RGBA PNG, the image with the map as its alpha channel."""

    file: FileName
    sha256: Sha256
    scale: float
    meaning: str | None = None


@dataclass(frozen=True, kw_only=True)
class Activation(Part):
    """The objective's value before the first step and after the last (null: not finite)."""

    start: float | None
    final: float | None


@dataclass(frozen=True, kw_only=True)
class BatchPosition(Part):
    """The batch a unit was rendered in: its units, the unit's position there, its seed."""

    units: tuple[int, ...]
    position: Index
    seed: int


@dataclass(frozen=True, kw_only=True)
class Timing(Part):
    """Wall-clock values: how long the batch took and when the record was made. Never part of
    a record's identity (``UnitRecord.timing`` is left out of equality)."""

    seconds: float | None = None
    created: str | None = None


@dataclass(frozen=True, kw_only=True)
class UnitRecord(Part):
    """One unit's record: what it is, the key that decides its image, its files and results.

    Two records of the same work compare equal whatever their ``timing``. ``key``, ``run``,
    ``metrics``, ``settings`` and ``versions`` are JSON objects (the writer's; ``run`` holds
    ``RUN_FIELDS``).
    """

    model: str
    layer: str
    unit: Index
    objective: str
    key: dict[str, Json]
    run: dict[str, Json]
    activation: Activation
    metrics: dict[str, Json]
    image: ImageFile
    alpha: AlphaFile | None = None
    view: str | None = None  # catalogue records: the view (also their objective)
    catalogue: bool | None = None
    objective_repr: str | None = None
    seed: int | None = None
    batch: BatchPosition | None = None
    settings: dict[str, Json] | None = None
    versions: dict[str, Json] | None = None
    history: tuple[float | None, ...] | None = None
    command: tuple[str, ...] | None = None
    timing: Timing = field(default_factory=Timing, compare=False)

    @classmethod
    def from_json(cls, obj: object) -> UnitRecord:
        """The record of a JSON object of any version in ``FORMATS`` (converted to this one).

        Raises :class:`RecordError` naming the first field that is missing or of the wrong
        kind, what it must be and what it is.
        """
        if not isinstance(obj, dict):
            raise RecordError(f"a record must be a JSON object, got {describe(obj)}")
        if "format" not in obj:
            raise RecordError("the record has no 'format'")
        fmt = obj["format"]
        if fmt not in FORMATS:
            raise RecordError(
                f"'format' must be one of {', '.join(FORMATS)}, got {describe(fmt)} (written by "
                "a newer midnite?)"
            )
        try:
            return cls._from_versioned(obj, fmt)
        except RecursionError:  # an object built in memory, deeper than any file read_json takes
            raise RecordError("the record nests too deep to be read") from None

    @classmethod
    def _from_versioned(cls, obj: dict, fmt: str) -> UnitRecord:
        """``from_json`` of an object of format ``fmt`` (one of ``FORMATS``)."""
        obj = {k: v for k, v in obj.items() if k != "format"}
        if "timing" not in obj:  # /1 and /2 kept the wall-clock values at the top
            top = {k: obj.pop(k) for k in ("seconds", "created") if k in obj}
            obj["timing"] = Timing._from_object(top)  # messages name them where they were
        if fmt == FORMATS[0] and "run" not in obj:
            obj["run"] = _run_of_v1(obj)
        if fmt == FORMATS[1]:
            _check_v2_key(obj.get("key"))
        return cls._from_object(obj)

    def to_json(self) -> dict[str, Json]:
        """The JSON object written to disk: ``{"format": FORMAT, ...fields}``."""
        return {"format": FORMAT, **super().to_json()}

    def get(self, name: str, default: object = None) -> Json:
        """The JSON value of top-level field ``name`` (as in ``to_json()``), else ``default``:
        read access for code written for the dict records."""
        return self.to_json().get(name, default)


def _run_of_v1(obj: Mapping) -> dict[str, Json]:
    """A ``midnite.record/1``'s run configuration: from its key and settings."""
    key, settings = obj.get("key"), obj.get("settings")
    found = {k: key[k] for k in RUN_FIELDS if isinstance(key, Mapping) and k in key}
    if isinstance(settings, Mapping) and "recipe" in settings:
        found["recipe"] = settings["recipe"]
    return _copy(found)


def _check_v2_key(key: object) -> None:
    """``midnite.record/2`` keys name the ``--batch`` size and the weights' digest."""
    if not isinstance(key, dict):
        return  # the schema says what key must be
    for name, tp in (("batch", Index), ("weights", str)):
        if name not in key:
            raise RecordError(f"'key.{name}' is missing; it must be {_words(tp)}")
        if not _fits(tp, key[name]):
            raise RecordError(f"'key.{name}' must be {_words(tp)}, got {describe(key[name])}")
