"""The one opportunity modal, whatever opened it (command, shortcut, retry, lead lookup)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from bot.blocks.carried import Carried
from bot.blocks.custom_fields import custom_field_blocks, shown
from bot.blocks.options import (
    Json,
    element,
    initial_among,
    input_block,
    option,
    option_group,
    plain_text,
    static_select,
)
from bot.blocks.text import (
    CONTEXT_TEXT,
    MODAL_BLOCKS,
    MODAL_TITLE,
    OPTIONS_PER_SELECT,
    PLAIN_TEXT_INPUT,
    PRIVATE_METADATA,
    fit,
    fit_mrkdwn,
)
from bot.close.models import Contact, CustomField, Pipeline, Status, User, ValuePeriod

CALLBACK_ID = "opportunity_modal"
# The same modal, editing an opportunity that exists: its own callback so its submission
# is a PUT of what changed, never a second create.
EDIT_CALLBACK_ID = "opportunity_edit"
POST_IN_BLOCK_ID = "post_in"

ModalMode = Literal["edit"]
# callback_id, title, submit label per mode (None: create).
MODE_TEXTS: dict[ModalMode | None, tuple[str, str, str]] = {
    None: (CALLBACK_ID, "New opportunity", "Create"),
    "edit": (EDIT_CALLBACK_ID, "Edit opportunity", "Save"),
}
SOURCE_HINT = "The note will link to the Slack message this came from."

PERIOD_LABELS: dict[ValuePeriod, str] = {
    "one_time": "One-time",
    "monthly": "Monthly",
    "annual": "Annual",
}

EMPTY_HINT = "Tip: `/opportunity Acme 12k ARR 60% close next friday` fills this form for you."


class CatalogView(Protocol):
    """What the modal needs to know of the Close org (the warm catalog provides it)."""

    def statuses_by_pipeline(self) -> list[tuple[Pipeline, list[Status]]]: ...

    @property
    def custom_fields(self) -> list[CustomField]: ...

    @property
    def users(self) -> list[User]: ...


class ModalMetadata(Carried):
    """Carried in `private_metadata`: the idempotency key and where to tell the outcome.

    From a message shortcut, `source_channel`/`source_ts` name the message and `permalink`
    its link once fetched (after views.open). `post_in` asks for the "Post confirmation in"
    picker (global shortcut, App Home). In `mode="edit"`, `channel_id`/`thread_ts` are the
    confirmation's thread, `details_ts` its details message, and `loaded` the packed short
    hashes of what the form was filled with (bot/deals/changes.py), so only what the user
    changed is sent to Close.
    """

    model_config = ConfigDict(extra="ignore")

    key: str
    channel_id: str | None = None
    thread_ts: str | None = None
    response_url: str | None = None
    source_channel: str | None = None
    source_ts: str | None = None
    permalink: str | None = None
    post_in: bool | None = None
    mode: ModalMode | None = None
    submission_id: str | None = None
    opportunity_id: str | None = None
    details_ts: str | None = None
    announce_channel: str | None = None
    announce_ts: str | None = None
    loaded: dict[str, str] | None = None


class LeadOption(BaseModel):
    value: str
    label: str


class ModalForm(BaseModel):
    """What the modal shows: initial values of each block, plus context lines."""

    metadata: ModalMetadata
    lead: LeadOption | None = None
    lead_hint: str | None = None
    value_text: str | None = None
    value_period: ValuePeriod | None = None
    confidence: int | None = None
    date_won: date | None = None
    status_id: str | None = None
    owner: str | None = None
    contacts: list[Contact] = Field(default_factory=list)
    contact_id: str | None = None
    note: str | None = None
    custom: dict[str, Any] = Field(default_factory=dict)  # cf_id -> value, as Close takes it
    summary: str | None = None
    warnings: list[str] = Field(default_factory=list)
    # Errors Close returned after the modal was submitted, shown under their blocks.
    errors: dict[str, str] = Field(default_factory=dict)
    # The "Post confirmation in" picker's initial conversation (when metadata.post_in).
    post_in: str | None = None


def lead_option(lead: LeadOption) -> Json:
    return option(lead.label, lead.value)


class ModalTooBig(ValueError):
    """The view breaks a Slack limit that trimming cannot fix (private_metadata is JSON)."""


def _status_element(form: ModalForm, catalog: CatalogView) -> Json | None:
    groups: list[tuple[Pipeline, list[Json]]] = []
    budget = OPTIONS_PER_SELECT  # Slack counts the options of all groups together
    for pipeline, statuses in catalog.statuses_by_pipeline():
        options = [option(status.label, status.id) for status in statuses[:budget]]
        budget -= len(options)
        if options:
            groups.append((pipeline, options))
    if not groups:
        return None
    initial = next(
        (o for _, options in groups for o in options if o["value"] == form.status_id), None
    )
    if len(groups) == 1:
        return static_select(
            "static_select", "status", "Pick a status", groups[0][1], initial_option=initial
        )
    return element(
        "static_select",
        "status",
        "Pick a status",
        option_groups=[option_group(pipeline.name, options) for pipeline, options in groups],
        initial_option=initial,
    )


def _input(
    form: ModalForm,
    block_id: str,
    label: str,
    element: Json,
    *,
    hint: str | None = None,
    optional: bool = True,
    dispatch_action: bool | None = None,
) -> Json:
    """An input block; an error Close returned for it replaces the hint, so it shows in place."""
    error = form.errors.get(block_id)
    return input_block(
        block_id,
        label,
        element,
        hint=f"⚠️ {error}" if error else hint,
        optional=optional,
        dispatch_action=dispatch_action,
    )


def _context(text: str) -> Json:
    return {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": fit_mrkdwn(text, CONTEXT_TEXT)}],
    }


def _text_input(
    action_id: str, placeholder: str | None, initial: str | None, **fields: Any
) -> Json:
    return element(
        "plain_text_input",
        action_id,
        placeholder,
        initial_value=fit(initial, PLAIN_TEXT_INPUT) if initial else None,
        **fields,
    )


def build_opportunity_modal(form: ModalForm, catalog: CatalogView) -> dict[str, Any]:
    """The opportunity modal as Slack view JSON; `block_id`s are the contract of PRODUCT.md.

    Plain dicts, within Slack's limits by construction (see bot.blocks.options); raises
    ModalTooBig only when private_metadata is over 3000 characters.
    """
    blocks = _context_blocks(form)
    blocks.append(_lead_input(form))
    blocks.extend(_value_inputs(form))
    blocks.append(_confidence_input(form))
    blocks.append(_date_won_input(form))
    status_element = _status_element(form, catalog)
    if status_element is not None:
        blocks.append(
            _input(
                form,
                "status",
                "Status",
                status_element,
                hint=None if form.status_id else "Empty: the first status, as Close does.",
            )
        )
    blocks.append(
        _input(
            form,
            "owner",
            "Owner",
            element("users_select", "owner", "Who owns this deal", initial_user=form.owner),
        )
    )
    if form.contacts:
        blocks.append(_contact_input(form))
    blocks.append(
        _input(form, "note", "Note", _text_input("note", None, form.note, multiline=True))
    )
    if form.metadata.post_in:
        blocks.append(_post_in(form))
    blocks.extend(_custom_field_blocks(form, catalog, room=MODAL_BLOCKS - len(blocks)))
    return _modal_view(form, blocks)


def _context_blocks(form: ModalForm) -> list[Json]:
    """The lines above the inputs: what was read, what to check, and where it came from."""
    blocks: list[Json] = []
    if form.summary:
        blocks.append(_context(form.summary))
    blocks.extend(_context(f":warning: {warning}") for warning in form.warnings[:3])
    if not form.summary and not form.warnings and form.metadata.mode is None:
        # Constant text with markup of its own (backticks): not escaped.
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": EMPTY_HINT}]})
    if form.metadata.source_ts:
        blocks.append(_context(SOURCE_HINT))
    return blocks


def _lead_input(form: ModalForm) -> Json:
    # dispatch_action: picking a lead offers its contacts, keeping what was already typed.
    return _input(
        form,
        "lead",
        "Lead",
        element(
            "external_select",
            "lead",
            "Type a company name",
            initial_option=lead_option(form.lead) if form.lead else None,
            min_query_length=1,
        ),
        hint=form.lead_hint,
        optional=False,
        dispatch_action=True,
    )


def _value_inputs(form: ModalForm) -> list[Json]:
    """The value as typed (money is read on submit) and its period."""
    period_options = [option(label, period) for period, label in PERIOD_LABELS.items()]
    return [
        _input(
            form,
            "value",
            "Value",
            _text_input("value", "e.g. 12k, $12,500, €40,000", form.value_text),
        ),
        _input(
            form,
            "value_period",
            "Period",
            static_select(
                "static_select",
                "value_period",
                "One-time, monthly or annual",
                period_options,
                initial_option=initial_among(period_options, form.value_period),
            ),
        ),
    ]


def _confidence_input(form: ModalForm) -> Json:
    return _input(
        form,
        "confidence",
        "Confidence (%)",
        _text_input(
            "confidence",
            "0–100",
            str(form.confidence) if form.confidence is not None else None,
        ),
    )


def _date_won_input(form: ModalForm) -> Json:
    return _input(
        form,
        "date_won",
        "Expected close date",
        element(
            "datepicker",
            "date_won",
            "Pick a date",
            initial_date=form.date_won.isoformat() if form.date_won else None,
        ),
    )


def _contact_input(form: ModalForm) -> Json:
    """The lead's contacts (known once a lead is picked), as many as one select holds."""
    contact_options = [option(c.label, c.id) for c in form.contacts[:OPTIONS_PER_SELECT]]
    return _input(
        form,
        "contact",
        "Contact",
        static_select(
            "static_select",
            "contact",
            "Who at the lead",
            contact_options,
            initial_option=initial_among(contact_options, form.contact_id),
        ),
    )


