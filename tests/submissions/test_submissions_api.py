"""The vendor API: upload, list, show, report, draft and submit, withdraw; verification jobs."""

from __future__ import annotations

from sqlalchemy import select

from brokerage.submissions import bundles, lifecycle
from brokerage.submissions.artifacts import store_from_config
from brokerage.submissions.models import BrokerVersion
from brokerage.submissions.package import pack
from brokerage.submissions.verification import verify_version
from tests.submissions.conftest import archive, artifacts, fake_factory, package_files, upload


def test_upload_stores_the_package_and_queues_verification(app, client, people, runtime) -> None:
    response = upload(client, people.vendor, archive(package_files()))
    assert response.status_code == 201, response.json
    body = response.json
    assert (body["name"], body["version"], body["state"], body["queued"]) == (
        "acme-hook",
        "1.0.0",
        "submitted",
        True,
    )
    assert body["artifact_digest"] in artifacts(app)
    assert [(e["from"], e["to"], e["by"]) for e in body["events"]] == [
        (None, "draft", "acme"),
        ("draft", "submitted", "acme"),
    ]
    assert runtime.queue.fetch_job(f"verify_{body['id']}") is not None
    listed = client.get("/1.0/submissions", headers=people.vendor).json
    assert [(s["id"], s["state"], s["report"]) for s in listed] == [(body["id"], "submitted", None)]
    assert client.get("/1.0/submissions", headers=people.other_vendor).json == []
    missing = client.get(f"/1.0/submissions/{body['id']}/report", headers=people.vendor)
    assert missing.status_code == 404
    assert (
        missing.json["error"]["message"]
        == f"submission {body['id']} has no verification report yet (submitted)"
    )


def test_verification_passes_and_the_report_is_kept(client, people, verify_with) -> None:
    submission = upload(client, people.vendor, archive(package_files())).json["id"]
    verify_with(fake_factory())
    shown = client.get(f"/1.0/submissions/{submission}", headers=people.vendor).json
    assert shown["state"] == "awaiting_review"
    assert [(e["to"], e["by"], e["reason"]) for e in shown["events"][2:]] == [
        ("verifying", "platform", "verification started"),
        ("awaiting_review", "platform", "every check passed"),
    ]
    report = client.get(f"/1.0/submissions/{submission}/report", headers=people.vendor).json
    assert [(c["name"], c["passed"]) for c in report["checks"]] == [
        ("schema", True),
        ("size", True),
        ("restricted_python", True),
        ("imports", True),
        ("secrets", True),
        ("fields", True),
        ("dynamic", True),
    ]
    assert report["transcript"][0]["variant"] == "one_commit" and report["backend"] == "fake"
    assert [s["id"] for s in client.get("/1.0/reviews", headers=people.reviewer).json] == [
        submission
    ]
    assert client.get("/1.0/reviews", headers=people.vendor).status_code == 403


def test_static_failures_skip_the_sandbox(client, people, verify_with) -> None:
    code = (
        package_files()["broker.py"]
        .decode()
        .replace('self.get_local("URL")', 'payload["service"]["Endpoint"]')
    )
    submission = upload(client, people.vendor, archive(package_files(code=code))).json["id"]
    ran = []
    verify_with(fake_factory(lambda *args: ran.append(args)))
    report = client.get(f"/1.0/submissions/{submission}/report", headers=people.vendor).json
    failed = {c["name"]: c for c in report["checks"] if not c["passed"]}
    assert list(failed) == ["fields"]
    [finding] = failed["fields"]["findings"]
    assert (finding["file"], finding["line"]) == ("broker.py", 7)
    assert finding["message"].startswith(
        "reads service field 'Endpoint', which the manifest does not declare"
    )
    assert report["checks"][-1] == {
        "name": "dynamic",
        "passed": True,
        "skipped": True,
        "summary": "not run: the static checks failed",
        "findings": [],
    }
    assert ran == []
    state = client.get(f"/1.0/submissions/{submission}", headers=people.vendor).json["state"]
    assert state == "verification_failed"


