"""Known-answer models: tiny nets with hand-set weights whose ideal input is known.

``grating_net()`` (a conv net) and ``grating_vit()`` (a vision transformer in timm's layout)
each have one planted grating detector whose ideal input is known (``planted_pattern``,
``vit_pattern``), so a feature visualization can be scored against ground truth with
``recovery_score``.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from midnite.engine.checks import check_bool, check_int, check_positive_int, check_real, check_size
from midnite.evaluation.measures import power_spectrum

__all__ = [
    "TinyViT",
    "grating_net",
    "grating_vit",
    "planted_pattern",
    "recovery_score",
    "vit_pattern",
]

#: Names of the ``grating_net`` channels, in order; channel 0 is the planted detector.
CHANNELS = (
    "target",  # Gabor at (orientation, period): the planted detector
    "orthogonal",  # Gabor at orientation + 90 deg, same period
    "diagonal",  # Gabor at orientation + 45 deg, same period
    "coarse",  # Gabor at orientation, twice the period
    "red_green",  # colour-opponent blob (R - G); a luminance blob (center-surround) if C < 3
    "center_surround",  # difference of Gaussians on luminance
)


def _check_grating_args(orientation_deg: float, period: float, channels: int) -> None:
    check_real("orientation_deg", orientation_deg)
    check_real("period", period, ge=2.0)  # pixels; 2 is the Nyquist limit
    check_positive_int("channels", channels)


def _wave(
    height: int, width: int, orientation_deg: float, period: float, phase: float, centered: bool
) -> Tensor:
    """cos(2π (x cosθ + y sinθ) / period + phase) on a (height, width) grid, float64."""
    y = torch.arange(height, dtype=torch.float64)
    x = torch.arange(width, dtype=torch.float64)
    if centered:
        y, x = y - (height - 1) / 2, x - (width - 1) / 2
    theta = math.radians(orientation_deg)
    proj = x[None, :] * math.cos(theta) + y[:, None] * math.sin(theta)
    return torch.cos(2 * math.pi * proj / period + phase)


def _gaussian(size: int, sigma: float) -> Tensor:
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    return g[:, None] * g[None, :]


def _gabor(size: int, orientation_deg: float, period: float) -> Tensor:
    """Zero-mean, unit-norm even Gabor kernel (size, size), float64."""
    env = _gaussian(size, 0.6 * period)
    k = _wave(size, size, orientation_deg, period, 0.0, centered=True) * env
    k = k - env * (k.sum() / env.sum())  # remove the DC response, keep the envelope's shape
    return k / k.norm()


def grating_net(
    orientation_deg: float = 45.0,
    period: float = 6.0,
    channels: int = 3,
    kernel_size: int | None = None,
) -> nn.Sequential:
    """A conv net whose ``conv`` channel 0 is a hand-set detector of one sinusoidal grating.

    Layers (``named_modules`` names): ``conv`` (Conv2d, ``channels`` -> 6, no padding, zero bias),
    ``relu``, ``pool`` (global average), ``flatten``. Output channel / logit ``k`` is the mean over
    positions of ``relu`` channel ``k``, so output 0 is exactly "channel 0's mean activation".

    Planted detector: ``conv`` (and ``relu``) channel 0, an even, zero-mean, unit-norm Gabor with
    the given orientation and period, the same on every colour channel (divided by ``channels``),
    i.e. a luminance grating detector. ``planted_pattern(h, w, orientation_deg, period)`` (any
    phase) is the stimulus it is tuned to: the other channels answer it weakly, and pixel-space
    gradient ascent on it within [0, 1] finds the same grating, squared off. Distractor
    channels 1-5 (see ``CHANNELS``): Gabors at +90 deg, +45 deg and twice the period, a red-green
    colour-opponent blob (a luminance blob when ``channels < 3``) and a center-surround detector.

    Orientation: the stripes' normal (the wave vector) is at ``orientation_deg`` from the x axis
    (image columns), y pointing down (image rows): 0 deg gives vertical stripes, 90 horizontal.

    ``kernel_size`` defaults to ``2 * ceil(period) + 1`` (two periods). The model is in eval mode,
    float32 on the CPU, and its parameters do not require grad.
    """
    _check_grating_args(orientation_deg, period, channels)
    if kernel_size is None:
        kernel_size = 2 * math.ceil(period) + 1
    if not isinstance(kernel_size, int) or isinstance(kernel_size, bool) or kernel_size < 3:
        raise ValueError(f"kernel_size must be an int >= 3, got {kernel_size!r}")
    size = kernel_size
    lum = [
        _gabor(size, orientation_deg, period),
        _gabor(size, orientation_deg + 90.0, period),
        _gabor(size, orientation_deg + 45.0, period),
        _gabor(size, orientation_deg, 2.0 * period),
    ]
    center = _gaussian(size, period / 4)
    surround = _gaussian(size, period / 2)
    dog = center / center.sum() - surround / surround.sum()
    dog = dog / dog.norm()
    weight = torch.zeros(len(CHANNELS), channels, size, size, dtype=torch.float64)
    for k, kern in enumerate(lum):
        weight[k] = kern / channels
    blob = center / center.norm()
    if channels >= 3:
        weight[4, 0], weight[4, 1] = blob / 2, -blob / 2
    else:
        weight[4] = -dog / channels  # off-center luminance blob
    weight[5] = dog / channels

    conv = nn.Conv2d(channels, len(CHANNELS), size, bias=True)
    with torch.no_grad():
        conv.weight.copy_(weight.float())
        conv.bias.zero_()  # type: ignore[union-attr]  # made with bias=True
    net = nn.Sequential(
        OrderedDict(
            conv=conv,
            relu=nn.ReLU(),
            pool=nn.AdaptiveAvgPool2d(1),
            flatten=nn.Flatten(),
        )
    )
    net.requires_grad_(False)
    return net.eval()


def planted_pattern(
    height: int,
    width: int,
    orientation_deg: float = 45.0,
    period: float = 6.0,
    channels: int = 3,
    phase: float = 0.0,
) -> Tensor:
    """The grating that ``grating_net``'s channel 0 detects, in [0, 1].

    ``0.5 + 0.5 cos(2π (x cosθ + y sinθ) / period + phase)`` with ``θ = orientation_deg`` and
    x, y the column and row index; gray (the same on every channel). The arguments must match
    the ``grating_net`` call; ``phase`` (radians) does not matter to the detector.

    Shape: ``(channels, height, width)``, float32.
    """
    _check_grating_args(orientation_deg, period, channels)
    for name, v in (("height", height), ("width", width)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")
    g = 0.5 + 0.5 * _wave(height, width, orientation_deg, period, float(phase), centered=False)
    return g.float().expand(channels, height, width).clone()


def _luminance(x: Tensor, name: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() == 4 and x.shape[0] == 1:
        x = x[0]
    if x.dim() == 2:
        x = x[None]
    if x.dim() != 3:
        raise ValueError(
            f"{name} must be (H, W), (C, H, W) or (1, C, H, W), got shape {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    return x.double().mean(0, keepdim=True)[None]  # (1, 1, H, W)


def recovery_score(image: Tensor, pattern: Tensor, radius: float = 3.0) -> Tensor:
    """Phase-invariant share of an image's contrast energy at the pattern's spatial frequency.

    ``score = Σ_{f ∈ N} P_img(f) / Σ_{f ≠ 0} P_img(f)``, where ``P`` is the power spectrum of the
    mean-removed, Hann-windowed luminance (channel mean) and ``N`` is every frequency within
    ``radius`` frequency bins (of ``1/H``, ``1/W``) of the pattern's spectral peak or its mirror.
    The power spectrum ignores phase, so any shift of the grating scores the same; colour is
    ignored (the planted detector sees luminance only).

    Measured on 64x64 with the defaults (period 6, 45 deg): the pattern itself and a shifted copy
    ~0.999, uniform noise ~0.012 (≈ the area share of ``N``), the orthogonal grating ~0,
    100 steps of clamped pixel-space gradient ascent on channel 0 from noise ~0.75. A score above
    ~0.2 (over ten times noise, a quarter of what plain ascent reaches) means the grating was
    recovered; the area share of ``N`` (about
    ``2π radius² / (H W)``) is the chance level, so compare images of one size.

    Shape: image and pattern ``(H, W)``, ``(C, H, W)`` or ``(1, C, H, W)`` with the same H, W;
    returns a 0-dim float64 tensor (use ``float()``). A constant image scores 0.
    """
    img, pat = _luminance(image, "image"), _luminance(pattern, "pattern")
    if img.shape[-2:] != pat.shape[-2:]:
        raise ValueError(
            "image and pattern must have the same height and width, got "
            f"{tuple(img.shape[-2:])} and {tuple(pat.shape[-2:])}"
        )
    if not radius > 0:
        raise ValueError(f"radius must be > 0 (frequency bins), got {radius!r}")
    h, w = img.shape[-2:]
    p_img = power_spectrum(img.to(pat.device))[0]  # (H, W)
    p_pat = power_spectrum(pat)[0]
    if not bool(p_pat.max() > 0):
        raise ValueError("pattern must not be constant (it has no spatial frequency)")
    peak = int(torch.argmax(p_pat))
    fy = torch.fft.fftfreq(h, dtype=torch.float64, device=pat.device) * h  # in bins
    fx = torch.fft.fftfreq(w, dtype=torch.float64, device=pat.device) * w
    py, px = fy[peak // w], fx[peak % w]
    d_plus = (fy[:, None] - py) ** 2 + (fx[None, :] - px) ** 2
    d_minus = (fy[:, None] + py) ** 2 + (fx[None, :] + px) ** 2
    near = torch.minimum(d_plus, d_minus) <= radius**2
    near[0, 0] = False
    total = p_img.sum() - p_img[0, 0]
    if not bool(total > 0):
        return total.new_zeros(())
    return (p_img * near).sum() / total


# --------------------------------------------------------------------------- the transformer


class PatchEmbed(nn.Module):
    """Non-overlapping ``patch_size`` patches -> ``(B, h*w, D)`` tokens in row-major order.

    With ``dynamic_img_pad`` an image is first padded with zeros (right, bottom) to whole
    patches, as in timm.
    """

    def __init__(
        self,
        img_size: tuple[int, int],
        patch_size: tuple[int, int],
        in_chans: int,
        dim: int,
        dynamic_img_pad: bool = False,
    ):
        super().__init__()
        self.img_size = img_size
        self.patch_size = patch_size
        self.grid_size = (img_size[0] // patch_size[0], img_size[1] // patch_size[1])
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.dynamic_img_pad = dynamic_img_pad
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        if self.dynamic_img_pad:
            ph, pw = self.patch_size
            x = F.pad(x, (0, -x.shape[-1] % pw, 0, -x.shape[-2] % ph))
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention over all tokens: ``qkv``, softmax, ``proj``."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim must be a multiple of num_heads ({num_heads}), got {dim}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, d // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, heads, N, head dim)
        weights = (q @ k.transpose(-2, -1) * (d // self.num_heads) ** -0.5).softmax(-1)
        return self.proj((weights @ v).transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    """``fc1`` -> ``act`` (GELU) -> ``fc2``: the expanded hidden layer is ``act``'s output."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    """A vision transformer in plain torch with timm's layout and attribute names.

    Modules: ``patch_embed`` (``.proj`` a stride-``patch_size`` Conv2d; ``grid_size``,
    ``patch_size``), ``cls_token`` and ``reg_token`` (prefix tokens, ``num_prefix_tokens`` in
    all), ``pos_embed``, ``blocks.N`` (``norm1``, ``attn.qkv``, ``attn.proj``, ``norm2``,
    ``mlp.fc1``, ``mlp.act``, ``mlp.fc2``), ``norm``, ``head``. ``global_pool``: "token" (the
    class token) or "avg" (the patch tokens' mean). With ``dynamic_img_size`` any image is
    taken: it is padded to whole patches (timm's ``dynamic_img_pad``) and the position
    embedding is resampled to its grid (bilinear).
    Random initialization (torch's defaults, embeddings N(0, 0.02)) unless weights are set.
    """

    def __init__(
        self,
        img_size: int | tuple[int, int] = (32, 48),
        patch_size: int | tuple[int, int] = 8,
        in_chans: int = 3,
        num_classes: int = 10,
        embed_dim: int = 16,
        depth: int = 2,
        num_heads: int = 2,
        mlp_ratio: float = 4.0,
        class_token: bool = True,
        reg_tokens: int = 0,
        global_pool: str = "token",
        dynamic_img_size: bool = False,
    ):
        super().__init__()
        img = check_size("img_size", img_size)
        patch = check_size("patch_size", patch_size)
        if img[0] < patch[0] or img[1] < patch[1]:
            raise ValueError(f"img_size must hold one patch of {patch}, got {img}")
        dim = check_positive_int("embed_dim", embed_dim)
        if global_pool not in ("token", "avg"):
            raise ValueError(f"global_pool must be 'token' or 'avg', got {global_pool!r}")
        if global_pool == "token" and not check_bool("class_token", class_token):
            raise ValueError("global_pool='token' needs class_token=True, got class_token=False")
        reg = check_int("reg_tokens", reg_tokens, 0)
        self.global_pool = global_pool
        self.dynamic_img_size = check_bool("dynamic_img_size", dynamic_img_size)
        self.num_prefix_tokens = int(class_token) + reg
        self.num_reg_tokens = reg
        self.patch_embed = PatchEmbed(
            img, patch, check_positive_int("in_chans", in_chans), dim, self.dynamic_img_size
        )
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02) if class_token else None
        self.reg_token = nn.Parameter(torch.randn(1, reg, dim) * 0.02) if reg else None
        n = self.num_prefix_tokens + self.patch_embed.num_patches
        self.pos_embed = nn.Parameter(torch.randn(1, n, dim) * 0.02)
        self.blocks = nn.Sequential(
            *(Block(dim, num_heads, mlp_ratio) for _ in range(check_int("depth", depth, 1)))
        )
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, check_positive_int("num_classes", num_classes))

    def _pos_embed(self, x: Tensor, grid: tuple[int, int]) -> Tensor:
        pos: Tensor = self.pos_embed
        if grid != self.patch_embed.grid_size:
            prefix, patches = pos[:, : self.num_prefix_tokens], pos[:, self.num_prefix_tokens :]
            gh, gw = self.patch_embed.grid_size
            patches = patches.transpose(1, 2).reshape(1, -1, gh, gw)
            patches = F.interpolate(patches, size=grid, mode="bilinear", align_corners=False)
            pos = torch.cat([prefix, patches.flatten(2).transpose(1, 2)], dim=1)
        extra = [
            t.expand(x.shape[0], -1, -1) for t in (self.cls_token, self.reg_token) if t is not None
        ]
        return torch.cat([*extra, x], dim=1) + pos

    def forward(self, x: Tensor) -> Tensor:
        ph, pw = self.patch_embed.patch_size
        grid = (-(-x.shape[-2] // ph), -(-x.shape[-1] // pw))  # rounded up: padded if dynamic
        if not self.dynamic_img_size and tuple(x.shape[-2:]) != self.patch_embed.img_size:
            h, w = self.patch_embed.img_size
            raise ValueError(
                f"TinyViT takes {h}x{w} px images (built without dynamic_img_size), got "
                f"{x.shape[-2]}x{x.shape[-1]}"
            )
        x = self.blocks(self._pos_embed(self.patch_embed(x), grid))
        x = self.norm(x)
        pooled = x[:, 0] if self.global_pool == "token" else x[:, self.num_prefix_tokens :].mean(1)
        return self.head(pooled)


#: The ``grating_vit`` embedding's features, in order (dimensions ``k`` and ``7 + k`` are
#: ``+t_k`` and ``-t_k``; 14 and 15 are ``+b`` and ``-b``); ``blocks.1.mlp.act`` unit ``k``
#: reads feature ``k``; unit 0 is the planted detector.
VIT_FEATURES = (
    "target",  # even grating, one cycle per patch along each axis (45 deg): the planted one
    "quadrature",  # the same grating a quarter period on (odd)
    "orthogonal",  # the grating at 135 deg
    "vertical",  # one cycle per patch along x: vertical stripes
    "horizontal",  # one cycle per patch along y
    "red_green",  # mean red minus mean green
    "brightness",  # mean brightness minus 0.5
)


def _vit_templates(patch: tuple[int, int]) -> Tensor:
    """Unit-norm (3, ph, pw) templates of the ``VIT_FEATURES``, float64."""
    ph, pw = patch
    y = torch.arange(ph, dtype=torch.float64)[:, None] / ph
    x = torch.arange(pw, dtype=torch.float64)[None, :] / pw
    lum = [
        torch.cos(2 * math.pi * (x + y)),
        torch.sin(2 * math.pi * (x + y)),
        torch.cos(2 * math.pi * (x - y)),
        torch.cos(2 * math.pi * x).expand(ph, pw),
        torch.cos(2 * math.pi * y).expand(ph, pw),
    ]
    out = torch.zeros(len(VIT_FEATURES), 3, ph, pw, dtype=torch.float64)
    for k, wave in enumerate(lum):
        out[k] = wave
    out[5, 0], out[5, 1] = 1.0, -1.0
    out[6] = 1.0
    return out / out.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)


def vit_pattern(height: int, width: int, patch_size: int | tuple[int, int] = 8) -> Tensor:
    """The grating ``grating_vit``'s planted unit detects, in [0, 1], shape ``(3, H, W)``.

    ``0.5 + 0.5 cos(2π (x / pw + y / ph))`` for column x and row y: one cycle per patch along
    each axis, in phase with the patch grid (45 degrees for square patches). The unit is
    phase-sensitive: the same grating shifted by a fraction of a patch drives it less.
    """
    for name, v in (("height", height), ("width", width)):
        check_positive_int(name, v)
    ph, pw = check_size("patch_size", patch_size)
    y = torch.arange(height, dtype=torch.float64)[:, None] / ph
    x = torch.arange(width, dtype=torch.float64)[None, :] / pw
    g = 0.5 + 0.5 * torch.cos(2 * math.pi * (x + y))
    return g.float().expand(3, height, width).clone()


def grating_vit(
    img_size: int | tuple[int, int] = (32, 48),
    patch_size: int | tuple[int, int] = 8,
    dynamic_img_size: bool = False,
) -> TinyViT:
    """A :class:`TinyViT` (two blocks, 16 dims, 64 MLP units) with a planted grating unit.

    ``blocks.1.mlp.act`` unit 0 at every patch token detects ``vit_pattern`` within that patch:
    the patch embedding computes seven linear features of each patch (``VIT_FEATURES``: the
    planted grating, its quadrature, the orthogonal grating, vertical and horizontal stripes,
    red-green and brightness), stored as ``+t, -t`` pairs plus a constant pair ``+-1``, so the
    layer norm divides each feature by the patch's overall contrast; MLP unit k of block 1 is
    ``GELU(2 * norm2(x)_k - 0.5)``. Attention and MLP outputs are zero (every block passes the
    tokens on unchanged, block 0's MLP units are zero), so a token sees its own patch only.
    The head averages the normalized patch tokens: logit k is the mean normalized feature k.

    ``patch_size`` sides must be at least 4 px (so the grating and its quadrature differ).
    The model is in eval mode, float32 on the CPU, and its parameters do not require grad.
    """
    patch = check_size("patch_size", patch_size)
    if min(patch) < 4:
        raise ValueError(f"patch_size must be at least 4 px per side, got {patch}")
    vit = TinyViT(
        img_size=img_size,
        patch_size=patch_size,
        num_classes=len(VIT_FEATURES),
        embed_dim=16,
        depth=2,
        num_heads=2,
        mlp_ratio=4.0,
        global_pool="avg",
        dynamic_img_size=dynamic_img_size,
    )
    n = len(VIT_FEATURES)
    templates = _vit_templates(vit.patch_embed.patch_size)
    weight = torch.zeros(16, 3, *vit.patch_embed.patch_size, dtype=torch.float64)
    bias = torch.zeros(16, dtype=torch.float64)
    weight[:n], weight[n : 2 * n] = templates, -templates
    bias[6] = -0.5 * templates[6].sum()  # brightness: the mean minus 0.5
    bias[6 + n] = -bias[6]
    bias[14], bias[15] = 1.0, -1.0
    with torch.no_grad():
        for p in vit.parameters():
            p.zero_()
        for module in vit.modules():
            if isinstance(module, nn.LayerNorm):
                module.weight.fill_(1.0)
        vit.patch_embed.proj.weight.copy_(weight.float())
        vit.patch_embed.proj.bias.copy_(bias.float())  # type: ignore[union-attr]  # has bias
        vit.cls_token[0, 0, 14], vit.cls_token[0, 0, 15] = 1.0, -1.0  # type: ignore[index]
        block = vit.blocks[1]
        assert isinstance(block, Block)  # built above
        for k in range(n):
            block.mlp.fc1.weight[k, k] = 2.0
            block.mlp.fc1.bias[k] = -0.5
            vit.head.weight[k, k] = 1.0
    vit.requires_grad_(False)
    return vit.eval()


# the fooling circuit (a unit whose picture a planted trap hijacks): see ``fooling``;
# the planted superposition (concepts in fewer channels): see ``superposition``
from midnite.evaluation.fooling import fooled_net as fooled_net  # noqa: E402
from midnite.evaluation.fooling import fooling_pattern as fooling_pattern  # noqa: E402
from midnite.evaluation.superposition import (  # noqa: E402
    concept_pattern as concept_pattern,
)
from midnite.evaluation.superposition import (  # noqa: E402
    concept_recovery as concept_recovery,
)
from midnite.evaluation.superposition import (  # noqa: E402
    planted_directions as planted_directions,
)
from midnite.evaluation.superposition import (  # noqa: E402
    superposition_images as superposition_images,
)
from midnite.evaluation.superposition import (  # noqa: E402
    superposition_net as superposition_net,
)
