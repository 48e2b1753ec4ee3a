"""The classic between-iteration transforms, thin modules over the engine's image operations.

Each takes one image ``(C, H, W)`` or a batch ``(B, C, H, W)`` and returns the same rank, the
same size (except ``ResizeTransform``, which resizes by design) and values within the input's
range; ``t(img, generator=None)`` and ``t.transform(img, generator=None)`` are the same call.
``a + b`` returns a new ``TransformSequence`` (a then b) and mutates neither operand.
"""

from __future__ import annotations

import torch
from torch import Tensor

from midnite.engine import transforms as engine
from midnite.engine.checks import check_int, check_real
from midnite.engine.transforms import _check_diameter

__all__ = [
    "BilateralTransform",
    "BlurTransform",
    "RandomTransform",
    "ResizeTransform",
    "Transform",
    "TransformSequence",
]


class Transform(engine.Transform):
    """Base of the classic transforms: an engine transform that also takes one image.

    Subclasses implement ``forward(x, generator=None)`` on a batch ``(B, C, H, W)``, as engine
    transforms do; calling the transform (or ``transform``) with one image ``(C, H, W)`` runs
    ``forward`` on a batch of one and returns an image ``(C, H, W)``.
    """

    def __call__(self, img: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if isinstance(img, Tensor) and img.dim() == 3:
            return super().__call__(img.unsqueeze(0), generator)[0]
        if isinstance(img, Tensor) and img.dim() != 4:
            raise ValueError(
                f"image must have shape (C, H, W) or (B, C, H, W), got {tuple(img.shape)}"
            )
        return super().__call__(img, generator)

    def transform(self, img: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The transformed ``img``: one image ``(C, H, W)`` or a batch ``(B, C, H, W)``."""
        return self(img, generator)

    def __add__(self, other: object) -> TransformSequence:
        if not isinstance(other, engine.Transform):
            raise TypeError(
                f"can only add a Transform to a Transform, got {type(other).__name__}: {other!r}"
            )
        return TransformSequence(*_members(self), *_members(other))


def _members(t: engine.Transform) -> tuple[engine.Transform, ...]:
    return tuple(t) if isinstance(t, TransformSequence) else (t,)


class TransformSequence(Transform, engine.Compose):
    """Applies its transforms in order, passing the same ``generator`` to each.

    Built by ``a + b + c``; nested sequences are flattened; an empty sequence is the identity.
    Any engine transform may be a member.
    """

    def __repr__(self) -> str:
        if len(self) >= 2:
            return " + ".join(repr(t) for t in self)
        return f"{type(self).__name__}({', '.join(repr(t) for t in self)})"


class BlurTransform(Transform):
    """Box blur of footprint ``blur_size`` x ``blur_size`` (default 5); see ``box_blur``."""

    def __init__(self, blur_size: int = 5) -> None:
        super().__init__()
        self.blur_size = check_int("blur_size", blur_size, 1)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return engine.box_blur(x, self.blur_size)

    def _repr_params(self) -> dict[str, object]:
        return {"blur_size": self.blur_size}


class BilateralTransform(Transform):
    """Edge-preserving bilateral filter for [0, 1] images; see ``bilateral_filter``.

    ``diameter=9`` as in the notebook; ``sigma_color=0.1`` is in [0, 1] image units (about 25
    on a 0-255 scale), so the filter keeps edges on float images instead of blurring them.
    """

    def __init__(
        self, diameter: int = 9, sigma_color: float = 0.1, sigma_space: float = 3.0
    ) -> None:
        super().__init__()
        self.diameter = _check_diameter(diameter)
        self.sigma_color = check_real("sigma_color", sigma_color, gt=0.0)
        self.sigma_space = check_real("sigma_space", sigma_space, gt=0.0)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return engine.bilateral_filter(x, self.diameter, self.sigma_color, self.sigma_space)

    def _repr_params(self) -> dict[str, object]:
        return {
            "diameter": self.diameter,
            "sigma_color": self.sigma_color,
            "sigma_space": self.sigma_space,
        }


class RandomTransform(Transform):
    """Random shift (±``pixel_shift`` px), rotation (±``rot_deg``°) and scale
    ([1 - ``scale_fac``, 1 + ``scale_fac``]) per image, as one bilinear resampling.

    Keeps the size exactly and mirrors at the border (no black frame); values stay within the
    input's range. Defaults: 1 px, 0.3°, 0.1. The engine's ``random_affine`` with
    ``max_shift=pixel_shift, degrees=rot_deg, scales=(1 - scale_fac, 1 + scale_fac)``.
    """

    def __init__(
        self, pixel_shift: float = 1, rot_deg: float = 0.3, scale_fac: float = 0.1
    ) -> None:
        super().__init__()
        check_real("pixel_shift", pixel_shift, ge=0.0)
        check_real("rot_deg", rot_deg, ge=0.0)
        check_real("scale_fac", scale_fac, ge=0.0, lt=1.0)
        self.pixel_shift = pixel_shift
        self.rot_deg = rot_deg
        self.scale_fac = scale_fac

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return engine.random_affine(
            x,
            max_shift=self.pixel_shift,
            degrees=self.rot_deg,
            scales=(1.0 - self.scale_fac, 1.0 + self.scale_fac),
            generator=generator,
        )

    def _repr_params(self) -> dict[str, object]:
        return {
            "pixel_shift": self.pixel_shift,
            "rot_deg": self.rot_deg,
            "scale_fac": self.scale_fac,
        }


class ResizeTransform(Transform):
    """Resizes by ``scale_fac`` (default 1.2): changes the size on purpose; see ``resize``."""

    def __init__(self, scale_fac: float = 1.2) -> None:
        super().__init__()
        check_real("scale_fac", scale_fac, gt=0.0)
        self.scale_fac = scale_fac

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return engine.resize(x, self.scale_fac)

    def _repr_params(self) -> dict[str, object]:
        return {"scale_fac": self.scale_fac}
