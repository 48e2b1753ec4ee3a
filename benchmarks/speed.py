"""Speed of midnite against a bare forward+backward pass of the same network, side by side.

Sections (all on EfficientNet-Lite0 from the installed package):
  classic  PixelActivation on the notebook's cell-3 setting (a 6-block prefix, 250 px), bare and
           with the cell-10 stack of transforms and regularizers: time per optimizer step over
           a bare forward+backward on the same image sizes.
  early    render() step time for targets at several depths over the full-network step,
           next to the share of the network's cost before each target: its FLOPs
           (forward+backward) and the time of a bare forward+backward of that prefix.
  render   render() with the default stack over a bare pass at the size the model sees.
  batch    16 channels as one batch against 16 renders one after another.

    python benchmarks/speed.py [--sections classic,early,render,batch] [--device cuda] [--json F]
    python benchmarks/speed.py --quick      # a smoke run of seconds (used by the tests)
    python benchmarks/speed.py --threads 1  # on a busy machine: no spinning OpenMP threads

Run it alone on the machine, with OpenMP's default wait policy (what users get): with
OMP_WAIT_POLICY=PASSIVE every small parallel op wakes a sleeping thread and a batch-1 step of
Lite0 takes twice as long, which hides engine overhead.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import interleaved, machine, sync, table, write_json

import midnite
from midnite import objectives as obj
from midnite.engine._fold import conv_bn_pairs, folded
from midnite.engine._heap import retained_heap
from midnite.engine.hooks import frozen
from midnite.engine.normalize import Normalize
from midnite.models import efficientnet_lite, efficientnet_lite_features
from midnite.visualization.base import (
    BlurTransform,
    ChannelSplit,
    PixelActivation,
    RandomTransform,
    ResizeTransform,
    SplitSelector,
    TVRegularization,
    WeightDecay,
)


@contextlib.contextmanager
def bare_frozen(model, dev: torch.device, example: torch.Tensor | None = None):
    """Frozen weights in the layout midnite's engine uses on ``dev`` (channels-last on CPU),
    the heap kept as the engine keeps it (``midnite.engine._heap``) and, given an ``example`` batch,
    batchnorms folded into convolutions as the engine folds them (``engine._fold``): only the
    engine's own work differs. Renders inside the block find the pairs folded already.
    """
    with contextlib.ExitStack() as stack:
        if dev.type == "cpu":
            stack.enter_context(retained_heap())
        net = stack.enter_context(frozen(model, dev, channels_last=dev.type == "cpu"))
        if example is not None:
            stack.enter_context(folded(conv_bn_pairs(model, layout(example.to(dev)))))
        yield net


def layout(x: torch.Tensor) -> torch.Tensor:
    """``x`` in the layout midnite's engine feeds the model on its device."""
    return x.contiguous(memory_format=torch.channels_last) if x.device.type == "cpu" else x


def bare_step(model, x: torch.Tensor, read=lambda out: out.mean()):
    """One forward+backward to the input: the least work any tool can do.

    Call it inside ``bare_frozen(model)``, or it also computes (and accumulates) weight
    gradients. It uses the engine's memory layout, so that only the engine's work differs.
    """
    x = layout(x)

    def step():
        img = x.detach().requires_grad_(True)
        read(model(img)).backward()

    return step


