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

import torch
from torch import Tensor, nn

from midnite.engine.checks import (
    check_bool,
    check_generator,
    check_image,
    check_positive_int,
    check_real,
)
from midnite.engine.color import COLOR_CORRELATION_SVD_SQRT, ColorDecorrelation
from midnite.engine.magnitude import (
    MAGNITUDE_FILE,
    maco_magnitude,
    magnitude_from_images,
    resize_magnitude,
)
from midnite.engine.settings import MacoColour

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


class MacoImage(_SquashedImage):
    """MACO: a fixed Fourier magnitude (natural images'), a trainable phase.

    Buffer ``magnitude`` (C, H, W // 2 + 1) and parameter ``phase`` (B, C, H, W // 2 + 1),
    uniform in [-pi, pi) at init. ``raw()`` = ``irfft2(magnitude * exp(i phase), norm="ortho")``,
    then colour decorrelation and a sigmoid, as ``FourierImage``. The phase is made Hermitian
    where rfft2 stores a frequency and its mirror (first column, and last for even W): there the
    antisymmetric part of the phase is used, so ``|rfft2(raw())|`` equals ``magnitude`` exactly
    (to float rounding) and no gradient reaches the magnitude, which is a buffer. The mean
    colour is the template's DC (0 for the shipped one: grey).

    ``saturation`` scales the template's chroma channels (1 and 2 of the decorrelated colour;
    needs ``decorrelate`` and 3 channels unless 1). ``mean=True`` adds a parameter ``mean``
    (B, C, 1, 1), zero at init, to ``raw()``: a trained mean colour; ``|rfft2(raw())|`` then
    differs from ``magnitude`` at the DC term only.

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
        saturation: float = 1.0,
        mean: bool = False,
    ) -> None:
        super().__init__(batch, channels, height, width, decorrelate=decorrelate, squash="sigmoid")
        colour = MacoColour(saturation, mean)  # checks both
        if colour.saturation != 1.0 and not (decorrelate and channels == 3):
            raise ValueError(
                "saturation scales the decorrelated colour's chroma channels: it needs "
                f"decorrelate=True and 3 channels, got decorrelate={decorrelate}, "
                f"channels={channels}"
            )
        if magnitude is None:
            mag = maco_magnitude(height, width, channels)
        else:
            mag = resize_magnitude(magnitude, height, width)
            if mag.shape[0] not in (1, channels):
                raise ValueError(
                    f"magnitude must have {channels} channel(s) (or 1), got {mag.shape[0]}"
                )
            mag = mag.expand(channels, -1, -1)
        if colour.saturation != 1.0:
            gain = torch.tensor([1.0, colour.saturation, colour.saturation], dtype=mag.dtype)
            mag = mag * gain[:, None, None]
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
        self.saturation = colour.saturation
        self.mean = nn.Parameter(torch.zeros(batch, channels, 1, 1, dtype=dtype)) if mean else None

    def effective_phase(self) -> Tensor:
        """The phase ``raw()`` uses: ``phase`` made Hermitian on the self-mirrored columns."""
        mirrored = (self.phase - self.phase[:, :, self.mirror]) * 0.5
        return torch.where(self.hermitian, mirrored, self.phase)

    def raw(self) -> Tensor:
        phase = self.effective_phase()
        mag = self.magnitude.to(phase.dtype)
        spec = torch.complex(mag * torch.cos(phase), mag * torch.sin(phase))
        x = torch.fft.irfft2(spec, s=(self.height, self.width), norm="ortho")
        return x if self.mean is None else x + self.mean

    def extra_repr(self) -> str:
        mean = self.mean is not None
        return f"{super().extra_repr()}, saturation={self.saturation:g}, mean={mean}"

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
