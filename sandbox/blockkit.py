"""Block Kit rules the local Slack simulator enforces: size limits, text types, and input state."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Surface = Literal["modal", "message", "home"]

# Limits from Slack's Block Kit reference (see docs/SLACK.md).
MAX_BLOCKS = {"modal": 100, "home": 100, "message": 50}
MAX_VIEW_TITLE = 24  # title, submit, close
MAX_PRIVATE_METADATA = 3000
MAX_ID = 255  # block_id, action_id, callback_id, external_id
MAX_SECTION_TEXT = 3000
MAX_SECTION_FIELD = 2000
MAX_SECTION_FIELDS = 10
MAX_HEADER_TEXT = 150
MAX_LABEL = 2000  # input label and hint
MAX_PLACEHOLDER = 150
MAX_OPTION_TEXT = 75
MAX_OPTION_VALUE = 150
MAX_OPTION_DESCRIPTION = 75
MAX_OPTIONS = 100
MAX_OPTION_GROUPS = 100
MAX_ACTIONS_ELEMENTS = 25
MAX_CONTEXT_ELEMENTS = 10
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_URL = 3000
MAX_MESSAGE_TEXT = 4000  # Slack truncates at 40000; the bot must stay far below
MAX_TEXT_INPUT_LENGTH = 3000
MAX_CHOICE_OPTIONS = 10  # checkboxes, radio buttons

SELECTS = {
    "static_select",
    "external_select",
    "users_select",
    "conversations_select",
    "channels_select",
}
MULTI_SELECTS = {f"multi_{s}" for s in SELECTS}
TEXT_INPUTS = {"plain_text_input", "number_input", "email_text_input", "url_text_input"}
INPUT_ELEMENTS = (
    SELECTS
    | MULTI_SELECTS
    | TEXT_INPUTS
    | {
        "datepicker",
        "timepicker",
        "datetimepicker",
        "checkboxes",
        "radio_buttons",
        "rich_text_input",
        "file_input",
    }
)
INTERACTIVE_ELEMENTS = INPUT_ELEMENTS | {"button", "overflow", "workflow_button", "image"}
KNOWN_BLOCKS = {
    "section",
    "header",
    "divider",
    "image",
    "context",
    "actions",
    "input",
    "rich_text",
    "markdown",
    "video",
    "file",
    "call",
}

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


@dataclass(frozen=True)
class Problem:
    """One rule broken, located by a JSON pointer into the checked object."""

    pointer: str
    message: str

    def __str__(self) -> str:
        # Same shape as Slack's response_metadata.messages entries.
        return f"[ERROR] {self.message} [json-pointer:{self.pointer}]"


def problems(view_or_message: Mapping[str, Any], *, surface: Surface) -> list[str]:
    """Every Block Kit rule `view_or_message` breaks on `surface`, as Slack words them."""
    return [str(p) for p in check(view_or_message, surface=surface)]


def check(view_or_message: Mapping[str, Any], *, surface: Surface) -> list[Problem]:
    """Structured form of `problems`: pointers are relative to the checked object."""
    c = _Checker()
    obj = view_or_message
    if surface == "message":
        text = obj.get("text")
        if text is not None:
            if not isinstance(text, str):
                c.add("/text", "must be a string")
            elif len(text) > MAX_MESSAGE_TEXT:
                c.add("/text", f"must be less than {MAX_MESSAGE_TEXT + 1} characters")
    else:
        c.view(obj, surface)
    blocks = obj.get("blocks")
    if blocks is None:
        if surface != "message":
            c.add("/blocks", "is required")
    elif not isinstance(blocks, list):
        c.add("/blocks", "must be an array")
    else:
        c.blocks(blocks, surface)
    return c.found


class _Checker:
    def __init__(self) -> None:
        self.found: list[Problem] = []

    def add(self, pointer: str, message: str) -> None:
        self.found.append(Problem(pointer, message))

    # -- primitives ----------------------------------------------------------------------------

    def string(self, value: Any, path: str, *, max_len: int, required: bool = False) -> None:
        if value is None:
            if required:
                self.add(path, "is required")
            return
        if not isinstance(value, str):
            self.add(path, "must be a string")
        elif required and not value:
            self.add(path, "must be more than 0 characters")
        elif len(value) > max_len:
            self.add(path, f"must be less than {max_len + 1} characters")

    def text(
        self,
        obj: Any,
        path: str,
        *,
        max_len: int,
        plain_only: bool = False,
        required: bool = True,
    ) -> None:
        if obj is None:
            if required:
                self.add(path, "is required")
            return
        if not isinstance(obj, dict):
            self.add(path, "must be a text object")
            return
        kind = obj.get("type")
        if kind not in ("plain_text", "mrkdwn"):
            self.add(f"{path}/type", "must be one of plain_text, mrkdwn")
        elif plain_only and kind != "plain_text":
            self.add(f"{path}/type", "must be plain_text")
        self.string(obj.get("text"), f"{path}/text", max_len=max_len, required=True)

    def identifier(self, value: Any, path: str) -> None:
        self.string(value, path, max_len=MAX_ID)

    # -- surfaces ------------------------------------------------------------------------------

    def view(self, view: Mapping[str, Any], surface: Surface) -> None:
        if view.get("type") != surface:
            self.add("/type", f"must be {surface}")
        if surface == "modal":
            self.text(view.get("title"), "/title", max_len=MAX_VIEW_TITLE, plain_only=True)
            for key in ("submit", "close"):
                self.text(
                    view.get(key),
                    f"/{key}",
                    max_len=MAX_VIEW_TITLE,
                    plain_only=True,
                    required=False,
                )
            blocks = view.get("blocks")
            has_input = isinstance(blocks, list) and any(
                isinstance(b, dict) and b.get("type") == "input" for b in blocks
            )
            if has_input and view.get("submit") is None:
                self.add("/submit", "is required when the view has input blocks")
        self.string(view.get("private_metadata"), "/private_metadata", max_len=MAX_PRIVATE_METADATA)
        self.identifier(view.get("callback_id"), "/callback_id")
        self.identifier(view.get("external_id"), "/external_id")

    def blocks(self, blocks: list[Any], surface: Surface) -> None:
        limit = MAX_BLOCKS[surface]
        if len(blocks) > limit:
            self.add("/blocks", f"must contain at most {limit} items")
        seen: set[str] = set()
        for i, block in enumerate(blocks):
            path = f"/blocks/{i}"
            if not isinstance(block, dict):
                self.add(path, "must be an object")
                continue
            block_id = block.get("block_id")
            self.identifier(block_id, f"{path}/block_id")
            if isinstance(block_id, str):
                if block_id in seen:
                    self.add(f"{path}/block_id", f"duplicate block_id {block_id!r}")
                seen.add(block_id)
            self.block(block, path)

    # -- blocks --------------------------------------------------------------------------------

    def block(self, block: dict[str, Any], path: str) -> None:
        kind = block.get("type")
        if kind not in KNOWN_BLOCKS:
            self.add(f"{path}/type", f"unknown block type {kind!r}")
        elif kind == "section":
            self.section(block, path)
        elif kind == "header":
            self.text(block.get("text"), f"{path}/text", max_len=MAX_HEADER_TEXT, plain_only=True)
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not elements:
                self.add(f"{path}/elements", "must contain at least 1 item")
            elif len(elements) > MAX_CONTEXT_ELEMENTS:
                self.add(f"{path}/elements", f"must contain at most {MAX_CONTEXT_ELEMENTS} items")
            else:
                for j, el in enumerate(elements):
                    if isinstance(el, dict) and el.get("type") == "image":
                        continue
                    self.text(el, f"{path}/elements/{j}", max_len=MAX_SECTION_TEXT)
        elif kind == "actions":
            elements = block.get("elements")
            if not isinstance(elements, list) or not elements:
                self.add(f"{path}/elements", "must contain at least 1 item")
            else:
                if len(elements) > MAX_ACTIONS_ELEMENTS:
                    self.add(
                        f"{path}/elements", f"must contain at most {MAX_ACTIONS_ELEMENTS} items"
                    )
                for j, el in enumerate(elements):
                    self.element(el, f"{path}/elements/{j}")
        elif kind == "input":
            self.text(block.get("label"), f"{path}/label", max_len=MAX_LABEL, plain_only=True)
            self.text(
                block.get("hint"),
                f"{path}/hint",
                max_len=MAX_LABEL,
                plain_only=True,
                required=False,
            )
            element = block.get("element")
            if not isinstance(element, dict):
                self.add(f"{path}/element", "is required")
            elif element.get("type") not in INPUT_ELEMENTS:
                self.add(f"{path}/element/type", f"{element.get('type')!r} is not an input element")
            else:
                self.element(element, f"{path}/element")
        elif kind == "image":
            if not block.get("image_url") and not block.get("slack_file"):
                self.add(f"{path}/image_url", "is required")
            self.string(block.get("alt_text"), f"{path}/alt_text", max_len=2000, required=True)
            self.text(
                block.get("title"), f"{path}/title", max_len=2000, plain_only=True, required=False
            )

    def section(self, block: dict[str, Any], path: str) -> None:
        text, fields = block.get("text"), block.get("fields")
        if text is None and fields is None:
            self.add(f"{path}/text", "is required when fields is absent")
        self.text(text, f"{path}/text", max_len=MAX_SECTION_TEXT, required=False)
        if fields is not None:
            if not isinstance(fields, list) or not fields:
                self.add(f"{path}/fields", "must contain at least 1 item")
            else:
                if len(fields) > MAX_SECTION_FIELDS:
                    self.add(f"{path}/fields", f"must contain at most {MAX_SECTION_FIELDS} items")
                for j, field in enumerate(fields):
                    self.text(field, f"{path}/fields/{j}", max_len=MAX_SECTION_FIELD)
        accessory = block.get("accessory")
        if accessory is not None:
            self.element(accessory, f"{path}/accessory")

    # -- elements ------------------------------------------------------------------------------

    def element(self, el: Any, path: str) -> None:
        if not isinstance(el, dict):
            self.add(path, "must be an object")
            return
        kind = el.get("type")
        if kind not in INTERACTIVE_ELEMENTS:
            self.add(f"{path}/type", f"unknown element type {kind!r}")
            return
        self.identifier(el.get("action_id"), f"{path}/action_id")
        if "placeholder" in el:
            self.text(
                el["placeholder"], f"{path}/placeholder", max_len=MAX_PLACEHOLDER, plain_only=True
            )
        if kind == "button":
            self.text(el.get("text"), f"{path}/text", max_len=MAX_BUTTON_TEXT, plain_only=True)
            self.string(el.get("value"), f"{path}/value", max_len=MAX_BUTTON_VALUE)
            self.string(el.get("url"), f"{path}/url", max_len=MAX_URL)
            if el.get("style") not in (None, "primary", "danger"):
                self.add(f"{path}/style", "must be one of primary, danger")
        elif kind in ("static_select", "multi_static_select"):
            self.static_options(el, path)
        elif kind in ("external_select", "multi_external_select"):
            if "initial_option" in el:
                self.option(el["initial_option"], f"{path}/initial_option", plain_only=True)
            for j, opt in enumerate(el.get("initial_options") or []):
                self.option(opt, f"{path}/initial_options/{j}", plain_only=True)
            mql = el.get("min_query_length")
            if mql is not None and (not isinstance(mql, int) or mql < 0):
                self.add(f"{path}/min_query_length", "must be a non-negative integer")
        elif kind in ("checkboxes", "radio_buttons"):
            options = el.get("options")
            if not isinstance(options, list) or not options:
                self.add(f"{path}/options", "must contain at least 1 item")
            else:
                if len(options) > MAX_CHOICE_OPTIONS:
                    self.add(f"{path}/options", f"must contain at most {MAX_CHOICE_OPTIONS} items")
                for j, opt in enumerate(options):
                    self.option(opt, f"{path}/options/{j}", plain_only=False)
        elif kind == "overflow":
            options = el.get("options")
            if not isinstance(options, list) or not 2 <= len(options) <= 5:
                self.add(f"{path}/options", "must contain between 2 and 5 items")
            else:
                for j, opt in enumerate(options):
                    self.option(opt, f"{path}/options/{j}", plain_only=True)
        elif kind == "datepicker":
            self.date(el.get("initial_date"), f"{path}/initial_date")
        elif kind == "timepicker":
            value = el.get("initial_time")
            if value is not None and (not isinstance(value, str) or not _TIME.match(value)):
                self.add(f"{path}/initial_time", "must be HH:mm")
        elif kind == "datetimepicker":
            value = el.get("initial_date_time")
            if value is not None and not isinstance(value, int):
                self.add(f"{path}/initial_date_time", "must be a UNIX timestamp in seconds")
        elif kind in ("plain_text_input", "email_text_input", "url_text_input", "number_input"):
            self.text_input(el, path)

    def text_input(self, el: dict[str, Any], path: str) -> None:
        initial = el.get("initial_value")
        if initial is not None and not isinstance(initial, str):
            self.add(f"{path}/initial_value", "must be a string")
        if el.get("type") == "number_input" and not isinstance(el.get("is_decimal_allowed"), bool):
            self.add(f"{path}/is_decimal_allowed", "is required")
        for key in ("min_length", "max_length"):
            value = el.get(key)
            if value is not None and (
                not isinstance(value, int) or not 0 <= value <= MAX_TEXT_INPUT_LENGTH
            ):
                self.add(f"{path}/{key}", f"must be between 0 and {MAX_TEXT_INPUT_LENGTH}")

    def date(self, value: Any, path: str) -> None:
        if value is None:
            return
        try:
            if not isinstance(value, str) or not _DATE.match(value):
                raise ValueError(value)
            dt.date.fromisoformat(value)
        except ValueError:
            self.add(path, "must be a date in the format YYYY-MM-DD")

    def option_list(self, options: Any, path: str, every: list[dict[str, Any]]) -> bool:
        """Check a list of options (1 to 100, each valid); collect them into `every`.
        False when there is no list to look into."""
        if not isinstance(options, list) or not options:
            self.add(path, "must contain at least 1 item")
            return False
        if len(options) > MAX_OPTIONS:
            self.add(path, f"must contain at most {MAX_OPTIONS} items")
        for j, opt in enumerate(options):
            self.option(opt, f"{path}/{j}", plain_only=True)
            if isinstance(opt, dict):
                every.append(opt)
        return True

    def static_options(self, el: dict[str, Any], path: str) -> None:
        options, groups = el.get("options"), el.get("option_groups")
        if (options is None) == (groups is None):
            self.add(f"{path}/options", "must provide exactly one of options or option_groups")
            return
        every: list[dict[str, Any]] = []
        if options is not None:
            if not self.option_list(options, f"{path}/options", every):
                return
        else:
            if not isinstance(groups, list) or not groups:
                self.add(f"{path}/option_groups", "must contain at least 1 item")
                return
            if len(groups) > MAX_OPTION_GROUPS:
                self.add(f"{path}/option_groups", f"must contain at most {MAX_OPTION_GROUPS} items")
            for g, group in enumerate(groups):
                gpath = f"{path}/option_groups/{g}"
                if not isinstance(group, dict):
                    self.add(gpath, "must be an object")
                    continue
                self.text(
                    group.get("label"), f"{gpath}/label", max_len=MAX_OPTION_TEXT, plain_only=True
                )
                self.option_list(group.get("options"), f"{gpath}/options", every)
        known = {_option_key(o) for o in every}
        initial = el.get("initial_option")
        if initial is not None and _option_key(initial) not in known:
            self.add(f"{path}/initial_option", "must match one of the provided options")
        for j, opt in enumerate(el.get("initial_options") or []):
            if _option_key(opt) not in known:
                self.add(f"{path}/initial_options/{j}", "must match one of the provided options")

    def option(self, opt: Any, path: str, *, plain_only: bool) -> None:
        if not isinstance(opt, dict):
            self.add(path, "must be an object")
            return
        self.text(opt.get("text"), f"{path}/text", max_len=MAX_OPTION_TEXT, plain_only=plain_only)
        self.string(opt.get("value"), f"{path}/value", max_len=MAX_OPTION_VALUE, required=True)
        self.text(
            opt.get("description"),
            f"{path}/description",
            max_len=MAX_OPTION_DESCRIPTION,
            plain_only=plain_only,
            required=False,
        )


def _option_key(opt: Any) -> tuple[Any, Any]:
    if not isinstance(opt, dict):
        return (None, None)
    text = opt.get("text")
    return (opt.get("value"), text.get("text") if isinstance(text, dict) else text)


# -- input state: what Slack reports in view.state.values --------------------------------------


def initial_state(element: Mapping[str, Any]) -> dict[str, Any]:
    """The state Slack reports for `element` before the user touches it."""
    kind = element.get("type")
    state: dict[str, Any] = {"type": kind}
    if kind in TEXT_INPUTS:
        state["value"] = element.get("initial_value")
    elif kind in ("static_select", "external_select", "radio_buttons"):
        state["selected_option"] = element.get("initial_option")
    elif kind in ("multi_static_select", "multi_external_select", "checkboxes"):
        state["selected_options"] = list(element.get("initial_options") or [])
    elif kind == "users_select":
        state["selected_user"] = element.get("initial_user")
    elif kind == "multi_users_select":
        state["selected_users"] = list(element.get("initial_users") or [])
    elif kind == "conversations_select":
        state["selected_conversation"] = element.get("initial_conversation")
    elif kind == "multi_conversations_select":
        state["selected_conversations"] = list(element.get("initial_conversations") or [])
    elif kind == "channels_select":
        state["selected_channel"] = element.get("initial_channel")
    elif kind == "multi_channels_select":
        state["selected_channels"] = list(element.get("initial_channels") or [])
    elif kind == "datepicker":
        state["selected_date"] = element.get("initial_date")
    elif kind == "timepicker":
        state["selected_time"] = element.get("initial_time")
    elif kind == "datetimepicker":
        state["selected_date_time"] = element.get("initial_date_time")
    elif kind == "rich_text_input":
        state["rich_text_value"] = element.get("initial_value")
    return state


def element_options(element: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every option an element offers, flattening option groups."""
    found: list[dict[str, Any]] = list(element.get("options") or [])
    for group in element.get("option_groups") or []:
        found.extend(group.get("options") or [])
    return found


