"""The delivery log API: lists, filters, pages, redeliver and test pushes."""

from __future__ import annotations

from flask.testing import FlaskClient

from brokerage.platform.deliveries.dispatch import Dispatcher
from brokerage.platform.runtime import Runtime
from brokerage.sandbox.fake import FakeBackend
from tests.platform.deliveries.conftest import Repo, commit, push_body
from tests.support import Seeder, basic


def test_filters_and_pages(repo: Repo) -> None:
    a = repo.add_service("type=POST&URL=http://127.0.0.1:9/a")
    b = repo.add_service("type=POST&URL=http://127.0.0.1:9/b")
    pushes = [repo.push(push_body(commit(n + 1))).json["id"] for n in range(3)]
    assert len(repo.get("deliveries")) == 6
    assert {d["service"] for d in repo.get(f"deliveries?service={a}")} == {a}
    assert {d["push"] for d in repo.get(f"deliveries?push={pushes[0]}")} == {pushes[0]}
    assert len(repo.get("deliveries?status=queued")) == 6
    first = repo.get("deliveries?pagelen=4&page=1")
    second = repo.get("deliveries?pagelen=4&page=2")
    assert len(first) == 4 and len(second) == 2
    assert not {d["id"] for d in first} & {d["id"] for d in second}
    assert [p["id"] for p in repo.get("pushes")] == pushes[::-1]
    assert b


def test_bad_filters(repo: Repo) -> None:
    for query, message in (
        ("status=lost", "status: one of"),
        ("service=x", "service: a whole number"),
        ("page=two", "page: a whole number"),
    ):
        response = repo.client.get(
            f"/1.0/repositories/marcus/project-x/deliveries?{query}", headers=repo.auth
        )
        assert response.status_code == 400
        assert message in response.json["error"]["message"]


def test_redeliver_keeps_the_id_and_adds_an_attempt(
    repo: Repo, dispatcher: Dispatcher, fake: FakeBackend
) -> None:
    repo.add_service("type=POST&URL=http://127.0.0.1:9/a")
    [delivery] = repo.push(push_body(commit(1))).json["deliveries"]
    path = f"/1.0/repositories/marcus/project-x/deliveries/{delivery['id']}/redeliver"
    early = repo.client.post(path, headers=repo.auth)
    assert early.status_code == 409 and "already on its way" in early.json["error"]["message"]
    dispatcher.run(delivery["id"])
    again = repo.client.post(path, headers=repo.auth)
    assert again.status_code == 202
    assert again.json["status"] == "queued"
    dispatcher.run(delivery["id"])
    assert [c.envelope["delivery"] for c in fake.calls] == [
        {"id": delivery["id"], "attempt": 1},
        {"id": delivery["id"], "attempt": 2},
    ]


def test_send_test_push(
    repo: Repo, dispatcher: Dispatcher, fake: FakeBackend, runtime: Runtime
) -> None:
    sid = repo.add_service("type=POST&URL=http://127.0.0.1:9/a")
    response = repo.client.post(
        f"/1.0/repositories/marcus/project-x/services/{sid}/test", headers=repo.auth
    )
    assert response.status_code == 202
    assert response.json["test"] is True
    dispatcher.run(response.json["id"])
    envelope = fake.calls[0].envelope
    assert envelope["test"] is True
    assert envelope["repository"]["slug"] == "project-x"
    assert len(envelope["commits"]) == 1


def test_others_cannot_read_or_redeliver(repo: Repo, client: FlaskClient, seed: Seeder) -> None:
    repo.add_service("type=POST&URL=http://127.0.0.1:9/a")
    [delivery] = repo.push(push_body(commit(1))).json["deliveries"]
    seed.user("eve")
    base = "/1.0/repositories/marcus/project-x"
    assert client.get(f"{base}/deliveries", headers=basic("eve")).status_code == 404
    assert (
        client.get(f"{base}/deliveries/{delivery['id']}", headers=basic("eve")).status_code == 404
    )
    assert (
        client.post(
            f"{base}/deliveries/{delivery['id']}/redeliver", headers=basic("eve")
        ).status_code
        == 404
    )
    assert client.get(f"{base}/deliveries/nope", headers=repo.auth).status_code == 404
