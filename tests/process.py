"""The bot as a real child process (`serve`, `worker`, `socket`) against simulators in this one."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

import httpx

from sandbox.close_sim import CloseSimulator
from sandbox.slack_sim import SlackSimulator
from tests.test_durability import BotProcess

APP_TOKEN = "xapp-1-A0SANDBOX-sandbox-app-token"


class Bot(BotProcess):
    """`python -m bot COMMAND…`; its /healthz, /readyz and /metrics are at `url` whatever the
    command (`serve` on --port, the others on METRICS_PORT)."""

    def __init__(
        self,
        close: CloseSimulator,
        slack: SlackSimulator,
        database_url: str,
        cwd: Path,
        *command: str,
    ) -> None:
        super().__init__(close, slack, database_url, cwd)
        self.command = list(command or ("serve",))
        if self.command[0] == "serve":
            self.command += ["--host", "127.0.0.1", "--port", str(self.port)]
        else:
            self.env["METRICS_PORT"] = str(self.port)
        if self.command[0] == "socket":
            self.env["SLACK_APP_TOKEN"] = APP_TOKEN
        self.stderr_path = cwd / f"bot-{self.port}.log"

    async def spawn(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            *self.command,
            cwd=self.cwd,
            env=self.env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=self.stderr_path.open("ab"),
        )

    async def start(self) -> None:
        """Spawn it and wait until /readyz says it is ready."""
        await self.spawn()
        assert self.process is not None
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient() as http:
            while time.monotonic() < deadline:
                assert self.process.returncode is None, f"the bot exited: {self.stderr()}"
                try:
                    if (await http.get(self.url + "readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError(f"the bot did not become ready: {self.stderr()}")

    async def signal_and_wait(self, sig: signal.Signals = signal.SIGTERM) -> tuple[int, float]:
        """Send `sig`; returns (exit code, seconds it took to exit)."""
        assert self.process is not None
        sent = time.monotonic()
        self.process.send_signal(sig)
        code = await asyncio.wait_for(self.process.wait(), 30)
        return code, time.monotonic() - sent

    async def exit_code(self, timeout: float = 30) -> int:  # noqa: ASYNC109
        assert self.process is not None
        return await asyncio.wait_for(self.process.wait(), timeout)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""
