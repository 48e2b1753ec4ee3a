"""The whole-model catalogue's speed: in-process against local Ray, the estimate, a projection.

Sections (EfficientNet-Lite0 from the installed package, ``efficientnet-lite0`` for Ray):
  small    A small catalogue (``SMALL``: 2 layers, 4 units each, the 3 views, 128 px, 64 steps,
           batches of 4 images: 12 batches, 24 unit renders) rendered with ``catalogue.run``
           in-process with the workers' thread count (``--threads``, the fair side by side), in-
           process with every worker's threads (``--workers`` x ``--threads``: the whole machine
           in one process) and on a local Ray instance with ``--workers`` workers. Per executor:
           wall time of the run, units per hour (unit renders: a diversity strip is one), the
           startup apart (Ray: ``ray.init``, the workers' model load and one 1-step warm-up
           render per layer on each worker, as the estimate's probe warms the in-process runs;
           in-process runs start warm), the dry-run estimate made just before
           (``catalogue.estimate`` at the same threads; for Ray its ``workers(n)``) and
           measured / estimated (target within 25%).
  overhead Ray's cost per batch: the time from the driver's submitting a batch to a worker to
           its result reaching the driver (``catalogue.run``'s loop), minus the render's own
           seconds reported by the worker (``RenderResult.seconds``: the optimization loop; the
           render's setup, milliseconds, counts as overhead here), as a share of those render
           seconds (target under 5%). The same difference in-process is shown beside it.
  bytes    Whether the in-process run at the workers' thread count and the Ray run wrote byte-
           identical PNGs, in every round (the 2-thread in-process run is compared too; it
           need not match).
  project  The full block-output catalogue of Lite0 (the default layers of ``midnite catalogue``
           less the class output: 16 blocks, 1,808 channels, views channel, negative and
           diversity, the catalogue defaults: 224 px, the recipe's 256 steps, batch 8), its
           per-layer costs from ``catalogue.estimate``'s probe at ``--threads`` threads with
           ``--probe-steps`` steps (default 8, as the dry run's ``catalogue.PROBE_STEPS``),
           scaled by the small
           catalogue's measured / estimated with the same probe (in-process, ``--threads``). On N
           workers: batches handed out in plan order to the first idle worker, as the Ray
           executor does, simulated with those per-batch costs (a layer's cost split over its
           batches by images: the fixed part is a few forward passes against 256 steps) plus
           Ray's measured overhead per batch (N > 1). It assumes each worker has a core like
           one of this machine's to itself, results reach the driver as fast as here, and
           leaves out Ray's startup; the class output (1,000 classes, channel and negative) is
           a row of its own.

  dry      The dry run against the command (``--dry-vs-run``, this section alone): small Lite0
           catalogues (``DRY``: ``_blocks.4`` and ``_blocks.10``, units 0-7, views channel and
           negative, 96 px, 16 steps, batch 4: 8 batches) run as a user runs them, ``midnite
           catalogue ...`` in a fresh process (Python's start and the model's load included),
           by default (on 2 CPUs: a pool of 2) and with ``--workers 1 --images`` (16 photos:
           in this process, with the dataset examples), each after its
           ``--dry-run`` (the "expected time of the command" it prints); idle and with a
           busy-loop process per CPU (as ``threads.py``), ``--repeats`` rounds, medians;
           target: measured / estimated within 0.75-1.25 in both.

Timings are single runs (``--repeats N``: N rounds, each executor once per round, medians).
``OMP_WAIT_POLICY`` is PASSIVE unless set: with OpenMP's default (spinning waits) the 2-thread
run on a CPU shared with other processes was 12x slower than with one thread.

Ray's local instance binds to this machine's own address as well as the loopback (see
``midnite.catalogue_ray``); the smoke test runs it in a loopback-only network namespace.

    python benchmarks/catalogue.py [--threads 1] [--workers 2] [--repeats 1] [--probe-steps 8]
                                   [--json F]
    python benchmarks/catalogue.py --no-ray    # in-process and the projection only
    python benchmarks/catalogue.py --quick     # a smoke run of seconds (tiny sizes)
    python benchmarks/catalogue.py --dry-vs-run [--repeats 2] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# As in quality.py: on a CPU shared with other processes, OpenMP threads that spin while waiting
# for each other made the 2-thread in-process run 12x slower here (658 s against 56 s for one
# thread); sleeping waits avoid that. One-thread runs (and Ray's workers) have nothing to wait
# for. It must be set before torch loads OpenMP.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, table, write_json
from catalogue_tables import (
    byte_rows,
    dry_rows,
    median,
    overhead_rows,
    print_dry,
    print_measured,
    small_rows,
)
from threads import competing

from midnite import catalogue as cat
from midnite import catalogue_ray, models
from midnite.engine import RenderResult, layers

MODEL = "efficientnet-lite0"


@dataclass(frozen=True)
class Setup:
    """The small catalogue and the projection's settings."""

    layers: tuple[str, ...]
    units: tuple[int, ...]
    size: int
    steps: int
    batch: int
    full_size: int  # the projection's plan (None steps: the recipe's)
    full_steps: int | None
    full_batch: int


