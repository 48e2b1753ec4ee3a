"""Image parameterizations: ``nn.Module``s that hold the trainable tensors of an image batch.

Contract: ``module()`` takes no argument and returns the images, shape (B, C, H, W), values in
[0, 1] (except ``squash="none"``, where the caller keeps the range); an optimizer runs on
``module.parameters()``. Parameters are created on the CPU; ``.to(device)`` moves everything.

``MacoImage`` (Fel et al. 2023, "MACO") fixes the Fourier magnitude to that of natural
photographs and trains only the phase. Its magnitude template is a data file shipped in the
package (``midnite/data/maco_magnitude.npy``, made by ``scripts/make_magnitude.py``; read by
``maco_magnitude``), or one made by ``magnitude_from_images`` from photographs (a tensor).
"""

from __future__ import annotations

import math
from importlib import resources

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from midnite.engine.checks import (
    check_bool,
    check_generator,
    check_image,
    check_int,
    check_positive_int,
    check_real,
)

__all__ = [
    "COLOR_CORRELATION_SVD_SQRT",
    "MAGNITUDE_FILE",
    "SQUASHES",
    "ColorDecorrelation",
    "FourierImage",
    "MacoImage",
    "Parameterization",
    "PixelImage",
    "image",
    "maco_magnitude",
    "magnitude_from_images",
    "resize_magnitude",
]

# Square root (via SVD) of the colour covariance of ImageNet pixels, rows = RGB output,
# columns = decorrelated input channels. Source: the matrix used by Lucid (tensorflow/lucid,
# ``lucid/optvis/param/color.py``, ``color_correlation_svd_sqrt``). Lucid divides it by its
# largest column norm (``max_norm_svd_sqrt``); ColorDecorrelation does the same.
COLOR_CORRELATION_SVD_SQRT: tuple[tuple[float, float, float], ...] = (
    (0.26, 0.09, 0.02),
    (0.27, 0.00, -0.05),
    (0.27, -0.09, 0.03),
)

SQUASHES = ("sigmoid", "clamp", "none")
"""Output maps to [0, 1]: ``sigmoid``; ``clamp`` (``clamp(0, 1)``, out-of-range pixels get no
gradient); ``none`` (identity: the stored values are the image, the caller clamps them)."""

# from_image/set_image_ clip to [_EPS, 1 - _EPS] before the logit of a sigmoid squash.
_EPS = 1e-4


def _randn(shape: tuple[int, ...], sd: float, generator: torch.Generator | None) -> Tensor:
    """``sd`` * standard normal noise on the CPU, drawn from ``generator`` on its device."""
    device = generator.device if generator is not None else torch.device("cpu")
    noise = torch.randn(shape, generator=generator, device=device)
    return (noise * sd).cpu()


def _image_arg(img: object, shape: tuple[int, int, int, int] | None = None) -> Tensor:
    img = check_image("img", img)
    if shape is not None and tuple(img.shape) != shape:
        raise ValueError(f"img must have shape {shape}, got {tuple(img.shape)}")
    if not bool(torch.isfinite(img).all()):
        raise ValueError("img must hold only finite values, got NaN or inf")
    return img


class ColorDecorrelation(nn.Module):
    """Maps decorrelated colour channels to RGB with the normalized ImageNet colour matrix.

    ``out[:, o] = sum_c matrix[o, c] * x[:, c]`` per pixel, with ``matrix`` =
    ``COLOR_CORRELATION_SVD_SQRT`` / its largest column norm (as in Lucid). Only meaningful for
    RGB: with ``channels != 3`` it is the identity (a documented no-op, no error), so that
    ``image(..., channels=1)`` works with the default ``decorrelate=True``.

    Shape:
        (B, C, H, W) -> (B, C, H, W), C == ``channels``.
    """

    matrix: Tensor
    inverse_matrix: Tensor

    def __init__(self, channels: int = 3) -> None:
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.active = channels == 3
        if self.active:
            m = torch.tensor(COLOR_CORRELATION_SVD_SQRT, dtype=torch.float64)
            m = m / torch.linalg.vector_norm(m, dim=0).max()
            inv = torch.linalg.inv(m)
        else:
            m = inv = torch.eye(channels, dtype=torch.float64)
        dtype = torch.get_default_dtype()
        self.register_buffer("matrix", m.to(dtype), persistent=False)
        self.register_buffer("inverse_matrix", inv.to(dtype), persistent=False)

    def _check(self, x: Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"expected shape (B, {self.channels}, H, W), got {tuple(x.shape)}")

    def forward(self, x: Tensor) -> Tensor:
        """Decorrelated space -> RGB."""
        self._check(x)
        if not self.active:
            return x
        return torch.einsum("oc,bchw->bohw", self.matrix.to(x.dtype), x)

    def inverse(self, x: Tensor) -> Tensor:
        """RGB -> decorrelated space (the exact matrix inverse of ``forward``)."""
        self._check(x)
        if not self.active:
            return x
        return torch.einsum("oc,bchw->bohw", self.inverse_matrix.to(x.dtype), x)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, active={self.active}"


