"""Work off the UI thread that needs no model, one piece at a time: the instant preview of
a move or a removal (``window.side``), and reading and writing large pictures
(``window.files``, :mod:`ui.files`), each on a thread of its own.

A preview needs the edit's new item map, which on a 24-megapixel photo takes about a
second to work out; on the UI thread that froze the canvas at every drop. Decoding or
encoding a 24 MP picture takes seconds too. The model's worker (:mod:`ui.worker`) is no
place for either: it runs one job at a time and may be busy with a diffusion for seconds,
and a preview exists to show *before* that. One thread per kind of work, not a pool: the
machine may have two cores, and the worker needs one of them.

A piece of work is a plain function of arrays the UI no longer writes to (a document's
image and item map are replaced, never changed in place) or of a path. Its result or its
error comes back on the UI thread through a queued signal, to callbacks that may find the
moment has passed (the edit already landed, another photo was opened) and drop it."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal

from ui.worker import user_message

log = logging.getLogger(__name__)


class SideThread(QObject):
    """Runs work one piece at a time on a thread of its own; answers on the UI thread."""

    # (ticket, result, error sentence or ""), emitted on the side thread and delivered
    # queued: the receiver lives on the UI thread.
    _answered = Signal(int, object, str)

    def __init__(self, parent: QObject | None = None, name: str = "dedit-side") -> None:
        super().__init__(parent)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._tickets = itertools.count(1)
        self._waiting: dict[int, tuple[Callable[[Any], None], Callable[[str], None]]] = {}
        self._futures: dict[int, Future] = {}  # until answered: forget() cancels unstarted work
        self._closed = False
        # Queued even when emitted on the UI thread: work that finishes before submit()
        # attaches its callback is answered from inside submit(), and must wait its turn.
        self._answered.connect(self._deliver, Qt.ConnectionType.QueuedConnection)

    def submit(
        self,
        title: str,
        work: Callable[[], Any],
        on_done: Callable[[Any], None],
        on_failed: Callable[[str], None],
    ) -> int:
        """Run ``work()`` on the side thread; returns a ticket for :meth:`forget`.

        ``on_done(result)`` or ``on_failed(sentence)`` runs later on the UI thread, never
        inside this call. ``title`` names the work in an error sentence.
        """
        ticket = next(self._tickets)
        if self._closed:
            return ticket
        self._waiting[ticket] = (on_done, on_failed)
        future = self._pool.submit(work)
        self._futures[ticket] = future
        future.add_done_callback(lambda f: self._answer(ticket, title, f))
        return ticket

    def forget(self, ticket: int) -> None:
        """Drop the callbacks of ``ticket``: its answer, when it comes, goes nowhere; work
        that has not started yet does not run."""
        self._waiting.pop(ticket, None)
        self.cancel(ticket)  # work under way stays listed until it answers

    def cancel(self, ticket: int) -> bool:
        """Drop the work of ``ticket`` and its callbacks if it has not started; True if
        so. Work under way goes on and answers as it would have."""
        future = self._futures.get(ticket)
        if future is None or not future.cancel():
            return False
        del self._futures[ticket]
        self._waiting.pop(ticket, None)
        return True

    def take(self, ticket: int) -> Any:
        """Block until the work of ``ticket`` has run and return its result here (or raise
        its error); its callbacks are dropped. For the rare moment the UI must wait anyway:
        completing a save before the window closes."""
        self._waiting.pop(ticket, None)
        future = self._futures.get(ticket)
        if future is None:
            raise LookupError(f"No work under way has the ticket {ticket}.")
        return future.result()

    @property
    def busy(self) -> bool:
        """True while an answer is still to come to someone waiting for it."""
        return bool(self._waiting)

    def shutdown(self, finish: bool = False) -> None:
        """Drop every callback and wait for the work that has started (window closing);
        idempotent. Work not yet started is skipped, or with ``finish`` run first: an
        export the user asked for is written even when the window closes."""
        self._closed = True
        self._waiting.clear()
        self._pool.shutdown(wait=True, cancel_futures=not finish)

    # ----- the side thread ---------------------------------------------------------------

    def _answer(self, ticket: int, title: str, future: Future) -> None:
        if future.cancelled():
            return
        err = future.exception()
        if err is None:
            self._answered.emit(ticket, future.result(), "")
            return
        text, detail = user_message(err, title, "side")
        if detail:
            log.error("%s failed:\n%s", title, detail)
        self._answered.emit(ticket, None, text)

    # ----- the UI thread ----------------------------------------------------------------

    def _deliver(self, ticket: int, result: Any, error: str) -> None:
        self._futures.pop(ticket, None)
        callbacks = self._waiting.pop(ticket, None)
        if callbacks is None:
            return
        on_done, on_failed = callbacks
        if error:
            on_failed(error)
        else:
            on_done(result)


__all__ = ["SideThread"]
