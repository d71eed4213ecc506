"""Guarded code, by family: every route out of RestrictedPython's guards is refused.

Families: string formatting (str.format, format_map, string.Formatter and subclasses
through super(), UserString, f-strings, Template, logging), reflective stdlib helpers
(functools), urllib's non-HTTP handlers, helper modules of allowed packages (requests,
json, uuid, base64, email...), writes to SDK/library/module objects, ``_getitem_`` and
iteration, and source the checker cannot handle. Each case runs on the bare runner
(the guards alone, with a host canary file they must keep closed), Docker warm, Docker
strict and bubblewrap; its escape would show as the canary's marker or secret in the
result. Static verdicts are compared with the static checks: they must agree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from brokerage.sandbox.interface import BrokerBundle, RunStatus
from brokerage.submissions.checks import static_checks
from brokerage.submissions.package import Package
from tests.sandbox.hostile_support import (
    KINDS,
    assert_clean_afterwards,
    canary,
    escape_bundle,
    start,
)
from tests.sandbox.sandbox_fixtures import FAST, bundle

LOAD_REFUSALS = ("SyntaxError", "SourceRefused", "PolicyError", "UnicodeDecodeError")
"""error types of a program refused at load (what the static checks also refuse)"""


@dataclass(frozen=True)
class Case:
    body: str
    errors: tuple[str, ...]
    prelude: str = ""


THINGS = """
import collections
import functools
import string
import urllib.request
import requests
import brokerage_sdk
from string import Formatter

class Thing:
    pass

class Grab(Formatter):
    def __init__(self):
        self.found = []

    def format_field(self, value, spec):
        self.found.append(value)
        return ""
