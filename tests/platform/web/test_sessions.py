"""Sessions end at sign-out (a copied cookie stops working), and sign-ins are rate-limited
per account and per client address, in the pages and in the API's Basic auth."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from brokerage.core.tables import utcnow
from brokerage.platform.db import session_scope
from brokerage.platform.models import SignInFailure
from tests.platform.web.conftest import WebClient, csrf_of
from tests.support import PASSWORD, Seeder, basic


def stolen_cookie(client: FlaskClient) -> str:
    cookie = client.get_cookie("session")
    assert cookie is not None
    return cookie.value


def test_a_copied_cookie_stops_working_at_sign_out(
    app: Flask, people: Seeder, web: WebClient
) -> None:
    assert web.sign_in("marcus").status_code == 303
    cookie = stolen_cookie(web.client)
    thief = app.test_client()
    thief.set_cookie("session", cookie)
    assert thief.get("/").status_code == 200  # the copy works while the session lives
    assert web.post("/logout").status_code == 303
    answer = thief.get("/")
    assert answer.status_code == 302 and "/login" in answer.headers["Location"]
    # signing in again makes a new session; the old cookie stays dead
    web.sign_in("marcus")
    assert thief.get("/").status_code == 302


def test_signing_out_ends_only_that_session(app: Flask, people: Seeder) -> None:
    phone, laptop = WebClient(app.test_client()), WebClient(app.test_client())
    phone.sign_in("marcus")
    laptop.sign_in("marcus")
    phone.post("/logout")
    assert phone.get("/").status_code == 302
    assert laptop.get("/").status_code == 200


def wrong(web: WebClient, username: str) -> int:
    return int(web.sign_in(username, "not the password").status_code)


def test_the_pages_limit_failed_sign_ins_per_account(app: Flask, people: Seeder) -> None:
    app.config["SIGNIN_MAX_ACCOUNT_FAILURES"] = 3
    web = WebClient(app.test_client())
    assert [wrong(web, "marcus") for _ in range(3)] == [401, 401, 401]
    answer = web.sign_in("marcus")  # the right password, refused while the limit holds
    assert answer.status_code == 429
    assert "too many failed sign-ins for this account" in answer.text
    assert web.sign_in("eve").status_code == 303  # another account is not affected


def test_the_pages_limit_failed_sign_ins_per_address(app: Flask, people: Seeder) -> None:
    app.config["SIGNIN_MAX_ADDRESS_FAILURES"] = 4
    web = WebClient(app.test_client())
    for name in ("marcus", "eve", "olga", "vera"):
        assert wrong(web, name) == 401
    answer = web.sign_in("rita")
    assert answer.status_code == 429
    assert "for this address" in answer.text
    other = app.test_client()  # another address is not affected
    token = csrf_of(other.get("/login").text)
    answer = other.post(
        "/login",
        data={"username": "rita", "password": PASSWORD, "csrf_token": token},
        environ_base={"REMOTE_ADDR": "192.0.2.7"},
    )
    assert answer.status_code == 303


def test_failures_leave_the_window(app: Flask, people: Seeder) -> None:
    app.config["SIGNIN_MAX_ACCOUNT_FAILURES"] = 2
    web = WebClient(app.test_client())
    wrong(web, "marcus")
    wrong(web, "marcus")
    assert web.sign_in("marcus").status_code == 429
    # the failures age past the window (moved back in time rather than waited for)
    with session_scope(app.extensions["brokerage.sessionmaker"]) as session:
        session.execute(
            update(SignInFailure).values(
                at=utcnow() - timedelta(seconds=app.config["SIGNIN_WINDOW"])
            )
        )
    assert web.sign_in("marcus").status_code == 303


def test_api_basic_auth_is_limited_too(app: Flask, seed: Seeder, client: FlaskClient) -> None:
    app.config["SIGNIN_MAX_ACCOUNT_FAILURES"] = 3
    seed.user("marcus")
    token = seed.token("marcus")
    statuses = [client.get("/1.0/user", headers=basic("marcus", "nope")).status_code
                for _ in range(3)]  # fmt: skip
    assert statuses == [401, 401, 401]
    answer = client.get("/1.0/user", headers=basic("marcus"))
    assert answer.status_code == 429
    assert answer.json["error"]["status"] == 429
    assert "too many failed sign-ins" in answer.json["error"]["message"]
    # API tokens are long random secrets: not limited
    answer = client.get("/1.0/user", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
