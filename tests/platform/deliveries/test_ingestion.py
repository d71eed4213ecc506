"""POST …/pushes: the hook's call, validated, stored once, with one delivery per service."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event

from brokerage.platform.runtime import Runtime
from tests.platform.deliveries.conftest import Repo, commit, push_body
from tests.support import RedisServer, snapshot


def test_push_builds_the_seed_payload_and_one_delivery_per_enabled_service(
    repo: Repo, runtime: Runtime
) -> None:
    repo.add_service("type=POST&URL=http://127.0.0.1:9/a")
    repo.add_service("type=POST&URL=http://127.0.0.1:9/b")
    response = repo.push(push_body(commit(1)))
    assert response.status_code == 202
    assert len(response.json["deliveries"]) == 2
    assert {d["status"] for d in response.json["deliveries"]} == {"queued"}
    assert runtime.queue.count == 2
    payload = repo.get(f"pushes/{response.json['id']}")["payload"]
    assert payload == {
        "canon_url": "http://127.0.0.1:5000",
        "commits": [commit(1)],
        "repository": {
            "absolute_url": "/marcus/project-x/",
            "fork": False,
            "is_private": True,
            "name": "project-x",
            "owner": "marcus",
            "scm": "git",
            "slug": "project-x",
            "website": "",
        },
        "user": "marcus",
        "truncated": False,
        "refs": push_body()["refs"],
    }


def test_a_retried_hook_call_stores_nothing_new(repo: Repo, runtime: Runtime) -> None:
    repo.add_service("type=POST&URL=http://127.0.0.1:9/a")
    body = push_body(commit(1))
    first = repo.push(body)
    again = repo.push(body)
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json["deliveries"] == first.json["deliveries"]
    assert runtime.queue.count == 1


def test_commits_already_reported_are_not_sent_again(repo: Repo) -> None:
    repo.add_service("type=POST&URL=http://127.0.0.1:9/a")
    repo.push(push_body(commit(1), commit(2)))
    second = repo.push(push_body(commit(2), commit(3)))
    assert second.json["commits"] == 1


def test_disabled_services_get_no_delivery(repo: Repo) -> None:
    sid = repo.add_service("type=POST&URL=http://127.0.0.1:9/a")
    repo.client.post(
        f"/1.0/repositories/marcus/project-x/services/{sid}/disable", headers=repo.auth
    )
    assert repo.push(push_body(commit(1))).json["deliveries"] == []


def test_push_with_redis_down_is_stored_pending(repo: Repo, redis_server: RedisServer) -> None:
    repo.add_service("type=POST&URL=http://127.0.0.1:9/a")
    redis_server.stop()
    response = repo.push(push_body(commit(1)))
    assert response.status_code == 202
    assert [d["status"] for d in response.json["deliveries"]] == ["pending"]
    assert [d["status"] for d in repo.get("deliveries")] == ["pending"]  # what the sweeper finds


def test_the_answer_is_what_was_stored(repo: Repo) -> None:
    """The 202 answer is built from what ingestion holds, not read back: it must say what
    reading the push back says (ids, times as the database gives them, delivery order)."""
    services = [repo.add_service(f"type=POST&URL=http://127.0.0.1:9/{n}") for n in range(3)]
    body = push_body(commit(1), commit(2))
    body["truncated"] = True
    response = repo.push(body)
    assert response.status_code == 202
    stored = repo.get(f"pushes/{response.json['id']}")
    del stored["payload"]
    assert response.json == stored
    assert [d["service"] for d in response.json["deliveries"]] == services
    assert (response.json["commits"], response.json["truncated"]) == (2, True)
    again = repo.push(body)  # a retried hook call answers from the database
    assert (again.status_code, again.json) == (200, response.json)


def test_a_push_is_stored_and_queued_with_one_commit(repo: Repo, app: Flask) -> None:
    """The push, its seen commits and its deliveries commit together, and nothing else
    commits: the deliveries are stored ``queued`` rather than marked so after the enqueue."""
    for n in range(3):
        repo.add_service(f"type=POST&URL=http://127.0.0.1:9/{n}")
    commits: list[object] = []

    def count(connection: object) -> None:
        commits.append(connection)

    engine = app.extensions["brokerage.engine"]
    event.listen(engine, "commit", count)
    try:
        response = repo.push(push_body(commit(1), commit(2)))
    finally:
        event.remove(engine, "commit", count)
    assert response.status_code == 202
    assert len(commits) == 1
    assert [d["status"] for d in repo.get("deliveries")] == ["queued"] * 3


def test_a_push_without_new_commits_still_reaches_every_service(
    repo: Repo, runtime: Runtime
) -> None:
    """A deleted branch, or a new one made of commits the repository already had."""
    repo.add_service("type=POST&URL=http://127.0.0.1:9/a")
    repo.push(push_body(commit(1)))
    for body in (push_body(), push_body(commit(1))):
        response = repo.push(body)
        assert response.status_code == 202
        assert response.json["commits"] == 0
        assert [d["status"] for d in response.json["deliveries"]] == ["queued"]
    assert runtime.queue.count == 3


def test_a_test_push_answers_the_status_it_has(repo: Repo) -> None:
    sid = repo.add_service("type=POST&URL=http://127.0.0.1:9/a")
    response = repo.client.post(
        f"/1.0/repositories/marcus/project-x/services/{sid}/test", headers=repo.auth
    )
    assert response.status_code == 202
    assert response.json["status"] == "queued"
    assert repo.get(f"deliveries/{response.json['id']}")["status"] == "queued"


def test_a_test_push_with_redis_down_is_pending(repo: Repo, redis_server: RedisServer) -> None:
    sid = repo.add_service("type=POST&URL=http://127.0.0.1:9/a")
    redis_server.stop()
    response = repo.client.post(
        f"/1.0/repositories/marcus/project-x/services/{sid}/test", headers=repo.auth
    )
    assert response.status_code == 202
    assert response.json["status"] == "pending"
    assert repo.get(f"deliveries/{response.json['id']}")["status"] == "pending"


def _bad(body: Any) -> Any:
    return body


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b.pop("push_id"), "'push_id' is a required property"),
        (lambda b: b.update(scm="svn"), "scm: 'svn' is not one of"),
        (lambda b: b["commits"][0].update(node="xyz"), "commits[0].node"),
        (lambda b: b["commits"][0]["files"][0].update(type="renamed"), "commits[0].files[0].type"),
        (lambda b: b.update(extra=1), "Additional properties are not allowed ('extra'"),
    ],
)
def test_schema_errors_name_the_bad_field_and_store_nothing(
    repo: Repo, app: Flask, mutate: Any, message: str
) -> None:
    repo.add_service("type=POST&URL=http://127.0.0.1:9/a")
    body = push_body(commit(1))
    mutate(body)
    before = snapshot(app)
    response = repo.push(body)
    assert response.status_code == 400
    assert message in response.json["error"]["message"]
    assert snapshot(app) == before


@pytest.mark.parametrize(
    ("path", "headers", "data", "status", "message"),
    [
        ("marcus/project-x", {}, "{}", 401, "push token"),
        ("marcus/project-x", {"Authorization": "Bearer brk_wrong"}, "{}", 401, "wrong push token"),
        ("marcus/nothing", {"Authorization": "Bearer brk_wrong"}, "{}", 404, "does not exist"),
        ("marcus/project-x", None, "{not json", 400, "malformed JSON"),
        ("marcus/project-x", None, "[1, 2]", 400, "must be a JSON object"),
    ],
)
def test_bad_push_requests(
    repo: Repo,
    client: FlaskClient,
    app: Flask,
    path: str,
    headers: dict[str, str] | None,
    data: str,
    status: int,
    message: str,
) -> None:
    before = snapshot(app)
    response = client.post(
        f"/1.0/repositories/{path}/pushes",
        data=data,
        content_type="application/json",
        headers={"Authorization": f"Bearer {repo.token}"} if headers is None else headers,
    )
    assert response.status_code == status
    assert message in response.json["error"]["message"]
    assert snapshot(app) == before


def test_a_body_over_the_cap_is_refused(repo: Repo, app: Flask) -> None:
    app.config["MAX_CONTENT_LENGTH"] = 1000
    response = repo.push(push_body(*(commit(i) for i in range(1, 20))))
    assert response.status_code == 413
    assert response.json["error"]["status"] == 413


def test_only_admins_rotate_the_push_token(repo: Repo, client: FlaskClient, seed: Any) -> None:
    from tests.support import basic

    seed.user("eve")
    refused = client.post("/1.0/repositories/marcus/project-x/push-token", headers=basic("eve"))
    assert refused.status_code == 404
    rotated = client.post("/1.0/repositories/marcus/project-x/push-token", headers=repo.auth).json[
        "token"
    ]
    assert repo.push(push_body(commit(1))).status_code == 401
    assert repo.push(push_body(commit(1)), token=rotated).status_code == 202
