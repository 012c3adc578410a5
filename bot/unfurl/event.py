"""What a `link_shared` event says that a preview needs, read defensively."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

# The `channel` of a link still being typed: Slack does not say where it will be posted.
COMPOSER = "COMPOSER"


class LinkShared(BaseModel):
    """A `link_shared` event (Slack's own field names)."""

    user: str | None = None
    channel: str | None = None
    message_ts: str | None = None
    thread_ts: str | None = None
    unfurl_id: str | None = None
    source: str | None = None
    urls: list[str] = []
    # The sharer's workspace (the event envelope's `team_id`).
    team_id: str | None = None

    @classmethod
    def from_event(cls, event: dict[str, Any], team_id: str | None = None) -> LinkShared:
        """Read defensively: an odd-shaped part reads as missing, never raises."""
        links = event.get("links")
        urls = [
            link["url"]
            for link in (links if isinstance(links, list) else [])
            if isinstance(link, dict) and isinstance(link.get("url"), str) and link["url"]
        ]
        fields = ("user", "channel", "message_ts", "thread_ts", "unfurl_id", "source")
        given = {k: v for k in fields if isinstance(v := event.get(k), str) and v}
        return cls(urls=urls, team_id=team_id or None, **given)

    @property
    def in_composer(self) -> bool:
        """A link still being typed: no message yet, and no channel Slack tells."""
        return self.source == "composer" or self.channel == COMPOSER

    def conversation(self) -> str | None:
        """The channel whose people will read the preview, when Slack says it (a posted
        message); None for a link still in the composer."""
        if self.in_composer or not self.channel:
            return None
        return self.channel

    def target(self) -> dict[str, str] | None:
        """Where chat.unfurl attaches previews: the message (`channel` + `ts`), or for a link
        still in the composer (or an event without a message) `unfurl_id` + `source`."""
        channel = self.conversation()
        if channel and self.message_ts:
            return {"channel": channel, "ts": self.message_ts}
        if self.unfurl_id and self.source:
            return {"unfurl_id": self.unfurl_id, "source": self.source}
        return None

    def reply_thread(self) -> str | None:
        """The thread a confirmation goes to: the message's thread, or one it starts."""
        if self.in_composer:
            return None  # no message yet; the button's click names it
        return self.thread_ts or self.message_ts
