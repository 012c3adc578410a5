"""The one opportunity modal, whatever opened it (command, shortcut, retry, lead lookup)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from slack_sdk.models.blocks import (
    ContextBlock,
    ConversationFilter,
    ConversationSelectElement,
    DatePickerElement,
    ExternalDataSelectElement,
    InputBlock,
    MarkdownTextObject,
    Option,
    OptionGroup,
    PlainTextInputElement,
    StaticSelectElement,
    UserSelectElement,
)
from slack_sdk.models.blocks.blocks import Block
from slack_sdk.models.views import View

from bot.blocks.custom_fields import custom_field_blocks, shown
from bot.blocks.options import option
from bot.blocks.text import (
    CONTEXT_TEXT,
    HINT,
    MODAL_BLOCKS,
    OPTION_TEXT,
    OPTIONS_PER_SELECT,
    PLAIN_TEXT_INPUT,
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


class ModalMetadata(BaseModel):
    """Carried in `private_metadata`: the idempotency key and where to tell the outcome.

    From a message shortcut, `source_channel`/`source_ts` name the message and `permalink`
    its link once fetched (after views.open). `post_in` asks for the "Post confirmation in"
    picker (global shortcut, App Home). In `mode="edit"`, `channel_id`/`thread_ts` are the
    confirmation's thread, `details_ts` its details message, and `loaded` a digest per field
    of what the form was filled with, so only what the user changed is sent to Close.
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

    def encode(self) -> str:
        return json.dumps(self.model_dump(exclude_none=True), separators=(",", ":"))

    @classmethod
    def decode(cls, raw: object) -> ModalMetadata | None:
        if not isinstance(raw, str):
            return None
        try:
            return cls.model_validate_json(raw)
        except ValidationError:
            return None


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


def lead_option(lead: LeadOption) -> Option:
    return option(lead.label, lead.value)


def _status_element(form: ModalForm, catalog: CatalogView) -> StaticSelectElement | None:
    groups: list[OptionGroup] = []
    initial: Option | None = None
    budget = OPTIONS_PER_SELECT
    for pipeline, statuses in catalog.statuses_by_pipeline():
        options: list[Option] = []
        for status in statuses:
            if budget == 0:
                break
            opt = option(status.label, status.id)
            options.append(opt)
            budget -= 1
            if status.id == form.status_id:
                initial = opt
        if options:
            groups.append(OptionGroup(label=fit(pipeline.name, OPTION_TEXT), options=options))
    if not groups:
        return None
    if len(groups) == 1:
        return StaticSelectElement(
            action_id="status",
            placeholder="Pick a status",
            options=groups[0].options,
            initial_option=initial,
        )
    return StaticSelectElement(
        action_id="status",
        placeholder="Pick a status",
        option_groups=groups,
        initial_option=initial,
    )


def _input(
    form: ModalForm,
    block_id: str,
    label: str,
    element: Any,
    *,
    hint: str | None = None,
    optional: bool = True,
    dispatch_action: bool | None = None,
) -> InputBlock:
    """An input block; an error Close returned for it replaces the hint, so it shows in place."""
    error = form.errors.get(block_id)
    shown = f"⚠️ {error}" if error else hint
    return InputBlock(
        block_id=block_id,
        label=label,
        element=element,
        hint=fit(shown, HINT) if shown else None,
        optional=optional,
        dispatch_action=dispatch_action,
    )


def _context(text: str) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=fit_mrkdwn(text, CONTEXT_TEXT))])


