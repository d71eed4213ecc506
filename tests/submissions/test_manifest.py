"""The manifest schema, the rules beside it, and the built-in catalogue."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from brokerage.core.errors import BrokerageError
from brokerage.submissions.builtins import BUILTIN_DIR, builtin_manifests
from brokerage.submissions.errors import ManifestError
from brokerage.submissions.manifest import (
    load_manifest,
    manifest_problems,
    manifest_schema,
    validate_manifest,
)

VALID: dict[str, Any] = {
    "name": "hello",
    "version": "1.0.0",
    "title": "Hello",
    "description": "Says hello.",
    "vendor": {
        "name": "Vendor",
        "email": "support@vendor.example",
        "url": "https://vendor.example",
    },
    "events": ["push"],
    "fields": [
        {"label": "URL", "type": "url", "required": True},
        {"label": "Level", "type": "choice", "choices": ["low", "high"], "default": "low"},
        {"label": "Notify", "type": "email", "multiple": True},
        {"label": "Verbose", "type": "boolean", "default": False},
    ],
    "egress": ["hooks.example.com", "*.example.org"],
    "entry_point": "broker.py:HelloBroker",
}

SEED_TITLES = {
    "POST",
    "Email",
    "Email Diff",
    "Issues",
    "Twitter",
    "FriendFeed",
    "FogBugz",
    "Basecamp",
    "Lighthouse",
    "CIA.vc",
    "Rietveld",
    "Superfeedr",
    "Geocommit",
    "Pivotal Tracker",
    "Jenkins",
    "Bamboo",
}

TYPES = "['string', 'password', 'url', 'email', 'boolean', 'choice']"
EGRESS = (
    "a lowercase hostname with a dot, an IPv4 address (127.0.0.1), a bracketed IPv6 address "
    "([::1]), a '*.domain' wildcard, or '*'"
)
Mutation = Callable[[dict[str, Any]], object]


def _field(index: int, **changes: Any) -> Mutation:
    return lambda m: m["fields"][index].update(changes)


def _set(key: str, value: Any) -> Mutation:
    return lambda m: m.update({key: value})


INVALID: list[tuple[str, Mutation, str]] = [
    ("missing name", lambda m: m.pop("name"), "name: is required"),
    ("missing vendor email", lambda m: m["vendor"].pop("email"), "vendor.email: is required"),
    (
        "unknown top-level key",
        _set("homepage", "x"),
        "homepage: is not allowed here (allowed: name, version, title, description, vendor, "
        "events, fields, egress, entry_point, permissions)",
    ),
    (
        "name with capitals",
        _set("name", "Hello"),
        "name: 'Hello' is not a type id: 2 to 40 characters, lowercase letters, digits, '_' or "
        "'-', starting with a letter",
    ),
    (
        "version not semver",
        _set("version", "1.0"),
        "version: '1.0' is not a semantic version such as 1.0.0 or 2.1.0-beta.1",
    ),
    (
        "version with leading zero",
        _set("version", "1.02.0"),
        "version: '1.02.0' is not a semantic version such as 1.0.0 or 2.1.0-beta.1",
    ),
    ("version a number", _set("version", 1), "version: 1 is not of type 'string'"),
    ("empty title", _set("title", ""), "title: '' should be non-empty"),
    (
        "title with trailing space",
        _set("title", "Hello "),
        "title: 'Hello ' is not a title without leading or trailing spaces",
    ),
    (
        "vendor email malformed",
        lambda m: m["vendor"].update(email="nobody"),
        "vendor.email: 'nobody' is not an email address",
    ),
    ("no events", _set("events", []), "events: [] should be non-empty"),
    ("unknown event", _set("events", ["pull"]), "events[0]: 'pull' is not one of ['push']"),
    (
        "field type unknown",
        _field(0, type="number"),
        f"fields[0].type: 'number' is not one of {TYPES}",
    ),
    (
        "field not an object",
        lambda m: m["fields"].insert(0, "URL"),
        "fields[0]: 'URL' is not of type 'object'",
    ),
    ("field without label", lambda m: m["fields"][2].pop("label"), "fields[2].label: is required"),
    (
        "duplicate label, other case",
        lambda m: m["fields"].append({"label": "url", "type": "string"}),
        "fields[4].label: 'url' repeats fields[0].label 'URL' (labels ignore case)",
    ),
    (
        "reserved label",
        _field(3, label="Type"),
        "fields[3].label: 'Type' is reserved (the services API's own parameter)",
    ),
    (
        "reserved label: the platform's branch filter",
        _field(3, label="Branches"),
        "fields[3].label: 'Branches' is reserved (the services API's own parameter)",
    ),
    (
        "choice without choices",
        lambda m: m["fields"][1].pop("choices") and m["fields"][1].pop("default"),
        "fields[1].choices: is required when type is 'choice'",
    ),
    (
        "choices on a string field",
        _field(0, choices=["a"]),
        "fields[0].choices: is only allowed when type is 'choice', not 'url'",
    ),
    (
        "multiple on a url field",
        _field(0, multiple=True),
        "fields[0].multiple: is only allowed when type is 'email', not 'url'",
    ),
    (
        "choice default not a choice",
        _field(1, default="medium"),
        "fields[1].default: 'medium' is not one of ['low', 'high']",
    ),
    (
        "url default not http",
        _field(0, default="ftp://files.example.com/"),
        "fields[0].default: 'ftp://files.example.com/' is not an http or https URL",
    ),
    (
        "boolean default a string",
        _field(3, default="yes"),
        "fields[3].default: 'yes' is not a boolean (true or false)",
    ),
    (
        "url default a boolean",
        _field(0, default=True),
        "fields[0].default: True is not a string, as 'url' needs",
    ),
    (
        "default a number",
        _field(0, default=5),
        "fields[0].default: 5 is not of type 'string', 'boolean', 'null'",
    ),
    (
        "password with default",
        lambda m: m["fields"].append({"label": "Key", "type": "password", "default": "hunter2"}),
        "fields[4].default: not allowed on a password field (the manifest is public)",
    ),
    (
        "email default malformed",
        _field(2, default="a@example.com, nobody"),
        "fields[2].default: 'nobody' is not an email address",
    ),
    (
        "egress bad IP address",
        _set("egress", ["10.0.0.256"]),
        f"egress[0]: '10.0.0.256' is not {EGRESS}",
    ),
    ("egress bad IPv6", _set("egress", ["[1::2::3]"]), "egress[0]: '[1::2::3]' is no IPv6 address"),
    (
        "egress URL, not host",
        _set("egress", ["https://a.com/"]),
        f"egress[0]: 'https://a.com/' is not {EGRESS}",
    ),
    (
        "egress single label",
        _set("egress", ["localhost"]),
        f"egress[0]: 'localhost' is not {EGRESS}",
    ),
    ("egress wildcard on a TLD", _set("egress", ["*.com"]), f"egress[0]: '*.com' is not {EGRESS}"),
    (
        "egress inner wildcard",
        _set("egress", ["api.*.com"]),
        f"egress[0]: 'api.*.com' is not {EGRESS}",
    ),
    (
        "egress upper case",
        _set("egress", ["API.example.com"]),
        f"egress[0]: 'API.example.com' is not {EGRESS}",
    ),
    (
        "egress repeated",
        _set("egress", ["a.example.com", "a.example.com"]),
        "egress: ['a.example.com', 'a.example.com'] has non-unique elements",
    ),
    (
        "entry point not a .py file",
        _set("entry_point", "broker:Hello"),
        "entry_point: 'broker:Hello' is not 'file.py' or 'file.py:Class' naming a file at the "
        "package root",
    ),
    (
        "entry point in a subfolder",
        _set("entry_point", "../broker.py"),
        "entry_point: '../broker.py' is not 'file.py' or 'file.py:Class' naming a file at the "
        "package root",
    ),
    (
        "permission malformed",
        _set("permissions", ["issues"]),
        "permissions[0]: 'issues' is not a scope such as 'issues:write'",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "expected"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid_manifest_names_the_path_and_the_problem(mutate: Mutation, expected: str) -> None:
    manifest = copy.deepcopy(VALID)
    mutate(manifest)

    with pytest.raises(ManifestError) as caught:
        validate_manifest(manifest)

    assert caught.value.messages == [expected]
    assert expected in str(caught.value)


def test_the_base_manifest_is_valid_and_gets_defaults_filled() -> None:
    manifest = validate_manifest(VALID)

    assert manifest["permissions"] == []
    assert manifest["fields"][0] == {
        "label": "URL",
        "type": "url",
        "required": True,
        "default": None,
        "help": "",
    }
    assert "required" not in VALID["fields"][1], "the caller's dict is left alone"


@pytest.mark.parametrize(
    "egress",
    [
        ["127.0.0.1"],
        ["203.0.113.7", "hooks.example.com"],
        ["[::1]"],
        ["*", "hooks.internal.example"],
    ],
)
def test_ip_literals_and_star_with_named_hosts_are_valid_egress(egress: list[str]) -> None:
    # docs/gateway.md: IP literals match by meaning; a "*" broker may name a host too
    assert validate_manifest({**VALID, "egress": egress})["egress"] == egress


@pytest.mark.parametrize(
    "version", ["0.0.1", "10.20.30", "1.0.0-alpha.1", "1.0.0+build.5", "2.0.0-rc.1+x"]
)
def test_semantic_versions_are_accepted(version: str) -> None:
    assert validate_manifest({**VALID, "version": version})["version"] == version


def test_every_problem_is_reported_at_once() -> None:
    manifest = copy.deepcopy(VALID)
    manifest.pop("title")
    manifest["fields"][0]["type"] = "number"
    manifest["egress"] = ["*", "[::1::]"]

    problems = manifest_problems(manifest)

    assert [p.path for p in problems] == ["fields[0].type", "title", "egress[1]"]


def test_a_non_object_manifest_is_one_clear_problem() -> None:
    assert [str(p) for p in manifest_problems([])] == ["manifest: [] is not of type 'object'"]


def test_manifest_error_is_a_brokerage_error() -> None:
    with pytest.raises(BrokerageError):
        validate_manifest({})


def test_the_published_schema_is_valid_draft_2020_12() -> None:
    schema = manifest_schema()

    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "changed"
    assert manifest_schema()["title"] != "changed", "callers get a copy"


# --- package folders -----------------------------------------------------------


def _package(
    tmp_path: Path, manifest: Any, code: str | None = "class HelloBroker:\n    pass\n"
) -> Path:
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    if code is not None:
        (tmp_path / "broker.py").write_text(code)
    return tmp_path


def test_a_package_folder_loads(tmp_path: Path) -> None:
    assert load_manifest(_package(tmp_path, VALID))["name"] == "hello"
    assert load_manifest(tmp_path / "manifest.json")["name"] == "hello"


def test_a_plain_script_entry_point_needs_only_the_file(tmp_path: Path) -> None:
    package = _package(tmp_path, {**VALID, "entry_point": "broker.py"}, code="print(1)\n")

    assert load_manifest(package)["entry_point"] == "broker.py"


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (None, "entry_point: 'broker.py' is not in the package"),
        (
            "class Other:\n    pass\n",
            "entry_point: 'broker.py' defines no top-level class 'HelloBroker'",
        ),
        (
            "def f():\n    class HelloBroker:\n        pass\n",
            "entry_point: 'broker.py' defines no top-level class 'HelloBroker'",
        ),
    ],
    ids=["file missing", "class missing", "class not top-level"],
)
def test_a_package_folder_needs_its_entry_point(
    tmp_path: Path, code: str | None, expected: str
) -> None:
    with pytest.raises(ManifestError) as caught:
        load_manifest(_package(tmp_path, VALID, code))

    assert caught.value.messages == [expected]


def test_an_entry_point_symlink_is_refused(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    _package(package, VALID, code=None)
    (tmp_path / "elsewhere.py").write_text("class HelloBroker:\n    pass\n")
    (package / "broker.py").symlink_to(tmp_path / "elsewhere.py")

    with pytest.raises(ManifestError) as caught:
        load_manifest(package)

    assert caught.value.messages == [
        "entry_point: 'broker.py' is a symbolic link; it must be a regular file"
    ]


def test_code_that_does_not_parse_is_left_to_the_static_checks(tmp_path: Path) -> None:
    package = _package(tmp_path, VALID, code="class HelloBroker(:\n")

    assert load_manifest(package)["name"] == "hello"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, "manifest.json: file not found"),
        ('{"name": ', "manifest.json: is not valid JSON: Expecting value (line 1 column 10)"),
        ('{"name": "a", "name": "b"}', "manifest.json: key 'name' appears twice in one object"),
        (b"\xff\xfe{}", None),
    ],
    ids=["missing", "truncated", "duplicate key", "not utf-8"],
)
def test_an_unreadable_manifest_file_is_one_clear_problem(
    tmp_path: Path, text: str | bytes | None, expected: str | None
) -> None:
    if isinstance(text, bytes):
        (tmp_path / "manifest.json").write_bytes(text)
    elif text is not None:
        (tmp_path / "manifest.json").write_text(text)

    with pytest.raises(ManifestError) as caught:
        load_manifest(tmp_path)

    assert len(caught.value.messages) == 1
    if expected is None:
        assert caught.value.messages[0].startswith("manifest.json: cannot be read: ")
    else:
        assert caught.value.messages == [expected]


# --- the built-in catalogue ------------------------------------------------------


def test_every_builtin_manifest_validates_and_the_catalogue_has_the_seed_types() -> None:
    manifests = builtin_manifests()

    assert {m["title"] for m in manifests} >= SEED_TITLES  # and today's chat brokers besides
    assert [m["name"] for m in manifests] == sorted(m["name"] for m in manifests)
    for manifest in manifests:
        assert manifest["version"] == "1.0.0"
        assert manifest["vendor"]["name"] == "Brokerage"
        assert manifest["entry_point"].startswith("broker.py:")


def _labels(name: str) -> list[str]:
    manifest = next(m for m in builtin_manifests() if m["name"] == name)
    return [field["label"] for field in manifest["fields"]]


@pytest.mark.parametrize(
    ("name", "labels"),
    [
        ("post", ["URL"]),
        ("email", ["Email"]),
        ("emaildiff", ["Email"]),
        ("issues", []),
        ("fogbugz", ["Repository ID", "CVSSubmit URL"]),
        ("basecamp", ["Password", "Username", "Discussion URL"]),
        ("lighthouse", ["Project ID", "API Key", "Subdomain"]),
        ("rietveld", ["Email", "Password", "URL"]),
        ("superfeedr", []),
        ("geocommit", []),
        ("pivotaltracker", ["Token"]),
        ("jenkins", ["Endpoint", "Project Name", "Token", "Module name"]),
        ("bamboo", ["URL", "Plan Key", "Username", "Password"]),
        ("twitter", ["Token", "Secret", "Format", "Consumer Key", "Consumer Secret"]),
    ],
)
def test_builtin_fields_carry_the_seed_labels_in_order(name: str, labels: list[str]) -> None:
    # the seed's fields come first, in its order; a built-in may add optional ones after them
    assert _labels(name)[: len(labels)] == labels
    manifest = next(m for m in builtin_manifests() if m["name"] == name)
    assert not any(f["required"] for f in manifest["fields"][len(labels) :])


def test_builtin_secrets_are_password_fields_and_defaults_follow_the_seeds() -> None:
    by_name = {m["name"]: {f["label"]: f for f in m["fields"]} for m in builtin_manifests()}

    assert (
        by_name["twitter"]["Format"]["default"]
        == "${repository.name} - ${commit.author} - ${commit.message}"
    )
    assert by_name["friendfeed"]["Format"]["default"] == "${repository.name} - ${commit.author}"
    assert by_name["rietveld"]["URL"]["default"] == "http://reitveld-bitbucket.appspot.com/"
    assert by_name["rietveld"]["Email"]["type"] == "email"
    for name, label in [
        ("twitter", "Secret"),
        ("basecamp", "Password"),
        ("lighthouse", "API Key"),
        ("pivotaltracker", "Token"),
        ("bamboo", "Password"),
        ("friendfeed", "Remote Key"),
    ]:
        assert by_name[name][label]["type"] == "password", (name, label)
    assert by_name["post"]["URL"]["type"] == "url"
    assert by_name["email"]["Email"]["multiple"] is True


def test_builtin_egress_is_open_only_where_the_admin_supplies_the_url() -> None:
    egress = {m["name"]: m["egress"] for m in builtin_manifests()}

    open_ = {name for name, hosts in egress.items() if hosts == ["*"]}
    assert {"post", "fogbugz", "jenkins", "bamboo", "rietveld", "basecamp"} <= open_
    for manifest in builtin_manifests():  # "*" only where a URL field names the host
        if manifest["name"] in open_:  # (a secret webhook URL is a password-typed URL field)
            assert any(f["type"] == "url" or f["label"].endswith("URL") for f in manifest["fields"])
    assert "api.twitter.com" in egress["twitter"]
    assert egress["lighthouse"] == ["*.lighthouseapp.com"]
    assert egress["email"] == egress["issues"] == []


def test_issues_asks_for_issue_write_permission() -> None:
    issues = next(m for m in builtin_manifests() if m["name"] == "issues")

    assert issues["permissions"] == ["issues:write"]


def test_a_broken_builtin_manifest_names_its_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import brokerage.submissions.builtins as builtins

    (tmp_path / "zeta").mkdir()
    (tmp_path / "zeta" / "manifest.json").write_text(json.dumps({**VALID, "name": "hello"}))
    (tmp_path / "zeta" / "broker.py").write_text("class HelloBroker:\n    pass\n")
    monkeypatch.setattr(builtins, "BUILTIN_DIR", tmp_path)

    with pytest.raises(ManifestError) as caught:
        builtins.builtin_manifests()

    assert caught.value.messages == [
        "zeta/manifest.json: name: 'hello' differs from its folder's name 'zeta'"
    ]


def test_builtin_folders_hold_a_manifest_each() -> None:
    folders = {p.name for p in BUILTIN_DIR.iterdir() if p.is_dir() and not p.name.startswith("__")}

    assert folders == {m["name"] for m in builtin_manifests()}
