"""The classic regularizers, with the notebook's names and defaults, over the engine's penalties.

``WeightDecay(decay_factor)`` is the engine's ``L2`` towards mid-gray, ``TVRegularization``
its ``TotalVariation``; both are engine regularizers, so ``render(regularizers=[...])`` takes
them too. ``Regularization`` is the classic base for one's own penalties.
"""

from __future__ import annotations

from midnite.engine.checks import check_real
from midnite.engine.regularizers import L2, Regularizer, TotalVariation

__all__ = ["Regularization", "TVRegularization", "WeightDecay"]


class Regularization(Regularizer):
    """Classic base: ``loss(image)`` returns a ``(B,)`` penalty for ``(B, C, H, W)`` images."""


class WeightDecay(Regularization, L2):
    """``decay_factor * sum((x - 0.5)^2)`` per image (default 1e-7).

    Pixels that get no gradient from the objective "gray out": only this pull acts on them.
    """

    def __init__(self, decay_factor: float = 1e-7):
        super().__init__(check_real("decay_factor", decay_factor, ge=0.0), center=0.5)

    @property
    def decay_factor(self) -> float:
        return self.coefficient

    def __repr__(self) -> str:
        return f"WeightDecay(decay_factor={self.decay_factor:g})"


class TVRegularization(Regularization, TotalVariation):
    """Total variation penalty added to the loss (defaults ``coefficient=1e2``, ``beta=2``)."""

    def __init__(self, coefficient: float = 1e2, beta: float = 2.0):
        super().__init__(coefficient, beta)

    def __repr__(self) -> str:
        return f"TVRegularization(coefficient={self.coefficient:g}, beta={self.beta:g})"
