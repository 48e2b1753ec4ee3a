"""midnite.engine.recipes: which recipe an objective gets, and that render uses and records it."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import midnite
from midnite import objectives as obj
from midnite import recipes
from midnite import transforms as tf
from midnite.engine.settings import Crops

from conftest import tiny_cnn


@pytest.mark.parametrize(
    "objective",
    [
        obj.class_logit(3),
        obj.class_logit(1) - 0.5 * obj.class_logit(2),
        obj.as_objective([obj.class_logit(0), obj.class_logit(4)]),
    ],
    ids=["logit", "logit arithmetic", "one per image"],
)
def test_output_only_objectives_get_the_class_recipe(objective):
    assert recipes.for_objective(objective) is recipes.CLASS


@pytest.mark.parametrize(
    "objective",
    [
        obj.channel("0", 1),
        obj.class_logit(1) + obj.channel("2", 0),
        obj.as_objective([obj.class_logit(0), obj.channel("0", 2)]),
        obj.deepdream("3"),
    ],
    ids=["channel", "logit plus channel", "mixed per image", "deepdream"],
)
def test_objectives_reading_inner_layers_get_the_feature_recipe(objective):
    assert recipes.for_objective(objective) is recipes.FEATURE


@pytest.mark.parametrize("recipe", [recipes.CLASS, recipes.FEATURE], ids=lambda r: r.name)
def test_recipe_values_are_valid_render_settings(recipe):
    assert recipe.transforms in tf.STACKS
    assert isinstance(tf.STACKS[recipe.transforms](), tf.Transform)
    assert recipe.param in ("fourier", "pixel")
    assert isinstance(recipe.steps, int) and recipe.steps >= 1
    assert 0 < recipe.lr < 1 and isinstance(recipe.decorrelate, bool)
    assert recipe.notes
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipe.steps = 1  # type: ignore[misc]


def test_class_stack_keeps_one_image_per_image_at_any_size_and_is_seeded():
    stack = tf.STACKS[recipes.CLASS.transforms]()
    x = torch.rand(3, 3, 96, 80)
    a = stack(x, torch.Generator().manual_seed(5))
    b = stack(x, torch.Generator().manual_seed(5))
    c = stack(x, torch.Generator().manual_seed(6))
    assert a.shape == x.shape  # no augmented copies: the model sees one image per image
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1  # bilinear with mirrored borders stays in range
    for size in (1, 5, 16):  # tiny images too, as render(..., size=16) may ask
        assert stack(torch.rand(1, 3, size, size)).shape == (1, 3, size, size)


def test_class_stack_draws_shift_rotation_and_zoom_per_image():
    stack = tf.STACKS[recipes.CLASS.transforms]()
    (affine,) = list(stack)
    assert isinstance(affine, tf.RandomAffine)
    assert (affine.max_shift, affine.degrees, affine.scales) == (32.0, 30.0, (0.6, 2.0))
    x = torch.rand(1, 3, 64, 64).expand(4, 3, 64, 64)
    y = stack(x, torch.Generator().manual_seed(0))
    assert not torch.equal(y[0], y[1])  # each image of a batch gets its own draw


def _unset(model, objective, size):
    return midnite.render(model, objective, size=size, progress=False, seed=1).settings


@pytest.mark.parametrize(
    ("objective", "recipe"),
    [(obj.class_logit(2), recipes.CLASS), (obj.channel("2", 1), recipes.FEATURE)],
    ids=["class", "feature"],
)
def test_render_takes_unset_settings_from_the_recipe_and_records_them(objective, recipe):
    s = _unset(tiny_cnn(), objective, 64)
    assert s["recipe"] == recipe.name
    assert s["steps"] == recipe.steps and s["lr"] == recipe.lr
    assert s["param"] == recipe.param and s["decorrelate"] == recipe.decorrelate
    assert s["transforms"] == repr(tf.STACKS[recipe.transforms]())


def test_explicit_settings_win_over_the_recipe():
    result = midnite.render(
        tiny_cnn(),
        obj.class_logit(0),
        size=32,
        steps=2,
        lr=0.2,
        param="pixel",
        decorrelate=False,
        transforms=None,
        progress=False,
    )
    s = result.settings
    assert s["recipe"] == "class"
    assert (s["steps"], s["lr"], s["param"], s["decorrelate"]) == (2, 0.2, "pixel", False)
    assert s["transforms"] == "None"
    assert result.history.shape == (2, 1)


def test_natural_recipe_default_is_the_measured_setting():
    # issue #22 measured these (benchmarks/RESULTS.md); change them only with a new measurement
    r = recipes.NATURAL
    assert (r.steps, r.lr, r.param, r.decorrelate, r.transforms) == (
        128,
        0.1,
        "maco",
        True,
        "class",
    )
    assert r.crops == Crops(count=2, scale=(0.5, 1.0), noise=0.05) and r.canvas == 1.25
    # a quarter of the 256 steps x 4 crops it replaced: forwards per image per render
    assert r.steps * r.crops.count * 4 == 256 * recipes.MACO_CROPS.count
    assert "128 Adam steps" in r.notes and "2 random boxes" in r.notes
    config = midnite.RenderConfig.resolve(tiny_cnn(), obj.class_logit(0), size=32, recipe="natural")
    assert (config.steps, config.crops.count, config.canvas) == (128, 2, (40, 40))
