"""`python -m bot doctor`: Slack token and scopes, Close key and catalog, Close -> Slack sync,
and who maps to whom."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TextIO

from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.close.catalog import Catalog
from bot.close.client import CloseClient
from bot.close.errors import CloseAuthError, CloseError
from bot.connections.store import ConnectionStore
from bot.deals import attribution
from bot.identity import EMAIL_SCOPE, Coverage, Identity, SlackProfile, granted_scopes
from bot.identity.store import UserLinkStore
from bot.logs import RedactSecrets
from bot.runtime.preflight import channel_audience, external_channel, posting_channels
from bot.settings import HOW_TO_GET, Settings, split_keys
from bot.slack.audience import Audience, may_show_close_data
from bot.slack.errors import SlackError
from bot.slack.gateway import SlackGateway
from bot.store.db import create_engine, session_factory
from bot.store.migrate import current_revision, head_revision
from bot.sync.events import OBJECT_TYPE
from bot.sync.store import OPEN_STATES, ChangeStore
from bot.sync.webhook import STATE_KEY as WEBHOOK_STATE_KEY

# Without these the bot fails at something; the app manifests in manifests/ request them all.
REQUIRED_SCOPES = ("commands", "chat:write", "users:read", EMAIL_SCOPE, "im:write")
# Without these it still works, with fallbacks (response_url / DM instead of the channel).
RECOMMENDED_SCOPES = ("chat:write.public", "channels:join")
# Without these a pasted Close link shows no preview (everything else works).
PREVIEW_SCOPES = ("links:read", "links:write")
# conversations.info, to tell channels shared with other organizations (EXTERNAL_CHANNELS).
AUDIENCE_SCOPES = ("channels:read", "groups:read", "im:read", "mpim:read")
REINSTALL = "add them under OAuth & Permissions in the Slack app settings, then reinstall the app"


@dataclass
class _Report:
    out: TextIO
    redact: RedactSecrets
    problems: list[str] = field(default_factory=list)
    # The bot token's scopes, as auth.test reported them (None: not reported).
    granted: frozenset[str] | None = None

    def line(self, text: str) -> None:
        # Every line goes through the redactor: an error message must never leak a secret.
        print(self.redact.redact(text), file=self.out)

    def ok(self, text: str) -> None:
        self.line(f"  ✓ {text}")

    def warn(self, text: str) -> None:
        self.line(f"  ! {text}")

    def fail(self, text: str) -> None:
        self.problems.append(text)
        self.line(f"  ✗ {text}")


async def run_doctor(settings: Settings, *, out: TextIO | None = None) -> int:
    """Check everything and print what is wrong and what to do; 0 when nothing is broken."""
    report = _Report(out or sys.stdout, RedactSecrets(settings.secret_values()))
    if settings.slack_bot_token is None or settings.close_api_key is None:
        report.line("Configuration")
        for name in ("SLACK_BOT_TOKEN", "CLOSE_API_KEY"):
            if getattr(settings, name.lower()) is None:
                report.fail(f"{name} is not set: {HOW_TO_GET[name]} (see .env.example).")
        return _summary(report)

    slack = SlackGateway(
        AsyncWebClient(
            token=settings.slack_bot_token.get_secret_value(),
            base_url=settings.slack_api_url,
            retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=3)],
        )
    )
    slack_ok = await _check_slack(report, slack)
    if slack_ok:
        await _check_shared_channels(report, settings, slack)
    if settings.slack_app_token is not None:
        await _check_app_token(report, slack, settings.slack_app_token.get_secret_value())
    async with CloseClient(
        settings.close_api_key.get_secret_value(), settings.close_api_url
    ) as close:
        catalog = await _check_close(report, close)
        async with _database(report, settings) as engine:
            links = (
                UserLinkStore(session_factory(engine), dialect=engine.dialect.name)
                if engine is not None
                else None
            )
            await _check_sync(report, settings, close, engine, catalog is not None)
            await _check_oauth(report, settings, engine)
            await _check_attribution(report, engine)
            if slack_ok and catalog is not None:
                identity = Identity(
                    slack, catalog, links=links, admin_user_ids=frozenset(settings.admin_user_ids)
                )
                await _check_mapping(report, identity)
            else:
                report.line("User mapping")
                report.warn("Skipped: it needs both a working Slack token and Close key.")
    return _summary(report)


async def _check_slack(report: _Report, slack: SlackGateway) -> bool:
    report.line("Slack")
    try:
        auth = await slack.auth_test()
    except SlackError as error:
        report.fail(
            f"Slack refused the bot token ({error.code}): set SLACK_BOT_TOKEN to the Bot User OAuth "
            "Token (xoxb-…) from OAuth & Permissions in the Slack app settings."
        )
        return False
    except Exception as error:  # connection refused, DNS, TLS: say where we tried
        report.fail(
            f"Cannot reach Slack at {slack.client.base_url} ({type(error).__name__}): check "
            "SLACK_API_URL and the network."
        )
        return False
    report.ok(f"Bot token works: @{auth.user} in workspace {auth.team} ({auth.team_id})")
    granted = granted_scopes(auth.headers)
    report.granted = frozenset(granted) if granted is not None else None
    if granted is None:
        report.warn("Slack did not report the token's scopes (no x-oauth-scopes header).")
        return True
    missing = [scope for scope in REQUIRED_SCOPES if scope not in granted]
    if missing:
        report.fail(f"Missing Slack scopes: {', '.join(missing)} — {REINSTALL}.")
        if EMAIL_SCOPE in missing:
            report.line(
                f"    Without {EMAIL_SCOPE} the bot cannot read emails, so nobody is matched "
                "to Close by email: only admin links (`/opportunity link @user <close email>`) "
                "map people until it is added."
            )
    else:
        report.ok("Scopes: " + ", ".join(REQUIRED_SCOPES))
    optional = [scope for scope in RECOMMENDED_SCOPES if scope not in granted]
    if optional:
        report.warn(
            f"Recommended scopes not granted: {', '.join(optional)} (the bot falls back to "
            "replying privately in channels it is not in)."
        )
    previews = [scope for scope in PREVIEW_SCOPES if scope not in granted]
    if previews:
        report.warn(
            f"Link preview scopes not granted: {', '.join(previews)} (pasted Close links stay "
            f"bare) — {REINSTALL}."
        )
    return True


async def _check_shared_channels(report: _Report, settings: Settings, slack: SlackGateway) -> None:
    """EXTERNAL_CHANNELS, the scopes it needs, and whether DEALS_CHANNEL is shared with
    another organization."""
    policy = settings.external_channels
    report.line(f"Channels shared with other organizations (EXTERNAL_CHANNELS={policy})")
    if policy == "allow":
        report.warn(
            "Close data is posted in channels shared with other organizations like anywhere "
            "else: their members read values, statuses and owners."
        )
        return
    granted = report.granted
    missing = [s for s in AUDIENCE_SCOPES if granted is not None and s not in granted]
    if missing:
        report.fail(
            f"Missing Slack scopes: {', '.join(missing)} — without them the bot cannot tell a "
            "shared channel from your own, so it posts no Close data in channels it cannot "
            f"check — {REINSTALL}."
        )
    for name, channel_id in posting_channels(settings):
        try:
            audience = await channel_audience(slack, channel_id)
        except SlackError as error:
            report.fail(
                f"Cannot tell who reads {name} {channel_id} (conversations.info: {error.code})."
            )
            continue
        if may_show_close_data(audience, policy):
            shown = "a DM" if audience is Audience.DM else "internal"
            report.ok(f"{name} {channel_id} is {shown}")
        else:
            report.fail(external_channel(settings, name, channel_id).removeprefix("error: "))


async def _check_app_token(report: _Report, slack: SlackGateway, app_token: str) -> None:
    """Socket Mode's token: asks for a connection URL (left unused), as the bot does at start."""
    try:
        await slack.open_socket_connection(app_token)
    except SlackError as error:
        code = error.code
        hint = (
            " (that is a bot or user token: Socket Mode needs an app-level token, xapp-…)"
            if code == "not_allowed_token_type"
            else ""
        )
        report.fail(
            f"Slack refused the app token ({code}){hint}: set SLACK_APP_TOKEN to an app-level "
            "token with connections:write from Basic Information > App-Level Tokens in the "
            "Slack app settings (and turn Socket Mode on)."
        )
        return
    except Exception as error:
        report.fail(
            f"Cannot reach Slack at {slack.client.base_url} to check the app token "
            f"({type(error).__name__}): check SLACK_API_URL and the network."
        )
        return
    report.ok("App token works: Socket Mode can connect (apps.connections.open)")


