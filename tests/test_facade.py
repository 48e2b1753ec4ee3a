"""The facade ``midnite``: ``render``'s init from a path, and the names it exports."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import midnite
from midnite import engine


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())


def _start(init) -> torch.Tensor:
    objective = midnite.objectives.channel("1", 0)
    kw = {"size": 16, "steps": 0, "param": "pixel", "progress": False}
    return midnite.render(_net(), objective, init=init, **kw).images


@pytest.fixture
def photo(tmp_path):
    pixels = (np.random.default_rng(0).random((40, 30, 3)) * 255).astype(np.uint8)
    path = tmp_path / "photo.png"
    Image.fromarray(pixels).save(path)
    return path, pixels


def test_init_from_a_path_equals_the_explicit_tensor(photo):
    path, pixels = photo
    explicit = torch.from_numpy(pixels).permute(2, 0, 1).float() / 255
    expected = _start(explicit)
    for init in (path, str(path), Image.open(path), pixels, explicit[None]):
        assert torch.allclose(_start(init), expected, atol=1e-4), type(init)


def test_init_from_a_grey_file_spreads_it_over_the_colours(tmp_path):
    path = tmp_path / "grey.png"
    Image.fromarray(np.full((16, 16), 128, dtype=np.uint8), mode="L").save(path)
    image = _start(path)[0]
    assert torch.allclose(image[0], image[1]) and torch.allclose(image[1], image[2])


def test_init_from_a_missing_file_is_a_usage_error(tmp_path):
    with pytest.raises(midnite.UsageError, match=r"nothing\.png"):
        _start(tmp_path / "nothing.png")


def test_render_shows_the_engines_keywords_and_says_what_it_adds():
    facade, own = inspect.signature(midnite.render), inspect.signature(engine.render)
    assert facade == own and "init" in facade.parameters and "crops" in facade.parameters
    assert "path" in (midnite.render.__doc__ or "")


def test_the_public_names_exist():
    for name in midnite.__all__:
        assert getattr(midnite, name) is not None, name
    assert midnite.render_steps is engine.render_steps and midnite.Init is engine.Init
    assert issubclass(midnite.UsageError, midnite.MidniteError)
