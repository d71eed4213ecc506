"""The lifecycle's transition table, written down once, enforced for every pair."""

from __future__ import annotations

import itertools

import pytest

from brokerage.submissions.errors import TransitionError
from brokerage.submissions.states import TRANSITIONS, SubmissionState, check_transition

S = SubmissionState

ALLOWED = {
    (S.DRAFT, S.SUBMITTED),
    (S.SUBMITTED, S.VERIFYING),
    (S.VERIFYING, S.VERIFICATION_FAILED),
    (S.VERIFYING, S.AWAITING_REVIEW),
    (S.VERIFICATION_FAILED, S.DRAFT),  # the same version number sent again, fixed
    (S.VERIFICATION_FAILED, S.SUBMITTED),
    (S.AWAITING_REVIEW, S.CHANGES_REQUESTED),
    (S.AWAITING_REVIEW, S.REJECTED),
    (S.AWAITING_REVIEW, S.APPROVED),
    (S.APPROVED, S.SUPERSEDED),
} | {
    (state, S.WITHDRAWN)
    for state in (
        S.DRAFT,
        S.SUBMITTED,
        S.VERIFYING,
        S.VERIFICATION_FAILED,
        S.AWAITING_REVIEW,
        S.CHANGES_REQUESTED,
        S.APPROVED,
    )
}


def test_the_table_is_the_issue_s_lifecycle() -> None:
    assert {(a, b) for a, targets in TRANSITIONS.items() for b in targets} == ALLOWED
    assert set(TRANSITIONS) == set(SubmissionState)


@pytest.mark.parametrize(
    ("current", "target"), list(itertools.product(SubmissionState, SubmissionState))
)
def test_every_pair(current: SubmissionState, target: SubmissionState) -> None:
    if (current, target) in ALLOWED:
        assert check_transition(str(current), target) is current
    else:
        with pytest.raises(
            TransitionError, match=f"a submission that is {current} cannot become {target}"
        ):
            check_transition(str(current), target)
