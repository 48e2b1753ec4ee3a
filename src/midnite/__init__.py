"""midnite: feature visualization for PyTorch.

Three layers, one way down:

- ``midnite.engine``: parameterizations, transforms, hooks, objectives, the render loop;
  ``midnite.render(model, objective)`` renders images that maximize an objective.
- ``midnite.visualization``: the classic API of the original notebook (``PixelActivation`` &
  co.), a thin layer over the engine.
- tooling: ``midnite.cli``, ``records``, ``gallery``, ``metrics``, ``models``, ``plot``,
  ``known_answer`` and ``dataset_examples`` (``midnite.top_examples``: the images of a folder
  that excite each unit most), using the engine's public API only.
"""

from midnite.dataset_examples import TopExamples, top_examples
from midnite.engine import (
    LayerNotFoundError,
    RenderConfig,
    RenderResult,
    device,
    get_device,
    layers,
    objectives,
    param,
    recipes,
    render,
    render_config,
    transforms,
)

__version__ = "0.3.0.dev0"

__all__ = [
    "LayerNotFoundError",
    "RenderConfig",
    "RenderResult",
    "TopExamples",
    "__version__",
    "device",
    "get_device",
    "layers",
    "objectives",
    "param",
    "recipes",
    "render",
    "render_config",
    "top_examples",
    "transforms",
]
