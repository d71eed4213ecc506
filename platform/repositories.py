"""Repositories and who administers them.

A repository's owner and its listed admins administer it; operators may administer
any repository (they run the platform). A private repository is invisible (404) to
anyone who cannot administer it; a public one answers 403 to non-admins.
"""

from __future__ import annotations

import re

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from brokerage.core.accounts import Role, User
from brokerage.core.errors import BadRequestError, ConflictError, ForbiddenError, NotFoundError
from brokerage.platform import accounts
from brokerage.platform.models import Repository, Scm

SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")


def slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-.")[:100]


def create_repository(
    session: Session,
    owner: User,
    name: str,
    *,
    slug: str | None = None,
    scm: str = Scm.GIT,
    is_private: bool = True,
    website: str = "",
    fork: bool = False,
) -> Repository:
    slug = slug or slugify(name)
    if not name.strip():
        raise BadRequestError("name: required")
    if len(name) > 255 or len(website) > 500:
        raise BadRequestError("name: at most 255 characters; website: at most 500")
    if not SLUG_PATTERN.match(slug):
        raise BadRequestError(f"slug {slug!r}: use lowercase letters, digits, '.', '-' or '_'")
    if scm not in set(Scm):
        raise BadRequestError(f"scm {scm!r}: must be one of git, hg")
    existing = session.scalar(
        select(Repository).where(Repository.owner_id == owner.id, Repository.slug == slug)
    )
    if existing is not None:
        raise ConflictError(f"repository {owner.username}/{slug} already exists")
    repo = Repository(
        owner=owner,
        slug=slug,
        name=name.strip(),
        scm=scm,
        is_private=is_private,
        website=website,
        fork=fork,
    )
    session.add(repo)
    session.flush()
    return repo


def can_administer(user: User, repo: Repository) -> bool:
    return (
        repo.owner_id == user.id
        or user.has_role(Role.OPERATOR)
        or any(admin.id == user.id for admin in repo.admins)
    )


def find_repository(session: Session, owner: str, slug: str) -> Repository | None:
    return session.scalar(
        select(Repository)
        .join(Repository.owner)
        .where(User.username == owner, Repository.slug == slug)
    )


def get_administered(session: Session, user: User, owner: str, slug: str) -> Repository:
    """The repository ``owner/slug`` if ``user`` administers it; 404 or 403 otherwise."""
    repo = find_repository(session, owner, slug)
    if repo is None or (repo.is_private and not can_administer(user, repo)):
        raise NotFoundError(f"repository {owner}/{slug} does not exist")
    if not can_administer(user, repo):
        raise ForbiddenError(f"you are not an admin of repository {owner}/{slug}")
    return repo


def administered_by(session: Session, user: User) -> list[Repository]:
    stmt = select(Repository).order_by(Repository.id)
    if not user.has_role(Role.OPERATOR):
        stmt = stmt.where(
            or_(Repository.owner_id == user.id, Repository.admins.any(User.id == user.id))
        )
    return list(session.scalars(stmt))


def add_admin(session: Session, repo: Repository, username: str) -> None:
    user = accounts.get_user(session, username)
    if user not in repo.admins:
        repo.admins.append(user)


def remove_admin(session: Session, repo: Repository, username: str) -> None:
    """Take ``username`` off the repository's admins (NotFoundError if not one of them)."""
    user = accounts.get_user(session, username)
    if user not in repo.admins:
        raise NotFoundError(f"{username} is not an admin of repository {repo.full_name}")
    repo.admins.remove(user)


def issue_push_token(repo: Repository) -> str:
    """A new push token for the repository's hook, returned once (only its hash is kept);
    the old token stops working."""
    secret = accounts.new_secret()
    repo.push_token_hash = accounts.hash_secret(secret)
    return secret


def describe(repo: Repository) -> dict[str, object]:
    """The repository as the push payload's ``repository`` object shows it
    (docs/design.md, "Push payload")."""
    return {
        "absolute_url": f"/{repo.owner.username}/{repo.slug}/",
        "fork": repo.fork,
        "is_private": repo.is_private,
        "name": repo.name,
        "owner": repo.owner.username,
        "scm": repo.scm,
        "slug": repo.slug,
        "website": repo.website,
    }
