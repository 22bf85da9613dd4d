"""The main window: orchestrates the viewer, the panels and the engine jobs.

Nothing here computes pixels: maps, masks and restorations come from `deblurstudio.core`, run in
a worker thread (`_jobs.Job`) one job at a time; the window stays responsive (zoom, pan, mask
painting) while a job runs.
"""

from __future__ import annotations

import html
import logging
import math
import os
from pathlib import Path

import qtawesome as qta
from PySide6.QtCore import QByteArray, QPointF, QRectF, QSettings, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from deblurstudio.core import imageio
from deblurstudio.core.errors import DeblurStudioError
from deblurstudio.gui import _engine
from deblurstudio.gui._batch_dialog import BatchDialog
from deblurstudio.gui._jobs import Job, JobFactory, ProgressPanel, call_job, user_message
from deblurstudio.gui._mask import MaskDocument
from deblurstudio.gui._panels import (
    MaskPanel,
    ModelPanel,
    OverlayPanel,
    ReferencePanel,
    dropped_file,
    model_card_html,
    model_summary_html,
)
from deblurstudio.gui._qimage import Picture, TintLayer
from deblurstudio.gui._settings import (
    add_recent_file,
    last_folder,
    open_settings,
    read_float,
    read_list,
    remember_folder,
)
from deblurstudio.gui._viewer import CompareView

log = logging.getLogger(__name__)

MASK_RGB = (255, 64, 96)
MASK_OPACITY = 0.45
ENGINE_DISCOVERY_DELAY_MS = 150
PREVIEW_MAX_SIDE = 1024  # a preview deblurs at most this many px square around the view centre
IMAGE_FILTER = "Images ({})".format(
    " ".join(f"*{ext}" for ext in sorted(imageio.SUPPORTED_EXTENSIONS))
)