class Parameterization(nn.Module):
    """Base of all image parameterizations: ``forward()`` returns a (B, C, H, W) image batch.

    Subclasses hold their trainable tensors as parameters and keep ``batch``, ``channels``,
    ``height``, ``width`` right; sizes are validated here (ints >= 1).
    """

    def __init__(self, batch: int, channels: int, height: int, width: int) -> None:
        super().__init__()
        self.batch = check_positive_int("batch", batch)
        self.channels = check_positive_int("channels", channels)
        self.height = check_positive_int("height", height)
        self.width = check_positive_int("width", width)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(batch, channels, height, width) of ``forward()``'s output."""
        return (self.batch, self.channels, self.height, self.width)

    def forward(self) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    def extra_repr(self) -> str:
        return "batch={}, channels={}, height={}, width={}".format(*self.shape)


class _SquashedImage(Parameterization):
    """Shared pipeline: raw tensor -> optional colour decorrelation -> squash to [0, 1]."""

    def __init__(
        self,
        batch: int,
        channels: int,
        height: int,
        width: int,
        *,
        decorrelate: bool,
        squash: str,
    ) -> None:
        super().__init__(batch, channels, height, width)
        if squash not in SQUASHES:
            raise ValueError(f"squash must be one of {SQUASHES}, got {squash!r}")
        self.squash = squash
        self.decorrelate = check_bool("decorrelate", decorrelate)
        self.decorrelation = ColorDecorrelation(channels) if decorrelate else None

    def raw(self) -> Tensor:
        """The image before decorrelation and squash, (B, C, H, W)."""
        raise NotImplementedError

    def _encode_(self, x: Tensor) -> None:
        """Write the parameters so that ``raw()`` returns ``x`` (no grad, in place)."""
        raise NotImplementedError

    def forward(self) -> Tensor:
        x = self.raw()
        if self.decorrelation is not None:
            x = self.decorrelation(x)
        if self.squash == "sigmoid":
            return torch.sigmoid(x)
        if self.squash == "clamp":
            return x.clamp(0.0, 1.0)
        return x

    @torch.no_grad()
    def set_image_(self, img: Tensor) -> None:
        """Overwrite the parameters in place so that ``forward()`` returns ``img`` (B, C, H, W).

        Parameter identity is kept, so an optimizer's state survives. With sigmoid squash the
        image is clipped to [1e-4, 1 - 1e-4] before the logit (forward() is then within 1e-4 of
        a [0, 1] image); with ``clamp``/``none`` it is stored as given.
        """
        param = next(self.parameters())
        img = _image_arg(img, self.shape).to(device=param.device, dtype=param.dtype)
        if self.squash == "sigmoid":
            img = torch.logit(img.clamp(_EPS, 1.0 - _EPS))
        if self.decorrelation is not None:
            img = self.decorrelation.inverse(img)
        self._encode_(img)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, decorrelate={self.decorrelate}, squash={self.squash!r}"