def _custom_field_blocks(form: ModalForm, catalog: CatalogView, *, room: int) -> list[Json]:
    """The custom fields' inputs, in the `room` blocks left of the view's budget."""
    fields = shown(catalog.custom_fields)
    extra = custom_field_blocks(
        fields, form.custom, form.errors, users=catalog.users, contacts=form.contacts
    )
    if len(extra) > room:
        # Slack allows 100 blocks: keep the fields Close requires, and say where the rest are.
        required = [b for b in extra if not b["optional"]][: room - 1]
        notice = _context("Some optional custom fields are not shown here: fill them in Close.")
        return [notice, *required]
    return extra


def _modal_view(form: ModalForm, blocks: list[Json]) -> dict[str, Any]:
    """The view around the blocks: the mode's callback and texts, and the carried metadata."""
    callback_id, title, submit = MODE_TEXTS[form.metadata.mode]
    private_metadata = form.metadata.encode()
    if len(private_metadata) > PRIVATE_METADATA:
        raise ModalTooBig(f"private_metadata is {len(private_metadata)} characters")
    return {
        "type": "modal",
        "callback_id": callback_id,
        "title": plain_text(title, MODAL_TITLE),
        "submit": plain_text(submit, MODAL_TITLE),
        "close": plain_text("Cancel", MODAL_TITLE),
        "private_metadata": private_metadata,
        "blocks": blocks[:MODAL_BLOCKS],
    }


def _post_in(form: ModalForm) -> Json:
    """Where the confirmation goes; Slack fills in the conversation the user is looking at."""
    return _input(
        form,
        POST_IN_BLOCK_ID,
        "Post confirmation in",
        element(
            "conversations_select",
            POST_IN_BLOCK_ID,
            "A channel or conversation",
            initial_conversation=form.post_in,
            default_to_current_conversation=True,
            filter={"include": ["public", "private", "im", "mpim"], "exclude_bot_users": True},
        ),
        hint="Empty: I send the confirmation to you in a direct message.",
    )


def lead_options(
    leads: Sequence[LeadOption], typed: str, *, limit: int = OPTIONS_PER_SELECT
) -> list[dict[str, Any]]:
    """Options for the lead typeahead: matching leads, then always "Create new lead: <typed>"."""
    typed = typed.strip()
    limit = min(limit, OPTIONS_PER_SELECT)
    options = [lead_option(lead) for lead in leads[: limit - 1 if typed else limit]]
    if typed:
        options.append(option(f"Create new lead: {typed}", f"new:{typed}"))
    return options