SMALL = Setup(("_blocks.4", "_blocks.10"), (0, 1, 2, 3), 128, 64, 4, 224, None, 8)
QUICK = Setup(("_blocks.1", "_blocks.3"), (0, 1), 32, 3, 2, 32, 3, 8)
# the dry run against the command: (layers, units, views, size, steps, batch, photos)
DRY = (("_blocks.4", "_blocks.10"), "0-7", "channel,negative", 96, 16, 4, 16)
DRY_QUICK = (("_blocks.1", "_blocks.3"), "0-1", "channel", 32, 3, 2, 4)
CODE = "import sys; from midnite.cli import main; sys.exit(main(sys.argv[1:]))"


# the dry run against the command --------------------------------------------------------------


def write_photos(folder: Path, n: int) -> Path:
    """``n`` photographs: crops of scikit-image's sample photos, ~300 px, as JPEG."""
    from PIL import Image
    from skimage import data

    names = ("astronaut", "coffee", "chelsea", "rocket", "cat", "immunohistochemistry")
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = Image.fromarray(getattr(data, names[i % len(names)])()).convert("RGB")
        w, h = img.size
        x, y = (i * 37) % max(1, w - 300), (i * 53) % max(1, h - 300)
        img.crop((x, y, x + 300, y + 300)).save(folder / f"photo{i:03d}.jpg", quality=90)
    return folder


def command(argv: Sequence[str]) -> tuple[float, str]:
    """``midnite ...`` in a fresh process: (wall seconds, its stdout); a failure raises."""
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CODE, *argv], capture_output=True, text=True, check=False
    )
    took = time.perf_counter() - began
    if done.returncode:
        raise RuntimeError(f"midnite {' '.join(argv)}: exit {done.returncode}: {done.stderr}")
    return took, done.stdout


def expected(stdout: str) -> float:
    """The seconds of the dry run's "expected time of the command: 42 s ..." line."""
    found = re.search(r"expected time of the command: ([\d.]+) (s|min|h)\b", stdout)
    if found is None:
        raise RuntimeError(f"the dry run printed no expected time of the command:\n{stdout}")
    return float(found[1]) * {"s": 1, "min": 60, "h": 3600}[found[2]]


def dry_vs_run(args: argparse.Namespace) -> list[dict]:
    """Each setting's dry run, then the command, idle and busy, ``args.repeats`` rounds."""
    layers_, units, views, size, steps, batch, n_photos = DRY_QUICK if args.quick else DRY
    found: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="midnite-dry-") as tmp:
        photos = write_photos(Path(tmp, "photos"), n_photos)
        base = ["catalogue", MODEL, "--layers", *layers_, "--units", units, "--views", views]
        base += ["--size", str(size), "--steps", str(steps), "--batch", str(batch)]
        base += ["--no-progress"]
        settings = {
            "default (no options)": [],
            f"--workers 1 --images ({n_photos} photos)": [
                "--workers",
                "1",
                "--images",
                str(photos),
            ],
        }
        for case in ("idle",) if args.quick else ("idle", "busy"):
            with competing(case == "busy"):
                for r in range(args.repeats):
                    for name, extra in settings.items():
                        out = str(Path(tmp, f"{case}{r}{len(found)}"))
                        load = os.getloadavg()[0]
                        _, said = command([*base, *extra, "--out", out, "--dry-run"])
                        wall, _ = command([*base, *extra, "--out", out])
                        row = {"case": case, "setting": name, "round": r + 1, "load": load}
                        row.update(estimate=expected(said), measured=wall, said=said.strip())
                        found.append(row)
                        print(
                            f"  {case} round {r + 1} {name}: estimated {row['estimate']:.1f} s, "
                            f"measured {wall:.1f} s (load average {load:.1f})",
                            flush=True,
                        )
    return found