class PixelImage(_SquashedImage):
    """One parameter per pixel and channel: ``pixels``, shape (B, C, H, W).

    With ``squash="sigmoid"`` the pixels are logits initialized as N(0, sd) noise, so the image
    starts at 0.5 gray plus small noise. With ``"none"``/``"clamp"`` the pixels are the image
    values themselves, initialized to 0.5 + N(0, sd); ``"none"`` lets them leave [0, 1] (the
    caller clamps, e.g. between iterations), ``"clamp"`` clamps the output. ``decorrelate``
    stores the pixels in decorrelated colour space (see ColorDecorrelation).

    Shape:
        forward() -> (batch, channels, height, width)
    """

    def __init__(
        self,
        height: int,
        width: int,
        *,
        batch: int = 1,
        channels: int = 3,
        sd: float = 0.01,
        generator: torch.Generator | None = None,
        squash: str = "sigmoid",
        decorrelate: bool = False,
    ) -> None:
        super().__init__(batch, channels, height, width, decorrelate=decorrelate, squash=squash)
        sd = check_real("sd", sd, ge=0.0)
        noise = _randn(self.shape, sd, check_generator(generator))
        noise = noise.to(torch.get_default_dtype())
        if squash != "sigmoid":
            gray = torch.full((1, channels, 1, 1), 0.5, dtype=noise.dtype)
            if self.decorrelation is not None:
                gray = self.decorrelation.inverse(gray)
            noise = noise + gray
        self.pixels = nn.Parameter(noise)

    @classmethod
    def from_image(
        cls, img: Tensor, *, squash: str = "sigmoid", decorrelate: bool = False
    ) -> PixelImage:
        """A PixelImage whose ``forward()`` returns ``img`` (B, C, H, W) in [0, 1].

        The module takes ``img``'s device and dtype. See ``set_image_`` for the sigmoid clipping.
        """
        img = _image_arg(img)
        b, c, h, w = img.shape
        module = cls(h, w, batch=b, channels=c, sd=0.0, squash=squash, decorrelate=decorrelate)
        module = module.to(device=img.device, dtype=img.dtype)
        module.set_image_(img)
        return module

    def raw(self) -> Tensor:
        return self.pixels

    def _encode_(self, x: Tensor) -> None:
        self.pixels.copy_(x)


def _rfft2_freqs(height: int, width: int) -> Tensor:
    """Radial frequency (cycles per pixel) of each rfft2 coefficient, shape (H, W // 2 + 1)."""
    fy = torch.fft.fftfreq(height, dtype=torch.float64)[:, None]
    fx = torch.fft.rfftfreq(width, dtype=torch.float64)[None, :]
    return torch.sqrt(fx * fx + fy * fy)


class FourierImage(_SquashedImage):
    """Lucid-style Fourier parameterization with a 1/f spectrum prior.

    Parameter ``spectrum``, shape (B, C, H, W // 2 + 1, 2): the real and imaginary parts of the
    rfft2 coefficients, N(0, sd) at init. ``forward()`` multiplies them by the buffer ``scale`` =
    1 / max(f, 1 / max(H, W)) ** decay_power (f = radial frequency in cycles per pixel), takes
    ``irfft2(..., s=(H, W), norm="ortho") / 4`` (Lucid's factor), optionally decorrelates the
    colours, then applies a sigmoid. Any H, W (odd, non-square) works. The imaginary parts of
    the purely real coefficients (DC; Nyquist for even sizes) are ignored by irfft2 and get zero
    gradient.

    Shape:
        forward() -> (batch, channels, height, width)
    """

    scale: Tensor

    def __init__(
        self,
        height: int,
        width: int,
        *,
        batch: int = 1,
        channels: int = 3,
        sd: float = 0.01,
        decay_power: float = 1.0,
        generator: torch.Generator | None = None,
        decorrelate: bool = False,
    ) -> None:
        super().__init__(batch, channels, height, width, decorrelate=decorrelate, squash="sigmoid")
        sd = check_real("sd", sd, ge=0.0)
        self.decay_power = check_real("decay_power", decay_power, ge=0.0)
        freqs = _rfft2_freqs(height, width)
        scale = 1.0 / freqs.clamp(min=1.0 / max(height, width)) ** self.decay_power
        self.register_buffer("scale", scale.to(torch.get_default_dtype()), persistent=False)
        shape = (*self.shape[:3], freqs.shape[1], 2)
        noise = _randn(shape, sd, check_generator(generator)).to(torch.get_default_dtype())
        self.spectrum = nn.Parameter(noise)

    @classmethod
    def from_image(
        cls, img: Tensor, *, decay_power: float = 1.0, decorrelate: bool = False
    ) -> FourierImage:
        """A FourierImage whose ``forward()`` returns ``img`` (B, C, H, W) in [0, 1].

        The module takes ``img``'s device and dtype; values are clipped to [1e-4, 1 - 1e-4]
        before the logit.
        """
        img = _image_arg(img)
        b, c, h, w = img.shape
        module = cls(
            h, w, batch=b, channels=c, sd=0.0, decay_power=decay_power, decorrelate=decorrelate
        )
        module = module.to(device=img.device, dtype=img.dtype)
        module.set_image_(img)
        return module

    def raw(self) -> Tensor:
        # Lucid's 1/4 goes with the (small) scale rather than the image: one pass fewer
        spec = torch.view_as_complex(self.spectrum) * (self.scale * 0.25)
        return torch.fft.irfft2(spec, s=(self.height, self.width), norm="ortho")

    def _encode_(self, x: Tensor) -> None:
        spec = torch.fft.rfft2(x * 4.0, norm="ortho") / self.scale
        self.spectrum.copy_(torch.view_as_real(spec))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, decay_power={self.decay_power}"