"""

ATTR = ("AttributeError",)
TYPE = ("TypeError",)
VALUE = ("ValueError",)
URL = ("URLError",)
LOAD = ("PolicyError",)

CASES: dict[str, Case] = {
    # -- string formatting --------------------------------------------------------------
    "Formatter subclass, super().format captures the object": Case(
        """
        grab = Grab()
        super(Grab, grab).format("{0.__init__.__globals__[__builtins__]}", grab)
        got = grab.found[0]["open"](path).read()
        """, ATTR),
    "Formatter.get_field of the base through super()": Case(
        """
        obj, _ = super(Formatter, Grab()).get_field("0.__init__.__globals__", [Thing()], {})
        got = obj["__builtins__"]["open"](path).read()
        """, ATTR),
    "Formatter.vformat on a subclass": Case(
        """
        grab = Grab()
        grab.vformat("{0.__init__.__globals__}", [grab], {})
        got = grab.found[0]["__builtins__"]["open"](path).read()
        """, ATTR),
    "Formatter subclass calling the class's get_field": Case(
        """
        class Sneaky(Formatter):
            def get_field(self, field_name, args, kwargs):
                return Formatter.get_field(self, field_name, args, kwargs)
        got = Sneaky().format("{0.__init__.__globals__}", Thing())
        """, ATTR),
    "string.Formatter through the string module": Case(
        'got = string.Formatter().format("{0.__init__.__globals__}", Thing())', ATTR),
    "str.format attribute walk": Case(
        'got = "{0.__init__.__globals__[__builtins__]}".format(Thing())', ATTR),
    "str.format_map attribute walk": Case(
        'got = "{t.__init__.__globals__}".format_map({"t": Thing()})', ATTR),
    "str subclass, format through super()": Case(
        """
        class S(str):
            pass
        got = super(S, S("{0.__init__.__globals__}")).format(Thing())
        """, ATTR),
    "collections.UserString.format": Case(
        'got = collections.UserString("{0.__init__.__globals__}").format(Thing())', ATTR),
    "str.format taken from the type": Case(
        'got = str.format("{0.__init__.__globals__}", Thing())', ATTR),
    "format through getattr": Case(
        'got = getattr("{0.__init__.__globals__}", "format")(Thing())', ATTR),
    "nested format spec": Case(
        'got = "{0:{1.__init__.__globals__}}".format("x", Thing())', ATTR),
    "format mapped over objects": Case(
        'got = list(map("{0.__init__.__globals__}".format, [Thing()]))', ATTR),
    "f-string with a dunder": Case('got = f"{Thing().__init__.__globals__}"', ("SyntaxError",)),
    "f-string through getattr": Case(
        "got = f\"{getattr(Thing(), '__init__')}\"", ATTR),
    "Template placeholder with attributes": Case(
        'got = string.Template("${t.__init__}").substitute(t=Thing())', VALUE),
    "logging's formatters (import)": Case("got = logging", LOAD, prelude="import logging"),
    "logging reached through requests": Case("got = requests.logging.Formatter", ATTR),
    # -- reflective helpers --------------------------------------------------------------
    "functools.update_wrapper copying __globals__": Case(
        """
        def mine():
            pass
        functools.update_wrapper(mine, requests.get, assigned=(), updated=("__globals__",))
        got = mine
        """, TYPE),
    "functools.wraps with chosen attributes": Case(
        'got = functools.wraps(requests.get, assigned=("__globals__",))', TYPE),
    "functools.singledispatch evaluates annotations": Case(
        "got = functools.singledispatch(len)", ATTR),
    # -- urllib's non-HTTP handlers -------------------------------------------------------
    "urlopen of a file: URL": Case('got = urllib.request.urlopen("file://" + path).read()', URL),
    "build_opener().open of a file: URL": Case(
        'got = urllib.request.build_opener().open("file://" + path).read()', URL),
    "a Request for a file: URL": Case(
        """
        request = urllib.request.Request("file://" + path)
        got = urllib.request.build_opener().open(request).read()
        """, URL),
    "data: URL": Case('got = urllib.request.urlopen("data:,ESCAPED").read()', URL),
    "ftp: URL": Case('got = urllib.request.urlopen("ftp://127.0.0.1/x", timeout=1)', URL),
    "FileHandler import": Case("got = FileHandler", LOAD,
                               prelude="from urllib.request import FileHandler"),
    "urlretrieve writes files": Case(
        'got = urllib.request.urlretrieve("file://" + path, "/tmp/copy")', ATTR),
    "URLopener opens local files": Case(
        "got = urllib.request.URLopener().open_local_file(path).read()", ATTR),
    "install_opener with a bare OpenerDirector": Case(
        "got = urllib.request.install_opener(urllib.request.OpenerDirector())", TYPE),
    "urllib.robotparser (unrestricted opener)": Case(
        "got = urllib.robotparser", LOAD, prelude="import urllib.robotparser"),
    # -- helper modules of allowed packages ------------------------------------------------
    "requests.utils.atomic_open writes": Case(
        """
        with requests.utils.atomic_open("/tmp/pwned") as handle:
            handle.write(b"x")
        got = "written"
        """, ATTR),
    "atomic_open imported by name": Case(
        "got = atomic_open", LOAD, prelude="from requests.utils import atomic_open"),
    "requests.utils imported from the package": Case(
        "got = utils.extract_zipped_paths(path)", LOAD, prelude="from requests import utils"),
    "requests.adapters imported": Case(
        "got = requests.adapters.HTTPAdapter", LOAD, prelude="import requests.adapters"),
    "requests.packages.urllib3": Case("got = requests.packages.urllib3", ATTR),
    "requests.compat re-exports": Case("got = requests.compat.builtins", ATTR),
    "requests with verify=<file>": Case(
        'got = requests.get("https://127.0.0.1:9/", verify=path)', VALUE),
    "requests with a client cert file": Case(
        'got = requests.Session().get("https://127.0.0.1:9/", cert=(path, path))', VALUE),
    "Session subclass with verify=<file>": Case(
        """
        class Mine(requests.Session):
            pass
        session = Mine()
        session.verify = path
        got = session.get("https://127.0.0.1:9/")
        """, VALUE + ("ConnectionError",)),  # a CA bundle in the runner's environment wins
    "the real Session.send through super()": Case(
        """
        session = requests.Session()
        prepared = requests.Request("GET", "https://127.0.0.1:9/").prepare()
        got = super(requests.Session, session).send(prepared, cert=(path, path))
        """, ATTR),
    "the SDK's gateway session with verify=<file>": Case(
        'got = brokerage_sdk.gateway_session(payload).get("https://127.0.0.1:9/", verify=path)',
        VALUE),
    "json.tool (a CLI that opens files)": Case(
        "got = json.tool.main", LOAD, prelude="import json.tool"),
    "uuid.getnode runs programs": Case("got = uuid.getnode()", ATTR, prelude="import uuid"),
    "base64.main reads sys.argv files": Case("got = base64.main()", ATTR,
                                             prelude="import base64"),
    "email.utils' socket module": Case("got = email.utils.socket", ATTR,
                                       prelude="import email.utils"),
    "a module through a module (json.decoder.re.enum)": Case(
        "got = json.decoder.re.enum", ATTR, prelude="import json.decoder"),
    # -- writes -----------------------------------------------------------------------------
    "SDK class attribute": Case(
        "brokerage_sdk.BaseBroker.get_local = len\ngot = 1", TYPE),
    "SDK class attribute through setattr": Case(
        'setattr(brokerage_sdk.BaseBroker, "handle", len)\ngot = 1', TYPE),
    "SDK exception kind": Case(
        'brokerage_sdk.ConfigurationError.kind = "sandbox"\ngot = 1', TYPE),
    "SDK logger instance": Case("brokerage_sdk.logger.attach = len\ngot = 1", TYPE),
    "SDK class attribute deleted": Case('delattr(brokerage_sdk.BaseBroker, "log")\ngot = 1', TYPE),
    "module attribute": Case("json.loads = len\ngot = 1", TYPE, prelude="import json"),
    "library class attribute": Case("requests.Session.send = len\ngot = 1", TYPE),
    "the guarded Formatter's get_field": Case("Formatter.get_field = len\ngot = 1", TYPE),
    "setattr of a dunder on its own object": Case(
        'setattr(self, "__class__", Thing)\ngot = 1', ATTR),
    # -- items and iteration ------------------------------------------------------------------
    "an item that is a transport object": Case(
        'got = requests.Session().adapters["https://"].send', ATTR),
    "a transport object through iteration": Case(
        """
        for adapter in requests.Session().adapters.values():
            got = adapter
        """, ATTR),
    "a transport object returned by a method": Case(
        'got = requests.Session().get_adapter("https://x").send', ATTR),
    "a list item that is a transport object": Case(
        "got = list(requests.Session().adapters.values())[0]", ATTR),
    "the SDK session's transport as an item": Case(
        'got = brokerage_sdk.gateway_session().adapters["http://"].send', ATTR),
    "the SDK session's transport returned by a method": Case(
        'got = brokerage_sdk.gateway_session().get_adapter("http://x").send', ATTR),
}  # fmt: skip


@pytest.fixture(scope="module", params=KINDS)
def hostile(request: pytest.FixtureRequest) -> Any:
    backend = start(request.param, request)
    yield backend
    backend.close()


def case_bundle(case: Case) -> BrokerBundle:
    prelude = THINGS + "\n" + case.prelude
    return escape_bundle(case.body, prelude=prelude)


@pytest.mark.parametrize("name", list(CASES))
def test_guarded_code_escape_is_refused(hostile, name, tmp_path):
    case, token = CASES[name], canary(tmp_path)
    result = hostile.run(case_bundle(case), token.envelope(), FAST)
    assert result.status is RunStatus.FAILED, (name, result)
    assert result.error["type"] in case.errors, (name, result.error)
    token.assert_untouched(result)
    if hostile.name != "bare":
        assert_clean_afterwards(hostile)


ORDINARY = bundle(
    """
    import functools
    import string
    import urllib.parse
    from brokerage_sdk import BaseBroker

    def deco(func):
        @functools.wraps(func)
        def wrapper(*args):
            return func(*args)
        return wrapper

    @deco
    def double(x):
        return 2 * x

    class Point:
        def __init__(self, x):
            self.x = x

    class Broker(BaseBroker):
        def handle(self, payload):
            self.seen = len(payload["commits"])
            commit = payload["commits"][0]
            p = Point(3)
            p.x = p.x + 1
            data = {"a": [1]}
            data["b"] = 2
            return {
                "format": "{0[node]} {1.x} {n}".format(commit, p, n=self.seen),
                "format_map": "{a}".format_map({"a": 5}),
                "formatter": string.Formatter().format("{0.x}-{k[1]}", p, k=[0, 7]),
                "template": string.Template("$who").substitute(who="alice"),
                "percent": "%(n)s" % {"n": 4},
                "fstring": f"{p.x}:{commit['node'][:4]}",
                "quote": urllib.parse.quote("a b"),
                "wrapped": double(21),
                "data": data,
            }
    """,
    name="ordinary",
)


def test_ordinary_formatting_and_writes_still_work(hostile):
    result = hostile.run(ORDINARY, bundle_envelope(), FAST)
    assert result.status is RunStatus.SUCCEEDED, result
    assert result.result == {
        "format": "abcdef012345 4 1",
        "format_map": "5",
        "formatter": "4-7",
        "template": "alice",
        "percent": "4",
        "fstring": "4:abcd",
        "quote": "a%20b",
        "wrapped": 42,
        "data": {"a": [1], "b": 2},
    }


def bundle_envelope() -> dict[str, Any]:
    from tests.sandbox.sandbox_fixtures import envelope

    return envelope()


# -- the static checks agree with the runner -------------------------------------------------


def check_verdict(files: dict[str, bytes]) -> list[str]:
    """The error findings of the static checks that judge code (``restricted_python``,
    ``imports``) for a package made of ``files``; never raises."""
    manifest = {"name": "hostile", "version": "1.0.0", "title": "Hostile",
                "description": "x", "vendor": {"name": "V", "email": "v@example.com"},
                "events": ["push"], "fields": [], "egress": [],
                "entry_point": "broker.py:Broker"}  # fmt: skip
    all_files = {"manifest.json": json.dumps(manifest).encode(), **files}
    pkg = Package(all_files, manifest)
    results = {c.name: c for c in static_checks(pkg)}
    return [
        f.message
        for name in ("restricted_python", "imports")
        for f in results[name].findings
        if f.severity == "error"
    ]


@pytest.mark.parametrize("name", list(CASES))
def test_static_checks_agree_with_the_runner(name):
    case = CASES[name]
    files = {"broker.py": case_bundle(case).files["broker.py"]}
    refused_statically = bool(check_verdict(files))
    refused_at_load = case.errors in (LOAD, ("SyntaxError",))
    assert refused_statically == refused_at_load, (name, check_verdict(files))


# -- source the checker and the compiler cannot handle ---------------------------------------

DEEP_TERMS = "x = " + "+".join(["1"] * 60_000) + "\n"
SOURCES: dict[str, tuple[bytes, str]] = {
    "60,000-term expression": (DEEP_TERMS.encode(), "nested too deeply"),
    "500 nested parentheses": (("x = " + "(" * 500 + "1" + ")" * 500 + "\n").encode(),
                               "too many nested parentheses"),
    "200 nested lists": (("x = " + "[" * 200 + "]" * 200 + "\n").encode(), "nested too deeply"),
    "130 nested blocks": (
        "".join(" " * i + "if x:\n" for i in range(130)).encode() + b" " * 130 + b"pass\n",
        "indentation"),
    "a null byte": (b"x = 1\n\x00\n", "null byte"),
    "not UTF-8": (b"x = '\xff\xfe'\n", "not UTF-8"),
    "too large": (b"x = 1\n" * 100_000, "characters; the limit is"),
    "a lambda chain 200 deep": (("f = " + "lambda: " * 200 + "1\n").encode(),
                                "nested too deeply"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(SOURCES))
def test_source_the_checker_cannot_handle_is_refused_by_both(hostile, name):
    source, words = SOURCES[name]
    findings = check_verdict({"broker.py": source})
    assert findings and any(words in f for f in findings), (name, findings)
    broker = BrokerBundle("deep", "1.0.0", {"name": "deep", "version": "1.0.0",
                          "entry_point": "broker.py", "egress": []},
                          {"broker.py": source})  # fmt: skip
    result = hostile.run(broker, bundle_envelope(), FAST)
    assert result.status is RunStatus.FAILED, (name, result)
    assert result.error["type"] in LOAD_REFUSALS, (name, result.error)
    assert words in result.error["message"], (name, result.error)
    assert "Traceback" not in result.error["message"]


def test_a_utf8_bom_is_accepted_by_both(hostile):
    source = b"\xef\xbb\xbfprint('bom ok')\n"
    assert check_verdict({"broker.py": source}) == []
    broker = BrokerBundle("bom", "1.0.0", {"name": "bom", "version": "1.0.0",
                          "entry_point": "broker.py", "egress": []},
                          {"broker.py": source})  # fmt: skip
    result = hostile.run(broker, bundle_envelope(), FAST)
    assert result.status is RunStatus.SUCCEEDED, result
    assert result.stdout == "bom ok\n"
