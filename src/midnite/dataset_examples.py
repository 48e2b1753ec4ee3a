"""Old import path of ``midnite.analysis.examples`` (the same module object)."""

import sys
from typing import TYPE_CHECKING

from midnite.analysis import examples as _examples

if TYPE_CHECKING:  # what type checkers see: the real module's names
    from midnite.analysis.examples import *  # noqa: F403

sys.modules[__name__] = _examples
