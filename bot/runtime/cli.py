"""The command line: `python -m bot [serve|worker|socket|parse|doctor|demo|migrate|history]`."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import ValidationError

from bot.settings import HOW_TO_GET, Settings

DESCRIPTION = """Log Close CRM opportunities from Slack.

With no command: Socket Mode if SLACK_APP_TOKEN is set, else the HTTP server.
Configuration comes from the environment or a .env file (see .env.example)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="opportunity-bot",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve_help = (
        "HTTP server: POST /slack/events and /close/webhook, GET /healthz, /readyz, /metrics "
        "(and /close/oauth/start, /close/oauth/callback with Close OAuth configured); "
        "runs the background worker too unless --no-worker"
    )
    serve = commands.add_parser("serve", help=serve_help, description=serve_help)
    serve.add_argument("--port", type=int, help="port to listen on (default: $PORT or 3000)")
    serve.add_argument("--host", default="0.0.0.0", help="address to bind (default: 0.0.0.0)")
    serve.add_argument(
        "--no-worker",
        dest="worker",
        action="store_false",
        help="HTTP only: leave creating submissions in Close and applying Close's changes to "
        "`worker` processes",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="N server processes on the one port (default 1; more than 1 needs PostgreSQL)",
    )
    worker_help = (
        "background work only: creating stored submissions in Close, confirmations, Close -> "
        "Slack changes read from Close's event log (GET /healthz, /readyz, /metrics on "
        "$METRICS_PORT if set)"
    )
    commands.add_parser("worker", help=worker_help, description=worker_help)
    socket_help = (
        "Socket Mode (needs SLACK_APP_TOKEN; GET /healthz, /readyz, /metrics on $METRICS_PORT "
        "if set)"
    )
    commands.add_parser("socket", help=socket_help, description=socket_help)
    parse = commands.add_parser("parse", help="print the parse of TEXT as one JSON object")
    parse.add_argument("text", metavar="TEXT", nargs="+", help="what a user would type")
    parse.add_argument("--tz", default="UTC", help="the user's IANA time zone (default: UTC)")
    parse.add_argument(
        "--locale",
        default="en-US",
        help="the user's Slack locale: en-US (default), en-GB, de-DE, fr-FR, es-ES, pt-BR, "
        "it-IT, nl-NL… (its language and number format; English is always understood)",
    )
    parse.add_argument("--now", help="reference instant, ISO 8601 (default: now)")
    commands.add_parser(
        "doctor", help="check tokens, scopes, Close key, catalog and user-mapping coverage"
    )
    commands.add_parser(
        "demo", help="run the whole flow against bundled local Slack and Close simulators"
    )
    commands.add_parser("migrate", help="create or upgrade the database schema")
    history = commands.add_parser("history", help="list recent submissions")
    history.add_argument("--user", help="only this Slack user id")
    history.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    history.add_argument("--json", action="store_true", help="one JSON object per line")
    return parser


def _load_settings() -> Settings | None:
    try:
        return Settings()
    except ValidationError as error:
        for problem in error.errors():
            name = ".".join(str(part) for part in problem["loc"]).upper()
            message = str(problem["msg"]).removeprefix("Value error, ")
            print(f"error: {name}: {message}" if name else f"error: {message}", file=sys.stderr)
        return None


def _missing(settings: Settings, mode: str) -> bool:
    missing = settings.missing_for(mode)
    if not missing:
        return False
    print(f"Cannot start {mode}: missing configuration.", file=sys.stderr)
    for name in missing:
        print(f"  {name}: {HOW_TO_GET[name]}", file=sys.stderr)
    print(
        "Set them in the environment or in a .env file (see .env.example).\n"
        "No accounts yet? `python -m bot demo` runs everything against local simulators.",
        file=sys.stderr,
    )
    return True


def _parse_now(raw: str | None) -> datetime:
    if raw is None:
        return datetime.now(UTC)
    now = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    return now if now.tzinfo else now.replace(tzinfo=UTC)


