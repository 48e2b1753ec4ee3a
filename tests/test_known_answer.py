"""Tests for midnite.known_answer: the planted grating detector and its recovery score."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from midnite.known_answer import CHANNELS, grating_net, planted_pattern, recovery_score


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_grating_net_structure_and_frozen():
    net = grating_net()
    names = [n for n, _ in net.named_modules() if n]
    assert names == ["conv", "relu", "pool", "flatten"]
    assert isinstance(net.conv, nn.Conv2d)
    assert net.conv.in_channels == 3 and net.conv.out_channels == len(CHANNELS) == 6
    assert net.conv.kernel_size == (13, 13)  # 2 * ceil(6) + 1
    assert not net.training
    assert not any(p.requires_grad for p in net.parameters())
    w0 = net.conv.weight[0]
    assert w0.sum().abs().item() < 1e-5  # zero mean: blind to flat brightness
    assert w0.norm().item() == pytest.approx(1 / math.sqrt(3), rel=1e-4)  # unit norm over channels
    torch.testing.assert_close(w0[0], w0[1])  # the same on every colour channel
    assert net(torch.rand(2, 3, 32, 32, generator=_gen())).shape == (2, 6)
    assert grating_net(channels=1, kernel_size=9).conv.weight.shape == (6, 1, 9, 9)


def test_output_zero_is_channel_zero_mean_activation():
    net = grating_net()
    x = torch.rand(2, 3, 40, 40, generator=_gen())
    torch.testing.assert_close(net(x)[:, 0], net.relu(net.conv(x))[:, 0].mean(dim=(1, 2)))


def test_planted_pattern_values_and_orientation():
    p = planted_pattern(8, 12, orientation_deg=0.0, period=4.0, channels=2)
    assert p.shape == (2, 8, 12) and p.dtype == torch.float32
    # 0 deg: vertical stripes, 0.5 + 0.5 cos(2π x / 4) along columns: 1, 0.5, 0, 0.5, ...
    torch.testing.assert_close(p[0, 3, :4], torch.tensor([1.0, 0.5, 0.0, 0.5]), atol=1e-6, rtol=0)
    torch.testing.assert_close(p[:, :, 5], p[:, :1, 5].expand(2, 8))  # constant down a column
    h = planted_pattern(8, 8, orientation_deg=90.0, period=4.0)
    torch.testing.assert_close(h[:, :, 0], h[:, :, 3])  # 90 deg: horizontal stripes
    assert p.min() >= 0 and p.max() <= 1
    shifted = planted_pattern(8, 12, 0.0, 4.0, channels=2, phase=math.pi / 2)
    torch.testing.assert_close(
        shifted[0, 0, :4], torch.tensor([0.5, 0.0, 0.5, 1.0]), atol=1e-6, rtol=0
    )


def test_planted_pattern_drives_channel_zero_most():
    net = grating_net(orientation_deg=30.0, period=5.0)
    out = net(planted_pattern(48, 48, orientation_deg=30.0, period=5.0)[None])[0]
    assert out.argmax().item() == 0
    assert out[0] > 2 * out[1:].max()
    # channel 0 prefers its pattern to the orthogonal one, to another period and to noise
    ortho = net(planted_pattern(48, 48, orientation_deg=120.0, period=5.0)[None])[0, 0]
    coarse = net(planted_pattern(48, 48, orientation_deg=30.0, period=12.0)[None])[0, 0]
    noise = net(torch.rand(1, 3, 48, 48, generator=_gen()))[0, 0]
    assert out[0] > 5 * max(ortho, coarse, noise)
    # and its response hardly depends on the phase
    for phase in (1.0, 2.5):
        shifted = net(planted_pattern(48, 48, 30.0, 5.0, phase=phase)[None])[0, 0]
        assert shifted.item() == pytest.approx(out[0].item(), rel=0.05)


def test_recovery_score_known_cases():
    pat = planted_pattern(64, 64)
    assert recovery_score(pat, pat).item() > 0.99
    assert recovery_score(planted_pattern(64, 64, phase=2.0), pat).item() > 0.99
    assert recovery_score(torch.roll(pat, (5, 3), dims=(1, 2)), pat).item() > 0.99
    assert recovery_score(0.2 + 0.5 * pat[:1], pat).item() > 0.99  # gray, lower contrast
    noise = recovery_score(torch.rand(3, 64, 64, generator=_gen()), pat).item()
    chance = 2 * math.pi * 3.0**2 / 64**2  # area share of the neighbourhood
    assert noise < 0.05 and noise == pytest.approx(chance, rel=0.5)
    assert recovery_score(planted_pattern(64, 64, orientation_deg=135.0), pat).item() < 1e-3
    assert recovery_score(planted_pattern(64, 64, period=12.0), pat).item() < 0.05
    assert recovery_score(torch.full((3, 64, 64), 0.5), pat).item() == 0.0


def test_recovery_score_errors():
    pat = planted_pattern(16, 16)
    with pytest.raises(ValueError, match=r"same height and width.*\(16, 16\) and \(16, 8\)"):
        recovery_score(pat, pat[..., :8])
    with pytest.raises(ValueError, match=r"must not be constant"):
        recovery_score(pat, torch.ones(3, 16, 16))
    with pytest.raises(ValueError, match=r"got shape \(2, 3, 16, 16\)"):
        recovery_score(pat.expand(2, 3, 16, 16), pat)
    with pytest.raises(ValueError, match=r"radius must be > 0"):
        recovery_score(pat, pat, radius=0)
    with pytest.raises(ValueError, match=r"period must be a finite number >= 2"):
        grating_net(period=1.0)
    with pytest.raises(ValueError, match=r"channels must be an int >= 1, got 0"):
        planted_pattern(8, 8, channels=0)
    with pytest.raises(ValueError, match=r"height must be an int >= 1"):
        planted_pattern(0, 8)


def test_pixel_gradient_ascent_recovers_the_planted_grating():
    net = grating_net()
    pat = planted_pattern(64, 64)
    gen = torch.Generator().manual_seed(0)
    start = (0.5 + 0.1 * torch.randn(1, 3, 64, 64, generator=gen)).clamp(0, 1)
    img = start.clone().requires_grad_(True)
    opt = torch.optim.Adam([img], lr=0.05)
    for _ in range(100):
        opt.zero_grad()
        loss = -net.relu(net.conv(img))[:, 0].mean()
        loss.backward()
        opt.step()
        with torch.no_grad():
            img.clamp_(0, 1)
    result = img.detach()
    assert net(result)[0, 0] > 5 * net(start)[0, 0]
    noise = recovery_score(start, pat).item()
    score = recovery_score(result, pat).item()
    assert noise < 0.05
    assert score > 0.5 > 10 * noise