def classic_section(dev: torch.device, quick: bool) -> tuple[str, list[dict]]:
    net = efficientnet_lite_features(16)[:10].to(dev)
    size = 64 if quick else 250
    iters, opt_n = (2, 3) if quick else (12, 20)
    rows = []

    def run_pa(**kw):
        def fn():
            PixelActivation(
                net,
                SplitSelector(ChannelSplit(), [1]),
                iter_n=iters,
                opt_n=opt_n,
                seed=0,
                progress=False,
                device=dev,
                **kw,
            ).visualize()

        return fn

    with bare_frozen(net, dev):
        sizes = [size] * iters
        bare = bare_step(net, torch.rand(1, 3, size, size, device=dev), lambda o: o[:, 1].mean())

        def bare_run():
            for _ in range(iters * opt_n):
                bare()

        # the cell-10 stack grows the image 1.2x per iteration from 50 px (its init_size)
        init = 32 if quick else 50
        grown = [init]
        for _ in range(iters - 1):
            grown.append(max(1, round(grown[-1] * 1.2)))
        bare_grown = {
            s: bare_step(net, torch.rand(1, 3, s, s, device=dev), lambda o: o[:, 1].mean())
            for s in set(grown)
        }

        def bare_grown_run():
            for s in grown:
                for _ in range(opt_n):
                    bare_grown[s]()

    stack = dict(
        transform=RandomTransform() + BlurTransform() + ResizeTransform(),
        regularization=[TVRegularization(), WeightDecay(decay_factor=3e-4)],
        init_size=init,
    )
    fns = {
        "bare": bare_run,
        "pa": run_pa(init_size=size),
        "bare_grown": bare_grown_run,
        "pa_stack": run_pa(**stack),
    }
    # the bare passes need frozen, folded weights too (PixelActivation nests)
    with bare_frozen(net, dev, torch.rand(1, 3, size, size)):
        times = interleaved(fns, dev, rounds=3, reps=1, warmup=1)
    steps = iters * opt_n
    rows.append(
        {
            "setting": f"cell 3: no transform, {size} px",
            "midnite ms/step": 1e3 * times["pa"] / steps,
            "bare fwd+bwd ms": 1e3 * times["bare"] / steps,
            "ratio": times["pa"] / times["bare"],
            "target": "<= 1.15",
        }
    )
    rows.append(
        {
            "setting": f"cell-10 stack, {grown[0]}->{grown[-1]} px",
            "midnite ms/step": 1e3 * times["pa_stack"] / steps,
            "bare fwd+bwd ms": 1e3 * times["bare_grown"] / steps,
            "ratio": times["pa_stack"] / times["bare_grown"],
            "target": "<= 1.3",
        }
    )
    title = (
        f"Classic API: PixelActivation step vs bare forward+backward (Lite0[:10], sizes {sizes[0]})"
    )
    return table(title, list(rows[0]), [list(r.values()) for r in rows]), rows


def _flops(model, x: torch.Tensor, layer: str | None) -> float:
    """FLOPs of forward+backward to the input, reading ``layer`` (None: the output)."""
    counter = FlopCounterMode(display=False)
    img = x.detach().requires_grad_(True)
    with counter:
        if layer is None:
            model(img).mean().backward()
        else:
            with midnite.engine.hooks.ActivationCapture(model, [layer]) as tap:
                tap(img)[layer].mean().backward()
    return float(counter.get_total_flops())


