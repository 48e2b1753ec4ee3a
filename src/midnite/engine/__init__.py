"""The render engine: everything between an image parameterization and its loss.

    param -> transforms -> normalize -> model, hooked at named layers (hooks)
      -> objectives (+ regularizers) -> loss -> optimizer   (passes, loop, config, recipes)

``render(model, objective, **settings)`` runs ``RenderConfig.resolve``'s settings (grouped ones:
``Crops``, ``Init``, ``MacoColour``); ``render_steps`` is the same loop as a generator of
``StepState``.

This package knows nothing of files, pages, clusters or the classic (notebook) names; the
classic API (``midnite.classic``) and the tooling (CLI, records, gallery, metrics) are
built on what it exports here.

Randomness: every random draw takes a ``generator``; ``generator=None`` means torch's default
generator for the device, as in torch itself. ``render`` always passes generators seeded from
its ``seed``, so one seed on one device gives one image.
"""

from midnite.engine import accel, objectives, param, recipes, regularizers, tokens, transforms
from midnite.engine.config import RenderConfig, versions
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
from midnite.engine.loop import StepState, render, render_config, render_steps, steps_config
from midnite.engine.normalize import IMAGENET_MEAN, IMAGENET_STD, Normalize, as_normalize
from midnite.engine.objectives import Objective
from midnite.engine.passes import Renderer
from midnite.engine.result import RenderResult
from midnite.engine.seeds import Generators, generators, make_generator
from midnite.engine.settings import Crops, Init, MacoColour
from midnite.engine.tokens import TokenGrid, set_token_grid, token_grid

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "OUTPUT",
    "ActivationCapture",
    "Crops",
    "Generators",
    "Init",
    "LayerInfo",
    "LayerNotFoundError",
    "LayerTable",
    "MacoColour",
    "Normalize",
    "Objective",
    "RenderConfig",
    "RenderResult",
    "Renderer",
    "StepState",
    "TokenGrid",
    "accel",
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
    "render_steps",
    "resolve_device",
    "set_token_grid",
    "steps_config",
    "token_grid",
    "tokens",
    "transforms",
    "versions",
]
