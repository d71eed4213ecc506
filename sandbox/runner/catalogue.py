"""Which modules broker code may use, name by name, and why (reviewed module by module).

The allowlist (``policy.DEFAULT_IMPORTS``, or ``SANDBOX_ALLOWED_IMPORTS``) says which
modules broker code may import; this catalogue says what each of them *offers*. Broker
code never holds a real module: ``import x`` gives a view of ``x`` that hands out only
the names its rule allows (see ``policy.ModuleView``). A rule is closed where a module
has anything that reads or writes files, runs programs, evaluates strings or does
attribute access with names the caller chooses; open ("every public name") where the
module is pure computation, and then names that are not are hidden one by one.

A value's *origin* (the module that defined its class or function) must be one broker
code may use, or one listed in :data:`EXTRA_ORIGINS`: holding an object from anywhere
else (``requests.adapters``, ``urllib3``, ``io``, ``socket``, ``logging``...) is refused
whichever attribute or item led to it.

This file is imported both inside the sandbox (as ``catalogue``) and on the host (as
``brokerage.sandbox.runner.catalogue``, by the static checks), so both judge alike.
"""

from __future__ import annotations

import ast
import functools
import os
import string
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Rule:
    """What one module offers broker code."""

    reason: str
    """why broker code may use it at all"""
    names: frozenset[str] | None = None
    """the names offered; None: every public name (not starting with ``_``)"""
    hidden: Mapping[str, str] = field(default_factory=dict)
    """public names withheld anyway, each with its reason"""
    replaced: Mapping[str, str] = field(default_factory=dict)
    """names whose value is a guarded stand-in (``GUARDED[module][name]``), with the reason"""


CLI_ENTRY_POINTS = {
    "main": "a command-line entry point: reads the real sys.argv, opens the files named there",
    "test": "a self-test entry point: reads the real sys.argv, opens files",
}
"""hidden in every module"""


URLLIB_REQUEST_NAMES = frozenset({
    "Request", "urlopen", "build_opener", "install_opener", "OpenerDirector", "BaseHandler",
    "HTTPHandler", "HTTPSHandler", "HTTPErrorProcessor", "HTTPDefaultErrorHandler",
    "HTTPRedirectHandler", "HTTPCookieProcessor", "ProxyHandler", "UnknownHandler",
    "AbstractBasicAuthHandler", "AbstractDigestAuthHandler", "HTTPBasicAuthHandler",
    "HTTPDigestAuthHandler", "ProxyBasicAuthHandler", "ProxyDigestAuthHandler",
    "HTTPPasswordMgr", "HTTPPasswordMgrWithDefaultRealm", "HTTPPasswordMgrWithPriorAuth",
    "URLError", "HTTPError", "ContentTooShortError", "parse_http_list", "parse_keqv_list",
    "quote", "unquote", "urljoin", "urlparse", "urlsplit", "urlunparse",
})  # fmt: skip
"""urllib.request minus FileHandler, FTPHandler, CacheFTPHandler, DataHandler, URLopener,
FancyURLopener, urlretrieve/urlcleanup (write files), url2pathname/pathname2url, ftpwrapper,
getproxies* (the runner's environment) and the module's own imports"""

REQUESTS_NAMES = frozenset({
    "request", "get", "options", "head", "post", "put", "patch", "delete", "Session",
    "session", "Request", "PreparedRequest", "Response", "codes", "exceptions", "auth",
    "structures", "status_codes", "RequestException", "Timeout", "URLRequired",
    "TooManyRedirects", "HTTPError", "ConnectionError", "ConnectTimeout", "ReadTimeout",
    "JSONDecodeError", "FileModeWarning",
})  # fmt: skip
"""requests' public API; helper modules (utils, compat, adapters, packages...) are refused"""


