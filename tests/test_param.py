import copy
import math
import re

import pytest
import torch

from midnite.engine.param import (
    COLOR_CORRELATION_SVD_SQRT,
    ColorDecorrelation,
    FourierImage,
    Parameterization,
    PixelImage,
    image,
)

from conftest import gen


def all_kinds(h=6, w=5, batch=2, channels=3, sd=0.01, seed=0):
    """One instance of every parameterization flavour."""
    kinds = []
    for squash in ("sigmoid", "clamp", "none"):
        for dec in (False, True):
            kinds.append(
                PixelImage(
                    h,
                    w,
                    batch=batch,
                    channels=channels,
                    sd=sd,
                    generator=gen(seed),
                    squash=squash,
                    decorrelate=dec,
                )
            )
    for dec in (False, True):
        kinds.append(
            FourierImage(
                h, w, batch=batch, channels=channels, sd=sd, generator=gen(seed), decorrelate=dec
            )
        )
    return kinds


# ---------------------------------------------------------------- shapes and range


@pytest.mark.parametrize("hw", [(8, 8), (7, 5), (5, 12), (1, 1), (2, 9)])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_output_shape(hw, channels):
    h, w = hw
    for p in all_kinds(h, w, batch=2, channels=channels):
        out = p()
        assert out.shape == (2, channels, h, w) == p.shape
        assert (p.batch, p.channels, p.height, p.width) == (2, channels, h, w)
        assert torch.isfinite(out).all()


def test_range_sigmoid_and_clamp_with_large_values():
    for p in all_kinds(16, 9, sd=20.0):
        out = p()
        if p.squash == "none":
            assert out.min() < 0 and out.max() > 1  # caller's job to clamp
        else:
            assert out.min() >= 0 and out.max() <= 1
    clamped = PixelImage(16, 16, sd=20.0, squash="clamp", generator=gen())()
    assert (clamped == 0).any() and (clamped == 1).any()


def test_init_is_gray():
    # sd = 0: exactly 0.5 everywhere, for every flavour (decorrelated ones included).
    for p in all_kinds(5, 4, sd=0.0):
        torch.testing.assert_close(p(), torch.full((2, 3, 5, 4), 0.5), atol=1e-6, rtol=0)
    # small sd: near 0.5 plus some noise.
    for p in all_kinds(32, 32, sd=0.01):
        out = p()
        assert (out - 0.5).abs().max() < 0.05
        assert out.std() > 1e-4


def test_pixel_sigmoid_is_sigmoid_of_pixels():
    p = PixelImage(3, 4, generator=gen(), sd=1.0)
    torch.testing.assert_close(p(), torch.sigmoid(p.pixels))
    q = PixelImage(3, 4, generator=gen(), sd=1.0, squash="none")
    assert q() is q.pixels or torch.equal(q(), q.pixels)
    torch.testing.assert_close(q.pixels, p.pixels + 0.5)  # same noise, offset to gray


# ---------------------------------------------------------------- gradients


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_gradient_reaches_every_parameter(channels):
    for p in all_kinds(7, 6, channels=channels, sd=0.5):
        params = list(p.parameters())
        assert params
        p().sum().backward()
        for prm in params:
            assert prm.grad is not None
            assert (prm.grad != 0).any(), type(p).__name__


