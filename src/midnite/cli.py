"""The ``midnite`` command: ``layers``, ``render`` (resumable, batched) and ``gallery``.

A thin layer over ``midnite.models.load``, ``midnite.layers`` and ``RenderConfig`` +
``render_config`` (one config per run, changed per batch); files are written by
``midnite.records`` (atomic, resumable) and ``midnite.gallery``. Mistakes in the
command line print one line on stderr and exit with status 2; Ctrl-C exits with 130 after the
current batch's files are all written or none is.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import difflib
import functools
import hashlib
import importlib.metadata
import io
import re
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch
from PIL import Image
from tqdm.auto import tqdm

from midnite import gallery, models
from midnite import records as rec
from midnite.engine import RenderConfig, layers, objectives, render_config, resolve_device
from midnite.engine.checks import check_int, check_positive_int, check_real
from midnite.engine.hooks import parse_layer
from midnite.metrics import summary
from midnite.plot import to_uint8

__all__ = ["UsageError", "WriteError", "main", "parse_size", "parse_units"]

OBJECTIVES = ("channel", "neuron", "class")
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A mistake in the command line: printed as one line, exit status 2 (``status``)."""

    status = EXIT_USAGE


class WriteError(UsageError):
    """Results could not be written midway (disk full, folder removed): one line, status 1."""

    status = 1


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump) and exit status 2."""

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(f"{message} (see '{self.prog} --help')")


# parsing ------------------------------------------------------------------------------------

_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")
_SIZE = re.compile(r"^\s*(\d+)\s*(?:[xX×]\s*(\d+)\s*)?$")


def parse_units(text: str) -> list[int]:
    """``"0-15"``, ``"7"`` or ``"0-3,8,10-12"`` as a sorted list of unique unit indices."""
    units: set[int] = set()
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
        units.update(range(first, last + 1))
    return sorted(units)


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


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="midnite",
        description="Feature visualization for PyTorch models from the command line.",
        epilog="MODEL: a built-in name (efficientnet-lite0, -lite1, -lite2), torchvision:NAME, "
        "timm:NAME or path/to/file.py:function returning an nn.Module.",
    )
    parser.add_argument("--version", action="version", version=f"midnite {_own_version()}")
    sub = parser.add_subparsers(dest="command", metavar="{layers,render,gallery}")

    lay = sub.add_parser("layers", help="list the addressable layers with output shapes")
    lay.add_argument("model", metavar="MODEL")
    lay.add_argument(
        "--size", metavar="HxW", help="input HxW (default: the model's native size, else 224)"
    )
    lay.add_argument("--device", metavar="D", help="torch device, e.g. cpu or cuda:0 (default cpu)")

    ren = sub.add_parser(
        "render",
        help="render units of a layer into a folder, resumably",
        description="Render each unit into DIR as a PNG plus a JSON record, in batches, and "
        "(re)build DIR/index.html. Units are batched by unit // B and each batch gets a seed "
        "from S and its units, so running the same command again renders exactly the missing "
        "units (and any whose settings changed) and leaves finished files untouched.",
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
    ren.add_argument(
        "--steps",
        metavar="N",
        type=_number("--steps", int, check_positive_int),
        default=None,
        help="optimizer steps (default: the render recipe's, see midnite.engine.recipes)",
    )
    ren.add_argument(
        "--size", metavar="HxW", help="image HxW (default: the model's native size, else 224)"
    )
    ren.add_argument(
        "--seed",
        metavar="S",
        type=_number("--seed", int, check_int),
        default=0,
        help="run seed (default 0)",
    )
    ren.add_argument(
        "--batch",
        metavar="B",
        type=_number("--batch", int, check_positive_int),
        default=8,
        help="units rendered together (default 8)",
    )
    ren.add_argument(
        "--lr",
        metavar="LR",
        type=_number("--lr", float, functools.partial(check_real, gt=0)),
        default=None,
        help="Adam step (default: the render recipe's)",
    )
    ren.add_argument("--device", metavar="D", help="torch device, e.g. cpu or cuda:0 (default cpu)")
    ren.add_argument(
        "--out", metavar="DIR", required=True, help="output folder (created if missing)"
    )
    ren.add_argument("--no-progress", action="store_true", help="no progress bars")

    gal = sub.add_parser("gallery", help="(re)build index.html for a folder of results")
    gal.add_argument("folder", metavar="DIR")
    return parser


def _own_version() -> str:
    try:
        return importlib.metadata.version("midnite")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


# checks -----------------------------------------------------------------------------------


def _device(spec: str | None) -> torch.device:
    try:
        dev = resolve_device(spec)
    except (TypeError, ValueError):
        raise UsageError(
            f"unknown device {spec!r}; accepted: cpu, cuda, cuda:N, mps (where available)"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {spec!r} asked for, but CUDA is not available here; use cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise UsageError(
            f"device {spec!r} does not exist; this machine has {torch.cuda.device_count()} "
            "CUDA device(s)"
        )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"device {spec!r} asked for, but MPS is not available here; use cpu")
    return dev


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


def _format_units(units: Sequence[int]) -> str:
    return f"{units[0]}-{units[-1]}" if len(units) > 1 else str(units[0])


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


def _png_bytes(image) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buf, format="PNG")
    return buf.getvalue()


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
    count = len(rec.read_records(folder))
    if count == 0:
        raise UsageError(
            f"no midnite results (PNG + JSON record) in {args.folder!r}; "
            "run 'midnite render ... --out DIR' first"
        )
    try:
        page = gallery.build(folder)
    except OSError as err:
        raise UsageError(
            f"cannot write the gallery into {args.folder!r} ({err.strerror})"
        ) from None
    print(f"{count} units: {page}")
    return 0


def _cmd_render(args: argparse.Namespace, argv: Sequence[str]) -> int:
    units = parse_units(args.units)
    size = parse_size(args.size) if args.size else None
    dev = _device(args.device)
    if args.objective != "class" and args.layer is None:
        raise UsageError(
            f"--objective {args.objective} needs --layer NAME (see 'midnite layers MODEL')"
        )
    layer = args.layer if args.layer is not None else ""
    out = _prepare_out(args.out)
    model = _load(args.model)
    size = size or _default_size(args.model)
    table = _layer_table(model, args.model, size, dev)
    shape = _layer_size(table, layer, args.model)
    count = shape[0]
    label = layer or "(output)"
    if units[-1] >= count:
        what = {"class": "classes"}.get(args.objective, "units" if len(shape) == 1 else "channels")
        raise UsageError(
            f"units {_format_units(units)} out of range for layer {label!r} with {count} {what} "
            f"(output shape {'x'.join(map(str, shape))}); accepted: 0-{count - 1}"
        )

    make = {
        "channel": lambda u: objectives.channel(layer, u),
        "neuron": lambda u: objectives.neuron(layer, u),
        "class": lambda u: objectives.class_logit(u, layer),
    }[args.objective]

    # the run's settings, recipe values filled in; each batch changes objective, batch and seed
    try:
        config = RenderConfig.resolve(
            model, make(units[0]), size=size, steps=args.steps, lr=args.lr, device=dev
        )
    except (TypeError, ValueError) as err:
        raise UsageError(str(err)) from None

    def key(unit: int, batch: list[int]) -> dict:
        return {
            "model": args.model,
            "layer": layer,
            "objective": args.objective,
            "unit": unit,
            "steps": config.steps,
            "size": list(config.size),
            "lr": config.lr,
            "seed": args.seed,
            "batch_units": batch,
            "device": str(config.device),
        }

    def stem(unit: int) -> str:
        return rec.unit_stem(layer, args.objective, unit)

    rec.clean_temp(out)
    plan = rec.plan_batches(units, args.batch)
    todo = []  # (batch, units of it still missing)
    for batch in plan:
        missing = [u for u in batch if not rec.is_complete(out, stem(u), key(u, batch))]
        if missing:
            todo.append((batch, missing))
    total = sum(len(m) for _, m in todo)
    done = len(units) - total
    progress = not args.no_progress
    if total == 0:
        page = gallery.build(out)
        print(f"all {len(units)} units up to date in {out}; gallery: {page}")
        return 0
    if progress:
        print(
            f"rendering {total} of {len(units)} units of {label} ({done} up to date) "
            f"in {len(todo)} batch(es) on {dev}",
            file=sys.stderr,
        )
    written = 0
    bar = tqdm(total=total, unit="unit", desc="midnite", disable=not progress, file=sys.stderr)
    try:
        for batch, missing in todo:
            seed = rec.batch_seed(args.seed, batch)
            objs = [make(u) for u in batch]
            batch_config = config.replace(objective=objs, batch=len(batch), seed=seed)
            result = render_config(model, batch_config, progress=progress)
            try:
                metrics = _unit_metrics(result.images)
            except ValueError as err:
                metrics = [{"error": str(err)}] * len(batch)
            versions = _versions(result.settings.get("versions", {}))
            with _deferred_interrupt():
                for unit in missing:
                    data = _png_bytes(result.images[batch.index(unit)])
                    name = stem(unit)
                    rec.atomic_write_bytes(out / f"{name}.png", data)
                    record = _record(
                        args,
                        command=argv,
                        unit=unit,
                        batch=batch,
                        seed=seed,
                        result=result,
                        png=(f"{name}.png", data),
                        key=key(unit, batch),
                        objective=make(unit),
                        metrics=metrics[batch.index(unit)],
                        versions=versions,
                    )
                    rec.write_json(out / f"{name}.json", record)
                    written += 1
                    bar.update(1)
                gallery.build(out)
    except KeyboardInterrupt:
        bar.close()
        with contextlib.suppress(Exception):
            gallery.build(out)
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
    bar.close()
    page = gallery.build(out)
    print(f"rendered {written} units ({done} up to date) to {out}; gallery: {page}")
    return 0


def _record(
    args: argparse.Namespace,
    *,
    command: Sequence[str],
    unit: int,
    batch: list[int],
    seed: int,
    result,
    png: tuple[str, bytes],
    key: dict,
    objective: object,
    metrics: dict,
    versions: dict,
) -> dict:
    """The JSON record of ``unit``, image ``batch.index(unit)`` of the batch's ``result``.

    ``settings`` is the batch's ``RenderConfig.to_json()`` (``result.settings``); ``command``
    the arguments after ``midnite``.
    """
    i = batch.index(unit)
    return {
        "format": rec.FORMAT,
        "model": args.model,
        "layer": key["layer"],
        "unit": unit,
        "objective": args.objective,
        "objective_repr": repr(objective),
        "key": key,
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
        "seconds": result.seconds,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": ["midnite", *command],
    }


def _unit_metrics(images) -> list[dict]:
    """``midnite.metrics.summary`` per image, as one dict per image."""
    per = summary(images, per_image=True)
    return [{k: v[i] for k, v in per.items()} for i in range(images.shape[0])]


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
        return {"layers": _cmd_layers, "gallery": _cmd_gallery}[args.command](args)
    except UsageError as err:
        message = " ".join(str(err).split())
        print(f"midnite: error: {message}", file=sys.stderr)
        return err.status
    except KeyboardInterrupt:
        print("midnite: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
