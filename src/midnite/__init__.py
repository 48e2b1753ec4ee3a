"""midnite: feature visualization for PyTorch.

``midnite.render(model, objective)`` renders images that maximize an objective;
``midnite.visualization.base`` holds the seed notebook's API (``PixelActivation`` & co.).
"""

from midnite import objectives
from midnite._device import device, get_device
from midnite._model import LayerNotFoundError, layers
from midnite.engine import RenderResult, render

__version__ = "0.2.0"

__all__ = [
    "LayerNotFoundError",
    "RenderResult",
    "__version__",
    "device",
    "get_device",
    "layers",
    "objectives",
    "render",
]
