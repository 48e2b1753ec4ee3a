"""The classic API under its original import path: ``midnite.visualization`` is ``midnite.classic``.

``from midnite.visualization.base import *`` works as in the original notebook; each submodule
(``base``, ``methods``, ``selectors``, ``transforms``, ``regularizers``) is the same module
object as its ``midnite.classic`` namesake.
"""

import sys

from midnite.classic import base, methods, regularizers, selectors, transforms

for _module in (base, methods, regularizers, selectors, transforms):
    sys.modules[f"{__name__}.{_module.__name__.rsplit('.', 1)[1]}"] = _module

__all__ = ["base", "methods", "regularizers", "selectors", "transforms"]
