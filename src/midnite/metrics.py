"""Old import path of ``midnite.evaluation.metrics`` (the same module object)."""

import sys

from midnite.evaluation import metrics as _metrics

sys.modules[__name__] = _metrics
