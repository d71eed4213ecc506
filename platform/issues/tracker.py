"""The per-repository issue tracker (issues, comments) that the Issues broker acts on.

Issues are numbered per repository (``#1``, ``#2``, ... — the id people write in
commit messages). A changeset's command (``fixes #4711``) is applied through
:func:`apply_changeset`, at most once per (changeset, issue, command): the
:class:`IssueChangeset` row is the idempotency record, under a unique constraint,
so the same commit pushed again on another branch — or two deliveries racing —
changes nothing the second time.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, String, Text, UniqueConstraint, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from brokerage.core.errors import BadRequestError, NotFoundError
from brokerage.core.issues import (
    COMMAND_STATUS,
    CONTENT_MAX_CHARS,
    TITLE_MAX_CHARS,
    Command,
    IssueStatus,
    changeset_comment,
    check_length,
    parse_command,
    parse_status,
)
from brokerage.core.tables import Base, utcnow
from brokerage.platform.models import Repository


class Issue(Base):
    __tablename__ = "issues"
    __table_args__ = (UniqueConstraint("repository_id", "local_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"))
    local_id: Mapped[int] = mapped_column()
    title: Mapped[str] = mapped_column(String(TITLE_MAX_CHARS))
    content: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default=IssueStatus.NEW)
    reporter: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    repository: Mapped[Repository] = relationship()
    comments: Mapped[list[IssueComment]] = relationship(
        back_populates="issue", order_by="IssueComment.id", cascade="all, delete-orphan"
    )


class IssueComment(Base):
    __tablename__ = "issue_comments"

    id: Mapped[int] = mapped_column(primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"))
    author: Mapped[str] = mapped_column(String(255))
    content: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    issue: Mapped[Issue] = relationship(back_populates="comments")


class IssueChangeset(Base):
    """A changeset's command applied to an issue: the idempotency record."""

    __tablename__ = "issue_changesets"
    __table_args__ = (UniqueConstraint("issue_id", "raw_node", "command"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"))
    raw_node: Mapped[str] = mapped_column(String(40))
    command: Mapped[str] = mapped_column(String(20))
    delivery_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# -- reading ------------------------------------------------------------------------------


def list_issues(session: Session, repo: Repository, status: str | None = None) -> list[Issue]:
    stmt = select(Issue).where(Issue.repository_id == repo.id).order_by(Issue.local_id)
    if status:
        stmt = stmt.where(Issue.status == parse_status(status))
    return list(session.scalars(stmt))


def get_issue(session: Session, repo: Repository, local_id: int) -> Issue:
    """Issue ``#local_id`` of ``repo``; NotFoundError (404) when there is none."""
    issue = session.scalar(
        select(Issue).where(Issue.repository_id == repo.id, Issue.local_id == local_id)
    )
    if issue is None:
        raise NotFoundError(f"issue #{local_id} does not exist in {repo.full_name}")
    return issue


# -- writing ------------------------------------------------------------------------------


def create_issue(
    session: Session, repo: Repository, title: str, content: str = "", reporter: str = "",
    status: str | None = None,
) -> Issue:  # fmt: skip
    """A new issue numbered after the repository's last one."""
    title = title.strip()
    if not title:
        raise BadRequestError("title: required")
    check_length("title", title, TITLE_MAX_CHARS)
    check_length("content", content, CONTENT_MAX_CHARS)
    last = session.scalar(select(func.max(Issue.local_id)).where(Issue.repository_id == repo.id))
    issue = Issue(repository_id=repo.id, local_id=(last or 0) + 1, title=title, content=content,
                  reporter=reporter)  # fmt: skip
    issue.status = parse_status(status) if status else IssueStatus.NEW
    session.add(issue)
    session.flush()
    return issue


def add_comment(session: Session, issue: Issue, author: str, content: str) -> IssueComment:
    if not content.strip():
        raise BadRequestError("content: required")
    check_length("content", content, CONTENT_MAX_CHARS)
    comment = IssueComment(issue=issue, author=author, content=content)
    session.add(comment)
    issue.updated_at = utcnow()
    session.flush()
    return comment


def set_status(issue: Issue, status: str) -> None:
    issue.status = parse_status(status)
    issue.updated_at = utcnow()


def apply_changeset(
    session: Session, issue: Issue, command: str, changeset: Mapping[str, Any],
    delivery_id: str | None = None,
) -> bool:  # fmt: skip
    """Apply a changeset's ``command`` to ``issue`` once; False when it was already applied.

    Call it first in its transaction: losing a race to a concurrent delivery rolls the
    session back."""
    verb = parse_command(command)
    raw_node = str(changeset.get("raw_node") or "").strip().lower()
    if not raw_node or len(raw_node) > 40 or any(c not in "0123456789abcdef" for c in raw_node):
        raise BadRequestError("raw_node: a commit hash (hex) is required")
    if already_applied(session, issue, raw_node, verb):
        return False
    try:
        session.add(IssueChangeset(issue_id=issue.id, raw_node=raw_node, command=verb,
                                   delivery_id=delivery_id))  # fmt: skip
        session.flush()
    except IntegrityError:
        # a concurrent delivery applied it between our check and insert: undo ours entirely
        session.rollback()
        return False
    add_comment(session, issue, str(changeset.get("author") or "brokerage"),
                changeset_comment(verb, changeset))  # fmt: skip
    status = COMMAND_STATUS[verb]
    if status is not None:
        set_status(issue, status)
    return True


def already_applied(session: Session, issue: Issue, raw_node: str, command: Command) -> bool:
    found = session.scalar(select(IssueChangeset.id).where(
        IssueChangeset.issue_id == issue.id, IssueChangeset.raw_node == raw_node,
        IssueChangeset.command == command))  # fmt: skip
    return found is not None


def serialize(issue: Issue, with_comments: bool = False) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": issue.local_id,
        "title": issue.title,
        "content": issue.content,
        "status": issue.status,
        "reporter": issue.reporter,
        "created_on": issue.created_at.isoformat(),
        "updated_on": issue.updated_at.isoformat(),
        "comment_count": len(issue.comments),
    }
    if with_comments:
        document["comments"] = [serialize_comment(c) for c in issue.comments]
    return document


def serialize_comment(comment: IssueComment) -> dict[str, Any]:
    return {"id": comment.id, "author": comment.author, "content": comment.content,
            "created_on": comment.created_at.isoformat()}  # fmt: skip
