"""MACO: fixed natural magnitude, trained phase, a canvas with random crops (issue #13)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import midnite
import midnite.images
from midnite.analysis import UnreadableImageWarning
from midnite.analysis import magnitude_from_images as read_magnitude
from midnite.engine import Crops, MacoColour, recipes
from midnite.engine.objectives import channel, class_logit
from midnite.engine.param import (
    ColorDecorrelation,
    MacoImage,
    maco_magnitude,
    magnitude_from_images,
    resize_magnitude,
)
from midnite.engine.passes import Renderer
from midnite.engine.transforms import RandomCrops, random_crops
from midnite.evaluation.measures import colorfulness

from conftest import gen, rand_image, tiny_cnn


def _rel_err_up_to_scale(measured: torch.Tensor, template: torch.Tensor) -> float:
    """Relative error of ``measured`` against the best multiple of ``template``."""
    m, t = measured.double().flatten(), template.double().flatten()
    scale = (m @ t) / (t @ t)
    return float((m - scale * t).norm() / m.norm())


def _raw_of(images: torch.Tensor) -> torch.Tensor:
    """The decorrelated image before the sigmoid and colour recorrelation, from [0, 1] images."""
    x = torch.logit(images.double())
    dec = ColorDecorrelation(3).double()
    return dec.inverse(x)


# --------------------------------------------------------------------------- the parameterization


@pytest.mark.parametrize("size", [(32, 32), (33, 20), (64, 48)])
def test_spectrum_equals_template(size):
    img = MacoImage(*size, batch=2, generator=gen(0))
    with torch.no_grad():
        spectrum = torch.fft.rfft2(img.raw(), norm="ortho").abs()
    template = maco_magnitude(*size)
    assert spectrum.shape == (2, 3, size[0], size[1] // 2 + 1)
    for b in range(2):
        assert _rel_err_up_to_scale(spectrum[b], template) < 1e-3
    # exactly the template, not only up to scale: the image's contrast is the photos'
    assert torch.allclose(spectrum, template.expand_as(spectrum), atol=1e-4 * float(template.max()))


def test_rendered_image_spectrum_equals_template_and_magnitude_gets_no_gradient():
    result = midnite.render(
        tiny_cnn(),
        channel("2", 1),
        size=16,
        crops=Crops(canvas=24),
        steps=4,
        param="maco",
        progress=False,
    )
    assert result.ok
    raw = _raw_of(result.images)  # undo the sigmoid and the colour recorrelation
    spectrum = torch.fft.rfft2(raw, norm="ortho").abs()[0]
    assert _rel_err_up_to_scale(spectrum, maco_magnitude(24, 24)) < 1e-3


def test_no_gradient_reaches_the_magnitude():
    img = MacoImage(16, 16, generator=gen(0))
    before = img.magnitude.clone()
    assert [name for name, _ in img.named_parameters()] == ["phase"]
    assert not img.magnitude.requires_grad
    opt = torch.optim.Adam(img.parameters(), lr=0.5)
    for _ in range(3):
        opt.zero_grad()
        img().square().sum().backward()
        opt.step()
    assert img.magnitude.grad is None
    assert img.phase.grad is not None and bool(img.phase.grad.abs().sum() > 0)
    assert torch.equal(img.magnitude, before)
    with torch.no_grad():
        spectrum = torch.fft.rfft2(img.raw(), norm="ortho").abs()[0]
    assert _rel_err_up_to_scale(spectrum, before) < 1e-3


def test_hermitian_columns_get_no_stray_phase():
    """The phase used where rfft2 stores a frequency and its mirror is antisymmetric."""
    img = MacoImage(8, 8, generator=gen(1))
    phase = img.effective_phase().detach()[0, 0]
    for col in (0, 4):
        for row in range(8):
            assert phase[row, col] == pytest.approx(-float(phase[(-row) % 8, col]), abs=1e-6)
    assert float(phase[0, 0]) == 0.0 and float(phase[4, 4]) == 0.0
    assert phase[1, 1] == img.phase.detach()[0, 0, 1, 1]  # other columns are the parameter itself


def test_maco_image_seed_output_range_and_refusals():
    with torch.no_grad():
        a = MacoImage(20, 30, batch=2, generator=gen(3))()
        b = MacoImage(20, 30, batch=2, generator=gen(3))()
        c = MacoImage(20, 30, batch=2, generator=gen(4))()
    assert a.shape == (2, 3, 20, 30) and torch.equal(a, b) and not torch.equal(a, c)
    assert float(a.min()) > 0 and float(a.max()) < 1
    assert abs(float(a.mean()) - 0.5) < 0.05  # centred on grey: the template's DC is 0
    with pytest.raises(TypeError, match="cannot hold an arbitrary image"):
        MacoImage(8, 8).set_image_(torch.rand(1, 3, 8, 8))
    with pytest.raises(TypeError, match="cannot hold an arbitrary image"):
        MacoImage.from_image(torch.rand(1, 3, 8, 8))


def test_maco_image_grey_and_user_template():
    grey = MacoImage(16, 16, channels=1, generator=gen(0))
    assert grey().shape == (1, 1, 16, 16)
    shipped = maco_magnitude(16, 16)
    expect = shipped.square().mean(0).sqrt()
    assert torch.allclose(grey.magnitude[0], expect, rtol=1e-5, atol=1e-6)
    user = torch.ones(1, 32, 17)  # one channel: used for every channel
    img = MacoImage(16, 16, magnitude=user, generator=gen(0))
    assert img.magnitude.shape == (3, 16, 9)
    with pytest.raises(ValueError, match=r"magnitude must have 3 channel\(s\) \(or 1\), got 2"):
        MacoImage(16, 16, magnitude=torch.ones(2, 32, 17))


# --------------------------------------------------------------------------- the template


def test_shipped_template_is_small_and_natural():
    from importlib import resources

    path = resources.files("midnite") / "data" / "maco_magnitude.npy"
    data = np.load(str(path), allow_pickle=False)
    assert data.shape == (3, 256, 129) and data.dtype == np.float16
    assert path.stat().st_size < 300_000
    t = torch.from_numpy(data.astype(np.float32))
    assert float(t[:, 0, 0].abs().max()) == 0.0  # DC: grey
    # natural images: magnitude falls about as 1/f (slope of log magnitude vs log f near -1)
    fy = torch.fft.fftfreq(256)[:, None]
    fx = torch.fft.rfftfreq(256)[None, :]
    f = torch.sqrt(fy * fy + fx * fx)
    low = t[0][(f > 0.02) & (f < 0.03)].mean()
    high = t[0][(f > 0.2) & (f < 0.3)].mean()
    slope = math.log(high / low) / math.log(10.0)
    assert -1.6 < slope < -0.7


def test_resize_magnitude_keeps_the_template_at_its_own_size():
    t = maco_magnitude(256, 256)
    again = resize_magnitude(t, 256, 256)
    fy = torch.fft.fftfreq(256)[:, None] * 256
    fx = torch.fft.rfftfreq(256)[None, :] * 256
    bins = torch.sqrt(fy * fy + fx * fx).expand(3, -1, -1)
    far = bins >= 1.5  # below 1.5 bins the template is extrapolated as 1/f (DC: 0)
    assert torch.allclose(again[far], t[far], rtol=1e-5, atol=1e-6)
    # bin (0, 1): the value at (0, 1.5), halfway between bins 1 and 2, times 1.5 / 1
    expect = 1.5 * (t[:, 0, 1] + t[:, 0, 2]) / 2
    assert torch.allclose(again[:, 0, 1], expect, rtol=1e-5)


def test_resize_magnitude_extrapolates_one_over_f():
    n = 32
    fy = torch.fft.fftfreq(n, dtype=torch.float64)[:, None]
    fx = torch.fft.rfftfreq(n, dtype=torch.float64)[None, :]
    f = torch.sqrt(fy * fy + fx * fx)
    template = (1.0 / f.clamp(min=1e-9)).expand(3, -1, -1).clone()
    template[:, 0, 0] = 0.0
    big = resize_magnitude(template, 128, 128)  # frequencies far below the template's lowest
    gy = torch.fft.fftfreq(128, dtype=torch.float64)[:, None]
    gx = torch.fft.rfftfreq(128, dtype=torch.float64)[None, :]
    g = torch.sqrt(gy * gy + gx * gx)
    ok = g > 0
    ratio = big[0][ok].double() * g[ok]  # 1/f sampled exactly would give 1 everywhere
    assert float(ratio.min()) > 0.9 and float(ratio.max()) < 1.15
    assert float(big[:, 0, 0].abs().max()) == 0.0


def _cosine_images(k: int, n: int = 32) -> torch.Tensor:
    """Images whose decorrelated logit space holds one cosine of ``k`` cycles in channel 0."""
    x = torch.arange(n, dtype=torch.float64)
    raw = torch.zeros(2, 3, n, n, dtype=torch.float64)
    raw[:, 0] = torch.cos(2 * math.pi * k * x / n)[None, :]
    raw[1, 0] = raw[1, 0].roll(3, dims=-1)  # a second phase: the magnitude is the same
    return torch.sigmoid(ColorDecorrelation(3).double()(raw)).float()


def test_magnitude_from_images_finds_a_known_spectrum():
    k, n = 5, 32
    mag = magnitude_from_images(_cosine_images(k, n), size=n)
    assert mag.shape == (3, n, n // 2 + 1)
    energy = mag.double().square()
    # the Hann window spreads a line over 3 x 3 bins (rows -1, 0, 1; columns k - 1 .. k + 1)
    near = energy[0, [-1, 0, 1], k - 1 : k + 2].sum()
    assert float(near / energy.sum()) > 0.98
    assert int(mag[0, 0].argmax()) == k
    assert float(energy[1:].sum() / energy.sum()) < 1e-3  # nothing in the other channels
    assert float(mag[:, 0, 0].abs().max()) == 0.0


def test_magnitude_from_images_reads_a_folder(tmp_path):
    pixels = (_cosine_images(4, 32)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "colour.png")
    Image.fromarray(pixels).convert("L").save(tmp_path / "grey.jpg")  # grey: made RGB
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG broken")
    match = r"skipped 2 of 4 files .*:\n  'broken.png': not a JPEG.*\n  'notes.txt': not a JPEG"
    with pytest.warns(UnreadableImageWarning, match=match):
        mag = read_magnitude(tmp_path, size=32)
    assert mag.shape == (3, 32, 17) and bool(torch.isfinite(mag).all())
    assert int(mag[0, 0].argmax()) == 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        files = read_magnitude([tmp_path / "colour.png"], size=32)
    assert int(files[0, 0].argmax()) == 4
    # the tooling reads the files, the engine averages: both give the same template
    batch = torch.stack([midnite.images.load(tmp_path / "colour.png", size=32, resample="bicubic")])
    assert torch.equal(files, magnitude_from_images(batch, size=32))
    assert torch.equal(read_magnitude(batch, size=32), files)


def test_magnitude_from_images_errors(tmp_path):
    with pytest.raises(ValueError, match="holds no files"):
        read_magnitude(tmp_path)
    (tmp_path / "a.txt").write_text("x")
    with (
        pytest.raises(ValueError, match="none of the 1 files"),
        pytest.warns(UnreadableImageWarning),
    ):
        read_magnitude(tmp_path)
    with pytest.raises(ValueError, match="must be a folder of image files"):
        read_magnitude(tmp_path / "missing")
    with pytest.raises(ValueError, match="must be a folder of image files"):
        read_magnitude("")
    with pytest.raises(ValueError, match="at least one file"):
        read_magnitude([])
    with pytest.raises(ValueError, match="even int >= 8, got 31"):
        read_magnitude(torch.rand(1, 3, 8, 8), size=31)
    with pytest.raises(ValueError, match="even int >= 8, got 31"):
        magnitude_from_images(torch.rand(1, 3, 8, 8), size=31)
    with pytest.raises(TypeError, match="got int"):
        read_magnitude(3)
    # the engine reads no files: a folder is refused, naming the tooling function that reads it
    with pytest.raises(TypeError, match=r"midnite.analysis.magnitude_from_images\), got PosixPath"):
        magnitude_from_images(tmp_path)
    with pytest.raises(ValueError, match="C 1 or 3"):
        magnitude_from_images(torch.rand(1, 2, 8, 8))


# --------------------------------------------------------------------------- crops and render


def test_random_crops_shape_order_and_identity():
    x = rand_image(2, 3, 16, 16)
    same = random_crops(x, (16, 16), crops=3, generator=gen(0))
    assert same.shape == (6, 3, 16, 16)
    assert torch.allclose(same, x.repeat(3, 1, 1, 1), atol=1e-5)  # whole boxes: the images
    small = random_crops(x, (8, 8), crops=2, scales=(0.5, 0.5), generator=gen(1))
    assert small.shape == (4, 3, 8, 8)
    a = random_crops(x, (8, 8), crops=2, scales=(0.3, 1.0), noise=0.1, generator=gen(2))
    b = random_crops(x, (8, 8), crops=2, scales=(0.3, 1.0), noise=0.1, generator=gen(2))
    assert torch.equal(a, b)
    # a half box of a horizontal ramp is a ramp of half the span
    ramp = torch.linspace(0, 1, 32).expand(1, 1, 32, 32).contiguous()
    half = random_crops(ramp, (32, 32), scales=(0.5, 0.5), generator=gen(3))
    span = float(half[0, 0, 0, -1] - half[0, 0, 0, 0])
    assert span == pytest.approx(0.5 * 31 / 31, abs=0.05)
    crops = RandomCrops((8, 8), crops=2, scales=(0.5, 1.0))
    assert crops.view(x).shape == (2, 3, 8, 8)
    with pytest.raises(ValueError, match=r"scales must lie in \(0, 1\]"):
        random_crops(x, (8, 8), scales=(0.5, 1.5))


def test_renderer_averages_the_objective_over_each_images_crops():
    net = torch.nn.Identity()
    obj = midnite.objectives.custom("", lambda act: act.flatten(1).mean(1))

    def two(x, generator=None):  # crop 0: the images, crop 1: twice them
        return torch.cat([x, 2 * x])

    x = rand_image(2, 3, 4, 4)
    with Renderer(net, obj, transforms=two, fold_bn=False) as r:
        r.validate(x)
        _, values = r.loss(x)
    assert torch.allclose(values, 1.5 * x.flatten(1).mean(1))


def test_render_maco_canvas_seed_and_record():
    kw = dict(size=16, crops=Crops(canvas=(24, 20)), steps=3, param="maco", progress=False)
    a = midnite.render(tiny_cnn(), [class_logit(0), class_logit(1)], seed=5, **kw)
    b = midnite.render(tiny_cnn(), [class_logit(0), class_logit(1)], seed=5, **kw)
    c = midnite.render(tiny_cnn(), [class_logit(0), class_logit(1)], seed=6, **kw)
    assert a.images.shape == (2, 3, 24, 20)  # the result at canvas size
    assert torch.equal(a.images, b.images) and torch.equal(a.history, b.history)
    assert not torch.equal(a.images, c.images)
    s = a.settings
    assert s["param"] == "maco" and s["canvas"] == [24, 20]
    assert (s["crops"], s["crop_scale"], s["crop_noise"]) == (4, [0.5, 1.0], 0.05)
    assert a.history.shape == (3, 2)


def test_maco_default_canvas_and_crop_settings():
    cnn = tiny_cnn()
    config = midnite.RenderConfig.resolve(cnn, channel("0", 0), size=40, param="maco")
    assert config.canvas == (50, 50)  # recipes.MACO_CROPS: 1.25x the input
    assert config.crops == Crops(4, (0.5, 1.0), 0.05, (50, 50))
    config = midnite.RenderConfig.resolve(
        cnn, channel("0", 0), size=40, param="maco", crops=Crops(2, (0.8, 0.9), noise=0)
    )
    assert config.crops == Crops(2, (0.8, 0.9), 0.0, (50, 50))
    plain = midnite.RenderConfig.resolve(cnn, channel("0", 0), size=40)
    assert plain.canvas is None and "canvas" not in plain.to_json()  # old records unchanged
    # a canvas works with the other parameterizations too
    fourier = midnite.render(
        cnn, channel("0", 0), size=8, crops=Crops(canvas=12), steps=2, progress=False
    )
    assert fourier.images.shape == (1, 3, 12, 12) and fourier.settings["param"] == "fourier"
    with pytest.raises(ValueError, match=r"crops.canvas must be set in a RenderConfig"):
        plain.replace(crops=Crops(4))


def test_a_fixed_size_model_sees_only_its_input_size():
    """Every pass (first pass, batchnorm folding probe, steps, final score) is at ``size``."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 16 * 16, 5),  # refuses anything but 16 x 16
    ).eval()
    result = midnite.render(
        net, class_logit(2), size=16, crops=Crops(canvas=40), steps=2, progress=False
    )
    assert result.ok and result.images.shape == (1, 3, 40, 40)
    with torch.no_grad():
        seen = torch.nn.functional.interpolate(
            result.images, size=(16, 16), mode="bilinear", antialias=True
        )
        assert float(net(seen)[0, 2]) == pytest.approx(float(result.final[0]), abs=1e-4)