async def _check_close(report: _Report, close: CloseClient) -> Catalog | None:
    report.line("Close")
    try:
        me = await close.me()
    except CloseAuthError:
        report.fail(
            "Close rejected the API key: set CLOSE_API_KEY to a key from Close > Settings > "
            "Developer > API Keys."
        )
        return None
    except CloseError as error:
        report.fail(f"Close did not answer /me/ ({error}): check CLOSE_API_URL and the network.")
        return None
    org = me.organizations[0].get("name") if me.organizations else None
    report.ok(f"API key works: {me.email or me.id}" + (f" in {org}" if org else ""))
    catalog = Catalog(close)
    try:
        await catalog.refresh()
    except CloseError as error:
        report.fail(f"Could not load pipelines, statuses, users and custom fields: {error}")
        return None
    required = [f.name for f in catalog.custom_fields if f.required]
    report.ok(
        f"Catalog: {len(catalog.pipelines)} pipelines, {len(catalog.statuses)} opportunity "
        f"statuses, {len(catalog.custom_fields)} opportunity custom fields"
        + (f" (required: {', '.join(required)})" if required else "")
    )
    if not catalog.statuses:
        report.fail(
            "The Close org has no opportunity statuses: add some under Settings > "
            "Opportunity Statuses (or Pipelines) in Close."
        )
    active = len(catalog.active_users)
    inactive = len(catalog.users) - active
    if catalog.memberships_known:
        report.ok(
            f"Users: {active} active" + (f", {inactive} inactive (ignored)" if inactive else "")
        )
    else:
        report.warn(
            f"Users: {len(catalog.users)}; Close did not say who is inactive, so everyone "
            "counts as active."
        )
    return catalog


