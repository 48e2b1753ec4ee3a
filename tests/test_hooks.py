"""Layers by name, frozen runs, hooks, early stop and awkward models (midnite.engine.hooks)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import midnite
from midnite import objectives as obj
from midnite.engine.hooks import ActivationCapture, frozen, parse_layer, resolve_layers

from conftest import (
    InplaceNet,
    ResidualToy,
    ReuseNet,
    TupleNet,
    assert_same_state,
    hook_count,
    model_state,
    tiny_cnn,
)


def test_parse_layer():
    assert parse_layer("_blocks.8").name == "_blocks.8"
    assert parse_layer("_blocks.8").call is None
    ref = parse_layer("act:1")
    assert (ref.name, ref.call, ref.spec) == ("act", 1, "act:1")
    with pytest.raises(TypeError, match="str"):
        parse_layer(3)


def test_unknown_layer_suggests_close_names():
    model = ResidualToy()
    with pytest.raises(midnite.LayerNotFoundError, match=r"'block1\.0'") as err:
        resolve_layers(model, ["block1.O"])
    assert "block1.O" in str(err.value)
    assert isinstance(err.value, ValueError)


def test_unknown_layer_checked_before_any_forward():
    model = ResidualToy()
    with pytest.raises(ValueError, match="no layer named"):
        midnite.render(model, obj.channel("blok2", 0), size=8, steps=1, progress=False)
    assert model.calls["block2"] == 0


def test_frozen_restores_everything(cnn):
    cnn[0].weight.requires_grad_(False)  # a user's own choice must survive too
    before = model_state(cnn)
    with frozen(cnn):
        assert not any(p.requires_grad for p in cnn.parameters())
        assert not any(m.training for m in cnn.modules())
    assert_same_state(before, cnn)


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_frozen_restores_after_exception(cnn, exc):
    before = model_state(cnn)
    with pytest.raises(exc), frozen(cnn):
        raise exc()
    assert_same_state(before, cnn)


def test_frozen_device_move_keeps_user_tensors(cnn):
    ptrs = [p.data_ptr() for p in cnn.parameters()]
    with frozen(cnn, torch.device("cpu")):
        pass
    assert [p.data_ptr() for p in cnn.parameters()] == ptrs


def _boom_objective(layer: str, after: int, exc: type[BaseException]):
    calls = {"n": 0}

    def fn(act):
        calls["n"] += 1
        if calls["n"] > after:
            raise exc("injected")
        return act.flatten(1).mean(1)

    return obj.custom(layer, fn, "boom")


@pytest.mark.parametrize("exc", [None, RuntimeError, KeyboardInterrupt])
def test_render_leaves_no_hooks_and_restores_model(exc):
    model = ResidualToy()
    model.train()
    before = model_state(model)
    objective = obj.channel("block2", 1) if exc is None else _boom_objective("block2", 3, exc)
    if exc is None:
        midnite.render(model, objective, size=16, steps=3, progress=False)
    else:
        with pytest.raises(exc, match="injected"):
            midnite.render(model, objective, size=16, steps=10, progress=False)
    assert hook_count(model) == 0
    assert_same_state(before, model)


def test_early_stop_skips_later_layers():
    model = ResidualToy()
    with frozen(model), ActivationCapture(model, ["block1"]) as tap:
        tap(torch.rand(1, 3, 8, 8))
    assert model.calls == {"block2": 0, "head": 0}
    with frozen(model), ActivationCapture(model, ["block1"], early_stop=False) as tap:
        tap(torch.rand(1, 3, 8, 8))
    assert model.calls == {"block2": 1, "head": 1}


def test_early_stop_same_activations_and_gradients():
    model = ResidualToy()
    x = torch.rand(2, 3, 8, 8)
    results = []
    for early in (True, False):
        img = x.clone().requires_grad_(True)
        with frozen(model), ActivationCapture(model, ["block1", "stem"], early_stop=early) as tap:
            acts = tap(img)
            (acts["block1"].square().sum() + acts["stem"].sum()).backward()
        results.append((acts["block1"].detach(), acts["stem"].detach(), img.grad))
    for a, b in zip(*results, strict=True):
        assert torch.equal(a, b)
    # and equal to a plain computation without hooks
    img = x.clone().requires_grad_(True)
    stem = model.stem(img)
    block1 = model.block1(stem)
    (block1.square().sum() + stem.sum()).backward()
    assert torch.allclose(results[0][0], block1.detach())
    assert torch.allclose(results[0][2], img.grad)


def test_inplace_relu_target_sees_its_own_values_and_right_gradient():
    model = InplaceNet()
    x = torch.rand(1, 3, 6, 6)
    img = x.clone().requires_grad_(True)
    with frozen(model), ActivationCapture(model, ["conv", "relu2"], early_stop=False) as tap:
        acts = tap(img)
        acts["conv"].sum().backward()
    conv_out = model.conv(x)
    assert (conv_out < 0).any(), "the test needs negative pre-ReLU values"
    assert torch.allclose(acts["conv"], conv_out.detach())  # not overwritten by the in-place ReLU
    ref = x.clone().requires_grad_(True)
    model.conv(ref).sum().backward()
    assert torch.allclose(img.grad, ref.grad)


def test_inplace_relu_output_as_target():
    model = InplaceNet()
    x = torch.rand(1, 3, 6, 6)
    with frozen(model), ActivationCapture(model, ["relu"]) as tap:
        act = tap(x)["relu"]
    assert torch.allclose(act, torch.relu(model.conv(x)))


def test_reused_module_needs_a_call_index():
    model = ReuseNet()
    with pytest.raises(ValueError, match=r"'act:0', 'act:1'"):
        midnite.render(model, obj.channel("act", 0), size=8, steps=1, progress=False)
    assert hook_count(model) == 0
    x = torch.rand(1, 3, 8, 8)
    with frozen(model), ActivationCapture(model, ["act:0", "act:1"]) as tap:
        acts = tap(x)
    first = torch.tanh(model.conv1(x))
    assert torch.allclose(acts["act:0"], first)
    assert torch.allclose(acts["act:1"], torch.tanh(model.conv2(first)))
    result = midnite.render(model, obj.channel("act:1", 2), size=32, steps=5, progress=False)
    assert result.final[0] > result.start[0]


def test_call_index_beyond_calls():
    model = ReuseNet()
    with (
        pytest.raises(ValueError, match="produced no output"),
        frozen(model),
        ActivationCapture(model, ["act:2"]) as tap,
    ):
        tap(torch.rand(1, 3, 8, 8))


@pytest.mark.parametrize("as_dict", [False, True])
def test_tuple_and_dict_outputs(as_dict):
    model = TupleNet(as_dict=as_dict)
    result = midnite.render(model, obj.class_logit(2), size=16, steps=5, progress=False)
    x = result.images
    assert torch.allclose(result.final, model.features(x)[:, 2], atol=1e-5)


def test_one_channel_model_gets_one_channel_image():
    model = tiny_cnn(in_channels=1)
    result = midnite.render(model, obj.channel("2", 0), size=32, steps=3, progress=False)
    assert result.images.shape == (1, 1, 32, 32)


def test_layers_table():
    model = ResidualToy()
    model.train()
    table = midnite.layers(model, input_size=(8, 10))
    info = {i.name: i for i in table}
    assert info["stem"].shape == (8, 8, 10)
    assert info[""].shape == (4,)
    assert info["block1.1"].calls == 1
    text = str(table)
    assert "block2.0" in text and "8x8x10" in text and "(output)" in text
    assert model.training and hook_count(model) == 0
    reuse = {i.name: i for i in midnite.layers(ReuseNet(), 8)}
    assert reuse["act"].calls == 2
    with pytest.raises(ValueError, match="input_size"):
        midnite.layers(model, input_size=(0, 4))


def test_layers_infers_input_channels():
    table = midnite.layers(tiny_cnn(in_channels=1), 8)
    assert {i.name: i.shape for i in table}["0"] == (4, 8, 8)


def test_model_type_error():
    with pytest.raises(TypeError, match=r"nn\.Module"), frozen("not a model"):
        pass
    with pytest.raises(TypeError, match="Module"):
        midnite.render(lambda x: x, obj.channel("a", 0), steps=1, progress=False)


def test_keyboard_interrupt_reraised_after_cleanup():
    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU())
    before = model_state(model)
    with pytest.raises(KeyboardInterrupt):
        midnite.render(
            model, _boom_objective("1", 2, KeyboardInterrupt), size=32, steps=5, progress=False
        )
    assert_same_state(before, model)


def test_token_layers_stop_early_and_leave_no_hooks():
    """A vision transformer's token layers are captured as maps, the pass still stops after
    the deepest one, and the token model's pre-hook goes with the rest (midnite.engine.tokens)."""
    from midnite.known_answer import TinyViT

    vit = TinyViT(img_size=(16, 24), patch_size=8, depth=3)
    ran = []
    vit.blocks[2].register_forward_pre_hook(lambda m, a: ran.append(2))
    with ActivationCapture(vit, ["blocks.1.mlp.act"]) as cap:
        act = cap(torch.rand(1, 3, 16, 24))["blocks.1.mlp.act"]
        with pytest.raises(ValueError, match=r"takes 16x24 px images .* got 16x32"):
            cap(torch.rand(1, 3, 16, 32))
    assert act.shape == (1, 64, 2, 3) and ran == []
    vit.blocks[2]._forward_pre_hooks.clear()
    assert hook_count(vit) == 0
    table = {i.name: i.shape for i in midnite.layers(tiny_cnn())}
    assert table["0"] == (4, 224, 224)  # no token model: 224 px by default, as before
