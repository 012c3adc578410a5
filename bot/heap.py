"""Garbage collection for a long-running server: the start-up heap is frozen out of it.

CPython's full (generation 2) collection walks every tracked object. After start-up that is
mostly what never dies (modules, the parser's vocabularies, dateparser's tables, Bolt, the
SQLAlchemy metadata): at 50 flows/s it ran every few seconds and stopped the event loop for up
to 155 ms each time — most of the acks' p99. `gc.freeze()` moves what exists at that point into
a permanent generation the collector no longer visits, so a full collection only walks what
was made since.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Call once start-up has built its long-lived objects; collections then skip them."""
    gc.collect()  # what start-up left as garbage is freed, not frozen
    gc.freeze()


def thaw_heap() -> None:
    """Undo `freeze_startup_heap` (at stop: a process that starts services again, such as the
    test suite, must not keep every earlier start's objects out of the collector's reach)."""
    gc.unfreeze()
