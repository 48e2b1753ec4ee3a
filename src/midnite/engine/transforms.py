"""Per-step image transforms as ``nn.Module``s: ``t(x, generator=None)`` maps float (B, C, H, W).

Random transforms draw every number from ``generator``: one seed gives one output, and
``generator=None`` means torch's default generator for the device the numbers are drawn on (the
image's), so ``torch.manual_seed`` makes them repeatable. Each module wraps a plain function of
the same operation (``box_blur``, ``bilateral_filter``, ``random_affine``, ...), kornia-style;
the geometric ones (``affine``, ``random_affine``, ``random_crops``, ``resize``) live in
``midnite.engine.geometry`` and are re-exported here.
``a + b`` returns a new :class:`Compose` and mutates neither operand.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from midnite.engine.checks import (
    check_choice,
    check_image,
    check_int,
    check_real,
    check_size,
)
from midnite.engine.geometry import (
    _SAMPLE_PADDING_MODES,
    MAX_SIDE,
    _border_mode,
    _randint,
    _scale_range,
    affine,
    random_affine,
    random_crops,
    resize,
)

__all__ = [
    "MAX_SIDE",
    "STACKS",
    "Compose",
    "GaussianBlur",
    "Jitter",
    "Pad",
    "RandomAffine",
    "RandomCrops",
    "RandomRotate",
    "RandomScale",
    "Transform",
    "affine",
    "bilateral_filter",
    "box_blur",
    "class_transforms",
    "gaussian_blur",
    "jitter",
    "lucid_transforms",
    "pad",
    "patch_transforms",
    "random_affine",
    "random_crops",
    "resize",
    "standard_transforms",
]

_PAD_MODES = ("reflect", "replicate", "constant")


# --------------------------------------------------------------------------- protocol


class Transform(nn.Module):
    """Base of all transforms: ``forward(x, generator=None) -> Tensor`` on float (B, C, H, W).

    Deterministic transforms ignore ``generator``; random ones draw from it on its own device
    (any device works; results are then moved to x's), or from torch's default generator for
    x's device when it is None. ``a + b`` returns a new :class:`Compose` (a then b) and leaves
    both operands unchanged.
    """

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement forward(x, generator)")

    def _repr_params(self) -> dict[str, object]:
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._repr_params().items())
        return f"{type(self).__name__}({args})"

    def __add__(self, other: object) -> Compose:
        if not isinstance(other, Transform):
            raise TypeError(
                f"can only add a Transform to a Transform, got {type(other).__name__}: {other!r}"
            )
        return Compose(*_members(self), *_members(other))


def _members(t: Transform) -> tuple[Transform, ...]:
    return tuple(t) if type(t) is Compose else (t,)


class Compose(Transform):
    """``Compose(t1, t2, ...)`` applies its transforms in order, passing the same ``generator``
    to each; an empty one is the identity. ``+`` flattens nested ``Compose``s."""

    def __init__(self, *transforms: Transform) -> None:
        super().__init__()
        for i, t in enumerate(transforms):
            if not isinstance(t, Transform):
                raise TypeError(
                    f"{type(self).__name__} takes Transform instances, "
                    f"got {type(t).__name__} at position {i}"
                )
        self.transforms = nn.ModuleList(transforms)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        for t in self.transforms:
            x = t(x, generator=generator)
        return x

    def __len__(self) -> int:
        return len(self.transforms)

    def __iter__(self) -> Iterator[Transform]:
        return iter(self.transforms)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Transform:
        return self.transforms[index]  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(repr(t) for t in self)})"


# --------------------------------------------------------------------------- box blur


def box_blur(x: Tensor, size: int) -> Tensor:
    """Mean over a ``size`` x ``size`` window, reflect padding (replicate on tiny images).

    An even ``size`` puts the extra row/column below/right of the centre.

    Shape: (B, C, H, W) -> (B, C, H, W).
    """
    check_image("image", x)
    size = check_int("size", size, 1)
    lo, hi = (size - 1) // 2, size // 2
    _, _, h, w = x.shape
    y = F.pad(x, (lo, hi, lo, hi), mode=_border_mode(hi, h, w))
    return F.avg_pool2d(y, size, stride=1)


# --------------------------------------------------------------------------- bilateral filter


def bilateral_filter(
    x: Tensor, diameter: int = 9, sigma_color: float = 0.1, sigma_space: float = 3.0
) -> Tensor:
    """Edge-preserving bilateral filter for float images with values in [0, 1].

    Each output pixel is the weighted mean of the pixels q in a disc of radius ``diameter // 2``
    around it, weight ``exp(-|I(p) - I(q)|^2 / (2 sigma_color^2) - |p - q|^2 / (2 sigma_space^2))``
    where ``|I(p) - I(q)|`` is the Euclidean colour distance over all channels. ``sigma_color``
    is in image units (0.1 on [0, 1] is about 25 on 0-255); it cannot adapt to 0-255 images by
    itself. Padding is reflect (replicate on tiny images). Loops over the disc's offsets (49 for
    diameter 9), each a vectorized op on shifted views, so memory stays O(B C H W).

    Defaults: ``sigma_color=0.1``: differences below ~0.1 (noise, faint texture) are averaged,
    steps above ~0.3 keep nearly all their contrast (weight < exp(-4.5) = 1%);
    ``sigma_space=3.0``: the disc of radius 4 spans about 1.3 sigma and its rim still counts
    (weight ~0.4).

    Shape: (B, C, H, W) -> (B, C, H, W).
    """
    check_image("image", x)
    diameter = _check_diameter(diameter)
    sigma_color = check_real("sigma_color", sigma_color, gt=0.0)
    sigma_space = check_real("sigma_space", sigma_space, gt=0.0)
    radius = diameter // 2
    _, _, h, w = x.shape
    padded = F.pad(x, (radius,) * 4, mode=_border_mode(radius, h, w))
    inv_color = 1.0 / (2.0 * sigma_color**2)
    inv_space = 1.0 / (2.0 * sigma_space**2)
    num = torch.zeros_like(x)
    den = torch.zeros_like(x[:, :1])
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            d2 = dy * dy + dx * dx
            if d2 > radius * radius:
                continue
            q = padded[:, :, radius + dy : radius + dy + h, radius + dx : radius + dx + w]
            weight = torch.exp(
                (q - x).square().sum(1, keepdim=True).mul(-inv_color).sub(d2 * inv_space)
            )
            num = num + weight * q
            den = den + weight
    return num / den


def _check_diameter(diameter: object) -> int:
    """``diameter`` of a bilateral filter's disc: an odd int >= 1."""
    diameter = check_int("diameter", diameter, 1)
    if diameter % 2 == 0:
        raise ValueError(f"diameter must be an odd int >= 1, got {diameter}")
    return diameter


