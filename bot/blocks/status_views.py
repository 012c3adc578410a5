"""The modal's own progress views after Create: creating…, created, queued."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import ActionsBlock, ButtonElement, SectionBlock
from slack_sdk.models.blocks.blocks import Block
from slack_sdk.models.views import View

from bot.blocks.messages import OPEN_IN_CLOSE_ACTION_ID, lead_url
from bot.blocks.modal import CALLBACK_ID
from bot.blocks.text import SECTION_TEXT, fit_mrkdwn
from bot.close.models import Opportunity

STATUS_CALLBACK_ID = f"{CALLBACK_ID}_status"


def status_view(
    blocks: list[Block],
    private_metadata: str | None = None,
    *,
    title: str = "New opportunity",
    callback_id: str = STATUS_CALLBACK_ID,
) -> dict[str, Any]:
    """A modal that only tells (no inputs, no submit): progress and outcome after a submit."""
    view = View(
        type="modal",
        callback_id=callback_id,
        title=title,
        close="Done",
        blocks=blocks,
        private_metadata=private_metadata,
    )
    return view.to_dict()


def creating_view(lead_name: str, private_metadata: str | None = None) -> dict[str, Any]:
    text = f":hourglass_flowing_sand: Creating the opportunity for *{fit_mrkdwn(lead_name, 300)}* in Close…"
    return status_view([SectionBlock(text=text)], private_metadata)


def created_view(opportunity: Opportunity, *, close_app_url: str, where: str) -> dict[str, Any]:
    lead = fit_mrkdwn(opportunity.lead_name or opportunity.lead_id, 300)
    text = f":white_check_mark: Created the opportunity for *{lead}* in Close. {where}"
    return status_view(
        [
            SectionBlock(text=text[:SECTION_TEXT]),
            ActionsBlock(
                elements=[
                    ButtonElement(
                        text="Open in Close",
                        action_id=OPEN_IN_CLOSE_ACTION_ID,
                        url=lead_url(close_app_url, opportunity.lead_id),
                    )
                ]
            ),
        ]
    )


def queued_view(lead_name: str) -> dict[str, Any]:
    text = (
        f":hourglass: Close is not answering right now. The opportunity for "
        f"*{fit_mrkdwn(lead_name, 300)}* is saved and I will keep trying; you will get a "
        "message when it is in Close. You can close this window."
    )
    return status_view([SectionBlock(text=text)])
