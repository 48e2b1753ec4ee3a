"""The one place images enter and leave midnite: files and in-memory images in, PNG bytes out.

Floor 1, above the engine only: ``encode`` turns [0, 1] tensors into uint8 pixels and PNG bytes
(every PNG midnite writes comes from ``png_bytes``).
"""

from midnite.images.encode import alpha_png, as_float_image, png_bytes, to_hwc, to_uint8

__all__ = ["alpha_png", "as_float_image", "png_bytes", "to_hwc", "to_uint8"]