def test_fourier_gradient_only_misses_ignored_imaginary_parts():
    # irfft2 ignores the imaginary part of purely real coefficients: DC, and the Nyquist row /
    # column for even sizes. Every other coefficient must get gradient.
    h, w = 6, 8
    p = FourierImage(h, w, batch=1, channels=1, sd=0.5, generator=gen())
    weight = torch.randn(1, 1, h, w, generator=gen(1))
    (p() * weight).sum().backward()
    zero = p.spectrum.grad == 0
    expected = torch.zeros_like(zero)
    for ky in (0, h // 2):
        for kx in (0, w // 2):
            expected[0, 0, ky, kx, 1] = True
    assert torch.equal(zero, expected)


def test_batch_items_are_independent():
    for p in all_kinds(5, 7, batch=3, sd=0.3):
        p()[1].sum().backward()
        for prm in p.parameters():
            assert (prm.grad[1] != 0).any()
            assert (prm.grad[0] == 0).all() and (prm.grad[2] == 0).all()


def test_adam_fits_a_target():
    target = torch.rand(1, 3, 8, 8, generator=gen(3)) * 0.6 + 0.2
    for p in (image(8, generator=gen()), image(8, fft=False, generator=gen())):
        opt = torch.optim.Adam(p.parameters(), lr=0.1)
        first = None
        for _ in range(60):
            opt.zero_grad()
            loss = ((p() - target) ** 2).mean()
            first = loss.item() if first is None else first
            loss.backward()
            opt.step()
        assert loss.item() < first / 10


# ---------------------------------------------------------------- randomness


def test_same_seed_same_image_regardless_of_global_rng():
    for a, b in zip(all_kinds(seed=7), all_kinds(seed=7), strict=True):
        torch.manual_seed(123)
        out_a = a()
        torch.manual_seed(456)
        torch.rand(10)
        assert torch.equal(out_a, b())


def test_different_seeds_and_batch_items_differ():
    for a, b in zip(all_kinds(seed=1), all_kinds(seed=2), strict=True):
        out_a, out_b = a(), b()
        assert not torch.equal(out_a, out_b)
        assert not torch.equal(out_a[0], out_a[1])


# ---------------------------------------------------------------- Fourier spectrum


def test_fourier_scale_known_values():
    p = FourierImage(4, 4, sd=0.0)
    # |fy| = [0, .25, .5, .25], fx = [0, .25, .5]; scale = 1 / max(f, 1/4)
    r1, r5, r2 = 1 / math.sqrt(0.125), 1 / math.sqrt(0.3125), 1 / math.sqrt(0.5)
    expected = torch.tensor([[4, 4, 2], [4, r1, r5], [2, r5, r2], [4, r1, r5]])
    torch.testing.assert_close(p.scale, expected.float())
    torch.testing.assert_close(FourierImage(4, 4, decay_power=2.0).scale, expected.float() ** 2)
    torch.testing.assert_close(FourierImage(4, 4, decay_power=0.0).scale, torch.ones(4, 3))
    # non-square 2x4: the floor is 1 / max(H, W) = 1/4; |fy| = [0, .5], fx = [0, .25, .5]
    expected = torch.tensor([[4, 4, 2], [2, r5, r2]])
    torch.testing.assert_close(FourierImage(2, 4).scale, expected.float())
    assert FourierImage(5, 3).scale.shape == (5, 2)
    assert FourierImage(3, 7).spectrum.shape == (1, 3, 3, 4, 2)
    assert "scale" in dict(p.named_buffers())


def test_fourier_single_coefficient_is_a_cosine():
    # Coefficient a at (ky=0, kx=1) of an 8x8 image: scale 8, ortho irfft2 gives
    # (2 * 8a / sqrt(64)) cos(2 pi x / 8) = 2a cos(.), then / 4 -> (a / 2) cos(2 pi x / 8).
    a = 0.8
    p = FourierImage(8, 8, batch=1, channels=1, sd=0.0)
    with torch.no_grad():
        p.spectrum[0, 0, 0, 1, 0] = a
    x = torch.arange(8, dtype=torch.float32)
    expected = (a / 2 * torch.cos(2 * math.pi * x / 8)).expand(8, 8)
    torch.testing.assert_close(torch.logit(p()[0, 0]), expected, atol=1e-5, rtol=1e-4)


def _low_freq_power_fraction(x: torch.Tensor, cutoff: float = 0.125) -> float:
    h, w = x.shape[-2:]
    power = torch.fft.rfft2(x - x.mean(dim=(-2, -1), keepdim=True)).abs() ** 2
    fy = torch.fft.fftfreq(h)[:, None]
    fx = torch.fft.rfftfreq(w)[None, :]
    low = torch.sqrt(fx**2 + fy**2) < cutoff
    return (power[..., low].sum() / power.sum()).item()


def test_fourier_power_is_concentrated_at_low_frequencies():
    fourier = FourierImage(32, 32, batch=4, sd=0.01, generator=gen())()
    pixel = PixelImage(32, 32, batch=4, sd=0.01, generator=gen())()
    f_frac = _low_freq_power_fraction(torch.logit(fourier))
    p_frac = _low_freq_power_fraction(torch.logit(pixel))
    assert p_frac < 0.15  # white noise: about the area of the disc, pi / 64 ~ 0.05
    assert f_frac > 0.5
    assert f_frac > 4 * p_frac


# ---------------------------------------------------------------- colour decorrelation


def test_decorrelation_matrix_values():
    assert COLOR_CORRELATION_SVD_SQRT == (
        (0.26, 0.09, 0.02),
        (0.27, 0.00, -0.05),
        (0.27, -0.09, 0.03),
    )
    m = ColorDecorrelation().matrix
    # largest column norm: column 0, sqrt(.26^2 + .27^2 + .27^2) = sqrt(.2134)
    norm = math.sqrt(0.2134)
    raw = torch.tensor(COLOR_CORRELATION_SVD_SQRT)
    torch.testing.assert_close(m, raw / norm)
    assert m[0, 0].item() == pytest.approx(0.26 / 0.4619524, rel=1e-5)
    assert m[2, 1].item() == pytest.approx(-0.09 / 0.4619524, rel=1e-5)
    torch.testing.assert_close(torch.linalg.vector_norm(m, dim=0).max(), torch.tensor(1.0))


def test_decorrelation_forward_and_inverse():
    dec = ColorDecorrelation()
    x = torch.zeros(1, 3, 2, 2)
    x[:, 1] = 1.0  # unit vector on decorrelated channel 1 -> column 1 of the matrix
    out = dec(x)
    torch.testing.assert_close(out[0, :, 1, 0], dec.matrix[:, 1])
    y = torch.randn(2, 3, 4, 5, generator=gen())
    torch.testing.assert_close(dec.inverse(dec(y)), y, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(dec.inverse_matrix @ dec.matrix, torch.eye(3), atol=1e-5, rtol=0)


@pytest.mark.parametrize("channels", [1, 2, 4])
def test_decorrelation_is_identity_for_non_rgb(channels):
    dec = ColorDecorrelation(channels)
    assert not dec.active
    x = torch.randn(2, channels, 3, 3, generator=gen())
    assert torch.equal(dec(x), x) and torch.equal(dec.inverse(x), x)
    p = PixelImage(3, 3, channels=channels, decorrelate=True, sd=1.0, generator=gen())
    torch.testing.assert_close(p(), torch.sigmoid(p.pixels))


def test_decorrelated_pixel_image_applies_matrix():
    p = PixelImage(4, 3, sd=1.0, generator=gen(), decorrelate=True)
    m = ColorDecorrelation().matrix
    expected = torch.sigmoid(torch.einsum("oc,bchw->bohw", m, p.pixels))
    torch.testing.assert_close(p(), expected)
    assert torch.equal(ColorDecorrelation().matrix, p.decorrelation.matrix)


def test_decorrelation_rejects_wrong_channels():
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\), got \(1, 4, 2, 2\)"):
        ColorDecorrelation()(torch.zeros(1, 4, 2, 2))


# ---------------------------------------------------------------- from_image


@pytest.mark.parametrize("hw", [(8, 8), (7, 5), (4, 9)])
@pytest.mark.parametrize("channels", [1, 3])
def test_from_image_round_trip(hw, channels):
    img = torch.rand(2, channels, *hw, generator=gen()) * 0.98 + 0.01
    made = [FourierImage.from_image(img, decorrelate=d) for d in (False, True)]
    made += [
        PixelImage.from_image(img, squash=s, decorrelate=d)
        for s in ("sigmoid", "clamp", "none")
        for d in (False, True)
    ]
    for p in made:
        assert p.shape == img.shape
        torch.testing.assert_close(p(), img, atol=1e-5, rtol=1e-5)


def test_from_image_clips_extremes_for_sigmoid():
    img = torch.tensor([0.0, 1.0, 0.5, 0.25]).reshape(1, 1, 2, 2)
    for p in (PixelImage.from_image(img), FourierImage.from_image(img)):
        out = p()
        assert torch.isfinite(out).all()
        torch.testing.assert_close(out, img, atol=1.1e-4, rtol=0)
    assert torch.equal(PixelImage.from_image(img, squash="none")(), img)


def test_from_image_keeps_dtype_and_set_image_keeps_parameters():
    img = torch.rand(1, 3, 5, 6, dtype=torch.float64, generator=gen())
    for p in (PixelImage.from_image(img, decorrelate=True), FourierImage.from_image(img)):
        assert all(t.dtype == torch.float64 for t in p.parameters())
        assert p().dtype == torch.float64
        before = [id(t) for t in p.parameters()]
        new = torch.rand(1, 3, 5, 6, dtype=torch.float64, generator=gen(1)) * 0.9 + 0.05
        p.set_image_(new)
        assert [id(t) for t in p.parameters()] == before
        torch.testing.assert_close(p(), new)


def test_to_dtype_moves_buffers():
    p = image(6, 5, generator=gen()).to(torch.float64)
    assert p.scale.dtype == torch.float64 and p.decorrelation.matrix.dtype == torch.float64
    assert p().dtype == torch.float64


# ---------------------------------------------------------------- factory and base


def test_image_factory():
    p = image(9, generator=gen())
    assert isinstance(p, FourierImage) and p.shape == (1, 3, 9, 9) and p.decorrelate
    q = image(9, 4, batch=2, channels=1, fft=False, decorrelate=False, sd=0.2, generator=gen())
    assert isinstance(q, PixelImage) and q.shape == (2, 1, 9, 4)
    assert q.squash == "sigmoid" and q.decorrelation is None
    same = PixelImage(9, 4, batch=2, channels=1, sd=0.2, generator=gen())
    assert torch.equal(q(), same())
    assert image(5, channels=4)().shape == (1, 4, 5, 5)  # default decorrelate is a no-op
    assert isinstance(image(3), Parameterization)


def test_base_class():
    base = Parameterization(2, 3, 4, 5)
    assert base.shape == (2, 3, 4, 5)
    with pytest.raises(NotImplementedError):
        base()
    assert "height=4" in repr(PixelImage(4, 5))


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"height": 0}, "height must be an int >= 1, got 0"),
        ({"width": -3}, "width must be an int >= 1, got -3"),
        ({"batch": 0}, "batch must be an int >= 1, got 0"),
        ({"channels": 0}, "channels must be an int >= 1, got 0"),
        ({"sd": -0.1}, r"sd must be a finite number >= 0, got -0.1"),
        ({"sd": float("nan")}, "sd must be a finite number >= 0, got nan"),
    ],
)
def test_bad_values_raise_value_error(kwargs, pattern):
    args = {"height": 4, "width": 4, **kwargs}
    h, w = args.pop("height"), args.pop("width")
    for cls in (PixelImage, FourierImage):
        with pytest.raises(ValueError, match=pattern):
            cls(h, w, **args)
    with pytest.raises(ValueError, match=pattern):
        image(h, w, **args)


