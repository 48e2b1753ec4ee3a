"""Feature accentuation: ``render(..., init=Init(images, penalty=λ))`` (Hamblin et al. 2024)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import midnite
from midnite import models
from midnite import objectives as obj
from midnite import records as rec
from midnite.cli import main
from midnite.engine import Init, RenderConfig
from midnite.engine.config import init_digest
from midnite.engine.memory import estimate_memory
from midnite.engine.passes import InitPenalty, Renderer

from conftest import assert_same_state, model_state, rand_image, tiny_cnn


def _photo(size: int = 32) -> torch.Tensor:
    photos = pytest.importorskip("midnite.photos")
    try:
        return photos.load_photos(size)[1:2]  # the cat
    except photos.PhotosMissingError:
        pytest.skip("scikit-image's sample photographs are not installed")


def _ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """scikit-image's SSIM of the first images of two batches (the test skips without it)."""
    ssim = pytest.importorskip("skimage.metrics").structural_similarity
    pair = [x[0].permute(1, 2, 0).numpy() for x in (a, b)]
    return float(ssim(*pair, channel_axis=2, data_range=1.0))


@pytest.mark.parametrize("param", ["pixel", "fourier"])
@pytest.mark.parametrize("decorrelate", [True, False])
def test_zero_steps_give_the_init_back(param, decorrelate):
    init = rand_image(2, 3, 17, 24)
    init[0, :, 0, 0] = 0.0  # the extremes too: the sigmoid holds them within 1e-4
    init[0, :, 0, 1] = 1.0
    init[1, :, 2, 3] = torch.tensor([1.0, 0.0, 0.0])  # a saturated colour, decorrelated
    init[1, :, :, 5] = torch.tensor([0.0, 1.0, 1.0])[:, None]
    before = init.clone()
    result = midnite.render(
        tiny_cnn(),
        obj.channel("2", 1),
        size=(17, 24),
        steps=0,
        init=init,
        param=param,
        decorrelate=decorrelate,
        progress=False,
    )
    assert result.images.shape == (2, 3, 17, 24) and result.history.shape == (0, 2)
    assert float((result.images - init).abs().max()) < 1e-3
    assert torch.equal(result.alpha, torch.zeros(2, 17, 24))
    assert torch.equal(init, before)  # the user's tensor is left alone


def test_one_image_uint8_and_chw_forms():
    init = (rand_image(1, 3, 8, 8) * 255).round().to(torch.uint8)
    kw = {"size": 8, "steps": 0, "progress": False}
    one = midnite.render(tiny_cnn(), obj.channel("2", 1), init=init[0], batch=3, **kw)
    assert one.images.shape == (3, 3, 8, 8)
    assert float((one.images - init.float() / 255).abs().max()) < 1e-3
    # the batch follows the init when not given
    four = rand_image(4, 3, 8, 8)
    config = RenderConfig.resolve(tiny_cnn(), obj.channel("2", 1), size=8, init=four)
    assert config.batch == 4


def test_huge_penalty_keeps_the_image_while_the_objective_rises(one_thread):
    photo = _photo()
    kw = {"size": 32, "steps": 16, "progress": False}
    # the channel's values are ~0.08: a weight of 10 on the pixels' squared distance is huge
    kept = midnite.render(tiny_cnn(), obj.channel("2", 1), init=Init(photo, penalty=10.0), **kw)
    free = midnite.render(tiny_cnn(), obj.channel("2", 1), init=photo, **kw)
    assert _ssim(kept.images, photo) >= 0.9
    assert float(kept.final[0]) > float(kept.start[0]) + 1e-4
    # the penalty is what keeps it: without it the image wanders off, and rises further
    assert _ssim(free.images, photo) < _ssim(kept.images, photo) - 0.05
    assert float(free.final[0]) > float(kept.final[0])


