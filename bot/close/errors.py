"""Typed errors raised by the Close client, carrying what Close said and what to do next."""

from __future__ import annotations


class CloseError(Exception):
    """Anything that went wrong talking to Close."""


class CloseHTTPError(CloseError):
    """Close answered with an error status.

    `errors` and `field_errors` come from Close's 400 body
    (`{"errors": [...], "field-errors": {...}}`); other statuses carry `{"error": "..."}`,
    which lands in `message`.
    """

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        errors: list[str] | None = None,
        field_errors: dict[str, str] | None = None,
    ) -> None:
        self.status_code = status_code
        self.message = message
        self.errors: list[str] = list(errors or [])
        self.field_errors: dict[str, str] = dict(field_errors or {})
        super().__init__(self._describe())

    def _describe(self) -> str:
        parts = [f"Close answered {self.status_code}"]
        if self.message:
            parts.append(self.message)
        parts.extend(self.errors)
        parts.extend(f"{field}: {text}" for field, text in self.field_errors.items())
        return ": ".join(parts[:2]) + "".join(f"; {part}" for part in parts[2:])


class CloseValidationError(CloseHTTPError):
    """400: Close refused the body; `field_errors` says which field and why."""


class CloseAuthError(CloseHTTPError):
    """401/403: the API key is wrong, revoked, or lacks the permission."""


class CloseNotFound(CloseHTTPError):
    """404: no such object (or endpoint)."""


class CloseRateLimited(CloseHTTPError):
    """429 still coming after the client spent its bounded wait; retry after `retry_after` s."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(429, message)


class CloseUnavailable(CloseError):
    """Close could not be reached or failed (5xx); nothing was changed, safe to retry later."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        self.status_code = status_code
        super().__init__(message)


class CloseOutcomeUnknown(CloseError):
    """A write was sent and no answer came back: it may or may not have been applied.

    Look (e.g. list the lead's opportunities) before sending it again.
    """

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        self.status_code = status_code
        super().__init__(message)


class CloseNotConnected(CloseError):
    """CLOSE_ACCESS=personal and the person has not connected their Close account: nothing is
    sent to Close on their behalf (never with the key). Answer with the *Connect Close* prompt."""

    def __init__(self, slack_user_id: str) -> None:
        self.slack_user_id = slack_user_id
        super().__init__(f"{slack_user_id} has not connected their Close account")


class CloseAccessBroken(CloseError):
    """The person's Close connection is no good (a refused refresh, a 401 after a refresh): they
    must reconnect. Nothing was sent with the key instead. Answer with a *Reconnect* prompt."""

    def __init__(self, slack_user_id: str, reason: str = "") -> None:
        self.slack_user_id = slack_user_id
        self.reason = reason
        text = f"the Close connection of {slack_user_id} is broken"
        super().__init__(f"{text}: {reason}" if reason else text)
