"""``midnite catalogue``: every unit of many layers, in several views, resumably.

Plans with ``midnite.jobs`` (layers, views, ``--recipe``/``--param``, ``LAYERS`` layout: each
unit's PNG, alpha map and record), says what it is about to do (for a long run with the time a
quick probe expects here), computes dataset examples (``--images``), then runs the plan with
the one runner (``jobs.run``) in a pool of worker processes (``jobs.pool``: ``--workers``, by
default one per CPU for a run of 4 batches per CPU or more), in this process, or on Ray
(``--ray``, ``jobs.ray.RayExecutor``), each worker with ``--threads`` torch threads (default 1);
``--dry-run`` prints the plan and its expected time. The site is up to date after every batch.
``--concepts N`` (with ``--images``) also fits or loads each ``(C, H, W)`` layer's dictionary
(``jobs.concepts.dictionary``, the pass on the same executor), writes its examples and renders
its concepts in the same ``jobs.run`` as the units; the pages callback builds the site and each
layer's concept pages and ``concepts_summary.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from midnite.cli.common import default_size, device, layer_table, load, prepare_out
from midnite.cli.dry_run import dry_run, probe_failed, workers_used
from midnite.cli.folders import check_for
from midnite.cli.options import (
    EPILOG,
    add_ray_options,
    add_recipe_options,
    add_run_options,
    check_ray_options,
    number,
    optional_size,
    parse_unit_ranges,
    parse_units,
    wrap,
)
from midnite.engine.checks import check_positive_int
from midnite.errors import BusyError, MemoryShortage, RenderError, UsageError, WriteError
from midnite.jobs import (
    Batch,
    InProcess,
    Settings,
    add_examples,
    check_memory,
    estimate,
    format_seconds,
    plan,
    select_layers,
    todo,
)
from midnite.jobs import concepts as J
from midnite.jobs import run as run_jobs
from midnite.jobs.estimate import process_age
from midnite.jobs.executors import torch_threads
from midnite.jobs.memory import is_out_of_memory
from midnite.jobs.pages import catalogue_pages
from midnite.jobs.pool import PoolExecutor
from midnite.jobs.trust import NEGATIVE, add_trust, ray_trust
from midnite.jobs.views import captions
from midnite.pages.catalogue import build_site
from midnite.store import records as rec
from midnite.store.site_files import read_plan

__all__ = ["TOP_K", "register", "run", "run_executor"]

TOP_K = 9  # dataset examples per unit (--top-k)
CONCEPT_EXAMPLES = 6  # top images per concept (--top-k, when given, for both)
# a run of at least this many renders is timed by a quick probe before it starts, and says so
LONG_RUN = 64
QUICK_LAYERS, QUICK_STEPS = 3, 4  # the quick probe: layers timed, steps per probe render


def register(sub: Any) -> None:
    """Add the ``catalogue`` sub-parser to ``sub`` (argparse's subparsers)."""
    cat = sub.add_parser(
        "catalogue",
        help="render every unit of many layers, in several views, resumably",
        description=wrap(
            "Render a catalogue into DIR: for each layer (default: the outputs of the model's "
            "repeated blocks, i.e. the children of its largest group of nn.Sequential/ModuleList "
            "blocks, with (C, H, W) outputs, plus the output when it reads as classes) and each "
            "view, DIR/<layer>/<view>_<unit>.png + .json, a gallery per layer and DIR/index.html. "
            "Records are keyed by the weights' digest, every setting and the midnite version: a "
            "rerun renders only what is missing, changed or damaged. Views: channel (maximize the "
            "channel), negative (minimize it), diversity (4 images of a unit that differ, one "
            "strip; not for flat layers)."
        ),
        epilog=EPILOG,
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
        help="comma list of channel, negative, diversity (default channel; each view is a "
        "pass over every unit)",
    )
    add_run_options(
        cat,
        batch_help="units rendered together (default 8; a diversity batch is one unit's images)",
        auto_steps=True,
    )
    add_recipe_options(cat, default="feature; class for a class output; transformer for ViT tokens")
    cat.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan and its expected time (from a short probe render); render nothing",
    )
    add_ray_options(cat)
    _add_image_options(cat)


