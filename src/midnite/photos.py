"""Old import path of ``midnite.evaluation.photos`` (the same module object).

``python -m midnite.photos DIR [N]`` still writes the stand-in image set.
"""

import sys
from typing import TYPE_CHECKING

from midnite.evaluation import photos as _photos

if TYPE_CHECKING:  # what type checkers see: the real module's names
    from midnite.evaluation.photos import *  # noqa: F403

if __name__ == "__main__":
    sys.exit(_photos.main(sys.argv[1:]))
sys.modules[__name__] = _photos
