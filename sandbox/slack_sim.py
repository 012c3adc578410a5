"""A local Slack Web API and response_url endpoint over real HTTP, for tests, demo and bench."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import datetime as dt
import itertools
import json
import secrets
import time
import urllib.parse
import zoneinfo
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from pydantic import BaseModel, Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox import blockkit
from sandbox.functions_sim import COMPLETE_METHODS, FunctionRefused, Functions
from sandbox.server import RunningServer, start_server
from sandbox.socket_sim import SocketModeServer
from sandbox.work_objects_sim import Refused, WorkObjects, entity_problems, unfurl_entities

DEFAULT_SCOPES: frozenset[str] = frozenset(
    {
        "commands",
        "chat:write",
        "chat:write.public",
        "users:read",
        "users:read.email",
        "im:write",
        "links:read",
        "links:write",
        # conversations.info: who can read a channel (Slack Connect).
        "channels:read",
        "groups:read",
        "im:read",
        "mpim:read",
    }
)

# Scope each Web API method needs; any one of a tuple will do. Views need none (the trigger_id
# or the app's own view is the authority).
METHOD_SCOPES: dict[str, tuple[str, ...]] = {
    "users.info": ("users:read",),
    "users.list": ("users:read",),
    "users.lookupByEmail": ("users:read.email",),
    "chat.postMessage": ("chat:write",),
    "chat.update": ("chat:write",),
    "chat.postEphemeral": ("chat:write",),
    "conversations.open": ("im:write", "mpim:write", "channels:manage", "groups:write"),
    "conversations.join": ("channels:join",),
    "conversations.info": ("channels:read", "groups:read", "im:read", "mpim:read"),
    "chat.unfurl": ("links:write",),
    # entity.presentDetails needs no scope: the flexpane's trigger_id is the authority.
}

# Slack's own error names for views.open / views.push (dialog.open used trigger_expired etc.).
TRIGGER_UNKNOWN = "invalid_trigger_id"
TRIGGER_EXPIRED = "expired_trigger_id"
TRIGGER_EXCHANGED = "exchanged_trigger_id"

# Where a `link_shared` event says a link is while it is still being typed.
COMPOSER = "COMPOSER"

RESPONSE_URL_USES = 5
RESPONSE_URL_TTL = 30 * 60.0
VIEW_STACK_LIMIT = 3


# -- workspace data (Slack's field names) -------------------------------------------------------


class SlackProfile(BaseModel):
    real_name: str = ""
    display_name: str = ""
    first_name: str = ""
    last_name: str = ""
    email: str | None = None
    bot_id: str | None = None


class SlackUser(BaseModel):
    id: str
    team_id: str = "T0SANDBOX"
    name: str
    real_name: str = ""
    deleted: bool = False
    is_bot: bool = False
    is_app_user: bool = False
    is_admin: bool = False
    is_owner: bool = False
    is_restricted: bool = False
    is_ultra_restricted: bool = False
    tz: str | None = None
    tz_label: str | None = None
    tz_offset: int | None = None  # seconds east of UTC; computed from `tz` when left out
    locale: str = "en-US"
    profile: SlackProfile = Field(default_factory=SlackProfile)

    def as_slack(self, *, include_locale: bool, with_email: bool) -> dict[str, Any]:
        """The user object as users.info / users.list return it, given the caller's scopes."""
        data = self.model_dump(exclude={"locale", "profile"})
        if self.tz and self.tz_offset is None:
            now = dt.datetime.now(zoneinfo.ZoneInfo(self.tz))
            offset = now.utcoffset()
            data["tz_offset"] = int(offset.total_seconds()) if offset else 0
        profile = self.profile.model_dump(exclude_none=True)
        profile["real_name_normalized"] = self.profile.real_name
        profile["display_name_normalized"] = self.profile.display_name
        profile["team"] = self.team_id
        if not with_email:
            profile.pop("email", None)
        data["profile"] = profile
        if include_locale:
            data["locale"] = self.locale
        return data


class SlackChannel(BaseModel):
    id: str
    name: str = ""
    is_private: bool = False
    is_im: bool = False
    is_archived: bool = False
    user: str | None = None  # the other party of an IM
    is_app_dm: bool = False  # an IM between a user and this app (the bot can always post there)
    is_mpim: bool = False
    members: list[str] = Field(default_factory=list)
    # Slack Connect: other organizations' teams the channel is shared with, and invitations
    # they have not accepted yet (`is_pending_ext_shared`). `org_shared`: shared across the
    # workspaces of our own Enterprise organization (`is_shared` + `is_org_shared`, not external).
    connected_team_ids: list[str] = Field(default_factory=list)
    pending_connected_team_ids: list[str] = Field(default_factory=list)
    org_shared: bool = False

    @property
    def is_ext_shared(self) -> bool:
        return bool(self.connected_team_ids)

    @property
    def is_pending_ext_shared(self) -> bool:
        return bool(self.pending_connected_team_ids)

    def as_slack(self, host_team_id: str = "T0SANDBOX") -> dict[str, Any]:
        """The conversation object as conversations.info returns it (Slack's field names)."""
        data: dict[str, Any] = {
            "id": self.id,
            "is_channel": not self.is_im and not self.is_private and not self.is_mpim,
            "is_group": self.is_private and not self.is_im and not self.is_mpim,
            "is_im": self.is_im,
            "is_mpim": self.is_mpim,
            "is_private": self.is_private or self.is_im or self.is_mpim,
            "is_archived": self.is_archived,
            "is_general": False,
            "is_shared": self.is_ext_shared or self.org_shared,
            "is_ext_shared": self.is_ext_shared,
            "is_org_shared": self.org_shared,
            "is_pending_ext_shared": self.is_pending_ext_shared,
            "pending_shared": list(self.pending_connected_team_ids),
            "context_team_id": host_team_id,
        }
        if self.is_ext_shared or self.is_pending_ext_shared:
            data["conversation_host_id"] = host_team_id
            data["shared_team_ids"] = [host_team_id, *self.connected_team_ids]
            data["connected_team_ids"] = list(self.connected_team_ids)
            data["pending_connected_team_ids"] = list(self.pending_connected_team_ids)
        if self.is_im:
            data["user"] = self.user
        else:
            data["name"] = self.name
        return data


class Workspace(BaseModel):
    team_id: str = "T0SANDBOX"
    team_name: str = "Sandbox"
    domain: str = "sandbox"
    app_id: str = "A0SANDBOX"
    bot_id: str = "B0SANDBOX"
    bot_user_id: str = "U0BOT"
    users: list[SlackUser] = Field(default_factory=list)
    channels: list[SlackChannel] = Field(default_factory=list)

    def user(self, user_id: str) -> SlackUser | None:
        return next((u for u in self.users if u.id == user_id), None)

    def channel(self, channel_id: str) -> SlackChannel | None:
        return next((c for c in self.channels if c.id == channel_id), None)

    def app_dm(self, user_id: str) -> SlackChannel:
        """The user's DM with the app, created on first use (ids look like D0ALICE)."""
        for channel in self.channels:
            if channel.is_app_dm and channel.user == user_id:
                return channel
        channel = SlackChannel(
            id="D" + user_id[1:],
            is_im=True,
            user=user_id,
            is_app_dm=True,
            members=[user_id, self.bot_user_id],
        )
        self.channels.append(channel)
        return channel


