"""The one place a person's Close access is decided: `CloseClients.for_person` is the Close client
that acts for them under CLOSE_ACCESS — the key's, or one sending their own Bearer token (over
the key client's connection pool) that refreshes once on a 401 and turns a connection Close no
longer takes into a typed error."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Generator, Mapping
from typing import Any

import httpx

from bot.close.client import CloseClient, Method
from bot.close.errors import (
    CloseAccessBroken,
    CloseAuthError,
    CloseNotConnected,
    CloseUnavailable,
)
from bot.close.models import Opportunity, OpportunityCreate
from bot.connections.access import AccessBroken, AccessUnavailable, CloseAccess, NotConnected
from bot.connections.store import Connection
from bot.connections.wording import Mode

log = logging.getLogger(__name__)

# A token from `token_for` is good for 5 minutes at least (it refreshes within that margin):
# reused this long without asking the database again.
TOKEN_REUSE_SECONDS = 60.0
# Whether someone is connected is reread after this (at once in this process after a connect,
# disconnect or breakage; within this from another process's).
STANDING_SECONDS = 30.0
MAX_PEOPLE = 4096


class BearerToken(httpx.Auth):
    """`Authorization: Bearer <token>` on one request; the token never shows in a repr."""

    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request

    def __repr__(self) -> str:
        return "BearerToken(…)"


class PersonClose(CloseClient):
    """The Close client of one connected person: every request carries their access token
    (from `CloseAccess.token_for`), over the key client's HTTP client and pool.

    A 401 to a token: ask `token_for` again with that token as rejected (it refreshes once, or
    rereads the one another process stored) and send the request once more — safe for writes
    too, since Close applied nothing it answered 401 to (a write with no answer is never sent
    again: CloseOutcomeUnknown, as with the key). A 401 to that one as well: the connection is
    marked broken and CloseAccessBroken raised. Never falls back to the key.
    """

    def __init__(
        self,
        key: CloseClient,
        access: CloseAccess,
        *,
        team_id: str,
        slack_user_id: str,
        token_reuse_seconds: float = TOKEN_REUSE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._borrow(key)
        self._access = access
        self.team_id = team_id
        self.slack_user_id = slack_user_id
        self._token_reuse = token_reuse_seconds
        self._clock = clock
        # (token, reuse until, the connection's epoch it was read in)
        self._token: tuple[str, float, int] | None = None
        # The tokens this client has held lately, kept out of every error text it makes.
        self._held: deque[str] = deque(maxlen=4)

    @property
    def view(self) -> str:
        return f"person:{self.team_id}:{self.slack_user_id}"

    @property
    def acts_with_key(self) -> bool:
        return False

    async def aclose(self) -> None:
        """Nothing to close: the pool is the key client's."""

    def __repr__(self) -> str:
        return f"PersonClose({self.team_id}, {self.slack_user_id})"

    async def _access_token(self, rejected: str | None = None) -> str:
        held = self._token
        epoch = self._access.epoch(self.slack_user_id)
        if rejected is None and held is not None and held[1] > self._clock() and held[2] == epoch:
            return held[0]
        try:
            token = await self._access.token_for(
                self.team_id, self.slack_user_id, rejected=rejected
            )
        except NotConnected:
            self._token = None
            raise CloseNotConnected(self.slack_user_id) from None
        except AccessBroken as broken:
            self._token = None
            raise CloseAccessBroken(self.slack_user_id, str(broken)) from None
        except AccessUnavailable:
            raise CloseUnavailable(
                "Close's token endpoint could not refresh the connection just now"
            ) from None
        self._token = (token, self._clock() + self._token_reuse, epoch)
        if token not in self._held:
            self._held.append(token)
        return token

    async def _request(
        self,
        method: Method,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        read: bool | None = None,
        auth: httpx.Auth | None = None,
    ) -> dict[str, Any]:
        token = await self._access_token()
        for attempt in (1, 2):
            try:
                return await super()._request(
                    method,
                    path,
                    params=params,
                    json=json,
                    headers=headers,
                    read=read,
                    auth=BearerToken(token),
                )
            except CloseAuthError as refused:
                if refused.status_code != 401:
                    raise  # 403: this person may not do that; their access is fine
            self._token = None
            if attempt == 1:
                token = await self._access_token(rejected=token)
        await self._access.refused_after_refresh(self.team_id, self.slack_user_id)
        raise CloseAccessBroken(self.slack_user_id, "Close refused a refreshed token (401)")

    def _scrub(self, text: str) -> str:
        text = super()._scrub(text)
        for token in self._held:
            text = text.replace(token, "[token]")
        return text


