"""Old import path of the render engine's names, now split by concern (the same objects).

``Renderer`` and ``InitPenalty``: ``midnite.engine.passes``; ``render``, ``render_config`` and
the step loop: ``midnite.engine.loop``; ``RenderResult``: ``midnite.engine.result``;
``estimate_memory``: ``midnite.engine.memory``; seeds and generators: ``midnite.engine.seeds``.
"""

from midnite.engine.config import versions
from midnite.engine.loop import _make_optimizer, _setup, render, render_config
from midnite.engine.memory import MemoryEstimate, estimate_memory
from midnite.engine.passes import InitPenalty, Renderer
from midnite.engine.result import RenderResult, _failures
from midnite.engine.seeds import Generators, generators, make_generator

__all__ = [
    "Generators",
    "InitPenalty",
    "MemoryEstimate",
    "RenderResult",
    "Renderer",
    "_failures",
    "_make_optimizer",
    "_setup",
    "estimate_memory",
    "generators",
    "make_generator",
    "render",
    "render_config",
    "versions",
]