# --------------------------------------------------------------------------- MACO

MAGNITUDE_FILE = "maco_magnitude.npy"
"""The shipped magnitude template in ``midnite/data``: (3, 256, 129) float16 (see
``maco_magnitude``)."""

# logit(photo) is taken of photos clipped to [_PHOTO_EPS, 1 - _PHOTO_EPS]: saturated pixels
# would otherwise turn into +-9 steps whose edges fill the high frequencies.
_PHOTO_EPS = 0.02
# Below this radius (in the template's frequency bins) the template is extrapolated as 1/f
# along rays rather than interpolated: there bilinear interpolation would mix in the DC term.
_LOW_BINS = 1.5


def _check_magnitude(magnitude: object) -> Tensor:
    if not isinstance(magnitude, Tensor):
        raise TypeError(
            f"magnitude must be a torch.Tensor (C, H, W // 2 + 1), got {type(magnitude).__name__}"
        )
    if magnitude.dim() != 3 or magnitude.shape[1] < 2 or magnitude.shape[2] < 2:
        raise ValueError(
            "magnitude must have shape (C, H, W // 2 + 1) with H >= 2 and W // 2 + 1 >= 2, "
            f"got {tuple(magnitude.shape)}"
        )
    if magnitude.dtype.is_complex or not magnitude.is_floating_point():
        raise TypeError(f"magnitude must be a real floating-point tensor, got {magnitude.dtype}")
    if not bool(torch.isfinite(magnitude).all()) or bool((magnitude < 0).any()):
        raise ValueError("magnitude must hold finite, non-negative values")
    return magnitude


