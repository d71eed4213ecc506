"""The Mercurial changegroup hook, end to end: real ``hg push`` into a repository with our hook."""

from __future__ import annotations

from tests.platform.hooks.hook_fixtures import HgRepos, Receiver, install_hook


def test_push_sends_revisions_branches_and_files(hg_repos: HgRepos, receiver: Receiver) -> None:
    first = hg_repos.commit("Added some featureA things", {"somefile.py": "a\n", "old.txt": "o\n"})
    hg_repos.hg("branch", "-q", "featureA")
    second = hg_repos.commit(
        "featureA work",
        {"somefile.py": "b\n", "old.txt": None, "new.txt": "n\n"},
        date="2012-05-30 23:30:00 -0500",
    )

    hg_repos.push("--new-branch")

    [push] = receiver.pushes
    assert push["scm"] == "hg"
    assert push["user"] == "pusher"
    assert push["truncated"] is False
    assert push["commits"][0] == {
        "author": "marcus",
        "branch": "default",
        "files": [
            {"file": "old.txt", "type": "added"},
            {"file": "somefile.py", "type": "added"},
        ],
        "message": "Added some featureA things",
        "node": first[:12],
        "parents": [],
        "raw_author": "Marcus Bertrand <marcus@somedomain.com>",
        "raw_node": first,
        "revision": 0,
        "size": -1,
        "timestamp": "2012-05-30 06:07:03",
        "utctimestamp": "2012-05-30 04:07:03+00:00",
    }
    later = push["commits"][1]
    assert (later["raw_node"], later["revision"], later["branch"]) == (second, 1, "featureA")
    assert later["parents"] == [first[:12]]
    assert sorted(later["files"], key=lambda f: f["file"]) == [
        {"file": "new.txt", "type": "added"},
        {"file": "old.txt", "type": "removed"},
        {"file": "somefile.py", "type": "modified"},
    ]
    assert later["timestamp"] == "2012-05-30 23:30:00"
    assert later["utctimestamp"] == "2012-05-31 04:30:00+00:00"
    assert push["refs"] == [
        {"ref": "default", "type": "branch", "old": None, "new": first},
        {"ref": "featureA", "type": "branch", "old": None, "new": second},
    ]
    assert "+++ b/new.txt" in push["patches"][second]


def test_second_push_sends_only_new_changesets(hg_repos: HgRepos, receiver: Receiver) -> None:
    first = hg_repos.commit("one", {"a.txt": "1\n"})
    hg_repos.push()
    second = hg_repos.commit("two ✓ für José", {"a.txt": "2\n"}, user="José Müller <jose@x.org>")
    third = hg_repos.commit("three", {"a.txt": "3\n"})

    hg_repos.push()

    push = receiver.pushes[1]
    assert [(c["raw_node"], c["revision"]) for c in push["commits"]] == [(second, 1), (third, 2)]
    assert push["commits"][0]["message"] == "two ✓ für José"
    assert push["commits"][0]["raw_author"] == "José Müller <jose@x.org>"
    assert push["commits"][0]["author"] == "jose"
    assert push["refs"] == [{"ref": "default", "type": "branch", "old": first, "new": third}]


def test_merge_changeset_has_two_parents(hg_repos: HgRepos, receiver: Receiver) -> None:
    base = hg_repos.commit("base", {"a.txt": "1\n"})
    hg_repos.hg("branch", "-q", "feature")
    feature = hg_repos.commit("feature", {"f.txt": "f\n"})
    hg_repos.hg("update", "-q", "default")
    mainline = hg_repos.commit("main", {"m.txt": "m\n"})
    hg_repos.hg("merge", "-q", "feature")
    merge = hg_repos.commit("merge feature", {})

    hg_repos.push("--new-branch")

    by_node = {c["raw_node"]: c for c in receiver.pushes[0]["commits"]}
    assert set(by_node) == {base, feature, mainline, merge}
    assert by_node[merge]["parents"] == [mainline[:12], feature[:12]]
    assert by_node[merge]["branch"] == "default"


def test_platform_down_spools_then_next_push_flushes(
    hg_repos: HgRepos, receiver: Receiver, dead_url: str
) -> None:
    install_hook(hg_repos.server, dead_url)
    first = hg_repos.commit("one", {"a.txt": "1\n"})
    output = hg_repos.push()
    assert "spooled" in output
    assert len(hg_repos.spool.pending()) == 1

    install_hook(hg_repos.server, receiver.url)
    second = hg_repos.commit("two", {"a.txt": "2\n"})
    hg_repos.push()

    assert [p["commits"][0]["raw_node"] for p in receiver.pushes] == [first, second]
    assert hg_repos.spool.pending() == []


def test_refusal_is_shown_and_kept(hg_repos: HgRepos, receiver: Receiver) -> None:
    receiver.answer(422, {"error": {"message": "unknown repository", "status": 422}})
    hg_repos.commit("one", {"a.txt": "1\n"})

    output = hg_repos.push()

    assert "HTTP 422: unknown repository" in output
    assert len(hg_repos.spool.rejected()) == 1