@pytest.mark.parametrize("transforms", [None, "standard"])
def test_layer_penalty_reduces_activation_drift(transforms):
    photo = _photo()
    model = tiny_cnn()
    kw = {"size": 32, "steps": 24, "transforms": transforms, "progress": False}
    before = model_state(model)
    free = midnite.render(model, obj.channel("2", 1), init=photo, **kw)
    held_init = Init(photo, layer="1", layer_penalty=1e3)
    held = midnite.render(model, obj.channel("2", 1), init=held_init, **kw)
    assert_same_state(before, model)

    def drift(images: torch.Tensor) -> float:
        with torch.no_grad():
            return float((model[:2](images) - model[:2](photo)).square().mean())

    assert drift(held.images) < 0.1 * drift(free.images)
    assert float(held.final[0]) > float(held.start[0])


def test_settings_record_the_init_by_digest():
    init = rand_image(1, 3, 8, 8)
    config = RenderConfig.resolve(
        tiny_cnn(),
        obj.channel("2", 1),
        size=8,
        init=Init(init, penalty=2.0, layer="1", layer_penalty=0.5),
    )
    s = config.to_json()
    assert s["init"] == {"shape": [1, 3, 8, 8], "sha256": init_digest(init)}
    assert (s["init_penalty"], s["init_layer"], s["init_layer_penalty"]) == (2.0, "1", 0.5)
    assert len(json.dumps(s)) < 2000  # a digest, not the pixels
    other = init.clone()
    other[0, 0, 0, 0] += 0.5
    assert init_digest(other) != init_digest(init) == init_digest(init.clone())
    # without init the settings are what they always were (catalogue keys unchanged)
    assert "init" not in RenderConfig.resolve(tiny_cnn(), obj.channel("2", 1)).to_json()
    # replace keeps the init, and a one-image init serves any batch
    assert config.replace(batch=3).to_json()["init"] == s["init"]


def test_init_penalty_known_answer():
    init = torch.zeros(2, 1, 2, 2)
    image = torch.ones(2, 1, 2, 2)
    image[1] = 0.5
    penalty = InitPenalty(init, 3.0)
    assert penalty(image, {}).tolist() == [3.0, 0.75]
    assert penalty.layers == ()
    layered = InitPenalty(init, 0.0, "conv", 2.0)
    layered.target = torch.zeros(2, 4)
    acts = {"conv": torch.tensor([[1.0, 1.0, 1.0, 1.0], [2.0, 0.0, 0.0, 0.0]])}
    assert layered(image, acts).tolist() == [2.0, 2.0]
    with pytest.raises(RuntimeError, match="set_target"):
        InitPenalty(init, 0.0, "conv", 2.0)(image, acts)


def test_renderer_activations_read_the_penalty_layer():
    model = tiny_cnn()
    penalty = InitPenalty(rand_image(1, 3, 8, 8), 0.0, "1", 1.0)
    with Renderer(model, obj.channel("2", 0), penalty=penalty) as renderer:
        renderer.validate(penalty.init)
        acts = renderer.activations(penalty.init)
        penalty.set_target(renderer)
    assert set(acts) == {"1", "2"}
    assert penalty.target is not None and penalty.target.shape == (1, 4, 8, 8)
    with torch.no_grad():
        assert torch.allclose(penalty.target, model[:2](penalty.init), atol=1e-5)


def test_penalty_argument_is_checked():
    with pytest.raises(TypeError, match="penalty must be an InitPenalty or None, got float"):
        Renderer(nn.Conv2d(3, 3, 1), obj.channel("", 0), penalty=1.0)  # type: ignore[arg-type]


# the command line: midnite render --init PNG [--init-penalty L] ------------------------------

MODEL_SRC = """
import torch
from torch import nn


def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))
"""


@pytest.fixture
def cli_setup(tmp_path):
    model = tmp_path / "tiny.py"
    model.write_text(MODEL_SRC)
    png = tmp_path / "start.png"
    Image.fromarray(
        (rand_image(1, 3, 24, 32)[0].permute(1, 2, 0).numpy() * 255).astype("uint8")
    ).save(png)
    base = ["render", f"{model}:net", "--layer", "2", "--units", "0-1", "--steps", "3",
            "--no-progress", "--out", str(tmp_path / "out")]  # fmt: skip
    return base, png, tmp_path / "out"


