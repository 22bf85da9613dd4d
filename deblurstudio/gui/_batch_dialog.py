"""The batch dialog: deblur every photo of a folder with `core.batch`, file by file."""

from __future__ import annotations

import os
from pathlib import Path

import qtawesome as qta
from PySide6.QtCore import QSettings, Qt, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from deblurstudio.core.cancel import CancelToken
from deblurstudio.gui._jobs import Job, format_eta, user_message
from deblurstudio.gui._settings import last_folder, remember_folder


def batch_job(
    input_dir: str,
    output_dir: str,
    *,
    recursive: bool,
    skip_existing: bool,
    model_id: str | None,
    reference: str | None,
    device: str,
):
    """A job factory running `core.batch.batch` (imported in the worker: it loads torch)."""

    def job(token: CancelToken):
        from deblurstudio.core import batch

        request = batch.BatchRequest(
            input_dir=Path(input_dir),
            output_dir=Path(output_dir),
            recursive=recursive,
            skip_existing=skip_existing,
            model_id=model_id,
            reference=None if reference is None else Path(reference),
            device=device,
        )
        return (yield from batch.batch(request, token))

    return job


class _FolderRow(QWidget):
    def __init__(self, settings: QSettings, kind: str, title: str):
        super().__init__()
        self._settings, self._kind, self._title = settings, kind, title
        self.edit = QLineEdit(str(settings.value(f"folders/{kind}", "") or ""))
        browse = QPushButton(qta.icon("mdi6.folder-open-outline"), "Browse…")
        browse.clicked.connect(self._on_browse_clicked)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit, 1)
        layout.addWidget(browse)

    def path(self) -> str:
        return self.edit.text().strip()

    @Slot()
    def _on_browse_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, self._title, self.path() or last_folder(self._settings, self._kind)
        )
        if folder:
            self.edit.setText(folder)


