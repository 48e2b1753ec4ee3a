"""Tests for midnite.engine.transforms: protocol, known answers, gradcheck, errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from midnite.engine.transforms import (
    BilateralTransform,
    BlurTransform,
    Compose,
    GaussianBlur,
    Jitter,
    Pad,
    RandomAffine,
    RandomRotate,
    RandomScale,
    RandomTransform,
    ResizeTransform,
    Transform,
    TransformSequence,
    affine,
    bilateral_filter,
    box_blur,
    gaussian_blur,
    jitter,
    lucid_transforms,
    pad,
    random_affine,
    resize,
    standard_transforms,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def rand_image(b: int = 2, c: int = 3, h: int = 16, w: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, c, h, w, generator=gen(seed))


SEED_TRANSFORMS = [
    BlurTransform(),
    BilateralTransform(),
    RandomTransform(),
    ResizeTransform(),
    ResizeTransform(0.5),
]
STEP_TRANSFORMS = [
    Pad(3),
    Pad(2, mode="constant"),
    Jitter(3),
    RandomAffine(max_shift=2.0, degrees=10.0, scales=(0.9, 1.1)),
    RandomScale(),
    RandomRotate(),
    GaussianBlur(1.0),
    standard_transforms(),
    lucid_transforms(),
]
ALL_TRANSFORMS = SEED_TRANSFORMS + STEP_TRANSFORMS


# --------------------------------------------------------------------------- protocol


def test_add_returns_new_flat_sequence_and_leaves_operands_unchanged():
    a, b, c = RandomTransform(), BlurTransform(), ResizeTransform()
    ab = a + b
    assert isinstance(ab, TransformSequence)
    assert list(ab) == [a, b]
    abc = ab + c
    assert list(abc) == [a, b, c]
    assert list(ab) == [a, b]  # the original library's a + b mutated a
    assert (a.pixel_shift, a.rot_deg, a.scale_fac, b.blur_size) == (1, 0.3, 0.1, 5)
    cab = c + ab
    assert list(cab) == [c, a, b] and list(ab) == [a, b]
    assert list((a + b) + (c + a)) == [a, b, c, a]
    assert not isinstance(a, TransformSequence)


@pytest.mark.parametrize("other", [3, "blur", nn.ReLU(), None])
def test_add_non_transform_raises_type_error_naming_type(other):
    with pytest.raises(TypeError, match=type(other).__name__):
        BlurTransform() + other


def test_sequence_rejects_non_transform():
    with pytest.raises(TypeError, match="ReLU"):
        TransformSequence(BlurTransform(), nn.ReLU())


def test_repr():
    assert (
        repr(RandomTransform() + BlurTransform())
        == "RandomTransform(pixel_shift=1, rot_deg=0.3, scale_fac=0.1) + BlurTransform(blur_size=5)"
    )
    assert repr(BilateralTransform()) == (
        "BilateralTransform(diameter=9, sigma_color=0.1, sigma_space=3.0)"
    )
    assert repr(ResizeTransform()) == "ResizeTransform(scale_fac=1.2)"
    assert repr(TransformSequence()) == "TransformSequence()"
    assert repr(Pad(2, mode="constant", value=0.25)) == "Pad(pad=2, mode='constant', value=0.25)"
    assert repr(standard_transforms()) == (
        "Compose(RandomAffine(max_shift=6.0, degrees=10.0, scales=(0.9, 1.1), "
        "padding_mode='reflection', pad=6))"
    )
    assert repr(lucid_transforms()) == (
        "Compose(Pad(pad=12, mode='reflect'), Jitter(d=8), RandomAffine(max_shift=0.0, "
        "degrees=10.0, scales=(0.9, 1.1), padding_mode='reflection'), Jitter(d=4))"
    )


def test_sequence_applies_in_order_and_passes_generator():
    x = rand_image()
    seq = RandomTransform(pixel_shift=2) + Jitter(2) + BlurTransform(3)
    g = gen(5)
    expected = box_blur(jitter(RandomTransform(pixel_shift=2)(x, g), 2, g), 3)
    assert torch.equal(seq(x, generator=gen(5)), expected)
    assert torch.equal(TransformSequence()(x), x)


def test_compose_is_a_sequence():
    t = Compose(Pad(1), Jitter(2))
    assert isinstance(t, TransformSequence) and isinstance(t, Transform)
    assert t(rand_image(h=8, w=8), gen()).shape == (2, 3, 8, 8)
    assert list(t + Pad(1))[2].pad == 1


def test_base_transform_forward_not_implemented():
    with pytest.raises(NotImplementedError):
        Transform()(rand_image())


# --------------------------------------------------------------------------- generic properties


@pytest.mark.parametrize("t", ALL_TRANSFORMS, ids=repr)
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_smoke_dtype_and_channels(t, channels):
    x = rand_image(c=channels, h=30, w=28).double()
    y = t(x, generator=gen())
    assert y.dtype == torch.float64
    assert y.shape[:2] == (2, channels)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("t", SEED_TRANSFORMS, ids=repr)
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_seed_transforms_keep_value_range(t, channels):
    x = 0.2 + 0.6 * rand_image(c=channels, h=20, w=24)
    y = t(x, generator=gen())
    assert y.min() >= 0.2 - 1e-6 and y.max() <= 0.8 + 1e-6
    z = t(rand_image(c=channels, h=20, w=24), generator=gen())
    assert z.min() >= -1e-6 and z.max() <= 1 + 1e-6


@pytest.mark.parametrize("t", ALL_TRANSFORMS, ids=repr)
def test_bad_input_raises(t):
    with pytest.raises(ValueError, match=r"4D.*\(3, 8, 8\)"):
        t(torch.rand(3, 8, 8))
    with pytest.raises(TypeError, match="floating"):
        t(torch.zeros(1, 1, 8, 8, dtype=torch.long))
    with pytest.raises(TypeError, match="list"):
        t([[1.0]])


CONSTANT_KEEPING = [
    t
    for t in ALL_TRANSFORMS
    if not isinstance(t, ResizeTransform) and not (isinstance(t, Pad) and t.mode == "constant")
]


@pytest.mark.parametrize("t", CONSTANT_KEEPING, ids=repr)
def test_constant_image_stays_constant(t):
    x = torch.full((2, 3, 30, 30), 0.37, dtype=torch.float64)
    y = t(x, generator=gen())
    assert torch.allclose(y, torch.full_like(y, 0.37), atol=1e-12)


# --------------------------------------------------------------------------- box blur


def test_box_blur_known_values():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    y = box_blur(x, 3)
    # corner with reflect padding: rows (1, 0, 1) x cols (1, 0, 1)
    assert y[0, 0, 0, 0].item() == pytest.approx((5 + 4 + 5 + 1 + 0 + 1 + 5 + 4 + 5) / 9)
    assert y[0, 0, 1, 1].item() == pytest.approx(x[0, 0, :3, :3].mean().item())
    delta = torch.zeros(1, 1, 7, 7)
    delta[0, 0, 3, 3] = 1.0
    out = BlurTransform(3)(delta)
    assert torch.allclose(out[0, 0, 2:5, 2:5], torch.full((3, 3), 1 / 9))
    assert out.sum().item() == pytest.approx(1.0)
    # even size: window covers the centre and one more row/column below/right
    out2 = box_blur(delta, 2)
    assert torch.allclose(out2[0, 0, 2:4, 2:4], torch.full((2, 2), 0.25))
    assert torch.equal(box_blur(delta, 1), delta)


def test_blur_smooths_noise():
    x = rand_image(b=1, c=3, h=32, w=32)
    assert BlurTransform()(x).var() < x.var() / 5
    assert GaussianBlur(1.5)(x).var() < x.var() / 5


def test_blur_on_tiny_image_keeps_shape():
    x = rand_image(h=2, w=3)
    assert BlurTransform(5)(x).shape == x.shape
    assert GaussianBlur(2.0)(x).shape == x.shape
    assert BilateralTransform()(x).shape == x.shape


@pytest.mark.parametrize("size", [-1, 0])
def test_blur_size_must_be_positive(size):
    with pytest.raises(ValueError, match=rf"blur_size must be >= 1, got {size}"):
        BlurTransform(size)
    with pytest.raises(ValueError, match=rf"size must be >= 1, got {size}"):
        box_blur(rand_image(), size)


def test_blur_size_must_be_int():
    with pytest.raises(TypeError, match=r"int.*float 2\.5"):
        BlurTransform(2.5)


# --------------------------------------------------------------------------- bilateral


def test_bilateral_known_answer_spatial_only():
    # huge sigma_color -> only spatial weights; diameter 3 is the 5-point cross (disc radius 1)
    delta = torch.zeros(1, 1, 7, 7, dtype=torch.float64)
    delta[0, 0, 3, 3] = 1.0
    s = 1.5
    e = math.exp(-1 / (2 * s * s))
    y = bilateral_filter(delta, 3, sigma_color=1e6, sigma_space=s)
    assert y[0, 0, 3, 3].item() == pytest.approx(1 / (1 + 4 * e))
    assert y[0, 0, 2, 3].item() == pytest.approx(e / (1 + 4 * e))
    assert y[0, 0, 2, 2].item() == pytest.approx(0.0)  # diagonal: outside the disc


def _step_image(c: int = 3) -> torch.Tensor:
    x = torch.full((1, c, 24, 24), 0.2)
    x[..., 12:] = 0.8
    return x


def test_bilateral_preserves_edge_better_than_box():
    x = _step_image()
    bil = BilateralTransform()(x)
    box = BlurTransform(9)(x)
    step_bil = (bil[..., 12] - bil[..., 11]).min()
    step_box = (box[..., 12] - box[..., 11]).max()
    assert step_bil > 0.55  # nearly the full 0.6 step survives
    assert step_box < 0.1  # the box blur spreads it over 9 columns
    assert (bil - x).abs().max() < 0.01


def test_bilateral_reduces_noise_on_flat_area():
    noise = 0.03 * torch.randn(1, 3, 32, 32, generator=gen(1))
    x = 0.5 + noise
    y = BilateralTransform()(x)
    assert (y - 0.5).std() < 0.5 * noise.std()


def test_bilateral_uses_colour_distance_across_channels():
    # channel 0 has a strong edge, channel 1 a weak one (0.1) at the same place
    x = torch.zeros(1, 2, 16, 16)
    x[:, 0, :, 8:] = 1.0
    x[:, 1, :, :8] = 0.5
    x[:, 1, :, 8:] = 0.6
    joint = bilateral_filter(x, 9, 0.1, 3.0)
    alone = bilateral_filter(x[:, 1:], 9, 0.1, 3.0)
    assert (joint[:, 1, :, 8] - joint[:, 1, :, 7]).min() > 0.099
    assert (alone[:, 0, :, 8] - alone[:, 0, :, 7]).max() < 0.07


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"diameter": 0}, "diameter must be >= 1, got 0"),
        ({"diameter": 4}, "diameter must be odd, got 4"),
        ({"sigma_color": 0.0}, "sigma_color must be > 0.0, got 0.0"),
        ({"sigma_space": -1.0}, "sigma_space must be > 0.0, got -1.0"),
    ],
)
def test_bilateral_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BilateralTransform(**kwargs)
    with pytest.raises(ValueError, match=match):
        bilateral_filter(rand_image(), **kwargs)


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
    with pytest.raises(ValueError, match="pad must be >= 0, got -1"):
        affine(x, 0.0, 1.0, (0.0, 0.0), pad=-1)


@pytest.mark.parametrize("threads", [1, 2, 3, 4])
@pytest.mark.parametrize(("b", "ho"), [(1, 9), (1, 8), (2, 7), (3, 5)])
def test_grid_sample_bands_match_one_pass(threads, b, ho):
    # the CPU path cuts small batches into bands of rows, one per thread: same values, same grads
    import torch.nn.functional as F

    from midnite.engine.transforms import _grid_sample

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


def test_random_transform_zero_parameters_is_identity():
    x = rand_image().double()
    y = RandomTransform(pixel_shift=0, rot_deg=0, scale_fac=0)(x, gen())
    assert torch.allclose(y, x, atol=1e-9)


def test_random_transform_keeps_size_and_brings_no_border():
    x = 0.2 + 0.6 * rand_image(h=21, w=17)
    strong = RandomTransform(pixel_shift=6, rot_deg=30.0, scale_fac=0.5)
    for seed in range(5):
        y = strong(x, generator=gen(seed))
        assert y.shape == x.shape
        assert y.min() >= 0.2 - 1e-6 and y.max() <= 0.8 + 1e-6


def test_random_transform_seeded_reproducible_and_per_image():
    x = rand_image(b=1).expand(4, 3, 16, 16)
    t = RandomTransform(pixel_shift=2, rot_deg=5.0)
    a, b = t(x, generator=gen(7)), t(x, generator=gen(7))
    assert torch.equal(a, b)
    assert not torch.equal(a, t(x, generator=gen(8)))
    for i in range(1, 4):  # identical images, different parameters
        assert not torch.allclose(a[0], a[i])


def test_random_without_generator_leaves_global_rng_alone():
    x = rand_image()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    RandomTransform()(x)
    Jitter(2)(x)
    assert torch.equal(torch.rand(3), expected)


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
        ({"scale_fac": -0.1}, ValueError, r"scale_fac must be >= 0.0, got -0.1"),
        ({"scale_fac": 1.0}, ValueError, r"scale_fac must be < 1.0, got 1.0"),
        ({"pixel_shift": -1}, ValueError, r"pixel_shift must be >= 0.0, got -1"),
        ({"rot_deg": "a"}, TypeError, r"rot_deg must be a real number, got str"),
    ],
)
def test_random_transform_bad_parameters(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        RandomTransform(**kwargs)


def test_random_affine_bad_parameters():
    x = rand_image()
    with pytest.raises(ValueError, match="not both"):
        random_affine(x, max_scale=0.1, scales=(0.9, 1.1))
    with pytest.raises(ValueError, match=r"low <= high, got \(1.2, 0.8\)"):
        RandomScale((1.2, 0.8))
    with pytest.raises(ValueError, match=r"scales\[0\] must be > 0.0, got 0"):
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
    y = ResizeTransform(fac)(torch.rand(1, 2, *hw))
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
def test_resize_bad_scale(fac):
    with pytest.raises(ValueError, match=rf"scale_fac must be > 0.0, got {fac}"):
        ResizeTransform(fac)


# --------------------------------------------------------------------------- pad / jitter


def test_pad_known_values():
    x = torch.arange(4.0).view(1, 1, 1, 4).expand(1, 1, 4, 4)
    y = Pad(2)(x)
    assert y.shape == (1, 1, 8, 8)
    assert y[0, 0, 3].tolist() == [2, 1, 0, 1, 2, 3, 2, 1]
    c = Pad(1, mode="constant")(x)
    assert c[0, 0, 0].tolist() == [0.5] * 6 and c[0, 0, 1].tolist() == [0.5, 0, 1, 2, 3, 0.5]
    r = pad(x, 1, mode="replicate")
    assert r[0, 0, 1].tolist() == [0, 0, 1, 2, 3, 3]


def test_pad_bad_parameters():
    with pytest.raises(ValueError, match="pad must be >= 0, got -1"):
        Pad(-1)
    with pytest.raises(ValueError, match=r"mode must be one of .* got 'wrap'"):
        Pad(1, mode="wrap")
    with pytest.raises(ValueError, match=r"pad < H and W, got pad=4 for a 4x6 image"):
        Pad(4)(torch.rand(1, 1, 4, 6))


def test_jitter_is_a_crop_per_image():
    x = torch.rand(8, 2, 10, 12, generator=gen())
    d = 3
    y = Jitter(d)(x, generator=gen(4))
    assert y.shape == (8, 2, 7, 9)
    offsets = []
    for i in range(8):
        found = [
            (oy, ox)
            for oy in range(d + 1)
            for ox in range(d + 1)
            if torch.equal(y[i], x[i, :, oy : oy + 7, ox : ox + 9])
        ]
        assert len(found) == 1
        offsets.append(found[0])
    assert len(set(offsets)) > 1  # images of the batch get their own offsets
    assert torch.equal(y, jitter(x, d, gen(4)))
    assert torch.equal(Jitter(0)(x), x)


def test_jitter_bad_parameters():
    with pytest.raises(ValueError, match="d must be >= 0, got -2"):
        Jitter(-2)
    with pytest.raises(ValueError, match=r"d must be < H and W, got d=6 for a 6x9 image"):
        Jitter(6)(torch.rand(1, 1, 6, 9))


# --------------------------------------------------------------------------- gaussian blur


def test_gaussian_blur_known_values():
    sigma = 0.8
    delta = torch.zeros(1, 1, 9, 9, dtype=torch.float64)
    delta[0, 0, 4, 4] = 1.0
    t = torch.arange(-3, 4, dtype=torch.float64)  # radius ceil(3 * 0.8) = 3
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    y = GaussianBlur(sigma)(delta)
    assert torch.allclose(y[0, 0, 1:8, 1:8], torch.outer(k, k))
    assert y.sum().item() == pytest.approx(1.0)


def test_gaussian_kernel_made_under_inference_mode_still_backprops():
    with torch.inference_mode():
        gaussian_blur(torch.rand(1, 1, 8, 8), 0.77)
    x = torch.rand(1, 1, 8, 8, requires_grad=True)
    gaussian_blur(x, 0.77).sum().backward()
    assert x.grad is not None


@pytest.mark.parametrize("sigma", [0.0, -1.0])
def test_gaussian_blur_bad_sigma(sigma):
    with pytest.raises(ValueError, match=rf"sigma must be > 0.0, got {sigma}"):
        GaussianBlur(sigma)


# --------------------------------------------------------------------------- standard stack


def test_standard_transforms_shape_and_members():
    t = standard_transforms()
    assert isinstance(t, Compose)
    assert [type(m) for m in t] == [RandomAffine]
    assert t(torch.rand(2, 3, 64, 64), generator=gen()).shape == (2, 3, 76, 76)
    assert standard_transforms() is not t
    lucid = lucid_transforms()
    assert [type(m) for m in lucid] == [Pad, Jitter, RandomAffine, Jitter]
    assert lucid(torch.rand(2, 3, 64, 64), generator=gen()).shape == (2, 3, 76, 76)


def test_standard_and_lucid_stacks_move_content_alike():
    # the mean displacement of a bright dot over many draws: both stacks keep it near the centre,
    # spread it over the same +-6 px, and keep the image's values (mirrored border, no frame)
    x = torch.zeros(256, 1, 41, 41)
    x[:, :, 20, 20] = 1.0
    spread = {}
    for name, t in (("standard", standard_transforms()), ("lucid", lucid_transforms())):
        y = t(x, generator=gen(4))
        assert y.shape == (256, 1, 53, 53) and y.min() >= 0.0 and y.max() <= 1.0 + 1e-6
        coords = torch.arange(53.0) - 26.0
        mass = y.sum((1, 2, 3))
        cx = (y.sum((1, 2)) * coords).sum(1) / mass
        cy = (y.sum((1, 3)) * coords).sum(1) / mass
        assert cx.abs().max() <= 6.5 and cy.abs().max() <= 6.5
        assert abs(cx.mean()) < 1.0 and abs(cy.mean()) < 1.0  # 4 standard errors
        spread[name] = float(torch.cat([cx, cy]).std())
    assert 2.0 < spread["standard"] < 4.5 and 2.0 < spread["lucid"] < 4.5


# --------------------------------------------------------------------------- gradcheck


GRADCHECK_CASES = [
    (lambda: BlurTransform(3), (1, 2, 5, 6)),
    (lambda: BilateralTransform(3, 0.3, 1.0), (1, 2, 5, 5)),
    (lambda: RandomTransform(pixel_shift=1.5, rot_deg=20.0, scale_fac=0.2), (2, 2, 5, 6)),
    (lambda: ResizeTransform(0.6), (1, 2, 6, 5)),
    (lambda: ResizeTransform(1.5), (1, 1, 4, 4)),
    (lambda: Pad(2), (1, 2, 4, 4)),
    (lambda: Pad(1, mode="constant", value=0.3), (1, 1, 4, 4)),
    (lambda: Jitter(2), (3, 2, 5, 5)),
    (lambda: RandomScale(), (2, 1, 5, 5)),
    (lambda: RandomRotate(), (2, 1, 5, 5)),
    (lambda: GaussianBlur(0.7), (1, 2, 5, 5)),
    (
        lambda: Compose(Pad(2), Jitter(2), RandomAffine(1.0, 10.0, (0.9, 1.1)), Jitter(1)),
        (2, 1, 4, 4),
    ),
    (lambda: RandomAffine(2.0, 15.0, (0.8, 1.2), pad=2), (1, 2, 5, 6)),
    (standard_transforms, (1, 1, 13, 13)),
    (lucid_transforms, (1, 1, 13, 13)),
]


@pytest.mark.parametrize(("make", "shape"), GRADCHECK_CASES)
def test_gradcheck(make, shape):
    t = make()
    x = torch.rand(*shape, dtype=torch.float64, generator=gen(9), requires_grad=True)

    def f(inp):
        return t(inp, generator=torch.Generator().manual_seed(11))

    assert torch.autograd.gradcheck(f, (x,), fast_mode=True)


@pytest.mark.parametrize(("b", "ho", "wo"), [(1, 7, 5), (3, 4, 9), (2, 1, 1)])
def test_affine_grid_matches_torch(b, ho, wo):
    import torch.nn.functional as F

    from midnite.engine.transforms import _affine_grid

    theta = torch.randn(b, 2, 3, dtype=torch.float64, generator=gen(b))
    expected = F.affine_grid(theta, [b, 1, ho, wo], align_corners=False)
    assert torch.allclose(_affine_grid(theta, ho, wo), expected, atol=1e-12)


def test_affine_theta_same_from_floats_and_from_tensors(monkeypatch):
    # on the CPU theta is built from Python floats; on a GPU from tensors: the same numbers
    import midnite.engine.transforms as tr

    x = torch.rand(3, 2, 9, 7, generator=gen(5))
    args = (torch.tensor([-8.0, 0.0, 25.0]), torch.tensor([0.9, 1.0, 1.3]), torch.randn(3, 2))
    host = affine(x, *args, pad=2)
    monkeypatch.setattr(tr, "_HOST_DEVICES", ())
    assert torch.allclose(affine(x, *args, pad=2), host, atol=1e-5)
