"""People's own Close access: connecting (state, consent, code exchange), disconnecting, and a
valid access token for a (team, Slack user) — refreshed first when it is about to expire or
Close said 401, once per connection across processes."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.blocks.messages import Message, section
from bot.close.catalog import Catalog
from bot.close.client import CloseClient
from bot.connections.oauth import CloseOAuth, TokenAnswer, TokenRefused, TokenUnavailable
from bot.connections.seal import SealBroken, Sealer
from bot.connections.store import (
    Connection,
    ConnectionStore,
    SealedTokens,
    StateProblem,
    StateStore,
)
from bot.connections.wording import Mode, connected_dm
from bot.settings import Settings
from bot.slack.errors import SlackError
from bot.slack.gateway import SlackGateway
from bot.store.db import session_factory

log = logging.getLogger(__name__)

# A token expiring within this is refreshed before use (PRODUCT.md).
REFRESH_MARGIN = timedelta(minutes=5)
# How long one process may hold a connection's refresh: past Close's token request timeout, so
# a lease never runs out under a refresh still in flight; a crashed holder's frees after it.
REFRESH_LEASE = timedelta(seconds=30)
# How often a process waiting on another's refresh rereads the connection.
REREAD_SECONDS = 0.05
# How many people's connections `known` remembers (the longest unread go first).
KNOWN_PEOPLE = 10_000


def _utc_now() -> datetime:
    return datetime.now(UTC)


class NotConnected(Exception):
    """The person has no Close connection."""


class AccessBroken(Exception):
    """Close refused the connection (invalid_grant, 401 after a refresh): reconnect."""


class AccessUnavailable(Exception):
    """Close's token endpoint could not be asked just now: try again later."""


class ConnectRefused(Exception):
    """A connect attempt that stored nothing: `kind` for tests and logs, `text` for the page."""

    def __init__(self, kind: str, title: str, text: str) -> None:
        super().__init__(kind)
        self.kind = kind
        self.title = title
        self.text = text


@dataclass(frozen=True)
class Connected:
    """A connect that stored the connection: who the person is in Close."""

    team_id: str
    slack_user_id: str
    close_user_id: str
    label: str  # "Name (email)" as Close knows them


AGAIN = "Run `/opportunity connect` in Slack for a new link."
STATE_TEXTS = {
    "unknown": (
        "This link is not valid",
        f"This connect link is unknown to the app (or incomplete). {AGAIN}",
    ),
    "used": (
        "This link was already used",
        f"Each connect link works once. {AGAIN} If you just connected, you are all set.",
    ),
    "expired": (
        "This link has expired",
        f"Connect links work for 10 minutes. {AGAIN}",
    ),
}


