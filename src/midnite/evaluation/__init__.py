"""Evaluation: how good a visualization is, measured; this floor writes no files.

Floor 2, a sibling of ``midnite.analysis``, above ``midnite.images`` and the engine: metrics
(``metrics``; the model-free ones in ``measures``), known-answer models with a planted ideal
input (``known_answer``), and the licence-checked sample photographs (``photos``, read through
``midnite.images``); the package names those four modules.
"""

from midnite.evaluation import known_answer, measures, metrics, photos

__all__ = ["known_answer", "measures", "metrics", "photos"]
