"""The ``midnite`` command: ``layers``, ``render`` (resumable, batched) and ``gallery``.

A thin layer over ``midnite.models.load``, ``midnite.layers`` and ``RenderConfig`` +
``render_config`` (one config per run, changed per batch); files are written by
``midnite.records`` (atomic, resumable) and ``midnite.gallery``. Beside each unit's PNG,
``render`` writes ``<unit>_alpha.png``: the image with its attribution alpha map
(``RenderResult.alpha``, divided by its maximum) as alpha channel, listed in the record.

Nothing wrong is saved as done. A unit whose render turns non-finite gets no files (a rerun
tries it again); a damaged unit (a record that is not valid, a PNG that does not match its
record) is named and rendered again; one run writes into a folder at a time, and a folder
holds the units of one run configuration (``--overwrite`` replaces those of another); the
memory a render needs is estimated before it starts. Every problem is one line on stderr,
never a traceback (``MIDNITE_TRACEBACK=1`` shows it for an unexpected error).

Exit statuses (``EXIT_*``):
    0    done: every unit asked for is complete
    1    some units failed: their render turned non-finite, a render raised an error, results
         could not be written, or (``gallery``) damaged units were found
    2    a mistake in the command line or its input (also: DIR holds units of another run
         configuration)
    3    busy: another midnite run is writing to DIR
    4    not enough memory: the render would not fit (estimated before it starts), or ran out
    130  interrupted (Ctrl-C): the current batch's files are all written or none is
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import difflib
import functools
import hashlib
import importlib.metadata
import json
import os
import re
import signal
import sys
import tempfile
import textwrap
import threading
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from midnite import gallery, models
from midnite import records as rec
from midnite.engine import RenderConfig, layers, objectives, recipes, render_config, resolve_device
from midnite.engine.checks import check_int, check_positive_int, check_real
from midnite.engine.config import check_steps, init_digest
from midnite.engine.hooks import input_channels, parse_layer
from midnite.engine.renderer import MemoryEstimate, estimate_memory
from midnite.images import alpha_png, png_bytes
from midnite.metrics import summary

__all__ = [
    "BusyError",
    "MemoryShortage",
    "RenderError",
    "UsageError",
    "WriteError",
    "main",
    "parse_size",
    "parse_unit_ranges",
    "parse_units",
]

OBJECTIVES = ("channel", "neuron", "class")
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_BUSY = 3
EXIT_MEMORY = 4
EXIT_INTERRUPTED = 130
MAX_UNITS = 1_000_000  # units one parse_units call expands without a layer to check against

_EPILOG = """\
MODEL: a built-in name (efficientnet-lite0, -lite1, -lite2), torchvision:NAME, timm:NAME or
path/to/file.py:function returning an nn.Module.

exit status: 0 done; 1 some units failed (non-finite render, error in a render, write
failed, damaged units found by 'gallery'); 2 mistake in the command line or its input
(also: DIR holds units of another run configuration); 3 another midnite run is writing to
DIR; 4 not enough memory (estimated before the start, or ran out); 130 interrupted.
"""


class UsageError(Exception):
    """A mistake in the command line: printed as one line, exit status 2 (``status``)."""

    status = EXIT_USAGE


class WriteError(UsageError):
    """Results could not be written midway (disk full, folder removed): one line, status 1."""

    status = EXIT_FAILED


class RenderError(UsageError):
    """A render raised an error (not a mistake in the command line): one line, status 1."""

    status = EXIT_FAILED


class BusyError(UsageError):
    """Another midnite run is writing to the output folder: one line, status 3."""

    status = EXIT_BUSY


class MemoryShortage(UsageError):
    """The render will not fit in memory, or ran out of it: one line, status 4."""

    status = EXIT_MEMORY


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump) and exit status 2."""

    def error(self, message: str):
        raise UsageError(f"{message} (see '{self.prog} --help')")


# parsing ------------------------------------------------------------------------------------

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
            f"units {_format_ranges(ranges)} out of range for {count} {what}; accepted: "
            f"0-{count - 1}"
        )
    total = sum(last - first + 1 for first, last in ranges)
    if count is None and total > MAX_UNITS:
        raise UsageError(
            f"units {_format_ranges(ranges)} name {total} units; at most {MAX_UNITS} at once"
        )
    return [u for first, last in ranges for u in range(first, last + 1)]


def _format_ranges(ranges: Sequence[tuple[int, int]]) -> str:
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


def _number(name: str, kind: type, check: Callable[[str, object], object]) -> Callable:
    """An argparse ``type``: the text as ``kind``, then ``check(name, value)`` (engine.checks).

    A mistake is a UsageError, raised past argparse so that its message is printed as it is.
    """
    noun = "an integer" if kind is int else "a number"

    def parse(text: str) -> object:
        try:
            value = kind(text)
        except ValueError:
            raise UsageError(f"{name} must be {noun}, got {text!r}") from None
        try:
            return check(name, value)
        except (TypeError, ValueError) as err:
            raise UsageError(str(err)) from None

    return parse


def _wrap(text: str) -> str:
    """``text`` filled to 88 columns (the help formatter keeps descriptions as written)."""
    return textwrap.fill(text, 88)


