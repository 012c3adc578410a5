"""Load benchmark: the bot and a bare-Bolt baseline under the same signed Slack traffic, measured.

Run it with `python -m bench.load` (`--quick` for ~10 s, `--scale` for the faulty-Close run,
`--burst` for rounds of flows sent as fast as a fixed number in flight allows).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from bench.baseline import modal_to_open
from bench.report import TargetResult, build_report, render_table, write_outputs
from bench.sims import BOT_TOKEN, CLOSE_API_KEY, SIGNING_SECRET
from sandbox.server import port_for_a_child

ROOT = Path(__file__).resolve().parents[1]
LATE_SECONDS = 3.0
USERS = ("U0ALICE", "U0BOB", "U0CAROL")
CHANNEL = "C0SALES"
# Names of leads the simulated Close org has, as reps would type them.
EXISTING = (
    "Acme Corp",
    "Globex Corporation",
    "Initech",
    "Nakatomi Trading",
    "Wayne Enterprises",
    "Stark Industries",
)
TYPED = ("acm", "glob", "init", "naka", "stark", "wayne")
WORDS = ("Zephyr", "Quokka", "Harbor", "Juniper", "Basalt", "Tundra", "Marlin", "Cobalt")
# What follows the lead: amounts, periods, confidence, dates and statuses in many spellings.
DEAL_TEXTS = (
    "12k ARR 60% close next friday",
    "$1,500/mo 80% by EOM status: Proposal Sent",
    "250k one-time closing Dec 15",
    "40,000 USD annual 30% Q3",
    "7.5k monthly 45% in 2 weeks",
    "$99.99 per month 90% tomorrow status: Demo Scheduled",
    "1.2m annually confidence 20 EOQ",
)


@dataclass
class Config:
    duration: float = 60.0
    rate: float = 50.0
    close_latency: float = 1.0
    think: float = 2.0
    scale: bool = False
    drain_timeout: float = 30.0
    settle: float = 5.0
    targets: tuple[str, ...] = ("bot", "baseline")
    out_dir: Path = ROOT / "bench" / "results"
    name: str = "latest"
    markdown: Path | None = None
    profile: Path | None = None
    layout: str = "one"
    database: str = "sqlite"
    database_admin_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    burst: Burst | None = None


@dataclass(frozen=True)
class Burst:
    """`rounds` rounds of `flows` flows each, `in_flight` at a time (no rate: each flow starts
    as soon as one ends), a `pause` between rounds: a team's stand-up, not a steady day."""

    flows: int = 300
    in_flight: int = 20
    rounds: int = 3
    pause: float = 1.0


@dataclass
class Flow:
    """One user's visit: the command they type and what they do in the modal."""

    index: int
    kind: str  # "existing" (lead named in text), "picked" (from the typeahead), "new"
    user_id: str
    text: str
    note: str
    typed: str | None = None


def letters(n: int) -> str:
    out = ""
    n += 26 * 26  # at least three letters
    while n:
        n, r = divmod(n, 26)
        out = chr(97 + r) + out
    return out.capitalize()


