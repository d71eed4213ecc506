"""Every refused submission gets a clear error and stores nothing: no row, no artifact."""

from __future__ import annotations

import json
import tarfile

import pytest

from brokerage.submissions import package as packages
from tests.submissions.conftest import (
    MANIFEST,
    archive,
    package_files,
    tar_with,
    upload,
    zip_with,
)


def _refused(response, status: int) -> dict:
    assert response.status_code == status, response.json
    return response.json["error"]


def test_path_traversal_archive_is_refused(client, people, unchanged) -> None:
    with unchanged():
        error = _refused(upload(client, people.vendor, tar_with([("../evil.py", b"x = 1\n")])), 400)
    assert error["message"] == "package refused (1 problem)"
    assert error["problems"] == ["'../evil.py': path traversal ('..')"]


def test_absolute_path_in_a_zip_is_refused(client, people, unchanged) -> None:
    files = {**package_files(), "/etc/cron.d/evil": b"* * * * * root sh\n"}
    with unchanged():
        error = _refused(upload(client, people.vendor, zip_with(files)), 400)
    assert error["problems"] == ["'/etc/cron.d/evil': absolute path"]


def test_symlink_in_a_tar_is_refused(client, people, unchanged) -> None:
    link = tarfile.TarInfo("secrets.txt")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/shadow"
    with unchanged():
        error = _refused(upload(client, people.vendor, tar_with([link])), 400)
    assert error["problems"] == [
        "'secrets.txt': symbolic link to '/etc/shadow'; only regular files and folders are allowed"
    ]


def test_symlink_in_a_zip_is_refused(client, people, unchanged) -> None:
    data = zip_with(package_files(), symlinks={"helper.py": "/etc/passwd"})
    with unchanged():
        error = _refused(upload(client, people.vendor, data), 400)
    assert "'helper.py': symbolic link" in error["problems"][0]


