"""The API's contract at the boundary: the OpenAPI document, and crafted requests that
once answered 500 (or were accepted) now refused with a JSON 400/404 that changes nothing."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from brokerage.platform import accounts
from brokerage.platform.api import contract
from brokerage.platform.db import session_scope
from tests.support import FORM, Seeder, basic, snapshot

REPO = "/1.0/repositories/tutorials/testrepo"
HUGE = "99999999999999999999999"


@pytest.fixture
def owner(seed: Seeder) -> dict[str, str]:
    seed.user("tutorials")
    seed.repo("tutorials", "testrepo")
    return basic("tutorials")


def push_token(app: Flask) -> str:
    client = app.test_client()
    answer = client.post(f"{REPO}/push-token", headers=basic("tutorials"))
    assert answer.status_code == 201
    return str(answer.json["token"])


def a_push(**changes: Any) -> dict[str, Any]:
    body = {
        "scm": "git",
        "user": "marcus",
        "push_id": str(uuid.uuid4()),
        "truncated": False,
        "refs": [{"ref": "refs/heads/main", "type": "branch", "old": None, "new": "a" * 40}],
        "commits": [],
    }
    return body | changes


def refused(answer: Any, status: int = 400) -> str:
    assert answer.status_code == status, answer.get_data(as_text=True)[:300]
    assert answer.mimetype == "application/json"
    assert answer.json["error"]["status"] == status
    return str(answer.json["error"]["message"])


def deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_the_document_is_served_and_covers_every_api_route(app: Flask) -> None:
    answer = app.test_client().get("/1.0/openapi.json")
    assert answer.status_code == 200
    doc = answer.json
    assert doc["openapi"].startswith("3.1")
    operations = {
        spec["operationId"]: (path, method)
        for path, item in doc["paths"].items()
        for method, spec in item.items()
    }
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/1.0"):
            continue
        path = rule.rule
        for conv in ("int:", ""):
            path = path.replace("<" + conv, "{")
        path = path.replace(">", "}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert operations.get(rule.endpoint) == (path, method.lower()), rule.rule
    # the push body's schema is embedded, its references resolved inside the document
    assert "Push_commit" in doc["components"]["schemas"]
    assert "#/$defs/" not in json.dumps(doc)


def test_every_string_and_list_of_a_json_body_is_capped() -> None:
    doc = contract.document()

    def walk(schema: Any, where: str) -> None:
        if isinstance(schema, dict):
            types = schema.get("type")
            types = types if isinstance(types, list) else [types]
            if "string" in types and "pattern" not in schema and "enum" not in schema:
                assert "maxLength" in schema or schema.get("format") == "binary", where
            if "array" in types and "items" in schema:
                assert "maxItems" in schema, where
            for key, value in schema.items():
                walk(value, f"{where}.{key}")
        elif isinstance(schema, list):
            for n, value in enumerate(schema):
                walk(value, f"{where}[{n}]")

    requests = {k: v for k, v in doc["components"]["schemas"].items() if k != "Error"}
    walk(requests, "components")  # every request schema (Error describes answers)


@pytest.mark.parametrize(
    "body",
    [
        {"name": {"a": 1}},
        {"name": "x" * (1024 * 1024)},
        {"name": "ok", "colour": "blue"},
        {"name": "ok", "is_private": "maybe-not"},
        {"name": "a\x00b"},
        {"name": "a\ud800b"},
    ],
)
def test_bad_repository_bodies_change_nothing(
    app: Flask, client: FlaskClient, owner: dict[str, str], body: dict[str, Any]
) -> None:
    before = snapshot(app)
    text = json.dumps(body)  # \u escapes: NUL and the lone surrogate arrive as JSON allows
    answer = client.post(
        "/1.0/repositories", data=text, headers={**owner, "Content-Type": "application/json"}
    )
    refused(answer)
    assert snapshot(app) == before


def test_unknown_json_fields_are_named(client: FlaskClient, owner: dict[str, str]) -> None:
    answer = client.post("/1.0/user/tokens", json={"name": "ci", "scope": "all"}, headers=owner)
    assert "unknown field(s): scope" in refused(answer)


@pytest.mark.parametrize(
    "body",
    [
        {"username": "eve", "password": {"a": 1}},
        {"username": "eve", "password": "long enough", "email": "eve@example.org\r\nBcc: x@y"},
        {"username": "eve", "password": "long enough", "email": "e" * 300 + "@example.org"},
    ],
)
def test_bad_user_bodies_are_refused(seed: Seeder, client: FlaskClient, body: dict) -> None:
    seed.user("root", accounts.Role.OPERATOR)
    refused(client.post("/1.0/users", json=body, headers=basic("root")))


def test_the_domain_refuses_a_mail_header_injection_too(app: Flask) -> None:
    from brokerage.core.errors import BadRequestError

    sessions = app.extensions["brokerage.sessionmaker"]
    with session_scope(sessions) as session, pytest.raises(BadRequestError):
        accounts.create_user(session, "eve", "long enough", email="e@x.org\nBcc: y@z")


def test_form_bodies_are_checked_too(client: FlaskClient, owner: dict[str, str]) -> None:
    refused(client.post("/1.0/user/tokens", data="name=" + "x" * 101, headers={**owner, **FORM}))
    refused(client.post("/1.0/user/tokens", data="colour=blue", headers={**owner, **FORM}))
    refused(client.post("/1.0/user/tokens", data="name=a%00b", headers={**owner, **FORM}))


@pytest.mark.parametrize(
    "path",
    [
        f"{REPO}/pushes",
        "/1.0/repositories",
        f"{REPO}/issues",
        "/1.0/user/tokens",
    ],
)
@pytest.mark.parametrize("depth", [100, 100_000])
def test_deep_json_is_refused(
    app: Flask, client: FlaskClient, owner: dict[str, str], path: str, depth: int
) -> None:
    headers = {**owner, "Content-Type": "application/json"}
    if path.endswith("/pushes"):
        headers["Authorization"] = f"Bearer {push_token(app)}"
    before = snapshot(app)
    body = '{"name": ' + deep(depth) + "}"
    refused(client.post(path, data=body, headers=headers))
    assert snapshot(app) == before


@pytest.mark.parametrize(
    "path",
    [
        f"{REPO}/pushes/{HUGE}",
        f"{REPO}/issues/{HUGE}",
        f"{REPO}/services/{HUGE}",
        f"/1.0/submissions/{HUGE}",
        f"{REPO}/deliveries/{HUGE}",
        "/1.0/submissions/2147483648",
    ],
)
def test_huge_ids_are_unknown(client: FlaskClient, owner: dict[str, str], path: str) -> None:
    refused(client.get(path, headers=owner), 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", f"{REPO}/issues/{HUGE}/comments"),
        ("delete", f"/1.0/user/tokens/{HUGE}"),
        ("put", f"{REPO}/issues/{HUGE}"),
    ],
)
def test_huge_ids_in_writes_are_unknown(
    client: FlaskClient, owner: dict[str, str], method: str, path: str
) -> None:
    answer = client.open(path, method=method.upper(), json={"content": "x"}, headers=owner)
    # no route takes such an id: 404, or 405 where another route matches the path's shape
    refused(answer, answer.status_code if answer.status_code in (404, 405) else 404)


@pytest.mark.parametrize(
    "query",
    [f"page={HUGE}", f"pagelen={HUGE}", f"service={HUGE}", f"push={HUGE}", "page=-1", "push=x"],
)
@pytest.mark.parametrize("resource", ["pushes", "deliveries"])
def test_huge_query_numbers_are_refused(
    client: FlaskClient, owner: dict[str, str], query: str, resource: str
) -> None:
    answer = client.get(f"{REPO}/{resource}?{query}", headers=owner)
    if resource == "pushes" and query.split("=")[0] in ("service", "push"):
        assert answer.status_code == 200  # not a parameter of this list
    else:
        refused(answer)


def test_nul_and_surrogates_in_a_push_are_refused(app: Flask, client: FlaskClient, owner) -> None:
    token = {"Authorization": f"Bearer {push_token(app)}", "Content-Type": "application/json"}
    before = snapshot(app)
    for user in ("a\x00b", "a\ud800b", "\udfff"):
        answer = client.post(f"{REPO}/pushes", data=json.dumps(a_push(user=user)), headers=token)
        refused(answer)
    assert snapshot(app) == before
    # a valid surrogate pair is an ordinary character
    answer = client.post(f"{REPO}/pushes", data=json.dumps(a_push(user="😀")), headers=token)
    assert answer.status_code == 202, answer.json


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/1.0/repositories", {"name": "a\x00b"}),
        ("post", f"{REPO}/issues", {"title": "a\x00b"}),
        ("post", "/1.0/user/tokens", {"name": "a\x00b"}),
    ],
)
def test_nul_bytes_in_json_are_refused(
    app: Flask, client: FlaskClient, owner: dict, method: str, path: str, body: dict
) -> None:
    before = snapshot(app)
    refused(client.open(path, method=method.upper(), json=body, headers=owner))
    assert snapshot(app) == before


def test_nul_in_service_branches_and_names(
    app: Flask, client: FlaskClient, owner: dict[str, str]
) -> None:
    before = snapshot(app)
    for body in ("type=POST&Branches=a%00b", "type=POST&URL=http%3A%2F%2Fx%00", "a%00=1&type=POST"):
        refused(client.post(f"{REPO}/services", data=body, headers={**owner, **FORM}))
    assert snapshot(app) == before


def test_nul_in_the_basic_user_name_of_an_unknown_caller(client: FlaskClient, owner) -> None:
    raw = base64.b64encode(b"tu\x00torials:pw").decode()
    refused(client.get("/1.0/user", headers={"Authorization": f"Basic {raw}"}))
    refused(client.get(f"{REPO}/pushes", headers={"Authorization": f"Basic {raw}"}))


def test_nul_in_the_path_and_query(client: FlaskClient, owner: dict[str, str]) -> None:
    refused(client.get("/1.0/repositories/tutorials/test%00repo", headers=owner))
    refused(client.get(f"{REPO}/issues?status=a%00", headers=owner))


@pytest.mark.parametrize(
    "name",
    ["X\r\nSet-Cookie: a=b", "caf\u00e9\u2603", "tab\there", "\u2028", "n" * 2000],
)
def test_put_with_any_parameter_name_answers_a_safe_warning(
    app: Flask, client: FlaskClient, owner: dict[str, str], name: str
) -> None:
    from urllib.parse import urlencode

    created = client.post(
        f"{REPO}/services", data="type=POST&URL=http%3A%2F%2Fa.example", headers={**owner, **FORM}
    ).json
    answer = client.put(
        f"{REPO}/services/{created['id']}",
        data=urlencode({"URL": "http://b.example", name: "1"}),
        headers={**owner, **FORM},
    )
    if len(name) > 200:
        refused(answer)  # names are capped at 200 characters (the document says so)
        return
    assert answer.status_code == 200
    warning = answer.headers["X-Brokerage-Warning"]
    assert "unknown" in warning
    assert warning.isascii() and warning.isprintable()
    assert "Set-Cookie" not in answer.headers


def test_werkzeug_errors_are_json(client: FlaskClient, owner: dict[str, str]) -> None:
    refused(client.patch(f"{REPO}/issues", headers=owner), 405)
    refused(client.get("/1.0/no-such-thing", headers=owner), 404)


# -- through a real server: what waitress and Werkzeug would answer themselves ----------


@pytest.fixture
def live(app: Flask, owner: dict[str, str]) -> Iterator[tuple[str, int]]:
    import threading

    from brokerage.platform.server import wsgi
    from tests.support import free_port

    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    port = free_port()
    server = wsgi.create_server(app, "127.0.0.1", port, threads=2)
    threading.Thread(target=server.run, daemon=True).start()
    yield "127.0.0.1", port
    server.close()


def raw_request(address: tuple[str, int], request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are; the status, headers and body of the answer."""
    import socket

    with socket.create_connection(address, timeout=30) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def json_error(answer: tuple[int, dict[str, str], bytes], status: int) -> str:
    code, headers, body = answer
    assert code == status, body[:300]
    assert headers["Content-Type"].startswith("application/json"), headers
    assert json.loads(body)["error"]["status"] == status
    return str(json.loads(body)["error"]["message"])


