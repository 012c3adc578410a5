"""Close's OAuth token endpoint: the code exchange and the refresh (form-encoded POSTs)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

import httpx

log = logging.getLogger(__name__)


class TokenRefused(Exception):
    """Close answered the token request with an OAuth error (`invalid_grant`, …)."""

    def __init__(self, error: str, status: int) -> None:
        super().__init__(f"Close refused the token request: {error} (HTTP {status})")
        self.error = error
        self.status = status


class TokenUnavailable(Exception):
    """Close could not be asked (network, timeout, 5xx, 429, or an answer we cannot read)."""


@dataclass(frozen=True)
class TokenAnswer:
    """What the token endpoint gave: kept out of every repr and log line."""

    access_token: str
    refresh_token: str
    expires_in: float
    user_id: str
    organization_id: str
    scope: str = ""

    def expires_at(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.expires_in)

    def __repr__(self) -> str:
        return f"TokenAnswer(user_id={self.user_id!r}, organization_id={self.organization_id!r})"

    __str__ = __repr__


class CloseOAuth:
    """The OAuth app's side of Close: consent URL, code exchange, refresh."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        authorize_url: str,
        token_url: str,
        redirect_uri: str,
        timeout: float = 15.0,
    ) -> None:
        self.client_id = client_id
        self._secret = client_secret
        self.authorize_url = authorize_url
        self.token_url = token_url
        self.redirect_uri = redirect_uri
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=min(5.0, timeout)))

    def consent_url(self, state: str) -> str:
        query = urlencode(
            {
                "client_id": self.client_id,
                "response_type": "code",
                "redirect_uri": self.redirect_uri,
                "state": state,
            }
        )
        separator = "&" if "?" in self.authorize_url else "?"
        return f"{self.authorize_url}{separator}{query}"

    async def exchange(self, code: str) -> TokenAnswer:
        return await self._token(
            {"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri}
        )

    async def refresh(self, refresh_token: str) -> TokenAnswer:
        return await self._token({"grant_type": "refresh_token", "refresh_token": refresh_token})

    async def _token(self, fields: dict[str, str]) -> TokenAnswer:
        form = {"client_id": self.client_id, "client_secret": self._secret, **fields}
        grant = fields["grant_type"]
        try:
            response = await self._http.post(self.token_url, data=form)
        except httpx.HTTPError as error:
            # The request (with its secrets) stays out of the message: only what went wrong.
            raise TokenUnavailable(f"{grant}: {type(error).__name__}") from None
        if response.status_code >= 500 or response.status_code == 429:
            raise TokenUnavailable(f"{grant}: HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            raise TokenUnavailable(f"{grant}: HTTP {response.status_code}, not JSON") from None
        if response.status_code != 200 or not isinstance(body, dict) or "error" in body:
            code = body.get("error") if isinstance(body, dict) else None
            raise TokenRefused(str(code or "unknown_error"), response.status_code)
        try:
            return TokenAnswer(
                access_token=str(body["access_token"]),
                refresh_token=str(body["refresh_token"]),
                expires_in=float(body.get("expires_in") or 3600),
                user_id=str(body["user_id"]),
                organization_id=str(body["organization_id"]),
                scope=str(body.get("scope") or ""),
            )
        except (KeyError, TypeError, ValueError):
            raise TokenUnavailable(f"{grant}: the answer lacks a token, user or org") from None

    async def aclose(self) -> None:
        await self._http.aclose()