# --------------------------------------------------------------------------- affine


class RandomAffine(Transform):
    """Per-step fused random shift, rotation and scale: one ``grid_sample`` per batch.

    ``max_shift`` px per axis, ``degrees`` either way, scale uniform in ``scales``; the output
    grows by ``pad`` mirrored pixels on every side (0: keeps the size). See :func:`random_affine`.
    """

    def __init__(
        self,
        max_shift: float = 0.0,
        degrees: float = 0.0,
        scales: tuple[float, float] = (1.0, 1.0),
        padding_mode: str = "reflection",
        pad: int = 0,
    ) -> None:
        super().__init__()
        self.max_shift = check_real("max_shift", max_shift, ge=0.0)
        self.degrees = check_real("degrees", degrees, ge=0.0)
        self.scales = _scale_range(scales)
        self.padding_mode = check_choice("padding_mode", padding_mode, _SAMPLE_PADDING_MODES)
        self.pad = check_int("pad", pad, 0)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return random_affine(
            x,
            max_shift=self.max_shift,
            degrees=self.degrees,
            scales=self.scales,
            padding_mode=self.padding_mode,
            generator=generator,
            pad=self.pad,
        )

    def _repr_params(self) -> dict[str, object]:
        params: dict[str, object] = {
            "max_shift": self.max_shift,
            "degrees": self.degrees,
            "scales": self.scales,
            "padding_mode": self.padding_mode,
        }
        if self.pad:
            params["pad"] = self.pad
        return params


