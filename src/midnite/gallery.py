"""Old import path of ``midnite.pages.gallery`` (the same module object)."""

import sys
from typing import TYPE_CHECKING

from midnite.pages import gallery as _gallery

sys.modules[__name__] = _gallery

if TYPE_CHECKING:  # what type checkers see here (at run time this module is the real one)
    from midnite.pages.gallery import *  # noqa: F403
