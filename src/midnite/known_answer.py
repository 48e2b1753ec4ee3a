"""Old import path of ``midnite.evaluation.known_answer`` (the same module object)."""

import sys
from typing import TYPE_CHECKING

from midnite.evaluation import known_answer as _known_answer

if TYPE_CHECKING:  # what type checkers see: the real module's names
    from midnite.evaluation.known_answer import *  # noqa: F403

sys.modules[__name__] = _known_answer
