"""``python -m segnode``: the segnode command line."""

from __future__ import annotations

import sys

from segnode.cli import main

sys.exit(main())
