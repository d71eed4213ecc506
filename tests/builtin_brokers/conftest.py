"""The built-in brokers' fixtures: the one harness (``tests/builtin_brokers/harness.py``) — the
rig (real Docker sandbox, real egress gateway, receiver, SMTP server, service fakes, the
platform API), and the vendors' path (``verify_package``) for every built-in broker."""

from tests.builtin_brokers.harness import (  # noqa: F401 (fixtures)
    app,
    docker_image,
    platform_rig,
    rig,
    session_rig,
    verified,
)
