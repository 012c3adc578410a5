"""httpx's transport interface over an aiohttp connection pool, for the Close client.

httpcore's pool walks every connection it holds on each request it starts and ends (and asks
the kernel whether each idle one is still readable): with Close at ~1 s and ~100 calls in
flight under load that bookkeeping was a fifth of the bot's CPU. aiohttp (already our Slack
client) keeps idle connections in a per-host queue instead. The Close client keeps speaking
httpx (requests, responses, timeouts, errors); only the wire underneath changes.

Errors keep the one distinction the client's exactly-once rules depend on: `ConnectError`,
`ConnectTimeout` and `PoolTimeout` mean nothing reached Close (a write may be sent again);
anything after the connection was made is a `ReadError` / `ReadTimeout` (it may have landed).
aiohttp itself sends an idempotent request (GET, PUT, DELETE) once more when a kept-alive
connection turns out closed (RFC 9112 §9.3.1); a POST never.
"""

from __future__ import annotations

import aiohttp
import httpx

# Slightly under the 5 s that servers (uvicorn's default; many load balancers more) keep an
# idle connection open, so we drop it before the server does and never write into a closing one.
KEEPALIVE_SECONDS = 4.0


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp session (created on first use, in the running loop), `limit` connections."""

    def __init__(self, *, limit: int = 200, keepalive: float = KEEPALIVE_SECONDS) -> None:
        self._limit = limit
        self._keepalive = keepalive
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._limit, limit_per_host=0, keepalive_timeout=self._keepalive
            )
            # Raw bodies: httpx.Response decodes Content-Encoding itself, as with its own pool.
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar()
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._open()
        timeouts = request.extensions.get("timeout", {})
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=timeouts.get("pool"),  # aiohttp: waiting for a pooled connection + connecting
            sock_connect=timeouts.get("connect"),
            sock_read=timeouts.get("read"),
        )
        try:
            async with session.request(
                request.method,
                str(request.url),
                headers=request.headers.multi_items(),
                data=request.content or None,
                allow_redirects=False,
                timeout=timeout,
            ) as answer:
                body = await answer.read()
                return httpx.Response(
                    answer.status,
                    headers=[
                        (k.decode("latin-1"), v.decode("latin-1")) for k, v in answer.raw_headers
                    ],
                    content=body,
                    request=request,
                    extensions={
                        "http_version": b"HTTP/1.1",
                        "reason_phrase": (answer.reason or "").encode(),
                    },
                )
        except aiohttp.ConnectionTimeoutError as exc:  # no connection in time: nothing sent
            raise httpx.ConnectTimeout(str(exc) or "connect timed out", request=request) from exc
        except aiohttp.ClientConnectorError as exc:  # refused, unresolvable: nothing sent
            raise httpx.ConnectError(str(exc), request=request) from exc
        except aiohttp.SocketTimeoutError as exc:  # sent; the answer was late
            raise httpx.ReadTimeout(str(exc) or "read timed out", request=request) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:  # dropped mid-exchange: may have landed
            raise httpx.ReadError(f"{type(exc).__name__}: {exc}", request=request) from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
