"""``python -m midnite``: the ``midnite`` command (see ``midnite.cli``)."""

from midnite.cli import main

raise SystemExit(main())