# The demo and the simulators it runs against live beside tests/ and bench/ in the repository,
# not in the bot's wheel: they are there when the bot runs from a clone.
_DEMO = "sandbox.demo"


def _demo() -> int:
    import importlib

    try:
        demo = importlib.import_module(_DEMO)
    except ModuleNotFoundError as error:
        if error.name not in (_DEMO, _DEMO.partition(".")[0]):
            raise  # the demo is there but something it needs is not: show what
        print(
            "The demo's local Slack and Close simulators are not part of the installed bot: "
            "run the demo from the root of a clone of the repository, with ./scripts/run.sh "
            "or `python -m bot demo`.",
            file=sys.stderr,
        )
        return 2
    return int(asyncio.run(demo.run_demo()))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = args.command
    if command == "parse":
        return _print_parse(args)
    if command == "demo":
        return _demo()

    settings = _load_settings()
    if settings is None:
        return 2
    from bot.logs import configure

    configure(settings.log_level, secrets=settings.secret_values(), fmt=settings.log_format)
    if command is None:
        command = "socket" if settings.socket_mode else "serve"
    if command in ("serve", "worker", "socket"):
        return _run_process(command, args, settings)
    return _run_tool(command, args, settings)


def _print_parse(args: argparse.Namespace) -> int:
    """`parse`: the Draft of the text as one JSON object (no settings: it needs no accounts)."""
    from bot.parsing import parse

    try:
        now = _parse_now(args.now)
    except ValueError:
        print(f"error: --now {args.now!r} is not an ISO 8601 instant", file=sys.stderr)
        return 2
    draft = parse(" ".join(args.text), now=now, tz=args.tz, locale=args.locale)
    print(json.dumps(draft.to_contract(), ensure_ascii=False))
    return 0


def _run_process(command: str, args: argparse.Namespace, settings: Settings) -> int:
    """`serve`, `worker` or `socket`: refused before anything heavy is imported when the
    configuration cannot work, then run until stopped."""
    if _missing(settings, command):
        return 2
    # No garbage collection while the app is imported and warmed up: it walked the
    # start-up's ~300k objects three times over. bot.runtime.warm_up.start_up_over turns it back on.
    gc.disable()
    workers = max(1, getattr(args, "workers", 1))
    refusal = settings.processes_refusal(workers)
    if refusal is not None:
        print(refusal, file=sys.stderr)
        return 2
    # Slack and Close are asked about the credentials now, in a thread, while the app is
    # imported and warmed up (bot.runtime.runners imports it all): start-up pays the longer of the
    # two, not their sum.
    from bot.runtime.preflight import Preflight

    checks = Preflight(settings, app_token=command == "socket")
    if command == "serve":
        # `python -m bot` alone is `serve` with its defaults (no subcommand arguments).
        host = getattr(args, "host", "0.0.0.0")
        port = getattr(args, "port", None)
        worker = getattr(args, "worker", True)
        if workers > 1:
            from bot.runtime.supervisor import serve_processes  # it never imports the app itself

            return serve_processes(
                settings, host=host, port=port, worker=worker, workers=workers, checks=checks
            )
        from bot.runtime.runners import serve

        return serve(settings, host=host, port=port, worker=worker, checks=checks)
    if command == "worker":
        from bot.runtime.runners import run_worker

        return asyncio.run(run_worker(settings, checks))
    from bot.runtime.runners import run_socket_mode

    return asyncio.run(run_socket_mode(settings, checks))


def _run_tool(command: str, args: argparse.Namespace, settings: Settings) -> int:
    """`doctor`, `migrate` or `history`: one job against the configured accounts, then exit."""
    if command == "doctor":
        from bot.runtime.doctor import run_doctor

        return asyncio.run(run_doctor(settings))
    if command == "migrate":
        from bot.runtime.runners import migrate

        revision = asyncio.run(migrate(settings))
        print(f"Database schema is up to date (revision {revision}).")
        return 0
    if command == "history":
        from bot.runtime.history import print_history

        return asyncio.run(
            print_history(settings, user=args.user, limit=args.limit, as_json=args.json)
        )
    return 2
