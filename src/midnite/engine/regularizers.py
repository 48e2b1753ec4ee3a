"""Regularizers: penalties on the image, one value per image, added to the loss at every step."""

from __future__ import annotations

import math

from torch import Tensor


def _positive_finite(value: float, name: str, *, allow_zero: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}: {value!r}")
    ok = math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}, got {value!r}")
    return float(value)


class Regularization:
    """Base: ``loss(image)`` returns a ``(B,)`` penalty for an image batch ``(B, C, H, W)``."""

    def loss(self, image: Tensor) -> Tensor:
        raise NotImplementedError

    def __call__(self, image: Tensor) -> Tensor:
        return self.loss(image)


class WeightDecay(Regularization):
    """L2 decay of the pixels towards mid-gray: ``decay_factor * sum((x - 0.5)^2)`` per image.

    Pixels the objective gives no gradient (outside the target's receptive field) feel only this
    pull, and Adam moves them at full speed, so they "gray out" however small the factor.
    """

    def __init__(self, decay_factor: float = 1e-7):
        self.decay_factor = _positive_finite(decay_factor, "decay_factor")

    def loss(self, image: Tensor) -> Tensor:
        return self.decay_factor * (image - 0.5).square().flatten(1).sum(1)

    def __repr__(self) -> str:
        return f"WeightDecay(decay_factor={self.decay_factor:g})"


class TVRegularization(Regularization):
    """Total variation ``TV^beta`` (Mahendran & Vedaldi 2015), averaged over pixels and channels.

    ``coefficient * mean((dx^2 + dy^2)^(beta/2))`` with forward differences over the (H-1, W-1)
    grid; a constant image scores 0. ``beta < 2`` gets a tiny epsilon inside the power so the
    gradient stays finite on flat areas.
    """

    def __init__(self, coefficient: float = 1e2, beta: float = 2.0):
        self.coefficient = _positive_finite(coefficient, "coefficient")
        self.beta = _positive_finite(beta, "beta", allow_zero=False)

    def loss(self, image: Tensor) -> Tensor:
        if image.dim() != 4:
            raise ValueError(
                f"expected an image batch (B, C, H, W), got shape {tuple(image.shape)}"
            )
        if image.shape[-1] < 2 or image.shape[-2] < 2:
            return image.new_zeros(image.shape[0])
        dx = image[..., :-1, 1:] - image[..., :-1, :-1]
        dy = image[..., 1:, :-1] - image[..., :-1, :-1]
        sq = dx.square() + dy.square()
        tv = sq if self.beta == 2.0 else (sq + 1e-8).pow(self.beta / 2)
        return self.coefficient * tv.flatten(1).mean(1)

    def __repr__(self) -> str:
        return f"TVRegularization(coefficient={self.coefficient:g}, beta={self.beta:g})"


def check_regularizers(items: object) -> list[Regularization]:
    """Validate a regularization list; anything that is not a Regularization is a TypeError."""
    if items is None:
        return []
    if isinstance(items, Regularization):
        return [items]
    if not isinstance(items, (list, tuple)):
        raise TypeError(
            f"regularization must be a list of regularizers, got {type(items).__name__}"
        )
    for i, item in enumerate(items):
        if not isinstance(item, Regularization):
            raise TypeError(
                f"regularization[{i}] must be a regularizer such as WeightDecay() or "
                f"TVRegularization(), got {type(item).__name__}: {item!r}"
            )
    return list(items)
