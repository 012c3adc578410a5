"""`python -m bot history`: the audit of the latest submissions — who sent what, when, in what
state, what went to Close and what came back, the Close changes told since and the workflow step."""

from __future__ import annotations

import json
from collections.abc import Sequence

from bot.deals.store import AuditEntry, SubmissionStore
from bot.settings import Settings
from bot.store.db import create_engine, session_factory
from bot.store.migrate import upgrade
from bot.sync.store import ChangeStore, StoredChange
from bot.workflow.history import StepHistory, format_step, step_line, step_record
from bot.workflow.models import WorkflowStep


async def print_history(
    settings: Settings, *, user: str | None, limit: int, as_json: bool = False
) -> int:
    """The audit: who sent what, when, in what state, what went to Close and what came back."""
    engine = create_engine(settings.database_url)
    try:
        await upgrade(engine)
        store = SubmissionStore(session_factory(engine), dialect=engine.dialect.name)
        entries = await store.recent(slack_user_id=user, limit=limit)
        changes = await ChangeStore(
            session_factory(engine), dialect=engine.dialect.name
        ).for_opportunities([e.opportunity_id for e in entries if e.opportunity_id])
        steps = await StepHistory.load(engine, [e.id for e in entries], user=user, limit=limit)
    finally:
        await engine.dispose()
    if as_json:
        for entry in entries:
            applied = changes.get(entry.opportunity_id or "", [])
            record = entry.model_dump(mode="json")
            record["changes"] = [_change_record(change) for change in applied]
            record["workflow_step"] = step_record(steps.of_submissions.get(entry.id))
            print(json.dumps(record, ensure_ascii=False))
        for alone in steps.alone:  # workflow steps that are no submission (bad inputs)
            print(json.dumps({"workflow_step": step_record(alone)}, ensure_ascii=False))
        return 0
    if not entries and not steps.alone:
        print("No submissions yet.")
        return 0
    for entry in entries:
        step = steps.of_submissions.get(entry.id)
        print(format_entry(entry, changes.get(entry.opportunity_id or "", []), step))
    for alone in steps.alone:
        print(format_step(alone))
    return 0


def _change_record(change: StoredChange) -> dict[str, object]:
    """A change made in Close and applied in Slack, as `history --json` lists it."""
    event = change.event
    return {
        "event_id": event.id,
        "action": event.action,
        "date_updated": event.date_updated,
        "user_id": event.user_id,
        "changed_fields": event.changed_fields,
        "source": change.source,
        "outcome": change.outcome,
        "applied_at": change.applied_at.isoformat() if change.applied_at else None,
    }


def format_entry(
    entry: AuditEntry, changes: Sequence[StoredChange] = (), step: WorkflowStep | None = None
) -> str:
    request = entry.request
    head = (
        f"{entry.created_at:%Y-%m-%d %H:%M:%S}Z  {entry.state.value:<8}  {entry.slack_user_id}  "
        f"{request.lead_name}  attempts={entry.attempts}  id={entry.id}"
    )
    lines = [head]
    if step is not None:
        lines.append(step_line(step))
    if entry.sent is not None:
        lines.append("  sent:     " + _compact(entry.sent.get("json", entry.sent)))
    else:
        lines.append("  request:  " + _compact(request.model_dump(mode="json", exclude_none=True)))
    if entry.opportunity_id:
        lines.append(f"  created:  {entry.opportunity_id} on {entry.lead_id}")
    if entry.response is not None:
        lines.append("  response: " + _compact(entry.response))
    if entry.error:
        lines.append(f"  error:    {entry.error}")
    for change in changes:
        who = change.event.user_id or "an automation"
        lines.append(
            f"  changed:  {change.event.date_updated[:19]}Z {change.event.action} in Close by "
            f"{who} ({change.source}): {change.outcome}"
        )
    return "\n".join(lines)


def _compact(data: object, width: int = 400) -> str:
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)
    return text if len(text) <= width else text[: width - 1] + "…"
