"""Acting on a logged opportunity from its confirmation: who may, the edit form, PUT what changed, won/lost."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.blocks import messages
from bot.blocks.changes import change_message, describe_changes, refusal
from bot.blocks.custom_fields import PREFIX as CUSTOM_PREFIX
from bot.blocks.custom_fields import shown
from bot.blocks.modal import CatalogView, LeadOption, ModalForm, ModalMetadata
from bot.blocks.text import escape
from bot.close.catalog import Catalog
from bot.close.client import CloseClient
from bot.close.errors import CloseAccessBroken, CloseError, CloseNotConnected
from bot.close.models import Contact, Opportunity, Status, parse_close_time
from bot.connections import CloseClients
from bot.deals.announce import Announcer, won_announcement
from bot.deals.confirmation import Confirmation
from bot.deals.models import DealRequest, ReplyTarget, Submission
from bot.deals.notify import Notifier
from bot.deals.store import SubmissionStore
from bot.deals.telling import IMMEDIATELY, ChangeTeller, ChangeTold, WonClaims
from bot.identity import Identity
from bot.logs import redact
from bot.parsing.money import format_money
from bot.slack.errors import SlackError
from bot.slack.gateway import SlackGateway

log = logging.getLogger(__name__)

Outcome = Literal["won", "lost"]
# What a one-tap change does: Won or Lost, or a body to PUT (and how the thread says it) made
# from the opportunity as Close has it now (`date_won` + 7 days needs its current date).
Change = Outcome | Callable[[Opportunity], tuple[dict[str, Any], str]]
CORE_FIELDS = (
    "lead",
    "value",
    "value_period",
    "confidence",
    "date_won",
    "status",
    "owner",
    "contact",
    "note",
)
# metadata.loaded: Slack keeps 3000 characters of private_metadata for everything, so a field's
# fingerprint is a hash of its key (TAG_CHARS) and of its value (DIGEST_CHARS), not its full key
# ("custom.cf_" and 43 more characters, 60 fields would not fit).
FINGERPRINTS = "fp"
TAG_CHARS = 5
DIGEST_CHARS = 8
FINGERPRINT_BUDGET = 2000  # ~150 fields with values; the rest of the metadata takes ~500
OWNER_CHECK_SECONDS = 1.0
# How long Close -> Slack holds back an opportunity's changes while the app writes it itself.
OWN_WRITE_HOLD = timedelta(seconds=30)
LOAD_BUDGET_SECONDS = 5.0


def _short_hash(raw: str, size: int) -> str:
    hashed = hashlib.sha1(raw.encode(), usedforsecurity=False).digest()
    return base64.urlsafe_b64encode(hashed).decode()[:size]


def digest(value: Any) -> str:
    """A short fingerprint of a field's value; blank text and empty lists read as no value."""
    if isinstance(value, str):
        value = value.strip() or None
    if isinstance(value, list | dict) and not value:
        value = None
    return _short_hash(json.dumps(value, sort_keys=True, default=str), DIGEST_CHARS)


def _tag(key: str) -> str:
    return _short_hash("key:" + key, TAG_CHARS)


