"""``brokerage hook``: install the push hook into a repository, resend spooled pushes."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from brokerage.platform.hooks import main as hooks
from brokerage.platform.hooks.errors import HookError


@click.group()
def hook() -> None:
    """Push hooks that tell the platform about each git or hg push."""


@hook.command()
@click.option("--url", required=True, help="Platform base URL, e.g. http://127.0.0.1:5000")
@click.option(
    "--repo", "repo_name", required=True, help="The repository on the platform: owner/slug"
)
@click.option("--token", required=True, help="The repository's push token")
@click.option(
    "--path",
    "path",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="The git (bare or not) or hg repository on this server",
)
@click.option("--force", is_flag=True, help="Replace a post-receive hook we did not write")
def install(url: str, repo_name: str, token: str, path: Path, force: bool) -> None:
    """Configure the repository and install its post-receive (git) / changegroup (hg) hook.

    The hook runs with this Python interpreter; reinstalling updates the settings.
    """
    try:
        repo = hooks.install(
            path, url=url, repo_name=repo_name, token=token, python=sys.executable, force=force
        )
    except HookError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"installed the {repo.scm} hook in {repo.root}, sending to {url} as {repo_name}")


@hook.command()
@click.option(
    "--repo-path",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="The repository whose spooled pushes to resend",
)
@click.option(
    "--include-rejected", is_flag=True, help="Also resend pushes the platform refused before"
)
def flush(repo_path: Path, include_rejected: bool) -> None:
    """Resend the repository's spooled pushes, oldest first; exit 1 if some remain."""
    try:
        report = hooks.flush_repository(
            repo_path, include_rejected=include_rejected, out=sys.stderr
        )
    except HookError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"delivered {len(report.delivered)}, rejected {len(report.rejected)}, "
        f"still spooled {report.waiting}"
    )
    if report.waiting:
        sys.exit(1)
