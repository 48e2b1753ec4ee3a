"""midnite.engine.config.RenderConfig: recipe fill-in, checks, immutability, JSON, and its users."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import torch
from torch import nn

import midnite
from midnite import objectives as obj
from midnite import recipes
from midnite import records as rec
from midnite import transforms as tf
from midnite.cli import main
from midnite.engine import RenderConfig, render_config
from midnite.engine.normalize import Normalize
from midnite.engine.regularizers import TotalVariation

from conftest import ResidualToy, tiny_cnn

FAST = {"size": 16, "steps": 3}


def resolve(objective=None, model=None, **kw):
    objective = obj.channel("2", 1) if objective is None else objective
    return RenderConfig.resolve(tiny_cnn() if model is None else model, objective, **kw)


# recipe fill-in ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("objective", "recipe"),
    [
        (obj.class_logit(2), recipes.CLASS),
        ([obj.class_logit(0), obj.class_logit(3)], recipes.CLASS),
        (obj.channel("2", 1), recipes.FEATURE),
        (obj.class_logit(1) + obj.channel("0", 0), recipes.FEATURE),
    ],
    ids=["class", "class per image", "feature", "class plus feature"],
)
def test_unset_values_come_from_the_objectives_recipe(objective, recipe):
    config = resolve(objective)
    assert config.recipe is recipe
    assert (config.steps, config.lr) == (recipe.steps, recipe.lr)
    assert (config.param, config.decorrelate) == (recipe.param, recipe.decorrelate)
    assert repr(config.transforms) == repr(tf.STACKS[recipe.transforms]())
    assert config.to_json()["recipe"] == recipe.name


def test_class_and_feature_recipes_differ_where_the_test_above_could_tell():
    assert recipes.CLASS.lr != recipes.FEATURE.lr
    assert recipes.CLASS.transforms != recipes.FEATURE.transforms


def test_explicit_values_win_over_the_recipe():
    stack = tf.STACKS["lucid"]()
    config = resolve(
        obj.class_logit(0),
        steps=5,
        lr=0.3,
        param="pixel",
        decorrelate=False,
        transforms=stack,
        channels=4,
        batch=2,
    )
    assert (config.steps, config.lr, config.param, config.decorrelate) == (5, 0.3, "pixel", False)
    assert config.transforms is stack
    assert (config.channels, config.batch) == (4, 2)
    assert config.recipe is recipes.CLASS  # the recipe the objective gets is still recorded
    assert resolve(obj.class_logit(0), transforms=None).transforms is None


def test_other_defaults_batch_channels_and_device():
    assert resolve().batch == 1
    assert resolve([obj.channel("2", u) for u in range(3)]).batch == 3
    assert resolve(model=tiny_cnn(in_channels=4)).channels == 4
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(12, 2))
    assert resolve(obj.class_logit(1), model=mlp).channels == 3
    assert resolve().device == torch.device("cpu")
    with midnite.device("cpu:0"):  # read when the config is made, kept afterwards
        config = resolve()
    assert config.device == torch.device("cpu:0")


def test_values_are_canonical():
    config = resolve(
        size=32,
        lr=1,
        transforms="lucid",
        regularizers=[TotalVariation(1.0)],
        normalize="imagenet",
        device="cpu",
    )
    assert config.size == (32, 32)
    assert isinstance(config.lr, float) and config.lr == 1.0
    assert isinstance(config.transforms, tf.Transform)
    assert isinstance(config.regularizers, tuple) and len(config.regularizers) == 1
    assert isinstance(config.normalize, Normalize)
    assert config.device == torch.device("cpu")
    assert resolve(size=[24, 40]).size == (24, 40)


# frozen, replace --------------------------------------------------------------------------------


def test_a_config_is_frozen():
    config = resolve()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.steps = 3  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seed = 1  # type: ignore[misc]


def test_replace_makes_a_checked_copy():
    config = resolve(steps=7)
    other = config.replace(steps=9, objective=[obj.channel("2", 0), obj.channel("2", 1)], batch=2)
    assert (config.steps, config.batch) == (7, 1)
    assert (other.steps, other.batch, other.lr) == (9, 2, config.lr)
    with pytest.raises(ValueError, match="steps must be an int >= 1, got 0"):
        config.replace(steps=0)
    with pytest.raises(ValueError, match=r"per-image objectives \(2\), got 1"):
        config.replace(objective=[obj.channel("2", 0), obj.channel("2", 1)])


def test_seed_none_is_drawn_once_and_kept():
    config = resolve(seed=None, **FAST)
    assert isinstance(config.seed, int) and 0 <= config.seed < 2**63
    a = render_config(tiny_cnn(), config, progress=False)
    b = render_config(tiny_cnn(), config, progress=False)
    assert torch.equal(a.images, b.images)
    assert a.settings["seed"] == b.settings["seed"] == config.seed


def test_a_generator_seed_is_recorded_by_its_initial_seed():
    config = resolve(seed=torch.Generator().manual_seed(11))
    assert config.to_json()["seed"] == 11


# JSON ----------------------------------------------------------------------------------------


def test_json_round_trip_equals_the_renders_settings():
    kw = {**FAST, "seed": 5, "regularizers": [TotalVariation(1.0)], "normalize": "imagenet"}
    config = RenderConfig.resolve(ResidualToy(), obj.channel("block2", 3), **kw)
    result = render_config(ResidualToy(), config, progress=False)
    assert json.loads(json.dumps(config.to_json(), allow_nan=False)) == result.settings
    assert list(result.settings) == [
        "recipe", "objective", "size", "batch", "channels", "steps", "lr", "optimizer", "param",
        "decorrelate", "transforms", "regularizers", "normalize", "device", "seed", "early_stop",
        "fold_bn", "versions",
    ]  # fmt: skip
    assert result.settings["regularizers"] == ["TotalVariation(coefficient=1, beta=2)"]


def test_json_known_answer():
    config = resolve(
        size=(24, 40), steps=9, lr=0.125, param="pixel", decorrelate=False, transforms=None, seed=6
    )
    s = config.to_json()
    assert s.pop("versions").keys() >= {"midnite", "torch", "python"}
    assert s == {
        "recipe": "feature", "objective": "channel('2', 1)", "size": [24, 40], "batch": 1,
        "channels": 3, "steps": 9, "lr": 0.125, "optimizer": "adam", "param": "pixel",
        "decorrelate": False, "transforms": "None", "regularizers": [], "normalize": "None",
        "device": "cpu", "seed": 6, "early_stop": True, "fold_bn": True,
    }  # fmt: skip


def test_render_is_resolve_then_render_config():
    kw = {**FAST, "seed": 3}
    direct = midnite.render(ResidualToy(), obj.channel("block1", 2), progress=False, **kw)
    config = RenderConfig.resolve(ResidualToy(), obj.channel("block1", 2), **kw)
    again = midnite.render_config(ResidualToy(), config, progress=False)
    assert torch.equal(direct.images, again.images)
    assert direct.settings == again.settings == config.to_json()


def test_callables_are_recorded_by_repr():
    def sgd(params, lr):
        return torch.optim.SGD(params, lr=lr)

    s = resolve(optimizer=sgd, transforms=None).to_json()
    assert s["optimizer"] == repr(sgd) and s["transforms"] == "None"
    assert resolve().to_json()["optimizer"] == "adam"


# bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "exc", "message"),
    [
        ({"steps": 2.5}, TypeError, "steps must be an int >= 1, got float 2.5"),
        ({"steps": 0}, ValueError, "steps must be an int >= 1, got 0"),
        ({"batch": True}, TypeError, "batch must be an int >= 1, got bool True"),
        ({"channels": 0}, ValueError, "channels must be an int >= 1, got 0"),
        ({"lr": "fast"}, TypeError, "lr must be a finite number > 0, got str 'fast'"),
        ({"lr": -1}, ValueError, "lr must be a finite number > 0, got -1"),
        ({"lr": float("inf")}, ValueError, "lr must be a finite number > 0, got inf"),
        ({"size": (8,)}, ValueError, "size must be a positive int or (height, width) of positive "
                                     "ints, got (8,)"),
        ({"param": "wavelet"}, ValueError,
         "param must be one of ('fourier', 'pixel', 'maco'), got 'wavelet'"),
        ({"decorrelate": 1}, TypeError, "decorrelate must be True or False, got int 1"),
        ({"early_stop": "yes"}, TypeError, "early_stop must be True or False, got str 'yes'"),
        ({"fold_bn": None}, TypeError, "fold_bn must be True or False, got NoneType None"),
        ({"transforms": "fancy"}, ValueError,
         "transforms must be one of ['class', 'lucid', 'patch', 'standard'], None or a "
         "Transform, got 'fancy'"),
        ({"transforms": 3}, TypeError,
         "transforms must be a Transform, a name in ['class', 'lucid', 'patch', 'standard'] or "
         "None, got int"),
        ({"regularizers": [1]}, TypeError, "regularizers[0] must be a Regularizer"),
        ({"optimizer": "sgd"}, ValueError,
         "optimizer must be 'adam' or a callable(params, lr=...), got 'sgd'"),
        ({"optimizer": 3}, TypeError,
         "optimizer must be 'adam' or a callable(params, lr=...), got int 3"),
        ({"normalize": "cifar"}, ValueError, "normalize must be None, 'imagenet' or (mean, std), "
                                             "got 'cifar'"),
        ({"device": 3}, TypeError, "device must be a str or torch.device, got int: 3"),
        ({"seed": "x"}, TypeError, "seed must be an int, a torch.Generator or None, got str 'x'"),
        ({"seed": 1.0}, TypeError, "got float 1.0"),
    ],
)  # fmt: skip
def test_bad_settings_name_what_was_expected_and_given(kw, exc, message):
    with pytest.raises(exc, match=re.escape(message)):
        resolve(**kw)
    with pytest.raises(exc, match=re.escape(message)):  # the same checks guard replace
        resolve().replace(**kw)
    with pytest.raises(exc, match=re.escape(message)):  # and render
        midnite.render(tiny_cnn(), obj.channel("2", 1), progress=False, **{**FAST, **kw})


def test_bad_model_objective_batch_and_config():
    with pytest.raises(TypeError, match=r"model must be a torch\.nn\.Module, got str"):
        RenderConfig.resolve("resnet", obj.class_logit(0))
    per_image = [obj.channel("2", u) for u in range(3)]
    with pytest.raises(ValueError, match=r"number of per-image objectives \(3\), got 2"):
        resolve(per_image, batch=2)
    with pytest.raises(TypeError, match="Objective"):
        resolve("2:1")
    with pytest.raises(TypeError, match=r"config must be a RenderConfig .*got dict"):
        render_config(tiny_cnn(), {"steps": 1})


# the CLI records the config ------------------------------------------------------------------

MODEL_SRC = """
import torch
from torch import nn


