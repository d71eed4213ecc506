"""CIA.vc through the real sandbox and gateway against a local fake of its XML-RPC hub
(``hub.deliver`` with a CIA ``<message>``), parsed with the standard library's xmlrpc."""

from __future__ import annotations

import pytest

from tests.builtin_brokers.cases import Broker, Failure, failure_id, run_failure
from tests.builtin_brokers.harness import BrokerRig, assert_failed, assert_succeeded

HOST = "cia.test"
EGRESS = [HOST, "down.test"]


def service(rig: BrokerRig, **overrides: str) -> dict[str, str]:
    return {"Project": "project-x", "Server URL": rig.url(HOST, "/RPC2"), **overrides}


def test_one_commit_is_one_message(rig: BrokerRig) -> None:
    assert_succeeded(rig.run("cia", "1_commit", service(rig), EGRESS))
    (message,) = rig.fake(HOST).messages
    assert message.findtext("source/project") == "project-x"
    assert message.find("source/module") is None
    assert message.findtext("source/branch") == "master"
    assert message.findtext("timestamp") == "1338349856"  # 2012-05-30 03:50:56 UTC
    assert message.findtext("body/commit/author") == "marcus"
    assert message.findtext("body/commit/revision") == "a1b2c3d4e5f6"
    assert message.findtext("body/commit/log") == "Added some more things to somefile.py"
    files = message.findall("body/commit/files/file")
    assert [(f.get("action"), f.text) for f in files] == [("modify", "somefile.py")]
    assert message.findtext("body/commit/url", "").endswith(
        "/commits/a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
    )
    assert rig.requests[0].headers["content-type"] == "text/xml"


def test_three_commits_are_three_messages_with_the_module(rig: BrokerRig) -> None:
    run = rig.run("cia", "3_commits", service(rig, Module="core"), EGRESS)
    assert assert_succeeded(run)["delivered"] == 3
    messages = rig.fake(HOST).messages
    assert [m.findtext("source/module") for m in messages] == ["core"] * 3
    assert [m.findtext("source/branch") for m in messages] == ["master", "master", "feature"]
    second = [(f.get("action"), f.text) for f in messages[1].findall("body/commit/files/file")]
    assert second == [("modify", "src/frob.py"), ("add", "docs/frob.md")]
    assert messages[2].findtext("body/commit/log") == "Unicode: naïve café ☕"


BROKER = Broker("cia", HOST, service, "messages")
FAILURES = [
    Failure("no-project", "configuration", "Project: the project name CIA.vc knows is required",
            {"Project": ""}),
    Failure("url-without-scheme", "configuration", "Server URL:", {"Server URL": "cia.test/RPC2"}),
    Failure("wrong-path", "configuration", "answered 404", {"Server URL": "{url}/xmlrpc"}),
    Failure("cia-failing", "transient", "answered 503", status=503),
    Failure("cia-unreachable", "transient", "502", {"Server URL": "{dead}/RPC2"}),
]  # fmt: skip


@pytest.mark.parametrize("case", FAILURES, ids=failure_id)
def test_failures(rig: BrokerRig, case: Failure) -> None:
    run_failure(rig, BROKER, case)


def test_a_fault_is_a_configuration_error(rig: BrokerRig) -> None:
    rig.fake(HOST).refuse = "unknown project <project-x> & co"
    result = rig.run("cia", "1_commit", service(rig), EGRESS)
    assert_failed(result, "configuration", "CIA refused the message for a1b2c3d4e5f6: "
                                           "unknown project <project-x> & co")  # fmt: skip


def test_markup_in_messages_and_paths_arrives_intact(rig: BrokerRig) -> None:
    assert_succeeded(rig.run("cia", "markup", service(rig), EGRESS))
    (message,) = rig.fake(HOST).messages
    assert message.findtext("body/commit/author") == "o'brien & co"
    assert message.findtext("body/commit/log") == (
        "Escape <b>this</b> & \"that\" 'too'  ]]> done\n\nSecond line & more <tags>"
    )
    assert message.findtext("body/commit/files/file") == "dir/a&b <c>.txt"