def test_cli_renders_from_an_init_image(cli_setup):
    base, png, out = cli_setup
    assert main([*base, "--init", str(png), "--init-penalty", "100"]) == 0
    start = torch.from_numpy(np.array(Image.open(png))).permute(2, 0, 1).float() / 255
    for unit in (0, 1):
        record = json.loads((out / f"2_channel_{unit:04d}.json").read_text())
        digest = init_digest(start[None])
        assert record["key"]["init"] == record["run"]["init"] == digest
        assert record["key"]["init_penalty"] == record["settings"]["init_penalty"] == 100.0
        assert record["settings"]["init"] == {"shape": [1, 3, 24, 32], "sha256": digest}
        assert record["settings"]["size"] == [24, 32]  # the image's size
        image = np.asarray(Image.open(out / record["image"]["file"])).astype(float) / 255
        assert np.abs(image - start.permute(1, 2, 0).numpy()).mean() < 0.05
    # the same command again: everything up to date
    assert main([*base, "--init", str(png), "--init-penalty", "100"]) == 0
    assert len(rec.scan(out).units) == 2


def test_cli_init_mistakes_are_one_line(cli_setup, capsys):
    base, png, _ = cli_setup
    assert main([*base, "--init", str(png), "--size", "32x32"]) == 2
    assert "is 24x32 but --size is 32x32; resize the image" in capsys.readouterr().err
    assert main([*base, "--init-penalty", "1"]) == 2
    assert "--init-penalty needs --init PNG" in capsys.readouterr().err
    assert main([*base, "--init", str(png.with_name("missing.png"))]) == 2
    assert "cannot be read as an image" in capsys.readouterr().err
    assert main([*base, "--init", str(png), "--init-penalty", "-1"]) == 2
    capsys.readouterr()
    # a folder holds one run: units rendered without --init are not silently replaced
    assert main([*base, "--size", "24x32"]) == 0
    assert main([*base, "--init", str(png)]) == 2
    err = capsys.readouterr().err
    assert "holds 2 unit(s) of" in err and "no --init" in err and "--init sha256:" in err


def test_memory_estimate_with_an_init():
    config = RenderConfig.resolve(
        tiny_cnn(), obj.channel("2", 1), size=16, batch=2, steps=4,
        init=Init(rand_image(2, 3, 16, 16), penalty=1.0, layer="1", layer_penalty=1.0),
    )  # fmt: skip
    plain = config.replace(init=None)
    with_init = estimate_memory(tiny_cnn(), config)
    assert with_init.per_image > 0 and with_init.fixed == estimate_memory(tiny_cnn(), plain).fixed


@pytest.mark.slow
def test_accentuation_on_lite0_keeps_the_photo(one_thread):
    photo = _photo(96)
    model = models.efficientnet_lite(0)
    result = midnite.render(
        model, obj.channel("_blocks.8", 5), size=96, steps=32, normalize="imagenet",
        init=Init(photo, penalty=1e5), progress=False,
    )  # fmt: skip
    assert _ssim(result.images, photo) >= 0.9
    assert float(result.final[0]) > 1.2 * float(result.start[0]) > 0


def test_a_param_that_cannot_be_inverted_is_refused(monkeypatch):
    # pixel and fourier invert exactly; a parameterization that does not (a larger canvas seen
    # through random crops, say) must say so rather than start from something else
    from midnite.engine import config as config_module

    monkeypatch.setattr(config_module, "_PARAMS", (*config_module._PARAMS, "canvas"))
    with pytest.raises(ValueError, match=r"init needs a parameterization that can be inverted "
                       r"exactly, one of \('fourier', 'pixel'\); got param='canvas'"):  # fmt: skip
        RenderConfig.resolve(
            tiny_cnn(), obj.channel("2", 1), size=8, param="canvas", init=rand_image(1, 3, 8, 8)
        )
