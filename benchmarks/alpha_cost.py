"""Cost of the attribution alpha map: one render step with and without its gradient hook.

The render loop (``midnite.engine.loop._run``) hooks the parameterization's output and
adds ``|grad|`` averaged over colours to ``RenderResult.alpha`` in the backward pass it runs
anyway. This times that step both ways, interleaved, as medians, on EfficientNet-Lite0
``_blocks.8`` (224 px) and on two tiny conv nets, with the default recipe (Fourier, decorrelated
colours, the standard per-step transforms). The last columns time the hook's own work (one
``abs`` and one in-place add on a gradient-sized tensor) alone, a figure that the noise of a
shared machine does not swamp.

    python benchmarks/alpha_cost.py [--threads 1] [--rounds 15] [--reps 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import interleaved, machine, table

from midnite import models
from midnite import objectives as obj
from midnite.engine.config import RenderConfig
from midnite.engine.loop import _make_optimizer, _setup


def _tiny(width: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1)
    )


def _case(model: nn.Module, layer: str, size: int, batch: int, device: str, rounds: int, reps: int):
    config = RenderConfig.resolve(
        model, obj.channel(layer, 0), size=size, batch=batch, device=device, normalize="imagenet"
    )
    image, renderer = _setup(model, config, config.objective, config.batch, 0)
    optim = _make_optimizer("adam", list(image.parameters()), config.lr)
    alpha = torch.zeros(image.shape, device=renderer.device)

    def accumulate(grad: torch.Tensor) -> None:  # as in loop._AlphaSum.add
        alpha.add_(grad.detach().abs())

    def step(hook: bool):
        optim.zero_grad(set_to_none=True)
        out = image()
        if hook:
            out.register_hook(accumulate)
        loss, _ = renderer.loss(out)
        loss.backward()
        optim.step()

    grad = torch.randn(image.shape, device=renderer.device)
    with renderer:
        with torch.no_grad():
            renderer.validate(image())
        times = interleaved(
            {
                "without": lambda: step(False),
                "with alpha": lambda: step(True),
                "op": lambda: accumulate(grad),  # the hook's work alone: free of step noise
            },
            renderer.device,
            rounds=rounds,
            reps=reps,
        )
    return times["without"], times["with alpha"], times["op"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cases = [
        ("EfficientNet-Lite0 _blocks.8", models.efficientnet_lite(0), "_blocks.8", 224, 1),
        ("tiny conv 8 ch", _tiny(8), "2", 64, 1),
        ("tiny conv 8 ch, batch 4", _tiny(8), "2", 128, 4),
    ]
    rows = []
    for name, model, layer, size, batch in cases:
        without, with_alpha, op = _case(
            model, layer, size, batch, args.device, args.rounds, args.reps
        )
        rows.append(
            (
                name,
                f"{size} px x{batch}",
                without * 1e3,
                with_alpha * 1e3,
                f"{100 * (with_alpha / without - 1):+.1f}%",
                op * 1e6,
                f"{100 * op / without:.2f}%",
            )
        )
    print(machine())
    print(
        table(
            "render step with and without the alpha map (median ms per step)",
            ["model", "images", "without", "with alpha", "cost", "op us", "op / step"],
            rows,
        )
    )


if __name__ == "__main__":
    main()
