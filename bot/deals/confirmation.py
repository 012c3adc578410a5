"""Where a deal's confirmation lives in Slack: the one value the worker, Edit/Won/Lost and Close -> Slack share."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from bot.blocks.messages import ConfirmationRef
from bot.deals.models import Submission
from bot.slack.gateway import MessageRef

# A part of the confirmation that Slack may say is gone (deleted, a channel the app left): it
# is forgotten, so later changes leave it alone. "thread" takes its details message with it.
Part = Literal["summary", "thread", "details", "announcement"]

# The submissions' columns that keep a confirmation: read by `Confirmation.of`, written by
# `columns` and `forgotten` (through SubmissionStore.mark_confirmed, set_notice, forget_message).
SUMMARY_COLUMNS = ("notice_channel", "notice_ts")
COLUMNS = (
    *SUMMARY_COLUMNS,
    "thread_channel",
    "thread_ts",
    "details_ts",
    "announce_channel",
    "announce_ts",
)
_FORGOTTEN: dict[Part, tuple[str, ...]] = {
    "summary": SUMMARY_COLUMNS,
    "thread": ("thread_channel", "thread_ts", "details_ts"),
    "details": ("details_ts",),
    "announcement": ("announce_channel", "announce_ts"),
}


@dataclass(frozen=True, slots=True)
class Confirmation:
    """Where the confirmation of submission `submission_id` lives.

    `summary`: the one-line message, updated in place. `thread`: the thread its details and
    every later change are told in (its channel and root). `details_ts`: the details message
    (with Edit/Won/Lost), in the thread's channel. `announcement`: the deals-channel post,
    under which changes are told too. Any of them may be unknown (None).
    """

    submission_id: str
    summary: MessageRef | None = None
    thread: MessageRef | None = None
    details_ts: str | None = None
    announcement: MessageRef | None = None

    @classmethod
    def of(cls, submission: Submission) -> Confirmation:
        """As stored with the submission. Confirmations from before the thread was stored
        have theirs under the summary (or in the thread the deal was logged from)."""
        summary = _at(submission.notice_channel, submission.notice_ts)
        thread = _at(submission.thread_channel, submission.thread_ts)
        if thread is None and summary is not None:
            thread = MessageRef(summary.channel, submission.reply_to.thread_ts or summary.ts)
        return cls(
            submission_id=submission.id,
            summary=summary,
            thread=thread,
            details_ts=submission.details_ts,
            announcement=_at(submission.announce_channel, submission.announce_ts),
        )

    @classmethod
    def clicked(
        cls,
        ref: ConfirmationRef,
        *,
        channel: str | None,
        thread_ts: str | None,
        details_ts: str | None,
    ) -> Confirmation:
        """The confirmation a button was pressed on: its thread and details as the click (or
        the edit modal it opened) says, its announcement as the button's value says; the
        summary is looked up with the submission (`with_summary_of`)."""
        thread = _at(channel, thread_ts)
        return cls(
            submission_id=ref.submission_id,
            thread=thread,
            details_ts=details_ts if thread is not None else None,
            announcement=_at(ref.announce_channel, ref.announce_ts),
        )

    def with_summary_of(self, submission: Submission) -> Confirmation:
        """With the summary stored for `submission`; confirmed before summaries were stored,
        the thread's root is the summary when the thread is the bot's own (from a message
        shortcut it is the user's message: Slack refuses to update it, nothing else happens)."""
        summary = _at(submission.notice_channel, submission.notice_ts)
        if summary is None and self.thread is not None and self.thread.ts != self.details_ts:
            summary = self.thread
        return replace(self, summary=summary)

    @property
    def details(self) -> MessageRef | None:
        if self.thread is None or self.details_ts is None:
            return None
        return MessageRef(self.thread.channel, self.details_ts)

    @property
    def ref(self) -> ConfirmationRef:
        """What the details' buttons carry (the wire format of messages already in Slack)."""
        announcement = self.announcement
        return ConfirmationRef(
            submission_id=self.submission_id,
            announce_channel=announcement.channel if announcement else None,
            announce_ts=announcement.ts if announcement else None,
        )

    def columns(self) -> dict[str, Any]:
        """The submission's columns that keep it (SubmissionStore.mark_confirmed)."""
        summary, thread, announcement = self.summary, self.thread, self.announcement
        return {
            "notice_channel": summary.channel if summary else None,
            "notice_ts": summary.ts if summary else None,
            "thread_channel": thread.channel if thread else None,
            "thread_ts": thread.ts if thread else None,
            "details_ts": self.details_ts if thread else None,
            "announce_channel": announcement.channel if announcement else None,
            "announce_ts": announcement.ts if announcement else None,
        }


def summary_columns(summary: MessageRef) -> dict[str, Any]:
    """The columns that keep the summary alone, stored as soon as it is posted."""
    return dict(zip(SUMMARY_COLUMNS, (summary.channel, summary.ts), strict=True))


def forgotten(part: Part) -> dict[str, Any]:
    """The columns to clear when Slack says `part` is gone."""
    return dict.fromkeys(_FORGOTTEN[part])


def _at(channel: str | None, ts: str | None) -> MessageRef | None:
    return MessageRef(channel, ts) if channel and ts else None
