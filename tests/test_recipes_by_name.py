"""Recipes by name: ``recipes.get``, ``render(recipe=NAME)``, ``midnite render --recipe NAME``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import midnite
from midnite import recipes
from midnite.cli import main
from midnite.engine.objectives import channel, class_logit

from conftest import tiny_cnn


def test_registry_holds_every_recipe_by_its_name():
    assert set(recipes.RECIPES) == {"feature", "class", "transformer", "natural"}
    for name, recipe in recipes.RECIPES.items():
        assert recipe.name == name
        assert recipes.get(name) is recipe
    assert recipes.get("class") is recipes.CLASS


def test_unknown_recipe_names_every_recipe():
    names = "class, feature, natural, transformer"
    with pytest.raises(ValueError, match=rf"unknown recipe 'clas'; recipes: {names}"):
        recipes.get("clas")
    with pytest.raises(TypeError, match="recipe must be a recipe name"):
        recipes.get(3)  # type: ignore[arg-type]


def test_resolve_takes_a_recipe_by_name_over_the_objectives_choice():
    cnn = tiny_cnn()
    feature = midnite.RenderConfig.resolve(cnn, channel("0", 0), size=16)
    assert feature.recipe is recipes.FEATURE
    named = midnite.RenderConfig.resolve(cnn, channel("0", 0), size=16, recipe="class")
    assert named.recipe is recipes.CLASS
    assert (named.steps, named.lr) == (recipes.CLASS.steps, recipes.CLASS.lr)
    assert named.to_json()["recipe"] == "class"
    given = midnite.RenderConfig.resolve(cnn, class_logit(0), recipe=recipes.FEATURE, steps=7)
    assert given.recipe is recipes.FEATURE and given.steps == 7 and given.lr == 0.05
    natural = midnite.RenderConfig.resolve(cnn, class_logit(0), size=32, recipe="natural")
    assert natural.param == "maco" and "RandomAffine" in repr(natural.transforms)
    assert natural.canvas == (40, 40) and natural.crops.count == recipes.NATURAL.crops.count
    # a RenderConfig made directly takes a name too
    assert midnite.RenderConfig(**{**_fields(named), "recipe": "natural"}).recipe is recipes.NATURAL
    with pytest.raises(ValueError, match="unknown recipe 'nope'; recipes: class, feature"):
        midnite.RenderConfig.resolve(cnn, channel("0", 0), recipe="nope")
    with pytest.raises(TypeError, match=r"recipe must be a recipe name .* got int"):
        midnite.RenderConfig.resolve(cnn, channel("0", 0), recipe=3)


def _fields(config: midnite.RenderConfig) -> dict:
    return {f: getattr(config, f) for f in config.__dataclass_fields__}


def test_render_with_a_recipe_by_name():
    result = midnite.render(
        tiny_cnn(), channel("2", 0), size=16, steps=2, recipe="class", progress=False
    )
    assert result.settings["recipe"] == "class" and result.settings["lr"] == recipes.CLASS.lr
    natural = midnite.render(
        tiny_cnn(), class_logit(1), size=16, steps=2, recipe="natural", progress=False
    )
    assert natural.settings["recipe"] == "natural" and natural.settings["param"] == "maco"
    assert natural.images.shape == (1, 3, 20, 20)


MODEL_SRC = """
import torch
from torch import nn

def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 5))
"""


@pytest.fixture
def model_file(tmp_path: Path) -> str:
    path = tmp_path / "tiny.py"
    path.write_text(MODEL_SRC)
    return f"{path}:net"


def test_cli_render_recipe_and_param(model_file, tmp_path):
    out = tmp_path / "out"
    fast = ["--steps", "2", "--size", "16x16", "--no-progress", "--batch", "2"]
    argv = ["render", model_file, "--objective", "class", "--units", "0-1", "--out", str(out)]
    assert main([*argv, *fast, "--recipe", "natural"]) == 0
    record = json.loads((out / "output_class_0000.json").read_text())
    assert record["settings"]["recipe"] == "natural" and record["settings"]["param"] == "maco"
    assert record["settings"]["canvas"] == [20, 20]
    assert record["key"]["recipe"] == "natural" and record["key"]["param"] == "maco"
    out2 = tmp_path / "out2"
    argv2 = ["render", model_file, "--layer", "0", "--units", "0", "--out", str(out2)]
    assert main([*argv2, *fast, "--param", "maco"]) == 0
    record = json.loads((out2 / "0_channel_0000.json").read_text())
    assert record["settings"]["recipe"] == "feature" and record["settings"]["param"] == "maco"


def test_cli_unknown_recipe_lists_them(model_file, tmp_path, capsys):
    argv = ["render", model_file, "--objective", "class", "--units", "0", "--out", str(tmp_path)]
    assert main([*argv, "--recipe", "nope"]) == 2
    message = capsys.readouterr().err
    assert "--recipe" in message and "'nope'" in message
    assert "class" in message and "natural" in message and "transformer" in message
