"""Grouped render settings: ``Crops`` (a canvas seen through random crops), ``Init`` (feature
accentuation's start images and the penalties that keep the result near them) and
``MacoColour`` (the colour of ``param="maco"`` images).

Each group is frozen and checks its values when made: ``render(model, objective,
crops=Crops(count=6), init=Init(photo, penalty=1e4))``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor

from midnite.engine.checks import as_images, check_positive_int, check_real, check_size

__all__ = ["MAX_CROPS", "Crops", "Init", "MacoColour", "as_init"]

MAX_CROPS = 256  # crops per image and step: each is one more image through the model


@dataclass(frozen=True)
class Crops:
    """Render images larger than the model's input (a canvas) and show the model random crops.

    Each step the model sees ``count`` random boxes of each image, each a fraction in
    ``scale`` ``(low, high)`` of the canvas side, resized to the render's ``size``, plus
    N(0, ``noise``) pixel noise (``transforms.random_crops``); the objective is their mean.
    ``canvas``: the images' ``H`` or ``(H, W)``; None: the recipe's ratio of the render's
    ``size`` (``Recipe.canvas``, 1.25), filled in by ``RenderConfig.resolve``.
    """

    count: int = 4
    scale: tuple[float, float] = (0.5, 1.0)
    noise: float = 0.05
    canvas: int | tuple[int, int] | None = None

    def __post_init__(self) -> None:
        count = check_positive_int("crops.count", self.count)
        if count > MAX_CROPS:
            raise ValueError(
                f"crops.count must be at most {MAX_CROPS} per image and step, got {count}"
            )
        scale = self.scale
        if not isinstance(scale, (tuple, list)) or len(scale) != 2:
            raise TypeError(
                "crops.scale must be a pair (low, high) of fractions of the canvas side in "
                f"(0, 1], got {type(scale).__name__} {scale!r}"
            )
        low = check_real("crops.scale[0]", scale[0], gt=0.0, le=1.0)
        high = check_real("crops.scale[1]", scale[1], gt=0.0, le=1.0)
        if low > high:
            raise ValueError(f"crops.scale must satisfy low <= high, got {tuple(scale)!r}")
        values: dict[str, Any] = {
            "count": count,
            "scale": (low, high),
            "noise": check_real("crops.noise", self.noise, ge=0.0),
            "canvas": None if self.canvas is None else check_size("crops.canvas", self.canvas),
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)  # frozen: canonical values set once, here


@dataclass(frozen=True, eq=False)
class Init:
    """Feature accentuation (Hamblin et al. 2024): start the render from ``image`` and stay near it.

    ``image``: any in-memory image (``checks.as_images``: a tensor, numpy array or PIL image;
    HWC or CHW; grey, RGB or RGBA; uint8 or float in [0, 1]; any size), or a batch; held as a
    float32 CPU tensor ``(B, C, H, W)`` and resized to the render's size by ``RenderConfig``.
    ``penalty`` (λ >= 0) adds λ · mean squared pixel distance to it to the loss;
    ``layer_penalty`` (μ > 0) adds μ · mean squared distance of ``layer``'s activations to the
    image's. Its scale follows the objective's: on EfficientNet-Lite0 ``_blocks.8`` channel 5
    (values ~5-20; a 160 px photo, 64 steps) λ = 1e5 kept SSIM 0.98 to the photo while the
    channel doubled, 1e4 gave SSIM 0.86, 0 gave 0.54.
    """

    image: Tensor
    penalty: float = 0.0
    layer: str | None = None
    layer_penalty: float = 0.0

    def __post_init__(self) -> None:
        layer = self.layer
        if layer is not None and not isinstance(layer, str):
            raise TypeError(
                f"init.layer must be a layer name (str) or None, got {type(layer).__name__} "
                f"{layer!r}"
            )
        penalty = check_real("init.penalty", self.penalty, ge=0)
        layer_penalty = check_real("init.layer_penalty", self.layer_penalty, ge=0)
        if (layer is None) != (layer_penalty == 0.0):
            raise ValueError(
                "init.layer and init.layer_penalty go together (the layer whose activations "
                f"stay near the init's, and a weight > 0), got layer={layer!r}, "
                f"layer_penalty={layer_penalty!r}"
            )
        object.__setattr__(self, "image", as_images("init", self.image))
        object.__setattr__(self, "penalty", penalty)
        object.__setattr__(self, "layer_penalty", layer_penalty)

    def __repr__(self) -> str:
        layer = (
            f", layer={self.layer!r}, layer_penalty={self.layer_penalty:g}" if self.layer else ""
        )
        return f"Init(image {tuple(self.image.shape)}, penalty={self.penalty:g}{layer})"


@dataclass(frozen=True)
class MacoColour:
    """The colour of ``param="maco"`` images (``MacoImage``'s ``saturation`` and ``mean``).

    ``saturation`` (> 0) scales the magnitude template's two chroma channels (the decorrelated
    colour's second and third); 1 is the template as shipped. ``mean``: a trainable mean colour
    per image (the DC term, which MACO fixes at grey). With neither, the natural recipe's
    class images had colourfulness 33 at 224 px where the photographs give 66
    (``benchmarks/RESULTS.md``); ``recipes.NATURAL`` holds the setting measured there.
    """

    saturation: float = 1.0
    mean: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "saturation", check_real("colour.saturation", self.saturation, gt=0)
        )
        if not isinstance(self.mean, bool):
            raise TypeError(
                f"colour.mean must be a bool, got {type(self.mean).__name__} {self.mean!r}"
            )


def as_init(init: object) -> Init | None:
    """``init`` as an ``Init``: None stays None, a bare image is ``Init(image)``."""
    if init is None or isinstance(init, Init):
        return init
    return Init(init)  # type: ignore[arg-type]  # as_images names what it accepts
