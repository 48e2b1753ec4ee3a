"""Engine regularizers: TV and L2 against hand-computed values, and argument checking."""

from __future__ import annotations

import math

import pytest
import torch

from midnite.engine.regularizers import L2, Regularizer, TotalVariation, check_regularizers

# forward differences on the 2x2 grid (dx = right - here, dy = below - here):
#   (0,0): dx 1, dy 2 -> 5    (0,1): dx 2, dy 1 -> 5
#   (1,0): dx 0, dy 3 -> 9    (1,1): dx 0, dy -2 -> 4
GRID = torch.tensor([[0.0, 1.0, 3.0], [2.0, 2.0, 2.0], [5.0, 0.0, 1.0]]).view(1, 1, 3, 3)


def test_tv_beta2_by_hand():
    torch.testing.assert_close(TotalVariation(1.0, beta=2)(GRID), torch.tensor([23.0 / 4]))
    torch.testing.assert_close(TotalVariation(2.0)(GRID), torch.tensor([23.0 / 2]))


def test_tv_beta1_by_hand():
    expected = (2 * math.sqrt(5.0) + 3.0 + 2.0) / 4
    torch.testing.assert_close(
        TotalVariation(1.0, beta=1)(GRID), torch.tensor([expected]), atol=1e-5, rtol=1e-5
    )


def test_tv_averages_over_channels_and_is_per_image():
    img = torch.cat([GRID, torch.zeros_like(GRID)], dim=1)  # channel 1 is flat
    batch = torch.cat([img, torch.full_like(img, 0.3), 2 * img])
    value = TotalVariation(1.0)(batch)
    assert value.shape == (3,)
    torch.testing.assert_close(value, torch.tensor([23.0 / 8, 0.0, 4 * 23.0 / 8]))


def test_tv_zero_on_constant_and_thin_images():
    assert TotalVariation(1e2)(torch.full((2, 3, 5, 5), 0.7)).tolist() == [0.0, 0.0]
    for shape in ((2, 3, 5, 1), (2, 3, 1, 5), (1, 1, 1, 1)):
        value = TotalVariation(1e2, beta=1)(torch.rand(shape))
        assert value.shape == (shape[0],)
        assert not value.isnan().any() and (value == 0).all()


def test_tv_gradient_finite_on_flat_areas_for_small_beta():
    img = torch.full((1, 3, 4, 4), 0.5, requires_grad=True)
    TotalVariation(1e2, beta=1)(img).sum().backward()
    assert torch.isfinite(img.grad).all()


def test_tv_rejects_non_batches():
    with pytest.raises(ValueError, match=r"\(B, C, H, W\), got \(3, 4, 4\)"):
        TotalVariation(1.0)(torch.rand(3, 4, 4))


def test_l2_by_hand():
    img = torch.tensor([0.0, 1.0, 0.5, 0.25]).view(1, 1, 2, 2)
    # (x - 0.5)^2 = 0.25 + 0.25 + 0 + 0.0625
    torch.testing.assert_close(L2(2.0)(img), torch.tensor([1.125]))
    two = torch.cat([img, torch.full_like(img, 0.5)])
    torch.testing.assert_close(L2(1.0)(two), torch.tensor([0.5625, 0.0]))
    # another centre: (x - 0)^2 = 0 + 1 + 0.25 + 0.0625
    torch.testing.assert_close(L2(1.0, center=0.0)(img), torch.tensor([1.3125]))


def test_l2_pulls_towards_gray():
    img = torch.tensor([0.0, 0.2, 0.5, 0.9]).view(1, 1, 2, 2).requires_grad_(True)
    L2(1.0)(img).sum().backward()
    # d/dx = 2 (x - 0.5): a descent step moves every pixel towards 0.5
    torch.testing.assert_close(img.grad.flatten(), torch.tensor([-1.0, -0.6, 0.0, 0.8]))


def test_reprs():
    assert repr(L2(1e-3)) == "L2(coefficient=0.001, center=0.5)"
    assert repr(TotalVariation(5, beta=1.5)) == "TotalVariation(coefficient=5, beta=1.5)"


def test_check_regularizers():
    l2, tv = L2(1.0), TotalVariation(1.0)
    assert check_regularizers(None) == []
    assert check_regularizers(l2) == [l2]
    assert check_regularizers([l2, tv]) == [l2, tv]
    assert check_regularizers((tv,)) == [tv]
    assert check_regularizers([]) == []
    with pytest.raises(TypeError, match=r"regularizers\[1\] must be a Regularizer.*got str"):
        check_regularizers([l2, "tv"])
    with pytest.raises(TypeError, match=r"regularizers\[0\].*got function"):
        check_regularizers([lambda img: img.sum()])
    with pytest.raises(TypeError, match="regularizers must be a list of regularizers, got int"):
        check_regularizers(3)
    with pytest.raises(TypeError, match=r"regularization\[0\]"):
        check_regularizers(["tv"], "regularization")


def test_custom_regularizer_subclass():
    class L1(Regularizer):
        def loss(self, image):
            return image.abs().flatten(1).sum(1)

    reg = L1()
    assert check_regularizers(reg) == [reg]
    assert reg(torch.ones(2, 1, 2, 2)).tolist() == [4.0, 4.0]
    with pytest.raises(NotImplementedError, match="loss"):
        Regularizer()(torch.ones(1, 1, 2, 2))


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_bad_coefficients_value_error(bad):
    with pytest.raises(ValueError, match=r"coefficient must be a finite number >= 0, got"):
        L2(bad)
    with pytest.raises(ValueError, match=r"coefficient must be a finite number >= 0, got"):
        TotalVariation(bad)


def test_bad_beta_center_and_types():
    with pytest.raises(ValueError, match=r"beta must be a finite number > 0, got 0"):
        TotalVariation(1.0, beta=0)
    with pytest.raises(ValueError, match=r"beta.*-2"):
        TotalVariation(1.0, beta=-2.0)
    with pytest.raises(ValueError, match=r"center must be a finite number, got nan"):
        L2(1.0, center=math.nan)
    with pytest.raises(TypeError, match="coefficient must be a finite number >= 0, got bool"):
        L2(True)
    with pytest.raises(TypeError, match=r"coefficient must be .* got str '1e2'"):
        TotalVariation("1e2")
    assert L2(0).coefficient == 0.0  # zero switches it off, allowed
