"""Old import path of ``midnite.store.records`` (the same module object)."""

import sys
from typing import TYPE_CHECKING

from midnite.store import records as _records

if TYPE_CHECKING:  # what type checkers see: the real module's names
    from midnite.store.records import *  # noqa: F403

sys.modules[__name__] = _records
