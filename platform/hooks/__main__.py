"""``python -m brokerage.platform.hooks``: what installed git and hg hooks run."""

from __future__ import annotations

import sys

from brokerage.platform.hooks.main import main

sys.exit(main())