def _add_image_options(cat: argparse.ArgumentParser) -> None:
    """``--images`` and what it feeds: ``--top-k``, ``--concepts``, ``--trust``."""
    cat.add_argument(
        "--images",
        metavar="DIR",
        help="a folder tree of JPEG/PNG photos (any sizes): each unit's page shows the --top-k "
        "that excite it most, with the activating region marked (one pass over the folder; "
        "unreadable files are skipped and counted)",
    )
    cat.add_argument(
        "--concepts",
        metavar="N",
        type=number("--concepts", int, check_positive_int),
        default=None,
        help="with --images: also learn N concepts of every catalogued layer with a (C, H, W) "
        "output from the images (NMF; a TopK SAE for a layer with negative activations), write "
        "their top examples and render them (natural recipe) with their pages "
        "(DIR/<layer>/concepts.html); resumable like the units",
    )
    cat.add_argument(
        "--concepts-feature",
        action="store_true",
        help="with --concepts: render each concept with the feature recipe too",
    )
    cat.add_argument(
        "--trust",
        action="store_true",
        help="with --images: score how far each unit's and concept's picture can be trusted "
        "(path agreement and a 2-alternative score judged by --judge) from the dataset examples "
        "already saved; also renders the negative view beside channel (its pictures are the "
        "min references); writes DIR/<layer>/trust.json (concepts: concept_trust.json), shown "
        "on the pages; on the Ray workers with --ray (one task per layer)",
    )
    cat.add_argument(
        "--judge",
        metavar="MODEL",
        default=None,
        help="with --trust: the network that judges similarity; must differ from MODEL "
        "(default efficientnet-lite2, or efficientnet-lite0 when MODEL is efficientnet-lite2)",
    )
    cat.add_argument(
        "--top-k",
        metavar="K",
        type=number("--top-k", int, check_positive_int),
        default=None,
        help="dataset examples per unit, with --images (default 9)",
    )


def _images_folder(text: str) -> tuple[Path, list[str]]:
    """``--images DIR``: the folder and its files, checked before anything is loaded."""
    from midnite.images import list_images

    folder = Path(text)
    if not folder.is_dir():
        raise UsageError(
            f"--images: expected a folder of JPEG/PNG images, got {text!r} (no such folder)"
        )
    names = list_images(folder)
    if not names:
        raise UsageError(f"--images: the folder {text!r} holds no files (expected JPEG/PNG images)")
    return folder, names


@contextlib.contextmanager
def run_executor(
    args: argparse.Namespace,
    model: torch.nn.Module,
    device: torch.device | None = None,
    batches: int | None = None,
    *,
    on_cpu: bool | None = None,
) -> Iterator[Any]:
    """The executor for the ``with`` block, closed after: Ray's (``--ray``), else a pool of
    worker processes (``jobs.pool.pool_workers`` of the ``batches`` to render and ``--workers``;
    by default only ``on_cpu``, default: ``device`` is the CPU or None), else this process;
    ``--threads`` (default 1) torch threads each."""
    threads = args.threads or 1
    if args.ray is None:
        check_ray_options(args)
        if on_cpu is None:
            on_cpu = device is None or torch.device(device).type == "cpu"
        if batches is not None:
            n = workers_used(args, batches, on_cpu)
        else:
            n = (args.workers if args.workers is not None or on_cpu else 1) or 1
        if n == 1:
            yield InProcess(model, device=device, threads=threads)
            return
        executor: Any = PoolExecutor(args.model, workers=n, threads=threads, model=model)
    else:
        from midnite.jobs import ray  # imports Ray itself only when an executor is made

        executor = ray.RayExecutor(
            args.model, address=args.ray or None, workers=args.workers, threads=threads,
            insecure=args.ray_insecure,
        )  # fmt: skip
    executor.__enter__()  # RayError (a UsageError): Ray missing, cluster unreachable
    try:
        yield executor
    finally:
        executor.close()


def _announce(model, left: list[tuple[Batch, list[int]]], dev) -> dict | None:
    """Before a long run (``LONG_RUN`` renders or more) starts, say what it is about to do
    (one line on stderr): renders, layers, views, batches, the time a quick probe expects on
    this machine, and how to narrow it. Asks nothing; a short run starts without a word.

    Returns the probe's per-batch seconds (the progress bar's first time left), or None.
    """
    renders = sum(len(units) for _, units in left)
    if renders < LONG_RUN:
        return None
    layers = len({b.layer for b, _ in left})
    views = ", ".join(dict.fromkeys(b.view for b, _ in left))
    try:
        guess = estimate(model, [b for b, _ in left], QUICK_STEPS, layers=QUICK_LAYERS)
    except Exception as err:
        raise probe_failed(err) from None
    print(
        f"midnite: about to render {renders} unit(s) of {layers} layer(s) (views {views}) in "
        f"{len(left)} batch(es) on {dev}; expected about {format_seconds(guess.total)} on this "
        f"machine (a quick probe of {min(QUICK_LAYERS, layers)} layer(s)). To narrow it: "
        "--layers PATTERN, --units RANGE (e.g. 0-15); --dry-run prints the plan and renders "
        "nothing",
        file=sys.stderr,
    )
    return guess.per_batch