def fingerprints(fields: dict[str, Any]) -> dict[str, str]:
    """What `metadata.loaded` keeps: `<tag><digest>` per field that has a value, packed in one string.

    Fields without a value are left out (they read back as empty). Past FINGERPRINT_BUDGET (an
    org with some 150 filled fields) the rest are left out too: such a field is sent again as
    the form shows it, and emptying it is not saved.
    """
    width = TAG_CHARS + DIGEST_CHARS
    empty = digest(None)
    entries = [
        _tag(key) + found for key, value in fields.items() if (found := digest(value)) != empty
    ]
    return {FINGERPRINTS: "".join(entries[: FINGERPRINT_BUDGET // width])}


def fingerprinted(loaded: dict[str, str] | None) -> bool:
    """Whether `loaded` is in this format (a form opened before it was is out of date)."""
    return loaded is not None and FINGERPRINTS in loaded


def close_said(error: CloseError) -> str:
    """Close's error for a Slack message: redacted like a log line (it may echo a credential);
    for someone whose own Close access must be mended first, what to do about it."""
    if isinstance(error, CloseNotConnected):
        return "connect your Close account first: `/opportunity connect`"
    if isinstance(error, CloseAccessBroken):
        return "Close no longer takes your connection: reconnect with `/opportunity connect`"
    return escape(redact(str(error)))


def opportunity_fields(
    opportunity: Opportunity, owner: str | None, catalog: CatalogView
) -> dict[str, Any]:
    """The modal's fields as the opportunity fills them, normalized like a submission."""
    fields: dict[str, Any] = {
        "lead": opportunity.lead_id,
        "value": opportunity.value,
        "value_period": opportunity.value_period,
        "confidence": opportunity.confidence,
        "date_won": opportunity.date_won,
        "status": opportunity.status_id,
        "owner": owner,
        "contact": opportunity.contact_id,
        "note": opportunity.note,
    }
    for field in shown(catalog.custom_fields):
        fields[CUSTOM_PREFIX + field.id] = opportunity.custom.get(field.id)
    return fields


def request_fields(request: DealRequest, owner: str | None, catalog: CatalogView) -> dict[str, Any]:
    """The same fields as submitted (a new lead reads `new:<name>`, never a lead id)."""
    fields: dict[str, Any] = {
        "lead": request.lead.option_value,
        "value": request.value,
        "value_period": request.value_period,
        "confidence": request.confidence,
        "date_won": request.date_won,
        "status": request.status_id,
        "owner": owner,
        "contact": request.contact_id,
        "note": request.note,
    }
    for field in shown(catalog.custom_fields):
        fields[CUSTOM_PREFIX + field.id] = request.custom.get(field.id)
    return fields


def changed_fields(
    loaded: dict[str, str], submitted: dict[str, Any], present: set[str]
) -> list[str]:
    """Fields the user changed: shown in the submitted view and unlike what the form loaded.

    A block the view did not show (contacts not loaded yet, say) is never read as "cleared", and
    a field without a fingerprint was loaded empty (a field Close added since reads empty too, so
    leaving it empty never clears it in Close).
    """
    packed = loaded.get(FINGERPRINTS, "")
    width = TAG_CHARS + DIGEST_CHARS
    seen: dict[str, set[str]] = {}
    for start in range(0, len(packed) - width + 1, width):
        # A set per tag: two keys whose tags collide still compare against their own digest.
        seen.setdefault(packed[start : start + TAG_CHARS], set()).add(
            packed[start + TAG_CHARS : start + width]
        )
    empty = {digest(None)}
    return [
        key
        for key, value in submitted.items()
        if key in present and digest(value) not in seen.get(_tag(key), empty)
    ]


def form_from_opportunity(
    opportunity: Opportunity,
    *,
    metadata: ModalMetadata,
    owner: str | None,
    catalog: CatalogView,
    contacts: list[Contact] | None = None,
    summary: str | None = None,
    warnings: list[str] | None = None,
) -> ModalForm:
    """The edit modal filled with the opportunity; `metadata.loaded` fingerprints its fields."""
    loaded = fingerprints(opportunity_fields(opportunity, owner, catalog))
    custom = {
        field.id: opportunity.custom[field.id]
        for field in shown(catalog.custom_fields)
        if opportunity.custom.get(field.id) is not None
    }
    return ModalForm(
        metadata=metadata.model_copy(update={"loaded": loaded}),
        lead=LeadOption(
            value=opportunity.lead_id, label=opportunity.lead_name or opportunity.lead_id
        ),
        value_text=format_money(opportunity.value, opportunity.value_currency)
        if opportunity.value is not None
        else None,
        value_period=opportunity.value_period,
        confidence=opportunity.confidence,
        date_won=opportunity.date_won,
        status_id=opportunity.status_id,
        owner=owner,
        contacts=contacts or [],
        contact_id=opportunity.contact_id,
        note=opportunity.note or None,
        custom=custom,
        summary=summary,
        warnings=warnings or [],
    )


def put_body(
    request: DealRequest, changed: list[str], *, owner_close_id: str | None, lead_id: str
) -> dict[str, Any]:
    """`PUT /opportunity/{id}/` with only what changed (Close treats PUT as a patch)."""
    body: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    for key in changed:
        if key == "lead":
            body["lead_id"] = lead_id
        elif key == "status":
            if request.status_id:  # an emptied select cannot unset a status
                body["status_id"] = request.status_id
                if request.pipeline_id:
                    body["pipeline_id"] = request.pipeline_id
        elif key == "owner":
            if owner_close_id:
                body["user_id"] = owner_close_id
        elif key == "contact":
            body["contact_id"] = request.contact_id
        elif key == "note":
            body["note"] = request.note or ""
        elif key.startswith(CUSTOM_PREFIX):
            cf_id = key.removeprefix(CUSTOM_PREFIX)
            custom[cf_id] = request.custom.get(cf_id)
        else:
            body[key] = getattr(request, key)
    if custom:
        body["custom"] = custom
    return body


def outcome_status(catalog: Catalog, opportunity: Opportunity, kind: Outcome) -> Status | None:
    """The first won (or lost) status of the opportunity's own pipeline."""
    pipeline = catalog.pipeline_for_status(opportunity.status_id)
    pipeline_id = pipeline.id if pipeline else opportunity.pipeline_id
    for group, statuses in catalog.statuses_by_pipeline():
        if pipeline_id in (None, "") or group.id == pipeline_id:
            found = next((s for s in statuses if s.type == kind), None)
            if found is not None:
                return found
    return None


class OpportunityViews(WonClaims, Protocol):
    """The opportunities as Slack shows them (kept by bot/sync): the app's own changes are
    recorded there, so the same change coming back from Close is not told a second time."""

    async def ensure_view(
        self,
        opportunity_id: str,
        *,
        submission_id: str | None,
        shown: dict[str, Any] | None,
        version: datetime | None,
        now: datetime,
    ) -> object: ...

    async def set_writing(
        self, opportunity_id: str, until: datetime | None, *, now: datetime
    ) -> None: ...

    async def record_own_write(
        self,
        opportunity_id: str,
        *,
        submission_id: str | None,
        shown: dict[str, Any],
        version: datetime | None,
        now: datetime,
    ) -> None: ...


class AppChangeNotes(Protocol):
    """Owner alerts (bot/alerts): told of each change made through the app, whoever made it."""

    async def note_app_change(
        self, actor: str, before: Opportunity, after: Opportunity
    ) -> None: ...


class Changes:
    """What the confirmation's buttons and the edit modal do; every change is told in the thread."""

    def __init__(
        self,
        *,
        store: SubmissionStore,
        close: CloseClient,
        catalog: Catalog,
        identity: Identity,
        notifier: Notifier,
        slack: SlackGateway,
        announcer: Announcer,
        close_app_url: str,
        views: OpportunityViews,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        close_clients: CloseClients | None = None,
        cards: bool = False,
        alerts: AppChangeNotes | None = None,
    ) -> None:
        self._store = store
        # A change made here to someone else's deal is news to its owner (an alert DM).
        self._alerts = alerts
        # Whose Close an Edit/Won/Lost goes to (CLOSE_ACCESS): None, the key's always.
        self._clients = close_clients
        # The opportunity as Slack shows it: the app's own changes are recorded there, so the
        # same change coming back from Close (webhook or event log) is not told a second time.
        self._views = views
        self._clock = clock
        self._close = close
        self.catalog = catalog
        self._identity = identity
        self._notifier = notifier
        self._slack = slack
        self._close_app_url = close_app_url
        # The same telling as Close -> Slack's, its steps run at once (bot/deals/telling.py).
        self._teller = ChangeTeller(
            slack=slack,
            announcer=announcer,
            claims=views,
            close_app_url=close_app_url,
            clock=clock,
            cards=cards,
        )

    async def _close_for(self, actor: str) -> CloseClient:
        """The Close client `actor`'s change goes through: their own access where that is
        theirs (Close records them as the one who changed it), else the key's."""
        if self._clients is None:  # (under CLOSE_ACCESS=key, for_person answers with no lookup)
            return self._close
        return await self._clients.for_person(None, actor)

    async def _read_as(self, actor: str, opportunity_id: str) -> Opportunity:
        return await (await self._close_for(actor)).get_opportunity(opportunity_id)

    # --- who may ---

    async def submission(self, confirmation: Confirmation | None) -> Submission | None:
        if confirmation is None:
            return None
        submission = await self._store.get(confirmation.submission_id)
        return submission if submission and submission.opportunity_id else None

    async def allowed_without_close(self, actor: str, submission: Submission) -> bool:
        """The creator, the owner they picked, and admins (Slack admins/owners, ADMIN_USER_IDS)."""
        if actor in (submission.slack_user_id, submission.request.owner_slack_id):
            return True
        return await self._identity.is_admin(actor)

    async def owns_now(self, actor: str, opportunity: Opportunity) -> bool:
        """Whether `actor` is the opportunity's owner in Close now (it may have changed there)."""
        if not opportunity.user_id:
            return False
        mapping = await self._identity.close_user_for(actor)
        return mapping.close_user is not None and mapping.close_user.id == opportunity.user_id

    async def allowed(
        self, actor: str, submission: Submission, opportunity: Opportunity | None = None
    ) -> bool:
        if await self.allowed_without_close(actor, submission):
            return True
        if opportunity is None and submission.opportunity_id:
            try:  # as they see it in Close (their own access where CLOSE_ACCESS gives one)
                opportunity = await asyncio.wait_for(
                    self._read_as(actor, submission.opportunity_id), OWNER_CHECK_SECONDS
                )
            except (CloseError, TimeoutError):
                return False
        return opportunity is not None and await self.owns_now(actor, opportunity)

    async def refuse(self, answer: ReplyTarget, submission: Submission) -> None:
        lead_id = submission.lead_id or submission.request.lead.id or ""
        text = refusal(
            submission.slack_user_id,
            submission.request.owner_slack_id,
            messages.lead_url(self._close_app_url, lead_id),
        )
        await self.tell(answer, text)

    async def tell(self, answer: ReplyTarget, text: str) -> None:
        """An answer only `answer.user_id` sees, in the thread where they clicked."""
        actor = answer.user_id
        if answer.channel_id:
            try:
                await self._slack.post_ephemeral(
                    answer.channel_id, actor, text, thread_ts=answer.thread_ts
                )
                return
            except SlackError as error:
                log.info("chat.postEphemeral failed: %s", error.code)
        if answer.response_url:
            try:
                await AsyncWebhookClient(answer.response_url).send(
                    text=text, response_type="ephemeral", replace_original=False
                )
                return
            except Exception as error:  # the DM below still reaches them
                log.info("response_url failed: %s", type(error).__name__)
        await self._notifier.post(ReplyTarget(user_id=actor), messages.notice(text))

    # --- the edit form ---

    def stored_opportunity(self, submission: Submission) -> Opportunity | None:
        """The opportunity as Close returned it at creation (to open the form at once)."""
        if not submission.response:
            return None
        try:
            return Opportunity.model_validate(submission.response)
        except ValueError:
            return None

    async def slack_owner(self, opportunity: Opportunity, hints: list[str | None]) -> str | None:
        """The Slack user for the opportunity's Close owner: a likely person first, then email."""
        if not opportunity.user_id:
            return None
        for hint in dict.fromkeys(h for h in hints if h):
            mapping = await self._identity.close_user_for(hint)
            if mapping.close_user is not None and mapping.close_user.id == opportunity.user_id:
                return hint
        user = self.catalog.user(opportunity.user_id)
        if user is None or not user.email:
            return None
        try:
            return await self._slack.user_id_by_email(user.email)
        except SlackError:
            return None

    async def fresh_form(self, form: ModalForm, actor: str, submission: Submission) -> ModalForm:
        """The edit form as Close has the opportunity now (or a warning saying it could not)."""
        assert submission.opportunity_id is not None
        try:
            close = await self._close_for(actor)  # what Close shows them, as them
            opportunity = await asyncio.wait_for(
                close.get_opportunity(submission.opportunity_id), LOAD_BUDGET_SECONDS
            )
        except (CloseError, TimeoutError) as error:
            log.info("Loading %s for edit failed: %s", submission.opportunity_id, error)
            return form.model_copy(
                update={
                    "summary": None,
                    "warnings": [
                        "Close is not answering: these are the values from when it was "
                        "logged. Saving sends only what you change."
                    ],
                }
            )
        contacts: list[Contact] = []
        try:
            contacts = await asyncio.wait_for(
                close.list_contacts(opportunity.lead_id), LOAD_BUDGET_SECONDS
            )
        except (CloseError, TimeoutError) as error:
            log.info("Contacts for %s unavailable: %s", opportunity.lead_id, error)
        owner = await self.slack_owner(
            opportunity, [submission.request.owner_slack_id, submission.slack_user_id, actor]
        )
        lead = opportunity.lead_name or opportunity.lead_id
        return form_from_opportunity(
            opportunity,
            metadata=form.metadata,
            owner=owner,
            catalog=self.catalog,
            contacts=contacts,
            summary=f"Editing *{lead}* as Close has it now. Only what you change is saved.",
        )

    # --- changes ---

    async def set_outcome(
        self, answer: ReplyTarget, confirmation: Confirmation, kind: Outcome
    ) -> None:
        """Won/Lost: the pipeline's won or lost status, with the actor's zone for date_won."""
        actor = answer.user_id
        submission = await self.submission(confirmation)
        if submission is None or submission.opportunity_id is None:
            await self.tell(answer, "I cannot find this opportunity any more.")
            return
        read = await self._read(answer, submission.opportunity_id)
        if read is None:
            return
        close, before = read
        if not await self.allowed(actor, submission, before):
            await self.refuse(answer, submission)
            return
        planned = await self._planned(answer, before, kind)
        if planned is None:
            return
        body, what = planned
        after = await self._save(answer, close, submission, before, body)
        if after is not None:
            await self.publish(answer, submission, confirmation, before, after, what)

    async def change_opportunity(
        self, answer: ReplyTarget, opportunity_id: str, change: Change
    ) -> Opportunity | None:
        """Won, Lost or a new date for any opportunity (a nudge's line): the same checks, PUT
        and telling as the confirmation's buttons. Told in its thread when it was logged here
        (no thread: nothing more); None when not done (the actor was told why)."""
        actor = answer.user_id
        read = await self._read(answer, opportunity_id)
        if read is None:
            return None
        close, before = read
        submission = await self._store.by_opportunity(opportunity_id)
        allowed = (
            await self.allowed(actor, submission, before)
            if submission is not None
            else await self.owns_now(actor, before) or await self._identity.is_admin(actor)
        )
        if not allowed:
            await self._refuse_unlogged(answer, before, submission)
            return None
        planned = await self._planned(answer, before, change)
        if planned is None:
            return None
        body, what = planned
        after = await self._save(answer, close, submission, before, body)
        if after is not None and submission is not None:
            await self.publish(answer, submission, Confirmation.of(submission), before, after, what)
        return after

    async def _refuse_unlogged(
        self, answer: ReplyTarget, before: Opportunity, submission: Submission | None
    ) -> None:
        if submission is not None:
            await self.refuse(answer, submission)
            return
        owner = escape(before.user_name or "its owner")
        await self.tell(answer, f"Only {owner} (its owner in Close) or an admin can change this.")

    async def _read(
        self, answer: ReplyTarget, opportunity_id: str
    ) -> tuple[CloseClient, Opportunity] | None:
        """The actor's Close client and the opportunity as Close has it now (else they are told)."""
        try:
            close = await self._close_for(answer.user_id)
            return close, await close.get_opportunity(opportunity_id)
        except (CloseNotConnected, CloseAccessBroken) as error:
            await self.tell(answer, f"Not saved: {close_said(error)}.")
        except CloseError as error:
            await self.tell(
                answer, f"Close is not answering ({close_said(error)}). Try again soon."
            )
        return None

    async def _planned(
        self, answer: ReplyTarget, before: Opportunity, change: Change
    ) -> tuple[dict[str, Any], str] | None:
        """What to PUT for `change` and how the thread says it; None (told why) if nothing."""
        if not isinstance(change, str):
            body, what = change(before)
            return body, what
        status = outcome_status(self.catalog, before, change)
        if status is None:
            pipeline = escape(before.pipeline_name or "this")
            await self.tell(answer, f"The {pipeline} pipeline has no {change} status in Close.")
            return None
        if before.status_id == status.id:
            await self.tell(answer, f"It is already *{escape(status.label)}*.")
            return None
        return {"status_id": status.id}, f"marked it *{escape(status.label)}*"

    async def _save(
        self,
        answer: ReplyTarget,
        close: CloseClient,
        submission: Submission | None,
        before: Opportunity,
        body: dict[str, Any],
    ) -> Opportunity | None:
        """The PUT, in the actor's zone (Close sets a won date from it); None if Close refused
        (the actor told). A deal logged here is recorded as shown, so its change coming back
        from Close is not told twice."""
        profile = await self._identity.profile(answer.user_id)
        offset = profile.tz_offset_hours if profile else None
        try:
            async with self._writing(submission, before) as written:
                after = await close.update_opportunity(before.id, body, tz_offset_hours=offset)
                written.append(after)
        except CloseError as error:
            await self.tell(answer, f"Close did not take it: {close_said(error)}")
            return None
        await self._note_alert(answer.user_id, before, after)
        return after

    async def put(
        self,
        actor: str,
        submission: Submission,
        body: dict[str, Any],
    ) -> tuple[Opportunity, Opportunity]:
        """GET (for the "before" of the thread line) then PUT; raises CloseError."""
        assert submission.opportunity_id is not None
        close = await self._close_for(actor)
        before = await close.get_opportunity(submission.opportunity_id)
        profile = await self._identity.profile(actor)
        async with self._writing(submission, before) as written:
            after = await close.update_opportunity(
                submission.opportunity_id,
                body,
                tz_offset_hours=profile.tz_offset_hours if profile else None,
            )
            written.append(after)
        await self._note_alert(actor, before, after)
        return before, after

    async def _note_alert(self, actor: str, before: Opportunity, after: Opportunity) -> None:
        """The owner's alert of `actor`'s change; never fails the change itself."""
        if self._alerts is None:
            return
        try:
            await self._alerts.note_app_change(actor, before, after)
        except Exception:
            log.warning("Could not note the owner alert of %s's change", actor, exc_info=True)

    @contextlib.asynccontextmanager
    async def _writing(
        self, submission: Submission | None, before: Opportunity
    ) -> AsyncIterator[list[Opportunity]]:
        """Around the app's own PUT: its change, coming back from Close, waits until the result
        is recorded as what Slack shows (then it is not news, nor an owner alert — for a deal
        not logged here too). Append the result to record it."""
        opportunity_id = before.id
        submission_id = submission.id if submission is not None else None
        now = self._clock()
        shown = (submission.response if submission else None) or before.model_dump(mode="json")
        await self._views.ensure_view(
            opportunity_id,
            submission_id=submission_id,
            shown=shown,
            version=parse_close_time(str(shown.get("date_updated") or "")),
            now=now,
        )
        await self._views.set_writing(opportunity_id, now + OWN_WRITE_HOLD, now=now)
        written: list[Opportunity] = []
        try:
            yield written
        finally:
            if written:
                after = written[-1]
                await self._views.record_own_write(
                    opportunity_id,
                    submission_id=submission_id,
                    shown=after.model_dump(mode="json"),
                    version=parse_close_time(after.date_updated or ""),
                    now=self._clock(),
                )
            else:
                await self._views.set_writing(opportunity_id, None, now=self._clock())

    async def publish(
        self,
        answer: ReplyTarget,
        submission: Submission,
        confirmation: Confirmation,
        before: Opportunity,
        after: Opportunity,
        what: str,
    ) -> list[str]:
        """Tell `answer.user_id`'s change in the confirmation (the summary and details updated
        in place, who changed what in the thread and under the deals-channel announcement, a
        win cheered once): the one telling Close -> Slack uses too, its steps run at once."""
        names = {field.id: field.name for field in self.catalog.custom_fields}
        lines = describe_changes(before, after, names)
        actor = answer.user_id
        won = bool(lines) and after.status_type == "won" and before.status_type != "won"
        cheer = (
            won_announcement(
                after, by=f"<@{actor}>", close_app_url=self._close_app_url, where="from Slack"
            )
            if won
            else None
        )
        told = ChangeTold(
            opportunity=after,
            creator=submission.slack_user_id,
            reply=change_message(actor, what, lines) if lines else None,
            cheer=cheer,
            answer=answer,
        )
        await self._teller.tell(confirmation.with_summary_of(submission), told, IMMEDIATELY)
        return lines
