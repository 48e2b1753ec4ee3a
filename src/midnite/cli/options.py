"""Shared argument parsing of the ``midnite`` commands: unit ranges, sizes, numbers, the run
options ``render`` and ``catalogue`` share, the Ray options
``catalogue`` and ``concepts`` share, and the parser whose errors are one line (exit 2)."""

from __future__ import annotations

import argparse
import re
import textwrap
from collections.abc import Callable, Sequence

from midnite.engine import recipes
from midnite.engine.checks import check_int, check_positive_int
from midnite.engine.config import MAX_STEPS, check_steps
from midnite.errors import EXIT_USAGE, MidniteError, UsageError

__all__ = [
    "EPILOG",
    "MAX_UNITS",
    "OptionError",
    "Parser",
    "add_ray_options",
    "add_recipe_options",
    "add_run_options",
    "check_ray_options",
    "format_ranges",
    "number",
    "optional_size",
    "parse_size",
    "parse_unit_ranges",
    "parse_units",
    "steps_or_auto",
    "wrap",
]

MAX_UNITS = 1_000_000  # units one parse_units call expands without a layer to check against

EPILOG = """\
MODEL: a built-in name (efficientnet-lite0, -lite1, -lite2), torchvision:NAME, timm:NAME or
path/to/file.py:function returning an nn.Module.

exit status: 0 done; 1 some units failed (non-finite render, error in a render, write
failed, damaged units found by 'gallery'); 2 mistake in the command line or its input
(also: DIR holds units of another run configuration); 3 another midnite run is writing to
DIR; 4 not enough memory (estimated before the start, or ran out); 130 interrupted.
"""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump) and exit status 2."""

    def error(self, message: str):
        raise UsageError(f"{message} (see '{self.prog} --help')")


_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")
_SIZE = re.compile(r"^\s*(\d+)\s*(?:[xX×]\s*(\d+)\s*)?$")


def parse_unit_ranges(text: str) -> list[tuple[int, int]]:
    """``"0-3,8,2-5"`` as sorted, merged, inclusive ranges ``[(0, 5), (8, 8)]``.

    Nothing is expanded, so ``0-99999999999`` costs nothing: check the ranges against the
    layer's units before building a list (``parse_units(text, count=...)``).
    """
    ranges = []
    for part in str(text).split(","):
        match = _RANGE.match(part)
        if match is None:
            raise UsageError(
                f"malformed unit range {text!r}; accepted: N, A-B or a comma list such as 0-3,8"
            )
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        if last < first:
            raise UsageError(
                f"unit range {part.strip()!r} runs backwards; write it as {last}-{first}"
            )
        ranges.append((first, last))
    merged: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return merged


def parse_units(text: str, count: int | None = None, what: str = "units") -> list[int]:
    """``"0-15"``, ``"7"`` or ``"0-3,8,10-12"`` as a sorted list of unique unit indices.

    With ``count`` (the layer's units), units from ``count`` on are refused before anything is
    built; without it, more than ``MAX_UNITS`` units are.
    """
    ranges = parse_unit_ranges(text)
    highest = ranges[-1][1]
    if count is not None and highest >= count:
        raise UsageError(
            f"units {format_ranges(ranges)} out of range for {count} {what}; accepted: "
            f"0-{count - 1}"
        )
    total = sum(last - first + 1 for first, last in ranges)
    if count is None and total > MAX_UNITS:
        raise UsageError(
            f"units {format_ranges(ranges)} name {total} units; at most {MAX_UNITS} at once"
        )
    return [u for first, last in ranges for u in range(first, last + 1)]


def format_ranges(ranges: Sequence[tuple[int, int]]) -> str:
    first, last = ranges[0][0], ranges[-1][1]
    return f"{first}-{last}" if last > first else str(first)


def parse_size(text: str) -> tuple[int, int]:
    """``"224"`` or ``"128x160"`` (height x width) as ``(H, W)`` of positive ints."""
    match = _SIZE.match(str(text))
    if match is None:
        raise UsageError(f"malformed size {text!r}; accepted: N or HxW, e.g. 224 or 128x160")
    height = int(match.group(1))
    width = int(match.group(2)) if match.group(2) is not None else height
    if height < 1 or width < 1:
        raise UsageError(f"size must be positive, got {text!r}; accepted: N or HxW, e.g. 224")
    return height, width


def optional_size(text: str | None) -> tuple[int, int] | None:
    """``--size``: None when not given; given, it must be a size (``""`` is refused too)."""
    return None if text is None else parse_size(text)


class OptionError(MidniteError):
    """A refused option value (exit status 2); not a ValueError, so argparse lets it pass and
    its message is printed as it is."""

    exit_code = EXIT_USAGE


def number(name: str, kind: type, check: Callable[[str, object], object]) -> Callable:
    """An argparse ``type``: the text as ``kind``, then ``check(name, value)`` (engine.checks).

    A mistake is an :class:`OptionError`, raised past argparse (one line, status 2).
    """
    noun = "an integer" if kind is int else "a number"

    def parse(text: str) -> object:
        try:
            value = kind(text)
        except ValueError:
            raise OptionError(f"{name} must be {noun}, got {text!r}") from None
        try:
            return check(name, value)
        except (TypeError, ValueError) as err:
            raise OptionError(str(err)) from None

    return parse


def wrap(text: str) -> str:
    """``text`` filled to 88 columns (the help formatter keeps descriptions as written)."""
    return textwrap.fill(text, 88)


def steps_or_auto(text: str) -> int | str:
    """``--steps`` of ``catalogue``: ``auto`` (steps per layer, ``jobs.steps``) or an int."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return check_steps("--steps", int(text))
    except (TypeError, ValueError):
        raise OptionError(
            f"--steps must be an integer in [1, {MAX_STEPS}] or 'auto', got {text!r}"
        ) from None


def add_run_options(
    parser: argparse.ArgumentParser, *, batch_help: str, auto_steps: bool = False
) -> None:
    """The options ``render`` and ``catalogue`` share: steps, size, seed, batch, device, out;
    ``auto_steps``: ``--steps`` also takes ``auto`` (``steps_or_auto``)."""
    parser.add_argument(
        "--steps",
        metavar="N",
        type=steps_or_auto if auto_steps else number("--steps", int, check_steps),
        default=None,
        help="optimizer steps, at most 1000000 (default: the render recipe's, see "
        "midnite.engine.recipes)"
        + (
            "; auto: per layer, fewer for shallow layers (a schedule over depth measured on "
            "efficientnet-lite0 to reach 95%% of the 256-step objective; feature recipe only, "
            "other recipes keep theirs)"
            if auto_steps
            else ""
        ),
    )
    parser.add_argument(
        "--size", metavar="HxW", help="image HxW (default: the model's native size, else 224)"
    )
    parser.add_argument(
        "--seed",
        metavar="S",
        type=number("--seed", int, check_int),
        default=0,
        help="run seed (default 0)",
    )
    parser.add_argument(
        "--batch",
        metavar="B",
        type=number("--batch", int, check_positive_int),
        default=8,
        help=batch_help,
    )
    parser.add_argument(
        "--device", metavar="D", help="torch device, e.g. cpu or cuda:0 (default cpu)"
    )
    parser.add_argument(
        "--out", metavar="DIR", required=True, help="output folder (created if missing)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_recipe_options(parser: argparse.ArgumentParser, *, default: str) -> None:
    """``--recipe`` (every recipe by name) and ``--param``, as ``render`` and ``catalogue``
    take them; ``default`` says which recipe is used without ``--recipe``."""
    parser.add_argument(
        "--recipe",
        choices=sorted(recipes.RECIPES),
        default=None,
        help=f"render recipe by name (default: {default}); natural: MACO, natural-looking "
        "images on a larger canvas",
    )
    parser.add_argument(
        "--param",
        choices=("fourier", "pixel", "maco"),
        default=None,
        help="image parameterization (default: the recipe's); maco: natural images' Fourier "
        "magnitude, trained phase, random crops of a larger canvas",
    )


RAY_INSECURE_HELP = (
    "with --ray ADDRESS: join a cluster that has authentication disabled "
    "(RAY_AUTH_MODE=disabled; refused without this flag)"
)


def _ray_address(text: str) -> str:
    """``--ray ADDRESS``: checked when parsed (one line, status 2), before anything loads."""
    from midnite.jobs.ray import RayError, check_address  # Ray itself is not imported

    try:
        return check_address(text) if text else text
    except RayError as err:
        raise OptionError(str(err)) from None


def add_ray_options(parser: argparse.ArgumentParser, *, what: str = "render") -> None:
    """``--ray [ADDRESS]``, ``--ray-insecure``, ``--workers N`` and ``--threads T``
    (``cli.catalogue.run_executor`` makes the executor they choose)."""
    parser.add_argument(
        "--ray",
        metavar="ADDRESS",
        nargs="?",
        const="",
        default=None,
        type=_ray_address,
        help=f"{what} on Ray (pip install 'midnite[ray]'): without ADDRESS on a local Ray "
        "instance started for the run, with ADDRESS (HEAD:6379) on that cluster; workers load "
        "MODEL themselves, only this process writes files",
    )
    parser.add_argument("--ray-insecure", action="store_true", help=RAY_INSECURE_HELP)
    parser.add_argument(
        "--workers",
        metavar="N",
        type=number("--workers", int, check_positive_int),
        default=None,
        help="worker processes, each loading MODEL once (in this machine without --ray; Ray "
        "workers with it); default: one per CPU this process may use when the run has at least "
        "4 batches per worker, else this process alone (with --ray: the cluster's CPUs)",
    )
    parser.add_argument(
        "--threads",
        metavar="T",
        type=number("--threads", int, check_positive_int),
        default=None,
        help="torch threads per worker (default 1: the same bytes however the run is split, "
        "and no threads fighting other work for the cores)",
    )


def check_ray_options(args: argparse.Namespace) -> None:
    """The Ray options that need ``--ray`` (one line, before anything loads)."""
    if args.ray_insecure and args.ray is None:
        raise UsageError("--ray-insecure needs --ray ADDRESS (the cluster to join)")
