"""Evaluation: how good a visualization is, measured; this floor writes no files.

Floor 2, a sibling of ``midnite.analysis``, above ``midnite.images`` and the engine: metrics
(``metrics``; the model-free ones in ``measures``), known-answer models with a planted ideal
input (``known_answer``), and the licence-checked sample photographs (``photos``, read through
``midnite.images``), and how far to trust a picture (``trust``, its statistics in
``trust_stats``, its fooling-circuit known answer in ``fooling``).
"""

from midnite.evaluation import fooling, known_answer, measures, metrics, photos, trust, trust_stats

__all__ = ["fooling", "known_answer", "measures", "metrics", "photos", "trust", "trust_stats"]
