"""Email Diff: the Email broker's mail with each changeset's diff.

The platform includes the push's patches (``payload["patches"]``, keyed by
raw_node, size-capped by the hook) because the manifest asks for
``repository:read``.

Runs under the sandbox's RestrictedPython policy: no names starting with ``_``.
"""

from brokerage_sdk import (
    BaseBroker,
    commit_mail_body,
    commit_mail_subject,
    mail_recipients,
    send_mail,
)


class EmailDiffBroker(BaseBroker):
    def handle(self, payload):
        to = mail_recipients(self.get_local("Email"))
        if not payload.get("commits"):
            return {"message": "no changesets; nothing sent"}
        subject = commit_mail_subject(payload)
        answer = send_mail(to, subject, commit_mail_body(payload, diffs=True))
        self.log.info("mailed %s with diffs to %d recipient(s)", subject, len(to))
        return {
            "message": f"mailed {len(to)} recipient(s) with diffs: {subject}",
            "message_id": answer.get("message_id"),
            "subject": subject,
        }
