"""Names of a classifier's output units: the model's own, else ImageNet's 1,000 classes.

    unit_names(shape=(1000,), given=None)[281]  # 'tabby'

The ImageNet names ship with the package (``midnite/data/imagenet_classes.txt``, one per
line, in the standard class order; see ``data/README.md``); nothing is downloaded.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from importlib import resources

from midnite.errors import UsageError

__all__ = ["IMAGENET_CLASSES", "imagenet_classes", "unit_names"]

IMAGENET_CLASSES = 1000


@functools.cache
def imagenet_classes() -> tuple[str, ...]:
    """The 1,000 ImageNet-1k class names, index = class number (0 'tench' ... 999)."""
    text = (resources.files("midnite") / "data" / "imagenet_classes.txt").read_text("utf-8")
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(names) != IMAGENET_CLASSES:  # a damaged install, not a user error
        raise RuntimeError(f"midnite/data/imagenet_classes.txt holds {len(names)} names, not 1000")
    return names


def unit_names(units: int | None, given: Sequence[str] | None = None) -> Sequence[str] | None:
    """The names of an output of ``units`` units: ``given`` (the model's own; it must name
    every unit), else ImageNet's when ``units`` is 1,000, else None (no names)."""
    if given is not None:
        names = list(given)
        if not all(isinstance(n, str) for n in names):
            raise UsageError(f"class names must be strings, got {names[:3]!r}...")
        if units is not None and len(names) != units:
            raise UsageError(f"class names must name all {units} output units, got {len(names)}")
        return names
    return imagenet_classes() if units == IMAGENET_CLASSES else None
