"""``estimate_memory``: how much memory a render will need on its device, before it starts."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from midnite.engine.config import RenderConfig
from midnite.engine.loop import _setup
from midnite.engine.objectives import PerImage

__all__ = ["MemoryEstimate", "estimate_memory"]


@dataclass(frozen=True)
class MemoryEstimate:
    """The memory a render needs on its device, in bytes: ``fixed + per_image * batch``.

    ``per_image`` is what each image adds: the activations kept for the backward pass and the
    gradients that flow through them, the image's parameters with their gradient and optimizer
    state, and its objective history; ``fixed`` what does not grow with the batch (the model's
    weights, moved or folded for the render). An estimate from one probe pass, not a promise.
    """

    per_image: int
    fixed: int

    def bytes(self, batch: int) -> int:
        """The bytes a render of ``batch`` images needs."""
        return self.fixed + self.per_image * batch

    def max_batch(self, available: int) -> int:
        """The largest batch that fits in ``available`` bytes (0 when not even one does)."""
        return max(0, (available - self.fixed) // max(1, self.per_image))


# The peak of a step holds what autograd saved plus the gradients and layout copies in flight
# and what the heap cannot hand back between them (2x what was saved), and image-sized
# temporaries of the parameterization and per-step transforms that are not all saved (spectrum,
# colours, jitter, scale, rotation: 8 images' worth). Measured on the CPU as resident memory per
# image (a 2-conv net at 1024 px, plain and residual conv nets at 256-512 px, EfficientNet-Lite0
# at 224-448 px; batch 1 to 8), the estimate stayed within about 1.5x of the peak both ways.
_BACKWARD_FACTOR = 2.0
_IMAGE_TEMPORARIES = 8


def estimate_memory(model: nn.Module, config: RenderConfig) -> MemoryEstimate:
    """Estimate the memory ``render_config(model, config)`` will need, before running it.

    One probe step at batch 1, with the config's size, objective (the first, for per-image
    objectives), transforms and regularizers: the tensors autograd saves for the backward pass
    are summed (on CUDA the allocator's measured peak is used instead), then scaled by the
    gradients in flight. The model is left as it was, as by a render.
    """
    if not isinstance(config, RenderConfig):
        raise TypeError(f"config must be a RenderConfig, got {type(config).__name__}")
    objective = config.objective
    if isinstance(objective, PerImage):
        objective = objective.objectives[0]
    # one image; the probe's values do not matter, only its sizes
    image, renderer = _setup(model, config, objective, 1, 0)
    dev = renderer.device
    weights = sum(t.numel() * t.element_size() for t in itertools.chain(
        model.parameters(), model.buffers()))  # fmt: skip
    params = sum(p.numel() * p.element_size() for p in image.parameters())
    saved: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        storage = t.untyped_storage()
        saved[storage.data_ptr()] = storage.nbytes()
        return t

    cuda = dev.type == "cuda"
    with renderer:
        with torch.no_grad():
            renderer.validate(image())
        if renderer.penalty is not None:
            renderer.penalty.set_target(renderer)
        resident = {
            t.untyped_storage().data_ptr()
            for t in itertools.chain(model.parameters(), model.buffers())
        }
        if cuda:
            torch.cuda.synchronize(dev)
            torch.cuda.reset_peak_memory_stats(dev)
            base = torch.cuda.memory_allocated(dev)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss, _ = renderer.loss(image())
        loss.backward()
        if cuda:
            peak = torch.cuda.max_memory_allocated(dev) - base
    kept = sum(n for ptr, n in saved.items() if ptr and ptr not in resident)
    pixels = config.channels * config.size[0] * config.size[1] * 4  # one float32 image
    activations = peak if cuda else int(kept * _BACKWARD_FACTOR) + _IMAGE_TEMPORARIES * pixels
    history = 4 * config.steps  # float32 per step
    alpha = 4 * config.channels * config.size[0] * config.size[1]  # the alpha map, per channel
    return MemoryEstimate(per_image=activations + 4 * params + history + alpha, fixed=weights)
