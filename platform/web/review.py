"""The reviewer's pages: the queue (oldest first, paginated) and one submission led by a
risk summary (egress, new hosts, ``"*"``, new permissions, password fields, the vendor's
history with the broker), the vendor's notes and earlier reviewers' comments, then its
manifest, its code (highlighted by Pygments), the diff against the version a reviewer
last decided on, the verification report and sandbox transcript, the audit trail, and the
decision form: approve, reject or request changes, with a comment.

Deciding calls ``platform.upgrades.decide`` as ``POST /1.0/submissions/<id>/decision``
does, so the same rules hold (nobody reviews their own submission; a rejection or a
request for changes needs a comment) and every decision is audited.
"""

from __future__ import annotations

import json
from typing import Any

from flask import current_app, flash, render_template, request
from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import DiffLexer, JsonLexer, TextLexer, get_lexer_for_filename
from pygments.util import ClassNotFound

from brokerage.core.accounts import Role
from brokerage.platform import notify, upgrades
from brokerage.platform.db import get_session
from brokerage.platform.paging import paginate_list
from brokerage.platform.runtime import current_runtime
from brokerage.platform.submitted import DECISIONS, status_of, visible_version
from brokerage.platform.web.support import back, runtime, web_blueprint, with_role
from brokerage.platform.web.vendor import submission_context, submission_error_page
from brokerage.submissions import review
from brokerage.submissions.artifacts import store_from_config
from brokerage.submissions.errors import SubmissionError
from brokerage.submissions.models import BrokerVersion

bp = web_blueprint("web_review", __name__, url_prefix="/review")
bp.register_error_handler(SubmissionError, submission_error_page)

DECISION_LABELS = {
    "approve": "Approve",
    "request_changes": "Request changes",
    "reject": "Reject",
}


def highlighted(text: str, lexer: Any) -> Markup:
    """``text`` as highlighted HTML (Pygments escapes it)."""
    return Markup(highlight(text, lexer, HtmlFormatter(cssclass="highlight", linenos=False)))


def _lexer(path: str) -> Any:
    try:
        return get_lexer_for_filename(path, stripnl=False)
    except ClassNotFound:
        return TextLexer(stripnl=False)


def _code(version: BrokerVersion) -> dict[str, Any]:
    store = store_from_config(dict(current_app.config))
    files = review.texts_of(review.files_of(version, store))
    changes = review.diff(get_session(), version, store)
    diff_html = highlighted(changes["diff"], DiffLexer(stripnl=False)) if changes["diff"] else None
    return {
        "files": [(path, highlighted(text, _lexer(path))) for path, text in files.items()],
        "diff": changes,
        "diff_html": diff_html,
        "manifest_html": highlighted(json.dumps(version.manifest, indent=2), JsonLexer()),
        "risk": review.risk_summary(get_session(), version),
    }


@bp.get("/", strict_slashes=False)
def queue() -> Any:
    with_role(Role.REVIEWER)
    waiting = review.queue(get_session())
    return render_template("review/queue.html", versions=paginate_list(waiting))


def _page(version: BrokerVersion, error: str | None = None, status: int = 200) -> Any:
    page = render_template("review/submission.html", **submission_context(version),
                           **_code(version), decisions=DECISION_LABELS, error=error,
                           comment=request.form.get("comment", ""))  # fmt: skip
    return page, status


@bp.get("/<int:version_id>")
def submission(version_id: int) -> Any:
    return _page(visible_version(with_role(Role.REVIEWER), version_id))


@bp.post("/<int:version_id>/decision")
def decide(version_id: int) -> Any:
    reviewer = with_role(Role.REVIEWER)
    version = visible_version(reviewer, version_id)
    choice = request.form.get("decision", "")
    if choice not in DECISIONS:
        return _page(version, "Choose approve, request changes or reject.", 400)
    try:
        upgrades.decide(get_session(), version, reviewer, DECISIONS[choice],
                         request.form.get("comment", ""), current_runtime().cipher)  # fmt: skip
    except SubmissionError as exc:
        get_session().rollback()
        status = status_of(exc)
        return _page(version, str(exc), status)
    get_session().commit()
    mailed = notify.submission_decided(runtime(), version, request.form.get("comment", "").strip())
    flash(f"{version.broker_type.name} {version.version} is now {version.state}"
          + ("; the vendor was mailed." if mailed else "."), "success")  # fmt: skip
    return back("web_review.queue")
