"""``midnite concepts``: learn a layer's concept dictionary from a folder of images, render every
concept (resumably, through ``jobs.run``) and write its pages.

Files, in ``DIR/<layer>/``: ``concepts.pt`` (the dictionary, ``store.concepts``),
``concepts_fit.json`` (what it was fitted from: a rerun with the same settings loads it and
refits nothing), ``concept_<digest>[_feature]_<i:04d>.png`` with records (the renders; a rerun
renders nothing, a refit renders again), ``concept_examples/`` (top crops and heatmaps),
``concepts.html`` and ``concept_<i:04d>.html``.
"""

from __future__ import annotations

import argparse
import functools
import sys
from typing import Any

from midnite.analysis import concepts as C
from midnite.cli.catalogue import run_executor
from midnite.cli.common import default_size, device, layer_table, load, prepare_out
from midnite.cli.options import (
    EPILOG,
    add_ray_options,
    add_run_options,
    check_ray_options,
    number,
    parse_size,
    wrap,
)
from midnite.cli.render import layer_shape
from midnite.engine.checks import check_positive_int
from midnite.errors import BusyError, RenderError
from midnite.jobs import Settings
from midnite.jobs import concepts as J
from midnite.store import records as rec

__all__ = ["FIT_FILE", "register", "run"]

FIT_FILE = J.FIT_FILE


def register(sub: Any) -> None:
    """Add the ``concepts`` sub-parser to ``sub`` (argparse's subparsers)."""
    con = sub.add_parser(
        "concepts",
        help="learn a layer's concepts from images, render them, write their pages",
        description=wrap(
            "Learn N concepts (directions in the layer's channel space) from the activations of "
            "the images in DIR (NMF for non-negative layers, a TopK SAE for signed ones), save "
            "the dictionary as OUT/<layer>/concepts.pt, write each concept's top dataset crops "
            "and heatmaps, render each concept (the natural recipe, and the feature recipe as a "
            "second view) and write OUT/<layer>/concepts.html. Running the same command again "
            "loads the dictionary and renders only what is missing."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    con.add_argument("model", metavar="MODEL")
    con.add_argument("--layer", metavar="NAME", required=True, help="dotted module name")
    con.add_argument("--images", metavar="DIR", required=True, help="folder of images")
    con.add_argument(
        "--n", metavar="N", required=True, type=number("--n", int, check_positive_int),
        help="number of concepts",
    )  # fmt: skip
    con.add_argument(
        "--method", choices=C.METHODS, default=None,
        help="nmf or sae (default: nmf for non-negative activations, else sae)",
    )  # fmt: skip
    con.add_argument(
        "--recipe", choices=J.RECIPES, default=None,
        help="render only this recipe's view (default: natural and feature)",
    )  # fmt: skip
    con.add_argument(
        "--examples", metavar="K", type=number("--examples", int, check_positive_int), default=6,
        help="top dataset images shown per concept (default 6)",
    )  # fmt: skip
    add_run_options(con, batch_help="concepts rendered together (default 8)")
    add_ray_options(con, what="collect the activations (sharded over the workers) and render")


def run(args: argparse.Namespace) -> int:
    """``midnite concepts``: fit or load, write examples, render the concepts, write pages."""
    check_ray_options(args)
    size = parse_size(args.size) if args.size else None
    dev = device(args.device)
    out = prepare_out(args.out)
    model = load(args.model)
    size = size or default_size(args.model)
    layer_shape(layer_table(model, args.model, size, dev), args.layer, args.model)
    progress = not args.no_progress
    say = functools.partial(print, "midnite:", file=sys.stderr)
    settings = Settings(
        size=size, steps=args.steps, batch=args.batch, seed=args.seed, device=str(dev)
    )
    recipes = (args.recipe,) if args.recipe else J.RECIPES
    batches = len(recipes) * -(-args.n // args.batch)  # for the pool's rule (cli.catalogue)
    try:
        with rec.lock_folder(out), run_executor(args, model, dev, batches) as executor:
            concepts, fitted = J.dictionary(
                executor, model, args.model, args.layer, args.images, args.n, out,
                method=args.method, seed=args.seed, size=size, progress=progress, report=say,
            )  # fmt: skip
            examples = J.examples_of(concepts, args.images, out, args.examples, fitted)
            summary = J.render_concepts(
                concepts, args.model, out, settings, recipes=recipes, examples=examples,
                executor=executor, progress=progress, report=say,
            )  # fmt: skip
    except rec.FolderBusy as err:
        raise BusyError(str(err)) from None
    failed = sorted(summary.failed_units)
    what = "fitted" if fitted else "loaded"
    print(
        f"{what} {concepts.n} concepts of {args.layer} (r2 {concepts.quality.get('r2', 0):.3f}); "
        f"rendered {summary.rendered} ({summary.up_to_date} up to date) to {out}; "
        f"pages: {summary.index}"
    )
    if failed:
        raise RenderError(
            f"{len(failed)} concept renders failed (non-finite), nothing saved for them: "
            f"{', '.join(map(str, failed))}; a rerun tries them again"
        )
    return 0
