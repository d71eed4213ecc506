"""Hypothesis on the two bodies the API does not describe field by field: seed 002's
form-encoded services resource (any parameter names and values) and the hook's push body
(valid pushes bent in every field). Never a 5xx; a refusal is JSON and changes nothing; a
warning header is always one printable ASCII line."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import FORM, Seeder, basic, snapshot

REPO = "/1.0/repositories/tutorials/testrepo"
SETTINGS = settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)
LABELS = st.sampled_from(["type", "URL", "Branches", "Secret", "Content type", "url", "TYPE"])
TEXT = st.text(max_size=40)  # every code point, surrogates and NUL included
NAMES = st.one_of(LABELS, TEXT)
VALUES = st.one_of(st.sampled_from(["POST", "post", "http://a.example/x", "main", ""]), TEXT)


@pytest.fixture
def owner(seed: Seeder) -> dict[str, str]:
    seed.user("tutorials")
    seed.repo("tutorials", "testrepo")
    return basic("tutorials")


def encoded(params: list[tuple[str, str]]) -> str:
    # surrogates cannot be UTF-8 encoded as they are: send their bytes as a client might
    return urlencode([(k.encode("utf-8", "surrogatepass"), v.encode("utf-8", "surrogatepass"))
                      for k, v in params])  # fmt: skip


def judged(app: Flask, answer: Any, before: dict[str, list[str]]) -> None:
    assert answer.status_code < 500, answer.get_data(as_text=True)[:500]
    assert answer.mimetype == "application/json"
    if answer.status_code >= 400:
        assert answer.json["error"]["status"] == answer.status_code
        assert snapshot(app) == before
    warning = answer.headers.get("X-Brokerage-Warning", "")
    assert warning.isascii() and warning.isprintable()


@SETTINGS
@given(params=st.lists(st.tuples(NAMES, VALUES), max_size=6), put=st.booleans())
def test_the_services_form_never_fails(
    app: Flask, client: FlaskClient, owner: dict[str, str], params: list, put: bool
) -> None:
    if put:
        created = client.post(
            f"{REPO}/services",
            data="type=POST&URL=http%3A%2F%2Fa.example",
            headers={**owner, **FORM},
        )
        before = snapshot(app)
        answer = client.put(
            f"{REPO}/services/{created.json['id']}", data=encoded(params), headers={**owner, **FORM}
        )
    else:
        before = snapshot(app)
        answer = client.post(f"{REPO}/services", data=encoded(params), headers={**owner, **FORM})
    judged(app, answer, before)


def commit(n: int, message: str, author: str, file: str, branch: str | None) -> dict[str, Any]:
    raw = f"{n:040x}"
    return {"author": author, "branch": branch, "files": [{"file": file, "type": "added"}],
            "message": message, "node": raw[:12], "parents": [], "raw_author": author,
            "raw_node": raw, "revision": None, "size": -1, "timestamp": "2012-05-30 05:58:56",
            "utctimestamp": "2012-05-30 03:58:56+00:00"}  # fmt: skip


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)


@SETTINGS
@given(
    user=TEXT,
    message=TEXT,
    author=TEXT,
    file=TEXT,
    branch=st.one_of(st.none(), TEXT),
    extra=st.dictionaries(
        st.sampled_from(["colour", "user", "commits", "refs", "scm"]), JSONISH, max_size=2
    ),  # fmt: skip
)
def test_the_push_body_never_fails(
    app: Flask, client: FlaskClient, owner: dict[str, str], user: str, message: str,
    author: str, file: str, branch: str | None, extra: dict[str, Any],
) -> None:  # fmt: skip
    import json

    token = client.post(f"{REPO}/push-token", headers=owner).json["token"]
    body = {"scm": "git", "user": user, "push_id": str(uuid.uuid4()), "truncated": False,
            "refs": [{"ref": "refs/heads/main", "type": "branch", "old": None, "new": "a" * 40}],
            "commits": [commit(1, message, author, file, branch)]} | extra  # fmt: skip
    before = snapshot(app)
    answer = client.post(
        f"{REPO}/pushes",
        data=json.dumps(body),  # ensure_ascii: NUL and lone surrogates travel as \u escapes
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert answer.status_code in (200, 202, 400), answer.get_data(as_text=True)[:500]
    if answer.status_code == 400:
        judged(app, answer, before)