def sdk_names() -> frozenset[str]:
    """``brokerage_sdk.__all__``, read from its source (the host cannot import the SDK by
    that name, and the checker must judge as the runner does)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "brokerage_sdk.py")
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), path)
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return frozenset(ast.literal_eval(node.value))
    return frozenset()


CATALOGUE: dict[str, Rule] = {
    "json": Rule("encoding and decoding only; load/dump take file objects broker code cannot "
                 "create"),
    "json.decoder": Rule("JSONDecoder and JSONDecodeError (pure)"),
    "json.encoder": Rule("JSONEncoder (pure)"),
    "json.scanner": Rule("the decoder's scanner (pure)"),
    "re": Rule("regular expressions; backtracking is bounded by the run's wall clock"),
    "datetime": Rule("date arithmetic and formatting (strftime specs name no attributes)"),
    "time": Rule("clocks, sleep (bounded by the wall clock), strftime/strptime"),
    "hashlib": Rule("digests of bytes", hidden={"file_digest": "reads from file objects"}),
    "hmac": Rule("keyed digests of bytes (pure)"),
    "base64": Rule("encodings of bytes",
                   hidden={"encode": "reads and writes file objects",
                           "decode": "reads and writes file objects"}),
    "urllib": Rule("the package itself offers nothing; its allowed submodules only",
                   names=frozenset()),
    "urllib.parse": Rule("URL parsing and quoting (pure)"),
    "urllib.error": Rule("the exceptions urllib.request raises"),
    "urllib.request": Rule(
        "HTTP(S) through the egress gateway; every non-HTTP handler (file:, ftp:, data:) "
        "and everything that writes files is left out",
        names=URLLIB_REQUEST_NAMES,
        replaced={
            "urlopen": "an opener with HTTP(S) handlers only; no cafile/capath/context",
            "build_opener": "starts from HTTP(S) handlers only; refuses file/ftp/data handlers",
            "install_opener": "accepts only openers built here",
        },
    ),
    "requests": Rule(
        "HTTP(S) through the egress gateway; sessions refuse certificate and CA *paths* "
        "(verify=<path>, cert=...) because those make requests read files",
        names=REQUESTS_NAMES,
        replaced={
            "Session": "a Session whose send() refuses file paths for verify/cert",
            "session": "returns the guarded Session",
            "request": "through the guarded Session", "get": "through the guarded Session",
            "options": "through the guarded Session", "head": "through the guarded Session",
            "post": "through the guarded Session", "put": "through the guarded Session",
            "patch": "through the guarded Session", "delete": "through the guarded Session",
        },
    ),  # fmt: skip
    "requests.exceptions": Rule("requests' exception classes"),
    "requests.auth": Rule("HTTPBasicAuth, HTTPDigestAuth, AuthBase",
                          names=frozenset({"AuthBase", "HTTPBasicAuth", "HTTPDigestAuth",
                                           "HTTPProxyAuth"})),  # fmt: skip
    "requests.structures": Rule("CaseInsensitiveDict, LookupDict (pure)",
                                names=frozenset({"CaseInsensitiveDict", "LookupDict"})),
    "requests.status_codes": Rule("the codes lookup table", names=frozenset({"codes"})),
    "email": Rule("building and parsing messages; parsers take strings and bytes (the "
                  "file variants need file objects broker code cannot create)"),
    "string": Rule(
        "constants, Template (mapping lookups only) and a guarded Formatter",
        replaced={"Formatter": "field lookups ({0.x}, {0[k]}) go through the guards"},
    ),
    "collections": Rule("containers; UserString.format/format_map are refused as values "
                        "(they call str.format)"),
    "collections.abc": Rule("abstract base classes"),
    "math": Rule("arithmetic (pure)"),
    "itertools": Rule("iterator building blocks (pure; time and memory are capped)"),
    "functools": Rule(
        "partial, reduce, caches, total_ordering",
        hidden={
            "singledispatch": "register() evaluates annotation strings outside the guards",
            "singledispatchmethod": "register() evaluates annotation strings outside the guards",
        },
        replaced={
            "update_wrapper": "the default attribute lists only (custom ones copy any "
            "attribute, __globals__ included)",
            "wraps": "the default attribute lists only",
        },
    ),
    "html": Rule("escape/unescape, the HTML parser and entity tables (pure)"),
    "textwrap": Rule("text wrapping (pure)"),
    "uuid": Rule(
        "UUID values",
        hidden={
            "getnode": "may run ip/ifconfig/arp as subprocesses to find a MAC address",
            "uuid1": "calls getnode()",
        },
    ),
    "random": Rule("RestrictedPython's utility builtins offer it (pseudo-random numbers)"),
    "brokerage_sdk": Rule("the broker SDK: the names in its __all__", names=sdk_names()),
    "encodings": Rule("codecs the interpreter imports by name on broker code's behalf"),
    "_strptime": Rule("datetime.strptime/time.strptime import it on broker code's behalf"),
}  # fmt: skip
"""every module broker code may be given, with its reason"""


REFUSED_MODULES: dict[str, str] = {
    "json.tool": "a command-line tool: opens the files named in sys.argv",
    "urllib.robotparser": "fetches with the unrestricted opener (file: URLs)",
    "urllib.response": "file-like wrappers; nothing broker code needs to import",
    "requests.utils": "file I/O helpers (atomic_open, extract_zipped_paths, netrc) and "
    "unguarded attribute access",
    "requests.compat": "re-exports standard-library modules and urllib3",
    "requests.packages": "aliases urllib3, idna and chardet (not reviewed)",
    "requests.adapters": "the transport (urllib3 pools; reads certificate files)",
    "requests.help": "reports the platform and TLS libraries",
    "requests.certs": "the CA bundle's path",
    "requests.api": "the unguarded request functions (use requests.get & co)",
    "requests.sessions": "the unguarded Session (use requests.Session)",
    "requests.models": "module-level helpers from requests.utils (use requests.Response & co)",
    "requests.hooks": "nothing broker code needs",
    "requests.cookies": "cookie jars (reachable as session.cookies)",
    "email.mime.image": "guesses image types with the deprecated imghdr (not reviewed)",
    "email.mime.audio": "guesses audio types with the deprecated sndhdr (not reviewed)",
}
"""submodules of allowed packages that broker code may not import, each with its reason"""


EXTRA_ORIGINS: dict[str, str] = {
    "builtins": "the built-in types and functions",
    "_hashlib": "hashlib's and hmac's C implementation",
    "_blake2": "hashlib", "_sha1": "hashlib", "_sha256": "hashlib", "_sha512": "hashlib",
    "_sha3": "hashlib", "_md5": "hashlib",
    "_json": "json's C scanner and encoder",
    "_sre": "re's C engine",
    "_collections": "collections' C types", "_collections_abc": "collections.abc",
    "_functools": "functools' C helpers", "_datetime": "datetime's C types",
    "_random": "random's C generator", "_strptime": "strptime's parser",
    "random": "RestrictedPython's utility builtins offer it",
    "http.client": "the responses urllib.request returns",
    "http.cookiejar": "session.cookies (requests' cookie jar)",
    "requests.models": "Response, Request, PreparedRequest",
    "requests.sessions": "the Session methods the guarded Session inherits",
    "requests.cookies": "session.cookies",
    "requests.structures": "response.headers",
    "urllib.response": "what urllib.request's HTTP errors carry",
    "email.headerregistry": "parsed headers",
    "sdk_api": "the SDK", "sdk_chat": "the SDK", "sdk_commitmail": "the SDK",
    "sdk_http": "the SDK", "sdk_mail": "the SDK", "sdk_shortlinks": "the SDK",
    "sdk_signing": "the SDK", "sdk_templates": "the SDK",
}  # fmt: skip
"""modules whose objects broker code may hold although it may not import them"""


# -- guarded stand-ins -------------------------------------------------------------------

NON_HTTP_HANDLERS: tuple[type, ...] = (
    urllib.request.FileHandler,
    urllib.request.FTPHandler,
    urllib.request.CacheFTPHandler,
    urllib.request.DataHandler,
)
"""handlers that read files or leave HTTP: never part of an opener broker code gets"""

HTTP_HANDLERS: tuple[type, ...] = (
    urllib.request.ProxyHandler,
    urllib.request.UnknownHandler,
    urllib.request.HTTPHandler,
    urllib.request.HTTPSHandler,
    urllib.request.HTTPDefaultErrorHandler,
    urllib.request.HTTPRedirectHandler,
    urllib.request.HTTPErrorProcessor,
)
"""what an opener built for broker code starts from (urllib's own list minus the above)"""


class _GuardedOpener(urllib.request.OpenerDirector):
    """An opener built by :func:`build_opener` below: HTTP(S) only."""


def build_opener(*handlers: Any) -> urllib.request.OpenerDirector:
    """``urllib.request.build_opener`` without file:, ftp: and data: handlers."""
    for handler in handlers:
        cls = handler if isinstance(handler, type) else type(handler)
        if issubclass(cls, NON_HTTP_HANDLERS):
            raise ValueError(f"{cls.__name__} is not available to broker code")
    opener = _GuardedOpener()
    for base in HTTP_HANDLERS:
        if not any(
            (isinstance(h, type) and issubclass(h, base)) or isinstance(h, base) for h in handlers
        ):
            opener.add_handler(base())
    for handler in handlers:
        opener.add_handler(handler() if isinstance(handler, type) else handler)
    return opener


_installed: list[urllib.request.OpenerDirector] = []


def install_opener(opener: urllib.request.OpenerDirector) -> None:
    """Make ``opener`` the one :func:`urlopen` uses (this run only)."""
    if not isinstance(opener, _GuardedOpener):
        raise TypeError("install_opener accepts openers from urllib.request.build_opener only")
    _installed[:] = [opener]


def urlopen(url: Any, data: Any = None, timeout: float | None = 30.0) -> Any:
    """``urllib.request.urlopen`` through an HTTP(S)-only opener (no cafile/capath/context)."""
    if not _installed:
        _installed.append(build_opener())
    return _installed[0].open(url, data, timeout)


def update_wrapper(wrapper: Any, wrapped: Any) -> Any:
    """``functools.update_wrapper`` with its default attribute lists only."""
    return functools.update_wrapper(wrapper, wrapped)


def wraps(wrapped: Any) -> Callable[[Any], Any]:
    """``functools.wraps`` with its default attribute lists only."""
    return functools.partial(update_wrapper, wrapped=wrapped)


def refuse_certificate_files(kwargs: Mapping[str, Any]) -> None:
    """``verify=<path>`` and ``cert=...`` make requests read files: refused, except the CA
    bundle the runner's own environment names (which broker code cannot change)."""
    verify, cert = kwargs.get("verify"), kwargs.get("cert")
    bundles = {os.environ.get("REQUESTS_CA_BUNDLE"), os.environ.get("CURL_CA_BUNDLE")} - {None}
    if not (verify is None or isinstance(verify, bool) or verify in bundles) or cert is not None:
        raise ValueError("verify must be True or False and cert unset: reading "
                         "certificate files is not available to broker code")  # fmt: skip


def _requests_stand_ins() -> dict[str, Any]:
    import requests

    class Session(requests.Session):
        """requests.Session that never reads certificate or CA files."""

        def send(self, request: Any, **kwargs: Any) -> Any:
            refuse_certificate_files(kwargs)
            return super().send(request, **kwargs)

    Session.__module__ = __name__
    Session.__qualname__ = "Session"

    def request(method: str, url: str, **kwargs: Any) -> Any:
        with Session() as session:
            return session.request(method=method, url=url, **kwargs)

    def verb(method: str) -> Callable[..., Any]:
        def call(url: str, **kwargs: Any) -> Any:
            return request(method, url, **kwargs)

        call.__name__ = call.__qualname__ = method.lower()
        return call

    names = {"Session": Session, "session": Session, "request": request}
    for method in ("GET", "OPTIONS", "HEAD", "POST", "PUT", "PATCH", "DELETE"):
        names[method.lower()] = verb(method)
    return names


@functools.cache
def guarded_stand_ins() -> dict[str, dict[str, Any]]:
    """module -> name -> the guarded value broker code gets instead of the real one
    (``string.Formatter``'s stand-in lives in ``policy``: it needs the guards)."""
    return {
        "urllib.request": {
            "urlopen": urlopen,
            "build_opener": build_opener,
            "install_opener": install_opener,
        },  # fmt: skip
        "requests": _requests_stand_ins(),
        "functools": {"update_wrapper": update_wrapper, "wraps": wraps},
    }


@functools.cache
def denied_values() -> dict[int, str]:
    """id of a function, method or class -> why broker code may never hold it, whatever
    route it took (``super()``, a subclass, a class attribute, an item of a container).

    These are the real versions of what the stand-ins replace, and the callables that do
    attribute access with names the caller chooses.
    """
    import collections

    import requests

    denied: dict[int, str] = {
        id(str.format): "str.format looks up attributes named in the format string",
        id(str.format_map): "str.format_map looks up attributes named in the format string",
        id(string.Formatter.get_field): "Formatter.get_field does unguarded attribute access",
        id(collections.UserString.format): "UserString.format calls str.format",
        id(collections.UserString.format_map): "UserString.format_map calls str.format_map",
        id(functools.update_wrapper): "copies attributes the caller names (__globals__...)",
        id(functools.wraps): "copies attributes the caller names (__globals__...)",
        id(functools.singledispatch): "evaluates annotation strings outside the guards",
        id(functools.singledispatchmethod): "evaluates annotation strings outside the guards",
        id(requests.Session.send): "the unguarded send (certificate files)",
        id(requests.Session): "the unguarded Session (certificate files)",
        id(urllib.request.urlopen): "the default opener reads file: URLs",
        id(urllib.request.build_opener): "adds file:, ftp: and data: handlers",
        id(urllib.request.install_opener): "installs any opener",
        id(urllib.request.urlretrieve): "writes files",
        id(urllib.request.URLopener): "opens local files",
        id(urllib.request.FancyURLopener): "opens local files",
    }
    for handler in NON_HTTP_HANDLERS:
        denied[id(handler)] = f"{handler.__name__} leaves HTTP (files, FTP, data: URLs)"
    return denied


CATALOGUE_SELF = __name__
"""this module's own name (its stand-ins are an allowed origin)"""


def rule_for(name: str) -> Rule | None:
    return CATALOGUE.get(name)


def refusal_for(name: str) -> str | None:
    """Why the catalogue refuses module ``name`` (it or a parent is refused), else None."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        reason = REFUSED_MODULES.get(".".join(parts[:end]))
        if reason is not None:
            return reason
    return None
