"""Pagination, one way for the API and the pages: ``?page=`` (from 1) and ``?pagelen=``."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import request
from sqlalchemy import func, select
from sqlalchemy.orm import Query, Session
from sqlalchemy.sql import Select

from brokerage.core.errors import BadRequestError

PAGE_SIZE = 25
"""rows per page of a long list in the pages, when ``?pagelen`` says nothing"""
API_PAGE_SIZE = 50
"""rows per page of an API list, when ``?pagelen`` says nothing"""
MAX_PAGE_SIZE = 100
"""rows per page at most, whatever ``?pagelen`` asks"""
MAX_PAGE = 1_000_000
"""the highest page number asked for (an offset beyond it is nonsense, and too big for the
database's integers)"""


@dataclass(frozen=True)
class Page:
    """One page of a list, with what the pager needs."""

    items: list[Any]
    number: int
    size: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.size))

    @property
    def has_prev(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.pages


def page_args(default_size: int = PAGE_SIZE) -> tuple[int, int]:
    """``?page=`` and ``?pagelen=`` (BadRequestError when not whole numbers, or a page
    beyond ``MAX_PAGE``: an offset the database could not hold)."""
    try:
        number = max(1, int(request.args.get("page", 1)))
        size = min(MAX_PAGE_SIZE, max(1, int(request.args.get("pagelen", default_size))))
    except ValueError as exc:
        raise BadRequestError("page and pagelen must be whole numbers") from exc
    if number > MAX_PAGE:
        raise BadRequestError(f"page must be at most {MAX_PAGE}")
    return number, size


def paginate(db: Session, stmt: Select[Any], transform: Callable[[Any], Any] = lambda x: x) -> Page:
    """The requested page of ``stmt`` (already ordered)."""
    number, size = page_args()
    total = db.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    rows = db.scalars(stmt.offset((number - 1) * size).limit(size)).all()
    return Page([transform(r) for r in rows], number, size, total)


def paginate_list(items: list[Any]) -> Page:
    """The requested page of an already loaded list."""
    number, size = page_args()
    return Page(items[(number - 1) * size : number * size], number, size, len(items))


def page(query: Query[Any]) -> list[Any]:
    """The requested page of ``query`` as a plain list (the API's lists)."""
    number, size = page_args(API_PAGE_SIZE)
    return list(query.offset((number - 1) * size).limit(size))