@asynccontextmanager
async def _database(report: _Report, settings: Settings) -> AsyncIterator[AsyncEngine | None]:
    """The database at its current schema, read-only: doctor never migrates it (None: no
    database or no schema yet)."""
    report.line("Database")
    shown = make_url(settings.database_url).render_as_string(hide_password=True)
    try:
        engine = create_engine(settings.database_url)
        revision = await current_revision(engine)
    except Exception as error:
        report.fail(
            f"Cannot open DATABASE_URL {shown} ({type(error).__name__}): check the URL, "
            "the server and its credentials."
        )
        yield None
        return
    try:
        if revision is None:
            report.warn(
                f"{shown} has no schema yet: the bot creates it when it starts (or run "
                "`python -m bot migrate`). No admin links are stored yet."
            )
            yield None
            return
        head = head_revision()
        if revision != head:
            report.warn(
                f"Schema at revision {revision}, this version expects {head}: the bot upgrades "
                "it when it starts (or run `python -m bot migrate`)."
            )
        else:
            report.ok(f"{shown} (schema {revision})")
        yield engine
    finally:
        await engine.dispose()


async def _check_sync(
    report: _Report,
    settings: Settings,
    close: CloseClient,
    engine: AsyncEngine | None,
    close_ok: bool,
) -> None:
    """Close -> Slack: which way changes come in, the subscription, the last change applied."""
    report.line("Close -> Slack")
    url = settings.close_webhook_url
    every = settings.close_events_poll_seconds
    if url and settings.socket_mode:
        report.warn(
            f"PUBLIC_URL is set but SLACK_APP_TOKEN selects Socket Mode, which serves no HTTP: "
            f"changes come from the event log every {every:g} s instead of {url}."
        )
    if url and not settings.socket_mode:
        report.ok(
            f"Mode: webhook at {url} (and the event log every {every * 10:g} s as a backstop)"
        )
    elif every > 0:
        report.ok(f"Mode: poll, Close's event log every {every:g} s")
    else:
        report.warn(
            "Mode: off (no PUBLIC_URL and CLOSE_EVENTS_POLL_SECONDS=0): changes made in Close "
            "are not shown in Slack."
        )
    state = None
    if engine is not None:
        store = ChangeStore(session_factory(engine), dialect=engine.dialect.name)
        try:
            state = await store.get_state(WEBHOOK_STATE_KEY)
            last = await store.last_applied()
            counts = await store.counts()
        except Exception:  # an older schema: its tables come with the next start
            report.warn("The database has no sync tables yet: the bot adds them when it starts.")
            last, counts = None, {}
        waiting = sum(n for s, n in counts.items() if s in OPEN_STATES)
        if last is not None and last.applied_at is not None:
            report.ok(
                f"Last change applied: {last.event.action} of {last.event.object_id} "
                f"({last.outcome}) at {last.applied_at:%Y-%m-%d %H:%M:%S}Z; {waiting} waiting"
            )
        else:
            report.ok(f"No change from Close applied yet; {waiting} waiting")
    if not close_ok:
        return
    if url and not settings.socket_mode:
        await _check_subscription(report, close, url, state)
    elif every > 0:
        try:
            await close.list_events(object_type=OBJECT_TYPE, action="updated", limit=1)
            report.ok("The Close key can read the event log")
        except CloseError as error:
            report.fail(f"Close refused to list events ({error}): use an admin's API key.")


