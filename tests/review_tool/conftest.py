"""The review tool's tests use the submissions fixtures (app with Redis, people, packages)."""

from tests.submissions.conftest import app, live_server, people, unchanged, verify_with  # noqa: F401