class CloseAccess:
    """Connect, disconnect, and `token_for`; one per process, several per database.

    One refresh per connection across processes: a process that finds the token stale (or
    refused) takes the connection's refresh lease with one conditional UPDATE — only against
    the `version` it read, only if nobody else holds an unexpired lease — and only then spends
    the refresh token; the new pair is stored by another conditional UPDATE that bumps the
    version (old refresh token replaced in the same statement). A process that does not get
    the lease rereads the row until the version moves on and uses the stored token. Nothing is
    held open across the HTTP call (no transaction, no row lock), so SQLite's single writer
    and PostgreSQL behave alike; a holder that dies frees the lease after REFRESH_LEASE.
    Within a process, an asyncio.Lock per connection keeps coroutines from polling each other.
    """

    def __init__(
        self,
        *,
        connections: ConnectionStore,
        states: StateStore,
        sealer: Sealer,
        oauth: CloseOAuth,
        close: CloseClient,
        catalog: Catalog,
        slack: SlackGateway,
        start_url: Callable[[str], str | None],
        clock: Callable[[], datetime] = _utc_now,
        holder: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        mode: Mode = "either",
    ) -> None:
        self.connections = connections
        # CLOSE_ACCESS: what a connection changes, as the connected DM says.
        self.mode: Mode = mode
        self.states = states
        self._sealer = sealer
        self.oauth = oauth
        self._close = close
        self._catalog = catalog
        self._slack = slack
        self._start_url = start_url
        self._clock = clock
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        # One refresh per connection in this process; across processes the lease does it.
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._monotonic = monotonic
        # Each person's connection as last read here, with when (`known`): what Identity and
        # the per-person Close clients decide from. A change made here forgets it at once.
        self._known: dict[str, tuple[float, Connection | None]] = {}
        # Moves on for a person whenever their connection changes here (`epoch`): a token
        # held from before is not reused.
        self._epochs: dict[str, int] = {}
        self.refresh_margin = REFRESH_MARGIN
        self.lease = REFRESH_LEASE

    # --- connecting -------------------------------------------------------------------------

    async def connect_link(self, team_id: str, slack_user_id: str) -> str | None:
        """A fresh *Connect Close* URL for this person (None without PUBLIC_URL)."""
        state = await self.states.mint(team_id, slack_user_id, now=self._clock())
        return self._start_url(state)

    async def consent_url(self, state: str) -> str:
        """GET /close/oauth/start: where to send the browser (the state is checked, not used)."""
        try:
            await self.states.peek(state, now=self._clock())
        except StateProblem as problem:
            raise _state_refused(problem) from None
        return self.oauth.consent_url(state)

    async def complete(self, *, state: str, code: str | None, error: str | None) -> Connected:
        """GET /close/oauth/callback: use the state up, exchange the code, check the org, store.
        Anything short of a connection raises ConnectRefused and stores no connection."""
        try:
            owner = await self.states.consume(state, now=self._clock())
        except StateProblem as problem:
            raise _state_refused(problem) from None
        if error is not None or not code:
            raise _declined(error)
        try:
            answer = await self.oauth.exchange(code)
        except (TokenRefused, TokenUnavailable) as failure:
            log.warning("Close code exchange failed for %s: %s", owner.slack_user_id, failure)
            raise ConnectRefused(
                "exchange_failed",
                "Close did not complete the connection",
                "Close did not accept this sign-in (the code may have been used or have "
                f"expired). Nothing was saved. {AGAIN}",
            ) from None
        try:
            key_org = await self._key_organization()
        except Exception as failure:  # Close down: better no connection than an unchecked one
            log.warning("Could not read CLOSE_API_KEY's organization: %s", type(failure).__name__)
            raise ConnectRefused(
                "organization_unknown",
                "Close did not answer",
                f"I could not check your Close organization just now. Nothing was saved. {AGAIN}",
            ) from None
        if key_org is not None and answer.organization_id != key_org:
            log.warning(
                "Refused a Close connection of %s to organization %s (the key's is %s)",
                owner.slack_user_id,
                answer.organization_id,
                key_org,
            )
            raise ConnectRefused(
                "other_organization",
                "That is another Close organization",
                "You signed in to a Close organization other than the one this app works with. "
                "Nothing was saved. In Close, switch to your team's organization (or pick it on "
                "the consent page), then run `/opportunity connect` in Slack for a new link.",
            )
        await self._store(owner.team_id, owner.slack_user_id, answer)
        label = self._label(answer.user_id)
        log.info("%s connected their Close account (%s)", owner.slack_user_id, answer.user_id)
        connected = Connected(owner.team_id, owner.slack_user_id, answer.user_id, label)
        await self._tell_connected(connected)
        return connected

    async def _store(self, team_id: str, slack_user_id: str, answer: TokenAnswer) -> None:
        now = self._clock()
        await self.connections.save(
            team_id=team_id,
            slack_user_id=slack_user_id,
            close_user_id=answer.user_id,
            organization_id=answer.organization_id,
            access_token_sealed=self._sealer.seal(answer.access_token),
            refresh_token_sealed=self._sealer.seal(answer.refresh_token),
            expires_at=answer.expires_at(now),
            now=now,
        )
        self._changed(slack_user_id)

    async def _key_organization(self) -> str | None:
        """CLOSE_API_KEY's organization: known from start-up's check or the catalog, else asked."""
        if self._catalog.organization_id is None:
            organizations = (await self._close.me()).organizations
            if organizations:
                self._catalog.organization_id = str(organizations[0]["id"])
        return self._catalog.organization_id

    def _label(self, close_user_id: str) -> str:
        user = self._catalog.user(close_user_id)
        return user.label if user is not None else close_user_id

    async def _tell_connected(self, connected: Connected) -> None:
        await self._dm(connected.slack_user_id, connected_dm(connected.label, self.mode))

    async def disconnect(self, team_id: str, slack_user_id: str) -> bool:
        """Forget the person's tokens; True if there were any."""
        removed = await self.connections.delete(team_id, slack_user_id)
        self._changed(slack_user_id)
        if removed:
            log.info("%s disconnected their Close account", slack_user_id)
        return removed

    async def connection(self, slack_user_id: str) -> Connection | None:
        return await self.connections.of_user(slack_user_id)

    def label(self, connection: Connection) -> str:
        return self._label(connection.close_user_id)

    async def known(self, slack_user_id: str, *, within: float) -> Connection | None:
        """The person's connection as read at most `within` seconds ago (read now if not): a
        connect, disconnect or breakage in this process is seen at once, one made through
        another process within `within`."""
        now = self._monotonic()
        read = self._known.get(slack_user_id)
        if read is not None and now - read[0] < within:
            return read[1]
        connection = await self.connection(slack_user_id)
        self._known.pop(slack_user_id, None)
        self._known[slack_user_id] = (now, connection)
        while len(self._known) > KNOWN_PEOPLE:
            del self._known[next(iter(self._known))]
        return connection

    def epoch(self, slack_user_id: str) -> int:
        """How many times the person's connection changed in this process."""
        return self._epochs.get(slack_user_id, 0)

    def _changed(self, slack_user_id: str) -> None:
        self._known.pop(slack_user_id, None)
        self._epochs[slack_user_id] = self.epoch(slack_user_id) + 1

    # --- acting as the person ---------------------------------------------------------------

    async def token_for(
        self, team_id: str, slack_user_id: str, *, rejected: str | None = None
    ) -> str:
        """A valid access token for the person: the stored one, or a refreshed one when it
        expires within 5 minutes or when `rejected` (the token Close just answered 401 to) is
        still the stored one. Raises NotConnected, AccessBroken or AccessUnavailable."""
        key = (team_id, slack_user_id)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            return await self._token(team_id, slack_user_id, rejected)

    async def _token(self, team_id: str, slack_user_id: str, rejected: str | None) -> str:
        deadline = asyncio.get_running_loop().time() + self.lease.total_seconds() + 5
        while True:
            sealed = await self.connections.sealed(team_id, slack_user_id)
            if sealed is None:
                raise NotConnected(slack_user_id)
            if sealed.connection.broken:
                raise AccessBroken(sealed.connection.broken_reason or "broken")
            token = self._open(sealed.access_token_sealed)
            now = self._clock()
            stale = sealed.connection.expires_at - now <= self.refresh_margin
            if not stale and token != rejected:
                return token  # fresh, or another process already replaced the rejected one
            refreshed = await self._try_refresh(sealed, now)
            if refreshed is not None:
                return refreshed
            # Another process holds this connection's refresh: its tokens will be stored.
            if asyncio.get_running_loop().time() > deadline:
                raise AccessUnavailable("another process's refresh did not finish")
            await asyncio.sleep(REREAD_SECONDS)

    async def _try_refresh(self, sealed: SealedTokens, now: datetime) -> str | None:
        """Refresh if this process takes the lease for the version read; None if another
        process holds it (the caller rereads)."""
        c = sealed.connection
        taken = await self.connections.take_refresh(
            c.team_id,
            c.slack_user_id,
            version=c.version,
            holder=self.holder,
            now=now,
            until=now + self.lease,
        )
        if not taken:
            return None
        try:
            answer = await self.oauth.refresh(self._open(sealed.refresh_token_sealed))
        except TokenRefused as refused:
            if refused.error == "invalid_grant":  # this person's grant is gone: reconnect
                await self._broke(c, f"Close refused the refresh ({refused.error})")
                raise AccessBroken(refused.error) from None
            # Anything else (invalid_client: the app's own credentials) is the admin's to fix,
            # not a reason to make everyone reconnect.
            await self.connections.release_refresh(
                c.team_id, c.slack_user_id, version=c.version, holder=self.holder
            )
            log.error("Close refused the OAuth app's refresh request: %s", refused.error)
            raise AccessUnavailable(str(refused)) from None
        except TokenUnavailable as unavailable:
            await self.connections.release_refresh(
                c.team_id, c.slack_user_id, version=c.version, holder=self.holder
            )
            raise AccessUnavailable(str(unavailable)) from None
        except BaseException:
            await self.connections.release_refresh(
                c.team_id, c.slack_user_id, version=c.version, holder=self.holder
            )
            raise
        done = self._clock()
        stored = await self.connections.refreshed(
            c.team_id,
            c.slack_user_id,
            version=c.version,
            holder=self.holder,
            access_token_sealed=self._sealer.seal(answer.access_token),
            refresh_token_sealed=self._sealer.seal(answer.refresh_token),
            expires_at=answer.expires_at(done),
            now=done,
        )
        if not stored:
            # The lease ran out and the connection moved on (a reconnect, a disconnect):
            # these tokens belong to nobody now.
            log.warning("A refreshed Close token of %s came too late to store", c.slack_user_id)
            raise AccessUnavailable("the connection changed during the refresh")
        log.info("Refreshed the Close token of %s", c.slack_user_id)
        return answer.access_token

    async def _broke(self, connection: Connection, reason: str) -> None:
        await self.connections.mark_broken(
            connection.team_id,
            connection.slack_user_id,
            version=connection.version,
            reason=reason,
            now=self._clock(),
        )
        self._changed(connection.slack_user_id)
        log.warning("The Close connection of %s is broken: %s", connection.slack_user_id, reason)

    async def refused_after_refresh(self, team_id: str, slack_user_id: str) -> None:
        """Close answered 401 to a token just refreshed: the connection is no good."""
        sealed = await self.connections.sealed(team_id, slack_user_id)
        if sealed is not None and not sealed.connection.broken:
            await self._broke(sealed.connection, "Close refused a freshly refreshed token (401)")

    def _open(self, sealed: str) -> str:
        try:
            return self._sealer.open(sealed)
        except SealBroken as broken:
            raise AccessBroken(str(broken)) from None

    async def tell_broken(self, team_id: str, slack_user_id: str) -> bool:
        """DM the person once per breakage that they must reconnect, with a *Reconnect* button;
        True if this call told them."""
        if not await self.connections.mark_told(team_id, slack_user_id, now=self._clock()):
            return False
        url = await self.connect_link(team_id, slack_user_id)
        text = (
            "Close no longer accepts your connection, so what you do in Slack cannot go to "
            "Close as you. Connect again to carry on — anything you submitted waits for it."
        )
        blocks: list[dict[str, object]] = [section(text)]
        if url is not None:
            blocks.append(connect_actions(url, "Reconnect Close"))
        await self._dm(slack_user_id, text, blocks)
        return True

    async def _dm(
        self, slack_user_id: str, text: str, blocks: list[dict[str, object]] | None = None
    ) -> None:
        try:
            channel = await self._slack.open_dm(slack_user_id)
            message = Message(text=text, blocks=blocks or [section(text)])
            await self._slack.post_message(channel, message)
        except SlackError as error:
            log.warning("Could not DM %s: %s", slack_user_id, error.code)

    async def aclose(self) -> None:
        await self.oauth.aclose()