# --------------------------------------------------------------------------- colour


def test_saturation_scales_only_the_chroma_channels_of_the_spectrum():
    plain = MacoImage(32, 32, batch=2, generator=gen(0))
    rich = MacoImage(32, 32, batch=2, generator=gen(0), saturation=2.0)
    assert torch.equal(plain.phase, rich.phase)  # same draw: only the template differs
    with torch.no_grad():
        a = torch.fft.rfft2(plain.raw(), norm="ortho").abs()
        b = torch.fft.rfft2(rich.raw(), norm="ortho").abs()
    assert torch.allclose(b[:, 0], a[:, 0], atol=1e-5)  # luminance as it was
    assert torch.allclose(b[:, 1:], 2.0 * a[:, 1:], rtol=1e-4, atol=1e-5)
    assert [n for n, _ in rich.named_parameters()] == ["phase"]
    assert "saturation=2, mean=False" in repr(rich)
    assert colorfulness(rich().detach()).mean() > 1.5 * colorfulness(plain().detach()).mean()


def test_mean_colour_is_trained_and_changes_only_the_dc_term():
    img = MacoImage(24, 24, batch=2, generator=gen(1), mean=True)
    assert [n for n, _ in img.named_parameters()] == ["phase", "mean"]
    assert img.mean.shape == (2, 3, 1, 1) and not img.mean.any()  # grey at init
    assert "saturation=1, mean=True" in repr(img)
    with torch.no_grad():
        before = torch.fft.rfft2(img.raw(), norm="ortho")
        img.mean.copy_(torch.tensor([0.5, -1.0, 2.0]).view(1, 3, 1, 1))
        after = torch.fft.rfft2(img.raw(), norm="ortho")
    dc = torch.zeros_like(after.real, dtype=torch.bool)
    dc[..., 0, 0] = True
    assert torch.allclose(after[~dc], before[~dc], atol=1e-5)  # every other frequency kept
    assert torch.allclose(after.real[..., 0, 0], before.real[..., 0, 0] + 24 * img.mean[..., 0, 0])
    # a yellow-loving objective moves the mean colour, and its gradient reaches it
    img.mean.data.zero_()
    (img()[:, 0] + img()[:, 1] - img()[:, 2]).mean().backward()
    assert img.mean.grad is not None and img.mean.grad.abs().sum() > 0


