"""midnite.render: results, seeds, batching, settings and bad input."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import midnite
from midnite import objectives as obj
from midnite.engine.passes import Renderer
from midnite.engine.regularizers import TotalVariation

from conftest import ResidualToy, tiny_cnn


def quick(model, objective, **kw):
    kw.setdefault("size", 32)
    kw.setdefault("steps", 8)
    kw.setdefault("progress", False)
    return midnite.render(model, objective, **kw)


def test_render_result_shapes_and_gain():
    model = ResidualToy()
    result = quick(model, obj.channel("block2", 3), steps=20, lr=0.3)
    assert result.images.shape == (1, 3, 32, 32)
    assert result.images.min() >= 0 and result.images.max() <= 1
    assert result.history.shape == (20, 1)
    assert result.final[0] > 3 * result.start[0] + 0.01
    assert result.history[-1, 0] > result.history[0, 0]
    assert "20 steps" in repr(result)


def test_settings_record_everything_and_are_json():
    result = quick(ResidualToy(), obj.channel("block2", 3), size=(32, 40), seed=7)
    s = result.settings
    assert s["seed"] == 7 and s["size"] == [32, 40] and s["steps"] == 8
    assert s["objective"] == "channel('block2', 3)"
    assert set(s["versions"]) >= {"midnite", "torch", "python"}
    json.dumps(s)
    assert result.images.shape == (1, 3, 32, 40)


def test_same_seed_same_images():
    a = quick(ResidualToy(), obj.channel("block2", 3), seed=3)
    b = quick(ResidualToy(), obj.channel("block2", 3), seed=3)
    c = quick(ResidualToy(), obj.channel("block2", 3), seed=4)
    assert torch.equal(a.images, b.images)
    assert not torch.equal(a.images, c.images)
    fresh = quick(ResidualToy(), obj.channel("block2", 3), seed=None)
    assert isinstance(fresh.settings["seed"], int)
    again = quick(ResidualToy(), obj.channel("block2", 3), seed=fresh.settings["seed"])
    assert torch.equal(fresh.images, again.images)


@pytest.mark.parametrize(
    ("stack", "first"), [("standard", "Compose(RandomAffine("), ("lucid", "Compose(Pad(")]
)
def test_named_transform_stacks(stack, first):
    result = quick(ResidualToy(), obj.channel("block2", 3), transforms=stack, steps=10, lr=0.3)
    assert result.settings["transforms"].startswith(first)
    assert result.final[0] > result.start[0]


@pytest.mark.parametrize("param", ["pixel", "fourier"])
def test_parameterizations_and_no_transforms(param):
    result = quick(
        ResidualToy(), obj.channel("block1", 0), param=param, transforms=None, steps=15, lr=0.1
    )
    assert result.final[0] > result.start[0]


def test_batched_objectives_are_one_per_image():
    model = ResidualToy()
    units = [1, 4, 7]
    objectives = [obj.channel("block2", u) for u in units]
    result = quick(model, objectives, steps=25, lr=0.1, param="pixel", transforms=None)
    assert result.images.shape[0] == 3
    with torch.no_grad():
        stem = model.stem(result.images)
        acts = model.block2(stem + model.block1(stem))
    for i, u in enumerate(units):
        unit_means = acts[:, u].mean((1, 2))
        assert torch.isclose(result.final[i], unit_means[i], atol=1e-5)
        assert unit_means.argmax() == i  # each image excites its own unit most
        assert result.final[i] > result.start[i]


def test_batched_equals_one_forward_per_step():
    model = ResidualToy()
    quick(model, [obj.channel("block1", u) for u in range(4)], steps=6)
    # one full validation pass + one early-stopped pass per step: block2 ran once in all
    assert model.calls["block2"] == 1


def test_regularizers_enter_the_loss():
    plain = quick(ResidualToy(), obj.channel("block1", 0), transforms=None, steps=15, lr=0.1)
    smooth = quick(
        ResidualToy(),
        obj.channel("block1", 0),
        transforms=None,
        steps=15,
        lr=0.1,
        regularizers=[TotalVariation(1e4)],
    )
    tv = TotalVariation(1.0)
    assert tv(smooth.images) < tv(plain.images)


def test_renderer_requires_with_block():
    r = Renderer(tiny_cnn(), obj.class_logit(0))
    with pytest.raises(RuntimeError, match="with"):
        r.score(torch.rand(1, 3, 8, 8))


@pytest.mark.parametrize(
    "kw, exc, pattern",
    [
        ({"size": 0}, ValueError, r"size must be .* got 0"),
        ({"size": (8, -1)}, ValueError, r"got \(8, -1\)"),
        ({"steps": 0}, ValueError, "steps must be an int >= 1, got 0"),
        ({"batch": 0}, ValueError, "batch must be an int >= 1, got 0"),
        ({"lr": float("nan")}, ValueError, "lr"),
        ({"param": "wavelet"}, ValueError, r"\('fourier', 'pixel', 'maco'\), got 'wavelet'"),
        ({"transforms": "fancy"}, ValueError, r"'standard'\], None"),
        ({"optimizer": "sgd"}, ValueError, "'adam' or a callable"),
        ({"seed": "x"}, TypeError, "seed must be"),
        ({"normalize": "cifar"}, ValueError, "'imagenet'"),
    ],
)
def test_bad_arguments(kw, exc, pattern):
    with pytest.raises(exc, match=pattern):
        quick(ResidualToy(), obj.channel("block1", 0), **kw)


def test_bad_objectives():
    model = ResidualToy()
    with pytest.raises(IndexError, match=r"channel index 8 out of range .* 8 channels"):
        quick(model, obj.channel("block1", 8))
    with pytest.raises(ValueError, match=r"closest: .*'block1'"):
        quick(model, obj.channel("blockl", 0))
    with pytest.raises(ValueError, match="batch must equal the number of per-image objectives"):
        quick(model, [obj.channel("block1", 0)] * 2, batch=3)
    with pytest.raises(TypeError, match="Objective"):
        quick(model, "block1:0")


def test_custom_optimizer_and_normalize():
    result = quick(
        tiny_cnn(),
        obj.class_logit(1),
        optimizer=lambda params, lr: torch.optim.SGD(params, lr=lr),
        normalize="imagenet",
        lr=1.0,
    )
    assert result.settings["normalize"].startswith("Normalize(")


def test_channels_for_non_rgb_models():
    model = nn.Sequential(nn.Conv2d(4, 2, 3), nn.ReLU())
    result = quick(model, obj.channel("1", 0))
    assert result.images.shape[1] == 4


class ViewsItsInput(nn.Module):
    """A conv net that reshapes its input with ``.view``: fails on channels-last tensors."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        b, c, h, w = x.shape
        return self.conv(x.view(b, -1).view(b, c, h, w))


