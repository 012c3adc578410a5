"""Close's OAuth for the simulator: the consent page, the token endpoint (code exchange, refresh
with rotation), Bearer tokens acting as a user, revocation, and per-user visibility."""

from __future__ import annotations

import asyncio
import html
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

OAUTH_CLIENT_ID = "sandbox-oauth-client"
OAUTH_CLIENT_SECRET = "sandbox-oauth-client-secret"
SCOPE = "all.full_access offline_access"


@dataclass
class Grant:
    """Who a token acts as, and until when (access tokens)."""

    user_id: str
    organization_id: str
    expires_at: datetime | None = None
    client_id: str = OAUTH_CLIENT_ID


@dataclass
class OAuthState:
    """The OAuth side of the simulated Close, for tests to read and steer."""

    client_id: str = OAUTH_CLIENT_ID
    client_secret: str = OAUTH_CLIENT_SECRET
    # Seconds an access token lives (Close: 3600); short in tests of the refresh.
    expires_in: float = 3600.0
    # Seconds the token endpoint takes to answer a refresh (widens a race in tests).
    refresh_latency: float = 0.0
    codes: dict[str, tuple[Grant, str | None]] = field(default_factory=dict)
    access: dict[str, Grant] = field(default_factory=dict)
    refresh: dict[str, Grant] = field(default_factory=dict)
    # Every token request: its grant type and how it ended (never the secrets).
    token_requests: list[dict[str, str]] = field(default_factory=list)
    # Users whose Close role sees only the leads they own.
    restricted_users: set[str] = field(default_factory=set)
    lead_owners: dict[str, str] = field(default_factory=dict)


