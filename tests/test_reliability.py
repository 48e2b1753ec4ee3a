"""Nothing wrong is ever saved as done: failed renders, damaged records, memory, clear messages.

The engine reports images that turned non-finite (``RenderResult.failed``); the CLI writes no
finished unit for them and exits with status 1; records are checked against a schema and their
PNG's SHA-256 on read; a folder holds one run configuration; memory is estimated up front.
Concurrent runs into one folder: ``test_reliability_concurrency.py``.
"""

from __future__ import annotations

import math
import re
import warnings

import pytest
import torch
from torch import nn

import midnite
from midnite import objectives as obj
from midnite.engine import RenderConfig, render_config, renderer

from conftest import tiny_cnn


class Poison(nn.Module):
    """Adds NaN to channel ``channel`` of its input (every channel with ``channel=None``).

    An addition passes gradients on unchanged, so only the objectives that read the poisoned
    channel see NaN; the ReLU after it sends no gradient back through NaN.
    """

    def __init__(self, channels: int, channel: int | None = None):
        super().__init__()
        offset = torch.zeros(channels)
        offset[slice(None) if channel is None else channel] = float("nan")
        self.register_buffer("offset", offset.view(1, -1, 1, 1))

    def forward(self, x):
        return x + self.offset


def poisoned(channel: int | None = None) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), Poison(4, channel), nn.ReLU())


def quick(model, objective, **kw):
    kw = {"size": 16, "steps": 3, "progress": False, **kw}
    return midnite.render(model, objective, **kw)


# the engine reports non-finite renders ---------------------------------------------------------


def test_a_healthy_render_is_ok():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = quick(tiny_cnn(), obj.channel("2", 1))
    assert result.ok and result.failed == {}
    assert "failed" not in repr(result)


def test_a_nan_objective_is_reported_not_returned_silently():
    with pytest.warns(RuntimeWarning, match=r"1 of 1 image\(s\) failed"):
        result = quick(poisoned(), obj.channel("2", 0))
    assert not result.ok
    assert list(result.failed) == [0]
    assert re.search(r"objective is nan on the start image", result.failed[0])
    assert "failed: [0]" in repr(result)


def test_a_diverging_render_names_the_step_and_suggests_a_smaller_lr():
    with pytest.warns(RuntimeWarning):
        result = quick(tiny_cnn(), obj.channel("2", 1), lr=1e308, steps=4)
    assert list(result.failed) == [0]
    assert re.search(r"turned (nan|inf|-inf) at step [1-4] of 4 .*smaller lr", result.failed[0])


def test_only_the_failed_images_of_a_batch_are_reported():
    with pytest.warns(RuntimeWarning, match=r"1 of 3 image\(s\) failed"):
        result = quick(poisoned(channel=1), [obj.channel("2", u) for u in (0, 1, 2)])
    assert list(result.failed) == [1]
    assert torch.isfinite(result.images[[0, 2]]).all()
    assert torch.isfinite(result.final[[0, 2]]).all()


def test_an_infinite_image_is_reported_although_the_clamp_would_hide_it():
    # render_config checks the raw image, before clamp(0, 1) turns inf into 1
    start, final = torch.zeros(2), torch.zeros(2)
    history = torch.zeros(3, 2)
    image = torch.zeros(2, 3, 4, 4)
    image[1, 0, 0, 0] = float("inf")
    failed = renderer._failures(start, history, final, image)
    assert failed == {1: "the image holds non-finite values (1 of 48)"}
    history[2, 0] = float("-inf")
    final[0] = float("nan")
    assert renderer._failures(start, history, final, image)[0] == (
        "the objective turned -inf at step 3 of 3 (the optimization diverged: try a smaller lr)"
    )


# clear messages for settings -------------------------------------------------------------------


@pytest.mark.parametrize("seed", [2**64, 2**63, -1])
def test_seeds_out_of_range_are_named(seed):
    message = rf"seed must be an int in \[0, 2\*\*63\), got {seed}"
    with pytest.raises(ValueError, match=message):
        RenderConfig.resolve(tiny_cnn(), obj.channel("2", 1), seed=seed)
    with pytest.raises(ValueError, match=message):
        midnite.engine.make_generator(seed, torch.device("cpu"))


def test_the_largest_seed_works():
    result = quick(tiny_cnn(), obj.channel("2", 1), seed=2**63 - 1)
    assert result.settings["seed"] == 2**63 - 1


def test_a_generator_seeded_above_2_63_still_works():
    gen = torch.Generator().manual_seed(2**64 - 1)
    result = quick(tiny_cnn(), obj.channel("2", 1), seed=gen)
    assert result.ok


def test_regularizers_none_means_none():
    a = quick(tiny_cnn(), obj.channel("2", 1), regularizers=None)
    b = quick(tiny_cnn(), obj.channel("2", 1))
    assert torch.equal(a.images, b.images)
    assert a.settings["regularizers"] == []


def test_absurd_steps_are_refused_with_the_bound():
    with pytest.raises(ValueError, match=r"steps must be at most 1000000, got 100000000000000"):
        RenderConfig.resolve(tiny_cnn(), obj.channel("2", 1), steps=100_000_000_000_000)


def test_wrong_channels_name_the_models_first_convolution():
    with pytest.raises(ValueError, match=r"channels=4.*first convolution '0' expects 3.*"
                                         r"channels=3") as info:  # fmt: skip
        quick(tiny_cnn(), obj.channel("2", 1), channels=4)
    assert isinstance(info.value.__cause__, RuntimeError)  # torch's own error, kept as the cause


# memory estimate -------------------------------------------------------------------------------


def estimate(model, **kw):
    return renderer.estimate_memory(model, RenderConfig.resolve(model, obj.channel("2", 1), **kw))


def test_memory_estimate_grows_with_batch_and_size():
    model = tiny_cnn()
    small, large = estimate(model, size=32), estimate(model, size=64)
    assert small.per_image > 0 and small.fixed >= 0
    assert 3 < large.per_image / small.per_image < 5  # 4x the pixels
    assert small.bytes(4) == small.fixed + 4 * small.per_image
    assert small.max_batch(small.bytes(3)) == 3
    assert small.max_batch(small.fixed) == 0


def test_memory_estimate_counts_history_and_leaves_the_model_as_it_was():
    model = tiny_cnn()
    model.train()
    flags = [p.requires_grad for p in model.parameters()]
    few, many = estimate(model, steps=10), estimate(model, steps=10**6)
    assert many.per_image - few.per_image == (10**6 - 10) * 4
    assert model.training and [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())


def test_memory_estimate_is_near_the_measured_peak_of_a_real_render():
    # the activations a render keeps dominate its memory; the estimate must be of that order
    model = nn.Sequential(*[nn.Sequential(nn.Conv2d(8 if i else 3, 8, 3, padding=1), nn.ReLU())
                            for i in range(6)])  # fmt: skip
    config = RenderConfig.resolve(model, obj.channel("5", 0), size=128, batch=2, steps=2)
    need = renderer.estimate_memory(model, config).bytes(2)
    activations = 6 * 2 * (8 * 128 * 128 * 4) * 2  # conv and relu outputs, batch 2
    assert activations <= need <= 6 * activations
    assert math.isfinite(need)
    render_config(model, config, progress=False)
