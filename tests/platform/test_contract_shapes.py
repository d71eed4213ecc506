"""The compatibility contracts as data (``tests/fixtures/``): the payload the platform
builds from a real git and a real hg push, and the services resource's answers, have the
keys and types of the contract's examples."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from brokerage.platform.hooks.git import collect_git_push
from brokerage.platform.hooks.hg import collect_hg_push
from brokerage.platform.hooks.push import RefType, RefUpdate
from tests.platform.deliveries.conftest import Repo
from tests.platform.hooks.hook_fixtures import HgRepos, isolate_scm
from tests.support import FORM, Seeder, basic

FIXTURES = Path(__file__).parents[1] / "fixtures"
ADDITIVE = {"truncated", "refs"}
"""top-level keys the platform adds to the contract's payload"""
SERVICES = "/1.0/repositories/marcus/project-x/services"


def example(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def shape(value: Any) -> Any:
    """Keys and types, recursively (a list by its first item's shape)."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def test_shape_tells_types_and_keys_apart() -> None:
    assert shape({"a": [{"b": 1}], "c": None}) != shape({"a": [{"b": "1"}], "c": None})
    assert shape({"a": 1}) != shape({"a": 1, "b": 1})


# -- the push payload --------------------------------------------------------------------


@pytest.fixture
def scm_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    isolate_scm(tmp_path / "home", monkeypatch)
    return tmp_path


def git(where: Path, *args: str, date: str = "2012-05-30T05:58:56+02:00") -> str:
    author = {"GIT_AUTHOR_NAME": "Marcus Bertrand", "GIT_AUTHOR_EMAIL": "marcus@somedomain.com"}
    env = {**os.environ, **author, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    done = subprocess.run(["git", *args], cwd=where, env=env, check=True, capture_output=True)
    return done.stdout.decode().strip()


def git_push_body(where: Path) -> dict[str, Any]:
    work = where / "git-work"
    work.mkdir()
    git(work, "init", "-q", "-b", "master")
    (work / "somefile.py").write_text("one\n")
    git(work, "add", "somefile.py")
    git(work, "commit", "-q", "-m", "First")
    first = git(work, "rev-parse", "HEAD")
    (work / "somefile.py").write_text("one\ntwo\n")
    git(work, "commit", "-q", "-am", "Added some more things to somefile.py")
    second = git(work, "rev-parse", "HEAD")
    update = RefUpdate("refs/heads/master", RefType.BRANCH, first, second)
    return collect_git_push(work / ".git", [update], patches=False).body()


def hg_push_body(where: Path) -> dict[str, Any]:
    repos = HgRepos.create(where)
    repos.hg("branch", "-q", "featureA")
    repos.commit("First", {"somefile.py": "one\n"})
    second = repos.commit("Added some featureA things", {"somefile.py": "one\ntwo\n"})
    return collect_hg_push(repos.clone, second, None, patches=False).body()


@pytest.mark.parametrize("scm", ["git", "hg"])
def test_the_payload_has_the_contract_s_shape(
    scm: str, scm_home: Path, client: FlaskClient, seed: Seeder
) -> None:
    expected = example(f"payload_{scm}.json")
    body = git_push_body(scm_home) if scm == "git" else hg_push_body(scm_home)
    seed.user("marcus")
    seed.repo("marcus", "project-x", scm=scm)
    base, auth = "/1.0/repositories/marcus/project-x", basic("marcus")
    token = client.post(f"{base}/push-token", headers=auth).json["token"]
    answer = client.post(f"{base}/pushes", json=body, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code in (200, 201, 202), answer.json
    payload = client.get(f"{base}/pushes/{answer.json['id']}", headers=auth).json["payload"]

    assert set(payload) - set(expected) <= ADDITIVE
    assert {k: shape(payload[k]) for k in expected if k != "commits"} == {
        k: shape(v) for k, v in expected.items() if k != "commits"}  # fmt: skip
    [commit] = payload["commits"]
    [wanted] = expected["commits"]
    assert shape(commit) == shape(wanted), (commit, wanted)
    assert commit["message"].rstrip("\n") == wanted["message"].rstrip("\n")
    assert (commit["author"], commit["raw_author"], commit["size"]) == (
        "marcus", "Marcus Bertrand <marcus@somedomain.com>", -1)  # fmt: skip
    assert len(commit["node"]) == 12 and commit["raw_node"].startswith(commit["node"])
    assert len(commit["raw_node"]) == 40 and [len(p) for p in commit["parents"]] == [12]
    assert commit["files"] == wanted["files"] and commit["branch"] == wanted["branch"]
    assert (commit["timestamp"], commit["utctimestamp"]) == (
        wanted["timestamp"], wanted["utctimestamp"])  # fmt: skip
    assert payload["repository"]["scm"] == scm


# -- the services resource ---------------------------------------------------------------


def service_answer(body: Any, wanted: Any) -> None:
    """``body`` has ``wanted``'s shape, and each field ``wanted`` names has its value."""
    pairs = zip(body if isinstance(body, list) else [body],
                wanted if isinstance(wanted, list) else [wanted], strict=True)  # fmt: skip
    for got, want in pairs:
        assert shape(got) == shape(want), (got, want)
        assert got["service"]["type"] == want["service"]["type"]
        values = {f["name"]: f["value"] for f in got["service"]["fields"]}
        for field in want["service"]["fields"]:
            assert values[field["name"]] == field["value"], (field, values)


@pytest.fixture
def repo(client: FlaskClient, seed: Seeder) -> Repo:
    return Repo(client, seed)


def call(repo: Repo, case: str, **ids: int) -> Any:
    request = example(f"services_{case}.json")["request"]
    path = request["path"].replace("/1.0/repositories/{accountname}/{repo_slug}/services", SERVICES)
    path = path.replace("{id}", str(ids.get("id", "")))
    return repo.client.open(path, method=request["method"], data=request.get("form"),
                            headers={**repo.auth, **FORM})  # fmt: skip


def test_the_services_resource_answers_in_the_contract_s_shapes(repo: Repo) -> None:
    created = call(repo, "post")
    wanted = example("services_post.json")["response"]
    assert created.status_code == wanted["status"], created.json
    service_answer(created.json, wanted["body"])
    service_id = created.json["id"]
    assert isinstance(service_id, int)

    got = call(repo, "get", id=service_id)
    assert got.status_code == 200 and isinstance(got.json, list) and len(got.json) == 1
    assert shape(got.json[0]["service"]["fields"][0]) == shape({"name": "", "value": ""})

    updated = call(repo, "put", id=service_id)
    wanted = example("services_put.json")["response"]
    assert updated.status_code == wanted["status"], updated.json
    service_answer(updated.json, wanted["body"])

    [email_example, post_example] = example("services_list.json")["response"]["body"]
    repo.add_service("type=email&Email=mcatalbas%40atlassian.com")
    listed = call(repo, "list")
    assert listed.status_code == 200
    by_type = {s["service"]["type"]: s for s in listed.json}
    service_answer(by_type["Email"], email_example)
    assert shape(by_type["POST"]["service"]["fields"][0]) == shape(
        post_example["service"]["fields"][0])  # fmt: skip

    deleted = call(repo, "delete", id=service_id)
    assert deleted.status_code == example("services_delete.json")["response"]["status"]
    assert call(repo, "get", id=service_id).status_code == 404


def test_a_service_s_structure_names_its_fields_by_label(repo: Repo) -> None:
    structure = example("services_structure.json")
    answer = repo.client.post(SERVICES, data="type=basecamp", headers={**repo.auth, **FORM})
    assert answer.status_code == 200, answer.json
    assert set(answer.json) == set(structure) and answer.json["service"]["type"] == "Basecamp"
    names = {f["name"] for f in answer.json["service"]["fields"]}
    assert {f["name"] for f in structure["service"]["fields"]} <= names
    fields = answer.json["service"]["fields"]
    assert all(shape(f) == {"name": "str", "value": "str"} for f in fields)
