"""Service version pinning: a plain update moves services on; one asking for more waits for the
repository admin, who accepts or declines through the API."""

from __future__ import annotations

from brokerage.platform.upgrades import wider_permissions
from tests.submissions.conftest import MANIFEST, archive, package_files, upload
from tests.support import FORM

SERVICES = "/1.0/repositories/marcus/project-x/services"


def _approved(client, people, verify_with, **changes) -> int:
    response = upload(client, people.vendor, archive(package_files(**changes)))
    assert response.status_code == 201, response.json
    verify_with()
    submission = response.json["id"]
    decided = client.post(
        f"/1.0/submissions/{submission}/decision",
        json={"decision": "approve"},
        headers=people.reviewer,
    )
    assert decided.json["state"] == "approved", decided.json
    return int(submission)


def _pinned(client, people, service: int) -> str:
    from brokerage.platform.models import Service

    with client.application.extensions["brokerage.runtime"].sessions() as session:
        return session.get(Service, service).broker_version.version


def test_updates_move_services_or_wait_for_the_admin(client, people, verify_with) -> None:
    first = _approved(client, people, verify_with)
    added = client.post(
        SERVICES,
        data="type=acme hook&URL=https://hooks.acme.test/x",
        headers={**people.admin, **FORM},
    )
    service = added.json["id"]

    second = _approved(
        client,
        people,
        verify_with,
        version="1.1.0",
        fields=[*MANIFEST["fields"], {"label": "Channel", "type": "string", "default": "main"}],
    )
    assert _pinned(client, people, service) == "1.1.0"
    [shown] = client.get(f"{SERVICES}/{service}", headers=people.admin).json
    assert shown["service"]["fields"][:2] == [
        {"name": "URL", "value": "https://hooks.acme.test/x"},
        {"name": "Channel", "value": "main"},
    ]
    states = {
        s["id"]: s["state"] for s in client.get("/1.0/submissions", headers=people.vendor).json
    }
    assert states == {first: "superseded", second: "approved"}
    assert client.get(f"{SERVICES}/{service}/upgrade", headers=people.admin).status_code == 404

    _approved(
        client,
        people,
        verify_with,
        version="2.0.0",
        egress=["hooks.acme.test", "api.acme.test"],
        permissions=["issues:write"],
    )
    assert _pinned(client, people, service) == "1.1.0"
    pending = client.get(f"{SERVICES}/{service}/upgrade", headers=people.admin).json
    assert (pending["from_version"], pending["to_version"], pending["status"]) == (
        "1.1.0",
        "2.0.0",
        "pending",
    )
    assert pending["wider"] == ["egress to api.acme.test", "permission issues:write"]
    assert (
        client.get(f"{SERVICES}/{service}/upgrade", headers=people.vendor).status_code == 404
    )  # private repo

    declined = client.post(
        f"{SERVICES}/{service}/upgrade", data="action=decline", headers={**people.admin, **FORM}
    )
    assert (declined.json["status"], declined.json["service_version"]) == ("declined", "1.1.0")
    assert (
        client.post(
            f"{SERVICES}/{service}/upgrade", data="action=accept", headers={**people.admin, **FORM}
        ).status_code
        == 404
    )

    _approved(
        client,
        people,
        verify_with,
        version="2.1.0",
        egress=["hooks.acme.test", "api.acme.test"],
        permissions=["issues:write"],
    )
    accepted = client.post(
        f"{SERVICES}/{service}/upgrade", json={"action": "accept"}, headers=people.admin
    )
    assert (accepted.json["status"], accepted.json["service_version"]) == ("accepted", "2.1.0")
    assert accepted.json["decided_by"] == "marcus"
    assert _pinned(client, people, service) == "2.1.0"


def test_what_counts_as_asking_for_more() -> None:
    base = {
        "egress": ["a.test"],
        "permissions": [],
        "fields": [{"label": "URL", "type": "url", "required": True}],
    }
    assert wider_permissions(base, base) == []
    assert wider_permissions(base, {**base, "egress": []}) == []
    assert wider_permissions(base, {**base, "egress": ["*"]}) == ["egress to any public host"]
    assert wider_permissions({**base, "egress": ["*"]}, {**base, "egress": ["b.test"]}) == []
    more_fields = [
        *base["fields"],
        {"label": "Token", "type": "password", "required": True},
        {"label": "Room", "type": "string"},
    ]
    assert wider_permissions(base, {**base, "fields": more_fields}) == ["required field Token"]
