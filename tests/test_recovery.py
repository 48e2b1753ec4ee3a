"""The default render recovers the pattern planted in midnite.known_answer's net."""

from __future__ import annotations

import pytest
import torch

import midnite
from midnite import objectives as obj
from midnite.known_answer import grating_net, planted_pattern, recovery_score

# recovery_score is the share of the image's brightness energy near the planted grating's
# frequency: ~0.02 for noise (chance: the area of that neighbourhood), ~1 for the pattern itself,
# ~0.75 for plain pixel ascent without any robustness transform. The default render, whose
# jitter, scaling and rotation blur the frequency a little, scores 0.35-0.37 over seeds 0-2 at
# 256 steps; 0.2 is ten times chance and fails for an image that is not a grating of that period.
THRESHOLD = 0.2

pytestmark = pytest.mark.slow  # 256 render steps: several seconds on 2 CPU cores


def test_default_render_recovers_planted_grating():
    net = grating_net()
    result = midnite.render(net, obj.channel("relu", 0), size=64, progress=False, seed=0)
    pattern = planted_pattern(64, 64)
    assert recovery_score(result.images[0], pattern) > THRESHOLD
    noise = torch.rand((3, 64, 64), generator=torch.Generator().manual_seed(0))
    assert recovery_score(noise, pattern) < THRESHOLD / 5
    orthogonal = planted_pattern(64, 64, orientation_deg=135.0)
    assert recovery_score(orthogonal, pattern) < THRESHOLD / 5
