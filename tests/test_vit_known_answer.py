"""The known-answer transformer (midnite.known_answer.grating_vit): its planted unit is found.

Scored like grating_net's recovery (tests/test_recovery.py): ``recovery_score`` is the share
of an image's contrast energy near the planted grating's frequency; chance is measured here on
uniform noise of the same size (~0.02-0.04 at 32x48 px).
"""

from __future__ import annotations

import math

import pytest
import torch

import midnite
from midnite import objectives as obj
from midnite.engine import recipes
from midnite.engine.hooks import ActivationCapture
from midnite.engine.tokens import TokenGrid, block_layers, token_grid
from midnite.known_answer import (
    VIT_FEATURES,
    TinyViT,
    grating_vit,
    recovery_score,
    vit_pattern,
)

from conftest import hook_count

# renders on a shared 2-core CPU: one thread (see conftest.one_thread)
pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = (32, 48)
UNIT = ("blocks.1.mlp.act", 0)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _unit_response(vit, images):
    with torch.no_grad(), ActivationCapture(vit, ["blocks.1.mlp.act"]) as cap:
        act = cap(images)["blocks.1.mlp.act"]
    return act[:, : len(VIT_FEATURES)].mean((2, 3))  # (B, 7): the feature units, token mean


def _chance(size, pattern, n=5):
    """The best recovery score of ``n`` uniform-noise images: what chance reaches."""
    return max(
        float(recovery_score(torch.rand(3, *size, generator=_gen(s)), pattern)) for s in range(n)
    )


def test_grating_vit_has_timm_layout_and_is_frozen():
    vit = grating_vit()
    names = {n for n, _ in vit.named_modules()}
    for name in ("patch_embed.proj", "blocks.1.attn.qkv", "blocks.1.mlp.fc1", "blocks.1.mlp.act",
                 "blocks.1.mlp.fc2", "norm", "head"):  # fmt: skip
        assert name in names
    assert vit.patch_embed.grid_size == (4, 6) and vit.patch_embed.patch_size == (8, 8)
    assert vit.num_prefix_tokens == 1 and vit.cls_token.shape == (1, 1, 16)
    assert token_grid(vit) == TokenGrid((4, 6), prefix=1, patch=8)
    assert not vit.training and not any(p.requires_grad for p in vit.parameters())
    assert vit(torch.rand(2, 3, *SIZE, generator=_gen())).shape == (2, len(VIT_FEATURES))
    assert block_layers(vit) == ["blocks.0.mlp.act", "blocks.0", "blocks.1.mlp.act", "blocks.1"]
    table = {i.name: i.shape for i in midnite.layers(vit)}
    assert table["blocks.1.mlp.act"] == (64, 4, 6)
    assert grating_vit((48, 64), patch_size=16).patch_embed.grid_size == (3, 4)


def test_planted_pattern_drives_the_planted_unit_most():
    vit = grating_vit()
    pattern = vit_pattern(*SIZE)
    out = _unit_response(vit, pattern[None])[0]
    assert out.argmax().item() == 0
    assert out[0] > 3.0 and out[0] > 10 * out[1:].abs().max()
    noise = _unit_response(vit, torch.rand(4, 3, *SIZE, generator=_gen()))[:, 0]
    assert out[0] > 5 * noise.max()
    # the unit is phase-sensitive: a quarter period on (2 px) it is the quadrature unit's
    quarter = _unit_response(vit, torch.roll(pattern, 2, dims=2)[None])[0]
    assert quarter.argmax().item() == 1 and quarter[0] < 0.1 * out[0]
    # and the logits are the mean normalized features
    assert vit(pattern[None])[0].argmax().item() == 0


def test_vit_pattern_values():
    p = vit_pattern(8, 16, patch_size=8)
    assert p.shape == (3, 8, 16) and p.dtype == torch.float32
    assert p.min() >= 0 and p.max() <= 1
    torch.testing.assert_close(p[:, :, :8], p[:, :, 8:])  # one period per patch
    assert p[0, 0, 0].item() == pytest.approx(1.0)
    assert p[0, 2, 2].item() == pytest.approx(0.5 + 0.5 * math.cos(math.pi), abs=1e-6)
    pattern = vit_pattern(64, 64)
    assert recovery_score(pattern, pattern).item() > 0.99
    with pytest.raises(ValueError, match=r"height must be an int >= 1, got 0"):
        vit_pattern(0, 8)
    with pytest.raises(
        ValueError, match=r"patch_size must be at least 4 px per side, got \(8, 2\)"
    ):
        grating_vit(patch_size=(8, 2))


