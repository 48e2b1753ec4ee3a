"""The public step loop: ``render_steps``, ``render(..., callback=, snapshots=)``, and the model
restored however the loop ends."""

from __future__ import annotations

import gc
import inspect

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import midnite
from midnite.engine import (
    Crops,
    Init,
    RenderConfig,
    StepState,
    generators,
    param,
    render,
    render_config,
    render_steps,
    steps_config,
)
from midnite.engine import objectives as obj

from conftest import assert_same_state, hook_count, model_state, tiny_cnn

KW = {"size": 16, "seed": 3, "progress": False}


def bn_net() -> nn.Sequential:
    """Conv + batchnorm (folded during a render) in the user's train mode."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
    with torch.no_grad():
        net[1].running_mean.uniform_(-0.5, 0.5)
        net[1].running_var.uniform_(0.5, 2.0)
    return net.train()


def _state(model: nn.Module) -> tuple[dict, dict]:
    return model_state(model), {k: v.clone() for k, v in model.state_dict().items()}


def _assert_restored(before: tuple[dict, dict], model: nn.Module) -> None:
    assert_same_state(before[0], model)
    after = model.state_dict()
    assert after.keys() == before[1].keys()
    assert all(torch.equal(after[k], v) for k, v in before[1].items())
    assert isinstance(model[1], nn.BatchNorm2d) and model[1].training  # unfolded, its mode back


def test_callback_stops_after_5_steps_with_the_images_of_that_step():
    seen: list[int] = []

    def stop_at_5(state: StepState) -> bool:
        seen.append(state.step)
        return state.step == 5

    stopped = render(tiny_cnn(), obj.channel("2", 1), steps=20, callback=stop_at_5, **KW)
    five = render(tiny_cnn(), obj.channel("2", 1), steps=5, **KW)
    assert seen == [1, 2, 3, 4, 5]
    assert stopped.history.shape == (5, 1) and stopped.ok
    assert torch.equal(stopped.history, five.history)
    assert torch.equal(stopped.images, five.images)
    assert torch.equal(stopped.final, five.final)  # scored on the images at step 5


def test_a_callback_that_returns_other_values_does_not_stop():
    result = render(tiny_cnn(), obj.channel("2", 1), steps=4, callback=lambda s: 1, **KW)
    assert result.history.shape == (4, 1)


def test_snapshots_equal_the_start_image_and_a_10_step_render():
    model = tiny_cnn()
    result = render(model, obj.channel("2", 1), steps=20, snapshots=(0, 10), **KW)
    ten = render(model, obj.channel("2", 1), steps=10, **KW)
    assert sorted(result.snapshots) == [0, 10]
    assert torch.equal(result.snapshots[10], ten.images)
    # step 0: the start image, the parameterization drawn from the seed before any step
    config = RenderConfig.resolve(model, obj.channel("2", 1), size=16, seed=3)
    gens = generators(3, torch.device("cpu"))
    start = param.image(16, 16, fft=True, decorrelate=config.decorrelate, generator=gens.init)
    with torch.no_grad():
        assert torch.equal(result.snapshots[0], start().clamp(0, 1))
    assert result.snapshots[0].shape == (1, 3, 16, 16) and result.snapshots[0].device.type == "cpu"
    assert not torch.equal(result.snapshots[0], result.snapshots[10])


def test_render_steps_yields_each_step_with_values_and_snapshots():
    stream = render_steps(tiny_cnn(), obj.channel("2", 1), steps=6, snapshots=(0, 3), **KW)
    states = list(stream)
    assert [s.step for s in states] == [0, 1, 2, 3, 4, 5, 6]  # 0: asked for as a snapshot
    assert [s.images is not None for s in states] == [1, 0, 0, 1, 0, 0, 0]
    full = render(tiny_cnn(), obj.channel("2", 1), steps=6, **KW)
    assert torch.equal(torch.stack([s.objective for s in states[1:]]), full.history)
    assert torch.equal(states[0].objective, full.start)
    assert states[1].objective.device.type == "cpu" and states[1].objective.shape == (1,)


def test_render_steps_send_true_returns_the_result_of_the_steps_done():
    stream = render_steps(tiny_cnn(), obj.channel("2", 1), steps=10, **KW)
    assert next(stream).step == 1
    assert stream.send(False).step == 2
    with pytest.raises(StopIteration) as end:
        stream.send(True)
    result = end.value.value
    assert result.history.shape == (2, 1)
    two = render(tiny_cnn(), obj.channel("2", 1), steps=2, **KW)
    assert torch.equal(result.images, two.images)


def test_steps_config_runs_a_config_and_checks_it():
    model = tiny_cnn()
    config = RenderConfig.resolve(model, obj.channel("2", 1), size=16, steps=3, seed=3)
    states = list(steps_config(model, config))
    assert [s.step for s in states] == [1, 2, 3]
    assert torch.equal(torch.stack([s.objective for s in states]), render_config(
        model, config, progress=False).history)  # fmt: skip
    with pytest.raises(TypeError, match=r"config must be a RenderConfig .*got dict"):
        steps_config(model, {"steps": 3})  # type: ignore[arg-type]


def test_model_restored_after_break():
    model = bn_net()
    before = _state(model)
    for state in render_steps(model, obj.channel("2", 1), steps=10, **KW):
        if state.step == 2:
            break
    gc.collect()  # the abandoned generator is closed when collected
    _assert_restored(before, model)


def test_model_restored_after_close_and_while_running_it_is_not():
    model = bn_net()
    before = _state(model)
    stream = render_steps(model, obj.channel("2", 1), steps=10, **KW)
    next(stream)
    assert hook_count(model) > 0  # hooked while the render runs
    stream.close()
    _assert_restored(before, model)


def test_model_restored_when_the_generator_is_dropped():
    model = bn_net()
    before = _state(model)
    stream = render_steps(model, obj.channel("2", 1), steps=10, **KW)
    next(stream)
    del stream
    gc.collect()
    _assert_restored(before, model)


def test_model_restored_after_an_exception_in_the_callback():
    model = bn_net()
    before = _state(model)

    def fail(state: StepState) -> None:
        if state.step == 3:
            raise KeyError("from the callback")

    with pytest.raises(KeyError, match="from the callback"):
        render(model, obj.channel("2", 1), steps=10, callback=fail, **KW)
    _assert_restored(before, model)


def test_bad_callback_and_snapshots_are_named():
    model = tiny_cnn()
    with pytest.raises(TypeError, match="callback must be a callable\\(state\\) or None, got int"):
        render(model, obj.channel("2", 1), steps=2, callback=3, **KW)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"snapshots must be steps in \[0, 2\] .*got 5"):
        render(model, obj.channel("2", 1), steps=2, snapshots=(0, 5), **KW)
    with pytest.raises(TypeError, match=r"snapshots must hold ints .*got float 1.0"):
        render(model, obj.channel("2", 1), steps=2, snapshots=(1.0,), **KW)
    with pytest.raises(TypeError, match=r"snapshots must be steps .*got int 3"):
        render(model, obj.channel("2", 1), steps=2, snapshots=3, **KW)  # type: ignore[arg-type]


def test_render_signature_lists_the_real_settings():
    settings = list(inspect.signature(RenderConfig.resolve).parameters)[2:]
    for fn in (render, render_steps, midnite.render):
        params = inspect.signature(fn).parameters
        assert list(params)[:2] == ["model", "objective"]
        assert all(p.kind is not p.VAR_KEYWORD for p in params.values())
        assert [p for p in params if p in settings] == settings
        assert params["crops"].default is None and params["size"].default == 224
        for gone in ("canvas", "crop_scale", "crop_noise", "init_penalty", "init_layer"):
            assert gone not in params
        assert "crops: a ``Crops(count, scale, noise, canvas)``" in (fn.__doc__ or "")
    assert {"progress", "callback", "snapshots"} <= set(inspect.signature(render).parameters)
    with pytest.raises(TypeError, match=r"render\(\) got an unexpected setting 'palette'"):
        render(tiny_cnn(), obj.channel("2", 1), palette=1, **KW)
    with pytest.raises(TypeError, match=r"render_steps\(\) got an unexpected setting 'crop_scale'; "
                       r"use crops=Crops\(scale=...\)"):  # fmt: skip
        render_steps(tiny_cnn(), obj.channel("2", 1), crop_scale=(0.5, 1))


def test_grouped_settings_check_their_values():
    assert Crops(count=2, scale=[0.5, 0.75], canvas=20) == Crops(2, (0.5, 0.75), 0.05, (20, 20))
    cases = [
        (lambda: Crops(count=True), TypeError, "crops.count must be an int >= 1, got bool True"),
        (lambda: Crops(count=257), ValueError, "crops.count must be at most 256"),
        (lambda: Crops(scale=0.5), TypeError, r"crops.scale must be a pair \(low, high\) .*float"),
        (lambda: Crops(scale=(0.9, 0.5)), ValueError, r"low <= high, got \(0.9, 0.5\)"),
        (lambda: Crops(noise="a"), TypeError, "crops.noise must be a finite number >= 0, got str"),
        (lambda: Crops(canvas=(3, 0)), ValueError, r"crops.canvas must be a positive int or"),
        (lambda: Init("photo.png"), TypeError, r"init must be an image: .*midnite.images.load"),
        (lambda: Init(torch.rand(3, 4, 4), penalty=None), TypeError, "init.penalty must be"),
        (lambda: Init(torch.rand(3, 4, 4), layer_penalty=1.0), ValueError, "go together"),
    ]
    for make, kind, message in cases:
        with pytest.raises(kind, match=message):
            make()
    init = Init(np.zeros((4, 6, 3), np.uint8), penalty=2)
    assert init.image.shape == (1, 3, 4, 6) and init.penalty == 2.0
    assert repr(init) == "Init(image (1, 3, 4, 6), penalty=2)"


def test_init_takes_any_image_and_resizes_it_to_the_render():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)  # one picture, HWC uint8
    as_tensor = torch.from_numpy(pixels).permute(2, 0, 1).float() / 255  # CHW float
    big = torch.rand(3, 40, 24, generator=torch.Generator().manual_seed(1))
    resized = torch.nn.functional.interpolate(
        big[None], size=(16, 16), mode="bilinear", align_corners=False, antialias=True
    ).clamp(0, 1)
    kw = {**KW, "steps": 0, "param": "pixel"}

    def start(image: object) -> torch.Tensor:
        return render(tiny_cnn(), obj.channel("2", 1), init=image, **kw).images

    clip = 1e-4 + 1e-6  # the sigmoid's clip to [1e-4, 1 - 1e-4], plus float rounding
    first = start(as_tensor)
    assert first.shape == (1, 3, 16, 16) and float((first - as_tensor).abs().max()) < clip
    for images in (start(pixels), start(Image.fromarray(pixels)), start(Init(pixels))):
        assert float((images - first).abs().max()) < 1e-6
    assert float((start(big) - resized).abs().max()) < clip  # any size, resized the same way
    # the config records the digest of the resized image
    config = RenderConfig.resolve(tiny_cnn(), obj.channel("2", 1), size=16, init=big)
    assert config.to_json()["init"]["shape"] == [1, 3, 16, 16]
    assert config.init is not None and torch.allclose(config.init.image, resized)
    # grey is spread over the model's channels
    grey = start(pixels[..., 0])
    assert (
        torch.allclose(grey[:, 0], grey[:, 2])
        and float((grey[0, 0] - as_tensor[0]).abs().max()) < 1e-4
    )
