"""midnite: feature visualization for PyTorch.

The package is built in floors, each importing only from those below (``docs/architecture.md``):

- ``midnite.engine``: parameterizations, transforms, hooks, objectives, the step loop;
  ``midnite.render(model, objective)`` renders images that maximize an objective and
  ``midnite.render_steps`` is the same loop, one step at a time.
- ``midnite.classic`` (also ``midnite.visualization``): the classic API of the original
  notebook (``PixelActivation`` & co.), a thin layer over the engine.
- ``midnite.images`` (the one loader and PNG encoder), ``models``, ``plot``;
  ``midnite.analysis`` (``top_examples``: the images of a folder that excite each unit most) and
  ``midnite.evaluation`` (metrics, known answers, photos); ``midnite.store`` (typed records,
  atomic files); ``midnite.pages`` (every HTML page); ``midnite.jobs`` (the one resumable
  runner behind ``midnite render`` and ``midnite catalogue``); ``midnite.cli``.

This module is the facade: the names below, and ``render`` whose ``init`` may also be a path.
"""

from __future__ import annotations

import functools
import os

from midnite import engine as _engine
from midnite.analysis import TopExamples, top_examples
from midnite.analysis import concepts as _concepts_analysis
from midnite.engine import (
    Crops,
    Init,
    LayerNotFoundError,
    MacoColour,
    RenderConfig,
    RenderResult,
    StepState,
    device,
    get_device,
    layers,
    objectives,
    param,
    recipes,
    render_config,
    render_steps,
    transforms,
)
from midnite.errors import MidniteError, UsageError
from midnite.evaluation.trust import TrustReport, trust
from midnite.images import load as load_image
from midnite.store import concepts as _concepts_store

__version__ = "0.3.0.dev0"

__all__ = [
    "Concepts",
    "Crops",
    "Init",
    "LayerNotFoundError",
    "MacoColour",
    "MidniteError",
    "RenderConfig",
    "RenderResult",
    "StepState",
    "TopExamples",
    "TrustReport",
    "UsageError",
    "__version__",
    "concepts",
    "device",
    "get_device",
    "layers",
    "load_image",
    "objectives",
    "param",
    "recipes",
    "render",
    "render_config",
    "render_steps",
    "top_examples",
    "transforms",
    "trust",
]


_PATH_NOTE = """
    ``init`` may also be an image file's path (``str`` or ``os.PathLike``): ``midnite.render``
    reads it with ``midnite.images.load`` (any size, grey or RGBA), the engine resizes it to the
    render's size. For penalties, ``Init(midnite.load_image(path), penalty=...)``.
"""


@functools.wraps(_engine.render)
def render(*args, **settings):
    init = settings.get("init")
    if isinstance(init, (str, os.PathLike)):
        settings["init"] = load_image(init)
    return _engine.render(*args, **settings)


render.__doc__ = f"{_engine.render.__doc__}{_PATH_NOTE}"


class Concepts(_concepts_analysis.Concepts):
    """A layer's concept dictionary (``midnite.analysis.concepts.Concepts``) that saves itself."""

    def save(self, path):
        """Write the dictionary to ``path`` atomically (weights digest, layer, method, settings)."""
        return _concepts_store.save_concepts(path, self)

    @classmethod
    def load(cls, path, model, layer=None):
        """The dictionary saved at ``path`` on ``model``; another model's or layer's is refused."""
        return cls._of(_concepts_store.load_concepts(path, model, layer))

    @classmethod
    def from_directions(cls, model, layer, directions, **options):
        """Concepts from an ``(n, C)`` dictionary learned elsewhere (e.g. an Overcomplete SAE)."""
        return cls._of(_concepts_analysis.from_directions(model, layer, directions, **options))

    @classmethod
    def _of(cls, base):
        return cls(**{f: getattr(base, f) for f in base.__dataclass_fields__})


def concepts(model, layer, images, n, method=None, **options):
    """Learn ``n`` concepts of ``layer`` from ``images`` (see ``midnite.analysis.concepts.fit``)."""
    return Concepts._of(_concepts_analysis.fit(model, layer, images, n, method, **options))
