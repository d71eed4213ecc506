"""push.schema.json: what the platform accepts from the hooks, and the caps it shares with them."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest

from brokerage.core.errors import BadRequestError
from brokerage.platform import pushes
from brokerage.platform.hooks import patches as hook_patches
from brokerage.platform.hooks import push as hook_push

SHA = "620ade18607ac42d872b568bb92acaa9a28620e9"
PARENT = "702c70160afc0123456789abcdef0123456789ab"

GIT_PUSH: dict[str, Any] = {
    "scm": "git",
    "user": "marcus",
    "push_id": "0b9f3e4c-8a43-4a1e-9d3c-6d1c2b7a9e10",
    "pushed_at": "2012-05-30 03:59:00+00:00",
    "refs": [{"ref": "refs/heads/master", "type": "branch", "old": PARENT, "new": SHA}],
    "commits": [
        {
            "author": "marcus",
            "branch": "master",
            "files": [{"file": "somefile.py", "type": "modified"}],
            "message": "Added some more things to somefile.py\n",
            "node": "620ade18607a",
            "parents": ["702c70160afc"],
            "raw_author": "Marcus Bertrand <marcus@somedomain.com>",
            "raw_node": SHA,
            "revision": None,
            "size": -1,
            "timestamp": "2012-05-30 05:58:56",
            "utctimestamp": "2012-05-30 03:58:56+00:00",
        }
    ],
    "truncated": False,
    "patches": {SHA: "diff --git a/somefile.py b/somefile.py\n"},
}


def errors(body: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(hook_push.push_schema())
    return ["/".join(map(str, e.absolute_path)) for e in validator.iter_errors(body)]


def changed(path: str, value: Any) -> dict[str, Any]:
    """GIT_PUSH with the value at a /-separated path replaced (or deleted, for ...)."""
    body = copy.deepcopy(GIT_PUSH)
    *parents, last = path.split("/")
    target: Any = body
    for key in parents:
        target = target[int(key)] if key.isdigit() else target[key]
    if value is ...:
        del target[last]
    else:
        target[int(last) if last.isdigit() else last] = value
    return body


def test_schema_is_valid_draft_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(hook_push.push_schema())


def test_the_seed_shaped_git_push_is_valid() -> None:
    assert errors(GIT_PUSH) == []


def test_an_hg_push_needs_revision_numbers() -> None:
    hg = changed("scm", "hg")
    assert errors(hg) == ["commits/0/revision"]
    hg["commits"][0]["revision"] = 3
    assert errors(hg) == []
    assert errors(changed("commits/0/revision", 3)) == ["commits/0/revision"]  # git: null


BAD_VALUES: list[tuple[str, Any]] = [
    ("scm", "svn"),
    ("user", ""),
    ("push_id", "not-a-uuid"),
    ("truncated", "no"),
    ("refs/0/type", "note"),
    ("refs/0/old", "abc"),
    ("commits/0/node", "620ade18607ac42d"),
    ("commits/0/parents/0", "xyz"),
    ("commits/0/files/0/type", "renamed"),
    ("commits/0/timestamp", "2012-05-30T05:58:56"),
    ("commits/0/utctimestamp", "2012-05-30 03:58:56"),
    ("commits/0/raw_node", "620ade18607a"),
    ("commits/0/size", -2),
    ("commits/0/branch", 7),
]


@pytest.mark.parametrize(("path", "value"), BAD_VALUES)
def test_a_bad_value_is_named_by_its_path(path: str, value: Any) -> None:
    assert errors(changed(path, value)) == [path]


def test_an_unknown_commit_key_is_named_by_its_commit() -> None:
    assert errors(changed("commits/0/extra", 1)) == ["commits/0"]


@pytest.mark.parametrize("key", ["scm", "user", "push_id", "refs", "commits", "truncated"])
def test_required_keys(key: str) -> None:
    assert errors(changed(key, ...)) != []


@pytest.mark.parametrize("key", ["pushed_at", "patches"])
def test_optional_keys(key: str) -> None:
    assert errors(changed(key, ...)) == []


def test_a_ref_update_changes_something() -> None:
    assert errors(changed("refs/0/old", None)) == []
    assert errors(changed("refs/0/new", None)) == []
    both = changed("refs/0/old", None)
    both["refs"][0]["new"] = None
    assert errors(both) == ["refs/0"]


def test_unknown_top_level_key_is_refused() -> None:
    assert errors(changed("repository", {})) == [""]


def test_patches_are_keyed_by_raw_node() -> None:
    assert errors(changed("patches", {"620ade18607a": "diff"})) != []


def test_caps_in_the_schema_match_the_hook() -> None:
    schema = hook_push.push_schema()
    commit = schema["$defs"]["commit"]
    assert schema["properties"]["commits"]["maxItems"] == hook_push.MAX_COMMITS
    assert schema["properties"]["refs"]["maxItems"] == hook_push.MAX_REFS
    assert commit["properties"]["files"]["maxItems"] == hook_push.MAX_FILES_PER_COMMIT
    patch = schema["properties"]["patches"]["additionalProperties"]
    assert patch["maxLength"] == hook_patches.MAX_PATCH_BYTES


def test_commit_keys_are_exactly_the_seed_commit_keys() -> None:
    seed_keys = set(GIT_PUSH["commits"][0])
    commit = hook_push.push_schema()["$defs"]["commit"]
    assert set(commit["required"]) == seed_keys == set(commit["properties"])


# The platform checks a body with a compiled copy of the schema (fastjsonschema) first and
# asks the reference validator (jsonschema, Draft 2020-12) only about what that refuses: the
# compiled check may refuse more than the reference (the reference then accepts), but must
# never accept a body the reference refuses.

HG_PUSH = {**copy.deepcopy(GIT_PUSH), "scm": "hg"}
HG_PUSH["commits"][0]["revision"] = 3
ODD_VALUES: list[Any] = [
    None, True, False, 0, 1, -1, -2, 1.0, 2.5, 2**70, "", "x", "a" * 12, "a" * 40, "a" * 64,
    "a" * 40 + "\n", "a" * 12 + "\n", "git", "hg", "branch", "tag", "added", "é" * 256,
    GIT_PUSH["push_id"] + "\n", "2012-05-30 05:58:56", "2012-05-30 03:58:56+00:00",
    [], [1], ["a" * 12], {}, {"a": 1}, {"file": "x", "type": "added"}, {SHA: "diff"},
]  # fmt: skip


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a body, as keys and indexes."""
    found = [prefix] if prefix else []
    if isinstance(node, dict | list):
        for key, child in node.items() if isinstance(node, dict) else enumerate(node):
            found += _paths(child, (*prefix, key))
    return found


