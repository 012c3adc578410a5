"""The start-up warm-up: what the first requests after a start would otherwise pay for, paid
before /readyz says ready — Slack's auth.test on the pooled session (and handed to Bolt), Close's
catalog, the parser's English, and one rehearsal of the modal a command opens."""

from __future__ import annotations

import asyncio
import gc
import logging

from slack_bolt.async_app import AsyncApp

from bot.app import prime_authorization
from bot.listeners.modal_flow import rehearse_command
from bot.listeners.views import rehearse_submission
from bot.parsing import warm_a_piece
from bot.services import Services

log = logging.getLogger(__name__)


async def warm_up(services: Services, bolt: AsyncApp | None = None) -> None:
    """Warm the process, then say it is over (`services.warm_up`: /readyz then stops answering
    503 "warm-up") and turn garbage collection back on (`start_up_over`).

    `bolt`: the app that answers Slack (serve, socket): its authorization is primed and the
    modal rehearsed; a `worker` has none. Slack and Close get WARM_UP_SECONDS to answer; past
    it the warm-up ends without them, one line saying which, and /readyz follows its other
    checks: Slack unreachable does not hold readiness (an ack needs no Slack call), Close's
    catalog never loaded does (a modal without statuses or owners). Never raises."""
    status = services.warm_up
    status.begin()
    parser = asyncio.ensure_future(warm_parser())
    missed = await _remote(services, bolt, services.settings.warm_up_seconds)
    # Local CPU only (no network): never given up. In a thread, a piece at a time, so requests
    # that come meanwhile are answered between pieces.
    await parser
    if bolt is not None:
        try:
            # A command's modal, then its submission read back: a few ms, on the loop.
            rehearse_submission(services, rehearse_command(services))
        except Exception:
            log.exception("The warm-up's rehearsal of the modal failed")
            missed.append("the modal's rehearsal")
    status.end(missed)
    start_up_over()
    if missed:
        log.warning(
            "Warm-up over after %.1f s without %s; /readyz follows its other checks",
            status.seconds or 0.0,
            ", ".join(missed),
        )
    else:
        log.info("Warmed up in %.2f s", status.seconds or 0.0)


async def _remote(services: Services, bolt: AsyncApp | None, budget: float) -> list[str]:
    """Slack's auth.test and Close's catalog, side by side within `budget`; what was missed."""
    steps = {
        asyncio.ensure_future(_slack(services, bolt)): "Slack (auth.test)",
        asyncio.ensure_future(services.catalog.wait_loaded(budget)): "Close's catalog",
    }
    done, pending = await asyncio.wait(steps, timeout=budget)
    missed = [f"{steps[task]}: no answer within {budget:.0f} s" for task in pending]
    for task in pending:
        task.cancel()
    for task in done:
        error = task.exception()
        if error is not None:
            missed.append(f"{steps[task]}: {type(error).__name__} {error}".rstrip())
        elif task.result() is False:  # the catalog's wait timed out first
            missed.append(f"{steps[task]}: not loaded within {budget:.0f} s")
    return missed


async def _slack(services: Services, bolt: AsyncApp | None) -> None:
    auth = await services.slack_gateway.warm_up()
    if bolt is not None:
        prime_authorization(bolt, auth)


async def warm_parser() -> None:
    """The parser's warm-up left over from before (`_checked` in runners warms it while the
    credential checks are in flight), in a thread, a piece at a time, so the event loop keeps
    answering (on the loop, the first piece, dateparser's timezone patterns, held the first
    request 0.1-0.4 s). Safe beside a request parsing on the loop: the parser is pure with
    lru_caches, and dateparser and babel lock their own loading."""
    while await asyncio.to_thread(warm_a_piece):
        pass


def start_up_over() -> None:
    """Garbage collection back on (`cli` turns it off for a long-running command), with what
    start-up built frozen out of it.

    Importing the app and warming the parser allocate ~300k objects, and the collector's passes
    over them (three full ones) were ~0.25 s of a ~1.4 s start. Nearly all of it lives as long
    as the process (modules, the parser's vocabularies; start-up's garbage is ~2k objects, 1-2
    MB): frozen, not collected (a full collection here blocked the loop 0.15-0.25 s), so later
    full collections do not walk it again either (they had stopped the event loop for up to
    155 ms each, every few seconds at 50 flows/s: most of the acks' p99 then)."""
    if gc.isenabled():
        return
    gc.freeze()
    gc.enable()