def _person(
    uid: str,
    name: str,
    real: str,
    email: str | None,
    tz: str,
    tz_label: str,
    locale: str,
    **flags: Any,
) -> SlackUser:
    first, _, last = real.partition(" ")
    return SlackUser(
        id=uid,
        name=name,
        real_name=real,
        tz=tz,
        tz_label=tz_label,
        locale=locale,
        profile=SlackProfile(
            real_name=real, display_name=name, first_name=first, last_name=last, email=email
        ),
        **flags,
    )


def default_workspace() -> Workspace:
    """Team T0SANDBOX: people matching the Close simulator's users, plus the awkward cases."""
    la, london, tokyo = "America/Los_Angeles", "Europe/London", "Asia/Tokyo"
    users = [
        _person(
            "U0ALICE", "alice", "Alice Anders", "alice@example.com", la, "Pacific Time", "en-US"
        ),
        # Mixed case on purpose: email matching with Close must ignore case.
        _person("U0BOB", "bob", "Bob Baker", "Bob@Example.com", london, "British Time", "en-GB"),
        _person(
            "U0CAROL",
            "carol",
            "Carol Chen",
            "carol@example.com",
            tokyo,
            "Japan Time",
            "en-US",
            is_admin=True,
        ),
        # In Slack but without a Close account.
        _person(
            "U0DAVE", "dave", "Dave Diaz", "dave@personal.example", la, "Pacific Time", "en-US"
        ),
        _person(
            "U0ERIN",
            "erin",
            "Erin Ex",
            "erin@example.com",
            london,
            "British Time",
            "en-GB",
            deleted=True,
        ),
        _person(
            "U0GUEST",
            "gina",
            "Gina Guest",
            "gina@contractor.example",
            la,
            "Pacific Time",
            "en-US",
            is_restricted=True,
        ),
        SlackUser(
            id="U0BOT",
            name="close_opportunity_bot",
            real_name="Close Opportunity Bot",
            is_bot=True,
            tz="America/Los_Angeles",
            tz_label="Pacific Time",
            profile=SlackProfile(real_name="Close Opportunity Bot", bot_id="B0SANDBOX"),
        ),
        SlackUser(
            id="U0POLLY",
            name="polly",
            real_name="Polly",
            is_bot=True,
            tz="America/Los_Angeles",
            tz_label="Pacific Time",
            profile=SlackProfile(real_name="Polly", bot_id="B0POLLY"),
        ),
    ]
    people = ["U0ALICE", "U0BOB", "U0CAROL", "U0DAVE", "U0GUEST"]
    channels = [
        SlackChannel(id="C0SALES", name="sales", members=[*people, "U0BOT"]),
        SlackChannel(id="C0GENERAL", name="general", members=people),
        SlackChannel(
            id="C0PRIVATE", name="deals-private", is_private=True, members=["U0ALICE", "U0BOB"]
        ),
        SlackChannel(id="C0ARCHIVED", name="old-deals", is_archived=True, members=people),
        SlackChannel(
            id="D0ALICE", is_im=True, user="U0ALICE", is_app_dm=True, members=["U0ALICE", "U0BOT"]
        ),
        # A DM between two people: a command run there cannot be answered with chat.postMessage.
        SlackChannel(id="D0ALICEBOB", is_im=True, user="U0BOB", members=["U0ALICE", "U0BOB"]),
    ]
    return Workspace(users=users, channels=channels)


# -- records -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One request the simulator answered (Web API method, or "response_url")."""

    method: str
    params: dict[str, Any]
    at: float
    status: int
    response: dict[str, Any]

    @property
    def ok(self) -> bool:
        return bool(self.response.get("ok"))


@dataclass
class _Trigger:
    id: str
    user_id: str
    issued: float
    used: bool = False


@dataclass
class _ResponseUrl:
    id: str
    channel_id: str
    user_id: str
    message_ts: str | None
    issued: float
    posts: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Fault:
    error: str
    remaining: int
    status: int = 200
    retry_after: float | None = None


@dataclass
class SharedLinks:
    """Links Slack saw in a message (or in the message composer) and told the app about with a
    `link_shared` event; `unfurls` is what the app attached to each URL with chat.unfurl."""

    user: str
    channel: str  # COMPOSER while the link is still being typed
    message_ts: str  # for the composer, Slack repeats the unfurl_id here
    unfurl_id: str
    source: str  # "conversations_history" | "composer"
    urls: list[str]
    thread_ts: str | None = None
    unfurls: dict[str, dict[str, Any]] = field(default_factory=dict)
    # URL -> the Work Object card (chat.unfurl `metadata` entity) the app attached to it.
    entities: dict[str, dict[str, Any]] = field(default_factory=dict)

    def event(self, *, bot_is_member: bool) -> dict[str, Any]:
        """The `link_shared` event as Slack sends it (shape of Slack's captured payloads)."""
        event: dict[str, Any] = {
            "type": "link_shared",
            "channel": self.channel,
            "is_bot_user_member": bot_is_member,
            "user": self.user,
            "message_ts": self.message_ts,
            "unfurl_id": self.unfurl_id,
            "source": self.source,
            "links": [
                {"domain": (urllib.parse.urlsplit(url).hostname or ""), "url": url}
                for url in self.urls
            ],
        }
        if self.thread_ts:
            event["thread_ts"] = self.thread_ts
        return event


class SlackError(Exception):
    """A Web API refusal: `{"ok": false, "error": ...}` plus extra fields."""

    def __init__(
        self, error: str, *, status: int = 200, retry_after: float | None = None, **extra: Any
    ) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.retry_after = retry_after
        self.extra = extra


