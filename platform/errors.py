"""Errors the platform raises on purpose that are not answered to an API caller as such.

::

    BrokerageError
    └── PlatformError
        ├── deliveries.states.InvalidTransitionError
        ├── encryption.FieldDecryptionError
        └── hooks.errors.HookError ...

API errors (``ApiError`` and its HTTP-status subclasses) are in ``brokerage.core.errors``.
"""

from __future__ import annotations

from brokerage.core.errors import BrokerageError


class PlatformError(BrokerageError):
    """Raised by the platform (web app, workers, CLI)."""
