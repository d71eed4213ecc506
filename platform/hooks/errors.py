"""Errors of the push hooks and their installer (``hooks.py`` and the ``hook_*`` modules).

::

    BrokerageError
    └── PlatformError
        └── HookError
            ├── HookConfigError       the repository has no (or bad) brokerage.* settings
            ├── HookInstallError      cannot install: not a repository, foreign hook present
            └── ScmCommandError       a git or hg command failed

A running hook never lets one escape: it reports it to the pusher and exits 0.
"""

from __future__ import annotations

from brokerage.platform.errors import PlatformError


class HookError(PlatformError):
    """Raised by the push hooks and their installer."""


class HookConfigError(HookError):
    """The repository lacks brokerage.url / brokerage.repo / brokerage.token, or one is bad."""


class HookInstallError(HookError):
    """The path is not a git or hg repository, or a hook we did not write is in the way."""


class ScmCommandError(HookError):
    """A git or hg command exited non-zero."""
