"""The classic API (the notebook's): PixelActivation with selectors, transforms, regularizers."""

from __future__ import annotations

import math
from typing import ClassVar

import pytest
import torch
from torch import nn

import midnite
from midnite.visualization import base
from midnite.visualization.base import *  # the notebook's own import
from midnite.visualization.methods import _replace_parameter

from conftest import ResidualToy, assert_same_state, hook_count, model_state, tiny_cnn

CLASSIC_NAMES = [
    "PixelActivation",
    "SplitSelector",
    "SimpleSelector",
    "Identity",
    "NeuronSplit",
    "SpatialSplit",
    "ChannelSplit",
    "GroupSplit",
    "WeightDecay",
    "TVRegularization",
    "BlurTransform",
    "BilateralTransform",
    "RandomTransform",
    "ResizeTransform",
]


def features():
    """A conv 'features' prefix, like the notebook's alexnet.features[:9]."""
    return tiny_cnn()[:4]


def pixel_activation(net=None, **kw):
    kw.setdefault("init_size", 24)
    kw.setdefault("iter_n", 3)
    kw.setdefault("opt_n", 5)
    kw.setdefault("seed", 0)
    kw.setdefault("progress", False)
    return PixelActivation(
        features() if net is None else net,
        SplitSelector(ChannelSplit(), [1]),
        **kw,
    )


def test_star_import_gives_the_classic_api():
    for name in CLASSIC_NAMES:
        assert name in base.__all__
        assert name in globals()
    assert callable(midnite.device) and callable(midnite.get_device)


def test_classic_defaults():
    p = PixelActivation(features(), SplitSelector(ChannelSplit(), [1]))
    assert (p.lr, p.iter_n, p.opt_n, p.init_size, p.clamp) == (0.01, 12, 20, 250, True)
    assert WeightDecay().decay_factor == 1e-7
    tv = TVRegularization()
    assert (tv.coefficient, tv.beta) == (1e2, 2.0)


def test_visualize_raises_the_objective():
    net = features()
    with torch.no_grad():
        net[2].weight.mul_(4)  # a livelier layer than the default init
    p = pixel_activation(net, iter_n=4, opt_n=10, lr=0.05)
    img = p.visualize()
    assert img.shape == (3, 24, 24)
    assert img.min() >= 0 and img.max() <= 1
    assert p.final_value > 5 * max(p.start_value, 1e-3)


def test_same_seed_same_image_and_other_seed_differs():
    a = pixel_activation(transform=RandomTransform() + BlurTransform()).visualize()
    b = pixel_activation(transform=RandomTransform() + BlurTransform()).visualize()
    c = pixel_activation(seed=1, transform=RandomTransform() + BlurTransform()).visualize()
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    gen = torch.Generator().manual_seed(0)
    d = pixel_activation(seed=gen, transform=RandomTransform()).visualize()
    assert d.shape == a.shape


class RecordingAdam(torch.optim.Adam):
    """Adam that keeps a reference to every instance, so a test can read its state."""

    made: ClassVar[list[torch.optim.Adam]] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        RecordingAdam.made.append(self)


@pytest.fixture
def adams(monkeypatch):
    RecordingAdam.made = []
    monkeypatch.setattr(torch.optim, "Adam", RecordingAdam)
    return RecordingAdam.made


class ResetAdam(Transform):
    """Throws Adam's state away between iterations, as midnite 0.1.2 did."""

    def __init__(self, adams):
        super().__init__()
        self.adams = adams

    def forward(self, x, generator=None):
        self.adams[-1].state.clear()
        return x


def lively_features():
    net = features()
    with torch.no_grad():
        net[2].weight.mul_(4)  # a livelier layer than the default init
    return net


def test_resize_transform_grows_the_image_and_keeps_adam_state(adams):
    kw = {"init_size": 10, "iter_n": 3, "opt_n": 5, "lr": 0.05}
    img = pixel_activation(lively_features(), transform=ResizeTransform(1.5), **kw).visualize()
    assert img.shape == (3, 22, 22)  # 10 -> 15 -> 22 (twice between three iterations)
    (adam,) = adams
    (pixels,) = adam.param_groups[0]["params"]
    assert pixels.shape == (1, 3, 22, 22)  # the optimizer works on the grown image
    state = adam.state[pixels]
    assert int(state["step"]) == 3 * 5  # iter_n * opt_n: one state across the iterations
    assert state["exp_avg"].shape == state["exp_avg_sq"].shape == (1, 3, 22, 22)
    assert state["exp_avg"].abs().sum() > 0

    # the same run with the state thrown away between iterations ends elsewhere
    reset = pixel_activation(
        lively_features(), transform=ResetAdam(adams) + ResizeTransform(1.5), **kw
    )
    reset = reset.visualize()
    assert int(adams[-1].state[adams[-1].param_groups[0]["params"][0]]["step"]) == 5
    assert reset.shape == img.shape
    assert (reset - img).abs().max() > 1e-3


