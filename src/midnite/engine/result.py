"""``RenderResult``: what a render made, and the check that names the images that failed.

A render whose objective or image turns non-finite (NaN or infinite) is reported, not returned
as if it had worked: ``_failures`` runs once, after the last step, on values the render keeps
anyway, so the step loop has no host synchronization.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

__all__ = ["RenderResult"]


@dataclass
class RenderResult:
    """What ``render`` made: images, the objective's history and how they were made.

    Attributes:
        images: ``(B, C, H, W)`` float tensor on the CPU, values in [0, 1].
        history: ``(steps, B)`` objective per image at each step done (on transformed images;
            fewer rows than ``settings["steps"]`` when a callback stopped the render).
        start: ``(B,)`` objective on the start images; ``final``: on the results (no transforms).
        alpha: ``(B, H, W)`` float32 attribution map on the CPU, >= 0: ``|d loss / d image|`` at
            the parameterization's output (before per-step transforms; at its full size),
            averaged over colour channels and summed over all steps. The loss is the one the
            optimizer follows: the objective, regularizers and init penalties (where the
            penalties balance the objective, the map is small). Zero where no step's loss read a
            pixel; all zero after 0 steps. Unnormalized: compare maps of one render, or divide
            by the maximum. The alpha of a failed image is no result either (may hold NaN).
        settings: every setting that decides the images, with the seed; JSON-serializable.
        failed: ``{image index: reason}`` of the images whose objective or pixels turned
            non-finite (NaN or infinite); such an image may hold NaN and is no result. Empty
            when every image is fine (``ok``).
        snapshots: ``{step: (B, C, H, W) images in [0, 1] on the CPU}`` at the steps asked for
            with ``render(..., snapshots=...)`` (step 0: the start images).
    """

    images: Tensor
    history: Tensor
    start: Tensor
    final: Tensor
    alpha: Tensor
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0
    failed: dict[int, str] = field(default_factory=dict)
    snapshots: dict[int, Tensor] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether every image is a result (``failed`` is empty)."""
        return not self.failed

    def __len__(self) -> int:
        return self.images.shape[0]

    def __repr__(self) -> str:
        b, c, h, w = self.images.shape
        failed = f", failed: {sorted(self.failed)}" if self.failed else ""
        return (
            f"RenderResult({b} image(s) {c}x{h}x{w}, {self.history.shape[0]} steps, "
            f"objective {self.start.mean():.4g} -> {self.final.mean():.4g}, "
            f"seed={self.settings.get('seed')}{failed})"
        )


def _failures(
    start: Tensor, history: Tensor, final: Tensor, image: Tensor, alpha: Tensor | None = None
) -> dict[int, str]:
    """``{index: reason}`` of the images whose objective, pixels or alpha map are not finite.

    ``image`` is the raw result, before the clamp to [0, 1] (which would turn inf into 1).
    One check over values the render keeps anyway: no synchronization inside the step loop.
    """
    bad_start = ~torch.isfinite(start)
    bad_history = ~torch.isfinite(history)
    bad_final = ~torch.isfinite(final)
    bad_pixels = (~torch.isfinite(image)).flatten(1).sum(1).cpu()
    bad_alpha = torch.zeros_like(bad_start)
    if alpha is not None:
        bad_alpha = (~torch.isfinite(alpha)).flatten(1).any(1).cpu()
    bad = bad_start | bad_history.any(0) | bad_final | (bad_pixels > 0) | bad_alpha
    if not bool(bad.any()):
        return {}
    steps = history.shape[0]
    pixels = image[0].numel()
    failed = {}
    for i in bad.nonzero().flatten().tolist():
        if bad_start[i]:
            reason = (
                f"the objective is {float(start[i])} on the start image (the model or the "
                "objective gives non-finite values)"
            )
        elif bad_history[:, i].any():
            k = int(bad_history[:, i].nonzero()[0, 0])
            reason = (
                f"the objective turned {float(history[k, i])} at step {k + 1} of {steps} "
                "(the optimization diverged: try a smaller lr)"
            )
        elif bad_pixels[i]:
            reason = f"the image holds non-finite values ({int(bad_pixels[i])} of {pixels})"
        elif bad_alpha[i]:
            reason = "the loss's gradient turned non-finite (the alpha map holds NaN or inf)"
        else:
            reason = f"the objective is {float(final[i])} on the final image"
        failed[i] = reason
    return failed