# timing batches -------------------------------------------------------------------------------


@dataclass
class Timed:
    """Wraps an executor: per batch, the seconds the driver waited and the render's own."""

    inner: Any
    sent_clock: bool = False  # Ray: the actors note when each batch leaves (``clocked``)
    submitted: dict[int, float] = field(default_factory=dict)  # id(config): when sent
    waited: list[float] = field(default_factory=list)
    rendered: list[float] = field(default_factory=list)

    def run(self, batches: Sequence[cat.Batch]) -> Iterator[tuple[cat.Batch, Any]]:
        it = iter(self.inner.run(batches))
        while True:
            resumed = time.perf_counter()
            try:
                batch, result = next(it)
            except StopIteration:
                return
            arrived = time.perf_counter()
            if isinstance(result, RenderResult):
                sent = self.submitted.pop(id(batch.config), None)
                if self.sent_clock and sent is None:
                    raise RuntimeError(
                        "benchmark: a Ray batch arrived that was not seen leaving; the executor "
                        "no longer calls actor.render.remote(batch.config)"
                    )
                self.waited.append(arrived - (resumed if sent is None else sent))
                self.rendered.append(result.seconds)
            yield batch, result


class _SendClock:
    """``actor.render`` of a Ray actor, noting when each config is sent."""

    def __init__(self, method: Any, submitted: dict[int, float]):
        self.method, self.submitted = method, submitted

    def remote(self, config: Any) -> Any:
        self.submitted[id(config)] = time.perf_counter()
        return self.method.remote(config)


class _ClockedActor:
    def __init__(self, actor: Any, submitted: dict[int, float]):
        self._actor = actor
        self.render = _SendClock(actor.render, submitted)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._actor, name)


@contextlib.contextmanager
def clocked(executor: Any, timed: Timed) -> Iterator[None]:
    """The Ray executor's actors wrapped to note send times, for the ``with`` block."""
    actors = list(executor.actors)
    executor.actors = [_ClockedActor(a, timed.submitted) for a in actors]
    try:
        yield
    finally:
        executor.actors = actors


# the small catalogue ---------------------------------------------------------------------------


@dataclass
class Run:
    """One executor's run of the small catalogue."""

    name: str
    workers: int
    threads: int
    seconds: float = float("nan")
    startup: float = float("nan")
    units: int = 0
    batches: int = 0
    estimate: float = float("nan")  # the dry run's (catalogue.estimate, PROBE_STEPS)
    calibration: float = float("nan")  # catalogue.estimate with the projection's probe steps
    waited: list[float] = field(default_factory=list)
    rendered: list[float] = field(default_factory=list)
    pngs: dict[str, str] = field(default_factory=dict)
    note: str = ""


def _pngs(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*.png"))
        if not p.name.endswith("_alpha.png")
    }


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _catalogue(work: Sequence[cat.Batch], out: Path, executor: Any, run: Run) -> None:
    ray = isinstance(executor, catalogue_ray.Ray)
    timed = Timed(executor, sent_clock=ray)
    began = time.perf_counter()
    with clocked(executor, timed) if ray else contextlib.nullcontext():
        summary = cat.run(work, out, executor=timed, progress=False)
    run.seconds = time.perf_counter() - began
    if summary.failed:
        where, why = next(iter(summary.failed.items()))
        raise RuntimeError(f"{run.name}: {len(summary.failed)} units failed, {where}: {why}")
    run.units, run.batches = summary.rendered, len(timed.waited)
    run.waited, run.rendered = timed.waited, timed.rendered
    run.pngs = _pngs(out)


