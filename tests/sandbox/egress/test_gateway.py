"""The gateway through its real Unix socket: broker-side ``requests`` (via the loopback
bridge) and raw bytes, against real receivers on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from typing import Any

import pytest
import requests

from brokerage.sandbox.egress.config import GatewayConfig, system_resolver
from brokerage.sandbox.egress.errors import GatewayConfigError
from brokerage.sandbox.egress.gateway import Gateway
from brokerage.sandbox.egress.proxy import REFUSED_HEADER
from brokerage.sandbox.interface import EgressChannel, EgressProvider
from tests.sandbox.egress.egress_tables import ANY, NAMED, REFUSED


def _fill(template: str, receiver: Any, tls_receiver: Any) -> str:
    return template.format(p=receiver.port, tp=tls_receiver.port)


@pytest.mark.parametrize(("template", "egress", "reason"), REFUSED)
def test_refused_targets(
    template: str, egress: list[str], reason: str, broker_side: Callable, receiver, tls_receiver
) -> None:
    url = _fill(template, receiver, tls_receiver)
    side = broker_side(egress)
    seen = len(receiver.requests) + len(tls_receiver.requests)
    try:
        response = side.session.get(url, timeout=10, allow_redirects=False)
    except requests.exceptions.ProxyError:
        response = None  # a refused CONNECT
    if response is not None:
        assert response.status_code in (400, 403, 502)
        assert response.headers[REFUSED_HEADER] == reason
    entries = side.end_run()
    assert [e["refused"] for e in entries] == [reason]
    assert entries[0]["address"] is None  # never connected
    assert len(receiver.requests) + len(tls_receiver.requests) == seen


def test_refused_table_is_big_enough() -> None:
    assert len(REFUSED) >= 40


@pytest.mark.parametrize(
    ("egress", "host"),
    [
        (ANY, "receiver.test"),
        (NAMED, "a.wild.test"),
        (NAMED, "deep.a.wild.test"),
        (["127.0.0.1"], "127.0.0.1"),
        (["127.0.0.1"], "2130706433"),  # means 127.0.0.1, which is listed
    ],
)
def test_allowed_targets_pass(egress: list[str], host: str, broker_side, receiver) -> None:
    side = broker_side(egress)
    response = side.session.get(receiver.url("/hello?x=1", host), timeout=10)
    assert response.status_code == 200
    assert response.json()["path"] == "/hello?x=1"
    assert receiver.requests[-1].headers["host"] == f"{host}:{receiver.port}"
    assert not any(h.startswith("proxy-") for h in receiver.requests[-1].headers)
    [entry] = side.end_run()
    assert (entry["refused"], entry["status"], entry["address"]) == (None, 200, "127.0.0.1")


def test_post_body_arrives_and_is_logged(broker_side, receiver) -> None:
    side = broker_side(NAMED)
    response = side.session.post(receiver.url("/hook"), json={"commits": [1, 2]}, timeout=10)
    assert response.json() == {"method": "POST", "path": "/hook", "length": 19}
    assert receiver.requests[-1].body == b'{"commits": [1, 2]}'
    [entry] = side.end_run()
    assert entry["method"] == "POST"
    assert entry["url"] == receiver.url("/hook")
    assert entry["bytes_sent"] == 19
    assert entry["bytes_received"] == len(response.content)
    assert entry["delivery_id"] == "delivery-0"
    assert entry["seconds"] >= 0


def test_chunked_upload_is_forwarded_with_a_length(broker_side, receiver) -> None:
    side = broker_side(NAMED)
    response = side.session.post(receiver.url("/c"), data=iter([b"ab", b"cd"]), timeout=10)
    assert response.json()["length"] == 4
    assert receiver.requests[-1].headers["content-length"] == "4"


def test_https_goes_through_a_connect_tunnel(broker_side, tls_receiver, tls_cert) -> None:
    side = broker_side(NAMED)
    response = side.session.get(tls_receiver.url("/secure"), verify=str(tls_cert[0]), timeout=10)
    assert response.json()["path"] == "/secure"
    [entry] = side.end_run()
    assert (entry["method"], entry["status"], entry["refused"]) == ("CONNECT", 200, None)
    assert entry["url"] == f"receiver.test:{tls_receiver.port}"
    assert entry["bytes_sent"] > 0 and entry["bytes_received"] > 0


def test_redirects_come_back_unchanged(broker_side, receiver) -> None:
    side = broker_side(ANY)
    target = f"http://127.0.0.1:{receiver.port}/secret"
    response = side.session.get(
        receiver.url(f"/redirect?to={target}"), allow_redirects=False, timeout=10
    )
    assert (response.status_code, response.headers["location"]) == (302, target)


@pytest.mark.parametrize(
    "target",
    ["http://127.0.0.1:{p}/secret", "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/"],
)
def test_a_followed_redirect_into_blocked_space_is_refused(
    target: str, broker_side, receiver, tls_receiver
) -> None:
    side = broker_side(ANY)
    target = _fill(target, receiver, tls_receiver)
    response = side.session.get(receiver.url(f"/redirect?to={target}"), timeout=10)
    assert response.status_code == 403
    assert response.headers[REFUSED_HEADER] == "address_denied"
    assert [e["status"] for e in side.end_run()] == [302, 403]
    assert not receiver.requests[-1].path.startswith("/secret")


RAW_REFUSED = [
    b"GET http://receiver.test:{p}/ HTTP/1.1\r\nX-A: 1\rX-B: 2\r\n\r\n",
    b"GET http://receiver.test:{p}/ HTTP/1.1\r\nX-A: 1\nX-B: 2\r\n\r\n",
    b"GET http://receiver.test:{p}/ HTTP/1.1\r\nX-A: 1\x00X-B: 2\r\n\r\n",
    b"GET http://receiver.test:{p}/ HTTP/1.1\r\nX-A: 1\r\n folded: 2\r\n\r\n",
    b"GET http://receiver.test:{p}/a\rb HTTP/1.1\r\n\r\n",
    b"GET http://receiver.test:{p}/a\nb HTTP/1.1\r\n\r\n",
    b"GET http://receiver.test:{p}/a b HTTP/1.1\r\n\r\n",
    b"GET http://receiver.test\x00.evil:{p}/ HTTP/1.1\r\n\r\n",
    b"GET http://receiver.test\r\n.evil:{p}/ HTTP/1.1\r\n\r\n",
    b"CONNECT receiver.test\r:{p} HTTP/1.1\r\n\r\n",
    b"GET http://receiver.test%0d%0aX-Injected:%201:{p}/ HTTP/1.1\r\n\r\n",
    b"CONNECT receiver.test%0d%0a:{p} HTTP/1.1\r\n\r\n",
    b"GET http://receiver.test:{p}/ HTTP/1.1\r\nBad Name: x\r\n\r\n",
    b"POST http://receiver.test:{p}/ HTTP/1.1\r\nContent-Length: 1\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST http://receiver.test:{p}/ HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    b"GET / HTTP/1.1\r\nHost: receiver.test\r\n\r\n",
    b"GET https://receiver.test:{p}/ HTTP/1.1\r\n\r\n",
    b"GET http://receiver.test:{p}/ HTTP/2.0\r\n\r\n",
]


@pytest.mark.parametrize("template", RAW_REFUSED)
def test_injection_and_malformed_requests_are_refused(
    template: bytes, broker_side, receiver, raw
) -> None:
    side = broker_side(ANY)
    seen = len(receiver.requests)
    answer = raw(side.channel.socket_path, template.replace(b"{p}", str(receiver.port).encode()))
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"\r\nX-Brokerage-Refused: bad_" in answer
    assert [e["refused"] for e in side.end_run()][0] in ("bad_request", "bad_host")
    assert len(receiver.requests) == seen


def test_credentials_never_reach_the_log(broker_side, receiver) -> None:
    side = broker_side(NAMED)
    url = f"http://alice:s3cret@receiver.test:{receiver.port}/x?token=abc123&q=1"
    assert side.session.get(url, timeout=10).status_code == 200
    [entry] = side.end_run()
    assert "s3cret" not in repr(entry) and "abc123" not in repr(entry)
    assert entry["url"] == f"http://receiver.test:{receiver.port}/x?token=***&q=1"


def test_no_request_is_served_outside_a_run(broker_side, receiver) -> None:
    side = broker_side(NAMED)
    side.end_run()
    response = side.session.get(receiver.url("/late"), timeout=10)
    assert (response.status_code, response.headers[REFUSED_HEADER]) == (403, "no_run")
    assert side.end_run() == []
    assert not receiver.requests or receiver.requests[-1].path != "/late"


def test_each_channel_logs_only_its_own_requests(broker_side, receiver) -> None:
    first, second = broker_side(NAMED), broker_side(NAMED)
    first.session.get(receiver.url("/one"), timeout=10)
    second.session.get(receiver.url("/two"), timeout=10)
    second.session.get(receiver.url("/three"), timeout=10)
    assert [e["url"].rsplit("/", 1)[1] for e in first.end_run()] == ["one"]
    assert [e["url"].rsplit("/", 1)[1] for e in second.end_run()] == ["two", "three"]


def test_a_new_run_starts_a_new_log(broker_side, receiver) -> None:
    side = broker_side(NAMED)
    side.session.get(receiver.url("/a"), timeout=10)
    assert len(side.end_run()) == 1
    side.channel.begin_run("next")
    side.session.get(receiver.url("/b"), timeout=10)
    [entry] = side.end_run()
    assert (entry["delivery_id"], entry["url"]) == ("next", receiver.url("/b"))


def test_close_removes_the_socket(gateway: Gateway, bundle_for) -> None:
    channel = gateway.open_channel(bundle_for(NAMED))
    assert os.stat(channel.socket_path).st_mode & 0o777 == 0o666
    channel.close()
    assert not os.path.exists(os.path.dirname(channel.socket_path))


def test_response_over_the_cap_is_refused(make_gateway, broker_side, receiver) -> None:
    side = broker_side(NAMED, via=make_gateway(max_response_bytes=1000))
    response = side.session.get(receiver.url("/big?n=5000"), timeout=10)
    assert (response.status_code, response.headers[REFUSED_HEADER]) == (413, "too_large")
    assert side.end_run()[0]["refused"] == "too_large"


def test_request_body_over_the_cap_is_refused(make_gateway, broker_side, receiver) -> None:
    side = broker_side(NAMED, via=make_gateway(max_request_bytes=1000))
    seen = len(receiver.requests)
    response = side.session.post(receiver.url("/up"), data=b"x" * 5000, timeout=10)
    assert (response.status_code, response.headers[REFUSED_HEADER]) == (413, "too_large")
    assert len(receiver.requests) == seen


def test_requests_per_run_are_capped(make_gateway, broker_side, receiver) -> None:
    side = broker_side(NAMED, via=make_gateway(max_requests_per_run=2))
    statuses = [side.session.get(receiver.url("/n"), timeout=10).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert [e["refused"] for e in side.end_run()] == [None, None, "run_cap"]


def test_bytes_per_run_are_capped(make_gateway, broker_side, receiver) -> None:
    side = broker_side(NAMED, via=make_gateway(max_bytes_per_run=6000))
    side.session.get(receiver.url("/big?n=4000"), timeout=10)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        side.session.get(receiver.url("/big?n=4000"), timeout=10)
    assert [e["refused"] for e in side.end_run()] == [None, "run_cap"]


def test_over_a_limit_a_request_waits_and_passes(make_gateway, broker_side, receiver) -> None:
    gateway = make_gateway(destination_rate=20.0, destination_burst=1, limit_wait_seconds=5.0)
    side = broker_side(NAMED, via=gateway)
    statuses = [side.session.get(receiver.url("/r"), timeout=10).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    log = side.end_run()
    assert [e["refused"] for e in log] == [None, None, None]
    assert "waited" not in log[0] and log[1]["waited"] > 0 and log[2]["waited"] > 0
    assert gateway.limits.stats()["waits"] == {"destination": 2, "service": 0, "repository": 0}


def test_past_the_longest_wait_a_request_is_refused_with_the_wait(
    make_gateway, broker_side, receiver
) -> None:
    gateway = make_gateway(destination_rate=0.01, destination_burst=1, limit_wait_seconds=0.2)
    side = broker_side(NAMED, via=gateway)
    assert side.session.get(receiver.url("/r"), timeout=10).status_code == 200
    response = side.session.get(receiver.url("/r"), timeout=10)
    assert (response.status_code, response.headers[REFUSED_HEADER]) == (429, "rate_limited")
    assert int(response.headers["Retry-After"]) >= 1
    second = side.end_run()[1]
    assert second["refused"] == "rate_limited" and second["retry_after"] > 0.2
    assert "destination rate limit" in second["detail"]
    assert gateway.limits.stats()["deferrals"]["destination"] == 1


def test_one_busy_repository_does_not_throttle_another(make_gateway, broker_side, receiver) -> None:
    gateway = make_gateway(repository_rate=0.01, repository_burst=2, limit_wait_seconds=0.2)
    # broker_side names its runs delivery-0, delivery-1, ... in the order they are opened
    gateway.limit_by("delivery-0", {"service": "1", "repository": "busy"})
    gateway.limit_by("delivery-1", {"service": "2", "repository": "busy"})
    gateway.limit_by("delivery-2", {"service": "3", "repository": "quiet"})
    busy, busy_too, quiet = (broker_side(NAMED, via=gateway) for _ in range(3))
    answers = [busy.session.get(receiver.url("/r"), timeout=10).status_code for _ in range(2)]
    answers.append(busy_too.session.get(receiver.url("/r"), timeout=10).status_code)
    assert answers == [200, 200, 429]  # the busy repository's third request, whoever sends it
    assert quiet.session.get(receiver.url("/r"), timeout=10).status_code == 200
    [entry] = quiet.end_run()
    assert entry["refused"] is None and "waited" not in entry
    assert gateway.limits.stats()["deferrals"]["repository"] == 1


def test_keys_the_platform_gave_are_forgotten(make_gateway, broker_side, receiver) -> None:
    gateway = make_gateway(service_rate=0.01, service_burst=1, limit_wait_seconds=0.2)
    gateway.limit_by("delivery-0", {"service": "7"})
    gateway.forget("delivery-0")
    side = broker_side(NAMED, via=gateway)
    assert [side.session.get(receiver.url("/r"), timeout=10).status_code for _ in range(2)] == [
        200, 200,
    ]  # fmt: skip


def test_a_slow_target_times_out(make_gateway, broker_side, receiver) -> None:
    side = broker_side(NAMED, via=make_gateway(idle_seconds=1.0))
    response = side.session.get(receiver.url("/slow?s=4"), timeout=10)
    assert response.status_code == 504
    [entry] = side.end_run()
    assert entry["status"] == 504 and "timed out" in entry["detail"]


def test_end_run_cuts_requests_in_flight(broker_side, receiver) -> None:
    side = broker_side(NAMED)
    outcome: list[Any] = []

    def call() -> None:
        try:
            outcome.append(side.session.get(receiver.url("/slow?s=3"), timeout=10))
        except requests.RequestException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=call)
    worker.start()
    for _ in range(200):  # wait until the receiver has the request
        if receiver.requests and receiver.requests[-1].path == "/slow?s=3":
            break
        threading.Event().wait(0.01)
    [entry] = side.end_run()
    worker.join()
    assert entry["refused"] == "run_ended"
    assert not isinstance(outcome[0], requests.Response) or outcome[0].status_code != 200


def test_open_connections_per_run_are_capped(make_gateway, broker_side, receiver) -> None:
    side = broker_side(NAMED, via=make_gateway(max_open_connections=1))
    slow = threading.Thread(target=side.session.get, args=(receiver.url("/slow?s=1"),))
    slow.start()
    for _ in range(200):
        if receiver.requests and receiver.requests[-1].path == "/slow?s=1":
            break
        threading.Event().wait(0.01)
    response = requests.get(receiver.url("/second"), proxies=side.session.proxies, timeout=10)
    slow.join()
    assert (response.status_code, response.headers[REFUSED_HEADER]) == (429, "run_cap")


def test_the_gateway_is_an_egress_provider(gateway: Gateway, bundle_for) -> None:
    provider: EgressProvider = gateway  # mypy checks the protocol; the calls check behaviour
    channel: EgressChannel = provider.open_channel(bundle_for(NAMED))
    channel.begin_run("d")
    assert channel.end_run() == []
    channel.close()


def test_config_comes_from_the_platform_config() -> None:
    config = GatewayConfig.from_app_config(
        {"MAIL_DOMAIN": "b.example", "SMTP_HOST": "127.0.0.1", "SMTP_PORT": 2525,
         "EGRESS_PORTS": "80, 443,8080", "EGRESS_EXTRA_RANGES": ["10.1.2.0/24"]}
    )  # fmt: skip
    assert config.allowed_ports == {80, 443, 8080}
    assert config.extra_ranges == ("10.1.2.0/24",)
    assert config.mail is not None and config.mail.sender == "commits-noreply@b.example"


def test_a_config_that_would_switch_the_guard_off_is_rejected() -> None:
    with pytest.raises(GatewayConfigError):
        Gateway(GatewayConfig(extra_ranges=("0.0.0.0/0",)))


def test_end_run_cuts_an_open_tunnel(broker_side, tls_receiver) -> None:
    side = broker_side(NAMED)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(side.channel.socket_path)
        sock.sendall(f"CONNECT receiver.test:{tls_receiver.port} HTTP/1.1\r\n\r\n".encode())
        assert sock.recv(100).startswith(b"HTTP/1.1 200 ")
        [entry] = side.end_run()
        assert sock.recv(100) == b""
    assert (entry["method"], entry["refused"]) == ("CONNECT", None)
    assert entry["detail"] == "tunnel closed at the end of the run"


def test_head_keeps_the_upstream_length(broker_side, receiver) -> None:
    side = broker_side(NAMED)
    response = side.session.head(receiver.url("/big?n=1234"), timeout=10)
    assert (response.status_code, response.headers["content-length"]) == (200, "1234")


@pytest.mark.parametrize("size", [b"-1", b"0x10", b"1_0", b"+5", b"fffffffff"])
def test_odd_chunk_sizes_are_refused(size: bytes, broker_side, receiver, raw) -> None:
    side = broker_side(NAMED)
    head = f"POST http://receiver.test:{receiver.port}/ HTTP/1.1\r\n"
    data = head.encode() + b"Transfer-Encoding: chunked\r\n\r\n" + size + b"\r\nabc\r\n0\r\n\r\n"
    assert raw(side.channel.socket_path, data).startswith(b"HTTP/1.1 400 ")


def test_the_system_resolver_is_judged_too(make_gateway, broker_side, receiver) -> None:
    side = broker_side(ANY, via=make_gateway(resolver=system_resolver))
    response = side.session.get(f"http://localhost:{receiver.port}/", timeout=10)
    assert (response.status_code, response.headers[REFUSED_HEADER]) == (403, "address_denied")


def test_requests_late_in_a_run_are_refused(make_gateway, broker_side, receiver) -> None:
    side = broker_side(NAMED, via=make_gateway(max_run_seconds=0.0))
    response = side.session.get(receiver.url("/late"), timeout=10)
    assert (response.status_code, response.headers[REFUSED_HEADER]) == (429, "run_cap")


def test_a_host_the_admin_named_reaches_an_operator_range_under_star(gateway, receiver) -> None:
    """The POST broker's manifest says "*"; its service's URL names 127.0.0.1, which the
    test operator opened: that host, and only for that delivery, may be reached."""
    from brokerage.sandbox.egress.policy import hosts_named_by
    from brokerage.sandbox.runner.egress_bridge import start_bridge
    from tests.sandbox.egress.conftest import make_bundle

    channel = gateway.open_channel(make_bundle(["*"]))
    session = requests.Session()
    session.trust_env = False
    proxy = f"http://127.0.0.1:{start_bridge(channel.socket_path)}"
    session.proxies = {"http": proxy, "https": proxy}
    try:
        gateway.name_hosts("d-named", hosts_named_by([f"http://127.0.0.1:{receiver.port}/hook"]))
        channel.begin_run("d-named")
        assert (
            session.post(
                f"http://127.0.0.1:{receiver.port}/hook", data=b"x", timeout=10
            ).status_code
            == 200
        )
        refused = session.get(f"http://127.0.0.2:{receiver.port}/", timeout=10)
        assert refused.headers[REFUSED_HEADER] == "address_denied"
        assert [e["refused"] for e in channel.end_run()] == [None, "address_denied"]
        gateway.forget("d-named")
        channel.begin_run("d-other")  # another delivery of the same broker: not named
        again = session.get(f"http://127.0.0.1:{receiver.port}/", timeout=10)
        assert again.headers[REFUSED_HEADER] == "address_denied"
        channel.end_run()
    finally:
        session.close()
        channel.close()
