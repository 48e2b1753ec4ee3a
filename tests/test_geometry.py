"""Tests for midnite.engine.geometry (re-exported by transforms): affine resampling, random
affine draws, resize; known answers, bands, errors."""

from __future__ import annotations

import math

import pytest
import torch

from midnite.engine.transforms import (
    RandomAffine,
    RandomRotate,
    RandomScale,
    affine,
    random_affine,
    resize,
)

from conftest import gen, rand_image

# --------------------------------------------------------------------------- affine / random


def test_affine_rotation_90_matches_rot90():
    x = torch.arange(16.0, dtype=torch.float64).view(1, 1, 4, 4)
    y = affine(x, torch.tensor([90.0]), torch.tensor([1.0]), torch.zeros(1, 2))
    assert torch.allclose(y, torch.rot90(x, 1, (2, 3)), atol=1e-9)
    # non-square: the central 4x4 block of a 4x6 image rotates like a square
    z = torch.rand(1, 2, 4, 6, dtype=torch.float64, generator=gen())
    yz = affine(z, torch.tensor([90.0]), torch.tensor([1.0]), torch.zeros(1, 2))
    assert torch.allclose(yz[..., 1:5], torch.rot90(z[..., 1:5], 1, (2, 3)), atol=1e-9)


def test_affine_shift_and_scale_known_values():
    x = torch.arange(16.0, dtype=torch.float64).view(1, 1, 4, 4)
    y = affine(x, torch.zeros(1), torch.ones(1), torch.tensor([[1.0, 0.0]]))
    expected = torch.cat([x[..., :1], x[..., :3]], dim=3)  # moved right, mirrored at the border
    assert torch.allclose(y, expected, atol=1e-9)
    ramp = torch.arange(4.0, dtype=torch.float64).expand(1, 1, 4, 4)
    zoom = affine(ramp, torch.zeros(1), torch.tensor([2.0]), torch.zeros(1, 2))
    assert torch.allclose(zoom[0, 0, 0], torch.tensor([0.75, 1.25, 1.75, 2.25], dtype=zoom.dtype))


def test_affine_pad_grows_the_canvas_with_a_mirrored_border():
    x = torch.rand(1, 2, 8, 10, dtype=torch.float64, generator=gen())
    y = affine(x, 0.0, 1.0, (2.0, -1.0), pad=3)  # content 2 px right, 1 px up
    assert y.shape == (1, 2, 14, 16)
    # output (i, j) shows input (i - 3 + 1, j - 3 - 2) where that is inside the image
    assert torch.allclose(y[..., 2:10, 5:15], x[..., 0:8, 0:10], atol=1e-9)
    # outside, mirrored about the border (the edge pixel repeated): the column left of the image
    assert torch.allclose(y[..., 2:10, 4], x[..., 0:8, 0], atol=1e-9)
    assert torch.allclose(y[..., 2:10, 3], x[..., 0:8, 1], atol=1e-9)
    # rotation and zoom turn about the centre of the grown canvas: its centre stays put
    z = torch.rand(1, 1, 9, 9, dtype=torch.float64, generator=gen(1))
    r = affine(z, 37.0, 1.3, (0.0, 0.0), pad=2)
    assert torch.allclose(r[..., 6, 6], z[..., 4, 4], atol=1e-9)
    with pytest.raises(ValueError, match="pad must be an int >= 0, got -1"):
        affine(x, 0.0, 1.0, (0.0, 0.0), pad=-1)


