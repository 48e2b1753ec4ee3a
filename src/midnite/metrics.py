"""Old import path of ``midnite.evaluation.metrics`` (the same module object)."""

import sys
from typing import TYPE_CHECKING

from midnite.evaluation import metrics as _metrics

if TYPE_CHECKING:  # what type checkers see: the real module's names
    from midnite.evaluation.metrics import *  # noqa: F403

sys.modules[__name__] = _metrics
