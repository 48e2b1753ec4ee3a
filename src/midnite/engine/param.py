"""Image parameterizations: ``nn.Module``s that hold the trainable tensors of an image batch.

Contract: ``module()`` takes no argument and returns the images, shape (B, C, H, W), values in
[0, 1] (except ``squash="none"``, where the caller keeps the range); an optimizer runs on
``module.parameters()``. Parameters are created on the CPU; ``.to(device)`` moves everything.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from midnite.engine.checks import (
    check_bool,
    check_generator,
    check_image,
    check_positive_int,
    check_real,
)

__all__ = [
    "COLOR_CORRELATION_SVD_SQRT",
    "SQUASHES",
    "ColorDecorrelation",
    "FourierImage",
    "Parameterization",
    "PixelImage",
    "image",
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
