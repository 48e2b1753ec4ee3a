"""Old import path of ``midnite.pages.catalogue`` (the same module object)."""

import sys
from typing import TYPE_CHECKING

from midnite.pages import catalogue as _catalogue

sys.modules[__name__] = _catalogue

if TYPE_CHECKING:  # what type checkers see here (at run time this module is the real one)
    from midnite.pages.catalogue import *  # noqa: F403
