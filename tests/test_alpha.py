"""The attribution alpha map of every render (``RenderResult.alpha``), its files and its page."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import midnite
from midnite import objectives as obj
from midnite.engine.renderer import _failures

from conftest import assert_same_state, model_state, tiny_cnn

FAST = {"steps": 3, "progress": False, "transforms": None}


class LeftHalf(nn.Module):
    """A conv that reads only the left half of the image."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return self.conv(x[..., : x.shape[-1] // 2])


def test_alpha_shape_sign_and_place():
    model = tiny_cnn()
    before = model_state(model)
    result = midnite.render(model, obj.channel("2", 1), size=(12, 20), batch=2, **FAST)
    alpha = result.alpha
    assert alpha.shape == (2, 12, 20) and alpha.dtype == torch.float32
    assert alpha.device.type == "cpu"
    assert bool(torch.isfinite(alpha).all()) and float(alpha.min()) >= 0
    assert float(alpha.flatten(1).max(1).values.min()) > 0  # every image got a gradient
    assert_same_state(before, model)


@pytest.mark.parametrize("param", ["fourier", "pixel"])
def test_alpha_is_zero_where_the_model_does_not_look(param):
    result = midnite.render(LeftHalf(), obj.channel("conv", 0), size=16, param=param, **FAST)
    left, right = result.alpha[..., :8], result.alpha[..., 8:]
    assert torch.equal(right, torch.zeros_like(right))
    assert bool((left > 0).all())


def test_alpha_known_answer():
    # objective = mean over H*W of sum_c w_c x_c: d(-objective)/dx_c = -w_c / (H*W) at every
    # pixel and step, so alpha = steps * mean_c |w_c| / (H*W), whatever the image
    conv = nn.Conv2d(3, 1, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([0.5, -1.0, 2.0]).view(1, 3, 1, 1))
    model = nn.Sequential(conv)
    steps, h, w = 4, 6, 10
    result = midnite.render(
        model, obj.channel("0", 0), size=(h, w), steps=steps, transforms=None, progress=False
    )
    expected = steps * (3.5 / 3) / (h * w)
    assert torch.allclose(result.alpha, torch.full((1, h, w), expected), rtol=1e-5)


def test_alpha_adds_up_over_steps():
    kw = {"size": 10, "transforms": None, "progress": False, "param": "pixel", "lr": 1e-6}
    one = midnite.render(tiny_cnn(), obj.channel("0", 2), steps=1, **kw).alpha
    five = midnite.render(tiny_cnn(), obj.channel("0", 2), steps=5, **kw).alpha
    # a tiny lr barely moves the image: five steps of nearly the same gradient
    assert torch.allclose(five, 5 * one, rtol=1e-3)


def test_alpha_covers_regularizers():
    tv = midnite.engine.regularizers.TotalVariation(1.0)
    plain = midnite.render(LeftHalf(), obj.channel("conv", 0), size=16, **FAST).alpha
    with_tv = midnite.render(
        LeftHalf(), obj.channel("conv", 0), size=16, regularizers=[tv], **FAST
    ).alpha
    assert float(plain[..., 9:].max()) == 0 and float(with_tv[..., 9:].max()) > 0


def test_failed_alpha_is_named():
    start = torch.zeros(2)
    history = torch.zeros(3, 2)
    image = torch.zeros(2, 3, 4, 4)
    alpha = torch.zeros(2, 4, 4)
    alpha[1, 0, 0] = float("nan")
    failed = _failures(start, history, start, image, alpha)
    assert list(failed) == [1] and "alpha map" in failed[1]
    assert _failures(start, history, start, image, torch.zeros(2, 4, 4)) == {}


def test_non_finite_gradient_fails_the_image():
    # a finite objective whose gradient is NaN (sqrt at 0): the image is no result
    zero = nn.Conv2d(3, 2, 1)
    nn.init.zeros_(zero.weight)
    nn.init.zeros_(zero.bias)
    sqrt = obj.custom("0", lambda act: act.abs().sqrt().flatten(1).mean(1))
    with pytest.warns(RuntimeWarning, match="failed"):
        result = midnite.render(nn.Sequential(zero), sqrt, size=8, **FAST)
    assert 0 in result.failed and not bool(torch.isfinite(result.alpha).all())