@pytest.mark.parametrize("threads", [1, 2, 3, 4])
@pytest.mark.parametrize(("b", "ho"), [(1, 9), (1, 8), (2, 7), (3, 5)])
def test_grid_sample_bands_match_one_pass(threads, b, ho):
    # the CPU path cuts small batches into bands of rows, one per thread: same values, same grads
    import torch.nn.functional as F

    from midnite.engine.geometry import _grid_sample

    x = torch.rand(b, 2, 6, 7, dtype=torch.float64, generator=gen(2), requires_grad=True)
    theta = torch.tensor([[0.9, -0.3, 0.1], [0.25, 1.1, -0.2]], dtype=torch.float64)
    grid = F.affine_grid(theta.expand(b, 2, 3), [b, 1, ho, 5], align_corners=False)
    g = torch.rand(b, 2, ho, 5, dtype=torch.float64, generator=gen(3))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        y = _grid_sample(x, grid, "reflection")
        (gx,) = torch.autograd.grad(y, x, g)
    finally:
        torch.set_num_threads(before)
    ref = F.grid_sample(x, grid, padding_mode="reflection", align_corners=False)
    (gref,) = torch.autograd.grad(ref, x, g)
    assert y.shape == ref.shape
    assert torch.allclose(y, ref, atol=1e-12)
    assert torch.allclose(gx, gref, atol=1e-12)


def test_affine_accepts_scalars_and_rejects_bad_shapes():
    x = torch.arange(16.0, dtype=torch.float64).view(1, 1, 4, 4).expand(2, 1, 4, 4)
    y = affine(x, 180.0, 1.0, (0.0, 0.0))
    assert torch.allclose(y, x.flip(2, 3), atol=1e-9)
    with pytest.raises(ValueError, match=r"batch of 2; got shapes \(3,\)"):
        affine(x, torch.zeros(3), 1.0, (0.0, 0.0))
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        affine(x, 0.0, 1.0, (0.0, 0.0), padding_mode="wrap")


def test_random_affine_zero_parameters_is_identity():
    x = rand_image().double()
    y = random_affine(x, max_shift=0, degrees=0, scales=(1, 1), generator=gen())
    assert torch.allclose(y, x, atol=1e-9)
    assert torch.allclose(random_affine(x, generator=gen()), x, atol=1e-9)  # the defaults


def test_random_affine_keeps_size_and_brings_no_border():
    x = 0.2 + 0.6 * rand_image(h=21, w=17)
    for seed in range(5):
        y = random_affine(x, max_shift=6, degrees=30.0, scales=(0.5, 1.5), generator=gen(seed))
        assert y.shape == x.shape
        assert y.min() >= 0.2 - 1e-6 and y.max() <= 0.8 + 1e-6


def test_random_affine_seeded_reproducible_and_per_image():
    x = rand_image(b=1).expand(4, 3, 16, 16)
    t = RandomAffine(max_shift=2, degrees=5.0)
    a, b = t(x, generator=gen(7)), t(x, generator=gen(7))
    assert torch.equal(a, b)
    assert not torch.equal(a, t(x, generator=gen(8)))
    for i in range(1, 4):  # identical images, different parameters
        assert not torch.allclose(a[0], a[i])


def test_random_affine_centre_pixel_fixed_under_rotation_and_scale():
    x = rand_image(h=5, w=5).double()
    for t in (RandomRotate(30.0), RandomScale((0.5, 1.5))):
        y = t(x, generator=gen(3))
        assert torch.allclose(y[..., 2, 2], x[..., 2, 2], atol=1e-9)
        assert not torch.allclose(y, x)


def test_random_scale_fixed_factor_known_values():
    ramp = torch.arange(4.0, dtype=torch.float64).expand(1, 1, 4, 4)
    y = RandomScale((2.0, 2.0))(ramp, gen())
    assert torch.allclose(y[0, 0, 0], torch.tensor([0.75, 1.25, 1.75, 2.25], dtype=y.dtype))


