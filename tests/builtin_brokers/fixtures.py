"""The built-in brokers' fixtures (``builtin_brokers/<name>/fixtures/push__<variant>.json``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from brokerage.submissions.builtins import BUILTIN_DIR


def fixture(broker: str, variant: str) -> dict[str, Any]:
    """The push payload of a fixture, less the ``service``, ``expect`` and ``tracker`` that
    ``brokerage broker test`` reads (tests give their own)."""
    path = BUILTIN_DIR / broker / "fixtures" / f"push__{variant}.json"
    loaded: dict[str, Any] = json.loads(path.read_text())
    loaded.pop("service", None)
    loaded.pop("expect", None)
    loaded.pop("tracker", None)
    return loaded


def variants(broker: str) -> list[str]:
    folder = BUILTIN_DIR / broker / "fixtures"
    return sorted(p.stem.removeprefix("push__") for p in Path(folder).glob("push__*.json"))