def test_other_errors():
    with pytest.raises(ValueError, match=r"squash must be one of .*'sigmoid'.*got 'tanh'"):
        PixelImage(4, 4, squash="tanh")
    with pytest.raises(
        ValueError, match=re.escape("decay_power must be a finite number >= 0, got -1")
    ):
        FourierImage(4, 4, decay_power=-1)
    with pytest.raises(TypeError, match=re.escape("height must be an int >= 1, got float 4.0")):
        PixelImage(4.0, 4)
    with pytest.raises(TypeError, match=re.escape("batch must be an int >= 1, got bool")):
        FourierImage(4, 4, batch=True)
    with pytest.raises(
        TypeError, match=re.escape("generator must be a torch.Generator or None, got int 0")
    ):
        PixelImage(4, 4, generator=0)
    with pytest.raises(TypeError, match="decorrelate must be True or False, got str"):
        image(4, decorrelate="yes")
    with pytest.raises(ValueError, match="channels must be an int >= 1, got 0"):
        ColorDecorrelation(0)


def test_image_input_errors():
    with pytest.raises(ValueError, match=r"shape \(B, C, H, W\), got \(3, 4, 4\)"):
        PixelImage.from_image(torch.rand(3, 4, 4))
    with pytest.raises(TypeError, match=re.escape("floating-point tensor, got dtype torch.int64")):
        FourierImage.from_image(torch.ones(1, 3, 4, 4, dtype=torch.long))
    with pytest.raises(TypeError, match=re.escape("torch.Tensor (B, C, H, W), got list")):
        PixelImage.from_image([[0.5]])
    with pytest.raises(ValueError, match="finite values"):
        PixelImage.from_image(torch.full((1, 1, 2, 2), float("nan")))
    p = PixelImage(4, 4)
    with pytest.raises(ValueError, match=r"shape \(1, 3, 4, 4\), got \(1, 3, 4, 5\)"):
        p.set_image_(torch.rand(1, 3, 4, 5))


# ---------------------------------------------------------------- device


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    for cpu in all_kinds(9, 6, batch=2, sd=0.3):
        gpu = copy.deepcopy(cpu).to("cuda")
        out = gpu()
        assert out.device.type == "cuda"
        torch.testing.assert_close(out.cpu(), cpu(), atol=1e-5, rtol=1e-5)
        out.sum().backward()
        assert all(t.grad is not None and t.grad.device.type == "cuda" for t in gpu.parameters())
    g = torch.Generator(device="cuda").manual_seed(0)
    assert image(8, generator=g)().shape == (1, 3, 8, 8)
    img = torch.rand(1, 3, 7, 5, device="cuda")
    torch.testing.assert_close(FourierImage.from_image(img, decorrelate=True)(), img)