class CloseClients:
    """The Close client for whoever acts, per CLOSE_ACCESS:

    - `key` (or Close OAuth not configured): the key's client, always, with no lookup at all;
    - `personal`: the person's own (PersonClose); not connected → CloseNotConnected;
    - `either`: the person's own when they have a connection, else the key's.

    A broken connection raises CloseAccessBroken under both `personal` and `either` (it counts
    as connected until they reconnect or disconnect: nothing of theirs switches to the key).
    The app's own background reads (catalog, event log, webhook) use `key` directly.

    The write paths' seam: `create_opportunity` below for a deal someone logged (the worker's
    create of a stored submission included), and `(await for_person(…)).update_opportunity(…)`
    for Edit/Won/Lost. CloseNotConnected / CloseAccessBroken mean "wait for them to
    (re)connect" (then `tell_broken` once), never "try with the key".
    """

    def __init__(
        self,
        key: CloseClient,
        access: CloseAccess | None,
        mode: Mode,
        *,
        standing_seconds: float = STANDING_SECONDS,
        token_reuse_seconds: float = TOKEN_REUSE_SECONDS,
        max_people: int = MAX_PEOPLE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.key = key
        self.access = access
        self.mode: Mode = mode if access is not None else "key"
        self._standing_seconds = standing_seconds
        self._token_reuse = token_reuse_seconds
        self._max_people = max_people
        self._clock = clock
        self._people: OrderedDict[str, PersonClose] = OrderedDict()

    @property
    def per_person(self) -> bool:
        """False under `key`: everyone's client is the key's, decided without a lookup."""
        return self.mode != "key"

    async def for_person(
        self, team_id: str | None, slack_user_id: str, *, fresh: bool = False
    ) -> CloseClient:
        """The client that acts for this Slack user. Raises CloseNotConnected (`personal`, not
        connected) or CloseAccessBroken (their connection needs a reconnect). `team_id` (the
        payload's, may be None) is not needed to decide: the connection's own team is used.
        `fresh`: read their connection now, not as remembered (work that waited for them to
        reconnect, perhaps through another process)."""
        if self.mode == "key" or self.access is None:
            return self.key
        connection = await self._connection(slack_user_id, fresh) if slack_user_id else None
        if connection is None:
            if self.mode == "personal":
                raise CloseNotConnected(slack_user_id)
            return self.key
        if connection.broken:
            raise CloseAccessBroken(slack_user_id, connection.broken_reason or "")
        # Their connection's team (Slack user ids are unique across workspaces): the one it is
        # stored under, whatever a payload said.
        return self._person(connection.team_id, slack_user_id)

    async def create_opportunity(
        self,
        team_id: str | None,
        slack_user_id: str,
        body: OpportunityCreate,
        *,
        close_user_id: str | None,
        tz_offset_hours: float | None = None,
    ) -> Opportunity:
        """Create the deal `slack_user_id` logged, as them: with their own token when that is
        their access, else with the key and `created_by` = `close_user_id` (their mapped Close
        user), left out if Close refuses it. Raises what `for_person` and the client raise."""
        close = await self.for_person(team_id, slack_user_id)
        return await close.create_opportunity(
            body, tz_offset_hours=tz_offset_hours, on_behalf_of=close_user_id
        )

    async def tell_broken(self, team_id: str | None, slack_user_id: str) -> None:
        """DM them the *Reconnect* prompt (once per breakage); never raises."""
        if self.access is None:
            return
        try:
            connection = await self.access.connection(slack_user_id)
            team = team_id or (connection.team_id if connection else "")
            await self.access.tell_broken(team, slack_user_id)
        except Exception:
            log.warning("Could not tell %s their Close connection broke", slack_user_id)

    async def _connection(self, slack_user_id: str, fresh: bool = False) -> Connection | None:
        assert self.access is not None
        within = 0.0 if fresh else self._standing_seconds
        return await self.access.known(slack_user_id, within=within)

    def _person(self, team_id: str, slack_user_id: str) -> PersonClose:
        """One PersonClose per person (its rate budgets and token reused), LRU-bounded."""
        key = f"{team_id}:{slack_user_id}"
        person = self._people.get(key)
        if person is None:
            assert self.access is not None
            person = PersonClose(
                self.key,
                self.access,
                team_id=team_id,
                slack_user_id=slack_user_id,
                token_reuse_seconds=self._token_reuse,
                clock=self._clock,
            )
            self._people[key] = person
            while len(self._people) > self._max_people:
                self._people.popitem(last=False)
        self._people.move_to_end(key)
        return person
