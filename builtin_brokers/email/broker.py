"""Email: one mail per push to the service's addresses (the Email
subject rules, docs/design.md).

One changeset: ``commit/<project>: <user>: <commit msg>``; two or more:
``commit/<project>: <x> new changesets`` with every changeset in the body. The
platform sends it From ``commits-noreply@<its mail domain>``.

Runs under the sandbox's RestrictedPython policy: no names starting with ``_``.
"""

from brokerage_sdk import (
    BaseBroker,
    commit_mail_body,
    commit_mail_subject,
    mail_recipients,
    send_mail,
)


class EmailBroker(BaseBroker):
    diffs = False

    def handle(self, payload):
        to = mail_recipients(self.get_local("Email"))
        if not payload.get("commits"):
            return {"message": "no changesets; nothing sent"}
        subject = commit_mail_subject(payload)
        answer = send_mail(to, subject, commit_mail_body(payload, diffs=self.diffs))
        self.log.info("mailed %s to %d recipient(s)", subject, len(to))
        return {
            "message": f"mailed {len(to)} recipient(s): {subject}",
            "message_id": answer.get("message_id"),
            "subject": subject,
        }
