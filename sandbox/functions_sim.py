"""Slack's side of Workflow Builder custom steps, for the Slack simulator: executions of the
app's functions (as manifests/http.json declares them), each with its own `xwfp-` token, and
`functions.completeSuccess` / `functions.completeError` with Slack's errors."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

# The app's manifest: the simulator reads the functions from it, so the two cannot drift.
MANIFEST = Path(__file__).resolve().parents[1] / "manifests" / "http.json"
COMPLETE_METHODS = frozenset({"functions.completeSuccess", "functions.completeError"})
RUNNING, COMPLETED, FAILED = "running", "completed", "failed"
# Seconds an execution's `xwfp-` token lives from the step's start (Slack: about 15 minutes).
TOKEN_LIFE_SECONDS = 15 * 60.0

Json = dict[str, Any]


class FunctionRefused(Exception):
    """Slack's `{"ok": false, "error": code}` for a functions.* call."""

    def __init__(self, code: str, **extra: Any) -> None:
        super().__init__(code)
        self.code = code
        self.extra = extra


@dataclass
class Completion:
    """One functions.complete* call on an execution, and what Slack answered."""

    method: str
    params: Json
    error: str | None  # None: ok


@dataclass
class FunctionExecution:
    """One run of a function in a workflow, from `function_executed` to its completion."""

    id: str  # Fx…
    callback_id: str
    token: str  # xwfp-…: only this execution's completions take it
    workflow_execution_id: str
    inputs: Json
    started_at: float = field(default_factory=time.monotonic)
    state: str = RUNNING
    outputs: Json | None = None
    error: str | None = None
    completions: list[Completion] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.state != RUNNING


@dataclass(frozen=True)
class StepRun:
    """A workflow ran the step: its execution, the `function_executed` delivery, the bot's answer."""

    execution: FunctionExecution
    event_id: str
    response: httpx.Response


def _type_ok(kind: str, value: Any) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind in ("object", "slack#/types/form_input_object"):
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    return isinstance(value, str)  # string and the slack#/types/… ids, dates, timestamps


