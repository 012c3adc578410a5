"""The Slack Web API client the gateway wraps: slack_sdk's, with every call timed for metrics."""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol, cast

from aiohttp import FormData
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.logs import EffectiveLevel
from bot.tasks import remote_call


class SlackObserver(Protocol):
    """Told about every Web API call (bot.metrics.Metrics is one)."""

    def slack_call(self, method: str, seconds: float, error: str | None) -> None:
        """One call: its method, how long it took, and Slack's error code (or "unreachable")."""


class ObservedSlackClient(AsyncWebClient):
    """slack_sdk's client, counting every Web API call's time and error in `metrics`."""

    def __init__(self, *args: Any, metrics: SlackObserver, **kwargs: Any) -> None:
        if kwargs.get("logger") is None:
            # Duck-typed: slack_sdk only reads its `level` and calls debug/info/warning/error.
            kwargs["logger"] = cast(
                logging.Logger, EffectiveLevel(logging.getLogger("slack_sdk.web.async_client"))
            )
        super().__init__(*args, **kwargs)
        self.metrics = metrics

    async def api_call(
        self,
        api_method: str,
        *,
        http_verb: str = "POST",
        files: dict[str, Any] | None = None,
        data: dict[str, Any] | FormData | None = None,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
        headers: dict[str, Any] | None = None,
        auth: dict[str, Any] | None = None,
    ) -> AsyncSlackResponse:
        async with remote_call():
            started = time.perf_counter()
            error: str | None = None
            try:
                return await super().api_call(
                    api_method,
                    http_verb=http_verb,
                    files=files,
                    data=data,
                    params=params,
                    json=json,
                    headers=headers,
                    auth=auth,
                )
            except SlackApiError as failure:
                error = str(failure.response.get("error") or f"http_{failure.response.status_code}")
                raise
            except Exception:
                error = "unreachable"
                raise
            finally:
                self.metrics.slack_call(api_method, time.perf_counter() - started, error)
