"""midnite: feature visualization for PyTorch."""

from midnite._device import device, get_device

__version__ = "0.2.0"

__all__ = ["__version__", "device", "get_device"]