async def _check_oauth(report: _Report, settings: Settings, engine: AsyncEngine | None) -> None:
    """Per-person Close access: configured or not, and how many people are connected."""
    report.line("People's own Close (OAuth)")
    if not settings.oauth_configured:
        report.ok(
            f"Not configured (CLOSE_ACCESS={settings.access}): everything goes through "
            "CLOSE_API_KEY. Set CLOSE_OAUTH_CLIENT_ID and CLOSE_OAUTH_CLIENT_SECRET to let "
            "people connect their own Close account."
        )
        return
    sealing = settings.token_encryption_key
    keys = len(split_keys(sealing.get_secret_value())) if sealing is not None else 0
    report.ok(
        f"Configured (CLOSE_ACCESS={settings.access}): client {settings.close_oauth_client_id}, "
        f"redirect URI {settings.close_oauth_redirect_uri} (register it in Close's OAuth app), "
        f"{keys} token encryption key(s)"
    )
    if settings.socket_mode:
        report.ok(
            f"Socket Mode serves the connect pages on PORT {settings.port}: PUBLIC_URL must "
            "reach it."
        )
    if engine is None:
        return
    try:
        connected, broken = await ConnectionStore(
            session_factory(engine), dialect=engine.dialect.name
        ).count()
    except Exception:  # an older schema: its tables come with the next start
        report.warn("The database has no connection table yet: the bot adds it when it starts.")
        return
    people = "1 person" if connected == 1 else f"{connected} people"
    must = f", {broken} of whom must reconnect" if broken else ""
    report.ok(f"{people} connected their own Close account{must}")


async def _check_attribution(report: _Report, engine: AsyncEngine | None) -> None:
    """Whether Close took `created_by` from the key, as the bot last learned it."""
    if engine is None:
        return
    try:
        state = await ChangeStore(session_factory(engine), dialect=engine.dialect.name).get_state(
            attribution.STATE_KEY
        )
    except Exception:  # an older schema: its tables come with the next start
        return
    fine, text = attribution.describe(state)
    if fine:
        report.ok(text)
    else:
        report.warn(text)


async def _check_subscription(
    report: _Report, close: CloseClient, url: str, state: dict[str, object] | None
) -> None:
    try:
        mine = [s for s in await close.list_webhooks() if s.url == url]
    except CloseError as error:
        report.fail(f"Close refused to list webhooks ({error}): use an admin's API key.")
        return
    if not mine:
        report.warn(f"No Close webhook for {url} yet: the bot creates it when `serve` starts.")
        return
    if len(mine) > 1:
        report.warn(f"{len(mine)} Close webhooks for {url}: the bot keeps one at its next start.")
    subscription = mine[0]
    known = state is not None and state.get("subscription_id") == subscription.id
    if subscription.status != "active":
        report.fail(
            f"Close webhook {subscription.id} is {subscription.status} (Close pauses one whose "
            "deliveries keep failing): check that PUBLIC_URL reaches this app; the bot "
            "re-activates it within 5 minutes of running."
        )
    elif not known:
        report.warn(
            f"Close webhook {subscription.id} exists but its signing key is not in this "
            "database: the bot replaces it when it starts."
        )
    else:
        report.ok(f"Close webhook {subscription.id}: active, signing key stored")


async def _check_mapping(report: _Report, identity: Identity) -> None:
    try:
        coverage = await identity.coverage()
    except SlackError as error:
        report.line("User mapping")
        report.fail(f"Slack refused users.list ({error.code}): {REINSTALL}.")
        return
    _print_coverage(report, coverage)


def _print_coverage(report: _Report, coverage: Coverage) -> None:
    rows = coverage.rows
    by_email = sum(1 for r in rows if r.mapping.source == "email")
    by_override = sum(1 for r in rows if r.mapping.source == "override")
    refused = [r for r in coverage.unmapped if r.mapping.refused]
    unmapped = [r for r in coverage.unmapped if not r.mapping.refused]
    report.line(
        f"User mapping: {len(rows)} active Slack members; {by_email + by_override} mapped "
        f"({by_email} by email, {by_override} by override), {len(unmapped)} unmapped"
        + (f", {len(refused)} guest(s)" if refused else "")
    )
    if coverage.emails_visible is False:
        report.warn(f"No {EMAIL_SCOPE}: only overrides map people (see Slack above).")
    for row in coverage.mapped:
        user = row.mapping.close_user
        assert user is not None
        report.ok(f"{_who(row.profile)} → {user.label} [{row.mapping.source}]")
    for row in unmapped:
        report.warn(f"{_who(row.profile)} → unmapped: {row.mapping.reason}")
    for row in refused:
        report.warn(f"{_who(row.profile)} → cannot own opportunities: {row.mapping.reason}")
    if unmapped:
        report.line(
            "    To map someone: invite them to Close with their Slack email, or a Slack "
            "workspace admin/owner (or anyone in ADMIN_USER_IDS) runs "
            "`/opportunity link @user <close email>` in Slack."
        )


def _who(profile: SlackProfile) -> str:
    handle = f"@{profile.handle}, " if profile.handle else ""
    return f"{profile.name or profile.user_id} ({handle}{profile.user_id})"


def _summary(report: _Report) -> int:
    if not report.problems:
        report.line("All good.")
        return 0
    report.line(f"{len(report.problems)} problem(s) to fix:")
    for number, problem in enumerate(report.problems, 1):
        report.line(f"  {number}. {problem}")
    return 1