def build_opportunity_modal(form: ModalForm, catalog: CatalogView) -> dict[str, Any]:
    """The opportunity modal as Slack view JSON; `block_id`s are the contract of PRODUCT.md."""
    blocks: list[Block] = []
    if form.summary:
        blocks.append(_context(form.summary))
    blocks.extend(_context(f":warning: {warning}") for warning in form.warnings[:3])
    if not form.summary and not form.warnings and form.metadata.mode is None:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=EMPTY_HINT)]))
    if form.metadata.source_ts:
        blocks.append(_context(SOURCE_HINT))

    blocks.append(
        _input(
            form,
            "lead",
            "Lead",
            ExternalDataSelectElement(
                action_id="lead",
                placeholder="Type a company name",
                initial_option=lead_option(form.lead) if form.lead else None,
                min_query_length=1,
            ),
            hint=form.lead_hint,
            optional=False,
            dispatch_action=True,
        )
    )
    blocks.append(
        _input(
            form,
            "value",
            "Value",
            PlainTextInputElement(
                action_id="value",
                placeholder="e.g. 12k, $12,500, €40,000",
                initial_value=fit(form.value_text, PLAIN_TEXT_INPUT) if form.value_text else None,
            ),
        )
    )
    period_options = [option(label, period) for period, label in PERIOD_LABELS.items()]
    blocks.append(
        _input(
            form,
            "value_period",
            "Period",
            StaticSelectElement(
                action_id="value_period",
                placeholder="One-time, monthly or annual",
                options=period_options,
                initial_option=next(
                    (o for o in period_options if o.value == form.value_period), None
                ),
            ),
        )
    )
    blocks.append(
        _input(
            form,
            "confidence",
            "Confidence (%)",
            PlainTextInputElement(
                action_id="confidence",
                placeholder="0–100",
                initial_value=str(form.confidence) if form.confidence is not None else None,
            ),
        )
    )
    blocks.append(
        _input(
            form,
            "date_won",
            "Expected close date",
            DatePickerElement(
                action_id="date_won",
                placeholder="Pick a date",
                initial_date=form.date_won.isoformat() if form.date_won else None,
            ),
        )
    )
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
            UserSelectElement(
                action_id="owner", placeholder="Who owns this deal", initial_user=form.owner
            ),
        )
    )
    if form.contacts:
        contact_options = [option(c.label, c.id) for c in form.contacts[:OPTIONS_PER_SELECT]]
        blocks.append(
            _input(
                form,
                "contact",
                "Contact",
                StaticSelectElement(
                    action_id="contact",
                    placeholder="Who at the lead",
                    options=contact_options,
                    initial_option=next(
                        (o for o in contact_options if o.value == form.contact_id), None
                    ),
                ),
            )
        )
    blocks.append(
        _input(
            form,
            "note",
            "Note",
            PlainTextInputElement(
                action_id="note",
                multiline=True,
                initial_value=fit(form.note, PLAIN_TEXT_INPUT) if form.note else None,
            ),
        )
    )
    if form.metadata.post_in:
        blocks.append(_post_in(form))
    fields = shown(catalog.custom_fields)
    extra = custom_field_blocks(
        fields, form.custom, form.errors, users=catalog.users, contacts=form.contacts
    )
    if len(blocks) + len(extra) > MODAL_BLOCKS:
        # Slack allows 100 blocks: keep the fields Close requires, and say where the rest are.
        extra = [b for b in extra if not b.optional][: MODAL_BLOCKS - len(blocks) - 1]
        blocks.append(
            _context("Some optional custom fields are not shown here: fill them in Close.")
        )
    blocks.extend(extra)
    callback_id, title, submit = MODE_TEXTS[form.metadata.mode]
    view = View(
        type="modal",
        callback_id=callback_id,
        title=title,
        submit=submit,
        close="Cancel",
        private_metadata=form.metadata.encode(),
        blocks=blocks,
    )
    return view.to_dict()  # validates Slack's limits; raises SlackObjectFormationError


def _post_in(form: ModalForm) -> InputBlock:
    """Where the confirmation goes; Slack fills in the conversation the user is looking at."""
    return _input(
        form,
        POST_IN_BLOCK_ID,
        "Post confirmation in",
        ConversationSelectElement(
            action_id=POST_IN_BLOCK_ID,
            placeholder="A channel or conversation",
            initial_conversation=form.post_in,
            default_to_current_conversation=True,
            filter=ConversationFilter(
                include=["public", "private", "im", "mpim"], exclude_bot_users=True
            ),
        ),
        hint="Empty: I send the confirmation to you in a direct message.",
    )


def lead_options(
    leads: Sequence[LeadOption], typed: str, *, limit: int = OPTIONS_PER_SELECT
) -> list[dict[str, Any]]:
    """Options for the lead typeahead: matching leads, then always "Create new lead: <typed>"."""
    typed = typed.strip()
    options = [lead_option(lead).to_dict() for lead in leads[: limit - 1 if typed else limit]]
    if typed:
        options.append(option(f"Create new lead: {typed}", f"new:{typed}").to_dict())
    return options