class BatchDialog(QDialog):
    """Pick input/output folders and options, then watch per-file progress, the running list of
    done and failed files, and the summary; Cancel stops after the current tile.

    Signals:
        summary_ready(object): the batch ended (its `core.batch.BatchSummary`), after the
            dialog shows it.
        batch_failed(str): the batch could not run (message shown in the dialog).
        batch_cancelled(): the batch was cancelled.
    """

    summary_ready = Signal(object)
    batch_failed = Signal(str)
    batch_cancelled = Signal()

    def __init__(
        self,
        settings: QSettings,
        models: list,
        model_id: str | None,
        device: str,
        reference: str | None = None,
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self.setWindowTitle("Batch deblur")
        self.resize(640, 560)
        self._settings = settings
        self._device = device
        self.job: Job | None = None
        self.input_row = _FolderRow(settings, "batch_in", "Folder of photos to deblur")
        self.output_row = _FolderRow(settings, "batch_out", "Folder for the results")
        self.recursive_check = QCheckBox("Include subfolders")
        self.recursive_check.setChecked(str(settings.value("batch/recursive", "false")) == "true")
        self.skip_check = QCheckBox("Skip photos that already have a result (resume)")
        self.skip_check.setChecked(True)
        self.model_combo = QComboBox()
        self.model_combo.addItem("Default model", None)
        for entry in models:
            if entry.task == "deblur":
                self.model_combo.addItem(f"{entry.title} ({entry.id})", entry.id)
        index = self.model_combo.findData(model_id)
        self.model_combo.setCurrentIndex(max(index, 0))
        self._reference = reference
        self.reference_check = QCheckBox(
            f"Use the reference photo {Path(reference).name} (reference model)"
            if reference
            else "Use a reference photo (pick one in the main window first)"
        )
        self.reference_check.setEnabled(reference is not None)
        self.reference_check.toggled.connect(self.model_combo.setDisabled)
        form = QFormLayout()
        form.addRow("Photos", self.input_row)
        form.addRow("Results", self.output_row)
        form.addRow("Model", self.model_combo)
        form.addRow("", self.recursive_check)
        form.addRow("", self.skip_check)
        form.addRow("", self.reference_check)

        self.overall_label = QLabel("Not started")
        self.overall_bar = QProgressBar()
        self.overall_bar.setRange(0, 1000)
        self.file_label = QLabel()
        self.file_bar = QProgressBar()
        self.file_bar.setRange(0, 1000)
        self.file_list = QListWidget()
        self.file_list.setWordWrap(True)
        self.file_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.summary_label = QLabel()
        self.summary_label.setWordWrap(True)
        self.summary_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.buttons = QDialogButtonBox()
        self.start_button = self.buttons.addButton("Start", QDialogButtonBox.ButtonRole.AcceptRole)
        self.start_button.setIcon(qta.icon("mdi6.play"))
        self.cancel_button = self.buttons.addButton(
            "Cancel", QDialogButtonBox.ButtonRole.ActionRole
        )
        self.cancel_button.setIcon(qta.icon("mdi6.stop"))
        self.close_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.cancel_button.setEnabled(False)
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self._on_cancel_clicked)
        self.close_button.clicked.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.overall_label)
        layout.addWidget(self.overall_bar)
        layout.addWidget(self.file_label)
        layout.addWidget(self.file_bar)
        layout.addWidget(self.file_list, 1)
        layout.addWidget(self.summary_label)
        layout.addWidget(self.buttons)

    # --- running -----------------------------------------------------------------------------

    @Slot()
    def start(self) -> Job | None:
        """Start the batch with the dialog's folders and options."""
        input_dir, output_dir = self.input_row.path(), self.output_row.path()
        problem = ""
        if not input_dir or not os.path.isdir(input_dir):
            problem = f"{input_dir or 'Photos folder'}: not a folder"
        elif not output_dir:
            problem = "Choose a folder for the results"
        if problem:
            self.summary_label.setText(problem)
            return None
        remember_folder(self._settings, "batch_in", input_dir)
        remember_folder(self._settings, "batch_out", output_dir)
        self._settings.setValue("batch/recursive", self.recursive_check.isChecked())
        self.file_list.clear()
        self.summary_label.clear()
        use_reference = self.reference_check.isChecked()
        self.job = Job(
            batch_job(
                input_dir,
                output_dir,
                recursive=self.recursive_check.isChecked(),
                skip_existing=self.skip_check.isChecked(),
                model_id=None if use_reference else self.model_combo.currentData(),
                reference=self._reference if use_reference else None,
                device=self._device,
            ),
            "Batch",
            self,
        )
        self.job.progress.connect(self._on_job_progress)
        self.job.finished.connect(self._on_job_finished)
        self.job.failed.connect(self._on_job_failed)
        self.job.cancelled.connect(self._on_job_cancelled)
        self.job.done.connect(self._on_job_done)
        self._set_running(True)
        self.overall_label.setText("Starting…")
        self.job.start()
        return self.job

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.close_button.setEnabled(not running)
        for widget in (
            self.input_row,
            self.output_row,
            self.recursive_check,
            self.skip_check,
        ):
            widget.setEnabled(not running)
        self.reference_check.setEnabled(not running and self._reference is not None)
        self.model_combo.setEnabled(not running and not self.reference_check.isChecked())

    @Slot()
    def _on_cancel_clicked(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.cancel_button.setEnabled(False)
            self.overall_label.setText("Cancelling after the current tile…")

    @Slot(object)
    def _on_job_progress(self, progress) -> None:
        total = max(progress.total, 1)
        self.overall_bar.setValue(round(1000 * progress.fraction))
        eta = format_eta(progress.eta_seconds)
        self.overall_label.setText(
            f"File {min(progress.index + 1, total)} of {total}" + (f" — {eta}" if eta else "")
        )
        if progress.path is not None:
            self.file_label.setText(f"{Path(progress.path).name}: {progress.stage}")
            self.file_bar.setValue(round(1000 * progress.file_fraction))
        if progress.status in ("done", "failed", "skipped"):
            self._add_entry(progress.path, progress.status, progress.error or progress.warning)

    def _add_entry(self, path, status: str, error: str | None) -> None:
        """One row; `error` is the reason a file failed, or the warning of a done one."""
        icons = {
            "done": ("mdi6.check-circle", "#2e9d4f"),
            "failed": ("mdi6.close-circle", "#d0343f"),
            "skipped": ("mdi6.skip-next-circle", "#888888"),
        }
        warned = status == "done" and error is not None
        name, color = ("mdi6.alert-circle", "#d08a1a") if warned else icons[status]
        reason = error or ""
        if reason.startswith(f"{path}: "):  # the row already names the file
            reason = reason[len(f"{path}: ") :]
        text = f"{Path(path).name} — {status}" + (f": {reason}" if reason else "")
        item = QListWidgetItem(qta.icon(name, color=color), text)
        item.setData(Qt.ItemDataRole.UserRole, status)
        item.setToolTip(f"{path}\n{error}" if error else str(path))
        self.file_list.addItem(item)
        self.file_list.scrollToBottom()

    def entries(self, status: str) -> list[str]:
        """The listed file names with `status` ("done", "failed", "skipped")."""
        return [
            self.file_list.item(row).text().split(" — ")[0]
            for row in range(self.file_list.count())
            if self.file_list.item(row).data(Qt.ItemDataRole.UserRole) == status
        ]

    @Slot(object)
    def _on_job_finished(self, summary) -> None:
        self.overall_bar.setValue(1000)
        self.overall_label.setText("Finished")
        self.summary_label.setText(
            f"{summary.done} deblurred, {summary.failed} failed, {summary.skipped} skipped "
            f"in {summary.seconds:.1f} s. Results in {summary.output_dir}."
        )
        self.summary_ready.emit(summary)

    @Slot(object)
    def _on_job_failed(self, exc: BaseException) -> None:
        message = user_message(exc)
        self.overall_label.setText("Failed")
        self.summary_label.setText(message)
        self.batch_failed.emit(message)

    @Slot()
    def _on_job_cancelled(self) -> None:
        done, failed = len(self.entries("done")), len(self.entries("failed"))
        self.overall_label.setText("Cancelled")
        self.summary_label.setText(
            f"Cancelled: {done} deblurred and {failed} failed before stopping; run again with "
            "“Skip photos that already have a result” to resume."
        )
        self.batch_cancelled.emit()

    @Slot()
    def _on_job_done(self) -> None:
        self._set_running(False)

    def reject(self) -> None:
        if self.job is not None and self.job.running:
            return  # Cancel first: closing must not abandon a running batch
        super().reject()