def in_process(model, work, out: Path, n_threads: int, name: str, probe_steps: int) -> Run:
    run = Run(name, 1, n_threads)  # startup nan: none
    with threads(n_threads):
        run.estimate = cat.estimate(model, work).total  # its warm-up render warms this run too
        run.calibration = (
            run.estimate
            if probe_steps == cat.PROBE_STEPS
            else cat.estimate(model, work, steps=probe_steps).total
        )
        _catalogue(work, out, cat.InProcess(model), run)
    return run


def warm_up(work: Sequence[cat.Batch], copies: int) -> list[cat.Batch]:
    """Per layer, ``copies`` of its biggest batch at 1 step: a Ray worker's first renders of a
    layer cost more (as the estimate's probe warms the in-process runs, these warm the workers).
    """
    warm = []
    for layer in dict.fromkeys(b.layer for b in work):
        biggest = max((b for b in work if b.layer == layer), key=lambda b: b.images)
        warm += [dataclasses.replace(biggest, config=biggest.config.replace(steps=1))] * copies
    return warm


def on_ray(model, work, out: Path, workers: int, n_threads: int, estimate: cat.Estimate) -> Run:
    """The small catalogue on a local Ray instance (a row that says why when Ray is missing)."""
    run = Run(f"local Ray, {workers} workers", workers, n_threads)
    try:
        catalogue_ray.import_ray()
    except catalogue_ray.RayError as err:
        run.note = str(err)
        return run
    began = time.perf_counter()
    with catalogue_ray.Ray(MODEL, workers=workers, threads=n_threads) as executor:
        executor.pids()  # every worker has built its model
        for _, result in executor.run(warm_up(work, workers)):
            if isinstance(result, Exception):
                raise result
        run.startup = time.perf_counter() - began
        run.estimate = estimate.workers(workers)
        _catalogue(work, out, executor, run)
    return run


# the projection --------------------------------------------------------------------------------


def schedule(costs: Sequence[float], workers: int) -> float:
    """Seconds until the last batch is done when each goes, in order, to the first idle worker."""
    free = [0.0] * workers
    for c in costs:
        i = min(range(workers), key=free.__getitem__)
        free[i] += c
    return max(free, default=0.0)


def batch_costs(work: Sequence[cat.Batch], guess: cat.Estimate) -> list[float]:
    """Each batch's share of its layer's estimated cost, by its images."""
    images: dict[str, int] = {}
    for b in work:
        images[b.layer] = images.get(b.layer, 0) + b.images
    return [guess.per_layer[b.layer] * b.images / images[b.layer] for b in work]


# the script --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker (1)")
    parser.add_argument("--workers", type=int, default=2, help="Ray workers (2)")
    parser.add_argument("--repeats", type=int, default=1, help="rounds of every run (medians)")
    parser.add_argument(
        "--probe-steps",
        type=int,
        default=8,
        help="steps of the estimate probe behind the projection (8; the dry run's is "
        f"{cat.PROBE_STEPS})",
    )
    parser.add_argument("--no-ray", action="store_true", help="leave out the Ray rows")
    parser.add_argument("--json", default=None, help="also write the tables as JSON here")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument(
        "--dry-vs-run",
        action="store_true",
        help="only the dry run against the command, idle and busy (see the docstring)",
    )
    args = parser.parse_args(argv)
    for flag in ("threads", "workers", "repeats", "probe_steps"):
        if getattr(args, flag) < 1:
            name = flag.replace("_", "-")
            parser.error(f"--{name} must be a positive int, got {getattr(args, flag)}")
    setup = QUICK if args.quick else SMALL
    if args.dry_vs_run:
        print(f"midnite dry run against the command, {machine()}", flush=True)
        found = dry_vs_run(args)
        print_dry(dry_rows(found))
        write_json(args.json, {"machine": machine(), "quick": args.quick, "runs": found})
        return 0
    with threads(args.threads):
        info = machine()
        info["OMP_WAIT_POLICY"] = os.environ.get("OMP_WAIT_POLICY", "")
        return _main(args, setup, info)


