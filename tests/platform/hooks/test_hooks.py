"""The git post-receive hook, end to end: real bare repository, real ``git push``."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner

from brokerage.platform.hooks import config as hook_config
from brokerage.platform.hooks import git as hook_git
from brokerage.platform.hooks import main as hooks
from brokerage.platform.hooks import patches as hook_patches
from brokerage.platform.hooks import push as hook_push
from brokerage.platform.hooks import spool as hook_spool
from brokerage.platform.hooks.cli import hook
from tests.platform.hooks.hook_fixtures import GitRepos, Receiver, install_hook, run


def test_one_commit_is_sent_in_the_seed_shape(git_repos: GitRepos, receiver: Receiver) -> None:
    sha = git_repos.commit("Added some more things to somefile.py", {"somefile.py": "x\n"})

    git_repos.push("main")

    [push] = receiver.pushes
    assert push["scm"] == "git"
    assert push["user"] == "pusher"
    assert push["truncated"] is False
    assert push["refs"] == [{"ref": "refs/heads/main", "type": "branch", "old": None, "new": sha}]
    assert push["commits"] == [
        {
            "author": "marcus",
            "branch": "main",
            "files": [{"file": "somefile.py", "type": "added"}],
            "message": "Added some more things to somefile.py\n",
            "node": sha[:12],
            "parents": [],
            "raw_author": "Marcus Bertrand <marcus@somedomain.com>",
            "raw_node": sha,
            "revision": None,
            "size": -1,
            "timestamp": "2012-05-30 06:07:03",
            "utctimestamp": "2012-05-30 04:07:03+00:00",
        }
    ]
    assert git_repos.spool.pending() == []


def test_several_commits_oldest_first_with_change_types(
    git_repos: GitRepos, receiver: Receiver
) -> None:
    base = git_repos.commit("base", {"a.txt": "a\n", "b.txt": "b\n"})
    git_repos.push("main")
    first = git_repos.commit("edit a, drop b", {"a.txt": "a2\n", "b.txt": None})
    second = git_repos.commit("add c", {"dir/c.txt": "c\n"}, date="2012-05-30 23:30:00 -0500")

    git_repos.push("main")

    push = receiver.pushes[1]
    assert push["refs"] == [
        {"ref": "refs/heads/main", "type": "branch", "old": base, "new": second}
    ]
    assert [c["raw_node"] for c in push["commits"]] == [first, second]
    assert push["commits"][0]["files"] == [
        {"file": "a.txt", "type": "modified"},
        {"file": "b.txt", "type": "removed"},
    ]
    assert push["commits"][0]["parents"] == [base[:12]]
    assert push["commits"][1]["files"] == [{"file": "dir/c.txt", "type": "added"}]
    assert push["commits"][1]["timestamp"] == "2012-05-30 23:30:00"
    assert push["commits"][1]["utctimestamp"] == "2012-05-31 04:30:00+00:00"


def test_merge_commit_lists_both_parents(git_repos: GitRepos, receiver: Receiver) -> None:
    base = git_repos.commit("base", {"a.txt": "a\n"})
    git_repos.git("checkout", "-q", "-b", "feature")
    feature = git_repos.commit("feature work", {"f.txt": "f\n"})
    git_repos.git("checkout", "-q", "main")
    mainline = git_repos.commit("main work", {"m.txt": "m\n"})
    git_repos.git("merge", "-q", "--no-ff", "--no-edit", "feature")
    merge = git_repos.git("rev-parse", "HEAD").strip()

    git_repos.push("main", "feature")

    [push] = receiver.pushes
    by_node = {c["raw_node"]: c for c in push["commits"]}
    assert set(by_node) == {base, feature, mainline, merge}
    assert by_node[merge]["parents"] == [mainline[:12], feature[:12]]
    assert by_node[merge]["files"] == [{"file": "f.txt", "type": "added"}]  # vs first parent
    order = [c["raw_node"] for c in push["commits"]]
    assert order[0] == base and order[-1] == merge
    assert by_node[merge]["branch"] == "main"
    assert by_node[mainline]["branch"] == "main"
    assert by_node[feature]["branch"] == "feature"  # its own branch line, not main's
    assert {r["ref"] for r in push["refs"]} == {"refs/heads/main", "refs/heads/feature"}


def test_new_branch_of_old_commits_sends_no_commits(
    git_repos: GitRepos, receiver: Receiver
) -> None:
    git_repos.commit("one", {"a.txt": "1\n"})
    tip = git_repos.commit("two", {"a.txt": "2\n"})
    git_repos.push("main")
    git_repos.git("branch", "copy", "HEAD~1")

    git_repos.push("copy")

    push = receiver.pushes[1]
    assert push["commits"] == []
    assert push["refs"][0]["ref"] == "refs/heads/copy"
    assert push["refs"][0]["old"] is None
    assert push["refs"][0]["new"] != tip


def test_branch_made_of_old_and_new_commits_sends_only_the_new(
    git_repos: GitRepos, receiver: Receiver
) -> None:
    git_repos.commit("one", {"a.txt": "1\n"})
    git_repos.push("main")
    git_repos.git("checkout", "-q", "-b", "topic")
    new = git_repos.commit("topic work", {"t.txt": "t\n"})

    git_repos.push("topic")

    assert [c["raw_node"] for c in receiver.pushes[1]["commits"]] == [new]
    assert receiver.pushes[1]["commits"][0]["branch"] == "topic"


def test_tags_are_refs_and_bring_no_old_commits(git_repos: GitRepos, receiver: Receiver) -> None:
    sha = git_repos.commit("release", {"a.txt": "1\n"})
    git_repos.push("main")
    git_repos.git("tag", "v1.0")
    git_repos.git("tag", "-a", "-m", "annotated", "v1.1")
    tag_object = git_repos.git("rev-parse", "v1.1").strip()

    git_repos.push("--tags")

    push = receiver.pushes[1]
    assert push["commits"] == []
    assert push["refs"] == [
        {"ref": "refs/tags/v1.0", "type": "tag", "old": None, "new": sha},
        {"ref": "refs/tags/v1.1", "type": "tag", "old": None, "new": tag_object},
    ]


def test_tag_of_an_unpushed_commit_sends_it_without_a_branch(
    git_repos: GitRepos, receiver: Receiver
) -> None:
    git_repos.commit("one", {"a.txt": "1\n"})
    git_repos.push("main")
    detached = git_repos.commit("only tagged", {"b.txt": "2\n"})
    git_repos.git("tag", "v2")
    git_repos.git("reset", "-q", "--hard", "HEAD~1")

    git_repos.push("v2")

    [commit] = receiver.pushes[1]["commits"]
    assert commit["raw_node"] == detached
    assert commit["branch"] is None


def test_branch_deletion_sends_the_ref_and_no_commits(
    git_repos: GitRepos, receiver: Receiver
) -> None:
    git_repos.commit("one", {"a.txt": "1\n"})
    git_repos.push("main")
    git_repos.git("checkout", "-q", "-b", "doomed")
    doomed = git_repos.commit("doomed work", {"d.txt": "d\n"})
    git_repos.push("doomed")

    git_repos.push("--delete", "doomed")

    push = receiver.pushes[2]
    assert push["commits"] == []
    assert push["refs"] == [
        {"ref": "refs/heads/doomed", "type": "branch", "old": doomed, "new": None}
    ]


def test_unicode_author_message_and_file_names(git_repos: GitRepos, receiver: Receiver) -> None:
    git_repos.commit(
        "Fügt Ünïcödé hinzu ✓\n\nclose #12 — 日本語",
        {"données/résumé.txt": "é\n"},
        author="José Müller <jose.muller@exämple.org>",
    )

    git_repos.git("branch", "-m", "main", "fünf")
    git_repos.push("fünf")

    [commit] = receiver.pushes[0]["commits"]
    assert receiver.pushes[0]["refs"][0]["ref"] == "refs/heads/fünf"
    assert commit["branch"] == "fünf"
    assert commit["raw_author"] == "José Müller <jose.muller@exämple.org>"
    assert commit["author"] == "jose.muller"
    assert commit["message"] == "Fügt Ünïcödé hinzu ✓\n\nclose #12 — 日本語\n"
    assert commit["files"] == [{"file": "données/résumé.txt", "type": "added"}]


def test_patches_are_sent_per_commit(git_repos: GitRepos, receiver: Receiver) -> None:
    sha = git_repos.commit("one", {"a.txt": "hello\n"})

    git_repos.push("main")

    patch = receiver.pushes[0]["patches"][sha]
    assert "+++ b/a.txt" in patch and "+hello" in patch


def test_huge_patch_is_cut_with_a_marker(git_repos: GitRepos, receiver: Receiver) -> None:
    big = "".join(f"line {n} {'x' * 60}\n" for n in range(3000))  # ~200 KiB
    sha = git_repos.commit("big", {"big.txt": big})

    git_repos.push("main")

    patch = receiver.pushes[0]["patches"][sha]
    assert len(patch.encode()) <= hook_patches.MAX_PATCH_BYTES
    assert patch.endswith(hook_patches.PATCH_TRUNCATED_LINE)


def test_patches_can_be_turned_off(git_repos: GitRepos, receiver: Receiver) -> None:
    git_repos.git("--git-dir", str(git_repos.server), "config", "brokerage.patches", "false")
    git_repos.commit("one", {"a.txt": "1\n"})

    git_repos.push("main")

    assert "patches" not in receiver.pushes[0]


def test_too_many_commits_keeps_the_newest_and_sets_truncated(
    git_repos: GitRepos, receiver: Receiver
) -> None:
    count = hook_push.MAX_COMMITS + 5
    _fast_import(git_repos, count)

    git_repos.push("main")

    [push] = receiver.pushes
    assert push["truncated"] is True
    assert len(push["commits"]) == hook_push.MAX_COMMITS
    assert push["commits"][-1]["message"] == f"c{count - 1}"
    assert push["commits"][0]["message"] == f"c{count - hook_push.MAX_COMMITS}"


def _fast_import(repos: GitRepos, count: int) -> None:
    lines = []
    for n in range(count):
        message = f"c{n}".encode()
        lines.append(b"commit refs/heads/main\n")
        lines.append(f"mark :{n + 1}\n".encode())
        lines.append(f"author A <a@x> {1338350000 + n} +0000\n".encode())
        lines.append(f"committer A <a@x> {1338350000 + n} +0000\n".encode())
        lines.append(f"data {len(message)}\n".encode() + message + b"\n")
        if n:
            lines.append(f"from :{n}\n".encode())
    subprocess.run(
        ["git", "fast-import", "--quiet"], cwd=repos.clone, input=b"".join(lines), check=True
    )
    subprocess.run(["git", "reset", "-q", "--hard", "main"], cwd=repos.clone, check=True)


def test_platform_down_spools_and_flush_delivers_in_order(
    git_repos: GitRepos, receiver: Receiver, dead_url: str
) -> None:
    install_hook(git_repos.server, dead_url)
    first = git_repos.commit("first", {"a.txt": "1\n"})
    output = git_repos.push("main")
    second = git_repos.commit("second", {"a.txt": "2\n"})
    git_repos.push("main")

    assert "remote: brokerage:" in output and "spooled" in output
    assert len(git_repos.spool.pending()) == 2
    assert receiver.pushes == []

    install_hook(git_repos.server, receiver.url)  # the platform is back
    result = CliRunner().invoke(hook, ["flush", "--repo-path", str(git_repos.server)])

    assert result.exit_code == 0, result.output
    assert "delivered 2" in result.output
    assert [p["commits"][0]["raw_node"] for p in receiver.pushes] == [first, second]
    assert git_repos.spool.pending() == []


def test_next_push_flushes_spooled_pushes_first(git_repos: GitRepos, receiver: Receiver) -> None:
    receiver.answer(503, {"error": {"message": "maintenance"}})
    first = git_repos.commit("first", {"a.txt": "1\n"})
    output = git_repos.push("main")
    assert "HTTP 503" in output
    assert len(git_repos.spool.pending()) == 1

    second = git_repos.commit("second", {"a.txt": "2\n"})
    git_repos.push("main")

    assert [p["commits"][0]["raw_node"] for p in receiver.pushes] == [first, second]
    assert git_repos.spool.pending() == []


def test_a_resent_push_keeps_its_push_id(git_repos: GitRepos, receiver: Receiver) -> None:
    receiver.answer(500)
    git_repos.commit("first", {"a.txt": "1\n"})
    git_repos.push("main")
    [spooled] = git_repos.spool.pending()
    push_id = json.loads(spooled.read_text())["push_id"]

    hooks.flush_repository(git_repos.server)

    assert [p["push_id"] for p in receiver.pushes] == [push_id]


def test_refused_push_is_kept_aside_and_the_pusher_told(
    git_repos: GitRepos, receiver: Receiver
) -> None:
    receiver.answer(400, {"error": {"message": "commits/0/node: bad node", "status": 400}})
    git_repos.commit("first", {"a.txt": "1\n"})

    output = git_repos.push("main")

    assert "refused this push (HTTP 400: commits/0/node: bad node)" in output
    assert git_repos.spool.pending() == []
    [kept] = git_repos.spool.rejected()
    assert "bad node" in kept.with_suffix(".reason.txt").read_text()

    second = git_repos.commit("second", {"a.txt": "2\n"})
    git_repos.push("main")  # later pushes go through; the refused one is not retried
    assert [p["commits"][0]["raw_node"] for p in receiver.pushes] == [second]

    report = hooks.flush_repository(git_repos.server, include_rejected=True)
    assert len(report.delivered) == 1
    assert git_repos.spool.rejected() == []


def test_bad_token_is_a_refusal_not_a_retry(git_repos: GitRepos, receiver: Receiver) -> None:
    git_repos.git("--git-dir", str(git_repos.server), "config", "brokerage.token", "wrong")
    git_repos.commit("first", {"a.txt": "1\n"})

    output = git_repos.push("main")

    assert "HTTP 401: bad push token" in output
    assert len(git_repos.spool.rejected()) == 1


def test_slow_platform_times_out_and_spools(git_repos: GitRepos) -> None:
    # accepts connections, never answers
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True).start()
    install_hook(git_repos.server, f"http://127.0.0.1:{port}")
    git_repos.git("--git-dir", str(git_repos.server), "config", "brokerage.timeout", "0.5")
    git_repos.commit("first", {"a.txt": "1\n"})

    output = git_repos.push("main")

    assert "timed out" in output
    assert len(git_repos.spool.pending()) == 1
    listener.close()
    for connection in accepted:
        connection.close()


def test_unconfigured_repository_spools_without_failing(
    git_repos: GitRepos, receiver: Receiver
) -> None:
    git_repos.git("--git-dir", str(git_repos.server), "config", "--unset", "brokerage.url")
    git_repos.commit("first", {"a.txt": "1\n"})

    output = git_repos.push("main")

    assert "brokerage.url missing" in output
    assert len(git_repos.spool.pending()) == 1


def _collect_main(git_repos: GitRepos, old: str | None, new: str) -> hook_push.Push:
    """Run the collection in-process (as post-receive would after this update of main)."""
    update = hook_push.RefUpdate("refs/heads/main", hook_push.RefType.BRANCH, old, new)
    return hook_git.collect_git_push(git_repos.server, [update], patches=True)


def test_file_list_cap_sets_truncated(
    git_repos: GitRepos, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    sha = git_repos.commit("three files", {"a": "1\n", "b": "2\n", "c": "3\n"})
    git_repos.push("main")
    monkeypatch.setattr(hook_push, "MAX_FILES_PER_COMMIT", 2)

    push = _collect_main(git_repos, None, sha)

    assert push.truncated is True
    assert [f["file"] for f in push.commits[0]["files"]] == ["a", "b"]


def test_patch_budget_per_push_leaves_later_commits_without_patch(
    git_repos: GitRepos, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = git_repos.commit("one", {"a.txt": "x" * 300 + "\n"})
    second = git_repos.commit("two", {"b.txt": "y" * 300 + "\n"})
    git_repos.push("main")
    monkeypatch.setattr(hook_patches, "MAX_PATCH_BYTES_PER_PUSH", 500)

    push = _collect_main(git_repos, None, second)

    assert push.patches is not None
    assert list(push.patches) == [first]
    assert push.truncated is False  # patches have their own cap, outside `truncated`


def test_concurrent_flush_leaves_the_push_spooled(git_repos: GitRepos, receiver: Receiver) -> None:
    config = hook_config.read_config(hook_config.open_repository(git_repos.server))
    git_repos.spool.add({"push_id": "0b9f3e4c-8a43-4a1e-9d3c-6d1c2b7a9e10"})
    out = io.StringIO()

    with git_repos.spool.lock() as held:
        assert held
        with git_repos.spool.lock(wait=0) as second:
            assert second is False
        # what a second hook run sees while the first is flushing:
        report = hook_spool.flush(config, git_repos.spool, out=out, lock_wait=0)

    assert "another hook is sending" in out.getvalue()
    assert report.waiting == 1
    assert receiver.pushes == []


def test_force_push_sends_only_the_rewritten_commits(
    git_repos: GitRepos, receiver: Receiver
) -> None:
    base = git_repos.commit("base", {"a.txt": "1\n"})
    old_tip = git_repos.commit("to be rewritten", {"a.txt": "2\n"})
    git_repos.push("main")
    git_repos.git("reset", "-q", "--hard", base)
    rewritten = git_repos.commit("rewritten", {"a.txt": "3\n"})

    git_repos.push("--force", "main")

    push = receiver.pushes[1]
    assert [c["raw_node"] for c in push["commits"]] == [rewritten]
    assert push["refs"][0]["old"] == old_tip


def test_an_oversized_body_drops_patches_then_oldest_commits(
    git_repos: GitRepos, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    shas = [git_repos.commit("m" * 2000, {f"f{n}.txt": f"{n}\n"}) for n in range(5)]
    git_repos.push("main")
    push = _collect_main(git_repos, None, shas[-1])
    monkeypatch.setattr(hook_push, "MAX_BODY_BYTES", 6000)

    body = push.body()

    assert len(json.dumps(body, ensure_ascii=False).encode()) <= 6000
    assert "patches" not in body
    assert body["truncated"] is True
    assert [c["raw_node"] for c in body["commits"]] == shas[-len(body["commits"]) :]
    assert 0 < len(body["commits"]) < 5


def test_concurrent_pushes_are_each_delivered_once(
    git_repos: GitRepos, receiver: Receiver, tmp_path: Path
) -> None:
    git_repos.commit("base", {"a.txt": "0\n"})
    git_repos.push("main")
    clones = []
    for name in ("left", "right"):
        clone = tmp_path / name
        run(["git", "clone", "-q", str(git_repos.server), str(clone)], tmp_path)
        run(["git", "checkout", "-q", "-b", name], clone)
        (clone / f"{name}.txt").write_text(name)
        run(["git", "add", "."], clone)
        run(["git", "commit", "-q", "-m", name], clone)
        clones.append(clone)

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda c: run(["git", "push", "-q", "origin", c.name], c), clones))

    later = receiver.pushes[1:]
    assert sorted(p["refs"][0]["ref"] for p in later) == ["refs/heads/left", "refs/heads/right"]
    assert len({p["push_id"] for p in receiver.pushes}) == 3
    assert git_repos.spool.pending() == []
