"""The dynamic checks: every fixture of a package run in the sandbox, through the real
egress gateway, against stand-ins for everything a broker may reach.

A fixture is ``fixtures/push__<variant>.json``: a push payload (its shape: docs/design.md)
plus

- ``service``: the field values for the run, by label. ``${receiver}`` in a value
  becomes the recording receiver's base URL (``http://receiver.brokerage.test:<port>``);
- ``tracker`` (optional): the issues the repository's tracker holds before the run,
  ``[{"id": 1, "title": "...", "status": "new", "content": "..."}]`` (default: none);
- ``expect`` (optional): ``{"status": "succeeded"}`` by default (any
  :class:`~brokerage.sandbox.interface.RunStatus` value, or ``"any"``),
  ``"noop": true`` when the broker is expected to send nothing (otherwise a run that
  made no request at all fails, as in Zulip's harness), ``"mails": n`` and
  ``"api_calls": n`` for exactly that many mails sent and platform API calls made, and
  ``"issues": {"<id>": "<status>"}`` for the tracker's statuses after the run.

What a broker reaches instead is :mod:`~brokerage.submissions.standins`.

A request to a host the manifest does not declare, an API call outside the manifest's
permissions, or one for another repository fails the fixture.

``brokerage broker test`` may widen one local run (:class:`LocalRun`, never verification
on the platform): run one fixture only; point ``${receiver}`` at the vendor's own
receiver (``--receiver http://127.0.0.1:8000``: that host and port are opened for the run,
loopback and private addresses included); open extra hosts (``--allow-host``), which
also lets a ``"*"`` broker name one.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from brokerage.sandbox.backends import backend_from_config
from brokerage.sandbox.egress.config import GatewayConfig
from brokerage.sandbox.egress.errors import EgressRefusedError, GatewayError, Refusal
from brokerage.sandbox.egress.gateway import Gateway
from brokerage.sandbox.egress.mailer import MailConfig
from brokerage.sandbox.egress.policy import RESERVED_HOST, EgressPolicy, parse_host
from brokerage.sandbox.interface import (
    BrokerBundle,
    EgressProvider,
    Limits,
    RunResult,
    RunStatus,
    SandboxBackend,
)
from brokerage.submissions.checks import ERROR, CheckResult, Finding
from brokerage.submissions.package import Package
from brokerage.submissions.standins import (
    RECEIVER_HOST,
    VERIFY_MAIL_DOMAIN,
    ApiRefusal,
    ApiStandIn,
    MailRecorder,
    Received,
    RecordingReceiver,
    StandIns,
    StandInTracker,
)

RECEIVER_PLACEHOLDER = "${receiver}"
OUTPUT_CHARS = 16 * 1024
"""characters of stdout/stderr kept per fixture run"""
VERIFY_LIMITS = Limits(wall_seconds=30.0)

BackendFactory = Callable[[EgressProvider], SandboxBackend]
"""makes the sandbox backend for one verification, given the gateway to use for egress"""


def _resolver(host: str, port: int) -> list[str]:
    if host == RECEIVER_HOST:
        return ["127.0.0.1"]
    raise socket.gaierror(socket.EAI_NONAME, "verification resolves only the recording receiver")


@dataclass(frozen=True)
class LocalRun:
    """What a vendor's local ``broker test`` run may widen (verification never does)."""

    only: str | None = None
    """run this fixture variant only"""
    receiver: str | None = None
    """``${receiver}`` becomes this base URL instead of the recording receiver's"""
    extra_hosts: tuple[str, ...] = ()
    """``host`` or ``host:port`` the run may reach besides the manifest's egress"""

    def fixtures_of(self, pkg: Package) -> dict[str, bytes]:
        """The fixtures this run runs; ValueError for an unknown one or a bad host."""
        self.opened()
        fixtures = pkg.fixtures()
        if self.only is None:
            return fixtures
        if self.only not in fixtures:
            known = ", ".join(fixtures) or "none"
            raise ValueError(f"--fixture: no fixture {self.only!r} (fixtures: {known})")
        return {self.only: fixtures[self.only]}

    def opened(self) -> list[tuple[str, int | None]]:
        """Every (host, port) this run opens: the receiver's and the extra hosts."""
        found: list[tuple[str, int | None]] = []
        if self.receiver:
            parts = urlsplit(self.receiver)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"--receiver: an http(s) URL, got {self.receiver!r}")
            found.append((parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)))
        for item in self.extra_hosts:
            host, _, port = item.strip().lower().rpartition(":")
            if not host or not port.isdigit():
                host, port = item.strip().lower(), ""
            try:
                parse_host(host.strip("[]"))
            except (EgressRefusedError, GatewayError, ValueError) as exc:
                raise ValueError(f"--allow-host: {item!r} is no host name or address") from exc
            found.append((host.strip("[]"), int(port) if port else None))
        return found

    def widen(self, base: GatewayConfig) -> GatewayConfig:
        """The verification gateway's config with this run's hosts, ports and addresses."""
        opened = self.opened()
        if not opened:
            return base
        names = {host for host, _ in opened}
        ports = {port for _, port in opened if port is not None}
        ranges: list[str] = list(base.extra_ranges)
        for host, port in opened:
            for address in _local_addresses(host, port or 80):
                ranges.append(f"{address}/{32 if '.' in address else 128}")
        inner = base.resolver

        def resolve(host: str, port: int) -> list[str]:
            if host in names:
                return _local_addresses(host, port)
            return list(inner(host, port))

        return replace(base, allowed_ports=base.allowed_ports | ports,
                       extra_ranges=tuple(dict.fromkeys(ranges)), resolver=resolve)  # fmt: skip