def test_layout_falls_back_for_a_model_that_views_its_input():
    model = ViewsItsInput()
    weight = model.conv.weight
    before = weight.detach().clone()
    with Renderer(model, obj.channel("conv", 1), device="cpu") as r:
        assert r.channels_last  # chosen for speed: the model has a convolution
        r.validate(torch.rand(1, 3, 8, 8))
        assert not r.channels_last
        loss, _ = r.loss(torch.rand(1, 3, 8, 8, requires_grad=True))
        loss.backward()
    assert model.conv.weight is weight and torch.equal(weight, before)
    assert weight.is_contiguous() and weight.requires_grad and model.training
    assert not any(m._forward_hooks for m in model.modules())
    result = quick(model, obj.channel("conv", 1), transforms="class")  # banded output, too
    assert result.final[0] > result.start[0]


def test_layout_asked_for_is_kept():
    with (
        pytest.raises(RuntimeError, match="view size is not compatible"),
        Renderer(ViewsItsInput(), obj.channel("conv", 1), channels_last=True) as r,
    ):
        r.validate(torch.rand(1, 3, 8, 8))


def test_no_channels_last_without_convolutions():
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 5))
    assert not Renderer(mlp, obj.class_logit(2)).channels_last
    assert Renderer(tiny_cnn(), obj.channel("0", 0)).channels_last
    assert not Renderer(tiny_cnn(), obj.channel("0", 0), channels_last=False).channels_last
