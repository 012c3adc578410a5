"""A logged opportunity as a Work Object (issue #24, PRODUCT.md "Work Objects"), pure: an `item`
whose flexpane lets someone who may edit the deal change its status (a select of its
pipeline's statuses), value, confidence (a number from 0 to 100) and expected close date —
custom field keys `status`, `value`, `confidence`, `date_won`, Close's own names.

With WORK_OBJECTS=on the confirmation's summary carries it as a card (`summary_card`, the
message's `metadata`, read-only: everyone in the conversation sees it); its flexpane is read as
the person who opens it (bot/listeners/opportunity_pane.py), editable for who may edit the deal,
and saved by the `entity_detail` submission (bot/listeners/entity_edit.py).

Shapes: python-slack-sdk `slack_sdk/models/metadata` (EntityMetadata, EntityCustomField with
`edit`: EntityEditSupport's `enabled`, `select.current_value` + `static_options` (Block Kit
options), `number.min_value`/`max_value`, `text.max_length`). The `edit` objects are plain
dicts: SLACK.md notes the SDK's EntityEditSupport drops a boolean option.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.models.metadata import (
    EntityAttributes,
    EntityCustomField,
    EntityMetadata,
    EntityPayload,
    EntityTitle,
    ExternalRef,
)

from bot.blocks.entities import FIELD_CHARS, ITEM, PRODUCT_NAME, TITLE_CHARS
from bot.blocks.format import format_money_period
from bot.blocks.messages import lead_url
from bot.blocks.text import OPTION_TEXT, OPTION_VALUE, fit
from bot.close.models import Opportunity, Status

OPPORTUNITY_REF_TYPE = "opportunity"
OPPORTUNITY_DISPLAY_TYPE = "Close opportunity"
# The editable fields, by Close's names (the flexpane's custom field keys).
EDITABLE = ("status", "value", "confidence", "date_won")
# A select's options: Slack's limit for a static select.
MAX_OPTIONS = 100


def opportunity_title(opportunity: Opportunity) -> str:
    """ "Acme Corp — $12,000 annual" (the lead alone without a value)."""
    lead = opportunity.lead_name or opportunity.lead_id
    if opportunity.value is None:
        return fit(lead, TITLE_CHARS)
    value = format_money_period(
        opportunity.value, opportunity.value_currency, opportunity.value_period
    )
    return fit(f"{lead} — {value}", TITLE_CHARS)


def opportunity_entity(
    opportunity: Opportunity,
    statuses: list[Status],
    *,
    close_app_url: str,
    editable: bool,
    app_unfurl_url: str | None = None,
) -> dict[str, Any]:
    """The opportunity's entity: its status, value, confidence, expected close and owner;
    `editable` (the person may edit this deal) opens the four fields to editing, the status as
    a select of `statuses` (its pipeline's)."""
    fields: list[EntityCustomField | None] = [
        _status(opportunity, statuses, editable),
        _field(
            "value",
            "Value",
            "string",
            _value_text(opportunity),
            {"enabled": True, "text": {"max_length": 50}} if editable else None,
        ),
        _field(
            "confidence",
            "Confidence",
            "integer",
            opportunity.confidence,
            {"enabled": True, "optional": True, "number": {"min_value": 0, "max_value": 100}}
            if editable
            else None,
        ),
        _field(
            "date_won",
            "Expected close",
            "slack#/types/date",
            opportunity.date_won.isoformat() if opportunity.date_won else None,
            {"enabled": True, "optional": True} if editable else None,
        ),
    ]
    if opportunity.user_name:
        fields.append(_field("owner", "Owner", "string", fit(opportunity.user_name, FIELD_CHARS)))
    entity = EntityMetadata(
        entity_type=ITEM,
        external_ref=ExternalRef(id=opportunity.id, type=OPPORTUNITY_REF_TYPE),
        url=lead_url(close_app_url, opportunity.lead_id),
        app_unfurl_url=app_unfurl_url,
        entity_payload=EntityPayload(
            attributes=EntityAttributes(
                title=EntityTitle(text=opportunity_title(opportunity)),
                display_type=OPPORTUNITY_DISPLAY_TYPE,
                product_name=PRODUCT_NAME,
            ),
            custom_fields=[f for f in fields if f is not None],
        ),
    )
    built: dict[str, Any] = entity.to_dict()  # checks Slack's entity and field types
    return built


def summary_card(opportunity: Opportunity, *, close_app_url: str) -> dict[str, Any]:
    """The summary message's `metadata`: the opportunity as one read-only `item` card."""
    return {
        "entities": [
            opportunity_entity(opportunity, [], close_app_url=close_app_url, editable=False)
        ]
    }


def _status(opportunity: Opportunity, statuses: list[Status], editable: bool) -> EntityCustomField:
    edit: dict[str, Any] | None = None
    if editable and statuses:
        options = [
            {
                "text": {"type": "plain_text", "text": fit(s.label, OPTION_TEXT)},
                "value": s.id[:OPTION_VALUE],
            }
            for s in statuses[:MAX_OPTIONS]
        ]
        select = {"current_value": opportunity.status_id, "static_options": options}
        edit = {"enabled": True, "select": select}
    label = opportunity.status_label or opportunity.status_id or "No status"
    return EntityCustomField(
        key="status", label="Status", type="string", value=fit(label, FIELD_CHARS), edit=edit
    )


def _value_text(opportunity: Opportunity) -> str | None:
    if opportunity.value is None:
        return None
    return format_money_period(
        opportunity.value, opportunity.value_currency, opportunity.value_period
    )


def _field(
    key: str, label: str, kind: str, value: str | int | None, edit: dict[str, Any] | None = None
) -> EntityCustomField | None:
    """A custom field; None when it has no value and cannot be edited (nothing to show)."""
    if value is None and edit is None:
        return None
    return EntityCustomField(key=key, label=label, type=kind, value=value, edit=edit)
