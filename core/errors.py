"""The root of every exception Brokerage raises on purpose.

Each component derives its own errors from :class:`BrokerageError` and keeps
their tree in its own ``errors.py`` docstring::

    BrokerageError
    ├── ApiError                       answered as JSON {"error": {"message", "status"}}
    │   ├── BadRequestError       400  malformed form data, bad field value, unknown type
    │   ├── AuthenticationError   401  no credentials, or wrong ones
    │   ├── ForbiddenError        403  authenticated, but not allowed (not an admin, wrong role)
    │   ├── NotFoundError         404  unknown repository, service, user
    │   └── ConflictError         409  already exists
    ├── brokerage.platform.errors.PlatformError   (web app, workers, CLI)
    ├── brokerage.sandbox.errors.SandboxError     (backend could not run a broker)
    └── ...

The API errors live here because every component that answers a caller (the
platform's API, the submissions component's upload rules) raises them.

Lower-level errors (docker, redis, subprocess, SQLAlchemy) are translated at
the component boundary with ``raise X(...) from exc``.
"""

from __future__ import annotations


class BrokerageError(Exception):
    """Base class of every error Brokerage raises on purpose."""


class ApiError(BrokerageError):
    """An error answered to an API caller with ``status`` and a clear message."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequestError(ApiError):
    """The request is malformed: unparsable form, unknown parameter, invalid value."""

    status = 400


class AuthenticationError(ApiError):
    """No credentials were given, or they did not match an active account or token."""

    status = 401


class ForbiddenError(ApiError):
    """The caller is known but may not do this."""

    status = 403


class NotFoundError(ApiError):
    """The named object does not exist (or the caller may not know it exists)."""

    status = 404


class ConflictError(ApiError):
    """Creating the object would duplicate an existing one."""

    status = 409
