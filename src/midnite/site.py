"""Old import path of ``midnite.pages.catalogue`` (the same module object)."""

import sys

from midnite.pages import catalogue as _catalogue

sys.modules[__name__] = _catalogue