def _add_run_options(parser: argparse.ArgumentParser, *, batch_help: str) -> None:
    """The options ``render`` and ``catalogue`` share: steps, size, seed, batch, device, out."""
    parser.add_argument(
        "--steps",
        metavar="N",
        type=_number("--steps", int, check_steps),
        default=None,
        help="optimizer steps, at most 1000000 (default: the render recipe's, see "
        "midnite.engine.recipes)",
    )
    parser.add_argument(
        "--size", metavar="HxW", help="image HxW (default: the model's native size, else 224)"
    )
    parser.add_argument(
        "--seed",
        metavar="S",
        type=_number("--seed", int, check_int),
        default=0,
        help="run seed (default 0)",
    )
    parser.add_argument(
        "--batch",
        metavar="B",
        type=_number("--batch", int, check_positive_int),
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


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="midnite",
        description="Feature visualization for PyTorch models from the command line.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"midnite {_own_version()}")
    sub = parser.add_subparsers(dest="command", metavar="{layers,render,gallery,catalogue}")

    lay = sub.add_parser("layers", help="list the addressable layers with output shapes")
    lay.add_argument("model", metavar="MODEL")
    lay.add_argument(
        "--size", metavar="HxW", help="input HxW (default: the model's native size, else 224)"
    )
    lay.add_argument("--device", metavar="D", help="torch device, e.g. cpu or cuda:0 (default cpu)")

    ren = sub.add_parser(
        "render",
        help="render units of a layer into a folder, resumably",
        description=_wrap(
            "Render each unit into DIR as a PNG, an RGBA PNG whose alpha is the unit's attribution "
            "map (<unit>_alpha.png) and a JSON record, in batches, and "
            "(re)build DIR/index.html. Units are batched by unit // B and each batch gets a seed "
            "from S and its units, so running the same command again renders exactly the missing "
            "(or damaged) units and leaves finished files untouched. A folder holds the units of "
            "one run configuration (MODEL and its weights, --size, --steps, --lr, --seed, --batch, "
            "--device); more units or other layers of it can be added at any time. One run writes "
            "into a folder at a time. A unit whose render turns non-finite is not saved."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ren.add_argument("model", metavar="MODEL")
    ren.add_argument(
        "--layer",
        metavar="NAME",
        help="dotted module name (see 'midnite layers MODEL'); "
        "optional for --objective class (default: the model's output)",
    )
    ren.add_argument(
        "--units", metavar="RANGE", required=True, help="unit indices: N, A-B or a list, e.g. 0-15"
    )
    ren.add_argument(
        "--objective",
        choices=OBJECTIVES,
        default="channel",
        help="channel mean, centre neuron or class logit (default channel)",
    )
    _add_run_options(ren, batch_help="units rendered together (default 8)")
    ren.add_argument(
        "--lr",
        metavar="LR",
        type=_number("--lr", float, functools.partial(check_real, gt=0)),
        default=None,
        help="Adam step (default: the render recipe's)",
    )
    ren.add_argument(
        "--init",
        metavar="PNG",
        help="feature accentuation: every unit starts from this image (RGB, or gray for 1-channel "
        "models); its size is the render's, so --size may be left out or must match",
    )
    ren.add_argument(
        "--init-penalty",
        metavar="L",
        type=_number("--init-penalty", float, functools.partial(check_real, ge=0)),
        default=None,
        help="with --init: add L x the mean squared pixel distance to it to the loss, keeping "
        "the result near it (default 0: the image only starts there)",
    )
    ren.add_argument(
        "--recipe",
        choices=sorted(recipes.RECIPES),
        default=None,
        help="render recipe by name (default: class for --objective class, transformer for a "
        "vision transformer's token layer, else feature); natural: MACO, natural-looking "
        "images on a larger canvas",
    )
    ren.add_argument(
        "--param",
        choices=("fourier", "pixel", "maco"),
        default=None,
        help="image parameterization (default: the recipe's); maco: natural images' Fourier "
        "magnitude, trained phase, random crops of a larger canvas",
    )
    ren.add_argument(
        "--overwrite",
        action="store_true",
        help="when DIR holds units of another run configuration, remove them all (also those "
        "outside --units) and render; without it such a run is refused",
    )

    gal = sub.add_parser(
        "gallery",
        help="(re)build index.html for a folder of results",
        description=_wrap(
            "(Re)build DIR/index.html. Every unit's record is checked (schema, and its PNG "
            "against the SHA-256 it records); damaged units are named on stderr, shown as "
            "damaged on the page, and the exit status is 1."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    gal.add_argument("folder", metavar="DIR")

    cat = sub.add_parser(
        "catalogue",
        help="render every unit of many layers, in several views, resumably",
        description=_wrap(
            "Render a catalogue into DIR: for each layer (default: the outputs of the model's "
            "repeated blocks, i.e. the children of its largest group of nn.Sequential/ModuleList "
            "blocks, with (C, H, W) outputs, plus the output when it reads as classes) and each "
            "view, DIR/<layer>/<view>_<unit>.png + .json, a gallery per layer and DIR/index.html. "
            "Records are keyed by the weights' digest, every setting and the midnite version: a "
            "rerun renders only what is missing, changed or damaged. Views: channel (maximize the "
            "channel), negative (minimize it), diversity (4 images of a unit that differ, one "
            "strip; not for flat layers)."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cat.add_argument("model", metavar="MODEL")
    cat.add_argument(
        "--layers",
        metavar="PATTERN",
        nargs="+",
        help="fnmatch globs over 'midnite layers MODEL' names, e.g. 'blocks.*' ('(output)' is "
        "the output); default: the repeated blocks' outputs and the class output",
    )
    cat.add_argument(
        "--units", metavar="RANGE", help="unit indices per layer, e.g. 0-15 (default: all)"
    )
    cat.add_argument(
        "--views",
        metavar="V,...",
        default="channel",
        help="comma list of channel, negative, diversity (default channel)",
    )
    _add_run_options(
        cat,
        batch_help="units rendered together (default 8; a diversity batch is one unit's images)",
    )
    cat.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan and its expected time (from a short probe render); render nothing",
    )
    cat.add_argument(
        "--ray",
        metavar="ADDRESS",
        nargs="?",
        const="",
        default=None,
        help="render on Ray (pip install 'midnite[ray]'): without ADDRESS on a local Ray "
        "instance started for the run, with ADDRESS (HEAD:6379) on that cluster; workers load "
        "MODEL themselves, only this process writes files",
    )
    cat.add_argument(
        "--images",
        metavar="DIR",
        help="a folder tree of JPEG/PNG photos (any sizes): each unit's page shows the --top-k "
        "that excite it most, with the activating region marked (one pass over the folder; "
        "unreadable files are skipped and counted)",
    )
    cat.add_argument(
        "--top-k",
        metavar="K",
        type=_number("--top-k", int, check_positive_int),
        default=None,
        help="dataset examples per unit, with --images (default 9)",
    )
    cat.add_argument(
        "--workers",
        metavar="N",
        type=_number("--workers", int, check_positive_int),
        default=None,
        help="Ray workers, each with one torch thread (default: the cluster's CPUs)",
    )
    return parser


def _own_version() -> str:
    try:
        return importlib.metadata.version("midnite")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


# checks -----------------------------------------------------------------------------------


def _device(spec: str | None) -> torch.device:
    """The device ``spec`` names, or the engine's one-line reason why not (meta, no CUDA)."""
    try:
        return resolve_device(spec)
    except (TypeError, ValueError) as err:
        raise UsageError(f"--device: {err}") from None


def _load(name: str) -> torch.nn.Module:
    try:
        return models.load(name)
    except Exception as err:  # one line for people, whatever the loader raised
        msg = str(err) or type(err).__name__
        if not isinstance(err, (ValueError, ImportError)):
            msg = f"could not load model {name!r}: {type(err).__name__}: {msg}"
        raise UsageError(msg) from None


def _default_size(name: str) -> tuple[int, int]:
    side = models.input_size(name)
    return side, side


def _prepare_out(folder: str) -> Path:
    if not folder.strip():
        raise UsageError(f"--out must name a folder, got {folder!r}")
    out = Path(folder)
    if out.exists() and not out.is_dir():
        raise UsageError(f"output folder {folder!r} exists and is not a folder; give a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out) as fh:
            fh.write(b"midnite")
    except OSError as err:
        reason = err.strerror or str(err)
        raise UsageError(
            f"cannot write to output folder {folder!r} ({reason}); give a writable folder"
        ) from None
    return out


def _layer_size(table, spec: str, model_name: str):
    """The output shape of the layer ``spec``, or a UsageError saying what is wrong."""
    try:
        ref = parse_layer(spec)
    except (TypeError, ValueError) as err:
        raise UsageError(str(err)) from None
    info = {i.name: i for i in table}.get(ref.name)
    if info is None:
        names = [i.name for i in table if i.name]
        close = difflib.get_close_matches(ref.name, names, n=5, cutoff=0.5)
        if close:
            hint = f"; did you mean {', '.join(map(repr, close))}?"
        elif len(names) <= 12:
            hint = f"; it has {', '.join(map(repr, names))}"
        else:
            hint = ""
        raise UsageError(
            f"unknown layer {ref.name!r} in {model_name}{hint} "
            f"(accepted: the names 'midnite layers {model_name}' lists)"
        )
    label = ref.name or "(output)"
    if info.calls == 0:
        raise UsageError(f"layer {label!r} does not run in the forward pass; pick another layer")
    if ref.call is None and info.calls > 1:
        raise UsageError(
            f"layer {label!r} runs {info.calls} times per forward pass; name one run as "
            f"'{ref.name}:0' .. '{ref.name}:{info.calls - 1}'"
        )
    if ref.call is not None and ref.call >= info.calls:
        raise UsageError(
            f"layer {label!r} runs {info.calls} time(s) per forward pass, so run {ref.call} does "
            f"not exist; accepted: '{ref.name}:0' .. '{ref.name}:{info.calls - 1}'"
        )
    if not info.shape:
        raise UsageError(f"layer {label!r} does not output a tensor with units; pick another layer")
    return info.shape


@contextlib.contextmanager
def _deferred_interrupt() -> Iterator[None]:
    """Hold back Ctrl-C during the block (main thread only); re-raise it at the end."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def _versions(render_versions: dict) -> dict:
    found = dict(render_versions)
    for pkg in ("numpy", "pillow", "efficientnet-lite-pytorch", "torchvision", "timm"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[pkg] = importlib.metadata.version(pkg)
    return found


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**28 else f"{n / 2**20:.0f} MiB"


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _available_memory(dev: torch.device) -> int | None:
    """Bytes a render can still allocate on ``dev`` (None where that is not known).

    CUDA: the device's free memory plus what torch's cache holds unused. CPU: the least of
    MemAvailable (/proc/meminfo), the cgroup's limit minus its usage, and the address-space and
    data limits (``ulimit -v``, ``-d``) minus what the process uses.
    """
    if dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        return free + torch.cuda.memory_reserved(dev) - torch.cuda.memory_allocated(dev)
    if dev.type != "cpu":
        return None
    found: list[int] = []
    status: dict[str, int] = {}
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
        for line in Path("/proc/self/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmSize", "VmData"):
                status[name] = int(value.split()[0]) * 1024
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):  # cgroup v2
                base = "/sys/fs/cgroup" + line[3:].strip()
                limit, used = _read_int(f"{base}/memory.max"), _read_int(f"{base}/memory.current")
                if limit is not None and used is not None:
                    found.append(limit - used)
    try:
        import resource
    except ImportError:  # not POSIX
        resource = None  # type: ignore[assignment]
    if resource is not None:
        for limit_name, used_name in (("RLIMIT_AS", "VmSize"), ("RLIMIT_DATA", "VmData")):
            soft, _ = resource.getrlimit(getattr(resource, limit_name))
            if soft != resource.RLIM_INFINITY and used_name in status:
                # new threads' stacks and malloc arenas count against these limits too
                found.append(soft - status[used_name] - _VIRTUAL_HEADROOM)
    return max(0, min(found)) if found else None


_VIRTUAL_HEADROOM = 128 * 2**20  # measured: a render's address space grows ~100 MiB beyond its data

_OOM = re.compile(r"out of memory|can't allocate memory|cannot allocate memory", re.IGNORECASE)


def _is_out_of_memory(err: BaseException) -> bool:
    oom = getattr(torch, "OutOfMemoryError", ())
    return (
        isinstance(err, MemoryError)
        or (oom and isinstance(err, oom))
        or (isinstance(err, RuntimeError) and bool(_OOM.search(str(err))))
    )


def _one_line(err: object) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 300 else text[:297] + "..."


# commands ---------------------------------------------------------------------------------


def _layer_table(model, name: str, size: tuple[int, int], dev):
    try:
        return layers(model, size, device=dev)
    except Exception as err:
        raise UsageError(
            f"{name} does not run on {size[0]}x{size[1]} images ({type(err).__name__}: "
            f"{err}); try another --size"
        ) from None


def _cmd_layers(args: argparse.Namespace) -> int:
    size = parse_size(args.size) if args.size else None
    dev = _device(args.device)
    model = _load(args.model)
    size = size or _default_size(args.model)
    table = _layer_table(model, args.model, size, dev)
    print(f"{args.model}, input {size[0]}x{size[1]}:")
    print(table)
    return 0


def _cmd_gallery(args: argparse.Namespace) -> int:
    folder = Path(args.folder)
    if not folder.is_dir():
        raise UsageError(f"no folder {args.folder!r}; give the --out folder of 'midnite render'")
    found = rec.scan(folder)
    if not found.units and not found.damaged:
        raise UsageError(
            f"no midnite results (PNG + JSON record) in {args.folder!r}; "
            "run 'midnite render ... --out DIR' first"
        )
    for bad in found.damaged:
        print(f"midnite: damaged unit {bad}", file=sys.stderr)
    try:
        page = gallery.build(folder, found=found)
    except OSError as err:
        raise WriteError(
            f"cannot write the gallery into {args.folder!r} ({err.strerror})"
        ) from None
    damaged = f", {len(found.damaged)} damaged" if found.damaged else ""
    print(f"{len(found.units)} units{damaged}: {page}")
    return EXIT_FAILED if found.damaged else EXIT_OK


def _cmd_catalogue(args: argparse.Namespace) -> int:
    """``midnite catalogue``: plan with ``midnite.catalogue``, then dry-run or render it."""
    from midnite import catalogue as cat

    if args.units is not None:
        parse_unit_ranges(args.units)  # the syntax now; the range per layer in the plan
    if args.top_k is not None and args.images is None:
        raise UsageError("--top-k needs --images DIR (the photos to find examples in)")
    if args.workers is not None and args.ray is None:
        raise UsageError("--workers needs --ray (in-process rendering is one worker)")
    images = _images_folder(args.images) if args.images is not None else None
    size = parse_size(args.size) if args.size else None
    views = [v.strip() for v in args.views.split(",")]
    dev = _device(args.device)
    out = None if args.dry_run else _prepare_out(args.out)
    model = _load(args.model)
    size = size or _default_size(args.model)
    table = _layer_table(model, args.model, size, dev)
    settings = cat.Settings(
        size=size, steps=args.steps, batch=args.batch, seed=args.seed, device=str(dev)
    )
    try:
        names = cat.select_layers(model, table, args.layers)
        shapes = {i.name: tuple(i.shape) for i in table if i.name in names and i.shape}
        work = cat.plan(
            model,
            args.model,
            names,
            shapes,
            settings=settings,
            views=views,
            units=args.units,
            parse_units=lambda text, count: parse_units(text, count=count),
        )
    except (cat.CatalogueError, UsageError, TypeError) as err:
        raise UsageError(str(err)) from None
    units = sum(len(b.units) for b in work)
    if not work:
        raise UsageError(
            "nothing to render: the diversity view needs layers with positions (C, H, W); "
            "add --views channel or pick other --layers"
        )
    if args.dry_run:
        if images is not None:
            print(
                f"dataset examples: top {args.top_k or TOP_K} per unit from {len(images[1])} "
                f"file(s) in {str(images[0])!r}, one pass over the folder for all layers"
            )
        return _catalogue_dry_run(model, work, names, shapes, units, dev, Path(args.out))
    assert out is not None
    if work:  # the deepest layer's forward pass is the longest: check it at the largest batch
        deepest = work[-1]
        probe = deepest.config.replace(
            objective=objectives.channel(deepest.layer, deepest.units[0]), batch=1
        )
        _check_memory(model, probe, max(b.images for b in work), dev)
    report = functools.partial(print, "midnite:", file=sys.stderr)
    try:
        with rec.lock_folder(out), _executor(args, model) as executor:
            if images is not None:
                try:
                    found = cat.add_examples(
                        work,
                        images[0],
                        args.top_k or TOP_K,
                        out,
                        executor=executor,
                        progress=not args.no_progress,
                        report=report,
                    )
                except cat.CatalogueError as err:
                    raise UsageError(str(err)) from None
                done = f"{len(found.computed)} layer(s) computed" if found.computed else ""
                fresh = f"{len(found.up_to_date)} up to date" if found.up_to_date else ""
                print(
                    f"dataset examples: {', '.join(x for x in (done, fresh) if x)}; "
                    f"{found.seen} of {found.images} file(s) read"
                    + (f", {len(found.skipped)} unreadable skipped" if found.skipped else "")
                )
            summary = cat.run(
                work,
                out,
                executor=executor,
                progress=not args.no_progress,
                report=report,
            )
    except rec.FolderBusy as err:
        raise BusyError(str(err)) from None
    except OSError as err:
        raise WriteError(
            f"writing results to {str(out)!r} failed ({err.strerror or err}); every file "
            "written is complete. Run the same command again to resume."
        ) from None
    print(
        f"rendered {summary.rendered} of {units} units ({summary.up_to_date} up to date"
        f"{f', {len(summary.failed)} failed' if summary.failed else ''}) in "
        f"{cat.format_seconds(summary.seconds)}; index: {summary.index}"
    )
    if summary.failed:
        first = next(iter(summary.failed.items()))
        message = (
            f"{len(summary.failed)} of {units} units failed, nothing saved for them (first: "
            f"{first[0]}: {first[1]}); a rerun tries them again"
        )
        if any(_is_out_of_memory(e) for e in summary.errors):
            raise MemoryShortage(f"{message}; use a smaller --batch or --size")
        raise RenderError(message)
    return EXIT_OK


@contextlib.contextmanager
def _executor(args: argparse.Namespace, model: torch.nn.Module) -> Iterator[Any]:
    """The catalogue's executor: in-process, or Ray's (``--ray``) for the ``with`` block."""
    from midnite import catalogue as cat

    if args.ray is None:
        yield cat.InProcess(model)
        return
    from midnite import catalogue_ray  # imports Ray itself only when an executor is made

    try:
        executor = catalogue_ray.Ray(args.model, address=args.ray or None, workers=args.workers)
        executor.__enter__()
    except catalogue_ray.RayError as err:  # Ray missing (how to install it), cluster unreachable
        raise UsageError(str(err)) from None
    try:
        yield executor
    finally:
        executor.close()


TOP_K = 9  # dataset examples per unit (--top-k)


def _images_folder(text: str) -> tuple[Path, list[str]]:
    """``--images DIR``: the folder and its files, checked before anything is loaded."""
    from midnite.dataset_examples import list_images

    folder = Path(text)
    if not folder.is_dir():
        raise UsageError(
            f"--images: expected a folder of JPEG/PNG images, got {text!r} (no such folder)"
        )
    names = list_images(folder)
    if not names:
        raise UsageError(f"--images: the folder {text!r} holds no files (expected JPEG/PNG images)")
    return folder, names


def _catalogue_dry_run(model, work, names, shapes, units, dev, out: Path) -> int:
    from midnite import catalogue as cat

    print(f"plan: {len(names)} layer(s), {units} unit renders in {len(work)} batch(es) on {dev}")
    for name in names:
        mine = [b for b in work if b.layer == name]
        views = ", ".join(dict.fromkeys(b.view for b in mine)) or "-"
        count = len({u for b in mine for u in b.units})
        shape = "x".join(map(str, shapes[name]))
        print(
            f"  {name or '(output)'}  [{shape}]  {count} units  views {views}  "
            f"{len(mine)} batch(es)  {sum(len(b.units) for b in mine)} renders"
        )
    left, renders = work, units
    if out.is_dir():
        pending, done = cat.todo(work, out)
        left, renders = [b for b, _ in pending], units - done
        print(f"{done} of {units} unit renders already done in {str(out)!r}")
    if not left:
        print("nothing to render")
        return EXIT_OK
    try:
        guess = cat.estimate(model, left)
    except Exception as err:
        if _is_out_of_memory(err):
            raise MemoryShortage(f"the probe render ran out of memory: {_one_line(err)}") from None
        raise RenderError(
            f"the probe render failed ({type(err).__name__}: {_one_line(err)})"
        ) from None
    print(
        f"expected time of {renders} renders (measured on {dev}: one "
        f"batch per layer for 1 and {1 + cat.PROBE_STEPS} steps): "
        + ", ".join(
            f"{n} worker{'s' if n > 1 else ''} {cat.format_seconds(guess.workers(n))}"
            for n in (1, 8, 64)
        )
        + " (each worker as fast as this process)"
    )
    print("dry run: nothing rendered")
    return EXIT_OK


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


def _load_init(path: str, channels: int) -> torch.Tensor:
    """The ``--init`` image as a ``(C, H, W)`` uint8 tensor (RGB, or gray for 1 channel)."""
    if channels not in (1, 3):
        raise UsageError(
            f"--init needs a model that takes 1 or 3 channels, this one takes {channels}"
        )
    try:
        with Image.open(path) as img:
            img = img.convert("RGB" if channels == 3 else "L")
            array = np.array(img, dtype=np.uint8)
    except (OSError, ValueError) as err:  # missing, unreadable, not an image
        raise UsageError(f"--init {path!r} cannot be read as an image ({_one_line(err)})") from None
    if array.ndim == 2:
        array = array[..., None]
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def _other_runs(out: Path, run: dict, found: rec.Scan, overwrite: bool) -> list[tuple[Path, dict]]:
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


def _remove_units(out: Path, units: list[tuple[Path, dict]]) -> None:
    """Remove the files of ``units`` (``--overwrite``), each record before its PNG."""
    with _deferred_interrupt():
        for path, record in units:
            path.unlink(missing_ok=True)  # the record first: a PNG alone is no unit
            (out / record["image"]["file"]).unlink(missing_ok=True)
            if isinstance(record.get("alpha"), dict):
                (out / record["alpha"]["file"]).unlink(missing_ok=True)
    print(
        f"midnite: --overwrite: removed {len(units)} unit(s) of another run configuration "
        f"from {out}",
        file=sys.stderr,
    )


def _check_memory(model, config: RenderConfig, batch: int, dev: torch.device) -> None:
    """Refuse a render that will not fit in memory, suggesting a --batch that does."""
    available = _available_memory(dev)
    if available is None:
        return
    try:
        need: MemoryEstimate = estimate_memory(model, config.replace(batch=1))
    except Exception as err:
        if _is_out_of_memory(err):
            raise MemoryShortage(
                f"not enough memory on {dev} for even one {config.size[0]}x{config.size[1]} "
                f"image ({_one_line(err)}); use a smaller --size"
            ) from None
        raise RenderError(
            f"the first pass failed ({type(err).__name__}: {_one_line(err)})"
        ) from None
    if need.bytes(batch) <= available:
        return
    fits = need.max_batch(available)
    size = f"{config.size[0]}x{config.size[1]}"
    advice = (
        f"use --batch {fits} (or a smaller --size)"
        if fits
        else f"even --batch 1 needs {_gib(need.bytes(1))}: use a smaller --size"
    )
    raise MemoryShortage(
        f"rendering {batch} {size} image(s) at once needs about {_gib(need.bytes(batch))} "
        f"({_gib(need.per_image)} per image) on {dev}, but {_gib(available)} is available; "
        f"{advice}"
    )


def _cmd_render(args: argparse.Namespace, argv: Sequence[str]) -> int:
    ranges = parse_unit_ranges(args.units)  # the syntax now; the range once the layer is known
    size = parse_size(args.size) if args.size else None
    dev = _device(args.device)
    if args.objective != "class" and args.layer is None:
        raise UsageError(
            f"--objective {args.objective} needs --layer NAME (see 'midnite layers MODEL')"
        )
    layer = args.layer if args.layer is not None else ""
    if args.init_penalty is not None and args.init is None:
        raise UsageError("--init-penalty needs --init PNG (the image to stay near)")
    out = _prepare_out(args.out)
    model = _load(args.model)
    init = None
    if args.init is not None:
        init = _load_init(args.init, input_channels(model))
        given = (int(init.shape[1]), int(init.shape[2]))
        if size is not None and size != given:
            raise UsageError(
                f"--init {args.init!r} is {given[0]}x{given[1]} but --size is {size[0]}x{size[1]}; "
                "resize the image or leave --size out"
            )
        size = given
    size = size or _default_size(args.model)
    table = _layer_table(model, args.model, size, dev)
    shape = _layer_size(table, layer, args.model)
    count = shape[0]
    label = layer or "(output)"
    if ranges[-1][1] >= count:  # checked arithmetically: nothing built for 0-99999999999
        what = {"class": "classes"}.get(args.objective, "units" if len(shape) == 1 else "channels")
        raise UsageError(
            f"units {_format_ranges(ranges)} out of range for layer {label!r} with {count} "
            f"{what} (output shape {'x'.join(map(str, shape))}); accepted: 0-{count - 1}"
        )
    units = parse_units(args.units, count=count)

    make = {
        "channel": lambda u: objectives.channel(layer, u),
        "neuron": lambda u: objectives.neuron(layer, u),
        "class": lambda u: objectives.class_logit(u, layer),
    }[args.objective]

    # the run's settings, recipe values filled in; each batch changes objective, batch and seed
    try:
        config = RenderConfig.resolve(
            model,
            make(units[0]),
            size=size,
            steps=args.steps,
            lr=args.lr,
            device=dev,
            init=init,
            init_penalty=args.init_penalty or 0.0,
            recipe=args.recipe,
            param=args.param,
        )
    except (TypeError, ValueError) as err:
        raise UsageError(str(err)) from None

    # the run configuration a folder holds one of (records.RUN_FIELDS)
    run = {
        "model": args.model,
        "weights": rec.weights_digest(model),
        "size": list(config.size),
        "steps": config.steps,
        "lr": config.lr,
        "seed": args.seed,
        "batch": args.batch,
        "device": str(config.device),
        "recipe": config.to_json()["recipe"],
        "init": None if config.init is None else init_digest(config.init),
        "init_penalty": config.init_penalty,
    }
    try:
        with rec.lock_folder(out):
            return _render_units(args, argv, out, model, config, run, units, make, layer, dev)
    except rec.FolderBusy as err:
        raise BusyError(str(err)) from None


def _render_units(args, argv, out, model, config, run, units, make, layer, dev) -> int:
    """The part of ``render`` that runs while this process holds ``out``'s lock."""
    label = layer or "(output)"
    chosen = args.recipe is not None or args.param is not None

    # only runs from an --init have these in their keys: the keys of other runs stay as they were
    start = {} if run["init"] is None else {k: run[k] for k in ("init", "init_penalty")}

    def key(unit: int, batch: list[int]) -> dict:
        return {
            "model": args.model,
            "weights": run["weights"],
            "layer": layer,
            "objective": args.objective,
            "unit": unit,
            "steps": config.steps,
            "size": list(config.size),
            "lr": config.lr,
            "seed": args.seed,
            "batch": args.batch,
            "batch_units": batch,
            "device": str(config.device),
            **start,
            # only when asked for: the keys of units rendered before these options stay valid
            **({"recipe": run["recipe"], "param": config.param} if chosen else {}),
            **({"canvas": list(config.canvas)} if config.canvas is not None else {}),
        }

    def stem(unit: int) -> str:
        return rec.unit_stem(layer, args.objective, unit)

    rec.clean_temp(out)  # only files of writers that are gone: this run holds the lock
    found = rec.scan(out)
    others = _other_runs(out, run, found, args.overwrite)
    gone = {path.stem for path, _ in others}
    # what the gallery shows, kept up to date as units are written (no rescan per batch)
    shown = {p.stem: (p, r) for p, r in found.units if p.stem not in gone}
    damaged = {bad.stem: bad for bad in found.damaged}
    valid = {name: record for name, (_, record) in shown.items()}
    wanted = {stem(u) for u in units}
    for bad in found.damaged:
        what = "rendering it again" if bad.stem in wanted else "not in --units, left as it is"
        print(f"midnite: damaged unit {bad}; {what}", file=sys.stderr)

    def build_gallery() -> Path:
        return gallery.build(out, found=rec.Scan(list(shown.values()), list(damaged.values())))

    def complete(unit: int, batch: list[int]) -> bool:
        record = valid.get(stem(unit))
        return record is not None and record["key"] == json.loads(
            json.dumps(rec.jsonable(key(unit, batch)))
        )

    plan = rec.plan_batches(units, args.batch)
    todo = []  # (batch, units of it still missing)
    for batch in plan:
        missing = [u for u in batch if not complete(u, batch)]
        if missing:
            todo.append((batch, missing))
    total = sum(len(m) for _, m in todo)
    done = len(units) - total
    progress = not args.no_progress
    if total:
        _check_memory(model, config, max(len(b) for b, _ in todo), dev)
    if others:  # --overwrite, once this run is known to start
        _remove_units(out, others)
    if total == 0:
        page = build_gallery()
        print(f"all {len(units)} units up to date in {out}; gallery: {page}")
        return EXIT_OK
    if progress:
        print(
            f"rendering {total} of {len(units)} units of {label} ({done} up to date) "
            f"in {len(todo)} batch(es) on {dev}",
            file=sys.stderr,
        )
    written = 0
    failed: dict[int, str] = {}
    bar = tqdm(total=total, unit="unit", desc="midnite", disable=not progress, file=sys.stderr)
    try:
        for batch, missing in todo:
            seed = rec.batch_seed(args.seed, batch)
            objs = [make(u) for u in batch]
            batch_config = config.replace(objective=objs, batch=len(batch), seed=seed)
            result = _render_batch(model, batch_config, batch, progress, written, total, dev)
            failures = _failures(result)
            ok = [i for i in range(len(batch)) if i not in failures]
            metrics = _unit_metrics(result.images, ok)
            versions = _versions(result.settings.get("versions", {}))
            with _deferred_interrupt():
                for unit in missing:
                    i = batch.index(unit)
                    if i in failures:  # no finished unit for a non-finite render
                        failed[unit] = failures[i]
                        print(
                            f"midnite: unit {unit} ({stem(unit)}) failed, nothing saved: "
                            f"{failures[i]}",
                            file=sys.stderr,
                        )
                        bar.update(1)
                        continue
                    data = png_bytes(result.images[i])
                    name = stem(unit)
                    rec.atomic_write_bytes(out / f"{name}.png", data)
                    alpha = alpha_png(result.images[i], result.alpha[i])
                    if alpha is not None:  # the record, written last, lists it
                        rec.atomic_write_bytes(out / f"{name}_alpha.png", alpha[0])
                    record = _record(
                        args,
                        command=argv,
                        unit=unit,
                        batch=batch,
                        seed=seed,
                        result=result,
                        png=(f"{name}.png", data),
                        alpha=None if alpha is None else (f"{name}_alpha.png", *alpha),
                        key=key(unit, batch),
                        run=run,
                        objective=make(unit),
                        metrics=metrics[i],
                        versions=versions,
                    )
                    path = rec.write_json(out / f"{name}.json", record)
                    shown[name] = (path, cast(dict, rec.jsonable(record)))
                    damaged.pop(name, None)
                    written += 1
                    bar.update(1)
                build_gallery()
    except KeyboardInterrupt:
        bar.close()
        with contextlib.suppress(Exception):
            build_gallery()
        print(
            f"midnite: interrupted; {written} of {total} units written to {out}, the rest not "
            "started or discarded. Run the same command again to resume.",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except OSError as err:
        bar.close()
        raise WriteError(
            f"writing results to {str(out)!r} failed ({err.strerror or err}); {written} of "
            f"{total} units written, every file complete. Run the same command again to resume."
        ) from None
    except UsageError:
        bar.close()
        with contextlib.suppress(Exception):
            build_gallery()
        raise
    bar.close()
    page = build_gallery()
    failed_note = f", {len(failed)} failed" if failed else ""
    print(f"rendered {written} units ({done} up to date{failed_note}) to {out}; gallery: {page}")
    if failed:
        names = ", ".join(map(str, sorted(failed)))
        raise RenderError(
            f"{len(failed)} of {total} units failed (non-finite), nothing saved for them: "
            f"{names}; a rerun tries them again, with the same settings to the same end "
            "(try a smaller --lr)"
        )
    return EXIT_OK


def _failures(result) -> dict[int, str]:
    """The engine's ``result.failed``, plus any image or alpha map not finite all the same."""
    failures = dict(result.failed)
    finite = torch.isfinite(result.images).flatten(1).all(1).tolist()
    alpha = torch.isfinite(result.alpha).flatten(1).all(1).tolist()
    for i, (fine, fine_alpha) in enumerate(zip(finite, alpha, strict=True)):
        if not fine and i not in failures:
            failures[i] = "the image holds non-finite values"
        elif not fine_alpha and i not in failures:
            failures[i] = "the alpha map holds non-finite values"
    return failures


def _render_batch(model, config: RenderConfig, batch, progress, written, total, dev):
    """``render_config`` with its failures as one-line errors (memory: status 4, else 1)."""
    units = f"{batch[0]}-{batch[-1]}" if len(batch) > 1 else str(batch[0])
    try:
        with warnings.catch_warnings():  # failed images are reported per unit instead
            warnings.filterwarnings(
                "ignore", message=r"render: \d+ of \d+ image\(s\) failed", category=RuntimeWarning
            )
            return render_config(model, config, progress=progress)
    except Exception as err:  # KeyboardInterrupt is no Exception: it goes on up
        if os.environ.get("MIDNITE_TRACEBACK"):
            raise
        state = f"{written} of {total} units written, every file complete"
        if _is_out_of_memory(err):
            raise MemoryShortage(
                f"out of memory rendering units {units} ({len(batch)} image(s) of "
                f"{config.size[0]}x{config.size[1]} on {dev}): {_one_line(err)}; {state}. Use a "
                "smaller --batch or --size"
            ) from None
        raise RenderError(
            f"rendering units {units} failed ({type(err).__name__}: {_one_line(err)}); {state}"
        ) from None


def _record(
    args: argparse.Namespace,
    *,
    command: Sequence[str],
    unit: int,
    batch: list[int],
    seed: int,
    result,
    png: tuple[str, bytes],
    alpha: tuple[str, bytes, float] | None = None,
    key: dict,
    run: dict,
    objective: object,
    metrics: dict,
    versions: dict,
) -> dict:
    """The JSON record of ``unit``, image ``batch.index(unit)`` of the batch's ``result``.

    ``settings`` is the batch's ``RenderConfig.to_json()`` (``result.settings``); ``command``
    the arguments after ``midnite``; ``run`` the run configuration (``records.RUN_FIELDS``);
    ``alpha`` the file name, bytes and scale of the unit's alpha map (``_alpha_png``).
    """
    i = batch.index(unit)
    extra = {}
    if alpha is not None:
        extra["alpha"] = {
            "file": alpha[0],
            "sha256": hashlib.sha256(alpha[1]).hexdigest(),
            "scale": alpha[2],
            "meaning": "RGBA: the image, alpha = |d loss/d pixel| summed over steps / scale",
        }
    return {
        "format": rec.FORMAT,
        "model": args.model,
        "layer": key["layer"],
        "unit": unit,
        "objective": args.objective,
        "objective_repr": repr(objective),
        "key": key,
        "run": run,
        "seed": args.seed,
        "batch": {"units": batch, "position": i, "seed": seed},
        "settings": result.settings,
        "versions": versions,
        "activation": {"start": float(result.start[i]), "final": float(result.final[i])},
        "history": result.history[:, i].tolist(),
        "metrics": metrics,
        "image": {
            "file": png[0],
            "sha256": hashlib.sha256(png[1]).hexdigest(),
            "height": int(result.images.shape[-2]),
            "width": int(result.images.shape[-1]),
        },
        **extra,
        "seconds": result.seconds,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": ["midnite", *command],
    }


def _unit_metrics(images, ok: list[int]) -> list[dict]:
    """``midnite.metrics.summary`` per image, as one dict per image (those in ``ok`` only)."""
    metrics: list[dict] = [{} for _ in range(images.shape[0])]
    if not ok:
        return metrics
    try:
        per = summary(images[ok], per_image=True)
    except ValueError as err:
        return [{"error": str(err)} for _ in metrics]
    for j, i in enumerate(ok):
        metrics[i] = {k: v[j] for k, v in per.items() if isinstance(v, list)}
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``midnite`` command with ``argv`` (default ``sys.argv[1:]``); returns the status."""
    parser = _build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit as exit_:  # --help, --version
            return int(exit_.code or 0)
        if args.command is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        if args.command == "render":
            return _cmd_render(args, argv)
        if args.command == "catalogue":
            return _cmd_catalogue(args)
        return {"layers": _cmd_layers, "gallery": _cmd_gallery}[args.command](args)
    except UsageError as err:
        message = " ".join(str(err).split())
        print(f"midnite: error: {message}", file=sys.stderr)
        return err.status
    except KeyboardInterrupt:
        print("midnite: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:  # a bug, or a failure nobody foresaw: still one line
        if os.environ.get("MIDNITE_TRACEBACK"):
            raise
        status = EXIT_MEMORY if _is_out_of_memory(err) else EXIT_FAILED
        where = "".join(traceback.format_exception_only(type(err), err)[-1:]).strip()
        print(
            f"midnite: error: {_one_line(where)} (unexpected; MIDNITE_TRACEBACK=1 shows where)",
            file=sys.stderr,
        )
        return status
