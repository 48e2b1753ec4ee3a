"""Tests for midnite.visualization.transforms: the classic transforms over the engine's ops."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from midnite.engine.transforms import (
    Compose,
    GaussianBlur,
    Jitter,
    bilateral_filter,
    box_blur,
    jitter,
    random_affine,
    resize,
)
from midnite.visualization.transforms import (
    BilateralTransform,
    BlurTransform,
    RandomTransform,
    ResizeTransform,
    Transform,
    TransformSequence,
)

from conftest import gen, rand_image

CLASSIC_TRANSFORMS = [
    BlurTransform(),
    BilateralTransform(),
    RandomTransform(),
    ResizeTransform(),
    ResizeTransform(0.5),
    RandomTransform() + BlurTransform() + ResizeTransform(),
]
SIZE_KEEPING = [
    BlurTransform(),
    BilateralTransform(),
    RandomTransform(),
    RandomTransform(pixel_shift=3, rot_deg=20.0, scale_fac=0.4) + BilateralTransform(),
]


# --------------------------------------------------------------------------- a + b


def test_add_returns_new_flat_sequence_and_leaves_operands_unchanged():
    a, b, c = RandomTransform(), BlurTransform(), ResizeTransform()
    ab = a + b
    assert type(ab) is TransformSequence
    assert list(ab) == [a, b]
    abc = ab + c
    assert list(abc) == [a, b, c]
    assert list(ab) == [a, b]  # the original library's a + b mutated a
    assert (a.pixel_shift, a.rot_deg, a.scale_fac, b.blur_size) == (1, 0.3, 0.1, 5)
    cab = c + ab
    assert list(cab) == [c, a, b] and list(ab) == [a, b]
    assert list((a + b) + (c + a)) == [a, b, c, a]
    assert not isinstance(a, TransformSequence)


def test_add_takes_engine_transforms_too():
    blur, jit = BlurTransform(3), Jitter(2)
    mixed = blur + jit
    assert type(mixed) is TransformSequence and list(mixed) == [blur, jit]
    assert type(jit + blur) is Compose  # an engine transform on the left: the engine's sum
    x = rand_image()
    assert torch.equal(mixed(x, gen(1)), jitter(box_blur(x, 3), 2, gen(1)))


@pytest.mark.parametrize("other", [3, "blur", nn.ReLU(), None])
def test_add_non_transform_raises_type_error_naming_type(other):
    with pytest.raises(TypeError, match=type(other).__name__):
        BlurTransform() + other


def test_sequence_rejects_non_transform():
    with pytest.raises(TypeError, match="ReLU at position 1"):
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
    one = TransformSequence(BlurTransform(3))
    assert repr(one) == "TransformSequence(BlurTransform(blur_size=3))"


def test_sequence_applies_in_order_and_passes_generator():
    x = rand_image()
    seq = RandomTransform(pixel_shift=2) + Jitter(2) + BlurTransform(3)
    g = gen(5)
    expected = box_blur(jitter(RandomTransform(pixel_shift=2)(x, g), 2, g), 3)
    assert torch.equal(seq(x, generator=gen(5)), expected)
    assert torch.equal(TransformSequence()(x), x)
    assert len(seq) == 3 and isinstance(seq[1], Jitter)


def test_base_transform_forward_not_implemented():
    with pytest.raises(NotImplementedError):
        Transform()(rand_image())


# --------------------------------------------------------------------------- one image or a batch


@pytest.mark.parametrize("t", CLASSIC_TRANSFORMS, ids=repr)
def test_one_image_or_a_batch_same_rank_back(t):
    img = rand_image(b=1, h=20, w=24)[0]
    one = t(img, gen(3))
    assert one.dim() == 3
    assert torch.equal(one, t(img[None], gen(3))[0])  # the same as a batch of one
    assert torch.equal(t.transform(img, generator=gen(3)), one)
    assert t.transform(img).dim() == 3  # generator=None: torch's default generator
    batch = rand_image(b=2, h=20, w=24)
    assert t.transform(batch, gen(3)).dim() == 4
    assert torch.equal(t.transform(batch, gen(3)), t(batch, generator=gen(3)))


@pytest.mark.parametrize("t", SIZE_KEEPING, ids=repr)
def test_keep_the_size(t):
    for shape in ((3, 21, 17), (2, 3, 21, 17), (1, 1, 9, 30)):
        assert t(torch.rand(shape), gen()).shape == shape


def test_resize_changes_the_size_of_one_image_too():
    assert ResizeTransform(1.5)(torch.rand(3, 10, 8)).shape == (3, 15, 12)
    assert ResizeTransform(0.5).transform(torch.rand(2, 3, 10, 8)).shape == (2, 3, 5, 4)


@pytest.mark.parametrize("t", CLASSIC_TRANSFORMS, ids=repr)
def test_bad_input_raises(t):
    with pytest.raises(ValueError, match=r"\(C, H, W\) or \(B, C, H, W\), got \(8, 8\)"):
        t(torch.rand(8, 8))
    with pytest.raises(ValueError, match=r"got \(1, 1, 1, 8, 8\)"):
        t.transform(torch.rand(1, 1, 1, 8, 8))
    with pytest.raises(TypeError, match="floating"):
        t(torch.zeros(1, 1, 8, 8, dtype=torch.long))
    with pytest.raises(TypeError, match="list"):
        t([[1.0]])


def test_generator_none_follows_torch_manual_seed():
    img = rand_image(b=1)[0]
    t = RandomTransform(pixel_shift=3, rot_deg=10.0)
    torch.manual_seed(11)
    a = t.transform(img)
    torch.manual_seed(11)
    assert torch.equal(t.transform(img), a)
    assert torch.equal(t(img, gen(11)), a)  # the default generator, seeded alike


# --------------------------------------------------------------------------- generic properties


@pytest.mark.parametrize("t", CLASSIC_TRANSFORMS, ids=repr)
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_smoke_dtype_and_channels(t, channels):
    x = rand_image(c=channels, h=30, w=28).double()
    y = t(x, generator=gen())
    assert y.dtype == torch.float64
    assert y.shape[:2] == (2, channels)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("t", CLASSIC_TRANSFORMS, ids=repr)
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_keep_value_range(t, channels):
    x = 0.2 + 0.6 * rand_image(c=channels, h=20, w=24)
    y = t(x, generator=gen())
    assert y.min() >= 0.2 - 1e-6 and y.max() <= 0.8 + 1e-6
    z = t(rand_image(c=channels, h=20, w=24), generator=gen())
    assert z.min() >= -1e-6 and z.max() <= 1 + 1e-6


@pytest.mark.parametrize("t", SIZE_KEEPING, ids=repr)
def test_constant_image_stays_constant(t):
    x = torch.full((2, 3, 30, 30), 0.37, dtype=torch.float64)
    y = t(x, generator=gen())
    assert torch.allclose(y, torch.full_like(y, 0.37), atol=1e-12)


# --------------------------------------------------------------------------- each transform


def test_blur_transform_is_box_blur():
    x = rand_image()
    assert torch.equal(BlurTransform()(x), box_blur(x, 5))
    delta = torch.zeros(1, 1, 7, 7)
    delta[0, 0, 3, 3] = 1.0
    out = BlurTransform(3)(delta)
    assert torch.allclose(out[0, 0, 2:5, 2:5], torch.full((3, 3), 1 / 9))
    assert out.sum().item() == pytest.approx(1.0)
    assert BlurTransform()(rand_image(b=1, c=3, h=32, w=32)).var() < x.var() / 5


def test_blur_on_tiny_image_keeps_shape():
    x = rand_image(h=2, w=3)
    assert BlurTransform(5)(x).shape == x.shape
    assert BilateralTransform()(x).shape == x.shape


@pytest.mark.parametrize("size", [-1, 0])
def test_blur_size_must_be_positive(size):
    with pytest.raises(ValueError, match=rf"blur_size must be an int >= 1, got {size}"):
        BlurTransform(size)


def test_blur_size_must_be_int():
    with pytest.raises(TypeError, match=r"blur_size must be an int >= 1, got float 2\.5"):
        BlurTransform(2.5)


def _step_image(c: int = 3) -> torch.Tensor:
    x = torch.full((1, c, 24, 24), 0.2)
    x[..., 12:] = 0.8
    return x


def test_bilateral_transform_preserves_edge_better_than_blur():
    x = _step_image()
    bil = BilateralTransform()(x)
    box = BlurTransform(9)(x)
    assert torch.equal(bil, bilateral_filter(x, 9, 0.1, 3.0))
    assert (bil[..., 12] - bil[..., 11]).min() > 0.55  # nearly the full 0.6 step survives
    assert (box[..., 12] - box[..., 11]).max() < 0.1  # the box blur spreads it over 9 columns
    assert (bil - x).abs().max() < 0.01


def test_bilateral_transform_reduces_noise_on_flat_area():
    noise = 0.03 * torch.randn(1, 3, 32, 32, generator=gen(1))
    y = BilateralTransform()(0.5 + noise)
    assert (y - 0.5).std() < 0.5 * noise.std()


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
        BilateralTransform(**kwargs)


def test_random_transform_is_random_affine_with_classic_names():
    x = rand_image()
    t = RandomTransform(pixel_shift=2, rot_deg=7.0, scale_fac=0.25)
    expected = random_affine(x, max_shift=2, degrees=7.0, scales=(0.75, 1.25), generator=gen(4))
    assert torch.equal(t(x, gen(4)), expected)


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


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"scale_fac": -0.1}, ValueError, r"scale_fac must be a finite number >= 0 and < 1, got"),
        ({"scale_fac": 1.0}, ValueError, r"scale_fac must be .*< 1, got 1.0"),
        ({"pixel_shift": -1}, ValueError, r"pixel_shift must be a finite number >= 0, got -1"),
        ({"rot_deg": "a"}, TypeError, r"rot_deg must be a finite number >= 0, got str 'a'"),
        ({"rot_deg": math.nan}, ValueError, r"rot_deg must be .* got nan"),
    ],
)
def test_random_transform_bad_parameters(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        RandomTransform(**kwargs)


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
    x = torch.rand(1, 2, *hw)
    y = ResizeTransform(fac)(x)
    assert y.shape == (1, 2, *expected)
    assert torch.equal(y, resize(x, fac))


@pytest.mark.parametrize("fac", [0, -1.2])
def test_resize_bad_scale(fac):
    with pytest.raises(ValueError, match=rf"scale_fac must be a finite number > 0, got {fac}"):
        ResizeTransform(fac)


# --------------------------------------------------------------------------- gradcheck


GRADCHECK_CASES = [
    (lambda: BlurTransform(3), (1, 2, 5, 6)),
    (lambda: BilateralTransform(3, 0.3, 1.0), (1, 2, 5, 5)),
    (lambda: RandomTransform(pixel_shift=1.5, rot_deg=20.0, scale_fac=0.2), (2, 2, 5, 6)),
    (lambda: ResizeTransform(0.6), (1, 2, 6, 5)),
    (lambda: ResizeTransform(1.5), (1, 1, 4, 4)),
    (lambda: RandomTransform() + GaussianBlur(0.7), (2, 5, 5)),  # one image
]


@pytest.mark.parametrize(("make", "shape"), GRADCHECK_CASES)
def test_gradcheck(make, shape):
    t = make()
    x = torch.rand(*shape, dtype=torch.float64, generator=gen(9), requires_grad=True)

    def f(inp):
        return t(inp, generator=torch.Generator().manual_seed(11))

    assert torch.autograd.gradcheck(f, (x,), fast_mode=True)