class RandomScale(RandomAffine):
    """Per-image zoom about the centre by a factor uniform in ``scales``; keeps the size."""

    def __init__(self, scales: tuple[float, float] = (0.9, 1.1), padding_mode: str = "reflection"):
        super().__init__(scales=scales, padding_mode=padding_mode)

    def _repr_params(self) -> dict[str, object]:
        return {"scales": self.scales, "padding_mode": self.padding_mode}


class RandomRotate(RandomAffine):
    """Per-image rotation about the centre by an angle uniform in ±``degrees``; keeps the size."""

    def __init__(self, degrees: float = 10.0, padding_mode: str = "reflection"):
        super().__init__(degrees=degrees, padding_mode=padding_mode)

    def _repr_params(self) -> dict[str, object]:
        return {"degrees": self.degrees, "padding_mode": self.padding_mode}


# --------------------------------------------------------------------------- random crops


class RandomCrops(Transform):
    """``crops`` random boxes per image resized to ``size``, with noise; see :func:`random_crops`.

    The batch grows ``crops`` times (box-major). :meth:`view` is the deterministic counterpart:
    the whole image resized to ``size`` (antialiased), for passes without random transforms.
    """

    def __init__(
        self,
        size: tuple[int, int],
        crops: int = 1,
        scales: tuple[float, float] = (1.0, 1.0),
        noise: float = 0.0,
    ) -> None:
        super().__init__()
        self.size = check_size("size", size)
        self.crops = check_int("crops", crops, 1)
        self.scales = _scale_range(scales)
        if self.scales[1] > 1.0:
            raise ValueError(f"scales must lie in (0, 1] (fractions of the image), got {scales!r}")
        self.noise = check_real("noise", noise, ge=0.0)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return random_crops(
            x,
            self.size,
            crops=self.crops,
            scales=self.scales,
            noise=self.noise,
            generator=generator,
        )

    def view(self, x: Tensor) -> Tensor:
        """The whole image resized to ``size`` (bilinear, antialiased when it shrinks)."""
        check_image("image", x)
        if tuple(x.shape[-2:]) == self.size:
            return x
        shrink = x.shape[-2] > self.size[0] or x.shape[-1] > self.size[1]
        return F.interpolate(
            x, size=self.size, mode="bilinear", align_corners=False, antialias=shrink
        )

    def _repr_params(self) -> dict[str, object]:
        return {"size": self.size, "crops": self.crops, "scales": self.scales, "noise": self.noise}


# --------------------------------------------------------------------------- per-step transforms


def pad(x: Tensor, pad: int, mode: str = "reflect", value: float = 0.5) -> Tensor:
    """Pads ``pad`` pixels on every side. ``mode``: "reflect" (needs pad < H and W),
    "replicate" or "constant" (with ``value``).

    Shape: (B, C, H, W) -> (B, C, H + 2 pad, W + 2 pad).
    """
    check_image("image", x)
    p = check_int("pad", pad, 0)
    check_choice("mode", mode, _PAD_MODES)
    _, _, h, w = x.shape
    if mode == "reflect" and (p >= h or p >= w):
        raise ValueError(f"reflect padding needs pad < H and W, got pad={p} for a {h}x{w} image")
    if mode == "constant":
        return F.pad(x, (p, p, p, p), mode="constant", value=check_real("value", value))
    return F.pad(x, (p, p, p, p), mode=mode)


class Pad(Transform):
    """Pads ``pad`` pixels on each side; see :func:`pad`."""

    def __init__(self, pad: int, mode: str = "reflect", value: float = 0.5) -> None:
        super().__init__()
        self.pad = check_int("pad", pad, 0)
        self.mode = check_choice("mode", mode, _PAD_MODES)
        self.value = check_real("value", value)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return pad(x, self.pad, self.mode, self.value)

    def _repr_params(self) -> dict[str, object]:
        params: dict[str, object] = {"pad": self.pad, "mode": self.mode}
        if self.mode == "constant":
            params["value"] = self.value
        return params


