"""Import the in-sandbox SDK modules the way broker code sees them (flat names).

They live in ``sandbox/runner/`` and import each other as ``brokerage_sdk``,
``sdk_http`` ...; tests put that folder on ``sys.path`` once.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import brokerage.sandbox.runner

RUNNER_DIR = Path(brokerage.sandbox.runner.__file__).parent


def sdk_module(name: str) -> ModuleType:
    """``brokerage_sdk`` first (the SDK modules import it), then ``name``."""
    if str(RUNNER_DIR) not in sys.path:
        sys.path.insert(0, str(RUNNER_DIR))
    importlib.import_module("brokerage_sdk")
    return importlib.import_module(name)
