"""The lifecycle of one submitted broker version, and the moves it may make.

::

    draft ─► submitted ─► verifying ─┬─► verification_failed (─► draft or submitted:
                                     │     the same version number sent again, fixed)
                                     └─► awaiting_review ─┬─► changes_requested
                                                          ├─► rejected
                                                          └─► approved ─► superseded

    withdrawn: reachable by the vendor from every state that is not final
    (draft, submitted, verifying, verification_failed, awaiting_review,
    changes_requested, approved).

``approved`` is the only state the catalogue offers; ``superseded`` versions keep
running for the services pinned to them. Every move is written to the audit table
(who, when, why) by :func:`brokerage.submissions.lifecycle.move`.
"""

from __future__ import annotations

from enum import StrEnum

from brokerage.submissions.errors import TransitionError


class SubmissionState(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    VERIFYING = "verifying"
    VERIFICATION_FAILED = "verification_failed"
    AWAITING_REVIEW = "awaiting_review"
    CHANGES_REQUESTED = "changes_requested"
    REJECTED = "rejected"
    APPROVED = "approved"
    SUPERSEDED = "superseded"
    WITHDRAWN = "withdrawn"


S = SubmissionState

TRANSITIONS: dict[SubmissionState, frozenset[SubmissionState]] = {
    S.DRAFT: frozenset({S.SUBMITTED, S.WITHDRAWN}),
    S.SUBMITTED: frozenset({S.VERIFYING, S.WITHDRAWN}),
    S.VERIFYING: frozenset({S.VERIFICATION_FAILED, S.AWAITING_REVIEW, S.WITHDRAWN}),
    S.VERIFICATION_FAILED: frozenset({S.DRAFT, S.SUBMITTED, S.WITHDRAWN}),
    S.AWAITING_REVIEW: frozenset({S.CHANGES_REQUESTED, S.REJECTED, S.APPROVED, S.WITHDRAWN}),
    S.CHANGES_REQUESTED: frozenset({S.WITHDRAWN}),
    S.REJECTED: frozenset(),
    S.APPROVED: frozenset({S.SUPERSEDED, S.WITHDRAWN}),
    S.SUPERSEDED: frozenset(),
    S.WITHDRAWN: frozenset(),
}
"""every allowed move; anything else is a TransitionError"""

DECISIONS = frozenset({S.APPROVED, S.REJECTED, S.CHANGES_REQUESTED})
"""the states a reviewer's decision leads to"""


def check_transition(current: str, target: SubmissionState) -> SubmissionState:
    """``current`` as a state, when it may move to ``target``; TransitionError otherwise."""
    state = SubmissionState(current)
    if target not in TRANSITIONS[state]:
        allowed = ", ".join(sorted(TRANSITIONS[state])) or "none: the state is final"
        raise TransitionError(
            f"a submission that is {state} cannot become {target} (allowed: {allowed})"
        )
    return state