CONNECT_ACTION_ID = "close_connect"


def connect_actions(url: str, label: str = "Connect Close") -> dict[str, object]:
    """The *Connect Close* button: a link button (Slack still sends an action, acked)."""
    return {
        "type": "actions",
        "block_id": "close_connect",
        "elements": [
            {
                "type": "button",
                "action_id": CONNECT_ACTION_ID,
                "text": {"type": "plain_text", "text": label},
                "url": url,
                "style": "primary",
            }
        ],
    }


def _state_refused(problem: StateProblem) -> ConnectRefused:
    title, text = STATE_TEXTS.get(problem.kind, STATE_TEXTS["unknown"])
    return ConnectRefused(f"state_{problem.kind}", title, text)


def _declined(error: str | None) -> ConnectRefused:
    if error == "access_denied":
        return ConnectRefused(
            "access_denied",
            "Not connected",
            "You declined on Close's page, so nothing was saved. To connect after all, run "
            "`/opportunity connect` in Slack for a new link.",
        )
    return ConnectRefused(
        "oauth_error",
        "Close did not complete the connection",
        f"Close sent you back without a sign-in ({error or 'no code'}). Nothing was saved. "
        + AGAIN,
    )


def build_access(
    settings: Settings,
    *,
    engine: AsyncEngine,
    close: CloseClient,
    catalog: Catalog,
    slack: SlackGateway,
    clock: Callable[[], datetime] = _utc_now,
) -> CloseAccess | None:
    """The process's CloseAccess, or None when Close OAuth is not configured."""
    if not settings.oauth_configured:
        return None
    assert settings.close_oauth_client_id is not None
    assert settings.close_oauth_client_secret is not None
    assert settings.token_encryption_key is not None
    sessions = session_factory(engine)
    return CloseAccess(
        connections=ConnectionStore(sessions, dialect=engine.dialect.name),
        states=StateStore(sessions),
        sealer=Sealer(settings.token_encryption_key.get_secret_value()),
        oauth=CloseOAuth(
            client_id=settings.close_oauth_client_id,
            client_secret=settings.close_oauth_client_secret.get_secret_value(),
            authorize_url=settings.close_oauth_authorize_url,
            token_url=settings.close_oauth_token_url,
            redirect_uri=settings.close_oauth_redirect_uri or "",
            timeout=settings.close_timeout_seconds,
        ),
        close=close,
        catalog=catalog,
        slack=slack,
        start_url=settings.close_oauth_start_url,
        clock=clock,
        mode=settings.access,
    )
