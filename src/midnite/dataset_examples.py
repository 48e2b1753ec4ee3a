"""Old import path of ``midnite.analysis.examples`` (the same module object)."""

import sys

from midnite.analysis import examples as _examples

sys.modules[__name__] = _examples