def test_a_draft_is_submitted_later_and_can_be_requeued(client, people, runtime) -> None:
    draft = upload(client, people.vendor, archive(package_files()), draft=True).json
    assert (draft["state"], draft["queued"]) == ("draft", False)
    requeue = client.post(f"/1.0/submissions/{draft['id']}/verify", headers=people.vendor)
    assert requeue.status_code == 409
    submitted = client.post(f"/1.0/submissions/{draft['id']}/submit", headers=people.vendor).json
    assert (submitted["state"], submitted["queued"]) == ("submitted", True)
    again = client.post(f"/1.0/submissions/{draft['id']}/verify", headers=people.vendor).json
    assert again["queued"] is True


def test_withdrawn_while_verifying_keeps_the_report_but_not_the_move(
    app, client, people, runtime
) -> None:
    submission = upload(client, people.vendor, archive(package_files())).json["id"]
    store = store_from_config(runtime.config)

    def withdraw_midway(backend_egress):
        with runtime.sessions() as other:
            version = other.get(BrokerVersion, submission)
            lifecycle.withdraw(other, version, version.submitted_by, "changed my mind")
            other.commit()
        return fake_factory()(backend_egress)

    with runtime.sessions() as session:
        version = session.get(BrokerVersion, submission)
        assert verify_version(session, version, store, withdraw_midway) == "withdrawn"
        session.commit()
    shown = client.get(f"/1.0/submissions/{submission}", headers=people.vendor).json
    assert [e["to"] for e in shown["events"]] == ["draft", "submitted", "verifying", "withdrawn"]
    assert client.get(f"/1.0/submissions/{submission}/report", headers=people.vendor).json["passed"]


def test_a_vendor_version_loads_from_the_artifact_store(app, client, people, runtime) -> None:
    files = package_files()
    submission = upload(client, people.vendor, pack(files)).json["id"]
    with runtime.sessions() as session:
        version = session.scalar(select(BrokerVersion).where(BrokerVersion.id == submission))
        bundle = bundles.load(version, store_from_config(runtime.config))
        assert bundle.digest == version.digest
    assert sorted(bundle.files) == ["README.md", "broker.py", "manifest.json"]
    assert bundle.files["broker.py"] == files["broker.py"]


def test_schema_files_and_multipart_upload(client, people) -> None:
    assert client.get("/1.0/submissions/schema").json["title"] == "Brokerage broker manifest"
    from io import BytesIO

    response = client.post(
        "/1.0/submissions",
        data={"package": (BytesIO(archive(package_files())), "p.tgz")},
        headers=people.vendor,
        content_type="multipart/form-data",
    )
    assert response.status_code == 201, response.json
    files = client.get(
        f"/1.0/submissions/{response.json['id']}/files", headers=people.reviewer
    ).json
    assert sorted(files) == [
        "README.md",
        "broker.py",
        "fixtures/push__one_commit.json",
        "manifest.json",
    ]


def test_a_delivery_worker_runs_verification_jobs(client, people, runtime, monkeypatch) -> None:
    from rq import SimpleWorker
    from rq.serializers import JSONSerializer

    from brokerage.platform.deliveries import jobs as delivery_tasks
    from brokerage.platform.deliveries import verification_jobs as tasks
    from brokerage.platform.deliveries.dispatch import Dispatcher
    from brokerage.sandbox.fake import FakeBackend

    monkeypatch.setitem(runtime.config, "SANDBOX_BACKEND", "fake")
    submission = upload(client, people.vendor, archive(package_files())).json["id"]
    tasks.install(None)
    delivery_tasks.install(Dispatcher(runtime, FakeBackend()))  # what `brokerage worker` does
    try:
        worker = SimpleWorker([runtime.queue], connection=runtime.redis, serializer=JSONSerializer)
        worker.work(burst=True, logging_level="WARNING")
    finally:
        delivery_tasks.install(None)
    report = client.get(f"/1.0/submissions/{submission}/report", headers=people.vendor).json
    dynamic = report["checks"][-1]
    assert (report["backend"], dynamic["name"], dynamic["passed"]) == ("fake", "dynamic", False)
    assert dynamic["findings"][0]["message"].startswith("sent nothing")