class RejectedAck(Exception):
    """The bot acknowledged a view submission with something Slack would refuse to show."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def _flag(value: Any) -> bool:
    return value in (True, 1, "1", "true", "True")


def _json_field(params: dict[str, Any], key: str) -> Any:
    """Slack accepts `view`/`blocks` as JSON strings (form bodies) or as JSON values."""
    value = params.get(key)
    if isinstance(value, str | bytes):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise SlackError(
                "invalid_arguments" if key == "view" else "invalid_blocks_format",
                response_metadata={"messages": [f"[ERROR] failed to parse {key} as JSON: {exc}"]},
            ) from None
    return value


def with_ids(blocks: Any) -> Any:
    """Copy of `blocks` where, as Slack does, blocks and elements lacking ids get random ones."""
    if not isinstance(blocks, list):
        return blocks
    out = copy.deepcopy(blocks)
    for block in out:
        if not isinstance(block, dict):
            continue
        block.setdefault("block_id", secrets.token_urlsafe(4))
        elements = [block.get("element"), block.get("accessory"), *(block.get("elements") or [])]
        for element in elements:
            is_interactive = isinstance(element, dict) and element.get("type") in (
                blockkit.INTERACTIVE_ELEMENTS - {"image"}
            )
            if is_interactive:
                element.setdefault("action_id", secrets.token_urlsafe(4))
    return out


def _pointer_messages(found: list[blockkit.Problem], prefix: str) -> list[str]:
    return [str(blockkit.Problem(prefix + p.pointer, p.message)) for p in found]


# -- the simulator -----------------------------------------------------------------------------


class SlackSimulator:
    """Slack Web API methods the bot uses, with Slack's errors, limits, scopes and recording."""

    def __init__(
        self,
        bot_token: str = "xoxb-sandbox-token",
        workspace: Workspace | None = None,
        *,
        app_token: str | None = None,
    ) -> None:
        self.bot_token = bot_token
        # The app-level token (xapp-…): only `apps.connections.open` takes it, and only it.
        self.app_token = app_token
        self.socket_mode = SocketModeServer()
        self.workspace = workspace if workspace is not None else default_workspace()
        self.scopes: set[str] = set(DEFAULT_SCOPES)
        # Workflow steps (the manifest's functions): executions and their completions.
        self.functions = Functions(app_id=self.workspace.app_id)
        # Work Objects: the flexpanes people open on the app's cards, and its answers.
        self.work_objects = WorkObjects()
        self.latency = 0.0
        self.trigger_ttl = 3.0
        self.views: dict[str, dict[str, Any]] = {}
        self.closed_views: set[str] = set()
        self.home_views: dict[str, str] = {}  # user id -> view id
        self._view_user: dict[str, str] = {}
        self._user_state: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
        self._stacks: dict[str, list[str]] = {}  # root view id -> open views, root first
        self._triggers: dict[str, _Trigger] = {}
        self._response_urls: dict[str, _ResponseUrl] = {}
        self._messages: dict[str, list[dict[str, Any]]] = {}
        self._ephemerals: list[dict[str, Any]] = []
        self._shared_links: dict[str, SharedLinks] = {}  # unfurl_id -> links told of
        self._calls: list[Call] = []
        self._changed = asyncio.Condition()
        self._faults: dict[str, list[_Fault]] = {}
        self._last_ts = 0.0
        self._ids = itertools.count(1)
        self._server: RunningServer | None = None
        self._handlers: dict[str, Handler] = {
            "auth.test": self._auth_test,
            "apps.connections.open": self._apps_connections_open,
            "users.info": self._users_info,
            "users.list": self._users_list,
            "users.lookupByEmail": self._users_lookup_by_email,
            "views.open": self._views_open,
            "views.update": self._views_update,
            "views.push": self._views_push,
            "views.publish": self._views_publish,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "conversations.open": self._conversations_open,
            "conversations.join": self._conversations_join,
            "conversations.info": self._conversations_info,
            "chat.unfurl": self._chat_unfurl,
            "entity.presentDetails": self._entity_present_details,
        }
        self.app = Starlette(
            routes=[
                Route("/api/{method}", self._api, methods=["GET", "POST"]),
                Route("/response/{rid}", self._response_url, methods=["POST"]),
            ]
        )

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> str:
        """Serve on a free 127.0.0.1 port; returns the Web API base URL (ends in "/api/")."""
        if self._server is None:
            self._server = await start_server(self.app)
        return self.api_url

    async def stop(self) -> None:
        await self.socket_mode.stop()
        if self._server is not None:
            await self._server.stop()
            self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("SlackSimulator is not started")
        return self._server.url

    @property
    def api_url(self) -> str:
        return self.base_url + "api/"

    # -- what tests read ---------------------------------------------------------------------

    def calls(self, method: str | None = None) -> list[Call]:
        return [c for c in self._calls if method is None or c.method == method]

    def mark(self) -> int:
        """Position in the call log, for `wait_for(..., since=mark)`."""
        return len(self._calls)

    async def wait_for(
        self,
        method: str,
        predicate: Callable[[Call], bool] | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109 - a deadline per wait reads best in tests
        *,
        since: int = 0,
    ) -> Call:
        """The first call of `method` (at or after log position `since`) matching `predicate`."""

        def find() -> Call | None:
            for call in self._calls[since:]:
                if call.method == method and (predicate is None or predicate(call)):
                    return call
            return None

        try:
            async with asyncio.timeout(timeout), self._changed:
                while (found := find()) is None:
                    await self._changed.wait()
        except TimeoutError:
            seen = [c.method for c in self._calls[since:]]
            raise TimeoutError(f"no matching {method} call within {timeout}s; saw {seen}") from None
        return found

    def messages(self, channel: str) -> list[dict[str, Any]]:
        """Everything posted in `channel` (thread replies included), oldest first."""
        return list(self._messages.get(self._resolve_channel_id(channel), []))

    def thread(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """The parent message `ts` followed by its replies."""
        return [
            m
            for m in self.messages(channel)
            if m["ts"] == ts or (m.get("thread_ts") == ts and m["ts"] != ts)
        ]

    def ephemerals(
        self, channel: str | None = None, user: str | None = None
    ) -> list[dict[str, Any]]:
        return [
            e
            for e in self._ephemerals
            if (channel is None or e["channel"] == channel) and (user is None or e["user"] == user)
        ]

    def response_url_posts(self, rid: str) -> list[dict[str, Any]]:
        return list(self._response_urls[self.response_url_id(rid)].posts)

    # -- fault switches --------------------------------------------------------------------------

    def fail_method(self, method: str, error: str, n: int = 1, *, retry_after: float = 0.1) -> None:
        """The next `n` calls of `method` answer `error` ("ratelimited" comes as HTTP 429)."""
        status = 429 if error == "ratelimited" else 200
        self._faults.setdefault(method, []).append(
            _Fault(error, n, status, retry_after if status == 429 else None)
        )

    def clear_faults(self) -> None:
        """Forget every fault set with `fail_method` / `rate_limit`."""
        self._faults.clear()

    def delete_message(self, channel: str, ts: str) -> None:
        """A person deletes a message (chat.update on it then answers message_not_found)."""
        self._messages[channel] = [m for m in self._messages.get(channel, []) if m["ts"] != ts]

    def rate_limit(self, method: str, n: int, retry_after: float = 0.1) -> None:
        """The next `n` calls of `method` answer HTTP 429 with a Retry-After header."""
        self.fail_method(method, "ratelimited", n, retry_after=retry_after)

    # -- what the driver (playing Slack's client side) uses ------------------------------------

    def issue_trigger(self, user_id: str) -> str:
        trigger_id = f"{int(time.time())}{next(self._ids):04d}.{secrets.token_hex(8)}"
        self._triggers[trigger_id] = _Trigger(trigger_id, user_id, time.monotonic())
        return trigger_id

    def issue_response_url(
        self, channel_id: str, user_id: str, message_ts: str | None = None
    ) -> str:
        rid = f"{self.workspace.team_id}-{next(self._ids)}-{secrets.token_hex(8)}"
        self._response_urls[rid] = _ResponseUrl(
            rid, channel_id, user_id, message_ts, time.monotonic()
        )
        return f"{self.base_url}response/{rid}"

    def response_url_id(self, url_or_id: str) -> str:
        """The id of a response_url minted by `issue_response_url` (accepts the URL or the id)."""
        return url_or_id.rsplit("/response/", 1)[-1]

    def add_message(
        self, channel: str, text: str, *, user: str = "U0ALICE", thread_ts: str | None = None
    ) -> dict[str, Any]:
        """Seed a message written by a person (e.g. the source of a message shortcut)."""
        message: dict[str, Any] = {
            "type": "message",
            "user": user,
            "text": text,
            "ts": self._next_ts(),
        }
        if thread_ts:
            message["thread_ts"] = thread_ts
        self._store_message(channel, message)
        return message

    def share_links(
        self,
        channel: str,
        urls: list[str],
        *,
        user: str = "U0ALICE",
        thread_ts: str | None = None,
        text: str | None = None,
        source: str = "conversations_history",
    ) -> SharedLinks:
        """A person posts `urls` in `channel` (or, `source="composer"`, is still typing them):
        the links Slack then tells the app about. The message is stored like any other."""
        if source == "composer":
            unfurl_id = f"{user}-{secrets.token_hex(16)}-{secrets.token_hex(16)}"
            shared = SharedLinks(user, COMPOSER, unfurl_id, unfurl_id, source, list(urls))
        else:
            body = text if text is not None else " ".join(f"<{url}>" for url in urls)
            message = self.add_message(channel, body, user=user, thread_ts=thread_ts)
            ts = message["ts"]
            unfurl_id = f"{channel}.{ts}.{secrets.token_hex(32)}"
            shared = SharedLinks(user, channel, ts, unfurl_id, source, list(urls), thread_ts)
        self._shared_links[shared.unfurl_id] = shared
        return shared

    # -- Slack Connect -----------------------------------------------------------------------

    def add_external_user(
        self,
        user_id: str = "U0EXTERN",
        *,
        team_id: str = "T0ACME",
        name: str = "ed",
        real_name: str = "Ed External",
        channels: Iterable[str] = (),
    ) -> SlackUser:
        """A person of another organization (their own team_id), in `channels`."""
        user = _person(
            user_id, name, real_name, f"{name}@acme.example", "America/New_York", "Eastern", "en-US"
        )
        user.team_id = team_id
        self.workspace.users.append(user)
        for channel_id in channels:
            channel = self.workspace.channel(channel_id)
            if channel is not None and user_id not in channel.members:
                channel.members.append(user_id)
        return user

    def add_channel(self, channel_id: str, name: str, *, members: Iterable[str] = ()) -> None:
        """A channel of our workspace (the bot and the usual people in it unless told)."""
        people = list(members) or [
            "U0ALICE",
            "U0BOB",
            "U0CAROL",
            "U0DAVE",
            self.workspace.bot_user_id,
        ]
        self.workspace.channels.append(SlackChannel(id=channel_id, name=name, members=people))

    def share_channel(
        self, channel_id: str, team_id: str = "T0ACME", *, pending: bool = False
    ) -> dict[str, Any]:
        """Share `channel_id` with another organization (`pending`: invited, not yet accepted);
        returns the `channel_shared` event Slack sends once the share is in effect."""
        channel = self._channel_or_raise(channel_id)
        if pending:
            if team_id not in channel.pending_connected_team_ids:
                channel.pending_connected_team_ids.append(team_id)
        else:
            if team_id in channel.pending_connected_team_ids:
                channel.pending_connected_team_ids.remove(team_id)
            if team_id not in channel.connected_team_ids:
                channel.connected_team_ids.append(team_id)
        return {"type": "channel_shared", "connected_team_id": team_id, "channel": channel_id}

    def unshare_channel(self, channel_id: str, team_id: str = "T0ACME") -> dict[str, Any]:
        """The other organization leaves `channel_id`: the `channel_unshared` event
        (`is_ext_shared` says whether it is still shared with yet another one)."""
        channel = self._channel_or_raise(channel_id)
        for teams in (channel.connected_team_ids, channel.pending_connected_team_ids):
            if team_id in teams:
                teams.remove(team_id)
        return {
            "type": "channel_unshared",
            "previously_connected_team_id": team_id,
            "channel": channel_id,
            "is_ext_shared": channel.is_ext_shared,
        }

    def is_ext_shared(self, channel_id: str) -> bool:
        """What an event envelope's `is_ext_shared_channel` says of `channel_id`."""
        channel = self.workspace.channel(channel_id)
        return channel is not None and channel.is_ext_shared

    def _channel_or_raise(self, channel_id: str) -> SlackChannel:
        channel = self.workspace.channel(channel_id)
        if channel is None:
            raise KeyError(f"no channel {channel_id}")
        return channel

    def bot_is_member(self, channel: str) -> bool:
        found = self.workspace.channel(channel)
        return found is not None and self.workspace.bot_user_id in found.members

    def unfurls(self, shared: SharedLinks) -> dict[str, dict[str, Any]]:
        """URL -> the app's unfurl of it (as Slack shows it: its blocks, ids filled in)."""
        return dict(self._shared_links[shared.unfurl_id].unfurls)

    def view_user(self, view_id: str) -> str:
        return self._view_user[view_id]

    def state_values(self, view_id: str) -> dict[str, dict[str, dict[str, Any]]]:
        """`view.state.values` as Slack would send it now: initial values, then user input."""
        view = self.views[view_id]
        values: dict[str, dict[str, dict[str, Any]]] = {}
        for block in view.get("blocks") or []:
            if block.get("type") == "input" and isinstance(block.get("element"), dict):
                element = block["element"]
                values.setdefault(block["block_id"], {})[element["action_id"]] = (
                    blockkit.initial_state(element)
                )
        for block_id, actions in self._user_state.get(view_id, {}).items():
            for action_id, state in actions.items():
                values.setdefault(block_id, {})[action_id] = dict(state)
        return values

    def set_state(self, view_id: str, block_id: str, action_id: str, state: dict[str, Any]) -> None:
        """Record what the user entered in one element; later submissions start from it."""
        self._user_state.setdefault(view_id, {}).setdefault(block_id, {})[action_id] = state
        self.views[view_id]["state"] = {"values": self._user_state[view_id]}

    def find_element(
        self, view_id: str, block_id: str, action_id: str | None = None
    ) -> dict[str, Any]:
        """The element `action_id` (or the only/first element) of block `block_id` in a view."""
        for block in self.views[view_id].get("blocks") or []:
            if block.get("block_id") != block_id:
                continue
            elements: list[dict[str, Any]] = [
                block[k] for k in ("element", "accessory") if isinstance(block.get(k), dict)
            ]
            elements += [e for e in block.get("elements") or [] if isinstance(e, dict)]
            for element in elements:
                if action_id is None or element.get("action_id") == action_id:
                    return element
        raise KeyError(f"no element {action_id!r} in block {block_id!r} of view {view_id}")

    def apply_response_action(self, view_id: str, ack: dict[str, Any] | None) -> None:
        """What Slack does with the bot's answer to a view_submission of `view_id`."""
        action = (ack or {}).get("response_action")
        stack = self._stack_of(view_id)
        if action is None:
            self._close(stack[stack.index(view_id) :] if view_id in stack else [view_id])
        elif action == "clear":
            self._close(stack)
        elif action == "errors":
            inputs = {
                b.get("block_id")
                for b in self.views[view_id].get("blocks") or []
                if b.get("type") == "input"
            }
            errors = (ack or {}).get("errors") or {}
            bad = [
                f"errors: {k!r} is not an input block of the view"
                for k in errors
                if k not in inputs
            ]
            if bad or not errors:
                raise RejectedAck(bad or ["errors: must name at least one block"])
        elif action in ("update", "push"):
            view = (ack or {}).get("view")
            if not isinstance(view, dict):
                raise RejectedAck([f"{action}: view is required"])
            found = blockkit.check(view, surface="modal")
            if found:
                raise RejectedAck(_pointer_messages(found, "/view"))
            if action == "update":
                self._replace_view(view_id, view)
            else:
                if len(stack) >= VIEW_STACK_LIMIT:
                    raise RejectedAck(["push: push_limit_reached"])
                self._new_view(view, self._view_user[view_id], parent=stack[-1])
        else:
            raise RejectedAck([f"response_action {action!r} is unknown"])

    # -- HTTP: Web API -------------------------------------------------------------------------

    async def _api(self, request: Request) -> Response:
        method = request.path_params["method"]
        if self.latency:
            await asyncio.sleep(self.latency)
        headers = {
            "x-oauth-scopes": ",".join(sorted(self.scopes)),
            "x-accepted-oauth-scopes": ",".join(METHOD_SCOPES.get(method, ())),
        }
        params: dict[str, Any] = {}
        status, token = 200, None
        try:
            params, token = await self._read(request)
            body = await self._dispatch(method, params, token)
        except SlackError as exc:
            status = exc.status
            body = {"ok": False, "error": exc.error, **exc.extra}
            if exc.retry_after is not None:
                # HTTP wants whole seconds, and slack_sdk parses the header as an int.
                headers["Retry-After"] = str(int(exc.retry_after))
        await self._record(Call(method, params, time.time(), status, body))
        return JSONResponse(body, status_code=status, headers=headers)

    async def _read(self, request: Request) -> tuple[dict[str, Any], str | None]:
        params: dict[str, Any] = dict(request.query_params)
        if request.method == "POST":
            ctype = request.headers.get("content-type", "")
            if ctype.startswith("application/json"):
                try:
                    data = json.loads(await request.body() or b"{}")
                except ValueError:
                    raise SlackError("invalid_json") from None
                if not isinstance(data, dict):
                    raise SlackError("invalid_json")
                params.update(data)
            elif ctype.startswith("multipart/"):
                raise SlackError("invalid_form_data")  # only file uploads use it; none here
            else:
                # Parsed by hand: Starlette's form parser needs python-multipart.
                body = (await request.body()).decode("utf-8", errors="replace")
                params.update(urllib.parse.parse_qsl(body, keep_blank_values=True))
        token = params.pop("token", None)
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            token = auth[7:].strip()
        for key in ("view", "blocks", "attachments"):
            if isinstance(params.get(key), str):
                with contextlib.suppress(ValueError):  # left as sent; the handler reports it
                    params[key] = json.loads(params[key])
        return params, token

    async def _dispatch(
        self, method: str, params: dict[str, Any], token: str | None
    ) -> dict[str, Any]:
        if method in COMPLETE_METHODS:
            return await self._complete_function(method, params, token)
        if not token:
            raise SlackError("not_authed")
        if token not in (self.bot_token, self.app_token):
            raise SlackError("invalid_auth")
        # Slack's answer when a bot token opens a socket, or an app token calls anything else.
        if (method == "apps.connections.open") != (token == self.app_token):
            raise SlackError("not_allowed_token_type")
        handler = self._handlers.get(method)
        if handler is None:
            raise SlackError("unknown_method", req_method=method)
        for fault in self._faults.get(method, []):
            if fault.remaining > 0:
                fault.remaining -= 1
                raise SlackError(fault.error, status=fault.status, retry_after=fault.retry_after)
        needed = METHOD_SCOPES.get(method)
        if needed and not self.scopes.intersection(needed):
            raise SlackError(
                "missing_scope", needed=",".join(needed), provided=",".join(sorted(self.scopes))
            )
        return await handler(params)

    async def _complete_function(
        self, method: str, params: dict[str, Any], token: str | None
    ) -> dict[str, Any]:
        """functions.complete*: only with the execution's own `xwfp-` token (see Functions)."""
        for fault in self._faults.get(method, []):
            if fault.remaining > 0:
                fault.remaining -= 1
                raise SlackError(fault.error, status=fault.status, retry_after=fault.retry_after)
        try:
            return await self.functions.call(method, params, token)
        except FunctionRefused as refused:
            raise SlackError(refused.code, **refused.extra) from None

    async def _record(self, call: Call) -> None:
        async with self._changed:
            self._calls.append(call)
            self._changed.notify_all()

    # -- methods: auth, users --------------------------------------------------------------------

    async def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        ws = self.workspace
        return {
            "ok": True,
            "url": f"https://{ws.domain}.slack.com/",
            "team": ws.team_name,
            "user": "close_opportunity_bot",
            "team_id": ws.team_id,
            "user_id": ws.bot_user_id,
            "bot_id": ws.bot_id,
            "is_enterprise_install": False,
        }

    async def _apps_connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        await self.socket_mode.start()
        return {"ok": True, "url": self.socket_mode.url()}

    def _user_json(self, user: SlackUser, params: dict[str, Any]) -> dict[str, Any]:
        return user.as_slack(
            include_locale=_flag(params.get("include_locale")),
            with_email="users:read.email" in self.scopes,
        )

    async def _users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        user = self.workspace.user(str(params.get("user", "")))
        if user is None:
            raise SlackError("user_not_found")
        return {"ok": True, "user": self._user_json(user, params)}

    async def _users_list(self, params: dict[str, Any]) -> dict[str, Any]:
        limit = int(params.get("limit") or 0) or 200
        offset = 0
        if params.get("cursor"):
            try:
                offset = int(
                    base64.b64decode(str(params["cursor"])).decode().removeprefix("offset:")
                )
            except ValueError:
                raise SlackError("invalid_cursor") from None
        users = self.workspace.users
        page = users[offset : offset + limit]
        more = offset + limit < len(users)
        cursor = base64.b64encode(f"offset:{offset + limit}".encode()).decode() if more else ""
        return {
            "ok": True,
            "members": [self._user_json(u, params) for u in page],
            "cache_ts": int(time.time()),
            "response_metadata": {"next_cursor": cursor},
        }

    async def _users_lookup_by_email(self, params: dict[str, Any]) -> dict[str, Any]:
        email = str(params.get("email", "")).strip().lower()
        for user in self.workspace.users:
            if not user.deleted and user.profile.email and user.profile.email.lower() == email:
                return {"ok": True, "user": self._user_json(user, params)}
        raise SlackError("users_not_found")

    # -- methods: views --------------------------------------------------------------------------

    def _usable_trigger(self, params: dict[str, Any]) -> _Trigger:
        trigger = self._triggers.get(str(params.get("trigger_id", "")))
        if trigger is None:
            raise SlackError(TRIGGER_UNKNOWN)
        if trigger.used:
            raise SlackError(TRIGGER_EXCHANGED)
        if time.monotonic() - trigger.issued > self.trigger_ttl:
            raise SlackError(TRIGGER_EXPIRED)
        return trigger

    def _view_param(self, params: dict[str, Any]) -> dict[str, Any]:
        view = _json_field(params, "view")
        if not isinstance(view, dict):
            raise SlackError(
                "invalid_arguments",
                response_metadata={"messages": ["[ERROR] missing required field: view"]},
            )
        return view

    def _validate_view(self, view: dict[str, Any], surface: blockkit.Surface) -> None:
        found = blockkit.check(view, surface=surface)
        if found:
            raise SlackError(
                "invalid_arguments",
                response_metadata={"messages": _pointer_messages(found, "/view")},
            )

    def _new_hash(self) -> str:
        return f"{time.time():.6f}.{secrets.token_hex(4)}"

    def _new_view(
        self, view: dict[str, Any], user_id: str, *, parent: str | None = None
    ) -> dict[str, Any]:
        view_id = "V0" + secrets.token_hex(5).upper()
        root = self._stack_of(parent)[0] if parent else view_id
        stored = self._decorate(view, view_id)
        stored.update(root_view_id=root, previous_view_id=parent)
        self.views[view_id] = stored
        self._view_user[view_id] = user_id
        if view.get("type") != "home":
            self._stacks.setdefault(root, []).append(view_id)
        return stored

    def _decorate(self, view: dict[str, Any], view_id: str) -> dict[str, Any]:
        ws = self.workspace
        return {
            "id": view_id,
            "team_id": ws.team_id,
            "type": view.get("type"),
            "title": view.get("title"),
            "close": view.get("close"),
            "submit": view.get("submit"),
            "blocks": with_ids(view.get("blocks", [])),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "external_id": view.get("external_id", ""),
            "state": {"values": {}},
            "hash": self._new_hash(),
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "app_id": ws.app_id,
            "app_installed_team_id": ws.team_id,
            "bot_id": ws.bot_id,
        }

    def _replace_view(self, view_id: str, view: dict[str, Any]) -> dict[str, Any]:
        old = self.views[view_id]
        stored = self._decorate(view, view_id)
        stored.update(
            root_view_id=old.get("root_view_id"), previous_view_id=old.get("previous_view_id")
        )
        self.views[view_id] = stored
        # Slack keeps what the user typed in elements whose block_id/action_id survive the update.
        kept: dict[str, dict[str, dict[str, Any]]] = {}
        for block_id, actions in self._user_state.get(view_id, {}).items():
            for action_id, state in actions.items():
                try:
                    self.find_element(view_id, block_id, action_id)
                except KeyError:
                    continue
                kept.setdefault(block_id, {})[action_id] = state
        self._user_state[view_id] = kept
        stored["state"] = {"values": kept}
        return stored

    def _stack_of(self, view_id: str | None) -> list[str]:
        for stack in self._stacks.values():
            if view_id in stack:
                return stack
        return [view_id] if view_id else []

    def _close(self, view_ids: Iterable[str]) -> None:
        for view_id in list(view_ids):
            self.closed_views.add(view_id)
            stack = self._stack_of(view_id)
            if view_id in stack:
                stack.remove(view_id)

    def _find_view(self, params: dict[str, Any]) -> str:
        view_id = params.get("view_id")
        if not view_id and params.get("external_id"):
            view_id = next(
                (k for k, v in self.views.items() if v.get("external_id") == params["external_id"]),
                None,
            )
        if not view_id or view_id not in self.views or view_id in self.closed_views:
            raise SlackError("not_found")
        return str(view_id)

    async def _views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        view = self._view_param(params)
        trigger = self._usable_trigger(params)
        self._validate_view(view, "modal")
        trigger.used = True
        return {"ok": True, "view": self._new_view(view, trigger.user_id)}

    async def _views_push(self, params: dict[str, Any]) -> dict[str, Any]:
        view = self._view_param(params)
        trigger = self._usable_trigger(params)
        # The trigger came from an interaction in the user's open modal: push onto that stack.
        stacks = [
            s for s in self._stacks.values() if s and self._view_user[s[0]] == trigger.user_id
        ]
        if not stacks:
            raise SlackError("not_found")
        if len(stacks[-1]) >= VIEW_STACK_LIMIT:
            raise SlackError("push_limit_reached")
        self._validate_view(view, "modal")
        trigger.used = True
        return {"ok": True, "view": self._new_view(view, trigger.user_id, parent=stacks[-1][-1])}

    async def _views_update(self, params: dict[str, Any]) -> dict[str, Any]:
        view = self._view_param(params)
        view_id = self._find_view(params)
        given_hash = params.get("hash")
        if given_hash and given_hash != self.views[view_id]["hash"]:
            raise SlackError("hash_conflict")
        self._validate_view(view, "modal")
        return {"ok": True, "view": self._replace_view(view_id, view)}

    async def _views_publish(self, params: dict[str, Any]) -> dict[str, Any]:
        view = self._view_param(params)
        user_id = str(params.get("user_id", ""))
        if self.workspace.user(user_id) is None:
            raise SlackError("user_not_found")
        self._validate_view(view, "home")
        view_id = self.home_views.get(user_id)
        if view_id is None:
            stored = self._new_view(view, user_id)
            self.home_views[user_id] = stored["id"]
            return {"ok": True, "view": stored}
        given_hash = params.get("hash")
        if given_hash and given_hash != self.views[view_id]["hash"]:
            raise SlackError("hash_conflict")
        return {"ok": True, "view": self._replace_view(view_id, view)}

    # -- methods: chat ---------------------------------------------------------------------------

    def _next_ts(self) -> str:
        now = max(time.time(), self._last_ts + 0.000001)
        self._last_ts = now
        return f"{now:.6f}"

    def _resolve_channel_id(self, channel: str) -> str:
        if channel.startswith(("U", "W")) and self.workspace.user(channel) is not None:
            return self.workspace.app_dm(channel).id
        return channel

    def _postable(self, channel_param: Any) -> SlackChannel:
        """The channel the bot may post to, or Slack's refusal."""
        raw = str(channel_param or "")
        if not raw:
            raise SlackError("channel_not_found")
        user = self.workspace.user(raw) if raw.startswith(("U", "W")) else None
        if user is not None:
            if user.deleted:
                raise SlackError("user_disabled")
            if user.is_bot:
                raise SlackError("cannot_dm_bot")
            return self.workspace.app_dm(raw)
        channel = self.workspace.channel(raw)
        bot = self.workspace.bot_user_id
        if channel is None:
            raise SlackError("channel_not_found")
        if channel.is_im:
            if not channel.is_app_dm:
                raise SlackError("channel_not_found")
            return channel
        if channel.is_private and bot not in channel.members:
            # A private channel the bot is not in is invisible to it.
            raise SlackError("channel_not_found")
        if channel.is_archived:
            raise SlackError("is_archived")
        if bot not in channel.members and "chat:write.public" not in self.scopes:
            raise SlackError("not_in_channel")
        return channel

    def _message_body(self, params: dict[str, Any], *, require: bool = True) -> dict[str, Any]:
        blocks = _json_field(params, "blocks")
        text = params.get("text")
        if require and not text and not blocks and not params.get("attachments"):
            raise SlackError("no_text")
        message: dict[str, Any] = {}
        if text is not None:
            message["text"] = text
        if blocks is not None:
            message["blocks"] = blocks
        found = blockkit.check(message, surface="message")
        if found:
            in_blocks = [p for p in found if p.pointer.startswith("/blocks")]
            raise SlackError(
                "invalid_blocks" if in_blocks else "msg_too_long",
                response_metadata={"messages": _pointer_messages(found, "")},
            )
        return message

    def _store_message(self, channel_id: str, message: dict[str, Any]) -> None:
        messages = self._messages.setdefault(channel_id, [])
        parent_ts = message.get("thread_ts")
        if parent_ts:
            parent = next((m for m in messages if m["ts"] == parent_ts), None)
            if parent is not None:
                parent["thread_ts"] = parent_ts
                parent["reply_count"] = parent.get("reply_count", 0) + 1
                parent["latest_reply"] = message["ts"]
                users = parent.setdefault("reply_users", [])
                if message.get("user") not in users:
                    users.append(message.get("user"))
        messages.append(message)

    def _bot_message(self, body: dict[str, Any], ts: str) -> dict[str, Any]:
        ws = self.workspace
        message: dict[str, Any] = {
            "type": "message",
            "user": ws.bot_user_id,
            "bot_id": ws.bot_id,
            "app_id": ws.app_id,
            "team": ws.team_id,
            "text": body.get("text", ""),
            "ts": ts,
        }
        if "blocks" in body:
            message["blocks"] = with_ids(body["blocks"])
        return message

    def _find_message(self, channel_id: str, ts: Any) -> dict[str, Any]:
        for message in self._messages.get(channel_id, []):
            if message["ts"] == ts:
                return message
        raise SlackError("message_not_found")

    async def _chat_post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._postable(params.get("channel"))
        body = self._message_body(params)
        message = self._bot_message(body, self._next_ts())
        thread_ts = params.get("thread_ts")
        if thread_ts:
            message["thread_ts"] = str(thread_ts)
        warned = _with_metadata(message, params)
        self._store_message(channel.id, message)
        answer = {"ok": True, "channel": channel.id, "ts": message["ts"], "message": dict(message)}
        return {**answer, **warned}

    async def _chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._postable(params.get("channel"))
        message = self._find_message(channel.id, params.get("ts"))
        if message.get("bot_id") != self.workspace.bot_id:
            raise SlackError("cant_update_message")
        body = self._message_body(params, require=False)
        message.update(body)
        warned = _with_metadata(message, params)
        message["edited"] = {"user": self.workspace.bot_user_id, "ts": self._next_ts()}
        return {
            "ok": True,
            "channel": channel.id,
            "ts": message["ts"],
            "text": message.get("text", ""),
            "message": dict(message),
            **warned,
        }

    async def _chat_post_ephemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._postable(params.get("channel"))
        user_id = str(params.get("user", ""))
        if user_id not in channel.members and not (channel.is_app_dm and channel.user == user_id):
            raise SlackError("user_not_in_channel")
        body = self._message_body(params)
        ts = self._next_ts()
        entry = {"channel": channel.id, "user": user_id, "ts": ts, **body}
        if params.get("thread_ts"):
            entry["thread_ts"] = str(params["thread_ts"])
        self._ephemerals.append(entry)
        return {"ok": True, "message_ts": ts}

    async def _chat_get_permalink(self, params: dict[str, Any]) -> dict[str, Any]:
        channel_id = self._resolve_channel_id(str(params.get("channel", "")))
        if self.workspace.channel(channel_id) is None:
            raise SlackError("channel_not_found")
        message = self._find_message(channel_id, params.get("message_ts"))
        url = (
            f"https://{self.workspace.domain}.slack.com/archives/{channel_id}/"
            f"p{message['ts'].replace('.', '')}"
        )
        parent = message.get("thread_ts")
        if parent and parent != message["ts"]:
            url += f"?thread_ts={parent}&cid={channel_id}"
        return {"ok": True, "channel": channel_id, "permalink": url}

    def _unfurl_target(self, params: dict[str, Any]) -> SharedLinks:
        """The links a chat.unfurl names: `unfurl_id` + `source`, or `channel` + `ts`."""
        unfurl_id, source = params.get("unfurl_id"), params.get("source")
        if unfurl_id or source:
            if not (unfurl_id and source):
                raise SlackError("invalid_arguments")  # they only come together
            shared = self._shared_links.get(str(unfurl_id))
            if shared is None or shared.source != source:
                raise SlackError("cannot_find_message")
            return shared
        channel, ts = params.get("channel"), params.get("ts")
        if not channel:
            raise SlackError("missing_channel")
        if not ts:
            raise SlackError("missing_ts")
        if not any(m["ts"] == ts for m in self._messages.get(str(channel), [])):
            raise SlackError("cannot_find_message")
        for shared in self._shared_links.values():
            if shared.channel == channel and shared.message_ts == ts:
                return shared
        # A message no link_shared was sent for: nothing of it may be unfurled.
        raise SlackError("cannot_unfurl_url")

    async def _chat_unfurl(self, params: dict[str, Any]) -> dict[str, Any]:
        """Attach the app's previews to shared links: Block Kit `unfurls` and/or Work Object
        cards (`metadata`: `{"entities": [...]}`; "either unfurls or metadata must be
        provided"). Slack's errors: `cannot_find_message` (no such message or unfurl_id),
        `cannot_unfurl_url` (a URL Slack never told the app of), `invalid_unfurls_format`,
        `invalid_blocks`, `invalid_metadata`, `not_allowed_token_type` (the app-level token, as
        for every method but apps.connections.open), `missing_scope` (no links:write);
        `ratelimited` (Tier 3) comes from `rate_limit`/`fail_method`."""
        unfurls, metadata = params.get("unfurls"), params.get("metadata")
        if unfurls is None and metadata is None:
            raise SlackError("missing_unfurls")
        unfurls = self._checked_unfurls(unfurls) if unfurls is not None else {}
        shared = self._unfurl_target(params)
        if any(url not in shared.urls for url in unfurls):
            raise SlackError("cannot_unfurl_url")
        try:
            entities = unfurl_entities(metadata, shared.urls) if metadata is not None else {}
        except Refused as refused:
            raise SlackError(
                refused.code, response_metadata={"messages": refused.problems}
            ) from None
        for url, unfurl in unfurls.items():
            # A later chat.unfurl of the same link replaces its preview, never adds a second.
            shared.entities.pop(url, None)
            shared.unfurls[url] = {
                **unfurl,
                "blocks": with_ids(unfurl.get("blocks", [])),
                "id": shared.urls.index(url) + 1,
                "app_unfurl_url": url,
                "is_app_unfurl": True,
            }
        for url, entity in entities.items():
            shared.unfurls.pop(url, None)
            shared.entities[url] = entity
        if shared.channel != COMPOSER:
            message = self._find_message(shared.channel, shared.message_ts)
            message["attachments"] = [shared.unfurls[u] for u in shared.urls if u in shared.unfurls]
        return {"ok": True}

    def _checked_unfurls(self, unfurls: Any) -> dict[str, dict[str, Any]]:
        if isinstance(unfurls, str | bytes):
            try:
                unfurls = json.loads(unfurls)
            except ValueError:
                raise SlackError("invalid_unfurls_format") from None
        if not isinstance(unfurls, dict) or not all(isinstance(u, dict) for u in unfurls.values()):
            raise SlackError("invalid_unfurls_format")
        found: list[str] = []
        for url, unfurl in unfurls.items():
            if "blocks" in unfurl:
                checked = blockkit.check({"blocks": unfurl["blocks"]}, surface="message")
                found += _pointer_messages(checked, f"/unfurls/{url}")
        if found:
            raise SlackError("invalid_blocks", response_metadata={"messages": found})
        return unfurls

    # -- methods: Work Objects -------------------------------------------------------------------

    async def _entity_present_details(self, params: dict[str, Any]) -> dict[str, Any]:
        """A flexpane's content, for the person whose click issued `trigger_id`."""
        try:
            return self.work_objects.present(params)
        except Refused as refused:
            raise SlackError(
                refused.code, response_metadata={"messages": refused.problems}
            ) from None

    def entities(self, shared: SharedLinks) -> dict[str, dict[str, Any]]:
        """URL -> the Work Object card the app unfurled it as."""
        return dict(self._shared_links[shared.unfurl_id].entities)

    # -- methods: conversations ------------------------------------------------------------------

    async def _conversations_open(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("channel"):
            channel = self.workspace.channel(str(params["channel"]))
            if channel is None or not channel.is_app_dm:
                raise SlackError("channel_not_found")
            return {"ok": True, "channel": {"id": channel.id}}
        users = [u for u in str(params.get("users", "")).split(",") if u]
        if len(users) != 1:
            raise SlackError("not_supported" if users else "users_list_not_supplied")
        user = self.workspace.user(users[0])
        if user is None:
            raise SlackError("user_not_found")
        if user.deleted:
            raise SlackError("user_disabled")
        if user.is_bot:
            raise SlackError("cannot_dm_bot")
        channel = self.workspace.app_dm(user.id)
        return {"ok": True, "channel": {"id": channel.id}}

    async def _conversations_join(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self.workspace.channel(str(params.get("channel", "")))
        bot = self.workspace.bot_user_id
        if channel is None or (channel.is_private and bot not in channel.members):
            raise SlackError("channel_not_found")
        if channel.is_im or channel.is_private:
            raise SlackError("method_not_supported_for_channel_type")
        if channel.is_archived:
            raise SlackError("is_archived")
        if bot not in channel.members:
            channel.members.append(bot)
        return {"ok": True, "channel": channel.as_slack(self.workspace.team_id)}

    async def _conversations_info(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self.workspace.channel(str(params.get("channel", "")))
        bot = self.workspace.bot_user_id
        if channel is None or (
            (channel.is_private or channel.is_im) and bot not in channel.members
        ):
            raise SlackError("channel_not_found")
        data = channel.as_slack(self.workspace.team_id)
        data["is_member"] = bot in channel.members
        return {"ok": True, "channel": data}

    # -- HTTP: response_url ----------------------------------------------------------------------

    async def _response_url(self, request: Request) -> Response:
        rid = self.response_url_id(request.path_params["rid"])
        target = self._response_urls.get(rid)
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            body = None
        record: dict[str, Any] = {"id": rid, "body": body}
        if target is None:
            return await self._answer_response_url(record, 404, "invalid_token")
        if len(target.posts) >= RESPONSE_URL_USES:
            return await self._answer_response_url(record, 404, "used_url")
        if time.monotonic() - target.issued > RESPONSE_URL_TTL:
            return await self._answer_response_url(record, 404, "expired_url")
        if not isinstance(body, dict):
            return await self._answer_response_url(record, 400, "invalid_payload")
        message = {k: body[k] for k in ("text", "blocks") if k in body}
        found = blockkit.check(message, surface="message")
        if found:
            return await self._answer_response_url(record, 400, "invalid_blocks")
        if not message and not body.get("delete_original"):
            return await self._answer_response_url(record, 400, "no_text")
        target.posts.append(body)
        self._deliver_response(target, body, message)
        return await self._answer_response_url(record, 200, None)

    def _deliver_response(
        self, target: _ResponseUrl, body: dict[str, Any], message: dict[str, Any]
    ) -> None:
        channel_id = target.channel_id
        if target.message_ts and (
            _flag(body.get("replace_original")) or _flag(body.get("delete_original"))
        ):
            try:
                original = self._find_message(channel_id, target.message_ts)
            except SlackError:
                original = None
            if original is not None:
                if _flag(body.get("delete_original")):
                    self._messages[channel_id].remove(original)
                else:
                    original.pop("blocks", None)
                    original.update(message)
                return
        if body.get("response_type") == "in_channel":
            posted = self._bot_message(message, self._next_ts())
            if body.get("thread_ts"):
                posted["thread_ts"] = str(body["thread_ts"])
            self._store_message(channel_id, posted)
        else:
            self._ephemerals.append(
                {"channel": channel_id, "user": target.user_id, "ts": self._next_ts(), **message}
            )

    async def _answer_response_url(
        self, record: dict[str, Any], status: int, error: str | None
    ) -> Response:
        answer: dict[str, Any] = {"ok": error is None}
        if error:
            answer["error"] = error
        await self._record(Call("response_url", record, time.time(), status, answer))
        return JSONResponse(answer, status_code=status)


def _with_metadata(message: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """chat.postMessage / chat.update `metadata`, recorded on the message: an event
    (`event_type` + `event_payload`) and/or Work Object cards (`entities`, checked like
    chat.unfurl's, without `app_unfurl_url`). Slack does not refuse the message for bad
    metadata: it drops the metadata and says so in `warning` (what it answers here). Without
    `metadata`, chat.update leaves the message's as it was."""
    if params.get("metadata") is None:
        return {}
    try:
        metadata = _json_field(params, "metadata")
    except SlackError:
        metadata = None
    problems: list[str] = []
    entities = metadata.get("entities") if isinstance(metadata, dict) else None
    if not isinstance(metadata, dict):
        problems.append("/metadata must be an object")
    elif entities is not None:
        if not isinstance(entities, list) or not entities:
            problems.append("/metadata/entities must be a non-empty array")
        else:
            for i, entity in enumerate(entities):
                found = entity_problems(entity, unfurl=False)
                problems += [f"/metadata/entities/{i}{p}" for p in found]
    elif not isinstance(metadata.get("event_type"), str):
        problems.append("/metadata/event_type is required")
    if problems:
        return {"warning": "invalid_metadata_format", "response_metadata": {"messages": problems}}
    message["metadata"] = metadata
    return {}
