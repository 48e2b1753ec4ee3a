"""Regularizers: penalties on an image batch, one value per image, added to the loss every step.

A regularizer is a :class:`Regularizer`: ``reg(image)`` maps ``(B, C, H, W)`` to ``(B,)``, to be
minimized. ``TotalVariation`` penalizes differences between neighbouring pixels, ``L2`` pulls
pixels towards a value (mid-gray by default).
"""

from __future__ import annotations

from torch import Tensor

from midnite.engine.checks import check_image, check_real

__all__ = ["L2", "Regularizer", "TotalVariation", "check_regularizers"]


class Regularizer:
    """Base: ``loss(image)`` returns a ``(B,)`` penalty for an image batch ``(B, C, H, W)``."""

    def loss(self, image: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement loss(image)")

    def __call__(self, image: Tensor) -> Tensor:
        return self.loss(image)


class L2(Regularizer):
    """``coefficient * sum((x - center)^2)`` per image: pulls every pixel towards ``center``.

    With the default ``center=0.5``, pixels the objective gives no gradient (outside the
    target's receptive field) feel only this pull, and Adam moves them at full speed, so they
    turn gray however small the coefficient.
    """

    def __init__(self, coefficient: float, center: float = 0.5):
        self.coefficient = check_real("coefficient", coefficient, ge=0.0)
        self.center = check_real("center", center)

    def loss(self, image: Tensor) -> Tensor:
        return self.coefficient * (image - self.center).square().flatten(1).sum(1)

    def __repr__(self) -> str:
        return f"L2(coefficient={self.coefficient:g}, center={self.center:g})"


class TotalVariation(Regularizer):
    """Total variation ``TV^beta`` (Mahendran & Vedaldi 2015), averaged over pixels and channels.

    ``coefficient * mean((dx^2 + dy^2)^(beta/2))`` with forward differences over the (H-1, W-1)
    grid; a constant image scores 0. ``beta < 2`` gets a tiny epsilon inside the power so the
    gradient stays finite on flat areas.
    """

    def __init__(self, coefficient: float, beta: float = 2.0):
        self.coefficient = check_real("coefficient", coefficient, ge=0.0)
        self.beta = check_real("beta", beta, gt=0.0)

    def loss(self, image: Tensor) -> Tensor:
        check_image("image", image)
        if image.shape[-1] < 2 or image.shape[-2] < 2:
            return image.new_zeros(image.shape[0])
        dx = image[..., :-1, 1:] - image[..., :-1, :-1]
        dy = image[..., 1:, :-1] - image[..., :-1, :-1]
        squared = dx.square() + dy.square()
        tv = squared if self.beta == 2.0 else (squared + 1e-8).pow(self.beta / 2)
        return self.coefficient * tv.flatten(1).mean(1)

    def __repr__(self) -> str:
        return f"TotalVariation(coefficient={self.coefficient:g}, beta={self.beta:g})"


def check_regularizers(items: object, name: str = "regularizers") -> list[Regularizer]:
    """``items`` (None, one regularizer or a list of them) as a list of :class:`Regularizer`.

    Anything else is a TypeError naming ``name`` and the position of the offending item.
    """
    if items is None:
        return []
    if isinstance(items, Regularizer):
        return [items]
    if not isinstance(items, (list, tuple)):
        raise TypeError(f"{name} must be a list of regularizers, got {type(items).__name__}")
    for i, item in enumerate(items):
        if not isinstance(item, Regularizer):
            raise TypeError(
                f"{name}[{i}] must be a Regularizer such as TotalVariation(1.0), "
                f"got {type(item).__name__}: {item!r}"
            )
    return list(items)