def _local_addresses(host: str, port: int) -> list[str]:
    """The addresses a local run's host stands for (an IP literal: itself)."""
    try:
        parsed = parse_host(host)
    except (EgressRefusedError, GatewayError, ValueError):
        return []
    if not isinstance(parsed, str):
        return [str(parsed)]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return []
    return sorted({str(info[4][0]) for info in infos})


def verification_gateway(
    receiver: RecordingReceiver,
    base: GatewayConfig | None = None,
    mail: MailRecorder | None = None,
    api: ApiStandIn | None = None,
    local: LocalRun | None = None,
) -> Gateway:
    """A gateway that reaches only ``receiver`` (everything else is logged and refused),
    mails through ``mail`` and answers the platform API with ``api``; ``local`` opens a
    vendor's local run's hosts too."""
    base = base or GatewayConfig()
    mail_config = None
    if mail is not None:
        mail_config = (
            replace(base.mail, host="127.0.0.1", port=mail.port)
            if base.mail
            else MailConfig("127.0.0.1", mail.port, VERIFY_MAIL_DOMAIN)
        )
    config = replace(
        base,
        allowed_ports=frozenset({80, 443, receiver.port}),
        extra_ranges=("127.0.0.1/32",),
        resolver=_resolver,
        mail=mail_config,
        api_forwarder=api,
    )
    return Gateway(local.widen(config) if local is not None else config)


@dataclass
class FixtureRun:
    """One fixture's run and what the harness made of it."""

    variant: str
    passed: bool
    status: str
    expected: str
    problems: list[str] = field(default_factory=list)
    exit_code: int | None = None
    duration_seconds: float = 0.0
    result: Any = None
    error: Any = None
    logs: list[str] = field(default_factory=list)
    stdout: str = ""
    stderr: str = ""
    egress: list[dict[str, Any]] = field(default_factory=list)
    """each request attempted: method, url, host, declared, refused, status"""
    received: list[dict[str, Any]] = field(default_factory=list)
    mails: list[dict[str, Any]] = field(default_factory=list)
    """each mail the broker sent: from, to, subject, body, html, broker, delivery"""
    api_calls: list[dict[str, Any]] = field(default_factory=list)
    """each platform API call: method, path, status, permission, refused, detail, body"""
    issues: dict[str, str] = field(default_factory=dict)
    """the stand-in tracker's statuses after the run, by issue id"""
    expect: dict[str, Any] = field(default_factory=dict)
    """the fixture's ``expect`` as written (status, noop, mails, api_calls, issues)"""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Observed:
    """What the stand-ins saw during one run."""

    received: list[Received] = field(default_factory=list)
    mails: list[dict[str, Any]] = field(default_factory=list)
    api_calls: list[dict[str, Any]] = field(default_factory=list)
    issues: dict[str, str] = field(default_factory=dict)