def test_random_affine_respects_bounds():
    # shift only, on a horizontal ramp: every image moves right/left by at most 1 px
    x = torch.arange(8.0, dtype=torch.float64).expand(6, 1, 8, 8)
    y = random_affine(x, max_shift=1.0, generator=gen(2))
    centre = y[:, 0, 4, 2:6] - x[:, 0, 4, 2:6]  # on a ramp, -shift everywhere inside
    assert (centre.abs() <= 1.0 + 1e-9).all()
    assert centre.abs().max() > 0.0


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"max_shift": -1}, ValueError, r"max_shift must be a finite number >= 0, got -1"),
        ({"degrees": "a"}, TypeError, r"degrees must be a finite number >= 0, got str 'a'"),
        ({"degrees": math.inf}, ValueError, r"degrees must be a finite number >= 0, got inf"),
        ({"scales": (0.0, 1.0)}, ValueError, r"scales\[0\] must be a finite number > 0"),
        ({"scales": 1.1}, TypeError, r"scales must be a pair \(low, high\), got 1.1"),
    ],
)
def test_random_affine_bad_parameters_name_expected_and_given(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        random_affine(rand_image(), **kwargs)
    with pytest.raises(exc, match=match):
        RandomAffine(**kwargs)


def test_random_affine_bad_parameters():
    x = rand_image()
    with pytest.raises(TypeError, match="max_scale"):
        random_affine(x, max_scale=0.1)  # one set of names: scales=(low, high)
    with pytest.raises(ValueError, match=r"low <= high, got \(1.2, 0.8\)"):
        RandomScale((1.2, 0.8))
    with pytest.raises(ValueError, match=r"scales\[0\] must be a finite number > 0, got 0"):
        RandomAffine(scales=(0, 1))
    with pytest.raises(ValueError, match=r"padding_mode must be one of .* got 'mirror'"):
        RandomRotate(padding_mode="mirror")
    with pytest.raises(TypeError, match=r"generator must be a torch\.Generator or None, got int"):
        random_affine(x, max_shift=1.0, generator=0)


# --------------------------------------------------------------------------- resize


@pytest.mark.parametrize(
    ("hw", "fac", "expected"),
    [
        ((25, 25), 1.2, (30, 30)),
        ((10, 7), 1.2, (12, 8)),
        ((8, 8), 0.5, (4, 4)),
        ((3, 4), 0.01, (1, 1)),
    ],
)
def test_resize_size(hw, fac, expected):
    y = resize(torch.rand(1, 2, *hw), fac)
    assert y.shape == (1, 2, *expected)


def test_resize_antialias_when_shrinking():
    x = torch.zeros(1, 1, 12, 12)
    x[..., ::3] = 1.0  # thin lines every 3 columns; plain bilinear at 1/3 would sample zeros only
    y = resize(x, 1 / 3)
    assert y.shape == (1, 1, 4, 4)
    assert y.min() > 0.2 and y.max() < 0.5
    up = resize(torch.full((1, 3, 5, 5), 0.3), 1.7)
    assert torch.allclose(up, torch.full_like(up, 0.3))


@pytest.mark.parametrize("fac", [0, -1.2])
def test_resize_bad_factor(fac):
    with pytest.raises(ValueError, match=rf"factor must be a finite number > 0, got {fac}"):
        resize(rand_image(), fac)


@pytest.mark.parametrize(("b", "ho", "wo"), [(1, 7, 5), (3, 4, 9), (2, 1, 1)])
def test_affine_grid_matches_torch(b, ho, wo):
    import torch.nn.functional as F

    from midnite.engine.geometry import _affine_grid

    theta = torch.randn(b, 2, 3, dtype=torch.float64, generator=gen(b))
    expected = F.affine_grid(theta, [b, 1, ho, wo], align_corners=False)
    assert torch.allclose(_affine_grid(theta, ho, wo), expected, atol=1e-12)


def test_affine_theta_same_from_floats_and_from_tensors(monkeypatch):
    # on the CPU theta is built from Python floats; on a GPU from tensors: the same numbers
    import midnite.engine.geometry as tr

    x = torch.rand(3, 2, 9, 7, generator=gen(5))
    args = (torch.tensor([-8.0, 0.0, 25.0]), torch.tensor([0.9, 1.0, 1.3]), torch.randn(3, 2))
    host = affine(x, *args, pad=2)
    monkeypatch.setattr(tr, "_HOST_DEVICES", ())
    assert torch.allclose(affine(x, *args, pad=2), host, atol=1e-5)
