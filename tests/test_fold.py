"""Tests for midnite.engine._fold: which conv+batchnorm pairs fold, same values, all restored."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import midnite
from midnite import objectives as obj
from midnite.engine._fold import conv_bn_pairs, folded
from midnite.engine.hooks import frozen
from midnite.engine.passes import Renderer


def trained_bn(channels: int, seed: int, affine: bool = True) -> nn.BatchNorm2d:
    """A batchnorm with non-trivial running statistics and affine parameters."""
    g = torch.Generator().manual_seed(seed)
    bn = nn.BatchNorm2d(channels, affine=affine)
    bn.running_mean.copy_(torch.randn(channels, generator=g))
    bn.running_var.copy_(torch.rand(channels, generator=g) + 0.5)
    if affine:
        bn.weight.data.copy_(torch.randn(channels, generator=g))
        bn.bias.data.copy_(torch.randn(channels, generator=g))
    return bn


class Net(nn.Module):
    """stem: conv+bn (bias-free conv); a: conv+bn with conv bias and a depthwise conv+bn;
    b: conv -> in-place ReLU -> bn (must not fold); c: conv read by bn and by a skip (no fold)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.stem_bn = trained_bn(8, 1)
        self.a = nn.Conv2d(8, 8, 1)
        self.a_bn = trained_bn(8, 2)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
        self.dw_bn = trained_bn(8, 3, affine=False)
        self.b = nn.Conv2d(8, 8, 1)
        self.b_relu = nn.ReLU(inplace=True)
        self.b_bn = trained_bn(8, 4)
        self.c = nn.Conv2d(8, 8, 1)
        self.c_bn = trained_bn(8, 5)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        x = self.stem_bn(self.stem(x))
        x = self.dw_bn(self.dw(self.a_bn(self.a(x))))
        x = self.b_bn(self.b_relu(self.b(x)))
        c = self.c(x)
        x = self.c_bn(c) + c
        return self.head(x.mean((2, 3)))


def names(model, pairs):
    by_id = {id(m): n for n, m in model.named_modules()}
    return [(by_id[id(c)], by_id[id(b)]) for c, b in pairs]


def test_pairs_found_only_where_folding_is_exact():
    model = Net().eval()
    pairs = conv_bn_pairs(model, torch.rand(2, 3, 8, 8))
    assert sorted(names(model, pairs)) == [("a", "a_bn"), ("dw", "dw_bn"), ("stem", "stem_bn")]
    # a conv the objective reads keeps its own output
    kept = conv_bn_pairs(model, torch.rand(2, 3, 8, 8), keep={"a"})
    assert sorted(names(model, kept)) == [("dw", "dw_bn"), ("stem", "stem_bn")]
    # batchnorms that use batch statistics do not fold
    assert conv_bn_pairs(Net().train(), torch.rand(2, 3, 8, 8)) == []


def test_folded_gives_the_same_values_and_restores_everything():
    model = Net().eval()
    x = torch.rand(2, 3, 8, 8)
    expected = model(x)
    weights = {n: (p, p.data_ptr(), p.detach().clone()) for n, p in model.named_parameters()}
    own_forward = model.c_bn.forward  # an owner's instance attribute survives too
    model.c_bn.forward = own_forward
    with folded(conv_bn_pairs(model, x)) as n:
        assert n == 3
        assert model.stem.bias is not None  # a bias-free conv gets one for the block
        assert torch.allclose(model(x), expected, atol=1e-5)
        with pytest.raises(KeyboardInterrupt), folded(conv_bn_pairs(model, x)) as again:
            assert again == 0  # folded pairs are not folded twice
            raise KeyboardInterrupt
    assert model.stem.bias is None and "forward" not in model.stem_bn.__dict__
    assert model.c_bn.__dict__["forward"] is own_forward
    for n, p in model.named_parameters():
        param, ptr, values = weights[n]
        assert p is param and p.data_ptr() == ptr and torch.equal(p, values)
    assert torch.equal(model(x), expected)


def test_hooks_on_a_conv_keep_it_unfolded_and_bn_hooks_still_run():
    model = Net().eval()
    seen = []
    model.a.register_forward_hook(lambda m, i, o: None)
    model.stem_bn.register_forward_hook(lambda m, i, o: seen.append(o.detach()))
    x = torch.rand(1, 3, 8, 8)
    model(x)
    pairs = conv_bn_pairs(model, x)
    assert sorted(names(model, pairs)) == [("dw", "dw_bn"), ("stem", "stem_bn")]
    with folded(pairs):
        model(x)
    assert torch.allclose(seen[-1], seen[-3], atol=1e-5)  # the batchnorm's output, unchanged


def test_renderer_folds_and_renders_the_same_images():
    model = Net().eval()
    with frozen(model):
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
    kw = dict(size=16, steps=6, progress=False, seed=3)
    a = midnite.render(model, obj.channel("b_bn", 2), **kw)
    b = midnite.render(model, obj.channel("b_bn", 2), fold_bn=False, **kw)
    assert a.settings["fold_bn"] and not b.settings["fold_bn"]
    assert torch.allclose(a.history, b.history, rtol=1e-3, atol=1e-4)
    assert torch.allclose(a.images, b.images, atol=1e-3)
    with Renderer(model, obj.channel("b_bn", 2)) as r:
        r.validate(torch.rand(1, 3, 16, 16))
        assert r.folded == 3
    # an objective on a folded batchnorm reads the folded conv's output: the same values
    x = torch.rand(1, 3, 16, 16)
    values = []
    for fold in (True, False):
        with Renderer(model, obj.channel("a_bn", 1), fold_bn=fold) as r:
            r.validate(x)
            assert r.folded == (3 if fold else 0)
            values.append(r.score(x))
    assert torch.allclose(values[0], values[1], rtol=1e-5, atol=1e-6)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    assert model.stem.bias is None and not any(m._forward_hooks for m in model.modules())


@pytest.mark.slow  # loads the real Lite0
def test_efficientnet_lite0_folds_every_pair():
    pytest.importorskip("efficientnet_lite_pytorch")
    from midnite.models import efficientnet_lite

    model = efficientnet_lite(0)
    with Renderer(model, obj.channel("_blocks.8", 0)) as r:
        r.validate(torch.rand(1, 3, 64, 64))
        assert r.folded == sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 49


class StdConv2d(nn.Conv2d):
    """Weight-standardized convolution (as in timm): rescaled weights give the same output."""

    def forward(self, x):
        w = self.weight
        w = (w - w.mean((1, 2, 3), keepdim=True)) / (w.std((1, 2, 3), keepdim=True) + 1e-5)
        return nn.functional.conv2d(x, w, self.bias, self.stride, self.padding)


def test_nothing_folds_when_folding_would_change_an_output():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), trained_bn(4, 1), StdConv2d(4, 6, 3), trained_bn(6, 2)
    ).eval()
    x = torch.rand(2, 3, 8, 8)
    expected = model(x)
    assert conv_bn_pairs(model, x) == []  # the second pair would be wrong, so none is folded
    assert torch.equal(model(x), expected) and "forward" not in model[1].__dict__


def test_parametrized_convs_are_left_alone():
    from torch.nn.utils import parametrize

    class Scale(nn.Module):
        def forward(self, w):
            return 2 * w

    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), trained_bn(4, 1), nn.Conv2d(4, 4, 1), trained_bn(4, 2)
    )
    parametrize.register_parametrization(model[0], "weight", Scale())
    model.eval()
    assert names(model, conv_bn_pairs(model, torch.rand(1, 3, 8, 8))) == [("2", "3")]
