"""Which shared links are Close lead links: pure, from the URL and CLOSE_APP_URL alone."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

# Close ids are a prefix and base62 characters (`lead_AbC123…`).
_LEAD_SEGMENT = re.compile(r"lead_[A-Za-z0-9]+")


def unfurl_domain(close_app_url: str) -> str:
    """The host Slack must send previews for: `app.close.com` for `https://app.close.com/`."""
    return (urlsplit(close_app_url).hostname or "").lower()


def lead_id_in(url: str, close_app_url: str) -> str | None:
    """The lead id of a Close lead link, else None.

    `https://app.close.com/lead/lead_abc/`, with or without the trailing slash, and with
    anything after it (a tab such as `…/lead_abc/contact/cont_x/`, a query, a fragment).
    Only links on CLOSE_APP_URL's host (http or https) and under its path count.
    """
    try:
        link, base = urlsplit(url.strip()), urlsplit(close_app_url)
        port_matches = link.port == base.port
    except ValueError:  # a malformed port or IPv6 host: not a link of ours
        return None
    if link.scheme.lower() not in ("http", "https") or not port_matches:
        return None
    if (link.hostname or "").lower() != unfurl_domain(close_app_url):
        return None
    prefix = base.path.rstrip("/") + "/lead/"
    if not link.path.startswith(prefix):
        return None
    segment = link.path[len(prefix) :].split("/", 1)[0]
    return segment if _LEAD_SEGMENT.fullmatch(segment) else None