def early_section(dev: torch.device, quick: bool) -> tuple[str, list[dict]]:
    model = efficientnet_lite(0).to(dev)
    size = 64 if quick else 224
    targets = ["_blocks.1", "_blocks.4", "_blocks.8", "_blocks.12"]
    if quick:
        targets = targets[:2]
    x = torch.rand(1, 3, size, size, device=dev)
    rows = []
    with bare_frozen(model, dev):
        full_flops = _flops(model, x, None)
        shares = {t: _flops(model, x, t) / full_flops for t in targets}

    steps = 2 if quick else 5

    def run(target: str | None, early: bool):
        """``steps`` optimizer-free steps (loss + backward) inside one hooked, frozen session."""
        objective = obj.class_logit(1) if target is None else obj.channel(target, 0)
        renderer = midnite.engine.Renderer(model, objective, device=dev, early_stop=early)
        img = torch.rand(1, 3, size, size, device=dev, requires_grad=True)

        def fn():
            with renderer:
                for _ in range(steps):
                    loss, _ = renderer.loss(img)
                    loss.backward()

        return fn

    def prefix(target: str) -> torch.nn.Sequential:
        """The network up to ``target`` as a plain Sequential (shared modules, no hooks)."""
        k = int(target.rsplit(".", 1)[1])
        stem = [Normalize.imagenet(), model._conv_stem, model._bn0, model._swish]
        return torch.nn.Sequential(*stem, *model._blocks[: k + 1]).to(dev)

    fns = {(t, e): run(t, e) for t in [None, *targets] for e in ((True, False) if t else (True,))}
    with bare_frozen(model, dev, x):  # renders and bare passes alike on the folded network
        for t in targets:
            fns[("bare", t)] = bare_step(prefix(t), x, lambda o: o[:, 0].mean())
        fns[("bare", None)] = bare_step(model, x, lambda o: o[:, 1].sum())
        times = interleaved(fns, dev, rounds=3 if quick else 7, reps=1)
    times = {k: v / (1 if k[0] == "bare" else steps) for k, v in times.items()}
    full = times[(None, True)]
    for t in targets:
        time_share = times[("bare", t)] / times[("bare", None)]
        rows.append(
            {
                "target": t,
                "FLOP share": shares[t],
                "time share (bare prefix)": time_share,
                "early-stopped step / full step": times[(t, True)] / full,
                "vs time share (pp)": 100 * (times[(t, True)] / full - time_share),
                "vs FLOP share (pp)": 100 * (times[(t, True)] / full - shares[t]),
                "no early stop / full step": times[(t, False)] / full,
            }
        )
    title = f"Early stop: EfficientNet-Lite0 at {size} px, full step {1e3 * full:.1f} ms"
    return table(title, list(rows[0]), [list(r.values()) for r in rows]), rows


def render_section(dev: torch.device, quick: bool) -> tuple[str, list[dict]]:
    model = efficientnet_lite(0).to(dev)
    size = 64 if quick else 224
    rows = []
    big = 4 if quick else 16
    configs = [(1, "_blocks.8", True), (1, None, True), (big, "_blocks.8", True)]
    configs.append((1, "_blocks.8", False))  # the absolute gain of folding, and its ratio
    for batch, target, fold in configs:
        objective = obj.class_logit(1) if target is None else obj.channel(target, 0)
        objs = [objective] * batch if batch > 1 else objective
        short, steps = (2, 4) if quick else (4, 24)  # marginal cost of the extra steps
        # the default stack; batchnorms folded or not in both the renders and the bare passes
        kw = {"transforms": "standard", "progress": False, "device": dev, "fold_bn": fold}

        def run(objs=objs, batch=batch, n=steps, kw=kw):
            midnite.render(model, objs, size=size, steps=n, batch=batch, **kw)

        def run_short(objs=objs, batch=batch, n=short, kw=kw):
            midnite.render(model, objs, size=size, steps=n, batch=batch, **kw)

        seen_size = size + 12  # the standard stack adds 6 mirrored pixels on every side
        example = torch.rand(1, 3, seen_size, seen_size) if fold else None
        with bare_frozen(model, dev, example):
            x = layout(torch.rand(batch, 3, seen_size, seen_size, device=dev))
            tap = midnite.engine.ActivationCapture(
                model, [target or ""], early_stop=target is not None
            )

            def bare(x=x, target=target, tap=tap, n=steps - short):
                # as many steps as the marginal cost covers, hooked like the engine's model
                with tap:
                    for _ in range(n):
                        out = tap(x.detach().requires_grad_(True))[target or ""]
                        (out[:, 1].sum() if target is None else out.mean()).backward()

            times = interleaved(
                {"render": run, "short": run_short, "bare": bare},
                dev,
                rounds=3 if quick or batch > 1 else 9,  # batch-1 rounds are cheap and noisy
                reps=1,
                warmup=1,
            )
        step = (times["render"] - times["short"]) / (steps - short)
        bare_step_s = times["bare"] / (steps - short)
        rows.append(
            {
                "objective": repr(objective),
                "batch": batch,
                "fold_bn": fold,
                "midnite ms/step": 1e3 * step,
                "bare fwd+bwd ms": 1e3 * bare_step_s,
                "ratio": step / bare_step_s,
                "target": "<= 1.25",
            }
        )
    title = (
        f"render() step (marginal cost of extra steps) with the default stack at {size} px vs a "
        "bare forward+backward of the model (stopped at the same layer) on the size it sees"
    )
    return table(title, list(rows[0]), [list(r.values()) for r in rows]), rows


