"""Cooperative cancellation for long jobs (never QThread.terminate())."""

from __future__ import annotations

import threading

from deblurstudio.core.errors import Cancelled


class CancelToken:
    """Thread-safe flag a UI sets and a job checks between units of work (tiles, files)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise `Cancelled` if cancel() was called."""
        if self._event.is_set():
            raise Cancelled()