def _check_options(args: argparse.Namespace) -> None:
    if args.units is not None:
        parse_unit_ranges(args.units)  # the syntax now; the range per layer in the plan
    if args.top_k is not None and args.images is None:
        raise UsageError("--top-k needs --images DIR (the photos to find examples in)")
    if args.concepts is not None and args.images is None:
        raise UsageError("--concepts needs --images DIR (the photos to learn concepts from)")
    if args.concepts_feature and args.concepts is None:
        raise UsageError("--concepts-feature needs --concepts N")
    if args.trust and args.images is None:
        raise UsageError("--trust needs --images DIR (it scores against the dataset examples)")
    if args.judge is not None and not args.trust:
        raise UsageError("--judge needs --trust")
    if args.trust and _judge_name(args) == args.model:
        raise UsageError(
            f"--judge must be a different network from MODEL, got {args.model!r} for both"
        )
    if args.trust:
        args.views = _with_negative(args.views)
    check_ray_options(args)


def _judge_name(args: argparse.Namespace) -> str:
    lite2 = "efficientnet-lite2"
    return args.judge or ("efficientnet-lite0" if args.model == lite2 else lite2)


def _with_negative(views: str) -> str:
    """``--views`` with ``negative`` beside ``channel`` (``--trust``'s min references)."""
    names = [v.strip() for v in views.split(",")]
    return ",".join([*names, NEGATIVE] if "channel" in names and NEGATIVE not in names else names)


def _trust(args, model, names: list[str], out: Path, report, executor, layer_sets) -> None:
    """``--trust``: each layer's ``trust.json`` and its concepts' ``concept_trust.json``
    (``jobs.trust``: in this process at ``--threads``, or one Ray task per layer), then the
    pages and the concept pages."""
    concepts = {c.layer: J.concept_targets(c) for c, _ in layer_sets}
    if args.ray is not None:
        done = ray_trust(executor, out, names, _judge_name(args), report=report, concepts=concepts)
    else:
        with torch_threads(args.threads or 1):  # as a Ray worker computes it
            done = add_trust(
                out, names, model, load(_judge_name(args)), report=report, concepts=concepts
            )
    build_site(out, captions())
    J.refresh_concept_pages(layer_sets, out, args.model)
    print(
        f"trust: {done.scored} picture(s) scored (units and concepts) in "
        f"{len(done.layers)} layer(s), "
        f"{done.flagged} flagged"
        + (f", {len(done.skipped)} layer(s) skipped" if done.skipped else "")
    )


def _plan(args, model, table, size, dev) -> tuple[list[Batch], list[str], dict]:
    """The plan of ``--layers``, ``--units`` and ``--views`` (a mistake: UsageError)."""
    settings = Settings(
        size=size, steps=args.steps, batch=args.batch, seed=args.seed, device=str(dev),
        recipe=args.recipe, param=args.param,
    )  # fmt: skip
    names = select_layers(model, table, args.layers)
    shapes = {i.name: tuple(i.shape) for i in table if i.name in names and i.shape}
    work = plan(
        model,
        args.model,
        names,
        shapes,
        settings=settings,
        views=[v.strip() for v in args.views.split(",")],
        units=args.units,
        parse_units=lambda text, count: parse_units(text, count=count),
    )
    if not work:
        raise UsageError(
            "nothing to render: the diversity view needs layers with positions (C, H, W); "
            "add --views channel or pick other --layers"
        )
    _auto_note(args, work)
    return work, names, shapes


def _auto_note(args: argparse.Namespace, work: list[Batch]) -> None:
    """``--steps auto``: one line naming each layer's steps (what the records will hold)."""
    if args.steps != "auto":
        return
    per_layer: dict[str, set[int]] = {}
    for b in work:
        per_layer.setdefault(b.layer or "(output)", set()).add(b.config.steps)
    print(
        "steps auto (a schedule over relative depth measured on efficientnet-lite0; recipes "
        "other than feature keep their own): "
        + ", ".join(f"{k} {'/'.join(map(str, sorted(v)))}" for k, v in per_layer.items())
    )