def _small(args: argparse.Namespace, setup: Setup, model: Any) -> tuple[str, list[dict[str, Run]]]:
    """The small catalogue, run by each executor ``args.repeats`` times: (what, rounds)."""
    size = (setup.size, setup.size)
    small_table = layers(model, size)
    shapes = {i.name: tuple(i.shape) for i in small_table if i.shape}
    settings = cat.Settings(size=size, steps=setup.steps, batch=setup.batch)
    work = cat.plan(
        model, MODEL, list(setup.layers), shapes, settings=settings, views=cat.VIEWS,
        units=list(setup.units),
    )  # fmt: skip
    units = sum(len(b.units) for b in work)
    images = sum(b.images for b in work)
    what = (
        f"{len(setup.layers)} layers ({', '.join(setup.layers)}), units "
        f"{','.join(map(str, setup.units))}, views {', '.join(cat.VIEWS)}: {units} unit renders "
        f"({images} images) in {len(work)} batches; {setup.size} px, {setup.steps} steps, "
        f"batch {setup.batch}"
    )
    print(f"\nsmall catalogue: {what}", flush=True)
    whole = args.workers * args.threads
    rounds: list[dict[str, Run]] = []
    with tempfile.TemporaryDirectory(prefix="midnite-cbench-") as tmp:
        for r in range(args.repeats):
            done: dict[str, Run] = {}
            key = f"in-process, {args.threads} thread{'s' * (args.threads > 1)}"
            done["same"] = in_process(
                model, work, Path(tmp, f"a{r}"), args.threads, key, args.probe_steps
            )
            print(f"  round {r + 1}: {key} {done['same'].seconds:.1f} s", flush=True)
            if whole != args.threads:
                key = f"in-process, {whole} threads"
                done["whole"] = in_process(
                    model, work, Path(tmp, f"b{r}"), whole, key, cat.PROBE_STEPS
                )
                print(f"  round {r + 1}: {key} {done['whole'].seconds:.1f} s", flush=True)
            if not args.no_ray:
                with threads(args.threads):
                    guess = cat.estimate(model, work)
                ray_run = on_ray(model, work, Path(tmp, f"c{r}"), args.workers, args.threads, guess)
                done["ray"] = ray_run
                print(f"  round {r + 1}: {ray_run.name} {ray_run.seconds:.1f} s", flush=True)
            rounds.append(done)
    return what, rounds


def _full_plans(setup: Setup, model: Any) -> tuple[dict[str, list], dict[str, tuple[int, ...]]]:
    """The plans of Lite0's whole catalogue (block outputs, class output) at full settings."""
    full_size = (setup.full_size, setup.full_size)
    full_table = layers(model, full_size)
    full_shapes = {i.name: tuple(i.shape) for i in full_table if i.shape}
    default = cat.default_layers(model, full_table)
    blocks = [n for n in default if n]
    full_settings = cat.Settings(size=full_size, steps=setup.full_steps, batch=setup.full_batch)
    plans = {
        "block outputs": cat.plan(
            model, MODEL, blocks, full_shapes, settings=full_settings, views=cat.VIEWS
        ),
        "block outputs, --steps auto": cat.plan(
            model,
            MODEL,
            blocks,
            full_shapes,
            settings=dataclasses.replace(full_settings, steps="auto"),
            views=cat.VIEWS,
        ),
    }
    if "" in default:
        plans["class output"] = cat.plan(
            model, MODEL, [""], full_shapes, settings=full_settings, views=cat.VIEWS
        )
    return plans, full_shapes


