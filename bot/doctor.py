"""`python -m bot doctor`: is the Slack token good, the Close key good, the catalog loadable?"""

from __future__ import annotations

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.close.catalog import Catalog
from bot.close.client import CloseClient
from bot.close.errors import CloseError
from bot.settings import Settings

REQUIRED_SCOPES = ("commands", "chat:write", "users:read", "users:read.email", "im:write")


async def run_doctor(settings: Settings) -> int:
    problems = 0
    if settings.slack_bot_token is None or settings.close_api_key is None:
        print("✗ SLACK_BOT_TOKEN and CLOSE_API_KEY must be set (see .env.example).")
        return 1
    slack = AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url
    )
    try:
        auth = await slack.auth_test()
        print(f"✓ Slack token works: bot {auth.get('user')} in team {auth.get('team')}")
        granted = {s.strip() for s in auth.headers.get("x-oauth-scopes", "").split(",") if s}
        missing = [scope for scope in REQUIRED_SCOPES if scope not in granted]
        if missing:
            problems += 1
            print(f"✗ Missing Slack scopes: {', '.join(missing)} — add them and reinstall the app.")
        else:
            print("✓ Slack scopes: " + ", ".join(REQUIRED_SCOPES))
    except SlackApiError as error:
        problems += 1
        print(f"✗ Slack refused the bot token ({error.response.get('error')}): check SLACK_BOT_TOKEN.")
    async with CloseClient(settings.close_api_key.get_secret_value(), settings.close_api_url) as close:
        try:
            me = await close.me()
            print(f"✓ Close key works: {me.email or me.id}")
            catalog = Catalog(close)
            await catalog.refresh()
            print(
                f"✓ Close catalog: {len(catalog.pipelines)} pipelines, {len(catalog.statuses)} "
                f"statuses, {len(catalog.users)} users, {len(catalog.custom_fields)} custom fields"
            )
        except CloseError as error:
            problems += 1
            print(f"✗ Close: {error} — check CLOSE_API_KEY and CLOSE_API_URL.")
    print("All good." if problems == 0 else f"{problems} problem(s) found.")
    return 0 if problems == 0 else 1