def _mutants(seed: int, count: int) -> list[dict[str, Any]]:
    """Bodies with one to three random changes: a value replaced, a key dropped or added."""
    import random

    rng = random.Random(seed)
    out = []
    for _ in range(count):
        body = copy.deepcopy(rng.choice([GIT_PUSH, HG_PUSH]))
        for _ in range(rng.choice([1, 1, 2, 3])):
            *parents, last = rng.choice(_paths(body))
            target: Any = body
            for key in parents:
                target = target[key]
            roll = rng.random()
            if roll < 0.15 and isinstance(target, dict):
                del target[last]
            elif roll < 0.25 and isinstance(target, dict):
                target[rng.choice(["extra", "scm", "revision", "pushed_at", SHA])] = 1
            else:
                target[last] = copy.deepcopy(rng.choice(ODD_VALUES))
        out.append(body)
    return out


def _fast_accepts(body: dict[str, Any]) -> bool:
    try:
        pushes._fast_check()(body)
    except Exception:
        return False
    return True


def test_the_compiled_check_never_accepts_what_the_reference_refuses() -> None:
    reference = pushes._validator()
    bodies = [GIT_PUSH, HG_PUSH, *_mutants(seed=2026, count=3000)]
    bodies += [changed(path, value) for path, value in BAD_VALUES]
    bodies += [changed(key, ...) for key in ("scm", "user", "push_id", "refs", "commits")]
    let_through = [b for b in bodies if _fast_accepts(b) and not reference.is_valid(b)]
    assert let_through == []
    assert sum(map(_fast_accepts, bodies)) > 100  # the fast path is taken, too


def test_what_only_the_reference_accepts_is_accepted() -> None:
    body = changed("push_id", GIT_PUSH["push_id"] + "\n")  # "$" matches before a final newline
    assert not _fast_accepts(body)
    assert pushes.validate_body(body) is body


def test_a_refusal_is_worded_by_the_reference() -> None:
    with pytest.raises(BadRequestError) as refused:
        pushes.validate_body(changed("commits/0/node", "xyz"))
    assert str(refused.value.message) == (
        "malformed push: commits[0].node: 'xyz' does not match '^[0-9a-f]{12}$'"
    )