@contextmanager
def harness(
    make_backend: BackendFactory,
    gateway_base: GatewayConfig | None = None,
    local: LocalRun | None = None,
) -> Iterator[tuple[SandboxBackend, StandIns]]:
    """The stand-ins, a gateway reaching only them (and a local run's hosts), and a backend
    using that gateway."""
    with ExitStack() as stack:
        receiver = RecordingReceiver()
        stack.callback(receiver.close)
        mail = MailRecorder()
        stack.callback(mail.close)
        standins = StandIns(receiver, mail, ApiStandIn())
        gateway = verification_gateway(receiver, gateway_base, mail, standins.api, local)
        stack.callback(gateway.close)
        backend = make_backend(gateway)
        stack.callback(backend.close)
        yield backend, standins


def run_fixtures(
    pkg: Package,
    manifest: Mapping[str, Any],
    make_backend: BackendFactory,
    limits: Limits = VERIFY_LIMITS,
    gateway_base: GatewayConfig | None = None,
    local: LocalRun | None = None,
) -> tuple[list[FixtureRun], str]:
    """Every fixture of ``pkg`` run once (``local``: a vendor's widened local run); returns
    the runs and the backend's name. ValueError when ``local`` names no fixture or host."""
    local = local or LocalRun()
    fixtures = local.fixtures_of(pkg)
    extra = [host for host, _ in local.opened()]
    bundle = verification_bundle(pkg, manifest, extra)
    with harness(make_backend, gateway_base, local) as (backend, standins):
        runs = [
            run_fixture(backend, standins, bundle, manifest, variant, raw, limits, local.receiver)
            for variant, raw in fixtures.items()
        ]
        return runs, backend.name


def verification_bundle(
    pkg: Package, manifest: Mapping[str, Any], extra_hosts: list[str] | None = None
) -> BrokerBundle:
    """The bundle as it would run, with the receiver's name (and a local run's extra hosts)
    added to its egress list (exact names are matched before ``*``, so the receiver is
    reachable even for a ``*`` broker)."""
    egress = [*manifest.get("egress", []), RECEIVER_HOST, *(extra_hosts or [])]
    run_manifest = {**manifest, "egress": egress}
    return BrokerBundle(
        str(manifest["name"]), str(manifest["version"]), run_manifest, pkg.runtime_files()
    )


@dataclass
class Fixture:
    """A fixture read: the envelope the broker gets, what it expects, the tracker before."""

    envelope: dict[str, Any]
    expect: dict[str, Any]
    tracker: StandInTracker


def run_fixture(
    backend: SandboxBackend,
    standins: StandIns,
    bundle: BrokerBundle,
    manifest: Mapping[str, Any],
    variant: str,
    raw: bytes,
    limits: Limits,
    receiver_url: str | None = None,
) -> FixtureRun:
    try:
        loaded = json.loads(raw)
        if not isinstance(loaded, dict):
            raise ValueError("a fixture is a JSON object")
        base_url = (receiver_url or standins.receiver.base_url).rstrip("/")
        fixture = read_fixture(loaded, manifest, base_url, variant)
    except ValueError as exc:
        return FixtureRun(variant, False, "not_run", "-", [f"fixture is not usable: {exc}"])
    delivery_id = fixture.envelope["delivery"]["id"]
    standins.receiver.take()
    standins.api.begin(delivery_id, fixture.tracker)
    try:
        result = backend.run(bundle, fixture.envelope, limits)
    finally:
        calls, after = standins.api.end(delivery_id)
    observed = Observed(
        standins.receiver.take(),
        standins.mail.take(delivery_id),
        calls,
        after.statuses() if after else {},
    )
    receivers = {RECEIVER_HOST}
    if receiver_url:
        receivers.add(urlsplit(receiver_url).hostname or RECEIVER_HOST)
    return judge(variant, result, fixture.expect, manifest, observed, frozenset(receivers))