def _concept_steps(args: argparse.Namespace) -> int | None:
    """Concepts' steps: ``--steps``, except ``auto`` (measured on units): their recipe's."""
    return None if args.steps == "auto" else args.steps


def _examples(args, work, images, out, executor, report) -> None:
    found = add_examples(
        work, images[0], args.top_k or TOP_K, out, executor=executor,
        progress=not args.no_progress, report=report,
    )  # fmt: skip
    done = f"{len(found.computed)} layer(s) computed" if found.computed else ""
    fresh = f"{len(found.up_to_date)} up to date" if found.up_to_date else ""
    print(
        f"dataset examples: {', '.join(x for x in (done, fresh) if x)}; "
        f"{found.seen} of {found.images} file(s) read"
        + (f", {len(found.skipped)} unreadable skipped" if found.skipped else "")
    )


def _concept_layers(args: argparse.Namespace, names: list[str], shapes: dict) -> list[str]:
    """The catalogued layers that get concepts (``--concepts``): those with ``(C, H, W)``."""
    if args.concepts is None:
        return []
    found = [name for name in names if len(shapes.get(name, ())) == 3]
    if not found:
        raise UsageError(
            "--concepts: no catalogued layer has a (C, H, W) output (a concept is a direction "
            f"in such a layer's channels), got {', '.join(n or '(output)' for n in names)}"
        )
    return found


