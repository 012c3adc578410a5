"""Where a deal's confirmation lives: one value, read from a submission, a click or an edit modal."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bot.blocks.messages import ConfirmationRef
from bot.deals.confirmation import COLUMNS, Confirmation, Part, forgotten
from bot.deals.models import DealRequest, LeadChoice, ReplyTarget, Submission, SubmissionState
from bot.slack.gateway import MessageRef

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def submission(*, logged_in_thread: str | None = None, **stored: Any) -> Submission:
    return Submission(
        id="sub_1",
        idempotency_key="key",
        state=SubmissionState.CREATED,
        slack_user_id="U0ALICE",
        request=DealRequest(lead=LeadChoice(id="lead_acme"), lead_name="Acme Corp"),
        reply_to=ReplyTarget(user_id="U0ALICE", channel_id="C0SALES", thread_ts=logged_in_thread),
        next_attempt_at=NOW,
        created_at=NOW,
        updated_at=NOW,
        **stored,
    )


STORED = {
    "notice_channel": "C0SALES",
    "notice_ts": "1.1",
    "thread_channel": "C0SALES",
    "thread_ts": "1.1",
    "details_ts": "1.2",
    "announce_channel": "C0DEALS",
    "announce_ts": "2.1",
}


@pytest.mark.parametrize(
    ("stored", "logged_in_thread", "expected"),
    [
        (
            STORED,
            None,
            Confirmation(
                "sub_1",
                summary=MessageRef("C0SALES", "1.1"),
                thread=MessageRef("C0SALES", "1.1"),
                details_ts="1.2",
                announcement=MessageRef("C0DEALS", "2.1"),
            ),
        ),
        # Confirmed before the thread was stored: under the summary...
        (
            {"notice_channel": "C0SALES", "notice_ts": "1.1"},
            None,
            Confirmation(
                "sub_1", summary=MessageRef("C0SALES", "1.1"), thread=MessageRef("C0SALES", "1.1")
            ),
        ),
        # ...or in the thread the deal was logged from.
        (
            {"notice_channel": "C0SALES", "notice_ts": "1.1"},
            "0.9",
            Confirmation(
                "sub_1", summary=MessageRef("C0SALES", "1.1"), thread=MessageRef("C0SALES", "0.9")
            ),
        ),
        # Told through a response_url: nowhere to update.
        ({}, None, Confirmation("sub_1")),
    ],
)
def test_a_submission_says_where_its_confirmation_lives(
    stored: dict[str, Any], logged_in_thread: str | None, expected: Confirmation
) -> None:
    assert Confirmation.of(submission(logged_in_thread=logged_in_thread, **stored)) == expected


def test_its_columns_read_back_as_the_same_confirmation() -> None:
    confirmation = Confirmation.of(submission(**STORED))
    assert confirmation.columns() == STORED
    assert set(STORED) == set(COLUMNS)
    assert Confirmation.of(submission(**confirmation.columns())) == confirmation


@pytest.mark.parametrize(
    ("part", "left"),
    [
        ("summary", {"thread", "details", "announcement"}),
        ("thread", {"summary", "announcement"}),  # its details go with it
        ("details", {"summary", "thread", "announcement"}),
        ("announcement", {"summary", "thread", "details"}),
    ],
)
def test_a_part_slack_says_is_gone_is_forgotten(part: Part, left: set[str]) -> None:
    stored = {**STORED, **forgotten(part)}
    confirmation = Confirmation.of(submission(**stored))
    known = {
        "summary": confirmation.summary,
        "thread": confirmation.thread,
        "details": confirmation.details,
        "announcement": confirmation.announcement,
    }
    # A thread forgotten while the summary is known falls back to under the summary.
    expected = left | ({"thread"} if part == "thread" else set())
    assert {name for name, at in known.items() if at is not None} == expected


def test_the_buttons_value_is_built_from_it_and_values_already_in_slack_still_read() -> None:
    confirmation = Confirmation.of(submission(**STORED))
    value = confirmation.ref.encode()
    posted_earlier = ConfirmationRef.decode(value)
    assert posted_earlier == ConfirmationRef(
        submission_id="sub_1", announce_channel="C0DEALS", announce_ts="2.1"
    )
    clicked = Confirmation.clicked(
        posted_earlier, channel="C0SALES", thread_ts="1.1", details_ts="1.2"
    )
    assert clicked.with_summary_of(submission(**STORED)) == confirmation


@pytest.mark.parametrize(
    ("thread_ts", "details_ts", "summary"),
    [
        ("1.1", "1.2", MessageRef("C0SALES", "1.1")),  # the bot's own thread: its root
        ("1.2", "1.2", None),  # the details are the root (no thread to speak of)
    ],
)
def test_a_confirmation_from_before_summaries_were_stored_updates_its_threads_root(
    thread_ts: str, details_ts: str, summary: MessageRef | None
) -> None:
    ref = ConfirmationRef(submission_id="sub_1")
    clicked = Confirmation.clicked(
        ref, channel="C0SALES", thread_ts=thread_ts, details_ts=details_ts
    )
    assert clicked.with_summary_of(submission()).summary == summary