def as_option(element: Mapping[str, Any], choice: Any) -> dict[str, Any]:
    """Turn a test's choice (an option dict or a value string) into the option Slack would send."""
    if isinstance(choice, dict):
        text = choice.get("text")
        if isinstance(text, str):
            choice = {**choice, "text": {"type": "plain_text", "text": text}}
        if "external" in str(element.get("type")):
            return dict(choice)
        value = choice.get("value")
    else:
        value = choice
    if "external" in str(element.get("type")):
        return {"text": {"type": "plain_text", "text": str(value)}, "value": str(value)}
    for opt in element_options(element):
        if opt.get("value") == value:
            return dict(opt)
    offered = [o.get("value") for o in element_options(element)]
    raise ValueError(f"{value!r} is not an option of {element.get('action_id')!r}: {offered}")


def state_for(element: Mapping[str, Any], choice: Any) -> dict[str, Any]:
    """The state Slack reports after the user sets `element` to `choice`."""
    state = initial_state(element)
    key = next(k for k in state if k != "type") if len(state) > 1 else None
    if key is None:
        raise ValueError(f"element type {element.get('type')!r} holds no state")
    if key == "selected_option":
        state[key] = None if choice is None else as_option(element, choice)
    elif key == "selected_options":
        state[key] = [as_option(element, c) for c in (choice or [])]
    else:
        state[key] = choice
    return state