def test_adam_state_is_resized_with_the_image():
    old = torch.nn.Parameter(torch.rand(1, 3, 4, 4))
    adam = torch.optim.Adam([old], lr=0.1)
    old.grad = torch.rand_like(old)
    adam.step()
    before = {k: v.clone() for k, v in adam.state[old].items()}
    new = torch.nn.Parameter(torch.rand(1, 3, 6, 6))
    _replace_parameter(adam, old, new)
    assert adam.param_groups[0]["params"] == [new] and old not in adam.state
    state = adam.state[new]
    assert torch.equal(state["step"], before["step"])
    for key in ("exp_avg", "exp_avg_sq"):
        expected = torch.nn.functional.interpolate(
            before[key], size=(6, 6), mode="bilinear", align_corners=False
        )
        assert torch.equal(state[key], expected)


def test_transform_runs_between_iterations_only():
    seen = []

    class Spy(Transform):
        def forward(self, x, generator=None):
            seen.append(x.shape)
            return x

    pixel_activation(transform=Spy(), iter_n=4).visualize()
    assert len(seen) == 3


class PushOut(Transform):
    """Records the range of the image it is given, then pushes values out of [0, 1]."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x, generator=None):
        self.seen.append((float(x.min()), float(x.max())))
        return x * 3 - 1


def test_clamp_between_iterations():
    # lr is tiny, so an iteration starts where the last one left the image: in [0, 1] only if
    # the values pushed out of range were clamped between the iterations
    push = PushOut()
    pixel_activation(transform=push, clamp=True, iter_n=4, lr=1e-6).visualize()
    assert len(push.seen) == 3
    for low, high in push.seen[1:]:
        assert low >= -1e-4 and high <= 1 + 1e-4
        assert low < 1e-3 and high > 1 - 1e-3  # clamped values sit on the bounds

    unclamped = PushOut()
    pixel_activation(transform=unclamped, clamp=False, iter_n=4, lr=1e-6).visualize()
    low, high = unclamped.seen[1]
    assert low < -0.5 and high > 1.5  # without clamping the next iteration starts out of range


def test_clamp_must_be_a_bool():
    with pytest.raises(TypeError, match="clamp must be True or False, got int 1"):
        pixel_activation(clamp=1)


def test_model_restored_after_run_and_after_exception():
    net = features()
    net.train()
    net[0].bias.requires_grad_(False)
    before = model_state(net)
    pixel_activation(net).visualize()
    assert_same_state(before, net)

    class Fail(Transform):
        def forward(self, x, generator=None):
            raise RuntimeError("injected mid-run")

    for exc in (RuntimeError, KeyboardInterrupt):

        class Raise(Transform):
            def forward(self, x, generator=None, exc=exc):
                raise exc("injected mid-run")

        with pytest.raises(exc, match="injected"):
            pixel_activation(net, transform=Raise()).visualize()
        assert_same_state(before, net)
        assert hook_count(net) == 0


def test_named_layer_forms():
    model = ResidualToy()
    img = pixel_activation((model, "block1")).visualize()
    assert img.shape == (3, 24, 24)
    # one full validation pass; the 15 optimizer steps stopped after block1
    assert model.calls["block2"] == 1
    img2 = pixel_activation(model, layer="block1").visualize()
    assert torch.equal(img, img2)
    pixel_activation(model, layer=["block1", "block2"]).visualize()
    with pytest.raises(ValueError, match="closest"):
        pixel_activation(model, layer="blok1").visualize()
    with pytest.raises(ValueError, match="not both"):
        pixel_activation((model, "block1"), layer="block2")


def test_normalize_option_feeds_normalized_input():
    seen = {}

    class Probe(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 1)

        def forward(self, x):
            seen["x"] = x.detach().clone()
            return self.conv(x)

    start = torch.full((3, 8, 8), 0.5)
    pixel_activation(Probe(), normalize="imagenet", iter_n=1, opt_n=1, lr=1e-9).visualize(start)
    expected = (0.5 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(seen["x"][0, :, 0, 0], expected, atol=1e-4)
    pixel_activation(Probe(), iter_n=1, opt_n=1, lr=1e-9).visualize(start)
    assert torch.allclose(seen["x"], torch.full_like(seen["x"], 0.5), atol=1e-4)


def test_input_image_is_used_and_checked():
    start = torch.rand(3, 16, 20)
    img = pixel_activation(iter_n=1, opt_n=1, lr=1e-9).visualize(start)
    assert img.shape == (3, 16, 20)
    assert torch.allclose(img, start, atol=1e-6)
    with pytest.raises(ValueError, match=r"\(3, H, W\).*\(16, 20\)"):
        pixel_activation().visualize(torch.rand(16, 20))
    with pytest.raises(ValueError, match=r"got shape \(1, 16, 20\)"):
        pixel_activation().visualize(torch.rand(1, 16, 20))
    with pytest.raises(TypeError, match="tensor"):
        pixel_activation().visualize([[0.5]])


@pytest.mark.parametrize(
    "kw, exc, pattern",
    [
        ({"iter_n": 0}, ValueError, "iter_n must be an int >= 1, got 0"),
        ({"opt_n": -1}, ValueError, "opt_n must be an int >= 1, got -1"),
        ({"init_size": 0}, ValueError, "init_size must be an int >= 1, got 0"),
        ({"iter_n": 2.5}, TypeError, "iter_n must be an int >= 1, got float 2.5"),
        ({"lr": 0.0}, ValueError, "lr must be a finite number > 0, got 0.0"),
        ({"lr": -1e-3}, ValueError, "got -0.001"),
        ({"lr": math.nan}, ValueError, "got nan"),
        ({"lr": math.inf}, ValueError, "got inf"),
        ({"regularization": [WeightDecay(), "tv"]}, TypeError, r"regularization\[1\].*str"),
        ({"regularization": [BlurTransform()]}, TypeError, "BlurTransform"),
        ({"transform": 3}, TypeError, "transform must be"),
    ],
)
def test_bad_arguments(kw, exc, pattern):
    with pytest.raises(exc, match=pattern):
        pixel_activation(**kw)


def test_negative_channel_index_gives_the_same_image():
    last = pixel_activation(transform=RandomTransform() + BlurTransform())
    last.selector = SplitSelector(ChannelSplit(), [-1])
    six = pixel_activation(transform=RandomTransform() + BlurTransform())
    six.selector = SplitSelector(ChannelSplit(), [5])  # features() ends with 6 channels
    assert torch.equal(last.visualize(), six.visualize())
    assert last.final_value == six.final_value
    with pytest.raises(IndexError, match=r"channel index -7 out of range .* 6 channels.*-6\.\.-1"):
        PixelActivation(features(), SplitSelector(ChannelSplit(), [-7]), progress=False).visualize()


def test_selector_objective_is_what_is_maximized():
    p = pixel_activation()
    assert repr(p.objective()) == "channel('', 1)"
    p2 = pixel_activation(ResidualToy(), layer=["block1", "block2"])
    assert repr(p2.objective()) == "0.5 * channel('block1', 1) + 0.5 * channel('block2', 1)"


def test_bad_selectors():
    with pytest.raises(IndexError, match=r"70.*6 channels"):
        PixelActivation(features(), SplitSelector(ChannelSplit(), [70]), progress=False).visualize()
    with pytest.raises(ValueError, match="index"):
        PixelActivation(
            features(), SplitSelector(NeuronSplit(), [0, 1]), progress=False
        ).visualize()
    with pytest.raises(ValueError, match="nothing is selected"):
        SimpleSelector(torch.zeros(6, 12, 12))
    with pytest.raises(TypeError, match="NeuronSelector"):
        PixelActivation(features(), ChannelSplit())


def test_neuron_split_on_classifier_output_is_class_visualization():
    net = tiny_cnn()
    p = pixel_activation(net, iter_n=3, opt_n=10, lr=0.05)
    p.selector = SplitSelector(NeuronSplit(), [3])
    p.visualize()
    assert p.final_value > p.start_value


def test_weight_decay_grays_out_pixels_without_gradient():
    """Pixels outside the receptive field of one neuron are pulled to gray, others are not."""
    net = nn.Sequential(nn.Conv2d(3, 2, 3))
    p = PixelActivation(
        net,
        SplitSelector(NeuronSplit(), [0, 0, 0]),
        iter_n=2,
        opt_n=40,
        init_size=12,
        lr=0.05,
        regularization=[WeightDecay(1e-3)],
        seed=0,
        progress=False,
    )
    img = p.visualize()
    far = img[:, 6:, 6:]
    assert (far - 0.5).abs().max() < 0.05
    start = torch.rand((1, 3, 12, 12), generator=torch.Generator().manual_seed(0))[0]
    assert (start[:, 6:, 6:] - 0.5).abs().max() > 0.3


def test_progress_bar(capsys):
    pixel_activation(progress=True).visualize()
    assert "PixelActivation" in capsys.readouterr().err
    pixel_activation(progress=False).visualize()
    assert capsys.readouterr().err == ""


def test_device_context_is_used():
    with midnite.device("cpu"):
        img = pixel_activation().visualize()
    assert img.device.type == "cpu"
    with pytest.raises(ValueError, match="CUDA is not available"):
        if not torch.cuda.is_available():
            with midnite.device("cuda:0"):
                pass
        else:
            raise ValueError("CUDA is not available")  # keep the test meaningful on GPU hosts
