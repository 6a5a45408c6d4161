"""Quick pictures worked out off the UI thread: the instant preview of a move or a removal.

A preview needs the edit's new item map, which on a 24-megapixel photo takes about a
second to work out; on the UI thread that froze the canvas at every drop. The model's
worker (:mod:`ui.worker`) is no place for it either: it runs one job at a time and may be
busy with a diffusion for seconds, and the preview exists to show *before* that. So the
sketches get their own thread. One thread, not a pool: the machine may have two cores, and
the worker needs one of them.

A sketch is a plain function of arrays the UI no longer writes to (a document's image and
item map are replaced, never changed in place). Its result or its error comes back on the
UI thread through a queued signal, to callbacks that may find the moment has passed (the
edit already landed, the document was closed) and drop it.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from PySide6.QtCore import QObject, Signal

from ui.worker import user_message

log = logging.getLogger(__name__)


class Sketcher(QObject):
    """Runs sketches one at a time on a thread of their own; answers on the UI thread."""

    # (ticket, result, error sentence or ""), emitted on the sketch thread and delivered
    # queued: the receiver lives on the UI thread.
    _answered = Signal(int, object, str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dedit-sketch")
        self._tickets = itertools.count(1)
        self._waiting: dict[int, tuple[Callable[[Any], None], Callable[[str], None]]] = {}
        self._closed = False
        self._answered.connect(self._deliver)

    def submit(
        self,
        title: str,
        sketch: Callable[[], Any],
        on_done: Callable[[Any], None],
        on_failed: Callable[[str], None],
    ) -> int:
        """Run ``sketch()`` on the sketch thread; returns a ticket for :meth:`forget`.

        ``on_done(result)`` or ``on_failed(sentence)`` runs later on the UI thread, never
        inside this call. ``title`` names the sketch in an error sentence.
        """
        ticket = next(self._tickets)
        if self._closed:
            return ticket
        self._waiting[ticket] = (on_done, on_failed)
        future = self._pool.submit(sketch)
        future.add_done_callback(lambda f: self._answer(ticket, title, f))
        return ticket

    def forget(self, ticket: int) -> None:
        """Drop the callbacks of ``ticket``: its answer, when it comes, goes nowhere."""
        self._waiting.pop(ticket, None)

    @property
    def busy(self) -> bool:
        """True while an answer is still to come to someone waiting for it."""
        return bool(self._waiting)

    def shutdown(self) -> None:
        """Drop every callback, skip what has not started, wait for what has (window
        closing; at most one sketch, about a second at 24 MP); idempotent."""
        self._closed = True
        self._waiting.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)

    # ----- the sketch thread ------------------------------------------------------------

    def _answer(self, ticket: int, title: str, future: Future) -> None:
        if future.cancelled():
            return
        err = future.exception()
        if err is None:
            self._answered.emit(ticket, future.result(), "")
            return
        text, detail = user_message(err, title, "sketch")
        if detail:
            log.error("sketch %r failed:\n%s", title, detail)
        self._answered.emit(ticket, None, text)

    # ----- the UI thread ----------------------------------------------------------------

    def _deliver(self, ticket: int, result: Any, error: str) -> None:
        callbacks = self._waiting.pop(ticket, None)
        if callbacks is None:
            return
        on_done, on_failed = callbacks
        if error:
            on_failed(error)
        else:
            on_done(result)


__all__ = ["Sketcher"]