def resize_magnitude(magnitude: Tensor, height: int, width: int) -> Tensor:
    """A magnitude template ``(C, Hs, Ws // 2 + 1)`` (rfft2 layout, ``norm="ortho"``, ``Ws``
    even) sampled at the rfft2 frequencies of an ``height`` x ``width`` image: ``(C, height,
    width // 2 + 1)``, float32, DC set to 0.

    The template is read as a function of frequency in cycles per pixel (natural images are
    close to scale invariant, and ortho-normalized magnitudes do not grow with the image), so
    any size works: bilinear interpolation on the template's grid, and below 1.5 of its
    frequency bins a 1/f extrapolation along each ray from that radius (a canvas larger than
    the template has frequencies the template never saw). It cannot know the anisotropy of
    frequencies below the template's lowest.
    """
    magnitude = _check_magnitude(magnitude).detach().to("cpu", torch.float64)
    height = check_positive_int("height", height)
    width = check_positive_int("width", width)
    _, hs, ks = magnitude.shape
    ws = 2 * (ks - 1)
    # rows in fftshift order, -hs//2 .. (hs-1)//2, plus +hs/2 (the same frequency as -hs/2)
    grid_t = torch.roll(magnitude, hs // 2, dims=1)
    if hs % 2 == 0:
        grid_t = torch.cat([grid_t, grid_t[:, :1]], dim=1)
    low, high = -(hs // 2), (hs - 1) // 2 + (hs % 2 == 0)  # row index range of grid_t
    fy = torch.fft.fftfreq(height, dtype=torch.float64)[:, None] * hs  # in template bins
    fx = torch.fft.rfftfreq(width, dtype=torch.float64)[None, :] * ws
    fy, fx = torch.broadcast_tensors(fy, fx)
    r = torch.sqrt(fy * fy + fx * fx)
    stretch = torch.where(r < _LOW_BINS, _LOW_BINS / r.clamp(min=1e-12), torch.ones_like(r))
    gy, gx = fy * stretch, fx * stretch
    # grid_sample with align_corners=True: -1 is the first row/column, +1 the last
    sample = torch.stack([gx / (ks - 1) * 2 - 1, (gy - low) / (high - low) * 2 - 1], dim=-1)
    out = F.grid_sample(
        grid_t[None], sample[None], mode="bilinear", padding_mode="border", align_corners=True
    )[0]
    out = out * torch.where(r < _LOW_BINS, stretch, torch.ones_like(r))  # 1/f below _LOW_BINS
    out[:, 0, 0] = 0.0
    return out.to(torch.float32)


def maco_magnitude(height: int, width: int | None = None, channels: int = 3) -> Tensor:
    """The shipped magnitude template resized to ``height`` x ``width``:
    ``(channels, height, width // 2 + 1)`` float32 (see ``resize_magnitude``).

    Made from public-domain and CC0 photographs (``midnite/data/README.md``) in the colour space
    ``MacoImage`` trains in: logit of the pixels, decorrelated colour. ``channels`` other than 3
    get the root mean square of the three channels in each (an approximation for grey images).
    """
    width = height if width is None else width
    channels = check_positive_int("channels", channels)
    with resources.as_file(resources.files("midnite") / "data" / MAGNITUDE_FILE) as path:
        if not path.is_file():
            raise FileNotFoundError(
                f"the MACO magnitude template {path} is missing: reinstall midnite, or make it "
                "with scripts/make_magnitude.py"
            )
        data = np.load(path, allow_pickle=False)
    template = torch.from_numpy(data.astype(np.float32))
    if channels != template.shape[0]:
        template = template.square().mean(0, keepdim=True).sqrt().expand(channels, -1, -1)
    return resize_magnitude(template, height, width)


def _tensor_batch(images: object, size: int) -> Tensor:
    """A float image tensor as (N, 3, size, size) in [0, 1]: centre square, resized."""
    if not isinstance(images, Tensor):
        raise TypeError(
            "images must be a float tensor (N, C, H, W) or (C, H, W) (files and folders: "
            f"midnite.analysis.magnitude_from_images), got {type(images).__name__}"
        )
    x = images if images.dim() == 4 else images[None] if images.dim() == 3 else None
    if x is None or x.shape[1] not in (1, 3) or not x.is_floating_point():
        raise ValueError(
            "images must be a float tensor (N, C, H, W) or (C, H, W) with C 1 or 3, values "
            f"in [0, 1], got {images.dtype} {tuple(images.shape)}"
        )
    if x.shape[0] == 0 or min(x.shape[-2:]) < 2:
        raise ValueError(f"images must hold at least one image, got {tuple(x.shape)}")
    x = x.detach().to("cpu", torch.float32).expand(-1, 3, -1, -1)
    h, w = x.shape[-2:]
    s = min(h, w)
    x = x[..., (h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    if s != size:
        x = F.interpolate(x, size=(size, size), mode="bicubic", antialias=s > size)
    return x.clamp(0, 1)


def magnitude_from_images(images: object, size: int = 256) -> Tensor:
    """A MACO magnitude template from natural photographs: ``(3, size, size // 2 + 1)``.

    ``images``: a float tensor (N, C, H, W) / (C, H, W) in [0, 1] with 1 or 3 channels (grey
    images are repeated to RGB); files and folders are read by the tooling's
    ``midnite.analysis.magnitude_from_images``, which calls this function. Each image's
    centre square is resized to ``size`` (an even int >= 8), taken to the space ``MacoImage``
    trains in (logit of the pixels clipped to [0.02, 0.98], decorrelated colour), and the
    magnitude of its ``rfft2(norm="ortho")`` under a Hann window (of unit mean square, so that
    the border jump adds no cross to the spectrum) is averaged over the images; the DC term
    (the mean colour) is set to 0: MACO images are centred on grey. A few photos give a noisy
    template: the shipped one averages crops and mirror images of several
    (``scripts/make_magnitude.py``).
    """
    size = check_int("size", size, 8)
    if size % 2:
        raise ValueError(f"size must be an even int >= 8, got {size}")
    x = _tensor_batch(images, size)
    decorrelation = ColorDecorrelation(3)
    raw = decorrelation.inverse(torch.logit(x.clamp(_PHOTO_EPS, 1.0 - _PHOTO_EPS)))
    # a Hann window (unit mean square) hides the jump between opposite borders, which would
    # otherwise add a cross of energy on the frequency axes (a grid texture in the images)
    raw = raw.double() - raw.double().mean((-2, -1), keepdim=True)
    hann = torch.hann_window(size, periodic=False, dtype=torch.float64)
    window = hann[:, None] * hann[None, :]
    window = window / window.square().mean().sqrt()
    magnitude = torch.fft.rfft2(raw * window, norm="ortho").abs().mean(0)
    magnitude[:, 0, 0] = 0.0
    return magnitude.to(torch.float32)


class MacoImage(_SquashedImage):
    """MACO: a fixed Fourier magnitude (natural images'), a trainable phase.

    Buffer ``magnitude`` (C, H, W // 2 + 1) and parameter ``phase`` (B, C, H, W // 2 + 1),
    uniform in [-pi, pi) at init. ``raw()`` = ``irfft2(magnitude * exp(i phase), norm="ortho")``,
    then colour decorrelation and a sigmoid, as ``FourierImage``. The phase is made Hermitian
    where rfft2 stores a frequency and its mirror (first column, and last for even W): there the
    antisymmetric part of the phase is used, so ``|rfft2(raw())|`` equals ``magnitude`` exactly
    (to float rounding) and no gradient reaches the magnitude, which is a buffer. The mean
    colour is the template's DC (0 for the shipped one: grey).

    ``magnitude``: None for the shipped template (``maco_magnitude``), or a template of any size
    (``magnitude_from_images``; resized by ``resize_magnitude``) with ``channels`` or 1 channels.
    A MACO image cannot hold an arbitrary image, so ``set_image_``/``from_image`` are refused.

    Shape:
        forward() -> (batch, channels, height, width)
    """

    magnitude: Tensor
    mirror: Tensor
    hermitian: Tensor

    def __init__(
        self,
        height: int,
        width: int,
        *,
        batch: int = 1,
        channels: int = 3,
        magnitude: Tensor | None = None,
        generator: torch.Generator | None = None,
        decorrelate: bool = True,
    ) -> None:
        super().__init__(batch, channels, height, width, decorrelate=decorrelate, squash="sigmoid")
        if magnitude is None:
            mag = maco_magnitude(height, width, channels)
        else:
            mag = resize_magnitude(magnitude, height, width)
            if mag.shape[0] not in (1, channels):
                raise ValueError(
                    f"magnitude must have {channels} channel(s) (or 1), got {mag.shape[0]}"
                )
            mag = mag.expand(channels, -1, -1)
        dtype = torch.get_default_dtype()
        self.register_buffer("magnitude", mag.to(dtype).contiguous(), persistent=False)
        k = width // 2 + 1
        mirror = (-torch.arange(height)) % height  # row of each row's mirror frequency
        hermitian = torch.zeros(k, dtype=torch.bool)
        hermitian[0] = True
        if width % 2 == 0:
            hermitian[-1] = True
        self.register_buffer("mirror", mirror, persistent=False)
        self.register_buffer("hermitian", hermitian, persistent=False)
        generator = check_generator(generator)
        where = generator.device if generator is not None else torch.device("cpu")
        shape = (batch, channels, height, k)
        phase = torch.rand(shape, generator=generator, device=where).cpu() * (2 * math.pi) - math.pi
        self.phase = nn.Parameter(phase.to(dtype))

    def effective_phase(self) -> Tensor:
        """The phase ``raw()`` uses: ``phase`` made Hermitian on the self-mirrored columns."""
        mirrored = (self.phase - self.phase[:, :, self.mirror]) * 0.5
        return torch.where(self.hermitian, mirrored, self.phase)

    def raw(self) -> Tensor:
        phase = self.effective_phase()
        mag = self.magnitude.to(phase.dtype)
        spec = torch.complex(mag * torch.cos(phase), mag * torch.sin(phase))
        return torch.fft.irfft2(spec, s=(self.height, self.width), norm="ortho")

    def set_image_(self, img: Tensor) -> None:
        raise TypeError(
            "a MacoImage cannot hold an arbitrary image (its magnitude is fixed): use "
            "param='fourier' or 'pixel' to start from an image"
        )

    @classmethod
    def from_image(cls, img: Tensor, **kwargs: object) -> MacoImage:
        raise TypeError(
            "a MacoImage cannot hold an arbitrary image (its magnitude is fixed): use "
            "FourierImage.from_image or PixelImage.from_image"
        )


def image(
    height: int,
    width: int | None = None,
    *,
    batch: int = 1,
    channels: int = 3,
    fft: bool = True,
    decorrelate: bool = True,
    sd: float = 0.01,
    generator: torch.Generator | None = None,
) -> Parameterization:
    """The engine's factory: a FourierImage (``fft``) or a sigmoid PixelImage.

    ``width`` defaults to ``height``. ``decorrelate`` is a no-op unless ``channels == 3``.
    """
    width = height if width is None else width
    if check_bool("fft", fft):
        return FourierImage(
            height,
            width,
            batch=batch,
            channels=channels,
            sd=sd,
            generator=generator,
            decorrelate=decorrelate,
        )
    return PixelImage(
        height,
        width,
        batch=batch,
        channels=channels,
        sd=sd,
        generator=generator,
        squash="sigmoid",
        decorrelate=decorrelate,
    )
