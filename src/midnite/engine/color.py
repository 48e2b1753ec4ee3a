"""Colour decorrelation: ImageNet's colour covariance, so that colour channels train apart.

Pure tensor maths (no files); ``ColorDecorrelation`` is used by every parameterization and by
the MACO magnitude template.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from midnite.engine.checks import check_positive_int

__all__ = ["COLOR_CORRELATION_SVD_SQRT", "ColorDecorrelation"]

# Square root (via SVD) of the colour covariance of ImageNet pixels, rows = RGB output,
# columns = decorrelated input channels. Source: the matrix used by Lucid (tensorflow/lucid,
# ``lucid/optvis/param/color.py``, ``color_correlation_svd_sqrt``). Lucid divides it by its
# largest column norm (``max_norm_svd_sqrt``); ColorDecorrelation does the same.
COLOR_CORRELATION_SVD_SQRT: tuple[tuple[float, float, float], ...] = (
    (0.26, 0.09, 0.02),
    (0.27, 0.00, -0.05),
    (0.27, -0.09, 0.03),
)


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
