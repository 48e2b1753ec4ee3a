"""End to end on the ImageNet-trained EfficientNet-Lite0 (weights from its installed package)."""

from __future__ import annotations

import pytest
import torch
from torch.nn import Sequential, Softmax

import midnite
from midnite import objectives as obj
from midnite.models import efficientnet_lite, efficientnet_lite_features
from midnite.visualization.base import (
    BilateralTransform,
    BlurTransform,
    ChannelSplit,
    NeuronSplit,
    PixelActivation,
    RandomTransform,
    ResizeTransform,
    SplitSelector,
    TVRegularization,
    WeightDecay,
)

pytestmark = pytest.mark.slow  # every test runs EfficientNet-Lite0 on its real weights


@pytest.fixture(scope="module")
def lite0():
    return efficientnet_lite(0)


def test_classic_channel_cell_raises_the_channel_well_above_start():
    net = efficientnet_lite_features(6)
    pa = PixelActivation(
        net,
        SplitSelector(ChannelSplit(), [1]),
        transform=RandomTransform() + BlurTransform() + ResizeTransform(),
        regularization=[TVRegularization(), WeightDecay(decay_factor=3e-4)],
        init_size=50,
        iter_n=6,
        seed=0,
        progress=False,
    )
    img = pa.visualize()
    assert img.shape == (3, 124, 124)
    assert pa.start_value < 0 < 10 < pa.final_value  # from below zero to strongly active


def test_classic_class_cell_reaches_probability_090(lite0):
    """The notebook's class cell (cut to 12 iterations) on Lite0 + softmax: p(screw) >= 0.9."""
    net = Sequential(lite0, Softmax(dim=1)).eval()
    pa = PixelActivation(
        net,
        SplitSelector(NeuronSplit(), [783]),
        transform=RandomTransform(scale_fac=0) + BilateralTransform() + ResizeTransform(1.005),
        opt_n=10,
        iter_n=12,
        regularization=[WeightDecay(decay_factor=1.5e-7), TVRegularization(coefficient=0.05)],
        init_size=160,
        lr=0.007,
        seed=0,
        progress=False,
    )
    img = pa.visualize()
    with torch.no_grad():
        prob = net(img[None])[0, 783].item()
    assert pa.start_value < 0.05
    assert prob >= 0.9


def test_render_batched_channels_on_lite0(lite0):
    """Eight channels of one block as one batch: each image excites its own channel most."""
    units = list(range(8))
    result = midnite.render(
        lite0, [obj.channel("_blocks.4", u) for u in units], size=96, steps=24, progress=False
    )
    assert result.images.shape == (8, 3, 96, 96)
    assert (result.final > result.start).all()
    with (
        torch.no_grad(),
        midnite.engine.hooks.frozen(lite0),
        midnite.engine.hooks.ActivationCapture(lite0, ["_blocks.4"]) as tap,
    ):
        acts = tap(result.images)["_blocks.4"].mean((2, 3))[:, units]
    wins = (acts.argmax(0) == torch.arange(len(units))).sum().item()
    assert wins >= 6, acts
