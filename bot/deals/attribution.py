"""Who Close shows as the creator of a deal the key creates: the person who logged it
(`created_by` = their Close user); whether Close takes that from the key is stored for `doctor`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from bot.close.client import CloseClient
from bot.deals.models import Submission
from bot.identity import Identity

log = logging.getLogger(__name__)

# The small durable fact `doctor` reads (in the sync's key-value state: one row, no migration).
STATE_KEY = "close_created_by"
# Their mapping is usually remembered; past this, the deal goes without `created_by`.
MAPPING_SECONDS = 5.0


class StateStore(Protocol):
    async def get_state(self, key: str) -> dict[str, Any] | None: ...

    async def put_state(self, key: str, value: dict[str, Any], *, now: datetime) -> None: ...


class Attribution:
    """`creator`: the Close user a deal is created for when the key creates it (None with a
    person's own token: Close records them). `learned`: store, once per process and answer,
    whether Close took `created_by` from the key (the client falls back on a refusal)."""

    def __init__(
        self,
        identity: Identity | None,
        state: StateStore | None,
        clock: Callable[[], datetime],
    ) -> None:
        self._identity = identity
        self._state = state
        self._clock = clock
        self._stored: bool | None = None

    async def creator(self, submission: Submission, close: CloseClient) -> str | None:
        if not close.acts_with_key:
            return None
        request = submission.request
        if request.user_id and request.owner_slack_id == submission.slack_user_id:
            return request.user_id  # they own it: their mapping was decided when they logged it
        if self._identity is None:
            return None
        try:
            mapping = await asyncio.wait_for(
                self._identity.close_user_for(submission.slack_user_id), MAPPING_SECONDS
            )
        except Exception as error:  # attribution is a nicety: the deal goes on without it
            log.info("No Close creator for %s: %s", submission.id, type(error).__name__)
            return None
        return mapping.close_user.id if mapping.close_user is not None else None

    async def learned(self, close: CloseClient) -> None:
        """After a create with `created_by`: remember Close's answer for `doctor`. Never raises."""
        accepted = close.attribution.accepted
        if accepted is None or accepted == self._stored or self._state is None:
            return
        now = self._clock()
        try:
            await self._state.put_state(
                STATE_KEY, {"accepted": accepted, "at": now.isoformat()}, now=now
            )
        except Exception:
            log.warning("Could not store whether Close takes created_by", exc_info=True)
            return
        self._stored = accepted


def describe(state: dict[str, Any] | None) -> tuple[bool, str]:
    """`doctor`'s line: (fine, text)."""
    if state is None or state.get("accepted") is None:
        return True, (
            "created_by: not tried yet (deals created with the key on someone's behalf name "
            "them as creator, if Close takes it)"
        )
    when = str(state.get("at") or "")[:19].replace("T", " ")
    if state["accepted"]:
        return (
            True,
            f"created_by: Close shows the rep as creator of deals the key creates ({when}Z)",
        )
    return False, (
        f"created_by: Close refused it from CLOSE_API_KEY ({when}Z), so deals created with the "
        "key show the key's owner as creator (the rep stays the owner). People who connect "
        "their own Close account (CLOSE_ACCESS=either or personal) create as themselves."
    )