def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, padding=1))
"""


def test_cli_records_carry_the_configs_json(tmp_path: Path):
    (tmp_path / "net.py").write_text(MODEL_SRC)
    model_spec = f"{tmp_path / 'net.py'}:net"
    out = tmp_path / "out"
    argv = ["render", model_spec, "--layer", "2", "--units", "0-2", "--batch", "2", "--steps",
            "2", "--size", "16x16", "--seed", "4", "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    model = midnite.models.load(model_spec)
    for unit in range(3):
        record = json.loads((out / f"2_channel_{unit:04d}.json").read_text())
        batch = record["batch"]["units"]
        config = RenderConfig.resolve(
            model,
            [obj.channel("2", u) for u in batch],
            size=(16, 16),
            steps=2,
            seed=rec.batch_seed(4, "2", "channel", batch),
        )
        assert record["settings"] == json.loads(json.dumps(config.to_json()))
        # the resume key takes the recipe's lr from the config, as the render did
        assert record["key"]["lr"] == config.lr == recipes.FEATURE.lr
        assert record["key"]["steps"] == 2 and record["key"]["size"] == [16, 16]


SETTINGS_FIXTURE = Path(__file__).parent / "data" / "render_settings.json"


def test_settings_json_is_what_the_flat_keywords_gave():
    """Records key on ``to_json()``: the grouped settings must give the bytes the flat keywords
    (``canvas=``, ``crop_scale=``, ``init_penalty=``, ...) gave, captured from the base commit;
    the natural recipe's since gained ``colour`` (issue #22), which changed its images."""
    from midnite.engine import Crops, Init

    expected = json.loads(SETTINGS_FIXTURE.read_text())
    init = torch.linspace(0, 1, 3 * 16 * 16).reshape(3, 16, 16)
    maco = Crops(canvas=(20, 24), count=2, scale=(0.6, 0.9), noise=0.01)
    cases = {
        "feature": (obj.channel("2", 1), {"steps": 2}),
        "class": (obj.class_logit(3), {"steps": 2, "seed": 5}),
        "per_image": ([obj.channel("2", 0), obj.channel("2", 1)], {"steps": 1, "lr": 0.1}),
        "natural": (obj.channel("2", 1), {"steps": 1, "recipe": "natural"}),
        "maco_canvas": (obj.channel("2", 1), {"steps": 1, "param": "maco", "crops": maco}),
        "init": (
            obj.channel("2", 1),
            {
                "steps": 1,
                "param": "pixel",
                "init": Init(init, penalty=2.0, layer="2", layer_penalty=0.5),
            },
        ),
        "init_batch": (
            obj.channel("2", 1),
            {"steps": 0, "init": torch.stack([init, init.flip(-1)])},
        ),
    }
    assert sorted(cases) == sorted(expected)
    for name, (objective, kw) in cases.items():
        result = midnite.render(tiny_cnn(), objective, size=16, progress=False, **kw)
        settings = {k: v for k, v in result.settings.items() if k != "versions"}
        assert json.dumps(settings) == json.dumps(expected[name]), name
