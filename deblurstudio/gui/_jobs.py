"""Run core jobs (generators that yield progress) off the UI thread.

A job is a callable `factory(token) -> Generator[progress, None, result]`: the core's
`pipeline.deblur`, `pipeline.analyse` and `batch.batch` have this shape once their arguments are
bound, and any plain function becomes one with `call_job`. The worker turns each yield into a
`progress` signal and ends with exactly one of `finished(result)`, `failed(exception)` or
`cancelled()` — an exception never leaves a progress bar hanging.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from typing import Any

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from deblurstudio.core.cancel import CancelToken
from deblurstudio.core.errors import Cancelled, DeblurStudioError

JobFactory = Callable[[CancelToken], Generator[Any, None, Any]]


def call_job(function: Callable[..., Any], *args: Any, **kwargs: Any) -> JobFactory:
    """Wrap a plain (uncancellable, progress-less) function call as a job factory."""

    def factory(token: CancelToken) -> Generator[Any, None, Any]:
        return function(*args, **kwargs)
        yield  # unreachable; makes this a generator so the worker drives every job the same way

    return factory


class _Worker(QObject):
    """Lives in the job's thread; drives the generator and reports through signals."""

    progress = Signal(object)
    finished = Signal(object)
    failed = Signal(object)
    cancelled = Signal()

    def __init__(self, factory: JobFactory, token: CancelToken):
        super().__init__()
        self._factory = factory
        self._token = token

    @Slot()
    def run(self) -> None:
        try:
            job = self._factory(self._token)
            while True:
                self._token.raise_if_cancelled()
                try:
                    step = next(job)
                except StopIteration as stop:
                    result = stop.value
                    break
                self.progress.emit(step)
            # A cancel that arrives while the last step runs still wins: the user asked for the
            # result to be discarded, and the window must not change behind a pressed Cancel.
            self._token.raise_if_cancelled()
        except Cancelled:
            self.cancelled.emit()
            return
        except Exception as exc:  # noqa: BLE001 — every failure must reach the UI as `failed`
            self.failed.emit(exc)
            return
        self.finished.emit(result)


class Job(QObject):
    """One job on its own QThread. Create, connect to the signals, then `start()`.

    Signals are delivered on the UI thread. Exactly one of `finished`, `failed`, `cancelled` is
    emitted, followed by `done` (for bookkeeping that does not care how the job ended).
    """

    progress = Signal(object)
    finished = Signal(object)
    failed = Signal(object)
    cancelled = Signal()
    done = Signal()

    def __init__(self, factory: JobFactory, title: str, parent: QObject | None = None):
        super().__init__(parent)
        self.title = title
        self.token = CancelToken()
        self.started_at = 0.0
        self._running = False
        self._thread = QThread()
        self._thread.setObjectName(f"job: {title}")
        self._worker = _Worker(factory, self.token)
        self._worker.moveToThread(self._thread)
        self._thread.started.connect(self._worker.run)
        self._worker.progress.connect(self._on_worker_progress)
        self._worker.finished.connect(self._on_worker_finished)
        self._worker.failed.connect(self._on_worker_failed)
        self._worker.cancelled.connect(self._on_worker_cancelled)

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> None:
        self._running = True
        self.started_at = time.monotonic()
        self._thread.start()

    def cancel(self) -> None:
        """Ask the job to stop at its next check; it then emits `cancelled` (unless it failed)."""
        self.token.cancel()

    def wait(self, milliseconds: int = 30_000) -> bool:
        """Block until the thread has stopped (used when the window closes)."""
        return self._thread.wait(milliseconds)

    def _end(self) -> None:
        self._running = False
        self._thread.quit()
        self._thread.wait()  # the worker has returned from run(); this only joins the event loop
        self.done.emit()

    @Slot(object)
    def _on_worker_progress(self, step: object) -> None:
        self.progress.emit(step)

    @Slot(object)
    def _on_worker_finished(self, result: object) -> None:
        self._end()
        self.finished.emit(result)

    @Slot(object)
    def _on_worker_failed(self, exc: object) -> None:
        self._end()
        self.failed.emit(exc)

    @Slot()
    def _on_worker_cancelled(self) -> None:
        self._end()
        self.cancelled.emit()


def user_message(exc: BaseException) -> str:
    """One readable line for a failed job's exception, as shown in the window."""
    if isinstance(exc, DeblurStudioError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "Out of memory: the photo is too large for this machine at these settings."
    return f"Unexpected error ({type(exc).__name__}): {exc}"


def format_eta(seconds: float | None) -> str:
    """'about 1 min 5 s left' style text; '' when unknown."""
    if seconds is None or seconds != seconds or seconds < 0:
        return ""
    seconds = round(seconds)
    if seconds < 60:
        return f"about {seconds} s left"
    return f"about {seconds // 60} min {seconds % 60:02d} s left"


class ProgressPanel(QWidget):
    """Status-bar progress for the running job: stage, bar, ETA and Cancel.

    It only appears after `delay_ms`, so short jobs don't flash (as Anki does).
    """

    def __init__(self, delay_ms: int = 400, parent: QWidget | None = None):
        super().__init__(parent)
        self._job: Job | None = None
        self._label = QLabel()
        self._bar = QProgressBar()
        self._bar.setRange(0, 1000)
        self._bar.setTextVisible(False)
        self._bar.setFixedWidth(180)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self._on_cancel_clicked)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._label)
        layout.addWidget(self._bar)
        layout.addWidget(self.cancel_button)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(delay_ms)
        self._timer.timeout.connect(self._on_timer_timeout)
        self.hide()

    def track(self, job: Job) -> None:
        """Follow `job` until it ends; show up if it is still running after the delay."""
        self._job = job
        self._label.setText(job.title)
        self._bar.setRange(0, 0)  # busy until the job reports how far it is
        self.cancel_button.setEnabled(True)
        job.progress.connect(self._on_job_progress)
        job.done.connect(self._on_job_done)
        self._timer.start()

    def text(self) -> str:
        return self._label.text()

    @Slot()
    def _on_timer_timeout(self) -> None:
        if self._job is not None and self._job.running:
            self.show()

    @Slot()
    def _on_cancel_clicked(self) -> None:
        if self._job is not None:
            self._job.cancel()
            self.cancel_button.setEnabled(False)
            self._label.setText(f"{self._job.title}: cancelling…")

    @Slot(object)
    def _on_job_progress(self, step: object) -> None:
        if self.sender() is not self._job or self._job.token.cancelled:
            return
        fraction = float(getattr(step, "fraction", 0.0))
        eta = getattr(step, "eta_seconds", None)
        if eta is None and fraction > 0.02:
            elapsed = time.monotonic() - self._job.started_at
            eta = elapsed * (1.0 - fraction) / fraction
        stage = getattr(step, "stage", "") or self._job.title
        self._label.setText(" — ".join(part for part in (stage, format_eta(eta)) if part))
        self._bar.setRange(0, 1000)
        self._bar.setValue(round(fraction * 1000))

    @Slot()
    def _on_job_done(self) -> None:
        if self.sender() is self._job:
            self._job = None
            self._timer.stop()
            self.hide()
