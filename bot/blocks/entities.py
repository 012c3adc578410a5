"""Work Objects of Close leads (WORK_OBJECTS=on), pure: the card `chat.unfurl` shows everyone in
the conversation, and the flexpane `entity.presentDetails` shows the one person who opened it.

Shapes after Slack's own: python-slack-sdk `slack_sdk/models/metadata` (EntityMetadata,
EntityPayload, EntityAttributes, EntityCustomField — built with them, so Slack's entity and
field types are checked), its test `tests/slack_sdk/models/test_metadata.py` (an `array`
custom field of typed items), docs.slack.dev "Implementing Work Objects" (`app_unfurl_url` is
the URL exactly as shared, `url` the resource) and slack-samples/bolt-python-search-template
(`entity.presentDetails` with one entity, no `entities` wrapper, no `app_unfurl_url`).
"""

from __future__ import annotations

from typing import Any

from slack_sdk.models.metadata import (
    EntityArrayItemField,
    EntityAttributes,
    EntityCustomField,
    EntityMetadata,
    EntityPayload,
    EntityTitle,
    ExternalRef,
)

from bot.blocks.format import format_date, format_money_period
from bot.blocks.messages import lead_url
from bot.blocks.previews import most_relevant
from bot.blocks.text import fit
from bot.close.models import Contact, LeadWithOpportunities, Opportunity

ITEM = "slack#/entities/item"
LEAD_REF_TYPE = "lead"
LEAD_DISPLAY_TYPE = "Close lead"
PRODUCT_NAME = "Close"
# No published limits for these texts; kept to what reads well in a card or a pane.
TITLE_CHARS = 150
FIELD_CHARS = 300
# A flexpane lists every open opportunity up to this (a lead with more is rare), contacts too.
SHOWN_IN_PANE = 20


def lead_card(
    lead: LeadWithOpportunities, *, app_unfurl_url: str, close_app_url: str, close_data: bool
) -> dict[str, Any]:
    """The card of a shared lead link: the lead's name; with `close_data` (an internal channel)
    also its status and how many open opportunities it has. Without it, nothing of Close but
    the name (usually the other organization's own)."""
    fields: list[EntityCustomField] = []
    if close_data:
        if lead.status_label:
            fields.append(_text("status", "Status", lead.status_label))
        count = len(most_relevant(lead.opportunities))
        fields.append(
            EntityCustomField(
                key="open_opportunities", label="Open opportunities", type="integer", value=count
            )
        )
    return _entity(lead, close_app_url, fields, app_unfurl_url=app_unfurl_url)


def lead_details(
    lead: LeadWithOpportunities, contacts: list[Contact], *, close_app_url: str
) -> dict[str, Any]:
    """The flexpane of a lead, as the person who opened it sees it in Close: its status, each
    open opportunity (value with period, status, owner, expected close, confidence, the
    soonest first), its contacts."""
    fields: list[EntityCustomField] = []
    if lead.status_label:
        fields.append(_text("status", "Status", lead.status_label))
    lines = [opportunity_text(o) for o in most_relevant(lead.opportunities)]
    fields.append(_list_or("opportunities", "Open opportunities", lines, "None"))
    people = [contact_text(c) for c in contacts]
    fields.append(_list_or("contacts", "Contacts", people, "None"))
    return _entity(lead, close_app_url, fields)


def opportunity_text(opportunity: Opportunity) -> str:
    """`$12,000 annual · Proposal Sent · Bob Baker · closes Wed 15 Jan 2031 · 60%` (plain text:
    the pane shows it as it is, nothing to escape)."""
    parts = [
        format_money_period(opportunity.value, opportunity.value_currency, opportunity.value_period)
        if opportunity.value is not None
        else "No value"
    ]
    parts += [p for p in (opportunity.status_label, opportunity.user_name) if p]
    if opportunity.date_won:
        parts.append(f"closes {format_date(opportunity.date_won)}")
    if opportunity.confidence is not None:
        parts.append(f"{opportunity.confidence}%")
    return fit(" · ".join(parts), FIELD_CHARS)


def contact_text(contact: Contact) -> str:
    return fit(f"{contact.label} ({contact.title})" if contact.title else contact.label, 200)


def _entity(
    lead: LeadWithOpportunities,
    close_app_url: str,
    fields: list[EntityCustomField],
    *,
    app_unfurl_url: str | None = None,
) -> dict[str, Any]:
    entity = EntityMetadata(
        entity_type=ITEM,
        external_ref=ExternalRef(id=lead.id, type=LEAD_REF_TYPE),
        url=lead_url(close_app_url, lead.id),
        app_unfurl_url=app_unfurl_url,
        entity_payload=EntityPayload(
            attributes=EntityAttributes(
                title=EntityTitle(text=fit(lead.label, TITLE_CHARS)),
                display_type=LEAD_DISPLAY_TYPE,
                product_name=PRODUCT_NAME,
            ),
            # A fresh list, typed as the SDK's parameter (list[dict | EntityCustomField]).
            custom_fields=[f for f in fields] or None,
        ),
    )
    built: dict[str, Any] = entity.to_dict()  # checks Slack's entity and field types
    return built


def _text(key: str, label: str, value: str) -> EntityCustomField:
    return EntityCustomField(key=key, label=label, type="string", value=fit(value, FIELD_CHARS))


def _list_or(key: str, label: str, items: list[str], empty: str) -> EntityCustomField:
    if not items:
        return _text(key, label, empty)
    shown = items[:SHOWN_IN_PANE]
    if len(items) > SHOWN_IN_PANE:
        shown.append(f"and {len(items) - SHOWN_IN_PANE} more")
    return EntityCustomField(
        key=key,
        label=label,
        type="array",
        item_type="string",
        value=[EntityArrayItemField(type="string", value=item) for item in shown],
    )
