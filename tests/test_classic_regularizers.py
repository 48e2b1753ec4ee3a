"""Classic regularizers: the notebook's names and defaults over the engine's penalties."""

from __future__ import annotations

import math

import pytest
import torch

import midnite
from midnite import objectives as O
from midnite.engine.regularizers import L2, Regularizer, TotalVariation, check_regularizers
from midnite.visualization.regularizers import Regularization, TVRegularization, WeightDecay

from conftest import tiny_cnn


def test_defaults():
    assert WeightDecay().decay_factor == 1e-7
    tv = TVRegularization()
    assert (tv.coefficient, tv.beta) == (1e2, 2.0)


def test_they_are_the_engine_penalties():
    img = torch.rand(3, 3, 8, 9, generator=torch.Generator().manual_seed(0))
    assert isinstance(WeightDecay(), L2) and isinstance(WeightDecay(), Regularization)
    assert isinstance(TVRegularization(), TotalVariation)
    assert torch.equal(WeightDecay(2e-3)(img), L2(2e-3, center=0.5)(img))
    assert torch.equal(TVRegularization(5.0, beta=1.5)(img), TotalVariation(5.0, 1.5)(img))
    assert torch.equal(TVRegularization()(img), TotalVariation(1e2)(img))


def test_weight_decay_by_hand():
    img = torch.tensor([0.0, 1.0, 0.5, 0.25]).view(1, 1, 2, 2)
    # (x - 0.5)^2 = 0.25 + 0.25 + 0 + 0.0625
    torch.testing.assert_close(WeightDecay(2.0)(img), torch.tensor([1.125]))


def test_reprs():
    assert repr(WeightDecay(1e-3)) == "WeightDecay(decay_factor=0.001)"
    assert repr(TVRegularization(5, beta=1.5)) == "TVRegularization(coefficient=5, beta=1.5)"


def test_custom_regularization_subclass():
    class L1(Regularization):
        def loss(self, image):
            return image.abs().flatten(1).sum(1)

    reg = L1()
    assert isinstance(reg, Regularizer)
    assert check_regularizers(reg) == [reg]
    assert reg(torch.ones(2, 1, 2, 2)).tolist() == [4.0, 4.0]


def test_render_takes_classic_and_engine_regularizers_alike():
    def run(regs):
        return midnite.render(
            tiny_cnn(), O.class_logit(1), size=12, steps=3, regularizers=regs, progress=False
        )

    classic = run([TVRegularization(5.0), WeightDecay(1e-2)])
    engine = run([TotalVariation(5.0), L2(1e-2)])
    assert torch.equal(classic.images, engine.images)
    assert not torch.equal(classic.images, run([]).images)


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_bad_coefficients_value_error(bad):
    with pytest.raises(ValueError, match=r"decay_factor must be a finite number >= 0, got"):
        WeightDecay(bad)
    with pytest.raises(ValueError, match=r"coefficient must be a finite number >= 0"):
        TVRegularization(bad)


def test_bad_beta_and_types():
    with pytest.raises(ValueError, match=r"beta must be a finite number > 0, got 0"):
        TVRegularization(beta=0)
    with pytest.raises(TypeError, match="decay_factor must be a finite number >= 0, got bool"):
        WeightDecay(True)
    with pytest.raises(TypeError, match=r"coefficient must be .* got str '1e2'"):
        TVRegularization("1e2")
    assert WeightDecay(0).decay_factor == 0.0  # zero switches it off, allowed
