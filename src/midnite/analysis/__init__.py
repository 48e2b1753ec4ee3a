"""Analysis: a model and images in, arrays out; this floor writes no files.

Floor 2, above ``midnite.images`` and the engine: the activation stream (``stream``: images
named by a folder, files or in-memory, loaded once, threads ahead), receptive fields
(``fields``), each unit's top examples and the merge of shards (``examples``), and the MACO
magnitude of photographs (``magnitude``). Images enter through ``midnite.images`` only.
"""

from midnite.analysis.examples import (
    Example,
    LayerExamples,
    TopExamples,
    load_image,
    merge,
    top_examples,
)
from midnite.analysis.fields import Box, ReceptiveField, receptive_fields
from midnite.analysis.magnitude import magnitude_from_images
from midnite.analysis.stream import ImageId
from midnite.images import UnreadableImageError, UnreadableImageWarning, list_images

__all__ = [
    "Box",
    "Example",
    "ImageId",
    "LayerExamples",
    "ReceptiveField",
    "TopExamples",
    "UnreadableImageError",
    "UnreadableImageWarning",
    "list_images",
    "load_image",
    "magnitude_from_images",
    "merge",
    "receptive_fields",
    "top_examples",
]