def read_fixture(
    fixture: dict[str, Any], manifest: Mapping[str, Any], base_url: str, variant: str
) -> Fixture:
    """The envelope a fixture stands for, what it expects and its tracker."""
    expect = fixture.pop("expect", None) or {}
    if not isinstance(expect, dict):
        raise ValueError("'expect' must be an object")
    _check_expect(expect)
    service = fixture.pop("service", None) or {}
    if not isinstance(service, dict):
        raise ValueError("'service' must be an object of field values by label")
    standin = StandInTracker.from_fixture(fixture.get("repository"), fixture.pop("tracker", []))
    values = {str(k): _substitute(v, base_url) for k, v in service.items()}
    envelope = {
        **fixture,
        "service": values,
        "broker": manifest["name"],
        "delivery": {"id": f"verify-{variant}-{uuid.uuid4().hex[:8]}", "attempt": 1},
    }
    return Fixture(envelope, expect, standin)


def fixture_envelope(
    fixture: dict[str, Any], manifest: Mapping[str, Any], base_url: str, variant: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The envelope a fixture stands for, and what it expects."""
    found = read_fixture(fixture, manifest, base_url, variant)
    return found.envelope, found.expect


def _check_expect(expect: Mapping[str, Any]) -> None:
    for name in ("mails", "api_calls"):
        count = expect.get(name)
        if count is not None and (not isinstance(count, int) or isinstance(count, bool)
                                  or count < 0):  # fmt: skip
            raise ValueError(f"'expect.{name}' must be a whole number")
    issues = expect.get("issues", {})
    if not isinstance(issues, dict) or not all(isinstance(v, str) for v in issues.values()):
        raise ValueError("'expect.issues' must map issue ids to statuses")


def _substitute(value: Any, base_url: str) -> Any:
    return value.replace(RECEIVER_PLACEHOLDER, base_url) if isinstance(value, str) else value


def judge(
    variant: str,
    result: RunResult,
    expect: Mapping[str, Any],
    manifest: Mapping[str, Any],
    observed: Observed,
    receivers: frozenset[str] = frozenset({RECEIVER_HOST}),
) -> FixtureRun:
    expected = str(expect.get("status", RunStatus.SUCCEEDED))
    egress = [describe_request(entry, manifest, receivers) for entry in result.requests]
    problems = []
    if expected != "any" and str(result.status) != expected:
        detail = (result.error or {}).get("message") or result.stderr.strip()[-300:]
        problems.append(
            f"ended {result.status}, expected {expected}" + (f": {detail}" if detail else "")
        )
    for entry in egress:
        if not entry["declared"]:
            problems.append(
                f"attempted {entry['host']}, which the manifest's egress does not declare"
            )
        elif entry["host"] == RESERVED_HOST and entry["refused"] == Refusal.API_DENIED:
            problems.append(
                f"called the platform API ({entry['url']}), but the manifest declares no "
                "permissions"
            )
    problems += [api_problem(call, manifest) for call in observed.api_calls if call["refused"]]
    problems += _count_problems(expect, observed)
    if not expect.get("noop") and not egress and not observed.received:
        problems.append('sent nothing (say "expect": {"noop": true} if that is intended)')
    return FixtureRun(
        variant=variant,
        passed=not problems,
        status=str(result.status),
        expected=expected,
        problems=problems,
        exit_code=result.exit_code,
        duration_seconds=result.duration_seconds,
        result=result.result,
        error=result.error,
        logs=list(result.logs),
        stdout=result.stdout[:OUTPUT_CHARS],
        stderr=result.stderr[:OUTPUT_CHARS],
        egress=egress,
        received=[asdict(r) for r in observed.received],
        mails=observed.mails,
        api_calls=observed.api_calls,
        issues=observed.issues,
        expect=dict(expect),
    )


def api_problem(call: Mapping[str, Any], manifest: Mapping[str, Any]) -> str:
    """Why a refused API call fails the fixture."""
    where = f"{call['method']} {call['path']}"
    if call["refused"] == ApiRefusal.PERMISSION:
        held = ", ".join(manifest.get("permissions") or []) or "none"
        return (
            f"called the platform API {where}, which needs {call['permission']}: the "
            f"manifest's permissions ({held}) do not cover it"
        )
    if call["refused"] == ApiRefusal.REPOSITORY:
        return f"called the platform API {where} for another repository than the push's"
    return f"called the platform API {where}, which is not an endpoint brokers may call"


def _count_problems(expect: Mapping[str, Any], observed: Observed) -> list[str]:
    problems = []
    for name, what, got in (
        ("mails", "mail(s)", observed.mails),
        ("api_calls", "platform API call(s)", observed.api_calls),
    ):
        wanted = expect.get(name)
        if wanted is not None and len(got) != wanted:
            problems.append(f"sent {len(got)} {what}, expected {wanted}")
    for number, status in (expect.get("issues") or {}).items():
        found = observed.issues.get(str(number))
        if found != status:
            problems.append(f"issue #{number} ended {found or 'missing'}, expected {status}")
    return problems


def describe_request(
    entry: Mapping[str, Any],
    manifest: Mapping[str, Any],
    receivers: frozenset[str] = frozenset({RECEIVER_HOST}),
) -> dict[str, Any]:
    """One gateway log entry as the report shows it: which host, and was it declared (the
    receiver's host, a local run's own included, always is); what the gateway logged of the
    exchange (``request``/``response``) passes through when it logged it."""
    url = str(entry.get("url") or "")
    host = (
        url.rpartition(":")[0] if entry.get("method") == "CONNECT" else urlsplit(url).hostname or ""
    )
    shown = {
        "method": entry.get("method"),
        "url": url,
        "host": host,
        "declared": host in receivers
        or host == "brokerage.internal"
        or declared(host, manifest.get("egress", [])),
        "receiver": host in receivers,
        "refused": entry.get("refused"),
        "status": entry.get("status"),
    }
    for side in ("request", "response"):
        if isinstance(entry.get(side), dict):
            shown[side] = entry[side]
    return shown


def declared(host: str, egress: list[str]) -> bool:
    """Whether the manifest's egress list covers ``host`` (the gateway's own matching)."""
    try:
        EgressPolicy(egress, ()).match_host(parse_host(host))
    except (EgressRefusedError, GatewayError, ValueError):
        return False
    return True


def dynamic_check(runs: list[FixtureRun]) -> CheckResult:
    """The fixture runs as one check of the report."""
    result = CheckResult("dynamic")
    for run in runs:
        for problem in run.problems:
            result.findings.append(
                Finding(ERROR, problem, file=f"fixtures/push__{run.variant}.json")
            )
    attempted = sorted(
        {e["host"] for run in runs for e in run.egress if not e["receiver"]} - {RESERVED_HOST}
    )
    passed = sum(run.passed for run in runs)
    mails = sum(len(run.mails) for run in runs)
    calls = sum(len(run.api_calls) for run in runs)
    result.summary = (
        f"{passed}/{len(runs)} fixture(s) passed; egress attempted besides the "
        f"receiver: {', '.join(attempted) or 'none'}; {mails} mail(s) sent, "
        f"{calls} platform API call(s)"
    )
    return result


__all__ = [
    "Refusal",
    "run_fixtures",
    "dynamic_check",
    "RecordingReceiver",
    "MailRecorder",
    "ApiStandIn",
    "FixtureRun",
]


def backend_factory(config: dict[str, Any]) -> BackendFactory:
    """Fresh sandboxes per verification run (strict mode): no warm pool outlives the job."""

    def make(egress: EgressProvider) -> SandboxBackend:
        return backend_from_config({**config, "SANDBOX_MODE": "strict"}, egress=egress)

    return make