def make_flow(index: int, run_id: str) -> Flow:
    note = f"bench-{run_id}-{index:06d}"
    deal = DEAL_TEXTS[index % len(DEAL_TEXTS)]
    user = USERS[index % len(USERS)]
    slot = index % 4
    if slot in (0, 1):
        lead = EXISTING[(index // 4) % len(EXISTING)]
        prefix = "lead: " if index % 8 == 1 else ""
        return Flow(index, "existing", user, f"{prefix}{lead} {deal} note: {note}", note)
    if slot == 2:
        typed = TYPED[(index // 4) % len(TYPED)]
        return Flow(index, "picked", user, f"{deal} note: {note}", note, typed=typed)
    name = f"Bench {WORDS[(index // 4) % len(WORDS)]} {letters(index)}"
    return Flow(index, "new", user, f"lead: {name} {deal} note: {note}", note)


@dataclass
class Recorder:
    acks: dict[str, list[float]] = field(
        default_factory=lambda: {"command": [], "submission": [], "options": []}
    )
    failed: Counter[str] = field(default_factory=Counter)
    views_open: list[float] = field(default_factory=list)
    preselect: list[float] = field(default_factory=list)
    not_opened: int = 0
    submitted: dict[str, float] = field(default_factory=dict)  # note -> sent at (epoch)
    kinds: dict[str, str] = field(default_factory=dict)  # note -> Flow.kind
    accepted: set[str] = field(default_factory=set)
    rejected: Counter[str] = field(default_factory=Counter)
    bad_acks: Counter[str] = field(default_factory=Counter)
    send_lag: list[float] = field(default_factory=list)
    commands_sent: int = 0
    # What the app is sent: the size of each submission's payload, and the first modal opened
    # (the bot's is what the baseline opens: bench/baseline.py).
    submission_bytes: list[int] = field(default_factory=list)
    modal: dict[str, Any] | None = None

    def ack(self, kind: str, seconds: float, status: int) -> None:
        if status != 200:
            self.failed[f"{kind}:http_{status}"] += 1
        self.acks[kind].append(seconds)


def sign(body: str, timestamp: str) -> str:
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(SIGNING_SECRET.encode(), base, hashlib.sha256).hexdigest()


class Sender:
    """Posts to the app's /slack/events exactly as Slack does (form bodies, signed)."""

    def __init__(self, http: aiohttp.ClientSession, events_url: str) -> None:
        self.http = http
        self.events_url = events_url

    async def post(self, fields: dict[str, str]) -> tuple[int, float, bytes]:
        body = urllib.parse.urlencode(fields)
        ts = str(int(time.time()))
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": sign(body, ts),
        }
        started = time.perf_counter()
        async with self.http.post(self.events_url, data=body, headers=headers) as response:
            content = await response.read()
            return response.status, time.perf_counter() - started, content


def base_payload(kind: str, user_id: str) -> dict[str, Any]:
    return {
        "type": kind,
        "token": "sandbox-verification-token",
        "api_app_id": "A0SANDBOX",
        "team": {"id": "T0SANDBOX", "domain": "sandbox"},
        "user": {"id": user_id, "username": user_id.lower(), "team_id": "T0SANDBOX"},
        "enterprise": None,
        "is_enterprise_install": False,
    }


class LoadRun:
    """Runs `rate` flows per second for `duration` seconds against one app."""

    def __init__(
        self, config: Config, sender: Sender, control: str, *, is_bot: bool, run_id: str
    ) -> None:
        self.config = config
        self.sender = sender
        self.http = sender.http
        self.control = control
        self.is_bot = is_bot
        self.run_id = run_id
        self.rec = Recorder()

    async def run(self) -> None:
        if self.config.burst is not None:
            await self._run_burst(self.config.burst)
            return
        count = int(self.config.duration * self.config.rate)
        start = time.perf_counter() + 0.2
        tasks: list[asyncio.Task[None]] = []
        for i in range(count):
            planned = start + i / self.config.rate
            delay = planned - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            self.rec.send_lag.append(max(0.0, time.perf_counter() - planned))
            tasks.append(asyncio.create_task(self._guarded(make_flow(i, self.run_id))))
        await asyncio.gather(*tasks)

    async def _run_burst(self, burst: Burst) -> None:
        index = 0
        for round_ in range(burst.rounds):
            if round_:
                await asyncio.sleep(burst.pause)
            flows = iter(range(index, index + burst.flows))
            index += burst.flows

            async def lane(flows: Iterator[int] = flows) -> None:
                for i in flows:  # one iterator shared by every lane: each flow runs once
                    await self._guarded(make_flow(i, self.run_id))

            await asyncio.gather(*(lane() for _ in range(burst.in_flight)))

    async def _guarded(self, flow: Flow) -> None:
        try:
            await self.flow(flow)
        except Exception as error:  # one broken flow is a counted error, not a crashed bench
            self.rec.failed[f"flow:{type(error).__name__}"] += 1

    async def _control(self, method: str, path: str, body: Any = None) -> Any:
        async with self.http.request(method, self.control + path, json=body) as response:
            return await response.json()

    async def flow(self, flow: Flow) -> None:
        rec = self.rec
        handles = await self._control(
            "POST", "command", {"user_id": flow.user_id, "channel_id": CHANNEL}
        )
        fields = {
            "token": "sandbox-verification-token",
            "team_id": "T0SANDBOX",
            "team_domain": "sandbox",
            "channel_id": CHANNEL,
            "channel_name": "sales",
            "user_id": flow.user_id,
            "user_name": flow.user_id.lower(),
            "command": "/opportunity",
            "text": flow.text,
            "api_app_id": "A0SANDBOX",
            "is_enterprise_install": "false",
            "response_url": handles["response_url"],
            "trigger_id": handles["trigger_id"],
        }
        sent_at = time.time()
        rec.commands_sent += 1
        status, seconds, _ = await self.sender.post(fields)
        rec.ack("command", seconds, status)
        if status != 200:
            return
        async with self.http.get(
            f"{self.control}opened/{handles['trigger_id']}", params={"timeout": "6"}
        ) as response:
            if response.status != 200:
                rec.not_opened += 1
                return
            opened = await response.json()
        rec.views_open.append(opened["at"] - sent_at)
        view_id = opened["view_id"]
        if rec.modal is None:
            rec.modal = opened["view"]

        values: dict[str, Any] = {}
        if self.is_bot:
            values["custom.cf_source"] = "Inbound"
        if flow.kind == "picked":
            await asyncio.sleep(0.3)  # the time it takes to type a few letters
            option = await self.suggest(flow, opened["view"])
            if option is not None:
                values["lead"] = option
        delay = sent_at + self.config.think - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        wait_update = self.is_bot and flow.kind != "picked"
        prepared = await self._control(
            "POST",
            "view",
            {
                "view_id": view_id,
                "values": values,
                "wait_update": wait_update,
                "timeout": 20 if self.config.scale else 8,
            },
        )
        if wait_update:
            if prepared["updated_at"] is None:
                rec.failed["preselect:never"] += 1
            else:
                rec.preselect.append(prepared["updated_at"] - sent_at)
        payload = {
            **base_payload("view_submission", flow.user_id),
            "trigger_id": f"{int(time.time())}.{flow.index}.submit",
            "view": prepared["view"],
            "response_urls": [],
        }
        rec.submitted[flow.note] = time.time()
        rec.kinds[flow.note] = flow.kind
        sent = json.dumps(payload)
        rec.submission_bytes.append(len(sent))
        status, seconds, content = await self.sender.post({"payload": sent})
        rec.ack("submission", seconds, status)
        if status != 200:
            return
        answer = json.loads(content) if content.strip() else {}
        action = answer.get("response_action")
        if action == "errors":
            for block, message in (answer.get("errors") or {}).items():
                rec.rejected[f"{block}: {str(message)[:60]}"] += 1
        else:
            rec.accepted.add(flow.note)
        async with self.http.post(f"{self.control}ack/{view_id}", data=content) as response:
            applied = await response.json()
        if not applied.get("ok"):
            rec.bad_acks["; ".join(applied.get("problems") or [])[:80]] += 1

    async def suggest(self, flow: Flow, view: dict[str, Any]) -> dict[str, Any] | None:
        """Type into the lead typeahead; pick the first existing lead it offers."""
        payload = {
            **base_payload("block_suggestion", flow.user_id),
            "container": {"type": "view", "view_id": view["id"]},
            "action_id": "lead",
            "block_id": "lead",
            "value": flow.typed or "",
            "view": view,
        }
        status, seconds, content = await self.sender.post({"payload": json.dumps(payload)})
        self.rec.ack("options", seconds, status)
        if status != 200 or not content.strip():
            return None
        options = json.loads(content).get("options") or []
        for option in options:
            if not str(option.get("value", "")).startswith("new:"):
                return {"text": option["text"]["text"], "value": option["value"]}
        self.rec.failed["options:no_existing_lead"] += 1
        return None


# --- processes ----------------------------------------------------------------------------


def read_proc(pid: int) -> dict[str, float]:
    """Peak RSS (VmHWM, MB) and CPU seconds used so far, from /proc (no psutil needed)."""
    out: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmHWM:", "VmRSS:")):
                key = "peak_rss_mb" if line.startswith("VmHWM") else "rss_mb"
                out[key] = int(line.split()[1]) / 1024
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        out["cpu_seconds"] = (int(fields[11]) + int(fields[12])) / ticks
    return out


def descendants(pid: int) -> list[int]:
    """`pid` and every process under it (a `serve --workers N` supervisor's server processes)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo += children.get(current, [])
    return out


def read_tree(pids: list[int]) -> dict[int, dict[str, float]]:
    """read_proc for each of `pids` and everything under them, by pid."""
    return {p: read_proc(p) for top in pids for p in descendants(top)}


def tree_usage(
    before: dict[int, dict[str, float]], after: dict[int, dict[str, float]]
) -> dict[str, Any]:
    """CPU seconds between two read_tree()s, summed; peak RSS of the largest process; each
    process's own figures (a process started in between counts from zero)."""
    each = {
        pid: {
            "peak_rss_mb": info.get("peak_rss_mb", 0.0),
            "cpu_seconds": info.get("cpu_seconds", 0.0)
            - before.get(pid, {}).get("cpu_seconds", 0.0),
        }
        for pid, info in after.items()
    }
    return {
        "peak_rss_mb": max((e["peak_rss_mb"] for e in each.values()), default=0.0),
        "cpu_seconds": sum(e["cpu_seconds"] for e in each.values()),
        "processes": [
            {"peak_rss_mb": round(e["peak_rss_mb"], 1), "cpu_seconds": round(e["cpu_seconds"], 2)}
            for e in each.values()
        ],
    }


@dataclass(frozen=True)
class Layout:
    """How the bot runs: `one` (serve, worker inside), `split` (serve --no-worker + worker), or
    `NxM` (serve --workers N --no-worker + M worker processes; `Nx0` keeps the worker in each)."""

    web: int
    workers: int

    @classmethod
    def parse(cls, text: str) -> Layout:
        if text == "one":
            return cls(1, 0)
        if text == "split":
            return cls(1, 1)
        web, _, workers = text.partition("x")
        if not (web.isdigit() and workers.isdigit() and int(web) >= 1):
            raise ValueError(f"layout {text!r}: one, split or NxM (e.g. 2x1)")
        return cls(int(web), int(workers))

    def serve_args(self) -> list[str]:
        args = ["serve"]
        if self.web > 1:
            args += ["--workers", str(self.web)]
        if self.workers:
            args.append("--no-worker")
        return args


@contextlib.asynccontextmanager
async def scratch_database(config: Config) -> AsyncIterator[str | None]:
    """With --database postgresql: a database of the bench's own, dropped afterwards."""
    if config.database != "postgresql":
        yield None
        return
    from sqlalchemy.engine import make_url

    from bot.store.db import create_engine, normalize_url

    admin_url = normalize_url(config.database_admin_url)
    name = f"bench_{os.getpid()}_{int(time.time())}"
    admin = create_engine(admin_url).execution_options(isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            async with admin.connect() as connection:
                await connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.dispose()


@contextlib.asynccontextmanager
async def sims_process(close_latency: float) -> AsyncIterator[tuple[dict[str, str], int]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.sims",
        "--close-latency",
        str(close_latency),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        if not line:
            raise RuntimeError("the simulators did not start (see stderr above)")
        yield json.loads(line), proc.pid
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()


@contextlib.asynccontextmanager
async def app_process(
    target: str,
    urls: dict[str, str],
    workdir: Path,
    layout: Layout = Layout(1, 0),
    database_url: str | None = None,
) -> AsyncIterator[tuple[list[asyncio.subprocess.Process], str, float, float]]:
    """Start the bot (`python -m bot serve`, and `worker`s as the layout says) or the baseline;
    yields the processes once /healthz answers on each (and /readyz on each worker: the server's
    own /readyz is `run_target`'s to time)."""
    port = port_for_a_child()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "CLOSE_API_KEY": CLOSE_API_KEY,
        "SLACK_API_URL": urls["slack_url"],
        "CLOSE_API_URL": urls["close_url"],
        "DATABASE_URL": database_url or f"sqlite+aiosqlite:///{workdir / 'bench.sqlite3'}",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("SLACK_APP_TOKEN", None)
    env.pop("METRICS_PORT", None)
    module = "bot" if target == "bot" else "bench.baseline"
    args = [sys.executable, "-m", module]
    args += layout.serve_args() if target == "bot" else []
    args += ["--port", str(port), "--host", "127.0.0.1"]
    if target == "bot" and database_url is not None:
        # As a release step would (`migrate`), so start-up is timed on an up-to-date schema.
        migrate = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "migrate", cwd=workdir, env=env,
            stdout=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        if await migrate.wait() != 0:
            raise RuntimeError("python -m bot migrate failed (see stderr above)")
    started = time.perf_counter()
    # cwd is a scratch directory so a developer's .env cannot leak into the measurement.
    procs = [await asyncio.create_subprocess_exec(*args, cwd=workdir, env=env)]
    base = f"http://127.0.0.1:{port}/"
    try:
        ready = await wait_healthy(base, procs[0], started)
        if target == "bot":
            for _ in range(layout.workers):
                ops = port_for_a_child()
                worker_env = {**env, "METRICS_PORT": str(ops)}
                procs.append(
                    await asyncio.create_subprocess_exec(
                        sys.executable, "-m", "bot", "worker", cwd=workdir, env=worker_env
                    )
                )
                began = time.perf_counter()
                await wait_healthy(f"http://127.0.0.1:{ops}/", procs[-1], began)
                await wait_ready(f"http://127.0.0.1:{ops}/", began)
        yield procs, base, ready, started
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.terminate()
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def wait_healthy(base: str, proc: asyncio.subprocess.Process, started: float) -> float:
    async with aiohttp.ClientSession() as http:
        while time.perf_counter() - started < 60:
            if proc.returncode is not None:
                raise RuntimeError(f"{base} exited with {proc.returncode} before it was healthy")
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(base + "healthz") as response:
                    if response.status == 200:
                        return time.perf_counter() - started
            await asyncio.sleep(0.005)
    raise RuntimeError(f"{base} was not healthy within 60 s")


async def wait_ready(base: str, started: float, timeout: float = 60) -> float:  # noqa: ASYNC109
    """Seconds from `started` to the first /readyz 200: the app says it is warm (the bot: its
    warm-up over, Close's catalog loaded, the parser warm), and only then is the load sent."""
    async with aiohttp.ClientSession() as http:
        while time.perf_counter() - started < timeout:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(base + "readyz") as response:
                    if response.status == 200:
                        return time.perf_counter() - started
            await asyncio.sleep(0.01)
    raise RuntimeError(f"{base} was not ready (/readyz 200) within {timeout:.0f} s")


async def run_target(config: Config, target: str, run_id: str) -> TargetResult:
    is_bot = target == "bot"
    layout = Layout.parse(config.layout) if is_bot else Layout(1, 0)
    async with (
        sims_process(config.close_latency) as (urls, sims_pid),
        scratch_database(config) as database_url,
    ):
        control = urls["control_url"]
        with tempfile.TemporaryDirectory(prefix=f"bench-{target}-") as tmp:
            async with app_process(
                target, urls, Path(tmp), layout, database_url if is_bot else None
            ) as (procs, base, ready, started):
                pids = [proc.pid for proc in procs]
                readyz = await wait_ready(base, started)
                timeout = aiohttp.ClientTimeout(total=30)
                connector = aiohttp.TCPConnector(limit=0)
                async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
                    await (await http.post(control + "reset")).release()
                    if config.scale:
                        faults = {"rate_limit_every": 3, "slow_fraction": 0.05, "slow_seconds": 10}
                        await (await http.post(control + "faults", json=faults)).release()
                    tree_before = read_tree(pids)
                    sims_cpu_before = read_proc(sims_pid).get("cpu_seconds", 0.0)
                    load_cpu_before = time.process_time()
                    load = LoadRun(
                        config, Sender(http, base + "slack/events"), control,
                        is_bot=is_bot, run_id=run_id,
                    )  # fmt: skip
                    began = time.perf_counter()
                    print(
                        f"[{target}] /healthz in {ready:.2f}s, /readyz in {readyz:.2f}s; loading...",
                        file=sys.stderr,
                    )
                    profilers = await start_profilers(config, target, pids)
                    await load.run()
                    load_seconds = time.perf_counter() - began
                    load_cpu = time.process_time() - load_cpu_before
                    sims_cpu = read_proc(sims_pid).get("cpu_seconds", 0.0) - sims_cpu_before
                    stats = await drain(http, control, load, config) if is_bot else None
                    if stats is None:
                        async with http.get(control + "stats") as response:
                            stats = await response.json()
                    proc_info = tree_usage(tree_before, read_tree(pids))
                    for profiler in profilers:
                        await profiler.wait()
                    sims_info = {**read_proc(sims_pid), "cpu_seconds": sims_cpu}
    return TargetResult.collect(
        target=target,
        recorder=load.rec,
        stats=stats,
        ready_seconds=ready,
        readyz_seconds=readyz,
        load_seconds=load_seconds,
        proc=proc_info,
        sims=sims_info,
        load_cpu_seconds=load_cpu,
        late_seconds=LATE_SECONDS,
    )


async def start_profilers(
    config: Config, target: str, pids: list[int]
) -> list[asyncio.subprocess.Process]:
    """With --profile: py-spy (installed separately) samples each app process (and the server
    processes under it) for the load's duration."""
    if config.profile is None:
        return []
    config.profile.mkdir(parents=True, exist_ok=True)
    out = []
    for n, pid in enumerate(pids):
        path = config.profile / (f"{target}.txt" if n == 0 else f"{target}-worker{n}.txt")
        args = ["record", "--pid", str(pid), "--rate", "200", "--format", "raw"]
        args += ["--duration", str(int(config.duration)), "--nonblocking", "--subprocesses"]
        args += ["--output", str(path)]
        spy = await asyncio.create_subprocess_exec(
            "py-spy", *args, stdout=asyncio.subprocess.DEVNULL
        )
        out.append(spy)
    return out


async def drain(
    http: aiohttp.ClientSession, control: str, load: LoadRun, config: Config
) -> dict[str, Any]:
    """Wait until every accepted submission is an opportunity in Close (or the timeout)."""
    deadline = time.perf_counter() + config.drain_timeout
    # A submission whose ack failed may still have been stored, so besides every accepted one
    # landing, wait for Close to stay quiet a while before counting.
    count, quiet_since = -1, time.perf_counter()
    while True:
        async with http.get(control + "stats") as response:
            stats: dict[str, Any] = await response.json()
        notes = {o["note"] for o in stats["opportunities"]}
        if len(notes) != count:
            count, quiet_since = len(notes), time.perf_counter()
        settled = time.perf_counter() - quiet_since > config.settle
        if (load.rec.accepted <= notes and settled) or time.perf_counter() > deadline:
            stats["drain_seconds"] = config.drain_timeout - (deadline - time.perf_counter())
            return stats
        await asyncio.sleep(0.5)


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


async def main_async(config: Config) -> dict[str, Any]:
    run_id = f"{int(time.time()) % 100000:05d}"
    results = {}
    for target in config.targets:
        results[target] = await run_target(config, target, run_id)
    bot = results.get("bot")
    if bot is not None and bot.modal is not None:
        # The modal the bot opened, as the baseline opens it (copy it over bench/bot_modal.json
        # when the bot's modal has changed: test_bench_smoke says when the two differ).
        config.out_dir.mkdir(parents=True, exist_ok=True)
        modal = json.dumps(modal_to_open(bot.modal), indent=1, ensure_ascii=False) + "\n"
        (config.out_dir / "bot_modal.json").write_text(modal)
    report = build_report(config_dict(config), results)
    write_outputs(report, config.out_dir, config.name, config.markdown)
    print(render_table(report))
    return report


def config_dict(config: Config) -> dict[str, Any]:
    return {
        "duration_seconds": config.duration,
        "rate_per_second": config.rate,
        "close_latency_seconds": config.close_latency,
        "think_seconds": config.think,
        "scale": config.scale,
        "layout": config.layout,
        "database": config.database,
        "burst": None
        if config.burst is None
        else {
            "flows": config.burst.flows,
            "in_flight": config.burst.in_flight,
            "rounds": config.burst.rounds,
        },
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "command": "python -m bench.load " + " ".join(sys.argv[1:]),
    }


def parse_args(argv: list[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (60)")
    parser.add_argument("--rate", type=float, default=50.0, help="commands/s = submissions/s (50)")
    parser.add_argument("--close-latency", type=float, default=1.0, help="Close seconds/call (1)")
    parser.add_argument("--think", type=float, default=2.0, help="command -> submit seconds (2)")
    parser.add_argument("--quick", action="store_true", help="10 s of load instead of 60")
    parser.add_argument(
        "--scale", action="store_true", help="Close 429s a third of calls, 5%% take 10 s"
    )
    parser.add_argument(
        "--burst",
        nargs="?",
        const="300x20x3",
        metavar="FLOWSxIN_FLIGHTxROUNDS",
        help="rounds of flows, a fixed number in flight, instead of a steady --rate "
        "(alone: 300x20x3, 3 rounds of 300 flows, 20 at a time)",
    )
    parser.add_argument("--only", choices=["bot", "baseline"], help="run one app, not both")
    parser.add_argument("--drain-timeout", type=float, help="seconds to wait for Close (30/240)")
    parser.add_argument(
        "--settle", type=float, default=5.0, help="quiet seconds in Close before counting (5)"
    )
    parser.add_argument("--out-dir", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument(
        "--name", help="result file name (latest, or scale with --scale, burst with --burst)"
    )
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    parser.add_argument(
        "--profile", type=Path, help="write py-spy samples of each app here (needs py-spy)"
    )
    parser.add_argument(
        "--layout",
        default="one",
        help="the bot's processes: one (serve), split (serve --no-worker + worker), or NxM "
        "(serve --workers N --no-worker + M workers; Nx0: the worker in each server process)",
    )
    parser.add_argument(
        "--database",
        choices=["sqlite", "postgresql"],
        default="sqlite",
        help="sqlite (a scratch file) or postgresql (a scratch database on --database-url)",
    )
    parser.add_argument(
        "--database-url",
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/test",
        help="PostgreSQL to create the scratch database from (the default: local, trust auth)",
    )
    args = parser.parse_args(argv)
    try:
        layout = Layout.parse(args.layout)
    except ValueError as error:
        parser.error(str(error))
    burst = None
    if args.burst:
        try:
            flows, in_flight, rounds = (int(n) for n in args.burst.lower().split("x"))
        except ValueError:
            parser.error(f"--burst {args.burst}: say FLOWSxIN_FLIGHTxROUNDS, e.g. 300x20x3")
        burst = Burst(flows=flows, in_flight=in_flight, rounds=rounds)
    if layout.web > 1 and args.database != "postgresql":
        parser.error(f"--layout {args.layout}: several server processes need --database postgresql")
    return Config(
        duration=10.0 if args.quick else args.duration,
        rate=args.rate,
        close_latency=args.close_latency,
        think=args.think,
        scale=args.scale,
        drain_timeout=args.drain_timeout or (240.0 if args.scale else 30.0),
        settle=args.settle,
        targets=(args.only,) if args.only else ("bot", "baseline"),
        out_dir=args.out_dir,
        name=args.name or ("scale" if args.scale else "burst" if args.burst else "latest"),
        markdown=args.markdown,
        profile=args.profile,
        layout=args.layout,
        database=args.database,
        database_admin_url=args.database_url,
        burst=burst,
    )


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    report = asyncio.run(main_async(config))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
