"""Known-answer tests for midnite.metrics."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from midnite import metrics
from midnite.metrics import (
    Naturalness,
    activation_gain,
    colorfulness,
    gram_diversity,
    high_frequency_energy,
    naturalness,
    robustness,
    saturated_fraction,
    seed_stability,
    spectrum_slope,
    summary,
    total_variation,
    transferability,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _power_law_noise(b: int, c: int, size: int, seed: int = 0, a: float = 1.0) -> torch.Tensor:
    """Periodic noise with amplitude ∝ 1/f^a (power ∝ 1/f^2a), random phases, around gray."""
    f = torch.sqrt(torch.fft.fftfreq(size)[:, None] ** 2 + torch.fft.fftfreq(size)[None] ** 2)
    amp = f.clamp_min(1e-9) ** -a
    amp[0, 0] = 0
    phase = torch.rand(b, c, size, size, generator=_gen(seed)) * 2 * math.pi
    z = torch.fft.ifft2(amp * torch.exp(1j * phase)).real
    return 0.5 + 0.15 * z / z.std(dim=(-2, -1), keepdim=True)


def _smooth(size: int = 64) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    return torch.stack([xx, yy, 0.5 + 0.3 * torch.sin(2 * math.pi * xx)])  # non-periodic ramps


# ---------------------------------------------------------------------------- input checks


@pytest.mark.parametrize(
    "fn", [spectrum_slope, high_frequency_energy, total_variation, saturated_fraction, summary]
)
def test_image_metrics_reject_bad_input(fn):
    with pytest.raises(ValueError, match=r"\(B, C, H, W\).*got shape \(8, 8\)"):
        fn(torch.rand(8, 8))
    with pytest.raises(TypeError, match=r"floating-point"):
        fn(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(TypeError, match=r"torch.Tensor"):
        fn([[0.0]])


def test_single_image_equals_batch_of_one_and_half_precision_works():
    x = torch.rand(3, 16, 16, generator=_gen())
    for fn in (spectrum_slope, high_frequency_energy, total_variation, colorfulness):
        assert fn(x).shape == (1,)
        torch.testing.assert_close(fn(x), fn(x[None]))
        torch.testing.assert_close(fn(x.double()).float(), fn(x), rtol=1e-4, atol=1e-4)
    assert total_variation(x.half()).dtype == torch.float32


# ---------------------------------------------------------------------------- spectrum


def test_spectrum_slope_of_power_law_noise_is_minus_two():
    slope = spectrum_slope(_power_law_noise(6, 3, 64))
    assert slope.shape == (6,)
    assert torch.all((slope > -2.3) & (slope < -1.7)), slope


def test_spectrum_slope_of_white_noise_is_zero_and_smooth_is_steep():
    slope = spectrum_slope(torch.rand(6, 3, 64, 64, generator=_gen(1)))
    assert slope.abs().max() < 0.3, slope
    assert spectrum_slope(_smooth()).item() < -4
    assert spectrum_slope(torch.full((1, 3, 16, 16), 0.3)).item() == 0.0
    with pytest.raises(ValueError, match=r">= 4"):
        spectrum_slope(torch.rand(1, 3, 3, 32))


def test_high_frequency_energy_white_noise_matches_area_share():
    size = 64
    f = torch.fft.fftfreq(size) / 0.5
    rho = torch.sqrt(f[:, None] ** 2 + f[None] ** 2)
    for cutoff in (0.25, 0.5, 1.0):
        area = ((rho > cutoff).sum() / (size * size - 1)).item()
        hf = high_frequency_energy(torch.rand(8, 3, size, size, generator=_gen(2)), cutoff)
        assert hf.mean().item() == pytest.approx(area, abs=0.02)
    assert area == pytest.approx(1 - math.pi / 4, abs=0.01)  # cutoff 1: the corners


def test_high_frequency_energy_smooth_constant_and_errors():
    assert high_frequency_energy(_smooth()).item() < 1e-4
    assert high_frequency_energy(torch.full((2, 3, 8, 8), 0.5)).tolist() == [0.0, 0.0]
    # a one-pixel checkerboard: all energy at the corner (0.5, 0.5), spread ±2 bins by the window
    checker = (torch.arange(16)[:, None] + torch.arange(16)[None]) % 2
    assert high_frequency_energy(checker[None].float(), cutoff=1.2).item() > 0.99
    with pytest.raises(ValueError, match=r"cutoff must be.*got 2"):
        high_frequency_energy(torch.rand(1, 1, 8, 8), cutoff=2)


# ---------------------------------------------------------------------------- pixel statistics


def test_total_variation_known_values():
    assert total_variation(torch.full((2, 3, 5, 7), 0.4)).tolist() == [0.0, 0.0]
    stripes = (torch.arange(8) % 2).float().expand(1, 8, 8)  # columns 0/1: dx 1, dy 0
    assert total_variation(stripes).item() == pytest.approx(1.0)
    checker = ((torch.arange(8)[:, None] + torch.arange(8)[None]) % 2).float()[None]
    assert total_variation(checker).item() == pytest.approx(2.0)
    ramp = torch.linspace(0, 1, 11).expand(2, 11, 11)  # dx = 0.1, dy = 0
    assert total_variation(ramp).item() == pytest.approx(0.1)
    with pytest.raises(ValueError, match=r">= 2, got \(1, 5\)"):
        total_variation(torch.rand(1, 1, 1, 5))


def test_colorfulness_known_values():
    assert colorfulness(torch.full((2, 3, 4, 4), 0.37)).tolist() == [0.0, 0.0]
    red = torch.zeros(3, 4, 4)
    red[0] = 1
    # rg = 255, yb = 127.5, no spread: 0.3 * sqrt(255² + 127.5²)
    expected = 0.3 * math.hypot(255, 127.5)
    assert colorfulness(red).item() == pytest.approx(expected, rel=1e-5)
    half = torch.zeros(3, 2, 2)  # left column red, right column blue
    half[0, :, 0] = 1
    half[2, :, 1] = 1
    # rg: 255 | 0, yb: 127.5 | -255 -> std 127.5, 191.25; mean 127.5, -63.75
    expected = math.hypot(127.5, 191.25) + 0.3 * math.hypot(127.5, 63.75)
    assert colorfulness(half).item() == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match=r"3 \(RGB\) channels, got 1"):
        colorfulness(torch.rand(2, 1, 4, 4))


def test_saturated_fraction_known_image():
    x = torch.full((2, 1, 2, 5), 0.5)
    x[0, 0, 0, :3] = torch.tensor([0.0, 1.0, 0.002])  # 0.002 < 1/255: saturated
    x[0, 0, 1, 0] = 0.995  # 1 - 0.995 > 1/255: not saturated
    assert saturated_fraction(x).tolist() == pytest.approx([0.3, 0.0])
    assert saturated_fraction(x, eps=0.01).tolist() == pytest.approx([0.4, 0.0])
    with pytest.raises(ValueError, match=r"eps must be.*got 0.6"):
        saturated_fraction(x, eps=0.6)


# ---------------------------------------------------------------------------- features


def test_gram_diversity_known_values():
    same = torch.rand(1, 4, 5, 5, generator=_gen()).expand(3, 4, 5, 5)
    assert gram_diversity(same).item() == pytest.approx(0.0, abs=1e-6)
    a = torch.zeros(2, 2, 3, 3)
    a[0, 0] = 1  # only channel 0 on
    a[1, 1] = 1  # only channel 1 on: orthogonal Gram matrices
    assert gram_diversity(a).item() == pytest.approx(1.0)
    a[1, 0] = 1  # now G_1 = all ones, G_0 = e00: cos = 1 / 2
    assert gram_diversity(a).item() == pytest.approx(0.5)
    # Gram matrices ignore position: a shifted copy is not diverse
    x = torch.rand(1, 3, 6, 6, generator=_gen())
    rolled = torch.cat([x, torch.roll(x, 2, dims=3)])
    assert gram_diversity(rolled).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match=r"B >= 2 images to compare, got B = 1"):
        gram_diversity(torch.rand(1, 3, 4, 4))
    with pytest.raises(ValueError, match=r"at least 3 dims"):
        gram_diversity(torch.rand(4, 3))


def test_seed_stability_known_values():
    same = torch.rand(1, 4, 5, 5, generator=_gen()).expand(4, 4, 5, 5)
    assert seed_stability(same).item() == pytest.approx(1.0, abs=1e-6)
    v = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    # pairs: 1/√2, 0, 1/√2
    assert seed_stability(v).item() == pytest.approx(2 / 3 / math.sqrt(2))
    x = torch.rand(1, 3, 6, 6, generator=_gen())
    assert seed_stability(torch.cat([x, torch.roll(x, 2, dims=3)])).item() < 0.99
    with pytest.raises(ValueError, match=r"B >= 2 images to compare, got B = 1"):
        seed_stability(torch.rand(1, 8))
    with pytest.raises(TypeError, match=r"floating-point"):
        seed_stability(torch.ones(2, 3, dtype=torch.long))


# ---------------------------------------------------------------------------- model-based


def _mean_score(images: torch.Tensor) -> torch.Tensor:
    return images.mean(dim=(1, 2, 3))


def test_activation_gain_known_values():
    start = torch.full((3, 8, 8), 0.4)
    result = torch.stack([torch.full((3, 8, 8), v) for v in (0.8, 0.4, 0.2)])
    gain = activation_gain(_mean_score, result, start)  # one start for all results
    assert gain.dtype == torch.float64
    assert gain.tolist() == pytest.approx([2.0, 1.0, 0.5])

    def shifted(images):  # negative start score: -0.25 -> +0.25 is a rise of 2 magnitudes
        return _mean_score(images) - 0.5

    gain = activation_gain(shifted, torch.full((1, 1, 2, 2), 0.75), torch.full((1, 1, 2, 2), 0.25))
    assert gain.item() == pytest.approx(3.0)
    # start score 0: the rise is measured in units of eps
    gain = activation_gain(shifted, torch.full((1, 1, 2, 2), 0.75), torch.full((1, 1, 2, 2), 0.5))
    assert gain.item() == pytest.approx(1 + 0.25 / 1e-6)
    gain = activation_gain(
        shifted, torch.full((1, 1, 2, 2), 0.75), torch.full((1, 1, 2, 2), 0.5), eps=0.25
    )
    assert gain.item() == pytest.approx(2.0)


def test_activation_gain_errors():
    with pytest.raises(ValueError, match=r"1 image or as many as result \(3\), got 2"):
        activation_gain(_mean_score, torch.rand(3, 1, 4, 4), torch.rand(2, 1, 4, 4))
    with pytest.raises(ValueError, match=r"one score per image"):
        activation_gain(lambda x: x.mean(dim=1), torch.rand(2, 1, 4, 4), torch.rand(2, 1, 4, 4))
    with pytest.raises(TypeError, match=r"must return a torch.Tensor"):
        activation_gain(lambda x: 1.0, torch.rand(1, 1, 4, 4), torch.rand(1, 1, 4, 4))
    with pytest.raises(ValueError, match=r"eps must be"):
        activation_gain(_mean_score, torch.rand(1, 1, 4, 4), torch.rand(1, 1, 4, 4), eps=0)


def test_robustness_invariant_score_gives_one():
    flat = torch.stack([torch.full((3, 16, 12), v) for v in (0.2, 0.9)])  # any warp keeps these
    r = robustness(_mean_score, flat, n=4)
    assert r.shape == (2,)
    assert r.tolist() == pytest.approx([1.0, 1.0], abs=1e-6)
    x = torch.rand(2, 3, 32, 32, generator=_gen())
    # identity perturbation: exactly the image
    r = robustness(_mean_score, x, n=2, max_shift=0, degrees=0, scales=(1, 1))
    assert r.tolist() == pytest.approx([1.0, 1.0], abs=1e-5)
    # global mean of noise barely moves under small warps (reflection padding keeps statistics)
    assert robustness(_mean_score, x, n=4).tolist() == pytest.approx([1.0, 1.0], abs=0.03)


def test_robustness_position_sensitive_score_drops_and_is_seeded():
    x = torch.zeros(1, 1, 33, 33)
    x[..., 15:18, 15:18] = 1.0  # a small dot at the centre

    def centre(images):
        return images[:, 0, 16, 16]

    r = robustness(centre, x, n=16, max_shift=8, generator=_gen(3))
    assert r.item() < 0.3
    same = robustness(centre, x, n=16, max_shift=8, generator=_gen(3))
    assert same.item() == r.item()
    assert robustness(centre, x, n=16, max_shift=8, generator=_gen(4)).item() != r.item()
    torch.manual_seed(5)  # generator=None: torch's default generator
    first = robustness(centre, x, n=16).item()
    torch.manual_seed(5)
    assert robustness(centre, x, n=16).item() == first
    with pytest.raises(ValueError, match=r"n must be an int >= 1, got 0"):
        robustness(centre, x, n=0)
    with pytest.raises(ValueError, match=r"scales must satisfy low <= high, got \(1.5, 0.5\)"):
        robustness(centre, x, scales=(1.5, 0.5))
    with pytest.raises(TypeError, match=r"max_rot_deg"):
        robustness(centre, x, max_rot_deg=3)  # one set of names: degrees, scales


class _ColourNet(nn.Module):
    """Tiny hand-set classifier on the mean colour: classes red, green, blue, dark, light, gray."""

    def __init__(self, expect_size: tuple[int, int] | None = None):
        super().__init__()
        self.fc = nn.Linear(3, 6)
        self.drop = nn.Dropout(0.5)
        w = torch.tensor(
            [[2, -1, -1], [-1, 2, -1], [-1, -1, 2], [-1, -1, -1], [1, 1, 1], [0, 0, 0]]
        ).float()
        with torch.no_grad():
            self.fc.weight.copy_(w)
            self.fc.bias.copy_(torch.tensor([0.03, 0.02, 0.01, 1.5, -1.5, -0.1]))  # no ties
        self.expect_size = expect_size
        self.seen_training: list[bool] = []
        self.seen_batch: list[int] = []

    def forward(self, x):
        self.seen_training.append(self.training)
        self.seen_batch.append(len(x))
        if self.expect_size is not None and tuple(x.shape[-2:]) != self.expect_size:
            raise RuntimeError(f"expected {self.expect_size}, got {tuple(x.shape[-2:])}")
        return self.drop(self.fc(x.mean(dim=(2, 3))))


def _colour_images() -> tuple[torch.Tensor, torch.Tensor]:
    colours = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (0, 0, 0), (1, 1, 1)]
    images = torch.stack([torch.tensor(c).float()[:, None, None].expand(3, 8, 8) for c in colours])
    return images, torch.arange(5)


def test_transferability_source_model_as_judge_gives_one():
    images, targets = _colour_images()
    net = _ColourNet()
    with torch.no_grad():
        assert net.eval()(images).argmax(1).tolist() == targets.tolist()  # classified correctly
    net.train()
    net.seen_training.clear()
    net.seen_batch.clear()
    out = transferability(images, targets, net, batch_size=2)
    assert out == {"judge": {"top1": 1.0, "top5": 1.0}}
    assert net.seen_training == [False, False, False]  # eval during the run, dropout off
    assert net.seen_batch == [2, 2, 1]
    assert net.training and net.drop.training  # mode restored
    assert torch.is_grad_enabled()


def test_transferability_wrong_targets_dict_of_judges_and_sizes():
    images, targets = _colour_images()
    wrong = (targets + 1) % 5  # red -> "green" etc.: never top-1
    judges = {"plain": _ColourNet(), "small": _ColourNet(expect_size=(4, 4))}
    out = transferability(images, wrong, judges, topk=(1, 2, 6), size={"small": 4})
    assert set(out) == {"plain", "small"}
    for name in out:
        assert out[name]["top1"] == 0.0
        assert out[name]["top6"] == 1.0  # all 6 classes
        assert out[name]["top2"] == pytest.approx(0.4)  # blue's 2nd is "dark", light's "red"
    assert out["plain"] == out["small"]
    # a single int target applies to every image: only the red one is "red"
    assert transferability(images, 0, _ColourNet(), topk=(1,))["judge"]["top1"] == 0.2
    # the size reaches the judge, and the mode is restored after an exception
    judge = _ColourNet(expect_size=(4, 4)).train()
    with pytest.raises(RuntimeError, match=r"expected"):
        transferability(images, targets, judge)
    assert judge.training


def test_transferability_errors():
    images, targets = _colour_images()
    net = _ColourNet()
    with pytest.raises(ValueError, match=r"topk 7 exceeds the 6 classes"):
        transferability(images, targets, net, topk=(1, 7))
    with pytest.raises(ValueError, match=r"one class per image \(5\), got 3"):
        transferability(images, targets[:3], net)
    with pytest.raises(IndexError, match=r"targets must be in \[0, 6\)"):
        transferability(images, targets + 3, net)
    with pytest.raises(TypeError, match=r"integer class indices"):
        transferability(images, targets.float(), net)
    with pytest.raises(ValueError, match=r"size names judges that are not given"):
        transferability(images, targets, {"a": net}, size={"b": 4})
    with pytest.raises(ValueError, match=r"must return logits"):
        transferability(images, targets, nn.Identity())


# ---------------------------------------------------------------------------- summary


def test_summary_matches_the_functions():
    x = torch.rand(3, 3, 32, 32, generator=_gen())
    s = summary(x)
    assert list(s) == [
        "spectrum_slope",
        "high_frequency_energy",
        "total_variation",
        "colorfulness",
        "saturated_fraction",
    ]
    assert all(isinstance(v, float) for v in s.values())
    assert s["total_variation"] == pytest.approx(total_variation(x).mean().item())
    assert s["colorfulness"] == pytest.approx(colorfulness(x).mean().item())
    per = summary(x, per_image=True)
    assert per["spectrum_slope"] == pytest.approx(spectrum_slope(x).tolist())
    assert all(isinstance(v, list) and len(v) == 3 for v in per.values())
    gray = summary(torch.rand(2, 16, 16, generator=_gen()))  # a single 2-channel image
    assert "colorfulness" not in gray


def test_power_spectrum_peaks_at_a_gratings_frequency():
    from midnite.metrics import power_spectrum

    x = torch.arange(32.0).expand(32, 32)
    grating = (0.5 + 0.4 * torch.cos(2 * math.pi * x / 8)).expand(1, 3, 32, 32)
    power = power_spectrum(grating)
    assert power.shape == (1, 32, 32)
    peak = divmod(int(power[0].argmax()), 32)
    assert peak in ((0, 4), (0, 28))  # 32 px / period 8 = 4 cycles, either sign
    flat = power_spectrum(torch.full((2, 3, 16, 16), 0.3))
    assert flat.shape == (2, 16, 16) and float(flat.abs().max()) == 0.0


# ---------------------------------------------------------------------------- naturalness


@pytest.mark.parametrize("a", [0.5, 1.0, 1.5])
def test_naturalness_slope_of_power_law_noise_against_a_known_reference(a):
    images = _power_law_noise(4, 3, 128, seed=1, a=a)  # power ∝ 1/f^(2a): slope -2a
    ref = _power_law_noise(4, 3, 128, seed=2, a=1.0)  # slope -2
    nat = naturalness(images, reference=ref)
    assert nat.spectrum_slope == pytest.approx(-2 * a, abs=0.1)
    assert nat.reference_spectrum_slope == pytest.approx(-2.0, abs=0.1)
    assert nat.slope_difference == pytest.approx(-2 * (a - 1), abs=0.15)
    # flatter spectrum: more energy above half Nyquist and more variation than the reference
    assert (nat.high_frequency_ratio > 1.5) == (a < 1)
    assert (nat.total_variation_ratio > 1.05) == (a < 1)
    assert nat.high_frequency_energy == pytest.approx(
        high_frequency_energy(images.double()).quantile(0.5).item()
    )
    assert nat.total_variation == pytest.approx(
        total_variation(images.double()).quantile(0.5).item()
    )
    assert nat.reference == "given reference: 4 image(s) at 128x128 px"


def test_naturalness_of_the_reference_itself_is_one():
    ref = _power_law_noise(3, 3, 64, seed=3)
    nat = naturalness(ref, reference=ref)
    assert nat.slope_difference == 0.0
    assert nat.high_frequency_ratio == 1.0 and nat.total_variation_ratio == 1.0
    assert nat.meets() and nat.meets(0.0, 1.0)
    one = naturalness(ref[0], reference=ref[:1])  # a single (C, H, W) image is a batch of one
    assert one.high_frequency_ratio == 1.0


def test_naturalness_shipped_reference_equals_the_crops_it_was_made_from():
    pytest.importorskip("skimage")
    from midnite.photos import reference_crops

    for side in (64, 224):
        crops = reference_crops(side)
        shipped = naturalness(crops)  # the data file
        fresh = naturalness(crops, reference=crops)  # computed now
        assert shipped.reference == f"shipped photos at {side}x{side} px"
        for key in ("spectrum_slope", "high_frequency_energy", "total_variation"):
            assert getattr(shipped, f"reference_{key}") == pytest.approx(
                getattr(fresh, f"reference_{key}"), rel=1e-4
            ), (side, key)
        assert shipped.slope_difference == pytest.approx(0.0, abs=1e-4)
        assert shipped.high_frequency_ratio == pytest.approx(1.0, rel=1e-4)
        assert shipped.total_variation_ratio == pytest.approx(1.0, rel=1e-4)


def test_naturalness_reference_holds_five_photos_in_25_crops_with_licences():
    import json
    from importlib import resources

    from midnite import photos

    data = json.loads((resources.files("midnite") / "data" / "photo_stats.json").read_text())
    assert len(photos.REFERENCE_PHOTOS) >= 5 and photos.REFERENCE_CROPS == 5
    assert data["images"] == len(photos.REFERENCE_PHOTOS) * photos.REFERENCE_CROPS >= 25
    assert data["photos"] == {n: lic for n, (_, lic) in photos.REFERENCE_PHOTOS.items()}
    assert all(("public domain" in lic) or ("CC0" in lic) for lic in data["photos"].values())
    for stats in data["sizes"].values():  # one value per photo at every side
        assert all(len(v) == len(photos.REFERENCE_PHOTOS) for v in stats["per_photo"].values())
    pytest.importorskip("skimage")
    assert photos.reference_crops(48).shape == (data["images"], 3, 48, 48)


def test_every_reference_and_held_out_photo_lies_within_the_photo_band():
    pytest.importorskip("skimage")
    from midnite import photos

    crops = photos.reference_crops(metrics.MODEL_SIZE)
    per_photo = crops.reshape(
        len(photos.REFERENCE_PHOTOS), photos.REFERENCE_CROPS, *crops.shape[1:]
    )
    names, held = photos.held_out_photos(metrics.MODEL_SIZE)
    assert {"motorcycle_left.png", "motorcycle_right.png"} <= set(names)
    pairs = [*zip(photos.REFERENCE_PHOTOS, per_photo, strict=True)]
    for name, images in [*pairs, *zip(names, held[:, None], strict=True)]:
        assert naturalness(images).within_photos(), name
    # not photographs: white noise, and a photo blurred to mush
    assert not naturalness(torch.rand(2, 3, 224, 224, generator=_gen())).within_photos()
    blurred = F.interpolate(F.avg_pool2d(crops[:5], 8), size=224, mode="bilinear")
    assert not naturalness(blurred).within_photos()


def test_naturalness_at_the_model_size_is_robust_to_the_canvas():
    pytest.importorskip("skimage")
    from midnite import photos

    big = photos.reference_crops(288)  # the photos as a 288 px canvas
    at_model = naturalness(big, size=metrics.MODEL_SIZE)  # shrunk to 224 px, as a model sees it
    assert at_model.reference == "shipped photos at 224x224 px"
    assert abs(at_model.slope_difference) < 0.1  # shrunk twice, it still reads as the photos
    assert 0.85 < at_model.high_frequency_ratio < 1.15
    assert 0.85 < at_model.total_variation_ratio < 1.15
    # a given reference of another size is resized too, so they compare
    nat = naturalness(big, reference=photos.reference_crops(64), size=metrics.MODEL_SIZE)
    assert nat.reference == "given reference: 25 image(s) at 224x224 px"
    with pytest.raises(ValueError, match=r"size must be an int >= 1"):
        naturalness(big, size=0)


def test_at_size_keeps_aspect_and_range_and_checks_size():
    x = torch.rand(2, 3, 100, 400, generator=_gen())
    y = metrics.at_size(x, 100)
    assert y.shape == (2, 3, 50, 200) and float(y.min()) >= 0 and float(y.max()) <= 1
    assert metrics.at_size(x[0], 200).shape == (1, 3, 100, 400)  # already that size
    assert torch.equal(metrics.at_size(x, 200), x)
    for bad in (0, 2.5, True):
        with pytest.raises((TypeError, ValueError), match=r"size must be an int >= 1"):
            metrics.at_size(x, bad)


def test_naturalness_default_needs_no_scikit_image_and_takes_the_nearest_size(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "skimage", None)  # import fails
    noise = torch.rand(2, 3, 230, 230, generator=_gen())
    nat = naturalness(noise)
    assert nat.reference == "shipped photos at 224x224 px"
    # white noise: flat spectrum, far more clutter than photos (about -2.8, 0.025, 0.053)
    assert nat.slope_difference > 2.3
    assert nat.high_frequency_ratio > 20 and nat.total_variation_ratio > 8
    assert not nat.meets()
    assert naturalness(torch.rand(1, 3, 200, 320)).reference == "shipped photos at 256x256 px"
    big = naturalness(torch.rand(1, 3, 400, 400))
    assert big.reference == (
        "shipped photos at 288x288 px (the largest shipped; the images are 400x400 px)"
    )
    with pytest.raises(ValueError, match=r"starts at 32 px; images of 16x16 px are smaller"):
        naturalness(torch.rand(1, 3, 16, 16))


def test_naturalness_photo_statistics_depend_on_size_as_documented():
    stats = metrics._shipped_stats()
    assert min(stats) == 32 and max(stats) == 288 and {224, 240, 260} <= set(stats)
    # smaller photos: more variation per pixel; the slope is near -2.8 from 128 px up
    assert stats[32][2] > stats[128][2] > stats[288][2]
    assert all(-3.0 < stats[s][0] < -2.6 for s in stats if s >= 128)


def test_naturalness_missing_data_file_says_how_to_make_it(monkeypatch):
    monkeypatch.setattr(metrics, "_PHOTO_STATS", "no_such_stats.json")
    metrics._shipped_stats.cache_clear()
    try:
        with pytest.raises(FileNotFoundError, match=r"scripts/make_photo_stats.py"):
            naturalness(torch.rand(1, 3, 32, 32))
    finally:
        monkeypatch.undo()
        metrics._shipped_stats.cache_clear()


def test_naturalness_meets_and_to_dict():
    nat = Naturalness(-2.5, 0.05, 0.1, -2.8, 0.025, 0.05, reference="r")
    assert nat.slope_difference == pytest.approx(0.3)
    assert nat.high_frequency_ratio == pytest.approx(2.0) and nat.total_variation_ratio == 2.0
    assert nat.meets()  # the bar is inclusive
    assert not nat.meets(max_slope_difference=0.25) and not nat.meets(max_ratio=1.9)
    smooth = Naturalness(-3.2, 0.01, 0.02, -2.8, 0.025, 0.05, reference="r")
    assert not smooth.meets() and smooth.meets(max_slope_difference=0.5)  # ratios < 1 pass
    d = nat.to_dict()
    assert d["slope_difference"] == pytest.approx(0.3) and d["reference"] == "r"
    assert set(d) >= {"high_frequency_ratio", "total_variation_ratio", "reference_spectrum_slope"}
    with pytest.raises(ValueError, match=r"max_ratio must be"):
        nat.meets(max_ratio=0)


def test_naturalness_bad_reference():
    x = torch.rand(2, 3, 32, 32, generator=_gen())
    with pytest.raises(ValueError, match=r"images' size 32x32 .* got 48x48"):
        naturalness(x, reference=torch.rand(1, 3, 48, 48))
    with pytest.raises(ValueError, match=r"total variation > 0.*got 0 and 0"):
        naturalness(x, reference=torch.full((1, 3, 32, 32), 0.5))
    with pytest.raises(TypeError, match=r"reference must be a torch.Tensor, got list"):
        naturalness(x, reference=[x])
    with pytest.raises(ValueError, match=r">= 4"):
        naturalness(torch.rand(1, 3, 3, 32), reference=torch.rand(1, 3, 3, 32))


def test_shipped_photo_stats_are_what_the_script_writes_now():
    pytest.importorskip("skimage")
    import importlib.util
    import json
    from importlib import resources
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "make_photo_stats.py"
    spec = importlib.util.spec_from_file_location("make_photo_stats", path)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    shipped = json.loads((resources.files("midnite") / "data" / "photo_stats.json").read_text())
    assert list(shipped["sizes"]) == [str(s) for s in script.SIDES]
    assert shipped["cutoff"] == metrics.NATURALNESS_CUTOFF
    fresh, stored = script.side_stats(64), shipped["sizes"]["64"]
    for key in ("spectrum_slope", "high_frequency_energy", "total_variation"):
        assert stored[key] == pytest.approx(fresh[key], abs=1e-5)
        assert stored["per_photo"][key] == pytest.approx(fresh["per_photo"][key], abs=1e-5)