def test_over_the_size_cap_is_refused(client, people, unchanged) -> None:
    big = b"# padding\n" * (packages.MAX_FILE_BYTES // 10 + 1)
    with unchanged():
        error = _refused(upload(client, people.vendor, tar_with([("data/big.txt", big)])), 400)
    assert error["problems"] == [f"data/big.txt: larger than {packages.MAX_FILE_BYTES} bytes"]


def test_too_many_files_are_refused(client, people, unchanged) -> None:
    many = [(f"docs/{n}.md", b"x") for n in range(packages.MAX_FILES)]
    with unchanged():
        error = _refused(upload(client, people.vendor, tar_with(many)), 400)
    assert f"more than {packages.MAX_FILES} files" in error["problems"][0]


def test_not_an_archive_is_refused(client, people, unchanged) -> None:
    with unchanged():
        error = _refused(upload(client, people.vendor, b"just some text"), 400)
    assert error["message"].startswith("not a readable tar or zip archive")


def test_invalid_manifest_names_every_problem(client, people, unchanged) -> None:
    files = package_files(version="1.0", egress=["*", "[1::2::3]"])
    with unchanged():
        error = _refused(upload(client, people.vendor, archive(files)), 400)
    assert error["problems"] == [
        "version: '1.0' is not a semantic version such as 1.0.0 or 2.1.0-beta.1",
        "egress[1]: '[1::2::3]' is no IPv6 address",
    ]


def test_restricted_python_refusal_names_the_lines(client, people, unchanged) -> None:
    code = "import json\n\n_secret = 1\nexec('print(1)')\n"
    with unchanged():
        error = _refused(
            upload(
                client, people.vendor, archive(package_files(code=code, entry_point="broker.py"))
            ),
            400,
        )
    assert error["problems"] == [
        'restricted_python: broker.py:3: "_secret" is an invalid variable name because it starts '
        'with "_"  |  _secret = 1',
        "restricted_python: broker.py:4: Exec calls are not allowed.  |  exec('print(1)')",
    ]


@pytest.mark.parametrize(
    ("second", "message"),
    [
        (
            "1.0.0",
            "acme-hook 1.0.0 was already submitted; every submission needs a new version number",
        ),
        (
            "0.9.0",
            "acme-hook 0.9.0 goes backwards: the newest submitted version is 1.0.0; submit a "
            "version after it",
        ),
        (
            "1.0.0-rc.1",
            "acme-hook 1.0.0-rc.1 goes backwards: the newest submitted version is 1.0.0; "
            "submit a version after it",
        ),
    ],
)
def test_version_repeat_or_backwards_is_refused(client, people, unchanged, second, message) -> None:
    assert upload(client, people.vendor, archive(package_files())).status_code == 201
    with unchanged():
        error = _refused(upload(client, people.vendor, archive(package_files(version=second))), 409)
    assert error["message"] == message


def test_another_vendor_cannot_take_a_broker_name(client, people, unchanged) -> None:
    assert upload(client, people.vendor, archive(package_files())).status_code == 201
    with unchanged():
        error = _refused(
            upload(client, people.other_vendor, archive(package_files(version="2.0.0"))), 409
        )
    assert (
        error["message"]
        == "the broker name 'acme-hook' belongs to another vendor; choose another name"
    )


def test_a_builtin_name_or_title_cannot_be_taken(client, people, unchanged) -> None:
    with unchanged():
        by_name = _refused(upload(client, people.vendor, archive(package_files(name="post"))), 409)
        by_title = _refused(
            upload(client, people.vendor, archive(package_files(title="post"))), 409
        )
    assert (
        by_name["message"] == "the broker name 'post' belongs to the platform; choose another name"
    )
    assert by_title["message"] == "the title 'post' is taken by the broker 'post'"


def test_only_vendors_submit(client, people, unchanged) -> None:
    with unchanged():
        error = _refused(upload(client, people.reviewer, archive(package_files())), 403)
    assert error["message"] == "this needs the vendor role"


def _awaiting(client, people, verify_with, auth) -> int:
    response = upload(client, auth, archive(package_files()))
    assert response.status_code == 201, response.json
    verify_with()
    return int(response.json["id"])


def test_a_vendor_cannot_approve_its_own_submission(client, people, verify_with, unchanged) -> None:
    submission = _awaiting(client, people, verify_with, people.vendor_reviewer)
    path = f"/1.0/submissions/{submission}/decision"
    with unchanged():
        own = client.post(path, json={"decision": "approve"}, headers=people.vendor_reviewer)
        error = _refused(own, 403)
    assert error["message"] == "nobody reviews their own submission (acme-hook 1.0.0 is yours)"


def test_a_plain_vendor_cannot_decide(client, people, verify_with, unchanged) -> None:
    submission = _awaiting(client, people, verify_with, people.vendor)
    with unchanged():
        response = client.post(
            f"/1.0/submissions/{submission}/decision",
            json={"decision": "approve"},
            headers=people.vendor,
        )
        error = _refused(response, 403)
    assert error["message"] == "only reviewers decide on submissions"


def test_a_reviewer_cannot_act_on_a_withdrawn_submission(
    client, people, verify_with, unchanged
) -> None:
    submission = _awaiting(client, people, verify_with, people.vendor)
    withdrawn = client.post(
        f"/1.0/submissions/{submission}/withdraw",
        json={"reason": "found a bug"},
        headers=people.vendor,
    )
    assert withdrawn.json["state"] == "withdrawn"
    with unchanged():
        response = client.post(
            f"/1.0/submissions/{submission}/decision",
            json={"decision": "approve"},
            headers=people.reviewer,
        )
        error = _refused(response, 409)
    assert error["message"] == (
        "a submission that is withdrawn cannot become approved (allowed: none: the state is final)"
    )


def test_another_vendor_cannot_see_or_withdraw(client, people, verify_with, unchanged) -> None:
    submission = _awaiting(client, people, verify_with, people.vendor)
    with unchanged():
        assert (
            client.get(f"/1.0/submissions/{submission}", headers=people.other_vendor).status_code
            == 404
        )
        response = client.post(
            f"/1.0/submissions/{submission}/withdraw", headers=people.other_vendor
        )
        assert response.status_code == 404


def test_a_manifest_that_is_not_json_is_refused(client, people, unchanged) -> None:
    files = {**package_files(), "manifest.json": b'{"name": '}
    with unchanged():
        error = _refused(upload(client, people.vendor, archive(files)), 400)
    assert error["problems"][0].startswith("manifest.json: is not valid JSON")
    assert json.loads(json.dumps(MANIFEST))  # the good manifest stays untouched for other tests