AUTH = "Authorization: Basic " + base64.b64encode(b"tutorials:correct horse battery").decode()


@pytest.mark.parametrize(
    ("request_line", "headers", "body", "status"),
    [
        ("POST /1.0/user/tokens HTTP/1.1", "Content-Length: abc", b"", 400),
        ("POST /1.0/user/tokens HTTP/1.1", "Content-Length: -5", b"", 400),
        ("GET /1.0/repositories/%zz%/x HTTP/1.1", AUTH, b"", 404),
        ("GET /1.0/repositories/tutorials/testrepo/pushes?page=%ff%fe HTTP/1.1", AUTH, b"", 400),
        ("PATCH /1.0/user HTTP/1.1", AUTH, b"", 405),
        (
            "POST /1.0/user/tokens HTTP/1.1",
            AUTH + "\r\nContent-Type: application/json\r\nContent-Length: 70000",
            b"{" + b" " * 69998 + b"}",
            413,
        ),  # fmt: skip
    ],
)
def test_errors_the_server_raises_itself_are_json(
    live: tuple[str, int], request_line: str, headers: str, body: bytes, status: int
) -> None:
    if "Content-Length" not in headers:
        headers += f"\r\nContent-Length: {len(body)}"
    raw = f"{request_line}\r\nHost: x\r\nConnection: close\r\n{headers}\r\n\r\n".encode() + body
    json_error(raw_request(live, raw), status)


@pytest.mark.parametrize(
    "name", [b"X\r\nSet-Cookie: a=b", "caf\u00e9\u2603".encode(), b"\xff\xfe", b"a\x7fb"]
)
def test_a_put_whose_parameter_names_break_headers_is_answered_safely(
    app: Flask, live: tuple[str, int], owner: dict[str, str], name: bytes
) -> None:
    from urllib.parse import quote_from_bytes

    created = (
        app.test_client()
        .post(
            f"{REPO}/services",
            data="type=POST&URL=http%3A%2F%2Fa.example",
            headers={**owner, **FORM},
        )
        .json
    )
    body = b"URL=http%3A%2F%2Fb.example&" + quote_from_bytes(name).encode() + b"=1"
    raw = (
        f"PUT {REPO}/services/{created['id']} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        f"{AUTH}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    code, headers, answer = raw_request(live, raw)
    assert code == 200, answer[:300]
    assert "Set-Cookie" not in headers
    assert headers["X-Brokerage-Warning"].isascii()