class Functions:
    """The app's function definitions and their executions."""

    def __init__(self, *, app_id: str = "A0SANDBOX", manifest: Path = MANIFEST) -> None:
        self.app_id = app_id
        self._manifest = manifest
        self._definitions: dict[str, Json] | None = None
        self._ids: dict[str, str] = {}  # callback_id -> Fn… id
        self.executions: dict[str, FunctionExecution] = {}
        self._changed = asyncio.Condition()
        self.updated = int(time.time())
        # How long each execution's token lives (0: dead on arrival, as for a step that waited
        # past Slack's 15 minutes); read at each completion, settable at any time.
        self.token_life_seconds = TOKEN_LIFE_SECONDS

    @property
    def definitions(self) -> dict[str, Json]:
        """callback_id -> {title, description, input_parameters, output_parameters}."""
        if self._definitions is None:
            manifest = json.loads(self._manifest.read_text())
            self._definitions = dict(manifest.get("functions") or {})
        return self._definitions

    def definition(self, callback_id: str) -> Json:
        try:
            return self.definitions[callback_id]
        except KeyError:
            raise KeyError(f"the manifest declares no function {callback_id!r}") from None

    # -- what the driver uses ----------------------------------------------------------------

    def start(self, callback_id: str, inputs: Json) -> FunctionExecution:
        """A workflow reaches the step: a new execution, with a token of its own."""
        self.definition(callback_id)
        execution = FunctionExecution(
            id="Fx0" + secrets.token_hex(5).upper(),
            callback_id=callback_id,
            token="xwfp-" + secrets.token_hex(12),
            workflow_execution_id="Wx0" + secrets.token_hex(5).upper(),
            inputs=dict(inputs),
        )
        self.executions[execution.id] = execution
        return execution

    def event(self, execution: FunctionExecution) -> Json:
        """The `function_executed` event Slack sends for `execution` (shape of Slack's own)."""
        definition = self.definition(execution.callback_id)
        function_id = self._ids.setdefault(
            execution.callback_id, "Fn0" + secrets.token_hex(5).upper()
        )
        return {
            "type": "function_executed",
            "function": {
                "id": function_id,
                "callback_id": execution.callback_id,
                "title": definition.get("title", ""),
                "description": definition.get("description", ""),
                "type": "app",
                "input_parameters": _listed(definition.get("input_parameters")),
                "output_parameters": _listed(definition.get("output_parameters")),
                "app_id": self.app_id,
                "date_updated": self.updated,
            },
            "inputs": dict(execution.inputs),
            "function_execution_id": execution.id,
            "workflow_execution_id": execution.workflow_execution_id,
            "event_ts": f"{time.time():.6f}",
            "bot_access_token": execution.token,
        }

    async def wait_done(self, execution_id: str, timeout: float = 5.0) -> FunctionExecution:  # noqa: ASYNC109
        """The execution once it is completed or failed."""
        execution = self.executions[execution_id]
        try:
            async with asyncio.timeout(timeout), self._changed:
                while not execution.done:
                    await self._changed.wait()
        except TimeoutError:
            tried = [(c.method, c.error) for c in execution.completions]
            raise TimeoutError(f"{execution_id} still running after {timeout}s; {tried}") from None
        return execution

    # -- the Web API methods -----------------------------------------------------------------

    async def call(self, method: str, params: Json, token: str | None) -> Json:
        """functions.completeSuccess / completeError, answered as Slack does (raises
        FunctionRefused with Slack's error code)."""
        execution = None
        try:
            if not token:
                raise FunctionRefused("not_authed")
            if not any(token == e.token for e in self.executions.values()):
                raise FunctionRefused("invalid_auth")
            execution_id = params.get("function_execution_id")
            if not execution_id:
                raise FunctionRefused("invalid_arguments")
            execution = self.executions.get(str(execution_id))
            if execution is None:
                raise FunctionRefused("function_execution_not_found")
            if token != execution.token:
                raise FunctionRefused("invalid_auth")  # another execution's token
            if time.monotonic() - execution.started_at >= self.token_life_seconds:
                raise FunctionRefused("token_expired")
            if execution.done:
                raise FunctionRefused("execution_not_in_running_state")
            if method == "functions.completeSuccess":
                outputs = _outputs(params.get("outputs"))
                self._check_outputs(execution, outputs)
                execution.outputs, execution.state = outputs, COMPLETED
            else:
                error = params.get("error")
                if not isinstance(error, str) or not error.strip():
                    raise FunctionRefused("invalid_arguments")
                execution.error, execution.state = error, FAILED
        except FunctionRefused as refused:
            if execution is not None:
                execution.completions.append(Completion(method, dict(params), refused.code))
            raise
        execution.completions.append(Completion(method, dict(params), None))
        async with self._changed:
            self._changed.notify_all()
        return {"ok": True}

    def _check_outputs(self, execution: FunctionExecution, outputs: Json) -> None:
        declared: Json = self.definition(execution.callback_id).get("output_parameters") or {}
        problems = [
            f"{name}: not an output of this function" for name in outputs if name not in declared
        ]
        for name, parameter in declared.items():
            if name not in outputs or outputs[name] is None:
                if parameter.get("is_required"):
                    problems.append(f"{name}: required")
            elif not _type_ok(str(parameter.get("type")), outputs[name]):
                problems.append(f"{name}: not a {parameter.get('type')}")
        if problems:
            raise FunctionRefused(
                "parameter_validation_failed", response_metadata={"messages": problems}
            )


def _outputs(raw: Any) -> Json:
    if isinstance(raw, str | bytes):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise FunctionRefused("invalid_arguments") from None
    if not isinstance(raw, dict):
        raise FunctionRefused("invalid_arguments")
    return raw


def _listed(parameters: Any) -> list[Json]:
    """The manifest's name -> parameter map as the event lists it (each with its name)."""
    if not isinstance(parameters, dict):
        return []
    return [{**parameter, "name": name} for name, parameter in parameters.items()]