class _Banner(QFrame):
    """An error message across the top of the window (never a crash, never a blocking box)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setStyleSheet(
            "_Banner { background: #5c1f24; border-radius: 4px; } QLabel { color: #ffe9ea; }"
        )
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        icon = QLabel()
        icon.setPixmap(qta.icon("mdi6.alert-circle", color="#ffb4b9").pixmap(20, 20))
        close = QToolButton()
        close.setIcon(qta.icon("mdi6.close", color="#ffe9ea"))
        close.setAutoRaise(True)
        close.clicked.connect(self.hide)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 4, 4)
        layout.addWidget(icon)
        layout.addWidget(self.label, 1)
        layout.addWidget(close)
        self.hide()

    def show_message(self, text: str) -> None:
        self.label.setText(text)
        self.show()


class MainWindow(QMainWindow):
    """DeblurStudio's main window.

    Signals (emitted after the window shows the change):
        photo_opened(str): a photo was opened (its path).
        maps_changed(): new blur/motion/confidence maps are shown.
        deblur_finished(object): a deblur or preview run ended (its `_engine.DeblurOutcome`).
        job_failed(str): a job failed; the message shown in the window.
        job_cancelled(): a job was cancelled; nothing changed.
        engine_ready(): models and devices are known.
        reference_changed(str): the reference photo's path ('' when cleared).
        file_saved(str): a result or export was written.
    """

    photo_opened = Signal(str)
    maps_changed = Signal()
    deblur_finished = Signal(object)
    job_failed = Signal(str)
    job_cancelled = Signal()
    engine_ready = Signal()
    reference_changed = Signal(str)
    file_saved = Signal(str)

    def __init__(self, settings: QSettings | None = None):
        super().__init__()
        self.settings = settings if settings is not None else open_settings()
        self.photo: imageio.Photo | None = None
        self.photo_path: str | None = None
        self.outcome: _engine.DeblurOutcome | None = None  # the last full run
        self.maps = _engine.MapPictures()
        self.reference: _engine.OpenedImage | None = None
        self.engine: _engine.EngineInfo | None = None
        self.job: Job | None = None
        self._engine_job: Job | None = None
        self._run_used_mask = False
        self._mask_layer: TintLayer | None = None
        self._mask_picture: Picture | None = None
        self._deblur_model_id: str | None = None  # the non-reference model to return to

        self.setWindowTitle("DeblurStudio")
        self.setWindowIcon(qta.icon("mdi6.blur-linear", color="#4a90d9"))
        self.setAcceptDrops(True)
        self.mask = MaskDocument(self)
        self.view = CompareView()
        self.banner = _Banner()
        central = QWidget()
        central_layout = QVBoxLayout(central)
        central_layout.setContentsMargins(4, 4, 4, 4)
        central_layout.addWidget(self.banner)
        central_layout.addWidget(self.view, 1)
        self.setCentralWidget(central)

        self.model_panel = ModelPanel()
        # Deblurring speed per model id measured here this session: (megapixels/s, device).
        self._speeds: dict[str, tuple[float, str]] = {}
        self.overlay_panel = OverlayPanel()
        self.mask_panel = MaskPanel()
        self.reference_panel = ReferencePanel()
        self._docks = {}
        for name, title, panel in (
            ("model", "Model", self.model_panel),
            ("overlays", "Overlays", self.overlay_panel),
            ("mask", "Mask", self.mask_panel),
            ("reference", "Reference", self.reference_panel),
        ):
            dock = QDockWidget(title, self)
            dock.setObjectName(f"dock_{name}")
            scroller = QScrollArea()  # small screens: panels scroll rather than grow the window
            scroller.setWidget(panel)
            scroller.setWidgetResizable(True)
            scroller.setFrameShape(QFrame.Shape.NoFrame)
            scroller.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
            dock.setWidget(scroller)
            dock.setFeatures(
                QDockWidget.DockWidgetFeature.DockWidgetMovable
                | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                | QDockWidget.DockWidgetFeature.DockWidgetClosable
            )
            self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
            self._docks[name] = dock
        self.tabifyDockWidget(self._docks["model"], self._docks["reference"])
        self.tabifyDockWidget(self._docks["overlays"], self._docks["mask"])
        self._docks["model"].raise_()
        self._docks["overlays"].raise_()

        self.progress = ProgressPanel()
        self.device_label = QLabel()
        self.model_label = QLabel()
        self.last_run_label = QLabel("Last run: —")
        status = self.statusBar()
        status.addPermanentWidget(self.progress)
        for label in (self.device_label, self.model_label, self.last_run_label):
            label.setContentsMargins(8, 0, 8, 0)
            status.addPermanentWidget(label)

        self._create_actions()
        self._create_menus_and_toolbar()
        self._connect_panels()
        self._restore_settings()
        self._update_status_labels()
        self._update_actions()
        self._engine_discovery_scheduled = False

    # --- actions, menus, toolbar -------------------------------------------------------------

    def _action(
        self, text: str, icon: str | None, slot, shortcut=None, tip: str = "", checkable=False
    ) -> QAction:
        action = QAction(text, self)
        if icon:
            action.setIcon(qta.icon(icon))
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            shortcut_text = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
            action.setToolTip(f"{tip} ({shortcut_text})" if shortcut_text else tip)
            action.setStatusTip(tip)
        action.setCheckable(checkable)
        (action.toggled if checkable else action.triggered).connect(slot)
        return action

    def _create_actions(self) -> None:
        a = self._action
        self.open_action = a(
            "&Open…",
            "mdi6.folder-open",
            self._on_open_triggered,
            QKeySequence.StandardKey.Open,
            "Open a photo",
        )
        self.save_action = a(
            "&Save Result As…",
            "mdi6.content-save",
            self._on_save_triggered,
            QKeySequence.StandardKey.Save,
            "Save the deblurred photo",
        )
        self.export_blur_action = a(
            "Export &Blur Map…",
            "mdi6.image-filter-center-focus-weak",
            self._on_export_blur_triggered,
            None,
            "Save the blur probability as a grey PNG",
        )
        self.export_motion_action = a(
            "Export &Motion Picture…",
            "mdi6.axis-arrow",
            self._on_export_motion_triggered,
            None,
            "Save the motion map as a colour picture with its key",
        )
        self.export_mask_action = a(
            "Export Mas&k…",
            "mdi6.image-filter-black-white",
            self._on_save_mask_clicked,
            None,
            "Save the mask as PNG",
        )
        self.batch_action = a(
            "&Batch…",
            "mdi6.folder-multiple-image",
            self._on_batch_triggered,
            "Ctrl+B",
            "Deblur a whole folder",
        )
        self.quit_action = a("&Quit", "mdi6.exit-to-app", self.close, QKeySequence.StandardKey.Quit)
        self.deblur_action = a(
            "&Deblur",
            "mdi6.auto-fix",
            self._on_deblur_triggered,
            "Ctrl+D",
            "Deblur the whole photo",
        )
        self.preview_action = a(
            "&Preview Region",
            "mdi6.crop-free",
            self._on_preview_triggered,
            "Ctrl+Shift+D",
            "Deblur only the region in view (fast)",
        )
        self.analyse_action = a(
            "&Analyse",
            "mdi6.magnify-scan",
            self._on_analyse_triggered,
            "Ctrl+L",
            "Find where and how the photo is blurred",
        )
        self.cancel_action = a(
            "&Cancel",
            "mdi6.stop-circle-outline",
            self._on_cancel_triggered,
            "Esc",
            "Cancel the running job",
        )
        self.split_action = a(
            "&Split View",
            "mdi6.compare",
            self._on_split_toggled,
            "W",
            "Wipe between before and after with a divider",
            checkable=True,
        )
        self.fit_action = a(
            "&Fit",
            "mdi6.fit-to-screen-outline",
            self._on_fit_triggered,
            "Ctrl+0",
            "Show the whole photo",
        )
        self.actual_size_action = a(
            "&100 %",
            "mdi6.magnify-expand",
            self._on_actual_size_triggered,
            "Ctrl+1",
            "One photo pixel per screen pixel",
        )
        self.zoom_in_action = a(
            "Zoom &In",
            "mdi6.magnify-plus-outline",
            self._on_zoom_in_triggered,
            QKeySequence.StandardKey.ZoomIn,
        )
        self.zoom_out_action = a(
            "Zoom &Out",
            "mdi6.magnify-minus-outline",
            self._on_zoom_out_triggered,
            QKeySequence.StandardKey.ZoomOut,
        )
        self.about_action = a(
            "&About DeblurStudio", "mdi6.information-outline", self._on_about_triggered
        )
        self.undo_action = self.mask.undo_stack.createUndoAction(self, "Undo")
        self.undo_action.setIcon(qta.icon("mdi6.undo"))
        self.undo_action.setShortcut(QKeySequence.StandardKey.Undo)
        self.redo_action = self.mask.undo_stack.createRedoAction(self, "Redo")
        self.redo_action.setIcon(qta.icon("mdi6.redo"))
        redo_keys = QKeySequence.keyBindings(QKeySequence.StandardKey.Redo)
        for extra in ("Ctrl+Y", "Ctrl+Shift+Z"):  # both conventions, on every platform
            if QKeySequence(extra) not in redo_keys:
                redo_keys.append(QKeySequence(extra))
        self.redo_action.setShortcuts(redo_keys)
        self.tool_actions = {}
        for name, key in (("pan", "H"), ("brush", "B"), ("eraser", "E")):
            action = QAction(name.capitalize(), self)
            action.setShortcut(QKeySequence(key))
            action.triggered.connect(self.mask_panel.tool_buttons[name].click)
            self.tool_actions[name] = action
        self.smaller_brush_action = self._action(
            "Smaller Brush", None, self._on_smaller_brush_triggered, "["
        )
        self.larger_brush_action = self._action(
            "Larger Brush", None, self._on_larger_brush_triggered, "]"
        )
        self.overlay_actions = {}
        for key, check in (
            ("1", self.overlay_panel.blur_check),
            ("2", self.overlay_panel.motion_colour_check),
            ("3", self.overlay_panel.motion_lines_check),
            ("M", self.mask_panel.show_check),
        ):
            action = QAction(check.text(), self)
            action.setShortcut(QKeySequence(key))
            action.triggered.connect(check.toggle)
            self.overlay_actions[key] = action

    def _create_menus_and_toolbar(self) -> None:
        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        file_menu.addAction(self.open_action)
        self.recent_menu = file_menu.addMenu(qta.icon("mdi6.history"), "Open &Recent")
        self.recent_menu.aboutToShow.connect(self._on_recent_menu_about_to_show)
        file_menu.addSeparator()
        for action in (
            self.save_action,
            self.export_blur_action,
            self.export_motion_action,
            self.export_mask_action,
        ):
            file_menu.addAction(action)
        file_menu.addSeparator()
        file_menu.addAction(self.batch_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        edit_menu = menu.addMenu("&Edit")
        edit_menu.addAction(self.undo_action)
        edit_menu.addAction(self.redo_action)
        edit_menu.addSeparator()
        for action in (
            *self.tool_actions.values(),
            self.smaller_brush_action,
            self.larger_brush_action,
        ):
            edit_menu.addAction(action)
        view_menu = menu.addMenu("&View")
        for action in (
            self.split_action,
            self.fit_action,
            self.actual_size_action,
            self.zoom_in_action,
            self.zoom_out_action,
        ):
            view_menu.addAction(action)
        view_menu.addSeparator()
        for action in self.overlay_actions.values():
            view_menu.addAction(action)
        view_menu.addSeparator()
        for dock in self._docks.values():
            view_menu.addAction(dock.toggleViewAction())
        process_menu = menu.addMenu("&Process")
        for action in (
            self.deblur_action,
            self.preview_action,
            self.analyse_action,
            self.cancel_action,
        ):
            process_menu.addAction(action)
        help_menu = menu.addMenu("&Help")
        help_menu.addAction(self.about_action)

        toolbar = self.addToolBar("Main")
        toolbar.setObjectName("toolbar_main")
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for action in (
            self.open_action,
            self.save_action,
            None,
            self.deblur_action,
            self.preview_action,
            self.analyse_action,
            None,
            self.split_action,
            self.fit_action,
            self.actual_size_action,
            None,
            self.batch_action,
        ):
            if action is None:
                toolbar.addSeparator()
            else:
                toolbar.addAction(action)
        self.mask_panel.undo_button.setDefaultAction(self.undo_action)
        self.mask_panel.redo_button.setDefaultAction(self.redo_action)

    def _connect_panels(self) -> None:
        overlays = self.overlay_panel
        overlays.analyse_button.clicked.connect(self.analyse_action.trigger)
        for check in (
            overlays.blur_check,
            overlays.motion_colour_check,
            overlays.motion_lines_check,
            overlays.confidence_check,
        ):
            check.toggled.connect(self._on_overlay_toggled)
        for row in (overlays.blur_opacity, overlays.motion_opacity, overlays.confidence_opacity):
            row.slider.valueChanged.connect(self._on_opacity_value_changed)
        self.view.hovered.connect(self._on_view_hovered)
        self.view.stroke_started.connect(self._on_view_stroke_started)
        self.view.stroke_moved.connect(self._on_view_stroke_moved)
        self.view.stroke_finished.connect(self._on_view_stroke_finished)
        masks = self.mask_panel
        masks.tool_group.buttonToggled.connect(self._on_tool_button_toggled)
        masks.size.slider.valueChanged.connect(self._on_brush_value_changed)
        masks.threshold_button.clicked.connect(self._on_threshold_clicked)
        masks.threshold.slider.valueChanged.connect(self._on_threshold_value_changed)
        masks.invert_button.clicked.connect(self.mask.invert)
        masks.clear_button.clicked.connect(self.mask.clear)
        masks.save_button.clicked.connect(self._on_save_mask_clicked)
        masks.load_button.clicked.connect(self._on_load_mask_clicked)
        masks.show_check.toggled.connect(self._on_overlay_toggled)
        self.mask.changed.connect(self._on_mask_changed)
        self.mask.undo_stack.indexChanged.connect(self._on_mask_edited)
        references = self.reference_panel
        references.choose_button.clicked.connect(self._on_choose_reference_clicked)
        references.clear_button.clicked.connect(self.clear_reference)
        references.file_dropped.connect(self.load_reference)
        self.model_panel.model_combo.currentIndexChanged.connect(self._on_model_changed)
        self.model_panel.device_combo.currentIndexChanged.connect(self._on_device_changed)

    # --- settings ----------------------------------------------------------------------------

    def _restore_settings(self) -> None:
        s = self.settings
        geometry = s.value("window/geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        else:
            self.resize(1400, 860)
        state = s.value("window/state")
        if isinstance(state, QByteArray) and not state.isEmpty():
            self.restoreState(state)
        else:
            self.resizeDocks(
                [self._docks["model"], self._docks["overlays"]], [290, 550], Qt.Orientation.Vertical
            )
        self.split_action.setChecked(str(s.value("view/split", "false")).lower() == "true")
        overlays = self.overlay_panel
        for key, row in (
            ("blur", overlays.blur_opacity),
            ("motion", overlays.motion_opacity),
            ("confidence", overlays.confidence_opacity),
        ):
            row.slider.setValue(round(100 * read_float(s, f"overlays/{key}_opacity", 0.6)))
        self.mask_panel.size.slider.setValue(round(read_float(s, "mask/brush_size", 40)))
        self.mask_panel.feather.slider.setValue(round(read_float(s, "mask/feather", 8)))
        self.model_panel.set_devices([("Automatic", "auto")], str(s.value("device", "auto")))

    def _save_settings(self) -> None:
        s = self.settings
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState())
        s.setValue("view/split", self.split_action.isChecked())
        s.setValue("mask/brush_size", self.mask_panel.size.slider.value())
        s.setValue("mask/feather", self.mask_panel.feather.slider.value())
        s.sync()

    # --- engine discovery --------------------------------------------------------------------

    def showEvent(self, event) -> None:  # noqa: N802 — Qt override
        super().showEvent(event)
        if not self._engine_discovery_scheduled:
            # torch loads in the discovery job's thread once the window is on screen: started
            # earlier, the import would compete with the first paint for the interpreter.
            self._engine_discovery_scheduled = True
            QTimer.singleShot(ENGINE_DISCOVERY_DELAY_MS, self._start_engine_discovery)

    @Slot()
    def _start_engine_discovery(self) -> None:
        job = Job(call_job(_engine.discover_engine), "Loading models", self)
        job.finished.connect(self._on_engine_job_finished)
        job.failed.connect(self._on_engine_job_failed)
        self._engine_job = job
        job.start()

    @Slot(object)
    def _on_engine_job_finished(self, info: _engine.EngineInfo) -> None:
        self.engine = info
        self.model_panel.set_devices(info.devices, str(self.settings.value("device", "auto")))
        combo = self.model_panel.model_combo
        combo.blockSignals(True)
        combo.clear()
        for entry in info.models:
            if entry.task in ("deblur", "reference"):
                icon = (
                    "mdi6.image-multiple-outline" if entry.task == "reference" else "mdi6.auto-fix"
                )
                combo.addItem(qta.icon(icon), f"{entry.title} ({entry.id})", entry.id)
        combo.setPlaceholderText("No models installed" if combo.count() == 0 else "")
        combo.blockSignals(False)
        saved = str(self.settings.value("model", "") or "")
        self._deblur_model_id = saved if self._entry(saved) else info.defaults.get("deblur")
        if self.reference is not None and info.defaults.get("reference"):
            self._select_model(info.defaults["reference"])
        else:
            self._select_model(self._deblur_model_id)
        if not info.models:
            self.banner.show_message(
                "No models are installed: train and export one (see the README), or point "
                "DEBLURSTUDIO_MODELS_DIR at a folder of checkpoints."
            )
        self._on_model_changed(combo.currentIndex())
        self.engine_ready.emit()

    @Slot(object)
    def _on_engine_job_failed(self, exc: BaseException) -> None:
        self.banner.show_message(f"Could not list the models: {user_message(exc)}")

    def _entry(self, model_id: str | None):
        if self.engine is None or not model_id:
            return None
        return next((e for e in self.engine.models if e.id == model_id), None)

    def _show_model_card(self, entry) -> None:
        panel = self.model_panel
        speed = self._speeds.get(entry.id) if entry else None
        panel.summary.setText(model_summary_html(entry, speed) if entry else "")
        panel.card.setHtml(model_card_html(entry) if entry else "")

    def _select_model(self, model_id: str | None) -> None:
        combo = self.model_panel.model_combo
        index = combo.findData(model_id) if model_id else -1
        if index >= 0:
            combo.setCurrentIndex(index)

    def selected_model_id(self) -> str | None:
        """The chosen model, or None (the pipeline's default) while models are loading."""
        return self.model_panel.model_combo.currentData()

    @Slot(int)
    def _on_model_changed(self, index: int) -> None:
        entry = self._entry(self.selected_model_id())
        self._show_model_card(entry)
        if entry is not None and entry.task == "deblur":
            self._deblur_model_id = entry.id
            self.settings.setValue("model", entry.id)
        self._update_reference_note()
        self._update_status_labels()

    @Slot(int)
    def _on_device_changed(self, index: int) -> None:
        self.settings.setValue("device", self.model_panel.device())
        self._update_status_labels()

    def _update_status_labels(self, ran_on: str | None = None) -> None:
        device = ran_on or self.model_panel.device_combo.currentText()
        self.device_label.setText(f"Device: {device}")
        entry = self._entry(self.selected_model_id())
        self.model_label.setText(f"Model: {entry.title if entry else 'default'}")

    # --- jobs --------------------------------------------------------------------------------

    def busy(self) -> bool:
        return self.job is not None

    def _run_job(self, factory: JobFactory, title: str, on_finished) -> Job | None:
        if self.busy():
            self.statusBar().showMessage("Busy: wait for the running job or cancel it (Esc)", 4000)
            return None
        self.banner.hide()
        job = Job(factory, title, self)
        job.finished.connect(on_finished)
        job.failed.connect(self._on_job_failed)
        job.cancelled.connect(self._on_job_cancelled)
        job.done.connect(self._on_job_done)
        self.job = job
        self.progress.track(job)
        self._update_actions()
        job.start()
        return job

    @Slot(object)
    def _on_job_failed(self, exc: BaseException) -> None:
        if not isinstance(exc, DeblurStudioError):
            log.error("job failed", exc_info=exc)
        message = user_message(exc)
        self.banner.show_message(message)
        self.statusBar().showMessage("Failed", 5000)
        self.job_failed.emit(message)

    @Slot()
    def _on_job_cancelled(self) -> None:
        self.statusBar().showMessage("Cancelled — nothing was changed", 5000)
        self.job_cancelled.emit()

    @Slot()
    def _on_job_done(self) -> None:
        self.job = None
        self._update_actions()

    @Slot()
    def _on_cancel_triggered(self) -> None:
        if self.job is not None:
            self.progress.cancel_button.click()

    def _update_actions(self) -> None:
        idle = not self.busy()
        has_photo = self.photo is not None
        for action in (self.open_action, self.batch_action):
            action.setEnabled(idle)
        for action in (self.deblur_action, self.preview_action, self.analyse_action):
            action.setEnabled(idle and has_photo)
        self.save_action.setEnabled(idle and self.outcome is not None)
        self.export_blur_action.setEnabled(idle and self.maps.blur_probability is not None)
        self.export_motion_action.setEnabled(idle and self.maps.motion_map is not None)
        self.export_mask_action.setEnabled(has_photo)
        self.cancel_action.setEnabled(not idle)
        self.overlay_panel.analyse_button.setEnabled(idle and has_photo)
        self.reference_panel.choose_button.setEnabled(idle)
        self.mask_panel.setEnabled(has_photo)
        self.mask_panel.threshold_button.setEnabled(self.maps.blur_probability is not None)
        self.overlay_panel.confidence_check.setEnabled(self.maps.confidence is not None)

    # --- opening photos ----------------------------------------------------------------------

    @Slot()
    def _on_open_triggered(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open photo", last_folder(self.settings, "open"), IMAGE_FILTER
        )
        if path:
            self.open_photo(path)

    def open_photo(self, path: str) -> None:
        """Decode `path` in a worker, then show it (the window stays responsive meanwhile)."""
        remember_folder(self.settings, "open", path)
        self._run_job(
            call_job(_engine.open_image, os.fspath(path)),
            f"Opening {Path(path).name}",
            self._on_open_job_finished,
        )

    @Slot(object)
    def _on_open_job_finished(self, opened: _engine.OpenedImage) -> None:
        self.photo = opened.photo
        self.photo_path = opened.path
        self.outcome = None
        self.maps = _engine.MapPictures()
        height, width = opened.photo.pixels.shape[:2]
        self._mask_layer = None  # a fresh layer is already empty: no need to redraw it on reset
        self.mask.reset((height, width))
        self._mask_layer = TintLayer((height, width), MASK_RGB)
        self._mask_picture = self._mask_layer.picture()
        self.mask_panel.use_check.setChecked(False)
        self.view.set_photo(opened.picture)
        self.overlay_panel.motion_key.set_scale(None)
        self._refresh_overlays()
        add_recent_file(self.settings, opened.path)
        depth = f"{opened.photo.bit_depth}-bit {opened.photo.format}"
        self.setWindowTitle(f"{Path(opened.path).name} — DeblurStudio")
        self.statusBar().showMessage(f"Opened {opened.path} ({width}×{height} px, {depth})", 5000)
        if opened.photo.warnings:
            warnings = "; ".join(opened.photo.warnings)
            self.banner.show_message(f"{Path(opened.path).name}: {warnings}")
        self._update_actions()
        self.photo_opened.emit(opened.path)

    @Slot()
    def _on_recent_menu_about_to_show(self) -> None:
        self.recent_menu.clear()
        recent = read_list(self.settings, "recent_files")
        for path in recent:
            action = self.recent_menu.addAction(Path(path).name)
            action.setToolTip(path)
            action.setEnabled(not self.busy() and os.path.exists(path))
            action.triggered.connect(lambda _checked=False, p=path: self.open_photo(p))
        if not recent:
            self.recent_menu.addAction("No recent photos").setEnabled(False)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 — Qt override
        if dropped_file(event):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 — Qt override
        path = dropped_file(event)
        if path:
            event.acceptProposedAction()
            self.open_photo(path)

    # --- analysis and overlays ---------------------------------------------------------------

    @Slot()
    def _on_analyse_triggered(self) -> None:
        if self.photo is not None:
            self._run_job(
                _engine.analyse_job(self.photo.pixels, self.model_panel.device()),
                "Analysing",
                self._on_analyse_job_finished,
            )

    @Slot(object)
    def _on_analyse_job_finished(self, maps: _engine.MapPictures) -> None:
        self._show_maps(maps)
        if not any(
            check.isChecked()
            for check in (
                self.overlay_panel.blur_check,
                self.overlay_panel.motion_colour_check,
                self.overlay_panel.motion_lines_check,
            )
        ):
            self.overlay_panel.blur_check.setChecked(True)  # show what was asked for

    def _show_maps(self, maps: _engine.MapPictures) -> None:
        self.maps = maps
        self.overlay_panel.motion_key.set_scale(maps.motion_scale)
        if maps.confidence is None:
            self.overlay_panel.confidence_check.setChecked(False)
        self._refresh_overlays()
        self._update_actions()
        self.maps_changed.emit()

    @Slot(bool)
    def _on_overlay_toggled(self, checked: bool) -> None:
        wants_maps = (
            self.overlay_panel.blur_check.isChecked()
            or self.overlay_panel.motion_colour_check.isChecked()
            or self.overlay_panel.motion_lines_check.isChecked()
        )
        if checked and wants_maps and self.maps.blur_probability is None and not self.busy():
            self._on_analyse_triggered()  # the maps do not exist yet: make them
        self._refresh_overlays()

    @Slot(int)
    def _on_opacity_value_changed(self, value: int) -> None:
        overlays = self.overlay_panel
        for key, row in (
            ("blur", overlays.blur_opacity),
            ("motion", overlays.motion_opacity),
            ("confidence", overlays.confidence_opacity),
        ):
            self.settings.setValue(f"overlays/{key}_opacity", row.slider.value() / 100)
        self._refresh_overlays()

    def _refresh_overlays(self) -> None:
        panel, maps = self.overlay_panel, self.maps
        self.view.set_overlay(
            "blur",
            maps.blur if panel.blur_check.isChecked() else None,
            panel.blur_opacity.slider.value() / 100,
        )
        self.view.set_overlay(
            "motion",
            maps.motion if panel.motion_colour_check.isChecked() else None,
            panel.motion_opacity.slider.value() / 100,
        )
        self.view.set_glyphs(maps.glyphs if panel.motion_lines_check.isChecked() else None)
        self.view.set_overlay(
            "confidence",
            maps.confidence if panel.confidence_check.isChecked() else None,
            panel.confidence_opacity.slider.value() / 100,
            side="after",
        )
        show_mask = self.mask_panel.show_check.isChecked() and self._mask_picture is not None
        self.view.set_overlay(
            "mask", self._mask_picture if show_mask else None, MASK_OPACITY, smooth=False
        )

    @Slot(object)
    def _on_view_hovered(self, point: QPointF | None) -> None:
        text = self.readout_at(point)
        self.overlay_panel.readout.setText(text)
        if point is not None and (
            self.maps.blur_probability is not None or self.maps.motion_map is not None
        ):
            self.statusBar().showMessage(text)  # also visible while the Overlays panel is hidden

    def readout_at(self, point: QPointF | None) -> str:
        """What the maps say at image point `point` (image px)."""
        if point is None or self.photo is None:
            return "Hover over the photo to read the maps"
        height, width = self.photo.pixels.shape[:2]
        x, y = int(point.x()), int(point.y())
        if not (0 <= x < width and 0 <= y < height):
            return "Hover over the photo to read the maps"
        parts = [f"x {x}, y {y}"]
        if self.maps.blur_probability is not None:
            parts.append(f"blur probability {self.maps.blur_probability[y, x]:.2f}")
        if self.maps.motion_map is not None:
            dx, dy = (float(v) for v in self.maps.motion_map[y, x])
            length = (dx * dx + dy * dy) ** 0.5
            if round(length, 1) == 0:  # a direction of no motion would be noise
                parts.append("motion none")
            else:
                angle = math.degrees(math.atan2(dy, dx)) % 180.0  # blur has no sign
                parts.append(
                    f"motion {length:.1f} px at {angle:.0f}° (dx {dx:+.1f}, dy {dy:+.1f})"
                )
        if self.maps.reference_confidence is not None:
            parts.append(f"reference confidence {self.maps.reference_confidence[y, x]:.2f}")
        return " · ".join(parts)

    # --- mask --------------------------------------------------------------------------------

    def _brush(self) -> tuple[float, float]:
        """Brush radius and feather in image px."""
        return self.mask_panel.size.slider.value() / 2, float(
            self.mask_panel.feather.slider.value()
        )

    @Slot(object, bool)
    def _on_tool_button_toggled(self, button, checked: bool) -> None:
        if checked:
            tool = self.mask_panel.tool()
            self.view.set_tool(tool, self._brush()[0])
            if tool != "pan" and not self.mask_panel.show_check.isChecked():
                self.mask_panel.show_check.setChecked(True)

    @Slot(int)
    def _on_brush_value_changed(self, value: int) -> None:
        self.view.set_tool(self.mask_panel.tool(), self._brush()[0])

    @Slot()
    def _on_smaller_brush_triggered(self) -> None:
        slider = self.mask_panel.size.slider
        slider.setValue(max(slider.minimum(), round(slider.value() / 1.25)))

    @Slot()
    def _on_larger_brush_triggered(self) -> None:
        slider = self.mask_panel.size.slider
        slider.setValue(min(slider.maximum(), round(slider.value() * 1.25) + 1))

    @Slot(QPointF)
    def _on_view_stroke_started(self, point: QPointF) -> None:
        if self.photo is None:
            return
        self.mask.begin_stroke(erase=self.mask_panel.tool() == "eraser")
        self._on_view_stroke_moved(point, point)  # a click paints one dab

    @Slot(QPointF, QPointF)
    def _on_view_stroke_moved(self, start: QPointF, end: QPointF) -> None:
        radius, feather = self._brush()
        self.mask.stroke_to((start.x(), start.y()), (end.x(), end.y()), radius, feather)

    @Slot()
    def _on_view_stroke_finished(self) -> None:
        self.mask.end_stroke()

    @Slot(object)
    def _on_mask_changed(self, region) -> None:
        if self._mask_layer is not None:
            self._mask_layer.update(self.mask.mask, region)
            for canvas in self.view.canvases():
                canvas.update()

    @Slot(int)
    def _on_mask_edited(self, index: int) -> None:
        # Any edit means the user wants the mask used; they can still untick it.
        if index > 0:
            self.mask_panel.use_check.setChecked(True)

    @Slot()
    def _on_threshold_clicked(self) -> None:
        if self.maps.blur_probability is not None:
            threshold = self.mask_panel.threshold.slider.value() / 100
            self.mask.set_from_probability(self.maps.blur_probability, threshold)
            self.mask_panel.show_check.setChecked(True)

    @Slot(int)
    def _on_threshold_value_changed(self, value: int) -> None:
        if self.maps.blur_probability is not None and self.mask.last_edit_was_threshold():
            self.mask.set_from_probability(self.maps.blur_probability, value / 100)

    @Slot()
    def _on_save_mask_clicked(self) -> None:
        if self.photo is None:
            return
        path = self._ask_save_path("Save mask", "_mask.png", "PNG images (*.png)")
        if path:
            self._run_job(
                call_job(_engine.export_mask, path, self.mask.mask.copy()),
                "Saving mask",
                self._on_save_job_finished,
            )

    @Slot()
    def _on_load_mask_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Load mask", last_folder(self.settings, "mask"), IMAGE_FILTER
        )
        if path:
            self.load_mask(path)

    def load_mask(self, path: str) -> None:
        """Replace the mask by a PNG (resized to the photo); an undoable edit."""
        remember_folder(self.settings, "mask", path)
        height, width = self.mask.shape
        try:
            self.mask.set_mask(imageio.read_mask(path, size=(width, height)))
        except DeblurStudioError as exc:
            self.banner.show_message(user_message(exc))

    # --- reference ---------------------------------------------------------------------------

    @Slot()
    def _on_choose_reference_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Choose a sharp reference photo",
            last_folder(self.settings, "reference"),
            IMAGE_FILTER,
        )
        if path:
            self.load_reference(path)

    @Slot(str)
    def load_reference(self, path: str) -> None:
        """Read a reference photo in a worker; then show its thumbnail and pick the reference
        model."""
        remember_folder(self.settings, "reference", path)
        self._run_job(
            call_job(_engine.open_image, os.fspath(path)),
            f"Opening reference {Path(path).name}",
            self._on_reference_job_finished,
        )

    @Slot(object)
    def _on_reference_job_finished(self, opened: _engine.OpenedImage) -> None:
        self.reference = opened
        self.reference_panel.set_reference(opened.path, opened.thumbnail)
        if self.engine is not None and self.engine.defaults.get("reference"):
            self._select_model(self.engine.defaults["reference"])
        self._update_reference_note()
        self._docks["reference"].raise_()
        self.reference_changed.emit(opened.path)

    @Slot()
    def clear_reference(self) -> None:
        self.reference = None
        self.reference_panel.set_reference(None, None)
        entry = self._entry(self.selected_model_id())
        if entry is not None and entry.task == "reference":
            self._select_model(self._deblur_model_id)
        self._update_reference_note()
        self.reference_changed.emit("")

    def _update_reference_note(self) -> None:
        entry = self._entry(self.selected_model_id())
        if self.reference is None:
            text = "With a reference, the reference model is used."
        elif entry is not None and entry.task != "reference":
            text = f"“{entry.title}” does not use a reference: pick a reference model to use it."
        else:
            text = f"Used by “{entry.title if entry else 'the reference model'}”."
        self.reference_panel.model_note.setText(text)

    # --- deblurring --------------------------------------------------------------------------

    @Slot()
    def _on_deblur_triggered(self) -> None:
        self.start_deblur(preview=False)

    @Slot()
    def _on_preview_triggered(self) -> None:
        self.start_deblur(preview=True)

    def start_deblur(self, preview: bool = False) -> Job | None:
        """Deblur the photo (or, for a preview, the region in view) in a worker."""
        if self.photo is None:
            return None
        mask = None
        if self.mask_panel.use_check.isChecked():
            if self.mask.is_empty():
                self.banner.show_message(
                    "The mask is empty: paint where to deblur, or untick “Deblur only inside "
                    "the mask”."
                )
                return None
            mask = self.mask.mask.copy()
        entry = self._entry(self.selected_model_id())
        uses_reference = entry.task == "reference" if entry else self.reference is not None
        reference = self.reference.photo.pixels if self.reference and uses_reference else None
        region = self.preview_region() if preview else None
        self._run_used_mask = mask is not None
        title = "Previewing the region in view" if preview else "Deblurring"
        return self._run_job(
            _engine.deblur_job(
                self.photo.pixels,
                model_id=self.selected_model_id(),
                mask=mask,
                reference=reference,
                device=self.model_panel.device(),
                region=region,
                motion_map=self.maps.motion_map,  # the photo's, from its analysis if it ran
            ),
            title,
            self._on_deblur_job_finished,
        )

    def preview_region(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) in image px: the region in view, at most PREVIEW_MAX_SIDE square
        around the view's centre."""
        height, width = self.photo.pixels.shape[:2]
        visible = self.view.visible_image_rect()
        if visible.isEmpty():
            visible = QRectF(0, 0, width, height)
        centre = visible.center()
        half_w = min(visible.width(), PREVIEW_MAX_SIDE) / 2
        half_h = min(visible.height(), PREVIEW_MAX_SIDE) / 2
        x0 = max(0, int(centre.x() - half_w))
        y0 = max(0, int(centre.y() - half_h))
        x1 = min(width, max(x0 + 1, int(round(centre.x() + half_w))))
        y1 = min(height, max(y0 + 1, int(round(centre.y() + half_h))))
        return x0, y0, x1, y1

    @Slot(object)
    def _on_deblur_job_finished(self, outcome: _engine.DeblurOutcome) -> None:
        result = outcome.result
        if outcome.region is None:
            self.outcome = outcome
            maps = outcome.maps
            if self._run_used_mask and self.maps.blur_probability is not None:
                # The run's "blur probability" is the mask itself; keep the photo's analysis.
                maps.blur_probability, maps.blur = self.maps.blur_probability, self.maps.blur
            self.view.set_result(outcome.after)
            self._show_maps(maps)
            if maps.confidence is not None:
                self.overlay_panel.confidence_check.setChecked(True)
            message = f"Deblurred in {result.seconds:.1f} s"
        else:
            self.outcome = None
            x0, y0, x1, y1 = outcome.region
            self.view.set_result(outcome.after, QRectF(x0, y0, x1 - x0, y1 - y0))
            message = (
                f"Preview of {x1 - x0}×{y1 - y0} px in {result.seconds:.1f} s — press "
                "Deblur for the whole photo"
            )
        self.last_run_label.setText(f"Last run: {result.seconds:.1f} s")
        height, width = result.restored.shape[:2]
        self._speeds[result.model_id] = (width * height / 1e6 / result.seconds, result.device)
        self._select_model(result.model_id)
        self._show_model_card(self._entry(result.model_id))
        if result.warning is not None:  # the reference was not used (the only warning)
            self.banner.show_message(f"{result.warning[0].upper()}{result.warning[1:]}.")
            self.reference_panel.model_note.setText("Not used: it shows another scene.")
        self._update_status_labels(ran_on=result.device)
        self.statusBar().showMessage(message, 8000)
        self._update_actions()
        self.deblur_finished.emit(outcome)

    # --- saving and exporting ----------------------------------------------------------------

    def _ask_save_path(self, title: str, suffix: str, filters: str) -> str:
        """Ask where to save something made from the open photo: the dialog starts beside the
        photo (absolute, so a photo opened by a relative path does not start in the working
        folder), whatever folder was used last."""
        photo = Path(self.photo_path).resolve()
        path, _ = QFileDialog.getSaveFileName(
            self, title, str(photo.with_name(f"{photo.stem}{suffix}")), filters
        )
        return path

    @Slot()
    def _on_save_triggered(self) -> None:
        if self.outcome is None:
            return
        suffix = Path(self.photo_path).suffix.lower() or ".png"
        path = self._ask_save_path(
            "Save deblurred photo",
            f"_deblurred{suffix}",
            f"Same as the original (*{suffix});;{IMAGE_FILTER}",
        )
        if path:
            self.save_result(path)

    def is_original(self, path: str) -> bool:
        """True when `path` names the open photo's own file."""
        if self.photo_path is None or not os.path.exists(path):
            return False
        try:
            return os.path.samefile(path, self.photo_path)
        except OSError:
            return False

    def save_result(self, path: str) -> Job | None:
        """Write the result to `path` in a worker (format from the extension; EXIF, ICC and bit
        depth of the original kept). Overwriting the original needs the user's yes."""
        if self.outcome is None:
            return None
        allow = False
        if self.is_original(path):
            answer = QMessageBox.question(
                self,
                "Replace the original?",
                f"{Path(path).name} is the original photo. Replace it with the deblurred "
                "result? This cannot be undone.",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.No,
            )
            if answer != QMessageBox.StandardButton.Yes:
                self.statusBar().showMessage("Not saved: the original was left as it is", 5000)
                return None
            allow = True
        return self._run_job(
            call_job(_engine.save_result, path, self.photo, self.outcome.result.restored, allow),
            f"Saving {Path(path).name}",
            self._on_save_job_finished,
        )

    @Slot(object)
    def _on_save_job_finished(self, path: str) -> None:
        self.statusBar().showMessage(f"Saved {path}", 5000)
        self.file_saved.emit(path)

    @Slot()
    def _on_export_blur_triggered(self) -> None:
        if self.maps.blur_probability is None:
            return
        path = self._ask_save_path(
            "Export blur map", "_blurmap.png", "PNG images (*.png)"
        )
        if path:
            self._run_job(
                call_job(_engine.export_mask, path, self.maps.blur_probability),
                "Exporting blur map",
                self._on_save_job_finished,
            )

    @Slot()
    def _on_export_motion_triggered(self) -> None:
        if self.maps.motion_map is None:
            return
        path = self._ask_save_path(
            "Export motion picture", "_motion.png", "PNG images (*.png)"
        )
        if path:
            self._run_job(
                call_job(_engine.export_motion, path, self.maps.motion_map),
                "Exporting motion picture",
                self._on_save_job_finished,
            )

    # --- view --------------------------------------------------------------------------------

    @Slot(bool)
    def _on_split_toggled(self, checked: bool) -> None:
        self.view.set_split(checked)

    @Slot()
    def _on_fit_triggered(self) -> None:
        self.view.fit()

    @Slot()
    def _on_actual_size_triggered(self) -> None:
        self.view.zoom_to(1.0)

    @Slot()
    def _on_zoom_in_triggered(self) -> None:
        self.view.zoom_to(self.view.state.scale * 1.25)

    @Slot()
    def _on_zoom_out_triggered(self) -> None:
        self.view.zoom_to(self.view.state.scale / 1.25)

    # --- batch, about, closing ---------------------------------------------------------------

    @Slot()
    def _on_batch_triggered(self) -> None:
        self.open_batch_dialog()

    def open_batch_dialog(self) -> BatchDialog:
        """Show the (window-modal) batch dialog and return it."""
        dialog = BatchDialog(
            self.settings,
            self.engine.models if self.engine else [],
            self.selected_model_id(),
            self.model_panel.device(),
            self.reference.path if self.reference else None,
            self,
        )
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    def about_html(self) -> str:
        from deblurstudio import __version__

        versions = dict(self.engine.versions) if self.engine else {"DeblurStudio": __version__}
        rows = "".join(
            f"<tr><td>{html.escape(k)}&nbsp;&nbsp;</td><td>{html.escape(v)}</td></tr>"
            for k, v in versions.items()
        )
        if self.engine is None:
            models = "<p>Models are still loading…</p>"
        elif not self.engine.models:
            models = "<p>No models installed.</p>"
        else:
            items = "".join(
                f"<li><b>{html.escape(e.title)}</b> (<code>{html.escape(e.id)}</code>, "
                f"{html.escape(e.arch)}, {html.escape(e.task)}"
                + (f", {e.card['steps']} training steps" if "steps" in (e.card or {}) else "")
                + ")</li>"
                for e in self.engine.models
            )
            models = f"<p><b>Installed models</b></p><ul>{items}</ul>"
        return (
            f"<h3>DeblurStudio {html.escape(__version__)}</h3>"
            "<p>See where and how a photo is motion-blurred, and deblur only there.</p>"
            f"<table>{rows}</table>{models}"
        )

    @Slot()
    def _on_about_triggered(self) -> None:
        QMessageBox.about(self, "About DeblurStudio", self.about_html())

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 — Qt override
        self._save_settings()
        for job in (self.job, self._engine_job):
            if job is not None and job.running:
                job.cancel()
                job.wait()
        super().closeEvent(event)
