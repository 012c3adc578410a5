"""Close's refusals of a deal, said where the user can mend them (the modal's field, the step's input)."""

from __future__ import annotations

from bot.close.errors import CloseHTTPError

# Close's `field-errors` keys -> the modal block that sets the field.
FIELD_NAMES = {
    "lead": "lead",
    "lead_id": "lead",
    "status": "status",
    "status_id": "status",
    "pipeline": "status",
    "pipeline_id": "status",
    "value": "value",
    "value_period": "value_period",
    "confidence": "confidence",
    "date_won": "date_won",
    "user": "owner",
    "user_id": "owner",
    "contact": "contact",
    "contact_id": "contact",
    "note": "note",
}

# A 400 on these means the org's statuses/pipelines changed since the catalog loaded.
STALE_METADATA_FIELDS = frozenset({"status", "status_id", "pipeline", "pipeline_id"})


def block_for_field(field: str) -> str:
    """The modal block a Close `field-errors` key belongs to (custom.cf_x stays custom.cf_x)."""
    return FIELD_NAMES.get(field, field if field.startswith("custom.") else "lead")


def describe_close_error(error: CloseHTTPError) -> str:
    if error.field_errors:
        return "; ".join(f"{field}: {text}" for field, text in error.field_errors.items())
    return "; ".join(error.errors) or error.message or f"HTTP {error.status_code}"


def cannot_act(who: str, *, broken: bool) -> str:
    """Why a workflow step that acts as `who` in Close cannot, and what they do about it."""
    if broken:
        return (
            f"Close no longer accepts {who}'s connection, and this app acts in Close as each "
            "person. They reconnect with `/opportunity connect` in Slack, then run the "
            "workflow again. Nothing was created."
        )
    return (
        f"{who} has not connected their Close account, and this app acts in Close as each "
        "person. They run `/opportunity connect` in Slack, then run the workflow again. "
        "Nothing was created."
    )