def test_tiny_vit_checks_its_arguments():
    with pytest.raises(ValueError, match=r"takes 32x48 px images .* got 32x40"):
        TinyViT()(torch.rand(1, 3, 32, 40))
    with pytest.raises(ValueError, match=r"global_pool='token' needs class_token=True"):
        TinyViT(class_token=False)
    with pytest.raises(ValueError, match=r"dim must be a multiple of num_heads \(3\), got 16"):
        TinyViT(num_heads=3)
    vit = TinyViT(reg_tokens=4, class_token=False, global_pool="avg", dynamic_img_size=True)
    assert vit.num_prefix_tokens == 4
    assert token_grid(vit) == TokenGrid(None, prefix=4, patch=8, pad=True)
    assert vit(torch.rand(1, 3, 24, 40)).shape == (1, 10)
    assert {i.name: i.shape for i in midnite.layers(vit, (24, 40))}["blocks.0"] == (16, 3, 5)
    assert {i.name: i.shape for i in midnite.layers(vit, (25, 33))}["blocks.0"] == (16, 4, 5)


def test_transformer_recipe_recovers_the_planted_grating():
    """The transformer recipe's settings (pixels, jitter by whole patches), 64 steps."""
    vit = grating_vit()
    pattern = vit_pattern(*SIZE)
    chance = _chance(SIZE, pattern)
    assert chance < 0.06
    for seed in (0, 1):
        result = midnite.render(
            vit,
            obj.channel(*UNIT),
            size=SIZE,
            steps=64,
            param=recipes.TRANSFORMER.param,
            transforms=midnite.transforms.patch_transforms(8),
            seed=seed,
            progress=False,
        )
        score = float(recovery_score(result.images[0], pattern))
        assert score > 0.5 and score > 10 * chance, (seed, score, chance)
        assert result.final.item() > 0.8 * _unit_response(vit, pattern[None])[0, 0].item()
    assert hook_count(vit) == 0


def test_dynamic_grating_vit_takes_the_standard_stack():
    """With ``dynamic_img_size`` (images padded to whole patches) the default stack runs.

    It adds 12 px: 36x52 becomes 48x64, whole 8 px patches, so the grating is still found."""
    size = (36, 52)
    vit = grating_vit(SIZE, dynamic_img_size=True)
    pattern = vit_pattern(*size)
    result = midnite.render(vit, obj.channel(*UNIT), size=size, steps=64, param="pixel",
                            progress=False)  # fmt: skip
    assert float(recovery_score(result.images[0], pattern)) > 10 * _chance(size, pattern)


@pytest.mark.slow
def test_settings_on_the_known_answer_vit():
    """What the transformer recipe rests on (recipes.TRANSFORMER's notes): on grating_vit
    (48x48 px, 256 steps, seeds 0-1) pixels recover the grating with every per-step stack that
    keeps patches whole or shifts little (~0.97), where Fourier stalls (~0.1-0.2), and the
    'class' stack's wide zoom and rotation lose it with either."""
    size = (48, 48)
    vit = grating_vit(size)
    pattern = vit_pattern(*size)
    chance = _chance(size, pattern)
    stacks = {
        "none": None,
        "patch": midnite.transforms.patch_transforms(8),
        "shift 2 px": midnite.transforms.Compose(midnite.transforms.RandomAffine(max_shift=2.0)),
        "class": "class",
    }
    score = {}
    for (name, stack), param in [(s, p) for s in stacks.items() for p in ("pixel", "fourier")]:
        runs = [
            midnite.render(
                vit,
                obj.channel(*UNIT),
                size=size,
                steps=256,
                param=param,
                transforms=stack,
                seed=seed,
                progress=False,
            )
            for seed in range(2)
        ]
        score[name, param] = sum(float(recovery_score(r.images[0], pattern)) for r in runs) / 2
    for name in ("none", "patch", "shift 2 px"):
        assert score[name, "pixel"] > 0.9
        assert score[name, "fourier"] < score[name, "pixel"] - 0.5
        assert score[name, "fourier"] > 3 * chance  # found, but far less clearly
    assert score["class", "pixel"] < 0.5 and score["class", "fourier"] < 0.5
