"""What connecting one's own Close account does, said truly for each CLOSE_ACCESS: under `key`
Close is always reached with the app's key (a connection says who you are in Close); under
`either` and `personal` what you do goes to Close as you."""

from __future__ import annotations

from typing import Literal

Mode = Literal["key", "personal", "either"]


def what_connecting_does(mode: Mode) -> str:
    """One sentence: what a connection changes, for the connect prompt and Home."""
    if mode == "key":
        return (
            "Connect your Close account so that I know who you are in Close (it outranks the "
            "email match). What you log still goes to Close through the app's own key, on "
            "your behalf."
        )
    return "Connect your Close account so that what you do here goes to Close as you."


def must_connect_first(mode: Mode) -> str:
    """The prompt for someone who asked for something that needs their own connection."""
    if mode == "personal":
        return (
            "Connect your Close account first: here, what you do goes to Close as you, and "
            "you see what Close lets you see."
        )
    return what_connecting_does(mode)


def connected_dm(label: str, mode: Mode) -> str:
    """The DM once someone connected."""
    if mode == "key":
        return (
            f"You are connected to Close as *{label}*: that is who you are to `/opportunity` "
            "now. What you log still goes to Close through the app's own key, on your behalf. "
            "`/opportunity disconnect` undoes it."
        )
    return (
        f"You are connected to Close as *{label}*. What you do with `/opportunity` now goes to "
        "Close as you. `/opportunity disconnect` undoes it."
    )


def after_disconnect(mode: Mode) -> str:
    """What happens now that their tokens are forgotten."""
    if mode == "personal":
        return (
            "Until you connect again (`/opportunity connect`), I cannot act in Close for you: "
            "this workspace uses each person's own Close account."
        )
    if mode == "key":
        return (
            "What you log still goes to Close through the app's own key; I match you to your "
            "Close user by email (or an admin's link) again."
        )
    return "What you do here now goes through the app's own Close key."


def help_line(mode: Mode) -> str:
    """`/opportunity help`'s line about `connect` and `disconnect`."""
    if mode == "key":
        does = (
            "so that I know who you are in Close (what you log still goes through the app's "
            "own key)"
        )
    else:
        does = "so what you do here goes to Close as you (and you see what Close lets you see)"
    return (
        "*Your own Close account*\n"
        f"• `/opportunity connect` connects your Close account, {does}. "
        "`/opportunity disconnect` forgets it."
    )
