"""The classic API, the original notebook's names as thin adapters onto the engine.

Imports only ``midnite.engine``; ``midnite.visualization`` is its old import path.

``from midnite.visualization.base import *`` (or ``midnite.classic.base``) brings all of it:
``PixelActivation``, the selectors and splits, the between-iteration transforms and the
regularizers.
"""
