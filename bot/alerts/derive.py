"""Pure: whether a Close event is news for the deal's owner, and what their DM says of it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from bot.blocks.alerts import Alert, AlertKind
from bot.blocks.changes import FieldChange, field_changes
from bot.close.models import Opportunity
from bot.sync.events import CloseEvent, read_opportunity

# Fields whose label Close keeps next to the id; an old id without its old label is named here.
_LABELS = {"status_id": "status_label", "user_id": "user_name"}


class Names(Protocol):
    """How Close names what an event gives by id (the catalog in memory)."""

    def status_label(self, status_id: str) -> str | None: ...

    def user_name(self, user_id: str) -> str | None: ...

    def field_names(self) -> dict[str, str]: ...


def alert_for(event: CloseEvent, names: Names) -> Alert | None:
    """The alert its owner gets for `event`, or None when it is not news to them.

    News: an opportunity changed or deleted by someone other than its owner (an automation
    too), or assigned to its owner by someone else (a new one, or another's handed over).
    Not news: the owner's own change, a change that shows nothing a person reads, an event
    without the opportunity's data (Close leaves it out of old events for non-admin keys).
    """
    if not event.followed or not event.data:
        return None
    after = read_opportunity(event.data)
    if after is None or not after.user_id:
        return None
    if event.user_id == after.user_id:
        return None  # their own change (in Close, or through the app with their own access)
    if event.action == "deleted":
        return _alert(event.id, event.updated_at, event.user_id, after, names, "deleted")
    if event.action == "created":
        at = event.updated_at
        return _alert(event.id, at, event.user_id, after, names, "assigned", created=True)
    before = read_opportunity(_before(event.data, dict(event.previous_data or {}), names))
    if before is None:
        return None
    return _changed(event.id, event.updated_at, before, after, names, by=event.user_id)


def alert_for_change(
    before: Opportunity,
    after: Opportunity,
    names: Names,
    *,
    key: str,
    at: datetime,
    by: str,
    by_slack: str | None = None,
) -> Alert | None:
    """The alert for a change made through the app by `by` (a Close user id; `by_slack` the
    Slack user who made it): news to the owner as a change made in Close would be."""
    if not after.user_id or by == after.user_id:
        return None
    return _changed(key, at, before, after, names, by=by, by_slack=by_slack)


def _changed(
    key: str,
    at: datetime,
    before: Opportunity,
    after: Opportunity,
    names: Names,
    *,
    by: str | None,
    by_slack: str | None = None,
) -> Alert | None:
    fields = field_changes(before, after, names.field_names())
    if not fields:
        return None
    kind: AlertKind = "assigned" if before.user_id != after.user_id else "changed"
    return _alert(key, at, by, after, names, kind, fields=fields, by_slack=by_slack)


def _before(data: Mapping[str, Any], previous: dict[str, Any], names: Names) -> dict[str, Any]:
    """The opportunity before the change: its data with the changed fields' old values."""
    for key, label in _LABELS.items():
        old = previous.get(key)
        if isinstance(old, str) and label not in previous:
            previous[label] = (
                names.status_label(old) if key == "status_id" else names.user_name(old)
            )
    return {**data, **previous}


def _alert(
    key: str,
    at: datetime,
    by: str | None,
    after: Opportunity,
    names: Names,
    kind: AlertKind,
    *,
    created: bool = False,
    fields: list[FieldChange] | None = None,
    by_slack: str | None = None,
) -> Alert:
    assert after.user_id is not None
    return Alert(
        event_id=key,
        at=at,
        opportunity_id=after.id,
        lead_id=after.lead_id,
        lead_name=after.lead_name or after.lead_id,
        owner=after.user_id,
        kind=kind,
        created=created,
        by=by,
        by_name=names.user_name(by) if by else None,
        by_slack=by_slack,
        fields=fields or [],
    )