def _concept_batches(args: argparse.Namespace, layers: list[str]) -> int:
    """The concept batches a run may render (for the pool's rule; none done yet counted)."""
    if not layers:
        return 0
    return len(layers) * len(_concept_recipes(args)) * -(-args.concepts // args.batch)


def _concept_recipes(args: argparse.Namespace) -> tuple[str, ...]:
    return J.RECIPES if args.concepts_feature else J.RECIPES[:1]


def _concepts_dry(args, model, layers: list[str], folder: Path, out: Path, settings) -> None:
    """``--dry-run`` with ``--concepts``: the concept renders, and what is saved already."""
    recipes = _concept_recipes(args)
    saved = done = 0
    for layer in layers:
        found = None
        if out.is_dir():
            found = J.saved_dictionary(
                model, args.model, layer, folder, args.concepts, out, seed=args.seed,
                size=settings.size,
            )  # fmt: skip
        if found is not None:
            saved += 1
            work = J.plan_concepts(found, args.model, settings, recipes=recipes)
            done += J.done_units(work, out)
    print(
        f"concepts: {args.concepts} per layer in {len(layers)} layer(s), "
        f"{args.concepts * len(recipes) * len(layers)} concept renders ({', '.join(recipes)}), "
        f"{done} already done; {saved} dictionary(ies) saved, {len(layers) - saved} to fit "
        f"from {str(folder)!r}"
    )


def _concepts(args, model, layers, folder: Path, out: Path, executor, settings, report) -> tuple:
    """Each concept layer's dictionary (fitted or loaded), examples and render batches:
    ``(batches, [(concepts, examples), ...])``. A layer that cannot be fitted (e.g. fewer
    activation rows than ``--concepts``) is a one-line error naming it; nothing is written
    for it (dictionaries of the layers before it are kept: a rerun loads them)."""
    work: list[Batch] = []
    layer_sets = []
    for layer in layers:
        try:
            concepts, fitted = J.dictionary(
                executor, model, args.model, layer, folder, args.concepts, out, seed=args.seed,
                size=settings.size, progress=not args.no_progress, report=report,
            )  # fmt: skip
        except UsageError as err:
            raise UsageError(f"--concepts {args.concepts}, layer {layer!r}: {err}") from None
        k = args.top_k or CONCEPT_EXAMPLES
        examples = J.examples_of(concepts, folder, out, k, fitted)
        work += J.plan_concepts(concepts, args.model, settings, recipes=_concept_recipes(args))
        layer_sets.append((concepts, examples))
    return work, layer_sets


def _examples_dry(args, model, images, concept_layers: list[str], concept_settings) -> None:
    """``--dry-run``: what the dataset examples and the concepts would do."""
    if images is not None:
        print(
            f"dataset examples: top {args.top_k or TOP_K} per unit from {len(images[1])} "
            f"file(s) in {str(images[0])!r}, one pass over the folder for all layers"
        )
    if concept_layers and images is not None:
        _concepts_dry(args, model, concept_layers, images[0], Path(args.out), concept_settings)


def _load_timed(name: str) -> tuple[torch.nn.Module, tuple[float, float, float]]:
    """The model, and (this process's age then, ``perf_counter`` then, seconds) of its load."""
    start, began = process_age(), time.perf_counter()
    model = load(name)
    return model, (start, began, time.perf_counter() - began)


def _dry(args, model, work, shapes, dev, images, timed) -> int:
    """``--dry-run`` (``cli.dry_run``) at ``--threads``: the probe times what one worker does."""
    units = sum(len(b.units) for b in work)
    concepts = _concept_batches(args, _concept_layers(args, list(shapes), shapes))
    with torch_threads(args.threads or 1):
        return dry_run(
            args, model, work, shapes, units, dev, images, timed, concepts=concepts,
            top_k=args.top_k or TOP_K, quick=(LONG_RUN, QUICK_LAYERS, QUICK_STEPS),
        )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """``midnite catalogue``: plan, then dry-run it or run it (``jobs.run``)."""
    _check_options(args)
    images = _images_folder(args.images) if args.images is not None else None
    size = optional_size(args.size)
    dev = device(args.device)
    out = None if args.dry_run else prepare_out(args.out)
    if out is not None:
        check_for(out, "catalogue")
    model, timed = _load_timed(args.model)
    size = size or default_size(args.model)
    table = layer_table(model, args.model, size, dev)
    work, names, shapes = _plan(args, model, table, size, dev)
    units = sum(len(b.units) for b in work)
    concept_layers = _concept_layers(args, names, shapes)
    concept_settings = Settings(
        size=size, steps=_concept_steps(args), batch=args.batch, seed=args.seed, device=str(dev)
    )
    more: list[Batch] = []
    if args.dry_run:
        _examples_dry(args, model, images, concept_layers, concept_settings)
        return _dry(args, model, work, {n: shapes[n] for n in names}, dev, images, timed)
    assert out is not None
    # the deepest layer's forward pass is the longest: check it at the largest batch
    check_memory(model, work[-1].probe(), max(b.images for b in work), dev)
    left = todo(work, out)[0]
    with torch_threads(args.threads or 1):  # the probe times what one worker does
        expected = _announce(model, left, dev)  # before anything is computed
    report = functools.partial(print, "midnite:", file=sys.stderr)
    batches = len(left) + _concept_batches(args, concept_layers)
    try:
        with (
            rec.lock_folder(out),
            run_executor(args, model, batches=batches, on_cpu=dev.type == "cpu") as executor,
        ):
            read_plan(out, report)  # a damaged catalogue.json is named here, rewritten later
            if images is not None:
                _examples(args, work, images, out, executor, report)
            pages, layer_sets = None, []
            if concept_layers:
                assert images is not None  # --concepts needs --images
                more, layer_sets = _concepts(
                    args, model, concept_layers, images[0], out, executor, concept_settings,
                    report,
                )  # fmt: skip
                pages = J.with_concept_pages(
                    catalogue_pages(work, out, shapes), layer_sets, out, args.model
                )
            summary = run_jobs(
                work + more, out, executor=executor, progress=not args.no_progress,
                report=report, expected=expected, pages=pages, shapes=shapes,
            )  # fmt: skip
            if args.trust:
                _trust(args, model, names, out, report, executor, layer_sets)
    except rec.FolderBusy as err:
        raise BusyError(str(err)) from None
    except OSError as err:  # the dataset examples or the pages; the runner names its own
        raise WriteError(
            f"writing results to {str(out)!r} failed ({err.strerror or err}); every file "
            "written is complete. Run the same command again to resume."
        ) from None
    extra = sum(len(b.units) for b in more)
    print(
        f"rendered {summary.rendered} of {units + extra} "
        + (f"renders ({units} units, {extra} concepts; " if extra else "units (")
        + f"{summary.up_to_date} up to date"
        f"{f', {len(summary.failed)} failed' if summary.failed else ''}) in "
        f"{format_seconds(summary.seconds)}; index: {summary.index}"
    )
    if summary.failed:
        first = next(iter(summary.failed.items()))
        message = (
            f"{len(summary.failed)} of {units} units failed, nothing saved for them (first: "
            f"{first[0]}: {first[1]}); a rerun tries them again"
        )
        if any(is_out_of_memory(e) for e in summary.errors):
            raise MemoryShortage(f"{message}; use a smaller --batch or --size")
        raise RenderError(message)
    return 0