def batch_section(dev: torch.device, quick: bool) -> tuple[str, list[dict]]:
    model = efficientnet_lite(0).to(dev)
    n = 4 if quick else 16
    size = 64 if quick else 224
    steps = 3 if quick else 20
    target = "_blocks.8"
    objs = [obj.channel(target, i) for i in range(n)]

    def batched():
        midnite.render(model, objs, size=size, steps=steps, progress=False, device=dev)

    def sequential():
        for o in objs:
            midnite.render(model, o, size=size, steps=steps, progress=False, device=dev)

    # the ceiling: how much cheaper the network itself is per image in one batch
    tap = midnite.engine.hooks.ActivationCapture(model, [target])
    seen = size + 12
    one = layout(torch.rand(1, 3, seen, seen, device=dev))
    many = layout(torch.rand(n, 3, seen, seen, device=dev))

    def bare(x):
        out = tap(x.detach().requires_grad_(True))[target]
        out[torch.arange(len(out)), torch.arange(len(out))].mean((1, 2)).sum().backward()

    def bare_batched():
        with tap:
            for _ in range(steps):
                bare(many)

    def bare_sequential():
        with tap:
            for _ in range(steps * n):
                bare(one)

    with bare_frozen(model, dev, one):
        bare_times = interleaved(
            {"batched": bare_batched, "sequential": bare_sequential},
            dev,
            rounds=2 if quick else 7,  # cheap next to the renders; the ceiling is noisy
            reps=1,
            warmup=1,
        )
    times = interleaved(
        {"batched": batched, "sequential": sequential},
        dev,
        rounds=2 if quick else 3,
        reps=1,
        warmup=1,
    )
    rows = [
        {
            "what": "render()",
            "units": n,
            "steps": steps,
            "one batch (s)": times["batched"],
            "one after another (s)": times["sequential"],
            "speed-up": times["sequential"] / times["batched"],
            "target": ">= 8 (GPU)" if dev.type == "cuda" else ">= 2 (CPU)",
        },
        {
            "what": "bare fwd+bwd (the ceiling)",
            "units": n,
            "steps": steps,
            "one batch (s)": bare_times["batched"],
            "one after another (s)": bare_times["sequential"],
            "speed-up": bare_times["sequential"] / bare_times["batched"],
            "target": "-",
        },
    ]
    title = (
        f"{n} channels of {target} at {size} px on {dev}: one batch vs one by one "
        "(renders from scratch; bare passes at the size the model sees)"
    )
    return table(title, list(rows[0]), [list(r.values()) for r in rows]), rows


SECTIONS = {
    "classic": classic_section,
    "early": early_section,
    "render": render_section,
    "batch": batch_section,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", default=None, help="also write the tables as JSON here")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's own)"
    )
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    names = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in names if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {', '.join(SECTIONS)}")
    info = machine()
    print(f"midnite speed benchmark, {info}")
    payload = {"machine": info, "device": str(dev), "quick": args.quick, "sections": {}}
    for name in names:
        t0 = time.perf_counter()
        text, rows = SECTIONS[name](dev, args.quick)
        sync(dev)
        print(f"\n{text}\n({time.perf_counter() - t0:.0f} s)", flush=True)
        payload["sections"][name] = rows
    write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
