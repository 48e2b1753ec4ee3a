"""timm models: ``midnite.models.timm_model`` and timm's ViTs read as token grids.

timm does not import beside the CPU torch build used here (it needs torchvision), so the tests
on real timm models skip where it does not import; ``timm_model``'s own logic is tested against
a stand-in ``timm`` module built on ``midnite.known_answer.TinyViT``.
"""

from __future__ import annotations

import sys
import types

import pytest
import torch

import midnite
from midnite import models
from midnite.engine.tokens import TokenGrid, block_layers, token_grid
from midnite.known_answer import TinyViT

try:
    import timm as real_timm
except Exception:  # missing, or broken without a working torchvision
    real_timm = None

needs_timm = pytest.mark.skipif(real_timm is None, reason="timm does not import here")

URL = "https://example.org/weights/tiny_vit_stub.pth"


def stub_timm(calls: list) -> types.ModuleType:
    """A stand-in for timm: one model, 'tiny_vit_stub', a TinyViT with a pretrained config."""
    timm = types.ModuleType("timm")

    def create_model(name, pretrained=False, pretrained_cfg_overlay=None, **kwargs):
        calls.append((name, pretrained, pretrained_cfg_overlay, kwargs))
        torch.manual_seed(0)
        model = TinyViT(**kwargs)
        model.pretrained_cfg = {"url": URL, "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}
        if pretrained:
            state = torch.load(pretrained_cfg_overlay["file"], weights_only=True)
            model.load_state_dict(state)
        return model

    timm.create_model = create_model
    timm.is_model = lambda name: name.split(".")[0] == "tiny_vit_stub"
    timm.list_models = lambda: ["tiny_vit_stub"]
    return timm


@pytest.fixture
def fake_timm(monkeypatch, tmp_path):
    calls: list = []
    monkeypatch.setitem(sys.modules, "timm", stub_timm(calls))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return calls


def test_timm_model_refuses_weights_that_are_not_on_disk(fake_timm, tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        models.timm_model("tiny_vit_stub")
    msg = str(err.value)
    assert "'tiny_vit_stub' are not on disk" in msg and "downloads nothing" in msg
    assert str(tmp_path / "hub") in msg and URL in msg and "pretrained=False" in msg
    assert [c[1] for c in fake_timm] == [False]  # only the random-weight build ran


def test_timm_model_loads_weights_from_torch_hubs_folder(fake_timm, tmp_path):
    torch.manual_seed(1)
    trained = TinyViT()
    path = tmp_path / "hub" / "checkpoints" / "tiny_vit_stub.pth"
    path.parent.mkdir(parents=True)
    torch.save(trained.state_dict(), path)
    model = models.timm_model("tiny_vit_stub")
    assert fake_timm[-1][:3] == ("tiny_vit_stub", True, {"file": str(path)})
    torch.testing.assert_close(model.head.weight, trained.head.weight)
    # normalized inside with the model's own mean and std; timm's layer names kept
    x = torch.rand(2, 3, 32, 48, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(model(x), trained.eval()(x * 4 - 2))
    assert "blocks.1.mlp.act" in midnite.layers(model).names()
    assert token_grid(model) == TokenGrid((4, 6), prefix=1, patch=8)
    assert not model.training


def test_timm_model_without_weights_and_with_options(fake_timm):
    model = models.timm_model(
        "tiny_vit_stub", pretrained=False, normalize=False, reg_tokens=4, dynamic_img_size=True
    )
    assert fake_timm[-1][3] == {"reg_tokens": 4, "dynamic_img_size": True}
    assert type(model) is TinyViT
    assert token_grid(model) == TokenGrid(None, prefix=5, patch=8, pad=True)
    assert {i.name: i.shape for i in midnite.layers(model, (40, 16))}["blocks.1"] == (16, 5, 2)
    assert block_layers(model)[:2] == ["blocks.0.mlp.act", "blocks.0"]


def test_timm_names_and_missing_timm(fake_timm, monkeypatch):
    with pytest.raises(ValueError, match=r"timm has no model 'tiny_vit_stb'; did you mean"):
        models.timm_model("tiny_vit_stb")
    with pytest.raises(ValueError, match=r"non-empty str, got ''"):
        models.timm_model("")
    with pytest.raises(TypeError, match=r"pretrained must be True or False, got str 'yes'"):
        models.timm_model("tiny_vit_stub", pretrained="yes")
    with pytest.raises(FileNotFoundError, match="not on disk"):
        models.load("timm:tiny_vit_stub")  # the CLI's name goes the same way
    monkeypatch.setitem(sys.modules, "timm", None)  # as if not installed
    with pytest.raises(ImportError, match=r"needs timm, an optional extra: pip install timm"):
        models.timm_model("vit_tiny_patch16_224")


@needs_timm
@pytest.mark.parametrize(
    ("kwargs", "grid", "prefix"),
    [
        ({}, (14, 14), 1),
        ({"reg_tokens": 4}, (14, 14), 5),
        ({"img_size": (224, 160)}, (14, 10), 1),
        ({"class_token": False, "global_pool": "avg"}, (14, 14), 0),
    ],
)
def test_timm_vits_are_token_grids(kwargs, grid, prefix):
    model = models.timm_model("vit_tiny_patch16_224", pretrained=False, **kwargs)
    assert token_grid(model) == TokenGrid(grid, prefix=prefix, patch=16)
    table = {i.name: i.shape for i in midnite.layers(model)}
    assert table["blocks.3.mlp.act"] == (768, *grid)
    assert table["blocks.11"] == (192, *grid)
    assert "blocks.3.mlp.act" in block_layers(model)


@needs_timm
def test_timm_dynamic_img_size_follows_the_image():
    model = models.timm_model("vit_tiny_patch16_224", pretrained=False, dynamic_img_size=True)
    assert token_grid(model) == TokenGrid(None, prefix=1, patch=16)
    assert {i.name: i.shape for i in midnite.layers(model, (160, 96))}["blocks.0"] == (192, 10, 6)
    channel = midnite.objectives.channel("blocks.0.mlp.act", 3)
    result = midnite.render(model, channel, size=64, steps=2, transforms="patch", progress=False)
    assert result.images.shape == (1, 3, 64, 64)
    with pytest.raises(ValueError, match=r"sides are whole 16x16 px patches, got 76x76"):
        midnite.render(model, channel, size=64, steps=1, progress=False)  # 'standard': +12 px
    padded = models.timm_model(
        "vit_tiny_patch16_224", pretrained=False, dynamic_img_size=True, dynamic_img_pad=True
    )
    assert token_grid(padded) == TokenGrid(None, prefix=1, patch=16, pad=True)
    result = midnite.render(padded, channel, size=64, steps=2, progress=False)
    assert result.images.shape == (1, 3, 64, 64)
