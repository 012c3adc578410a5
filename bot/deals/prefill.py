"""From a parsed Draft to the modal's initial values and its one-line "what I understood"."""

from __future__ import annotations

from bot.blocks.format import format_date, format_money_period
from bot.blocks.modal import LeadOption, ModalForm, ModalMetadata
from bot.close.catalog import Catalog
from bot.close.models import Lead, Status
from bot.deals.custom_text import CustomFieldText
from bot.deals.models import NEW_LEAD_PREFIX, DealRequest
from bot.deals.preferences import LastUsed
from bot.parsing import Draft
from bot.parsing.locales import DEFAULT_LOCALE
from bot.parsing.money import format_money


def new_lead_option(name: str) -> LeadOption:
    return LeadOption(value=NEW_LEAD_PREFIX + name, label=f"Create new lead: {name}")


def existing_lead_option(lead: Lead) -> LeadOption:
    return LeadOption(value=lead.id, label=lead.label)


def default_status(
    catalog: Catalog, last_used: LastUsed | None, default_pipeline: str | None
) -> Status | None:
    """The user's last used status (if Close still has it), else the first active status of
    DEFAULT_PIPELINE (name or id), else the org default — the first active status of the
    first pipeline, as Close itself does."""
    if last_used and (status := catalog.status(last_used.status_id)) is not None:
        return status
    if default_pipeline:
        wanted = default_pipeline.strip().casefold()
        for pipeline, statuses in catalog.statuses_by_pipeline():
            if wanted in (pipeline.id.casefold(), pipeline.name.casefold()):
                active = [s for s in statuses if s.type == "active"] or statuses
                if active:
                    return active[0]
    return catalog.default_status()


def resolve_status(
    draft: Draft, catalog: Catalog, fallback: Status | None
) -> tuple[Status | None, str | None]:
    """The status the text named (with a warning if Close has no such status), else `fallback`."""
    if draft.status:
        status = catalog.status_by_label(draft.status)
        if status is not None:
            return status, None
        return fallback, f"Close has no status “{draft.status}”: pick one below."
    return fallback, None


def summary_line(draft: Draft, status: Status | None) -> str | None:
    """ "Acme Corp · $12,000 annual · 60% · closes Fri 15 Jan 2027 · Demo Scheduled" """
    parts: list[str] = []
    if draft.lead:
        parts.append(draft.lead)
    if draft.value is not None:
        parts.append(format_money_period(draft.value, draft.value_currency, draft.value_period))
    elif draft.value_period:
        parts.append(draft.value_period.replace("_", "-"))
    if draft.confidence is not None:
        parts.append(f"{draft.confidence}%")
    if draft.date_won:
        parts.append(f"closes {format_date(draft.date_won)}")
    if parts and status is not None:
        parts.append(status.label)
    return " · ".join(parts) if parts else None


def form_from_draft(
    draft: Draft,
    catalog: Catalog,
    *,
    invoker: str,
    metadata: ModalMetadata,
    last_used: LastUsed | None = None,
    default_pipeline: str | None = None,
    custom_text: CustomFieldText | None = None,
) -> ModalForm:
    """Everything the text said; where it said nothing: the user's last choices, then defaults.
    The close date is never guessed. `custom_text`: custom fields read from the same text
    (see `read_custom_fields`, run before the parse)."""
    fallback = default_status(catalog, last_used, default_pipeline)
    status, status_warning = resolve_status(draft, catalog, fallback)
    period = draft.value_period or (last_used.value_period if last_used else None)
    warnings = list(draft.warnings)
    if status_warning:
        warnings.append(status_warning)
    if custom_text is not None:
        warnings += custom_text.warnings
    return ModalForm(
        metadata=metadata,
        # The lead is looked up in Close right after the modal opens (no Close call before
        # views.open); until then the select stays empty so nobody creates a duplicate lead.
        lead=None,
        lead_hint=f"Looking up “{draft.lead}” in Close…" if draft.lead else None,
        # In the locale the Value is read back in: `12.500 €` for de-DE reads one way there.
        value_text=format_money(
            draft.value, draft.value_currency, metadata.locale or DEFAULT_LOCALE
        )
        if draft.value is not None
        else None,
        value_period=period,
        confidence=draft.confidence,
        date_won=draft.date_won,
        status_id=status.id if status else None,
        owner=draft.owner or invoker,
        note=draft.note,
        custom=dict(custom_text.custom) if custom_text is not None else {},
        summary=summary_line(draft.model_copy(update={"value_period": period}), status),
        warnings=warnings,
    )


def form_from_request(request: DealRequest, *, owner: str, metadata: ModalMetadata) -> ModalForm:
    """The modal again, filled with what was submitted (the "Try again" path)."""
    return ModalForm(
        metadata=metadata,
        lead=LeadOption(value=request.lead.option_value, label=request.lead_name)
        if request.lead.id
        else new_lead_option(request.lead.new_name or request.lead_name),
        value_text=format_money(request.value, None, metadata.locale or DEFAULT_LOCALE)
        if request.value is not None
        else None,
        value_period=request.value_period,
        confidence=request.confidence,
        date_won=request.date_won,
        status_id=request.status_id,
        owner=owner,
        contact_id=request.contact_id,
        note=request.note,
        custom=request.custom,
    )
