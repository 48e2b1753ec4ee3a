"""Input normalization: ``(x - mean) / std`` per channel, for [0, 1] images before a model."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "Normalize", "as_normalize"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel; ``Normalize.imagenet()`` for ImageNet-trained models.

    Shape:
        input ``(B, C, H, W)`` with ``C == len(mean)``; output the same.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        mean_t = torch.as_tensor(mean, dtype=torch.float32).flatten()
        std_t = torch.as_tensor(std, dtype=torch.float32).flatten()
        if mean_t.numel() != std_t.numel() or mean_t.numel() == 0:
            raise ValueError(
                f"mean and std need one value per channel each, got {mean_t.numel()} and "
                f"{std_t.numel()} values"
            )
        if not (torch.isfinite(std_t).all() and (std_t > 0).all() and torch.isfinite(mean_t).all()):
            raise ValueError(
                f"std must be finite and > 0 and mean finite, got mean={mean}, std={std}"
            )
        self.register_buffer("mean", mean_t.view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", std_t.view(1, -1, 1, 1), persistent=False)

    @classmethod
    def imagenet(cls) -> Normalize:
        return cls(IMAGENET_MEAN, IMAGENET_STD)

    mean: Tensor
    std: Tensor

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.mean.shape[1]:
            raise ValueError(
                f"Normalize expects (B, {self.mean.shape[1]}, H, W), got {tuple(x.shape)}"
            )
        mean, std = self.mean, self.std
        if x.is_floating_point() and x.dtype != mean.dtype:  # keep a half/bfloat16 input's dtype
            mean, std = mean.to(x.dtype), std.to(x.dtype)
        return (x - mean) / std

    def extra_repr(self) -> str:
        mean = ", ".join(f"{v:.3g}" for v in self.mean.flatten().tolist())
        std = ", ".join(f"{v:.3g}" for v in self.std.flatten().tolist())
        return f"mean=({mean}), std=({std})"


def as_normalize(spec: object) -> Normalize | None:
    """``None``, ``"imagenet"``, ``(mean, std)`` or a ``Normalize`` as a module (or None)."""
    if spec is None or isinstance(spec, Normalize):
        return spec
    if isinstance(spec, str):
        if spec.lower() == "imagenet":
            return Normalize.imagenet()
        raise ValueError(f"normalize must be None, 'imagenet' or (mean, std), got {spec!r}")
    if isinstance(spec, (tuple, list)) and len(spec) == 2:
        return Normalize(spec[0], spec[1])
    raise TypeError(
        f"normalize must be None, 'imagenet', (mean, std) or a Normalize, got {type(spec).__name__}"
    )