def jitter(x: Tensor, d: int, generator: torch.Generator | None = None, step: int = 1) -> Tensor:
    """Random crop of size (H - d, W - d) per image (Lucid's jitter): a translation by 0..d px.

    Chosen over ``roll`` because it brings in no wrap-around seam. One ``gather``, no loop over
    the batch; the offsets are integers, so values are copied, not interpolated. With ``step``
    the offsets are multiples of ``step`` px (``d`` must be one): whole patches of a vision
    transformer, so each patch token sees the same pixels as before, at another token.

    Shape: (B, C, H, W) -> (B, C, H - d, W - d).
    """
    check_image("image", x)
    d = check_int("d", d, 0)
    step = check_int("step", step, 1)
    b, c, h, w = x.shape
    if d >= h or d >= w:
        raise ValueError(f"jitter d must be < H and W, got d={d} for a {h}x{w} image")
    if d % step:
        raise ValueError(f"jitter d must be a multiple of step={step}, got d={d}")
    oh, ow = h - d, w - d
    off = _randint(d // step + 1, (b, 2), generator, x.device)
    if step != 1:
        off = off * step
    rows = off[:, :1] + torch.arange(oh, device=x.device)  # (B, oh)
    cols = off[:, 1:] + torch.arange(ow, device=x.device)  # (B, ow)
    idx = (rows[:, :, None] * w + cols[:, None, :]).view(b, 1, oh * ow).expand(b, c, oh * ow)
    return x.reshape(b, c, h * w).gather(2, idx).view(b, c, oh, ow)


class Jitter(Transform):
    """Random translation by up to ``d`` px per image as a random crop; see :func:`jitter`.

    ``step``: offsets in multiples of ``step`` px (whole patches of a vision transformer).
    """

    def __init__(self, d: int, step: int = 1) -> None:
        super().__init__()
        self.d = check_int("d", d, 0)
        self.step = check_int("step", step, 1)
        if self.d % self.step:
            raise ValueError(f"jitter d must be a multiple of step={self.step}, got d={self.d}")

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return jitter(x, self.d, generator, self.step)

    def _repr_params(self) -> dict[str, object]:
        return {"d": self.d} if self.step == 1 else {"d": self.d, "step": self.step}


@functools.lru_cache(maxsize=64)
def _gaussian_kernel1d(
    sigma: float, radius: int, device: torch.device, dtype: torch.dtype
) -> Tensor:
    # A normal tensor even if first made under inference_mode, so autograd can use it later.
    with torch.inference_mode(False), torch.no_grad():
        t = torch.arange(-radius, radius + 1, dtype=torch.float64)
        k = torch.exp(-(t * t) / (2.0 * sigma * sigma))
        return (k / k.sum()).to(device=device, dtype=dtype)


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur, kernel radius ``ceil(3 sigma)``, reflect padding (replicate on
    tiny images). Kernels are cached by (sigma, radius, device, dtype).

    Shape: (B, C, H, W) -> (B, C, H, W).
    """
    check_image("image", x)
    sigma = check_real("sigma", sigma, gt=0.0)
    radius = max(1, math.ceil(3.0 * sigma))
    b, c, h, w = x.shape
    k = _gaussian_kernel1d(sigma, radius, x.device, x.dtype)
    n = b * c
    # All images and channels as the channels of ONE image, filtered depthwise: on CPU this is
    # several times faster than a batch of 1-channel images; the expanded weight is a view.
    y = F.pad(x.reshape(1, n, h, w), (radius,) * 4, mode=_border_mode(radius, h, w))
    y = F.conv2d(y, k.view(1, 1, -1, 1).expand(n, 1, -1, 1), groups=n)
    y = F.conv2d(y, k.view(1, 1, 1, -1).expand(n, 1, 1, -1), groups=n)
    return y.view(b, c, h, w)


class GaussianBlur(Transform):
    """Gaussian blur of standard deviation ``sigma`` px; see :func:`gaussian_blur`."""

    def __init__(self, sigma: float) -> None:
        super().__init__()
        self.sigma = check_real("sigma", sigma, gt=0.0)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return gaussian_blur(x, self.sigma)

    def _repr_params(self) -> dict[str, object]:
        return {"sigma": self.sigma}


def standard_transforms() -> Compose:
    """The default per-step robustness stack: Lucid's ``standard_transforms`` in one resampling.

    ``RandomAffine(max_shift=6, degrees=10, scales=(0.9, 1.1), pad=6)``: a 224 px image becomes
    236 px, moved by up to 6 px per axis, rotated by up to 10 degrees and zoomed by 0.9 to 1.1,
    with up to 12 mirrored pixels of border on a side. That is what :func:`lucid_transforms`
    (pad 12, jitter 8, scale and rotate, jitter 4) does, with sub-pixel rather than whole-pixel
    shifts and a border mirrored about the image itself, in one bilinear resampling instead of
    Lucid's five operations (pad, crop, scale, rotate, crop): the forward and the backward pass
    each go over the image once, and the image is interpolated once rather than twice.
    """
    return Compose(RandomAffine(max_shift=6.0, degrees=10.0, scales=(0.9, 1.1), pad=6))


def lucid_transforms() -> Compose:
    """Lucid's ``standard_transforms`` step by step, with whole-pixel jitter.

    ``Pad(12, "reflect")``, ``Jitter(8)``, ``RandomAffine(degrees=10, scales=(0.9, 1.1))`` (scale
    and rotation fused, mirrored border), ``Jitter(4)``: a 224 px image becomes 236 px. Reflect
    rather than Lucid's constant 0.5 padding, so no flat frame is fed in.
    """
    return Compose(
        Pad(12, mode="reflect"),
        Jitter(8),
        RandomAffine(degrees=10.0, scales=(0.9, 1.1)),
        Jitter(4),
    )


def patch_transforms(patch: int = 16) -> Compose:
    """A per-step stack for vision transformers: jitter by whole patches, the size kept.

    ``Pad(patch, "reflect")`` then ``Jitter(2 * patch, step=patch)``: each image moves by -1, 0
    or +1 patch per axis and keeps its size, so a model with a fixed token grid takes it, and
    every patch token sees the same pixels as before, at another position. Sub-patch shifts,
    rotation and zoom change what each token sees (a ViT's patch embedding is not shift
    invariant below the patch size); on ``known_answer.grating_vit`` they cost most of what a
    render recovers. ``"patch"`` in ``STACKS`` is this with 16 px patches.
    """
    patch = check_int("patch", patch, 1)
    return Compose(Pad(patch, mode="reflect"), Jitter(2 * patch, step=patch))


STACKS: dict[str, Callable[[], Transform]] = {
    "standard": standard_transforms,
    "lucid": lucid_transforms,
    "patch": patch_transforms,
}
"""Named per-step stacks that ``render(transforms=NAME)`` and recipes refer to."""


def class_transforms() -> Compose:
    """The class recipe's per-step stack: strong enough that class visualizations transfer.

    ``RandomAffine(max_shift=32, degrees=30, scales=(0.6, 2.0))``: per image a shift of up to
    32 px, a rotation of up to 30 degrees and a zoom from a mirrored 0.6x view to a 2x crop, as
    one bilinear resampling with mirrored borders; the size is kept, so any image size works and
    the model sees one image per image. The wide zoom makes an object pay off at several scales
    and places, so the image holds object parts rather than pixel patterns only the rendering
    model reads. On EfficientNet-Lite0 class logits (256 Adam steps, lr 0.08) the images of ten
    ImageNet classes are top-1 for Lite1 and for Lite2 in 9 of 10 (seeds 0 and 1), against 8
    and 4 of 10 with ``standard_transforms`` and lr 0.05 (``benchmarks/quality.py``).
    """
    return Compose(RandomAffine(max_shift=32.0, degrees=30.0, scales=(0.6, 2.0)))


STACKS["class"] = class_transforms