def test_colour_refusals():
    with pytest.raises(ValueError, match=r"colour\.saturation must be"):
        MacoColour(saturation=0)
    with pytest.raises(TypeError, match=r"colour\.mean must be a bool"):
        MacoColour(mean=1)
    with pytest.raises(ValueError, match="needs decorrelate=True and 3 channels"):
        MacoImage(16, 16, decorrelate=False, saturation=2.0)
    with pytest.raises(ValueError, match="needs decorrelate=True and 3 channels"):
        MacoImage(16, 16, channels=1, saturation=2.0)
    MacoImage(16, 16, channels=1, mean=True)  # a grey mean is fine
    cnn = tiny_cnn()
    with pytest.raises(ValueError, match="colour sets the colour of param='maco' images"):
        midnite.RenderConfig.resolve(cnn, channel("0", 0), size=16, colour=MacoColour(2.0))
    with pytest.raises(TypeError, match=r"colour must be a MacoColour\(saturation, mean\)"):
        midnite.RenderConfig.resolve(cnn, channel("0", 0), size=16, param="maco", colour=2.0)


def test_colour_defaults_records_and_renders():
    cnn = tiny_cnn()
    plain = midnite.RenderConfig.resolve(cnn, channel("0", 0), size=16, param="maco")
    assert plain.colour is None and "colour" not in plain.to_json()  # old records unchanged
    natural = midnite.RenderConfig.resolve(cnn, channel("0", 0), size=16, recipe="natural")
    assert natural.colour == recipes.NATURAL.colour is not None
    assert natural.to_json()["colour"] == {
        "saturation": recipes.NATURAL.colour.saturation,
        "mean": recipes.NATURAL.colour.mean,
    }
    # the recipe's colour is replaced when given, and turned off by the template's own
    own = midnite.RenderConfig.resolve(
        cnn, channel("0", 0), size=16, recipe="natural", colour=MacoColour()
    )
    assert own.colour == MacoColour() and own.to_json()["colour"]["saturation"] == 1.0
    kw = dict(size=16, crops=Crops(canvas=20), steps=3, param="maco", progress=False, seed=2)
    a = midnite.render(cnn, channel("2", 1), **kw)
    b = midnite.render(cnn, channel("2", 1), colour=MacoColour(2.0, mean=True), **kw)
    c = midnite.render(cnn, channel("2", 1), colour=MacoColour(2.0, mean=True), **kw)
    assert a.ok and b.ok and torch.equal(b.images, c.images)
    assert not torch.equal(a.images, b.images)
    assert colorfulness(b.images).mean() > colorfulness(a.images).mean()
