"""Plays Slack towards the bot: signed commands, interactions and events to its /slack/events."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import urllib.parse
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import httpx
from slack_sdk.signature import SignatureVerifier

from sandbox import blockkit
from sandbox.functions_sim import StepRun
from sandbox.slack_sim import COMPOSER, Call, SharedLinks, SlackSimulator

View = dict[str, Any]

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


@dataclass(frozen=True)
class CommandResult:
    """The bot's answer to a slash command, and the one-time handles Slack gave it."""

    response: httpx.Response
    trigger_id: str
    response_url: str


@dataclass(frozen=True)
class InteractionResult:
    """The bot's answer to an interaction that came with a trigger_id (and maybe a response_url)."""

    response: httpx.Response
    trigger_id: str
    response_url: str | None


@dataclass(frozen=True)
class PastedLinks:
    """Links a person posted, the `link_shared` event Slack sent for them, and the bot's answer."""

    shared: SharedLinks
    event_id: str
    response: httpx.Response


@dataclass(frozen=True)
class OpenedCard:
    """A card's flexpane opened: its trigger_id, and the ack of its `entity_details_requested`."""

    trigger_id: str
    response: httpx.Response


class SlackDriver:
    """Sends what Slack sends, signed like Slack signs it, and keeps the simulator in step."""

    def __init__(
        self,
        sim: SlackSimulator,
        events_url: str,
        signing_secret: str,
        *,
        team_id: str = "T0SANDBOX",
        api_app_id: str = "A0SANDBOX",
        timeout: float = 10.0,
        socket_mode: bool = False,
    ) -> None:
        """`socket_mode`: commands and interactions go over the simulator's Socket Mode
        connection (to an app in Socket Mode) instead of HTTP to `events_url`."""
        self.sim = sim
        self.events_url = events_url
        self.socket_mode = socket_mode
        self.timeout = timeout
        self.team_id = team_id
        self.api_app_id = api_app_id
        self._verifier = SignatureVerifier(signing_secret)
        self._http = httpx.AsyncClient(timeout=timeout)
        # How long Slack takes to act on a view submission's ack once it has it (a real Slack is
        # a network away): updates the bot sends in the meantime are then covered by the ack's.
        self.ack_applied_after = 0.0

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- transport -------------------------------------------------------------------------------

    async def raw(
        self,
        body: bytes,
        content_type: str,
        *,
        sign: bool = True,
        timestamp: int | None = None,
        signature: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """POST `body` as is; signed unless told otherwise (for hostile-input tests)."""
        ts = str(int(time.time()) if timestamp is None else timestamp)
        sent = {"Content-Type": content_type, **(headers or {})}
        if sign or signature is not None:
            sent["X-Slack-Request-Timestamp"] = ts
            sent["X-Slack-Signature"] = signature or str(
                self._verifier.generate_signature(timestamp=ts, body=body.decode())
            )
        return await self._http.post(self.events_url, content=body, headers=sent)

    async def _form(self, fields: dict[str, str]) -> httpx.Response:
        if self.socket_mode:
            return await self._over_socket("slash_commands", dict(fields))
        return await self.raw(urllib.parse.urlencode(fields).encode(), FORM)

    async def _interaction(self, payload: dict[str, Any]) -> httpx.Response:
        if self.socket_mode:
            return await self._over_socket("interactive", payload)
        return await self._form({"payload": json.dumps(payload)})

    async def _over_socket(self, kind: str, payload: dict[str, Any]) -> httpx.Response:
        """Send an envelope and wait for its ack, shaped as the HTTP answer would be."""
        server = self.sim.socket_mode
        envelope_id = await server.send(kind, payload, accepts_response_payload=True)
        ack = await server.wait_ack(envelope_id, self.timeout)
        return httpx.Response(200, json=ack) if ack else httpx.Response(200)

    # -- common payload parts --------------------------------------------------------------------

    def _user(self, user_id: str) -> dict[str, Any]:
        user = self.sim.workspace.user(user_id)
        name = user.name if user else user_id.lower()
        return {"id": user_id, "username": name, "name": name, "team_id": self._team_of(user_id)}

    def _team_of(self, user_id: str) -> str:
        """The person's own team: another organization's for an external user (Slack Connect)."""
        user = self.sim.workspace.user(user_id)
        return user.team_id if user is not None else self.team_id

    def _team(self) -> dict[str, Any]:
        return {"id": self.team_id, "domain": self.sim.workspace.domain}

    def _channel(self, channel_id: str) -> dict[str, Any]:
        channel = self.sim.workspace.channel(channel_id)
        name = "directmessage" if channel is None or channel.is_im else channel.name
        return {"id": channel_id, "name": name}

    def _base(self, kind: str, user_id: str) -> dict[str, Any]:
        return {
            "type": kind,
            "token": "sandbox-verification-token",  # deprecated, still sent by Slack
            "api_app_id": self.api_app_id,
            "team": self._team(),
            "user": self._user(user_id),
            "enterprise": None,
            "is_enterprise_install": False,
        }

    @staticmethod
    def _action_ts() -> str:
        return f"{time.time():.6f}"

    # -- slash commands --------------------------------------------------------------------------

    async def slash_command(
        self,
        text: str,
        *,
        user_id: str = "U0ALICE",
        channel_id: str = "C0SALES",
        command: str = "/opportunity",
    ) -> CommandResult:
        """`text` goes out as given: write mentions escaped (`<@U0BOB|bob>`) as Slack would."""
        trigger_id = self.sim.issue_trigger(user_id)
        response_url = self.sim.issue_response_url(channel_id, user_id)
        channel = self._channel(channel_id)
        user = self._user(user_id)
        fields = {
            "token": "sandbox-verification-token",
            # A person of another organization runs it from their own workspace (the app
            # installed there too): the payload names their team.
            "team_id": self._team_of(user_id),
            "team_domain": self.sim.workspace.domain,
            "channel_id": channel_id,
            "channel_name": channel["name"],
            "user_id": user_id,
            "user_name": user["name"],
            "command": command,
            "text": text,
            "api_app_id": self.api_app_id,
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": trigger_id,
        }
        response = await self._form(fields)
        return CommandResult(response, trigger_id, response_url)

    # -- modals ----------------------------------------------------------------------------------

    def _view_payload(self, view_id: str) -> dict[str, Any]:
        view = dict(self.sim.views[view_id])
        view["state"] = {"values": self.sim.state_values(view_id)}
        return view

    def _apply_values(self, view_id: str, values: dict[str, Any]) -> None:
        """Per block_id overrides, as if the user typed or picked them (kept for later actions)."""
        for block_id, choice in values.items():
            element = self.sim.find_element(view_id, block_id)
            state = blockkit.state_for(element, choice)
            self.sim.set_state(view_id, block_id, element["action_id"], state)

    async def submit_view(
        self,
        view_id: str,
        *,
        values: dict[str, Any] | None = None,
        user_id: str | None = None,
    ) -> httpx.Response:
        """Press Submit on the view the simulator holds; Slack then acts on the bot's ack.

        `values` maps block_id to what the user entered: a string/None for text inputs, dates
        and users_select; an option value or an option dict for selects (any {"text","value"}
        for external_select); a list for multi selects and checkboxes.
        """
        if values:
            self._apply_values(view_id, values)
        user_id = user_id or self.sim.view_user(view_id)
        payload = {
            **self._base("view_submission", user_id),
            "trigger_id": self.sim.issue_trigger(user_id),
            "view": self._view_payload(view_id),
            "response_urls": [],
        }
        response = await self._interaction(payload)
        if response.status_code == 200:
            ack = _json_or_none(response)
            if self.ack_applied_after:
                await asyncio.sleep(self.ack_applied_after)
            self.sim.apply_response_action(view_id, ack)
        return response

    async def close_view(
        self, view_id: str, *, user_id: str | None = None
    ) -> httpx.Response | None:
        """The user closes the modal; Slack tells the bot only if the view set notify_on_close."""
        view = self.sim.views[view_id]
        self.sim.apply_response_action(view_id, {"response_action": "clear"})
        if not view.get("notify_on_close"):
            return None
        user_id = user_id or self.sim.view_user(view_id)
        payload = {
            **self._base("view_closed", user_id),
            "view": self._view_payload(view_id),
            "is_cleared": True,
        }
        return await self._interaction(payload)

    async def block_suggestion(
        self,
        view_id: str,
        block_id: str,
        value: str,
        *,
        action_id: str | None = None,
        user_id: str | None = None,
    ) -> httpx.Response:
        """The user typed `value` into an external_select: Slack asks the options URL."""
        element = self.sim.find_element(view_id, block_id, action_id)
        user_id = user_id or self.sim.view_user(view_id)
        payload = {
            **self._base("block_suggestion", user_id),
            "container": {"type": "view", "view_id": view_id},
            "action_id": element["action_id"],
            "block_id": block_id,
            "value": value,
            "view": self._view_payload(view_id),
        }
        return await self._interaction(payload)

    async def select_in_view(
        self,
        view_id: str,
        block_id: str,
        choice: Any,
        *,
        action_id: str | None = None,
        user_id: str | None = None,
    ) -> InteractionResult:
        """Pick `choice` in an element of a modal (a block_actions); a later submit keeps it.

        `choice` is what `submit_view` accepts in `values` for that element.
        """
        element = self.sim.find_element(view_id, block_id, action_id)
        state = blockkit.state_for(element, choice)
        self.sim.set_state(view_id, block_id, element["action_id"], state)
        user_id = user_id or self.sim.view_user(view_id)
        trigger_id = self.sim.issue_trigger(user_id)
        action = {
            **state,
            "action_id": element["action_id"],
            "block_id": block_id,
            "action_ts": self._action_ts(),
        }
        if "placeholder" in element:
            action["placeholder"] = element["placeholder"]
        payload = {
            **self._base("block_actions", user_id),
            "container": {"type": "view", "view_id": view_id},
            "trigger_id": trigger_id,
            "view": self._view_payload(view_id),
            "actions": [action],
        }
        response = await self._interaction(payload)
        return InteractionResult(response, trigger_id, None)

    async def press_in_view(
        self,
        view_id: str,
        block_id: str,
        *,
        action_id: str | None = None,
        user_id: str | None = None,
        selected_date: str | None = None,
    ) -> InteractionResult:
        """Click a button in a view (a modal, or a Home tab): a block_actions with its value
        (or pick `selected_date` in its datepicker: Slack sends the date, and no value)."""
        element = self.sim.find_element(view_id, block_id, action_id)
        user_id = user_id or self.sim.view_user(view_id)
        trigger_id = self.sim.issue_trigger(user_id)
        action = {
            "type": element.get("type", "button"),
            "action_id": element["action_id"],
            "block_id": block_id,
            "text": element.get("text"),
            "value": element.get("value"),
            "action_ts": self._action_ts(),
        }
        _picked(action, element, selected_date)
        payload = {
            **self._base("block_actions", user_id),
            "container": {"type": "view", "view_id": view_id},
            "trigger_id": trigger_id,
            "view": self._view_payload(view_id),
            "actions": [action],
        }
        response = await self._interaction(payload)
        return InteractionResult(response, trigger_id, None)

    async def wait_for_view(self, trigger_id: str | None = None, timeout: float = 5.0) -> View:  # noqa: ASYNC109
        """The modal the bot opened with `trigger_id` (any views.open if None), as it is now."""

        def opened(call: Call) -> bool:
            return call.ok and (trigger_id is None or call.params.get("trigger_id") == trigger_id)

        call = await self.sim.wait_for("views.open", opened, timeout)
        return self.sim.views[call.response["view"]["id"]]

    # -- messages --------------------------------------------------------------------------------

    async def press_button(
        self,
        *,
        channel_id: str,
        message_ts: str,
        action_id: str,
        value: str | None = None,
        block_id: str | None = None,
        user_id: str = "U0ALICE",
        selected_date: str | None = None,
    ) -> InteractionResult:
        """Click a button in a message the simulator holds (or pick `selected_date` in its
        datepicker: Slack sends the date, and no value)."""
        message = next((m for m in self.sim.messages(channel_id) if m["ts"] == message_ts), None)
        if message is None:
            raise KeyError(f"no message {message_ts} in {channel_id}")
        button = _find_in_blocks(message.get("blocks") or [], action_id, block_id)
        if button is None:
            raise KeyError(f"no element {action_id!r} in message {message_ts}")
        found_block_id, element = button
        trigger_id = self.sim.issue_trigger(user_id)
        response_url = self.sim.issue_response_url(channel_id, user_id, message_ts)
        action: dict[str, Any] = {
            "type": element.get("type", "button"),
            "action_id": action_id,
            "block_id": found_block_id,
            "text": element.get("text"),
            "value": value if value is not None else element.get("value"),
            "action_ts": self._action_ts(),
        }
        if "style" in element:
            action["style"] = element["style"]
        _picked(action, element, selected_date)
        payload = {
            **self._base("block_actions", user_id),
            "container": {
                "type": "message",
                "message_ts": message_ts,
                "channel_id": channel_id,
                "is_ephemeral": False,
            },
            "trigger_id": trigger_id,
            "channel": self._channel(channel_id),
            "message": message,
            "state": {"values": {}},
            "response_url": response_url,
            "actions": [action],
        }
        response = await self._interaction(payload)
        return InteractionResult(response, trigger_id, response_url)

    async def press_ephemeral_button(
        self, ephemeral: dict[str, Any], *, action_id: str, block_id: str | None = None
    ) -> InteractionResult:
        """Click a button in an ephemeral message (one of `sim.ephemerals()`), as the person
        who sees it: Slack sends no `message` then, and the container says `is_ephemeral`."""
        button = _find_in_blocks(ephemeral.get("blocks") or [], action_id, block_id)
        if button is None:
            raise KeyError(f"no element {action_id!r} in the ephemeral {ephemeral['ts']}")
        found_block_id, element = button
        user_id, channel_id = str(ephemeral["user"]), str(ephemeral["channel"])
        trigger_id = self.sim.issue_trigger(user_id)
        response_url = self.sim.issue_response_url(channel_id, user_id)
        action: dict[str, Any] = {
            "type": element.get("type", "button"),
            "action_id": action_id,
            "block_id": found_block_id,
            "text": element.get("text"),
            "value": element.get("value"),
            "action_ts": self._action_ts(),
        }
        payload = {
            **self._base("block_actions", user_id),
            "container": {
                "type": "message",
                "message_ts": ephemeral["ts"],
                "channel_id": channel_id,
                "is_ephemeral": True,
            },
            "trigger_id": trigger_id,
            "channel": self._channel(channel_id),
            "state": {"values": {}},
            "response_url": response_url,
            "actions": [action],
        }
        response = await self._interaction(payload)
        return InteractionResult(response, trigger_id, response_url)

    # -- shortcuts -------------------------------------------------------------------------------

    async def message_shortcut(
        self,
        callback_id: str,
        *,
        message: dict[str, Any],
        channel_id: str = "C0SALES",
        user_id: str = "U0ALICE",
    ) -> InteractionResult:
        """Run a message shortcut on `message` (seed it with `sim.add_message` first)."""
        trigger_id = self.sim.issue_trigger(user_id)
        response_url = self.sim.issue_response_url(channel_id, user_id)
        payload = {
            **self._base("message_action", user_id),
            "callback_id": callback_id,
            "trigger_id": trigger_id,
            "action_ts": self._action_ts(),
            "message_ts": message["ts"],
            "message": message,
            "channel": self._channel(channel_id),
            "response_url": response_url,
        }
        response = await self._interaction(payload)
        return InteractionResult(response, trigger_id, response_url)

    async def global_shortcut(
        self, callback_id: str, *, user_id: str = "U0ALICE"
    ) -> InteractionResult:
        trigger_id = self.sim.issue_trigger(user_id)
        payload = {
            **self._base("shortcut", user_id),
            "callback_id": callback_id,
            "trigger_id": trigger_id,
            "action_ts": self._action_ts(),
        }
        response = await self._interaction(payload)
        return InteractionResult(response, trigger_id, None)

    # -- Events API ------------------------------------------------------------------------------

    async def event(
        self,
        event: dict[str, Any],
        *,
        retry_num: int | None = None,
        retry_reason: str = "http_timeout",
        event_id: str | None = None,
    ) -> httpx.Response:
        """Deliver an Events API `event_callback` (with Slack's retry headers if `retry_num`)."""
        body = self.event_body(event, event_id=event_id)
        if self.socket_mode and retry_num is None:
            server = self.sim.socket_mode
            envelope_id = await server.send("events_api", body)
            await server.wait_ack(envelope_id, self.timeout)
            return httpx.Response(200)
        headers = {}
        if retry_num is not None:
            headers = {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": retry_reason}
        return await self.raw(json.dumps(body).encode(), JSON, headers=headers)

    def event_body(self, event: dict[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
        """The `event_callback` Slack wraps `event` in (HTTP body, or Socket Mode payload)."""
        ws = self.sim.workspace
        return {
            "token": "sandbox-verification-token",
            "team_id": self.team_id,
            "api_app_id": self.api_app_id,
            "event": {"event_ts": self._action_ts(), **event},
            "type": "event_callback",
            "event_id": event_id or "Ev0" + secrets.token_hex(5).upper(),
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": self.team_id,
                    "user_id": ws.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": self.sim.is_ext_shared(_event_channel(event)),
        }

    def socket_envelope(
        self,
        body: dict[str, Any],
        *,
        retry_attempt: int = 0,
        retry_reason: str = "",
        kind: str = "events_api",
    ) -> dict[str, Any]:
        """The Socket Mode message Slack sends for `body` over the websocket (a redelivery has
        `retry_attempt` > 0); `SocketModeRequest.from_dict` reads it."""
        return {
            "envelope_id": secrets.token_hex(8) + "-" + secrets.token_hex(4),
            "payload": body,
            "type": kind,
            "accepts_response_payload": kind != "events_api",
            "retry_attempt": retry_attempt,
            "retry_reason": retry_reason,
        }

    async def paste_links(
        self,
        urls: list[str],
        *,
        user_id: str = "U0ALICE",
        channel_id: str = "C0SALES",
        thread_ts: str | None = None,
        text: str | None = None,
        source: str = "conversations_history",
    ) -> PastedLinks:
        """A person posts `urls` (in a message of `text`, by default just the links; in a thread
        with `thread_ts`; still typing them with `source="composer"`): Slack sends the bot
        `link_shared`. Resend it with `link_shared(pasted.shared, event_id=…, retry_num=1)`."""
        shared = self.sim.share_links(
            channel_id, urls, user=user_id, thread_ts=thread_ts, text=text, source=source
        )
        event_id = "Ev0" + secrets.token_hex(5).upper()
        response = await self.link_shared(shared, event_id=event_id)
        return PastedLinks(shared, event_id, response)

    async def link_shared(
        self,
        shared: SharedLinks,
        *,
        event_id: str | None = None,
        retry_num: int | None = None,
        retry_reason: str = "http_timeout",
    ) -> httpx.Response:
        """Deliver the `link_shared` event of `shared` (again, as a retry, with `retry_num`)."""
        event = shared.event(bot_is_member=self.sim.bot_is_member(shared.channel))
        return await self.event(
            event, event_id=event_id, retry_num=retry_num, retry_reason=retry_reason
        )

    async def press_unfurl_button(
        self,
        shared: SharedLinks,
        url: str,
        *,
        action_id: str,
        user_id: str = "U0ALICE",
    ) -> InteractionResult:
        """Click a button in the app's preview of `url`: a block_actions whose container is the
        preview (a message attachment) and which carries `app_unfurl` instead of `message`."""
        unfurl = self.sim.unfurls(shared).get(url)
        if unfurl is None:
            raise KeyError(f"no preview of {url}")
        button = _find_in_blocks(unfurl.get("blocks") or [], action_id, None)
        if button is None:
            raise KeyError(f"no element {action_id!r} in the preview of {url}")
        block_id, element = button
        trigger_id = self.sim.issue_trigger(user_id)
        response_url = self.sim.issue_response_url(shared.channel, user_id, shared.message_ts)
        action: dict[str, Any] = {
            "type": element.get("type", "button"),
            "action_id": action_id,
            "block_id": block_id,
            "text": element.get("text"),
            "value": element.get("value"),
            "action_ts": self._action_ts(),
        }
        payload = {
            **self._base("block_actions", user_id),
            "container": {
                "type": "message_attachment",
                "message_ts": shared.message_ts,
                "attachment_id": unfurl["id"],
                "channel_id": shared.channel,
                "is_ephemeral": False,
                "is_app_unfurl": True,
                "app_unfurl_url": url,
            },
            "trigger_id": trigger_id,
            "channel": self._channel(shared.channel),
            "app_unfurl": {
                "id": unfurl["id"],
                "blocks": unfurl.get("blocks") or [],
                "app_unfurl_url": url,
                "is_app_unfurl": True,
            },
            "state": {"values": {}},
            "response_url": response_url,
            "actions": [action],
        }
        response = await self._interaction(payload)
        return InteractionResult(response, trigger_id, response_url)

    async def open_card(
        self, shared: SharedLinks, url: str, *, user_id: str = "U0ALICE"
    ) -> OpenedCard:
        """`user_id` clicks the Work Object card of `url` (the app's chat.unfurl `metadata`):
        Slack sends `entity_details_requested` with a trigger_id for the flexpane (over HTTP,
        or the Socket Mode connection). The app's entity.presentDetails lands in
        `sim.work_objects.flexpanes[trigger_id].answer`."""
        entity = self.sim.entities(shared).get(url)
        if entity is None:
            raise KeyError(f"no Work Object card for {url}")
        in_message = shared.channel != COMPOSER
        pane = self.sim.work_objects.open(
            user_id,
            entity,
            channel=shared.channel if in_message else None,
            message_ts=shared.message_ts if in_message else None,
            thread_ts=shared.thread_ts,
        )
        user = self.sim.workspace.user(user_id)
        locale = user.locale if user is not None else "en-US"
        response = await self.event(pane.event(user_locale=locale))
        return OpenedCard(pane.trigger_id, response)

    async def open_message_card(
        self, channel: str, ts: str, *, user_id: str = "U0ALICE", index: int = 0
    ) -> OpenedCard:
        """`user_id` clicks the Work Object card the app attached to its message `ts` in
        `channel` (chat.postMessage / chat.update `metadata.entities[index]`): Slack sends
        `entity_details_requested` with the message's channel and ts and a fresh trigger_id."""
        [message] = [m for m in self.sim.messages(channel) if m["ts"] == ts]
        entities = (message.get("metadata") or {}).get("entities") or []
        if len(entities) <= index:
            raise KeyError(f"no Work Object card on {channel}/{ts}")
        pane = self.sim.work_objects.open(
            user_id,
            entities[index],
            channel=channel,
            message_ts=ts,
            thread_ts=message.get("thread_ts"),
        )
        user = self.sim.workspace.user(user_id)
        locale = user.locale if user is not None else "en-US"
        response = await self.event(pane.event(user_locale=locale))
        return OpenedCard(pane.trigger_id, response)

    async def save_entity_edit(
        self,
        entity: dict[str, Any],
        values: dict[str, dict[str, Any]],
        *,
        user_id: str = "U0ALICE",
        channel_id: str | None = None,
        message_ts: str | None = None,
    ) -> OpenedCard:
        """`user_id` edits fields of `entity` in its flexpane and saves: a `view_submission`
        whose `view.type` is `entity_detail`, each field's element state at
        `view.state.values[key]["key.input"]` (`values`: key -> state, e.g.
        `{"selected_option": {"value": …}}`, `{"value": "60"}`, `{"selected_date": …}`), with
        the entity's `external_ref`, `entity_url`, `channel`, `message_ts` (SLACK.md's reading of
        docs.slack.dev "Implementing Work Objects"). Its trigger_id takes the pane's answer.
        The view is Slack's own, not a modal the app opened: it comes without a `callback_id`
        (no documented payload shows one), the strictest reading for the app's matching."""
        pane = self.sim.work_objects.open(
            user_id, entity, channel=channel_id, message_ts=message_ts
        )
        where = {"channel": channel_id, "message_ts": message_ts} if channel_id else {}
        view = {
            "id": "V0" + secrets.token_hex(5).upper(),
            "type": "entity_detail",
            "app_id": self.api_app_id,
            "team_id": self.team_id,
            "state": {"values": {k: {f"{k}.input": state} for k, state in values.items()}},
            "external_ref": dict(entity.get("external_ref") or {}),
            "entity_url": entity.get("url"),
            **where,
        }
        payload = {
            **self._base("view_submission", user_id),
            "trigger_id": pane.trigger_id,
            "view": view,
            "response_urls": [],
        }
        return OpenedCard(pane.trigger_id, await self._interaction(payload))

    async def app_home_opened(self, user_id: str = "U0ALICE") -> httpx.Response:
        channel = self.sim.workspace.app_dm(user_id)
        event: dict[str, Any] = {
            "type": "app_home_opened",
            "user": user_id,
            "channel": channel.id,
            "tab": "home",
        }
        home = self.sim.home_views.get(user_id)
        if home is not None:
            event["view"] = self.sim.views[home]
        return await self.event(event)

    async def function_executed(
        self,
        inputs: dict[str, Any] | None = None,
        *,
        callback_id: str = "create_opportunity",
        again: StepRun | None = None,
        retry_num: int | None = None,
    ) -> StepRun:
        """A workflow reaches the app's step `callback_id` with `inputs`: the simulator starts
        an execution (its own `xwfp-` token) and Slack sends `function_executed`. `again`:
        deliver that run's event once more (same execution and event id; a retry with
        `retry_num`, as Slack does when the ack did not come in time)."""
        if again is not None:
            execution, event_id = again.execution, again.event_id
        else:
            execution = self.sim.functions.start(callback_id, inputs or {})
            event_id = "Ev0" + secrets.token_hex(5).upper()
        response = await self.event(
            self.sim.functions.event(execution), event_id=event_id, retry_num=retry_num
        )
        return StepRun(execution, event_id, response)


def _event_channel(event: dict[str, Any]) -> str:
    channel = event.get("channel")
    if isinstance(channel, dict):
        channel = channel.get("id")
    return channel if isinstance(channel, str) else ""


def _json_or_none(response: httpx.Response) -> dict[str, Any] | None:
    if not response.content.strip():
        return None
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _find_in_blocks(
    blocks: list[dict[str, Any]], action_id: str, block_id: str | None
) -> tuple[str, dict[str, Any]] | None:
    for block in blocks:
        if block_id is not None and block.get("block_id") != block_id:
            continue
        elements = list(block.get("elements") or [])
        if isinstance(block.get("accessory"), dict):
            elements.append(block["accessory"])
        for element in elements:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                return str(block.get("block_id", "")), element
    return None


def _picked(action: dict[str, Any], element: dict[str, Any], selected_date: str | None) -> None:
    """A datepicker's action carries the picked date (and the initial one), no value or text."""
    if element.get("type") == "datepicker":
        action.pop("value", None)
        action.pop("text", None)
        action["selected_date"] = selected_date
        action["initial_date"] = element.get("initial_date")
