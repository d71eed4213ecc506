"""The ``brokerage`` command line. Each component may add a command group here."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click
from flask import Flask
from sqlalchemy.orm import Session

from brokerage.core.errors import BrokerageError


def make_app() -> Flask:
    from brokerage.platform.app import create_app

    return create_app()


@contextmanager
def app_session() -> Iterator[Session]:
    """A database session of a freshly configured app; commits on success."""
    from brokerage.platform.db import session_scope

    app = make_app()
    with app.app_context(), session_scope(app.extensions["brokerage.sessionmaker"]) as session:
        yield session


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Brokerage: run brokers, small sandboxed Python programs, on every push.

    Configuration comes from the environment: BROKERAGE_DATA_DIR (default ./var),
    DATABASE_URL (default a SQLite file in the data dir), REDIS_URL, and any other
    BROKERAGE_<SETTING>. See README.md.
    """


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5000, show_default=True, help="Port to listen on.")
@click.option("--threads", default=8, show_default=True, help="Worker threads.")
@click.option(
    "--access-log/--no-access-log",
    default=True,
    show_default=True,
    help="One line per request on standard error: client, method, path (never the query "
    "string), status, bytes, duration.",
)
@click.option(
    "--trusted-proxy",
    default=None,
    metavar="ADDRESS",
    help="The reverse proxy's address (e.g. 127.0.0.1): its X-Forwarded-For/-Proto/-Host/"
    "-Port are believed (client address, https links); other peers' are dropped.",
)
def serve(host: str, port: int, threads: int, access_log: bool, trusted_proxy: str | None) -> None:
    """Serve the web app and REST API (waitress, a production WSGI server)."""
    import logging

    from brokerage.platform.server import wsgi
    from brokerage.platform.server.access_log import AccessLog

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # one line per plugin
    app = make_app()
    click.echo(f"Brokerage listening on http://{host}:{port}/")
    wsgi.serve(AccessLog(app) if access_log else app, host=host, port=port, threads=threads,
               ident="brokerage", **_proxy_options(trusted_proxy))  # fmt: skip


def _proxy_options(trusted_proxy: str | None) -> dict[str, object]:
    """waitress's settings for a reverse proxy at ``trusted_proxy`` (none without one)."""
    if not trusted_proxy:
        return {}
    return {
        "trusted_proxy": trusted_proxy,
        "trusted_proxy_headers": "x-forwarded-for x-forwarded-proto x-forwarded-host "
        "x-forwarded-port",
        "clear_untrusted_proxy_headers": True,
    }


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database to the newest schema and install the built-in brokers."""
    from redis.exceptions import RedisError

    from brokerage.platform.app import create_app
    from brokerage.platform.deliveries.queue import repoint_moved_jobs
    from brokerage.platform.runtime import Runtime

    app = create_app({"AUTO_MIGRATE": True})
    click.echo(f"database at newest schema: {_without_password(app.config['DATABASE_URL'])}")
    try:
        moved = repoint_moved_jobs(Runtime.from_config(app.config))
    except RedisError as exc:
        click.echo(f"queued jobs not checked (Redis unreachable: {exc})")
    else:
        click.echo(f"queued jobs moved to their new module paths: {moved}")


def _without_password(url: str) -> str:
    """A database URL fit to print: its password, if any, as ``***``."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@main.group()
def user() -> None:
    """Accounts."""


@user.command("create")
@click.argument("username")
@click.option("--email", default="", help="Contact address.")
@click.option(
    "--role",
    "roles",
    multiple=True,
    type=click.Choice(["vendor", "reviewer", "operator"]),
    help="Global role; repeat for several. Repository admin is per repository, not a role.",
)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def user_create(username: str, email: str, roles: tuple[str, ...], password_stdin: bool) -> None:
    """Create an account (the first operator starts here)."""
    from brokerage.core.accounts import Role
    from brokerage.platform import accounts

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("password: ")
    with app_session() as session:
        created = accounts.create_user(session, username, password, email, {Role(r) for r in roles})
        click.echo(
            f"created user {created.username} roles={sorted(str(r) for r in created.roles) or '-'}"
        )


@user.command("token")
@click.argument("username")
@click.option("--name", default="cli", show_default=True, help="What the token is for.")
def user_token(username: str, name: str) -> None:
    """Issue an API token for USERNAME and print it (shown once)."""
    from brokerage.platform import accounts

    with app_session() as session:
        _token, secret = accounts.issue_token(session, accounts.get_user(session, username), name)
    click.echo(secret)


@main.command()
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
@click.option("--name", default=None, help="Worker name (default: host and process id).")
@click.option(
    "--processes",
    type=click.IntRange(min=1),
    default=None,
    help="Supervise N worker processes, each started again when it dies (default: this "
    "process is the one worker).",
)
def worker(burst: bool, name: str | None, processes: int | None) -> None:
    """Run deliveries: an RQ worker with the scheduler, the sweeper, the sandbox and the gateway.

    Start as many as you like, on one machine or many (each with its own Docker engine);
    they share the database and Redis and never run one delivery attempt twice at once.
    Outages of Redis or the database are waited out (see docs/operations.md).
    """
    import logging
    import os
    import socket

    from brokerage.core.config import load_config
    from brokerage.platform.deliveries.worker import run_worker
    from brokerage.platform.runtime import Runtime

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    _wait_for_database(make_app)  # migrations and built-in brokers, as the web app has them
    name = name or f"{socket.gethostname()}.{os.getpid()}"
    if processes is not None:
        from brokerage.platform.deliveries.supervisor import supervise

        def command_for(index: int, generation: int) -> list[str]:
            code = "from brokerage.platform.cli import run; run()"
            child = f"{name}-{index}" + (f".{generation}" if generation else "")
            return [sys.executable, "-c", code, "worker", "--name", child,
                    *(["--burst"] if burst else [])]  # fmt: skip

        sys.exit(supervise(command_for, processes, burst=burst))
    config = load_config()
    # Worker writes can be redone (see db.SQLITE_SYNCHRONOUS), so by default they skip the fsync.
    config["SQLITE_SYNCHRONOUS"] = config["SQLITE_SYNCHRONOUS"] or "NORMAL"
    runtime = Runtime.from_config(config)
    run_worker(runtime, name, burst=burst)


def _wait_for_database(start: Callable[[], object]) -> None:
    """Call ``start`` until the database answers (a worker started during an outage waits)."""
    import logging
    import time

    from brokerage.platform.deliveries.outages import Outage, is_outage

    outage = Outage("worker start-up", logging.getLogger("brokerage.worker"))
    while True:
        try:
            start()
        except Exception as exc:
            if not is_outage(exc):
                raise
            time.sleep(outage.failed(exc))
            continue
        outage.recovered()
        return


def _add_component_groups() -> None:
    from brokerage.platform.hooks.cli import hook
    from brokerage.review_tool.cli import review_cli
    from brokerage.sandbox.cli import sandbox_cli
    from brokerage.submissions.cli import broker_cli, login

    main.add_command(hook)
    main.add_command(sandbox_cli)
    main.add_command(broker_cli)
    main.add_command(review_cli)
    main.add_command(login)


_add_component_groups()


def run() -> None:
    """Entry point: turns our errors into a one-line message and exit status 1."""
    try:
        main(standalone_mode=True)
    except BrokerageError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
