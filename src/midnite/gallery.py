"""Old import path of ``midnite.pages.gallery`` (the same module object)."""

import sys

from midnite.pages import gallery as _gallery

sys.modules[__name__] = _gallery