class CloseOAuthSim:
    """Mixed into CloseSimulator: `self.org`, `self.other_orgs` and `_server` come from it."""

    oauth: OAuthState
    org: Any
    other_orgs: list[Any]

    def _init_oauth(self) -> None:
        self.oauth = OAuthState()

    # --- for tests ---

    @property
    def oauth_authorize_url(self) -> str:
        return f"{self._root_url()}oauth2/authorize/"

    @property
    def oauth_token_url(self) -> str:
        return f"{self._root_url()}oauth2/token/"

    def _root_url(self) -> str:
        server = getattr(self, "_server", None)
        if server is None:
            raise RuntimeError("the simulator is not started")
        return str(server.url)

    def refresh_count(self, outcome: str | None = None) -> int:
        return sum(
            1
            for r in self.oauth.token_requests
            if r["grant_type"] == "refresh_token" and (outcome is None or r["outcome"] == outcome)
        )

    def revoke(self, user_id: str) -> None:
        """The person removed the app in Close: every token of theirs stops working."""
        for tokens in (self.oauth.access, self.oauth.refresh):
            for token in [t for t, g in tokens.items() if g.user_id == user_id]:
                del tokens[token]

    def revoke_access_only(self, user_id: str) -> None:
        """Close stops taking `user_id`'s access tokens (early, server-side); their refresh
        token still works."""
        for token in [t for t, g in self.oauth.access.items() if g.user_id == user_id]:
            del self.oauth.access[token]

    def expire_access_tokens(self, user_id: str | None = None) -> None:
        past = datetime.now(UTC) - timedelta(seconds=1)
        for grant in self.oauth.access.values():
            if user_id is None or grant.user_id == user_id:
                grant.expires_at = past

    def restrict(self, user_id: str) -> None:
        """`user_id`'s Close role sees only the leads they own (`own_lead`)."""
        self.oauth.restricted_users.add(user_id)

    def own_lead(self, lead_id: str, user_id: str) -> None:
        self.oauth.lead_owners[lead_id] = user_id

    def tokens_of(self, user_id: str) -> list[str]:
        """The live access tokens of `user_id` (tests: to find them where they must not be)."""
        return [t for t, g in self.oauth.access.items() if g.user_id == user_id]

    def refresh_tokens_of(self, user_id: str) -> list[str]:
        return [t for t, g in self.oauth.refresh.items() if g.user_id == user_id]

    # --- for the REST API ---

    def bearer_user(self, token: str) -> str | None:
        """The user a Bearer token acts as, if it is live and of this org."""
        grant = self.oauth.access.get(token)
        if grant is None or grant.organization_id != self.org.id:
            return None
        if grant.expires_at is not None and grant.expires_at <= datetime.now(UTC):
            return None
        return grant.user_id

    def visible_lead(self, request: Request, lead_id: str | None) -> bool:
        user = getattr(request.state, "oauth_user", None)
        if user is None or user not in self.oauth.restricted_users:
            return True
        return lead_id is not None and self.oauth.lead_owners.get(lead_id) == user

    # --- the routes ---

    def _oauth_routes(self) -> list[Route]:
        return [
            Route("/oauth2/authorize/", self._authorize, methods=["GET", "POST"]),
            Route("/oauth2/token/", self._token, methods=["POST"]),
        ]

    async def _authorize(self, request: Request) -> Response:
        params = dict(request.query_params)
        if request.method == "POST":
            params.update(await _form(request))
        if params.get("client_id") != self.oauth.client_id:
            return _page("Unknown application", "<p>No OAuth app has this client_id.</p>", 400)
        if params.get("response_type") != "code" or not params.get("redirect_uri"):
            return _page("Bad request", "<p>response_type=code and redirect_uri needed.</p>", 400)
        decision = params.get("decision")
        if decision is None:
            return self._consent_page(params)
        redirect = params["redirect_uri"]
        back: dict[str, str] = {}
        if decision != "grant":
            back["error"] = "access_denied"
        else:
            org = self._org_named(params.get("organization"))
            user_id = params.get("user") or org.me_user_id
            if org.find(org.users, user_id) is None or user_id in org.inactive_user_ids:
                return _page("Unknown user", f"<p>{html.escape(user_id)} is not active.</p>", 400)
            code = "code_" + secrets.token_urlsafe(18)
            self.oauth.codes[code] = (Grant(user_id, org.id), redirect)
            back["code"] = code
        if "state" in params:
            back["state"] = params["state"]
        separator = "&" if "?" in redirect else "?"
        return RedirectResponse(f"{redirect}{separator}{urlencode(back)}", status_code=302)

    def _org_named(self, name: str | None) -> Any:
        for org in [self.org, *self.other_orgs]:
            if name in (None, "", org.id):
                return org
        return self.org

    def _consent_page(self, params: dict[str, str]) -> Response:
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in params.items()
            if k in ("client_id", "response_type", "redirect_uri", "state")
        )
        options = "".join(
            f'<option value="{html.escape(u["id"])}">{html.escape(u["email"])}</option>'
            for u in self.org.users
            if u["id"] not in self.org.inactive_user_ids
        )
        orgs = "".join(
            f'<option value="{html.escape(o.id)}">{html.escape(o.name)}</option>'
            for o in [self.org, *self.other_orgs]
        )
        body = (
            f'<form method="post">{hidden}<p>Sign in as <select name="user">{options}</select>'
            f' in <select name="organization">{orgs}</select></p>'
            '<button name="decision" value="grant">Allow</button> '
            '<button name="decision" value="deny">Deny</button></form>'
        )
        return _page("Allow access to your Close account?", body, 200)

    async def _token(self, request: Request) -> Response:
        form = await _form(request)
        grant_type = form.get("grant_type", "")
        record = {"grant_type": grant_type, "outcome": "ok"}
        self.oauth.token_requests.append(record)

        def refuse(error: str, status: int = 400) -> Response:
            record["outcome"] = error
            return JSONResponse({"error": error}, status_code=status)

        if (
            form.get("client_id") != self.oauth.client_id
            or form.get("client_secret") != self.oauth.client_secret
        ):
            return refuse("invalid_client", 401)
        grant: Grant | None
        if grant_type == "authorization_code":
            found = self.oauth.codes.pop(form.get("code", ""), None)
            if found is None:
                return refuse("invalid_grant")
            grant, redirect = found
            if redirect is not None and form.get("redirect_uri", redirect) != redirect:
                return refuse("invalid_grant")
        elif grant_type == "refresh_token":
            if self.oauth.refresh_latency > 0:
                await asyncio.sleep(self.oauth.refresh_latency)
            # Rotation: the refresh token is spent here, whatever happens next.
            grant = self.oauth.refresh.pop(form.get("refresh_token", ""), None)
            if grant is None:
                return refuse("invalid_grant")
        else:
            return refuse("unsupported_grant_type")
        return JSONResponse(self._issue(grant))

    def _issue(self, grant: Grant) -> dict[str, Any]:
        access = "sim_at_" + secrets.token_urlsafe(24)
        refresh = "sim_rt_" + secrets.token_urlsafe(24)
        expires_at = datetime.now(UTC) + timedelta(seconds=self.oauth.expires_in)
        self.oauth.access[access] = Grant(grant.user_id, grant.organization_id, expires_at)
        self.oauth.refresh[refresh] = Grant(grant.user_id, grant.organization_id)
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.oauth.expires_in,
            "refresh_token": refresh,
            "scope": SCOPE,
            "user_id": grant.user_id,
            "organization_id": grant.organization_id,
        }


async def _form(request: Request) -> dict[str, str]:
    """A form-encoded body (without python-multipart, which Starlette's `form()` needs)."""
    return dict(parse_qsl((await request.body()).decode("utf-8", "replace")))


def _page(title: str, body: str, status: int) -> HTMLResponse:
    content = (
        '<!doctype html><html><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1>"
        f"{body}</body></html>"
    )
    return HTMLResponse(content, status_code=status)
