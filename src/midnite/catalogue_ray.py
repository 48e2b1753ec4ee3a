"""Old import path of ``midnite.jobs.ray`` (the same module object)."""

import sys

from midnite.jobs import ray as _ray

sys.modules[__name__] = _ray