def _projection_rows(
    args: argparse.Namespace, model: Any, plans: dict[str, list], full_shapes: dict, scale: float,
    overhead: float,
) -> tuple[list[dict], list[dict]]:  # fmt: skip
    """Projected wall time per plan on 1, 8 and 64 workers, and per layer on one."""
    proj_rows, layer_rows = [], []
    probed: list[cat.Estimate] = []
    with threads(args.threads):
        for name, plan_ in plans.items():
            # a plan of layers probed already (the same batches at other steps) is priced from
            # those probes: the probe renders would be the same ones again
            layers_ = {b.layer for b in plan_}
            again = next((g for g in probed if layers_ <= set(g.cost)), None)
            if again is None:
                again = cat.estimate(model, plan_, steps=args.probe_steps)
                probed.append(again)
            guess = again.priced(plan_)
            costs = [scale * c for c in batch_costs(plan_, guess)]
            n_units = sum(len(b.units) for b in plan_)
            channels = sum(full_shapes[layer][0] for layer in dict.fromkeys(b.layer for b in plan_))
            row: dict[str, Any] = {
                "catalogue": f"{name}: {channels} channels x "
                + ", ".join(dict.fromkeys(b.view for b in plan_)),
                "unit renders": n_units,
                "batches": len(plan_),
                "estimate, 1 worker": cat.format_seconds(guess.total),
            }
            for n in (1, 8, 64):
                secs = schedule(costs, 1) if n == 1 else schedule([c + overhead for c in costs], n)
                row[f"{n} worker{'s' * (n > 1)}"] = cat.format_seconds(secs)
                row[f"_{n}"] = secs
            proj_rows.append(row)
            if "auto" in name:  # the per-layer table shows the recipe's steps
                continue
            for layer in dict.fromkeys(b.layer for b in plan_):
                mine = [b for b in plan_ if b.layer == layer]
                layer_rows.append(
                    {
                        "layer": layer or "(output)",
                        "channels": full_shapes[layer][0],
                        "batches": len(mine),
                        "unit renders": sum(len(b.units) for b in mine),
                        "estimate s": guess.per_layer[layer],
                        "projected s (1 worker)": scale * guess.per_layer[layer],
                    }
                )
    return proj_rows, layer_rows


def _projection(
    args: argparse.Namespace, setup: Setup, model: Any, rounds: list[dict[str, Run]], t_all: float
) -> dict:
    """Lite0's whole catalogue projected from the small one's measured / estimated ratio."""
    t_proj = time.perf_counter()
    plans, full_shapes = _full_plans(setup, model)
    scale = median([d["same"].seconds / d["same"].calibration for d in rounds])
    ray_runs = [d["ray"] for d in rounds if "ray" in d and d["ray"].waited]
    overhead = (
        median([w - s for x in ray_runs for w, s in zip(x.waited, x.rendered, strict=True)])
        if ray_runs
        else 0.0
    )
    proj_rows, layer_rows = _projection_rows(args, model, plans, full_shapes, scale, overhead)
    found = {
        "settings": {
            "size": setup.full_size,
            "steps": plans["block outputs"][0].config.steps,
            "batch": setup.full_batch,
            "threads per worker": args.threads,
        },
        "probe_steps": args.probe_steps,
        "measured_over_estimate": scale,
        "ray_overhead_per_batch_s": overhead,
        "rows": proj_rows,
        "layers": layer_rows,
    }
    steps = plans["block outputs"][0].config.steps
    shown = [k for k in proj_rows[0] if not k.startswith("_")]
    print(
        "\n"
        + table(
            f"Projection: Lite0's catalogue at {setup.full_size} px, {steps} steps, batch "
            f"{setup.full_batch}, {args.threads} thread(s) per worker; per-layer costs of "
            f"catalogue.estimate ({args.probe_steps}-step probe) x {scale:.2f} (measured / "
            "estimated on the small catalogue, same probe), plan order to the first idle "
            "worker, "
            + (
                f"+ {1e3 * overhead:.0f} ms Ray overhead per batch on 8 and 64"
                if ray_runs
                else "no Ray overhead (not measured)"
            ),
            shown,
            [[r[k] for k in shown] for r in proj_rows],
        )
        + "\n\n"
        + table(
            "Projection per layer (one worker)",
            list(layer_rows[0]),
            [list(r.values()) for r in layer_rows],
        )
        + f"\n({time.perf_counter() - t_proj:.0f} s for the projection's probes; "
        f"{time.perf_counter() - t_all:.0f} s in all)",
        flush=True,
    )
    return found


def _main(args: argparse.Namespace, setup: Setup, info: dict[str, str]) -> int:
    t_all = time.perf_counter()
    print(f"midnite catalogue benchmark, {info}")
    model = models.load(MODEL)
    what, rounds = _small(args, setup, model)
    rows, out_rows = small_rows(rounds)
    over, same = overhead_rows(rounds), byte_rows(rounds)
    print_measured(rows, over, same)
    payload: dict[str, Any] = {
        "machine": info,
        "quick": args.quick,
        "threads": args.threads,
        "workers": args.workers,
        "repeats": args.repeats,
        "small": {"what": what, "runs": out_rows},
        "overhead": over,
        "bytes": same,
        "projection": _projection(args, setup, model, rounds, t_all),
    }
    write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
