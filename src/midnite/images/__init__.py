"""The one place images enter and leave midnite: files and in-memory images in, PNG bytes out.

Floor 1, above the engine only. ``load`` is the one loader (files through the safe reader of
``read``: regular files only, bytes capped, hostile entries skipped and named); ``list_images``
and ``scan_folder`` the one folder walk; ``encode`` turns [0, 1] tensors into uint8 pixels and
PNG bytes (every PNG midnite writes comes from ``png_bytes``).
"""

from midnite.images.encode import alpha_png, as_float_image, png_bytes, to_hwc, to_uint8
from midnite.images.load import RESAMPLING, fit, load, shrink
from midnite.images.read import (
    MAX_FILE_BYTES,
    MAX_SKIPPED_SHOWN,
    Listing,
    UnreadableImageError,
    UnreadableImageWarning,
    decode,
    describe_skipped,
    list_images,
    read_file,
    scan_folder,
    shown,
)

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_SKIPPED_SHOWN",
    "RESAMPLING",
    "Listing",
    "UnreadableImageError",
    "UnreadableImageWarning",
    "alpha_png",
    "as_float_image",
    "decode",
    "describe_skipped",
    "fit",
    "list_images",
    "load",
    "png_bytes",
    "read_file",
    "scan_folder",
    "shown",
    "shrink",
    "to_hwc",
    "to_uint8",
]
