"""The render engine: everything between an image parameterization and its loss.

    param -> transforms -> normalize -> model, hooked at named layers (hooks)
      -> objectives (+ regularizers) -> loss -> optimizer       (renderer, recipes)

This package knows nothing of files, pages, clusters or the classic (notebook) names; the
classic API (``midnite.classic``) and the tooling (CLI, records, gallery, metrics) are
built on what it exports here.

Randomness: every random draw takes a ``generator``; ``generator=None`` means torch's default
generator for the device, as in torch itself. ``render`` always passes generators seeded from
its ``seed``, so one seed on one device gives one image.
"""

from midnite.engine import objectives, param, recipes, regularizers, tokens, transforms
from midnite.engine.config import RenderConfig
from midnite.engine.device import device, get_device, resolve_device
from midnite.engine.hooks import (
    OUTPUT,
    ActivationCapture,
    LayerInfo,
    LayerNotFoundError,
    LayerTable,
    frozen,
    input_channels,
    layers,
)
from midnite.engine.normalize import IMAGENET_MEAN, IMAGENET_STD, Normalize, as_normalize
from midnite.engine.objectives import Objective
from midnite.engine.renderer import (
    Generators,
    Renderer,
    RenderResult,
    generators,
    make_generator,
    render,
    render_config,
    versions,
)
from midnite.engine.tokens import TokenGrid, set_token_grid, token_grid

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "OUTPUT",
    "ActivationCapture",
    "Generators",
    "LayerInfo",
    "LayerNotFoundError",
    "LayerTable",
    "Normalize",
    "Objective",
    "RenderConfig",
    "RenderResult",
    "Renderer",
    "TokenGrid",
    "as_normalize",
    "device",
    "frozen",
    "generators",
    "get_device",
    "input_channels",
    "layers",
    "make_generator",
    "objectives",
    "param",
    "recipes",
    "regularizers",
    "render",
    "render_config",
    "resolve_device",
    "set_token_grid",
    "token_grid",
    "tokens",
    "transforms",
    "versions",
]
