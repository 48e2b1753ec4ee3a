"""Tests for midnite.engine.transforms: protocol, known answers, gradcheck, errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from midnite.engine.transforms import (
    Compose,
    GaussianBlur,
    Jitter,
    Pad,
    RandomAffine,
    RandomRotate,
    RandomScale,
    Transform,
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

from conftest import gen, rand_image

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


# --------------------------------------------------------------------------- protocol


def test_add_returns_new_flat_compose_and_leaves_operands_unchanged():
    a, b, c = Pad(1), Jitter(2), GaussianBlur(1.0)
    ab = a + b
    assert type(ab) is Compose
    assert list(ab) == [a, b]
    abc = ab + c
    assert list(abc) == [a, b, c]
    assert list(ab) == [a, b]
    assert (a.pad, b.d, c.sigma) == (1, 2, 1.0)
    cab = c + ab
    assert list(cab) == [c, a, b] and list(ab) == [a, b]
    assert list((a + b) + (c + a)) == [a, b, c, a]


@pytest.mark.parametrize("other", [3, "blur", nn.ReLU(), None])
def test_add_non_transform_raises_type_error_naming_type(other):
    with pytest.raises(TypeError, match=type(other).__name__):
        GaussianBlur(1.0) + other


def test_compose_rejects_non_transform():
    with pytest.raises(TypeError, match="ReLU at position 1"):
        Compose(Pad(1), nn.ReLU())


def test_repr():
    assert repr(Pad(2, mode="constant", value=0.25)) == "Pad(pad=2, mode='constant', value=0.25)"
    assert repr(Compose()) == "Compose()"
    assert repr(Pad(1) + Jitter(2)) == "Compose(Pad(pad=1, mode='reflect'), Jitter(d=2))"
    assert repr(standard_transforms()) == (
        "Compose(RandomAffine(max_shift=6.0, degrees=10.0, scales=(0.9, 1.1), "
        "padding_mode='reflection', pad=6))"
    )
    assert repr(lucid_transforms()) == (
        "Compose(Pad(pad=12, mode='reflect'), Jitter(d=8), RandomAffine(max_shift=0.0, "
        "degrees=10.0, scales=(0.9, 1.1), padding_mode='reflection'), Jitter(d=4))"
    )


def test_compose_applies_in_order_and_passes_generator():
    x = rand_image()
    seq = RandomAffine(max_shift=2.0) + Jitter(2) + GaussianBlur(0.8)
    g = gen(5)
    expected = gaussian_blur(jitter(random_affine(x, max_shift=2.0, generator=g), 2, g), 0.8)
    assert torch.equal(seq(x, generator=gen(5)), expected)
    assert torch.equal(Compose()(x), x)


def test_compose_is_a_transform():
    t = Compose(Pad(1), Jitter(2))
    assert isinstance(t, Transform) and len(t) == 2 and t[1].d == 2
    assert t(rand_image(h=8, w=8), gen()).shape == (2, 3, 8, 8)
    assert list(t + Pad(1))[2].pad == 1


def test_base_transform_forward_not_implemented():
    with pytest.raises(NotImplementedError):
        Transform()(rand_image())


# --------------------------------------------------------------------------- generic properties


@pytest.mark.parametrize("t", STEP_TRANSFORMS, ids=repr)
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_smoke_dtype_and_channels(t, channels):
    x = rand_image(c=channels, h=30, w=28).double()
    y = t(x, generator=gen())
    assert y.dtype == torch.float64
    assert y.shape[:2] == (2, channels)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("t", STEP_TRANSFORMS, ids=repr)
def test_bad_input_raises(t):
    with pytest.raises(ValueError, match=r"\(B, C, H, W\), got \(3, 8, 8\)"):
        t(torch.rand(3, 8, 8))
    with pytest.raises(TypeError, match="floating"):
        t(torch.zeros(1, 1, 8, 8, dtype=torch.long))
    with pytest.raises(TypeError, match="list"):
        t([[1.0]])


CONSTANT_KEEPING = [t for t in STEP_TRANSFORMS if not (isinstance(t, Pad) and t.mode == "constant")]


@pytest.mark.parametrize("t", CONSTANT_KEEPING, ids=repr)
def test_constant_image_stays_constant(t):
    x = torch.full((2, 3, 30, 30), 0.37, dtype=torch.float64)
    y = t(x, generator=gen())
    assert torch.allclose(y, torch.full_like(y, 0.37), atol=1e-12)


@pytest.mark.parametrize("op", [box_blur, bilateral_filter], ids=lambda f: f.__name__)
def test_filters_constant_image_stays_constant(op):
    x = torch.full((2, 3, 30, 30), 0.37, dtype=torch.float64)
    args = (5,) if op is box_blur else ()
    assert torch.allclose(op(x, *args), x, atol=1e-12)


# --------------------------------------------------------------------------- generator=None


def _random_ops():
    x = rand_image()
    return {
        "random_affine": lambda g: random_affine(x, max_shift=2.0, degrees=5.0, generator=g),
        "RandomAffine": lambda g: RandomAffine(2.0, 5.0, (0.9, 1.1))(x, g),
        "jitter": lambda g: jitter(x, 3, g),
        "Jitter": lambda g: Jitter(3)(x, g),
        "standard": lambda g: standard_transforms()(x, g),
        "lucid": lambda g: lucid_transforms()(x, g),
    }


@pytest.mark.parametrize("name", list(_random_ops()))
def test_generator_none_is_torch_default_generator(name):
    op = _random_ops()[name]
    torch.manual_seed(7)
    a = op(None)
    torch.manual_seed(7)
    b = op(None)
    assert torch.equal(a, b)  # torch.manual_seed makes it repeatable
    torch.manual_seed(8)
    assert not torch.equal(a, op(None))
    # and it is the default generator itself: the same draws as a generator seeded alike
    assert torch.equal(a, op(torch.Generator().manual_seed(7)))


def test_generator_none_draws_advance_the_default_generator():
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    random_affine(rand_image(), max_shift=1.0)
    assert not torch.equal(torch.rand(3), expected)


# --------------------------------------------------------------------------- box blur


def test_box_blur_known_values():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    y = box_blur(x, 3)
    # corner with reflect padding: rows (1, 0, 1) x cols (1, 0, 1)
    assert y[0, 0, 0, 0].item() == pytest.approx((5 + 4 + 5 + 1 + 0 + 1 + 5 + 4 + 5) / 9)
    assert y[0, 0, 1, 1].item() == pytest.approx(x[0, 0, :3, :3].mean().item())
    delta = torch.zeros(1, 1, 7, 7)
    delta[0, 0, 3, 3] = 1.0
    out = box_blur(delta, 3)
    assert torch.allclose(out[0, 0, 2:5, 2:5], torch.full((3, 3), 1 / 9))
    assert out.sum().item() == pytest.approx(1.0)
    # even size: window covers the centre and one more row/column below/right
    out2 = box_blur(delta, 2)
    assert torch.allclose(out2[0, 0, 2:4, 2:4], torch.full((2, 2), 0.25))
    assert torch.equal(box_blur(delta, 1), delta)


def test_blur_smooths_noise():
    x = rand_image(b=1, c=3, h=32, w=32)
    assert box_blur(x, 5).var() < x.var() / 5
    assert GaussianBlur(1.5)(x).var() < x.var() / 5


def test_blur_on_tiny_image_keeps_shape():
    x = rand_image(h=2, w=3)
    assert box_blur(x, 5).shape == x.shape
    assert GaussianBlur(2.0)(x).shape == x.shape
    assert bilateral_filter(x).shape == x.shape


@pytest.mark.parametrize("size", [-1, 0])
def test_blur_size_must_be_positive(size):
    with pytest.raises(ValueError, match=rf"size must be an int >= 1, got {size}"):
        box_blur(rand_image(), size)


def test_blur_size_must_be_int():
    with pytest.raises(TypeError, match=r"int.*float 2\.5"):
        box_blur(rand_image(), 2.5)


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
    bil = bilateral_filter(x)
    box = box_blur(x, 9)
    step_bil = (bil[..., 12] - bil[..., 11]).min()
    step_box = (box[..., 12] - box[..., 11]).max()
    assert step_bil > 0.55  # nearly the full 0.6 step survives
    assert step_box < 0.1  # the box blur spreads it over 9 columns
    assert (bil - x).abs().max() < 0.01


def test_bilateral_reduces_noise_on_flat_area():
    noise = 0.03 * torch.randn(1, 3, 32, 32, generator=gen(1))
    x = 0.5 + noise
    y = bilateral_filter(x)
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
        ({"diameter": 0}, "diameter must be an int >= 1, got 0"),
        ({"diameter": 4}, "diameter must be an odd int >= 1, got 4"),
        ({"sigma_color": 0.0}, "sigma_color must be a finite number > 0, got 0.0"),
        ({"sigma_space": -1.0}, "sigma_space must be a finite number > 0, got -1.0"),
    ],
)
def test_bilateral_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        bilateral_filter(rand_image(), **kwargs)


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
    with pytest.raises(ValueError, match="pad must be an int >= 0, got -1"):
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
    with pytest.raises(ValueError, match="d must be an int >= 0, got -2"):
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
    with pytest.raises(ValueError, match=rf"sigma must be a finite number > 0, got {sigma}"):
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
    (lambda: lambda x, generator: box_blur(x, 3), (1, 2, 5, 6)),
    (lambda: lambda x, generator: bilateral_filter(x, 3, 0.3, 1.0), (1, 2, 5, 5)),
    (lambda: RandomAffine(1.5, 20.0, (0.8, 1.2)), (2, 2, 5, 6)),
    (lambda: lambda x, generator: resize(x, 0.6), (1, 2, 6, 5)),
    (lambda: lambda x, generator: resize(x, 1.5), (1, 1, 4, 4)),
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
