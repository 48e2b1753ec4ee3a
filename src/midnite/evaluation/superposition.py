"""A planted superposition: K known concepts carried by fewer than K channels.

``superposition_net(concepts, channels)`` is a conv net whose layer ``mix`` writes each of K
planted patterns (8x8 colour textures, ``concept_pattern``) into the channels as a sparse,
non-negative (or, ``signed=True``, signed) unit direction (``planted_directions``); the
directions share channels, so every channel responds to several concepts. ``superposition_images``
draws images of those patterns with their labels, and ``concept_recovery`` scores how much of a
picture is one planted pattern. Nothing is written.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from midnite.engine.checks import check_bool, check_int, check_positive_int, check_real
from midnite.errors import UsageError

__all__ = [
    "PATCH",
    "concept_pattern",
    "concept_recovery",
    "planted_directions",
    "superposition_images",
    "superposition_net",
]

PATCH = 8  # the side of a pattern (and the stride of the detector) in pixels
_THRESHOLD = 0.5  # detector threshold, as a fraction of a full-contrast pattern's response
_PATTERN_SEED = 1234


def _check(concepts: object, channels: object) -> tuple[int, int]:
    k = check_positive_int("concepts", concepts)
    c = check_positive_int("channels", channels)
    if not 2 <= c < k <= c * (c - 1) // 2:
        raise UsageError(
            f"a superposition needs 2 <= channels < concepts <= channels*(channels-1)/2 "
            f"(each concept on its own pair of channels), got concepts={k}, channels={c}"
        )
    return k, c


def _templates(concepts: int) -> Tensor:
    """``(K, 3, 8, 8)`` signs +-1: the planted textures (fixed, independent of any seed)."""
    gen = torch.Generator().manual_seed(_PATTERN_SEED)
    return torch.randint(0, 2, (concepts, 3, PATCH, PATCH), generator=gen).double() * 2 - 1


def concept_pattern(k: int, concepts: int = 12) -> Tensor:
    """Planted pattern ``k`` as an image in [0, 1]. Shape: ``(3, 8, 8)``."""
    k = check_int("k", k, 0)
    if k >= concepts:
        raise UsageError(f"pattern k must be in 0..{concepts - 1}, got {k}")
    return (0.5 + 0.5 * _templates(concepts)[k]).float()


def planted_directions(concepts: int = 12, channels: int = 6, signed: bool = False) -> Tensor:
    """The ``(K, C)`` unit directions the concepts take in ``mix``: each on two channels,
    no two on the same pair, equal weights (random signs when ``signed``)."""
    k, c = _check(concepts, channels)
    gen = torch.Generator().manual_seed(_PATTERN_SEED + 1)
    pairs = [(i, j) for i in range(c) for j in range(i + 1, c)]
    order = torch.randperm(len(pairs), generator=gen)[:k].tolist()
    d = torch.zeros(k, c, dtype=torch.float64)
    for row, p in enumerate(order):
        w = torch.ones(2, dtype=torch.float64)  # equal: a channel's concepts tie in it
        if signed:
            w = w * (torch.randint(0, 2, (2,), generator=gen) * 2 - 1)
        d[row, list(pairs[p])] = w
    return (d / d.norm(dim=1, keepdim=True)).float()


def _detector(concepts: int) -> nn.Conv2d:
    """Conv 3 -> K, 8x8 stride 8: ``(x - 0.5) . t_k / |t_k|`` minus a threshold."""
    t = _templates(concepts)
    w = t / t.flatten(1).norm(dim=1)[:, None, None, None]
    full = 0.5 * t.flatten(1).norm(dim=1)  # the response to a full-contrast pattern
    conv = nn.Conv2d(3, concepts, PATCH, stride=PATCH)
    with torch.no_grad():
        conv.weight.copy_(w)
        assert conv.bias is not None  # made with a bias above
        conv.bias.copy_(-0.5 * w.flatten(1).sum(1) - _THRESHOLD * full)
    return conv


def superposition_net(concepts: int = 12, channels: int = 6, signed: bool = False) -> nn.Sequential:
    """A net whose layer ``mix`` (C channels on an 8-px grid) carries K planted concepts.

    ``detect`` (K channels) fires where its pattern lies (a thresholded template match, so
    once per 8x8 cell, about 0 elsewhere); ``mix`` writes concept k as ``planted_directions()[k]``
    times that response; ``head`` gives class k the logit ``direction_k . max-pooled mix``.
    Input: ``(B, 3, H, W)`` in [0, 1], H and W multiples of 8.
    """
    k, c = _check(concepts, channels)
    check_bool("signed", signed)
    d = planted_directions(k, c, signed)
    net = nn.Sequential()
    net.add_module("detect", _detector(k))
    mix = nn.Conv2d(k, c, 1, bias=False)
    head = nn.Linear(c, k, bias=False)
    # a softplus sharp enough to be a ReLU in effect (1e-15 off a pattern), whose gradient
    # never vanishes, so the receptive field probe of top examples sees the 8x8 cells
    net.add_module("act", nn.Softplus(beta=10.0))
    net.add_module("mix", mix)
    net.add_module("pool", nn.AdaptiveMaxPool2d(1))
    net.add_module("flat", nn.Flatten())
    net.add_module("head", head)
    with torch.no_grad():
        mix.weight.copy_(d.T[:, :, None, None])
        head.weight.copy_(d)
    return net.eval()


def superposition_images(
    n: int, concepts: int = 12, grid: int = 4, density: float = 0.5, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """``n`` images of ``grid x grid`` cells, each blank (grey) or a planted pattern.

    Each cell holds a pattern with probability ``density``, chosen uniformly, at a contrast
    drawn in [0.6, 1] (so a channel's strongest responses come from several concepts).

    Shape:
        images ``(n, 3, 8 * grid, 8 * grid)`` in [0, 1]; labels ``(n, grid, grid)`` int64,
        the pattern of each cell, -1 for blank.
    """
    n = check_positive_int("n", n)
    grid = check_positive_int("grid", grid)
    density = check_real("density", density, ge=0.0)
    if density > 1:
        raise UsageError(f"density must be in [0, 1], got {density}")
    gen = torch.Generator().manual_seed(check_int("seed", seed, 0))
    t = _templates(check_positive_int("concepts", concepts)).float()
    labels = torch.randint(0, concepts, (n, grid, grid), generator=gen)
    labels[torch.rand(n, grid, grid, generator=gen) >= density] = -1
    contrast = 0.6 + 0.4 * torch.rand(n, grid, grid, generator=gen)
    cells = t[labels.clamp(min=0)] * (contrast * (labels >= 0))[..., None, None, None]
    # (n, g, g, 3, 8, 8) -> (n, 3, g*8, g*8)
    images = 0.5 + 0.5 * cells.permute(0, 3, 1, 4, 2, 5).reshape(n, 3, grid * PATCH, grid * PATCH)
    return images, labels


def concept_recovery(image: Tensor, k: int, concepts: int = 12) -> Tensor:
    """The share of pattern ``k`` in the planted detectors' response to ``image``: 1 when the
    picture holds pattern k and no other, about 1/K for noise. Input ``(3, H, W)`` or
    ``(B, 3, H, W)``; output a scalar or ``(B,)``."""
    if not isinstance(image, Tensor) or image.dim() not in (3, 4) or image.shape[-3] != 3:
        shape = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise UsageError(f"image must be (3, H, W) or (B, 3, H, W), got {shape}")
    k = check_int("k", k, 0)
    if k >= concepts:
        raise UsageError(f"pattern k must be in 0..{concepts - 1}, got {k}")
    x = image if image.dim() == 4 else image[None]
    detect = _detector(check_positive_int("concepts", concepts))
    # every 8-px alignment: a render need not sit on the model's grid to show the pattern
    with torch.no_grad():
        share = []
        for dy in range(PATCH):
            for dx in range(PATCH):
                r = torch.relu(detect(x[..., dy:, dx:].float())).sum((2, 3))
                share.append(r)
        total = torch.stack(share).sum(0)
    out = total[:, k] / total.sum(1).clamp_min(1e-12)
    return out if image.dim() == 4 else out[0]
