"""The one-run rule of the flat layout: a folder holds the units of one run configuration
(``records.RUN_FIELDS``); another's are refused with the flags that differ, or removed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from midnite.errors import UsageError
from midnite.jobs.signals import deferred_interrupt
from midnite.store import records as rec

__all__ = ["other_runs", "remove_units"]


_FLAGS = {
    "weights": "weights",
    "size": "--size",
    "steps": "--steps",
    "lr": "--lr",
    "seed": "--seed",
    "batch": "--batch",
    "device": "--device",
    "init_penalty": "--init-penalty",
}


def _flag(name: str, value: object) -> str:
    if name == "init":  # a digest: the image's values, not its path
        return f"--init sha256:{str(value)[:12]}" if value else "no --init"
    if name == "size" and isinstance(value, (list, tuple)) and len(value) == 2:
        value = f"{value[0]}x{value[1]}"
    return f"{_FLAGS[name]} {value}"


def other_runs(out: Path, run: dict, found: rec.Scan, overwrite: bool) -> list[tuple[Path, dict]]:
    """The units in ``out`` of another run configuration: refused unless ``overwrite``."""
    others = []
    for path, record in found.units:
        differ = rec.run_conflicts(run, rec.run_of(record))
        if differ:
            others.append((path, record, differ))
    if others and not overwrite:
        _, record, differ = others[0]
        theirs = rec.run_of(record)
        hint = ""
        if "weights" in differ and "model" not in differ:
            hint = (
                " (the same MODEL gave other weights: does it make random weights without a "
                "fixed seed?)"
            )
        flags = [n for n in differ if n != "model"]
        ours = " ".join([run["model"]] * ("model" in differ) + [_flag(n, run[n]) for n in flags])
        raise UsageError(
            f"{str(out)!r} holds {len(others)} unit(s) of "
            f"{' '.join([str(theirs.get('model', '?'))] + [_flag(n, theirs[n]) for n in flags])}"
            f"; this run asks for {ours}{hint}: use another --out, or --overwrite to replace them"
        )
    return [(path, record) for path, record, _ in others]


def remove_units(
    out: Path, units: list[tuple[Path, dict]], report: Callable[[str], None] | None = None
) -> None:
    """Remove the files of ``units`` (``--overwrite``), each record before its PNG."""
    with deferred_interrupt():
        for path, record in units:
            path.unlink(missing_ok=True)  # the record first: a PNG alone is no unit
            (out / record["image"]["file"]).unlink(missing_ok=True)
            if isinstance(record.get("alpha"), dict):
                (out / record["alpha"]["file"]).unlink(missing_ok=True)
    if report is not None:
        report(f"--overwrite: removed {len(units)} unit(s) of another run configuration from {out}")
