"""Errors the platform raises on purpose that are not answered to an API caller as such.

::

    BrokerageError
    └── PlatformError
        ├── deliveries.states.InvalidTransitionError
        ├── encryption.FieldDecryptionError
        └── hooks.errors.HookError ...

API errors (``ApiError`` and its HTTP-status subclasses) are in ``brokerage.core.errors``;
the web pages add ``web.support.CsrfError`` (an ``ApiError``, 403: a form posted without
its session's CSRF token).
"""

from __future__ import annotations

from brokerage.core.errors import BrokerageError


class PlatformError(BrokerageError):
    """Raised by the platform (web app, workers, CLI)."""
