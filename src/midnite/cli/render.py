"""``midnite render``: units of one layer into a flat folder, resumably (``jobs.run``).

Files: ``DIR/<layer>_<view>_<unit:04d>.png``, ``_alpha.png`` and ``.json`` (the ``FLAT``
layout), and ``DIR/index.html`` rebuilt after each batch. ``--objective channel|neuron|class``
are views of the registry, so the same unit, view and settings give the same bytes as
``midnite catalogue``.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import sys
from typing import Any

import torch

from midnite import images
from midnite.cli.common import default_size, device, layer_table, load, prepare_out
from midnite.cli.folders import check_for
from midnite.cli.options import (
    EPILOG,
    add_recipe_options,
    add_run_options,
    format_ranges,
    number,
    optional_size,
    parse_unit_ranges,
    parse_units,
    wrap,
)
from midnite.engine.checks import check_real
from midnite.engine.hooks import input_channels, parse_layer
from midnite.errors import BusyError, RenderError, UsageError
from midnite.jobs import FLAT, InProcess, Settings, check_memory, plan
from midnite.jobs import run as run_jobs
from midnite.jobs.memory import one_line
from midnite.store import records as rec

__all__ = ["VIEWS", "register", "run"]

VIEWS = ("channel", "neuron", "class")  # the registered views --objective offers


def register(sub: Any) -> None:
    """Add the ``render`` sub-parser to ``sub`` (argparse's subparsers)."""
    ren = sub.add_parser(
        "render",
        help="render units of a layer into a folder, resumably",
        description=wrap(
            "Render each unit into DIR as a PNG, an RGBA PNG whose alpha is the unit's attribution "
            "map (<unit>_alpha.png) and a JSON record, in batches, and "
            "(re)build DIR/index.html. Units are batched by unit // B and each batch gets a seed "
            "from S, the layer, the objective and its units (as in 'midnite catalogue'), so "
            "running the same command again renders exactly the missing "
            "(or damaged) units and leaves finished files untouched. A folder holds the units of "
            "one run configuration (MODEL and its weights, --size, --steps, --lr, --seed, --batch, "
            "--device); more units or other layers of it can be added at any time. One run writes "
            "into a folder at a time. A unit whose render turns non-finite is not saved."
        ),
        epilog=EPILOG,
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
        choices=VIEWS,
        default="channel",
        help="channel mean, centre neuron or class logit (default channel)",
    )
    add_run_options(ren, batch_help="units rendered together (default 8)")
    ren.add_argument(
        "--lr",
        metavar="LR",
        type=number("--lr", float, functools.partial(check_real, gt=0)),
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
        type=number("--init-penalty", float, functools.partial(check_real, ge=0)),
        default=None,
        help="with --init: add L x the mean squared pixel distance to it to the loss, keeping "
        "the result near it (default 0: the image only starts there)",
    )
    add_recipe_options(
        ren,
        default="class for --objective class, transformer for a vision transformer's token "
        "layer, else feature",
    )
    ren.add_argument(
        "--overwrite",
        action="store_true",
        help="when DIR holds units of another run configuration, remove them all (also those "
        "outside --units) and render; without it such a run is refused",
    )


def layer_shape(table, spec: str, model_name: str):
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


def _load_init(path: str, channels: int) -> torch.Tensor:
    """The ``--init`` image as a ``(C, H, W)`` uint8 tensor (RGB, or gray for 1 channel)."""
    if channels not in (1, 3):
        raise UsageError(
            f"--init needs a model that takes 1 or 3 channels, this one takes {channels}"
        )
    try:
        image = images.load(path, channels=channels)
    except UsageError as err:  # missing, unreadable, not an image
        raise UsageError(f"--init {path!r} cannot be read as an image ({one_line(err)})") from None
    return (image * 255).round().to(torch.uint8)  # the file's own 8-bit values


def _units(args: argparse.Namespace, layer: str, shape: tuple[int, ...]) -> list[int]:
    """``--units`` checked against the layer's count before anything is built."""
    ranges = parse_unit_ranges(args.units)
    count = shape[0]
    if ranges[-1][1] >= count:  # checked arithmetically: nothing built for 0-99999999999
        what = {"class": "classes"}.get(args.objective, "units" if len(shape) == 1 else "channels")
        raise UsageError(
            f"units {format_ranges(ranges)} out of range for layer {layer or '(output)'!r} with "
            f"{count} {what} (output shape {'x'.join(map(str, shape))}); accepted: 0-{count - 1}"
        )
    return parse_units(args.units, count=count)


def _settings(args: argparse.Namespace, model: torch.nn.Module, size, dev) -> Settings:
    """The run's settings; ``--init`` sets the size (a given ``--size`` must match it)."""
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
    return Settings(
        size=size or default_size(args.model),
        steps=args.steps,
        lr=args.lr,
        batch=args.batch,
        seed=args.seed,
        device=str(dev),
        recipe=args.recipe,
        param=args.param,
        init=init,
        init_penalty=args.init_penalty or 0.0,
    )


def run(args: argparse.Namespace) -> int:
    """``midnite render``: check everything, plan the units, run them (``jobs.run``)."""
    parse_unit_ranges(args.units)  # the syntax now; the range once the layer is known
    size = optional_size(args.size)
    dev = device(args.device)
    if args.objective != "class" and args.layer is None:
        raise UsageError(
            f"--objective {args.objective} needs --layer NAME (see 'midnite layers MODEL')"
        )
    layer = args.layer if args.layer is not None else ""
    if args.init_penalty is not None and args.init is None:
        raise UsageError("--init-penalty needs --init PNG (the image to stay near)")
    out = prepare_out(args.out)
    check_for(out, "render")
    model = load(args.model)
    settings = _settings(args, model, size, dev)
    table = layer_table(model, args.model, settings.size, dev)
    shape = layer_shape(table, layer, args.model)
    units = _units(args, layer, shape)
    work = plan(
        model, args.model, [layer], {layer: tuple(shape)}, settings=settings,
        views=[args.objective], units=units, layout=FLAT,
    )  # fmt: skip
    progress = not args.no_progress
    say = functools.partial(print, "midnite:", file=sys.stderr)

    def check(left: list) -> None:  # before anything is removed or written
        check_memory(model, left[0][0].probe(), max(b.images for b, _ in left), dev)
        if progress:
            total = sum(len(m) for _, m in left)
            print(
                f"rendering {total} of {len(units)} units of {layer or '(output)'} "
                f"({len(units) - total} up to date) in {len(left)} batch(es) on {dev}",
                file=sys.stderr,
            )

    try:
        with rec.lock_folder(out):
            summary = run_jobs(
                work, out, executor=InProcess(model), progress=progress,
                report=say, check=check, stop_on_error=True, overwrite=args.overwrite,
                command=args.argv,
            )  # fmt: skip
    except rec.FolderBusy as err:
        raise BusyError(str(err)) from None
    if summary.total == 0:
        print(f"all {len(units)} units up to date in {out}; gallery: {summary.index}")
        return 0
    failed = sorted(summary.failed_units)
    note = f", {len(failed)} failed" if failed else ""
    print(
        f"rendered {summary.rendered} units ({summary.up_to_date} up to date{note}) to {out}; "
        f"gallery: {summary.index}"
    )
    if failed:
        raise RenderError(
            f"{len(failed)} of {summary.total} units failed (non-finite), nothing saved for them: "
            f"{', '.join(map(str, failed))}; a rerun tries them again, with the same settings to "
            "the same end (try a smaller --lr)"
        )
    return 0
