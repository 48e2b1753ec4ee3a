"""The classic API, the original notebook's names as thin adapters onto the engine.

``from midnite.visualization.base import *`` brings all of it: ``PixelActivation``, the
selectors and splits, the between-iteration transforms and the regularizers.
"""
