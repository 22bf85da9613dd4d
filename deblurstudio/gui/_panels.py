"""Side panels of the main window: model & device, overlays, mask tool, reference picker.

Panels only hold widgets and say what the user did (signals, widget state); the main window
decides what happens.
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

import numpy as np
import qtawesome as qta
from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QDragEnterEvent,
    QDropEvent,
    QImage,
    QPainter,
    QPaintEvent,
    QPixmap,
)
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from deblurstudio.core import visualise
from deblurstudio.gui._qimage import rgba_to_qimage


def _slider(minimum: int, maximum: int, value: int) -> QSlider:
    slider = QSlider(Qt.Orientation.Horizontal)
    slider.setRange(minimum, maximum)
    slider.setValue(value)
    return slider


def dropped_file(event: QDragEnterEvent | QDropEvent) -> str | None:
    """The local file path dragged in `event`, or None when it carries no local file."""
    urls = event.mimeData().urls() if event.mimeData().hasUrls() else []
    paths = [url.toLocalFile() for url in urls if url.isLocalFile()]
    return paths[0] if paths else None


class _SliderRow(QWidget):
    """A slider with its value shown as text on its right."""

    def __init__(self, minimum: int, maximum: int, value: int, unit: str = ""):
        super().__init__()
        self.slider = _slider(minimum, maximum, value)
        self._unit = unit
        self._value_label = QLabel()
        self._value_label.setMinimumWidth(44)
        self._value_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self._value_label)
        self.slider.valueChanged.connect(self._on_slider_value_changed)
        self._on_slider_value_changed(value)

    def _on_slider_value_changed(self, value: int) -> None:
        self._value_label.setText(f"{value}{self._unit}")


class HeatmapLegend(QWidget):
    """The colour ramp of the blur map, from sharp (0) to blurred (1), with tick labels."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        legend = visualise.heatmap_legend(steps=256)
        ramp = np.ascontiguousarray(np.repeat(legend.ramp[None, :, :], 2, axis=0))
        rgba = np.concatenate([ramp, np.full(ramp.shape[:2] + (1,), 255, np.uint8)], axis=2)
        self._ramp = rgba_to_qimage(rgba)
        self._ticks = legend.ticks
        self.setMinimumHeight(50)

    def sizeHint(self) -> QSize:  # noqa: N802 — Qt override
        return QSize(200, 50)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 — Qt override
        painter = QPainter(self)
        bar = QRectF(6, 2, self.width() - 12, 12)
        painter.drawImage(bar, self._ramp)
        painter.setPen(self.palette().text().color())
        metrics = painter.fontMetrics()
        for tick in self._ticks:
            x = bar.left() + tick * bar.width()
            painter.drawLine(round(x), round(bar.bottom()), round(x), round(bar.bottom() + 3))
            label = f"{tick:g}"
            width = metrics.horizontalAdvance(label)
            left = min(max(x - width / 2, 0), self.width() - width)
            painter.drawText(round(left), round(bar.bottom() + 4 + metrics.ascent()), label)
        words = QRectF(0, bar.bottom() + 4 + metrics.height(), self.width(), metrics.height())
        painter.drawText(words, Qt.AlignmentFlag.AlignLeft, "sharp")
        painter.drawText(words, Qt.AlignmentFlag.AlignRight, "blurred")


class MotionKey(QWidget):
    """The key of the motion overlay: the colour wheel (hue = orientation, saturation = length,
    rim = the scale in px) and the glyph scale."""

    _WHEEL = 64

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._wheel: QImage | None = None
        self.max_length = 0.0
        self.setMinimumHeight(self._WHEEL + 4)

    def sizeHint(self) -> QSize:  # noqa: N802 — Qt override
        return QSize(200, self._WHEEL + 4)

    def set_scale(self, max_length: float | None) -> None:
        """Motion length in px drawn at full saturation / as a full-length glyph; None = no map."""
        self.max_length = max_length or 0.0
        self._wheel = (
            rgba_to_qimage(visualise.motion_color_wheel(self._WHEEL, max_length))
            if max_length
            else None
        )
        self._fit_height()
        self.update()

    def _text_rect(self) -> QRectF:
        left = self._WHEEL + 10 if self._wheel is not None else 2
        return QRectF(left, 0, max(1, self.width() - left), self.height())

    def _fit_height(self) -> None:
        """Grow to the wrapped text's height: in a narrow dock it wraps to more lines than the
        wheel is tall, and a fixed height cut them off."""
        rect = self._text_rect().toRect()
        rect.setHeight(10_000)
        flags = int(Qt.AlignmentFlag.AlignLeft | Qt.TextFlag.TextWordWrap)
        needed = self.fontMetrics().boundingRect(rect, flags, self.text()).height() + 4
        self.setMinimumHeight(max(self._WHEEL + 4, needed))

    def resizeEvent(self, event) -> None:  # noqa: N802 — Qt override
        super().resizeEvent(event)
        self._fit_height()

    def text(self) -> str:
        if not self.max_length:
            return "No motion map yet"
        return (
            f"Colour: hue = blur direction, white = none, rim = {self.max_length:.1f} px.\n"
            f"Lines: as long as their grid cell = {self.max_length:.1f} px of blur."
        )

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 — Qt override
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        if self._wheel is not None:
            painter.drawImage(QRectF(2, 2, self._WHEEL, self._WHEEL), self._wheel)
        painter.setPen(self.palette().text().color())
        painter.drawText(
            self._text_rect(),
            Qt.AlignmentFlag.AlignVCenter | Qt.TextFlag.TextWordWrap,
            self.text(),
        )


class ModelPanel(QWidget):
    """Model and device choice; what the chosen model is for, how well and how fast it works,
    and its full card (training history) behind Details."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.model_combo = QComboBox()
        self.model_combo.setPlaceholderText("Loading models…")
        self.model_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.model_combo.setMinimumContentsLength(14)
        self.device_combo = QComboBox()
        self.device_combo.addItem("Automatic", "auto")
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.details_button = QToolButton()
        self.details_button.setText("Details")
        self.details_button.setCheckable(True)
        self.details_button.setToolTip("The full model card: training data, history, scores")
        self.card = QTextBrowser()
        self.card.setOpenLinks(False)
        self.card.setMaximumHeight(130)
        self.card.setPlaceholderText("The model card appears here.")
        self.card.setVisible(False)
        self.details_button.toggled.connect(self.card.setVisible)
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Model", self.model_combo)
        form.addRow("Device", self.device_combo)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.summary)
        layout.addWidget(self.details_button, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(self.card)

    def set_devices(self, devices: list[tuple[str, str]], current: str) -> None:
        """`devices`: (label, device name) pairs; `current`: the device name to select."""
        self.device_combo.blockSignals(True)
        self.device_combo.clear()
        for label, name in devices:
            self.device_combo.addItem(label, name)
        index = self.device_combo.findData(current)
        self.device_combo.setCurrentIndex(max(index, 0))
        self.device_combo.blockSignals(False)

    def device(self) -> str:
        return self.device_combo.currentData() or "auto"


def model_summary_html(entry, speed: tuple[float, str] | None = None) -> str:
    """What a user chooses a `modelstore.ModelEntry` by, as short HTML: what it is for, its
    validation gain in dB (when its card has PSNR scores) and `speed`, (megapixels per second,
    device) measured on this machine, when there is one."""
    # Model cards say "<architecture> (paper NNN): <what it does>. This checkpoint: <history>";
    # the architecture and the history belong to Details.
    purpose = entry.description.split(" This checkpoint:")[0]
    purpose = re.sub(r"^.*?\(paper \d+\):\s*", "", purpose)
    purpose = purpose[:1].upper() + purpose[1:]
    lines = [f"<b>{html.escape(entry.title)}</b>: {html.escape(purpose)}"]
    metrics = (entry.card or {}).get("metrics") or {}
    if "output_psnr" in metrics and "input_psnr" in metrics:
        gain = metrics["output_psnr"] - metrics["input_psnr"]
        lines.append(f"Validation gain: {gain:+.1f} dB PSNR")
    if speed is not None:
        megapixels_per_second, device = speed
        lines.append(
            f"Speed here: {megapixels_per_second:.2g} MP/s on {html.escape(device)} (last run)"
        )
    return "<br>".join(lines)


def model_card_html(entry) -> str:
    """The model card of a `modelstore.ModelEntry` as short HTML."""
    # The engine has imported torch (and with it the model store) before any entry exists.
    from deblurstudio.core.modelstore import card_fields

    rows = [("architecture", entry.arch), ("task", entry.task), *card_fields(entry.card or {})]
    rows.append(("File", os.fspath(entry.path)))
    table = "".join(
        f"<tr><td><b>{html.escape(str(k))}</b>&nbsp;</td><td>{html.escape(str(v))}</td></tr>"
        for k, v in rows
    )
    return (
        f"<p><b>{html.escape(entry.title)}</b> <code>{html.escape(entry.id)}</code><br>"
        f"{html.escape(entry.description)}</p><table>{table}</table>"
    )


class OverlayPanel(QWidget):
    """Blur-probability, motion and reference-confidence overlays; what lies under the cursor."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.analyse_button = QPushButton(qta.icon("mdi6.magnify-scan"), "Analyse photo")
        self.analyse_button.setToolTip("Find where and how the photo is blurred (fast)")
        self.blur_check = QCheckBox("Blur probability")
        self.blur_opacity = _SliderRow(0, 100, 60, " %")
        self.legend = HeatmapLegend()
        self.motion_colour_check = QCheckBox("Motion colours")
        self.motion_lines_check = QCheckBox("Motion lines")
        self.motion_opacity = _SliderRow(0, 100, 60, " %")
        self.motion_key = MotionKey()
        self.confidence_check = QCheckBox("Reference confidence")
        self.confidence_check.setToolTip("Green where the reference photo was matched and used")
        self.confidence_opacity = _SliderRow(0, 100, 60, " %")
        self.readout = QLabel("Hover over the photo to read the maps")
        self.readout.setWordWrap(True)
        self.readout.setMinimumHeight(36)
        layout = QVBoxLayout(self)
        layout.addWidget(self.analyse_button)
        for widget in (
            self.blur_check,
            self.blur_opacity,
            self.legend,
            self.motion_colour_check,
            self.motion_lines_check,
            self.motion_opacity,
            self.motion_key,
            self.confidence_check,
            self.confidence_opacity,
            self.readout,
        ):
            layout.addWidget(widget)
        layout.addStretch(1)


class MaskPanel(QWidget):
    """The mask tool: pan/brush/eraser, size and feather, threshold from the blur map, edits."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.tool_group = QButtonGroup(self)
        tools = QHBoxLayout()
        self.tool_buttons: dict[str, QToolButton] = {}
        for name, icon, tip in (
            ("pan", "mdi6.hand-back-right-outline", "Pan and zoom (H)"),
            ("brush", "mdi6.brush", "Paint where to deblur (B)"),
            ("eraser", "mdi6.eraser", "Erase from the mask (E)"),
        ):
            button = QToolButton()
            button.setIcon(qta.icon(icon))
            button.setText(name.capitalize())
            button.setToolTip(tip)
            button.setCheckable(True)
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
            self.tool_group.addButton(button)
            self.tool_buttons[name] = button
            tools.addWidget(button)
        self.tool_buttons["pan"].setChecked(True)
        self.size = _SliderRow(1, 400, 40, " px")
        self.feather = _SliderRow(0, 100, 8, " px")
        self.threshold = _SliderRow(1, 99, 50, " %")
        self.threshold_button = QPushButton(qta.icon("mdi6.auto-fix"), "Mask from blur map")
        self.threshold_button.setToolTip(
            "Mask every pixel whose blur probability is at least the threshold"
        )
        self.undo_button = QToolButton()
        self.redo_button = QToolButton()
        self.invert_button = QPushButton(qta.icon("mdi6.invert-colors"), "Invert")
        self.clear_button = QPushButton(qta.icon("mdi6.selection-remove"), "Clear")
        self.save_button = QPushButton(qta.icon("mdi6.content-save-outline"), "Save…")
        self.load_button = QPushButton(qta.icon("mdi6.folder-open-outline"), "Load…")
        self.show_check = QCheckBox("Show mask")
        self.show_check.setChecked(True)
        self.use_check = QCheckBox("Deblur only inside the mask")
        self.use_check.setToolTip(
            "The mask becomes the network's blur-probability input, and pixels outside it stay "
            "exactly as they are"
        )
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Size", self.size)
        form.addRow("Feather", self.feather)
        form.addRow("Threshold", self.threshold)
        edits = QGridLayout()
        edits.addWidget(self.undo_button, 0, 0)
        edits.addWidget(self.redo_button, 0, 1)
        edits.addWidget(self.invert_button, 0, 2)
        edits.addWidget(self.clear_button, 0, 3)
        files = QHBoxLayout()
        files.addWidget(self.save_button)
        files.addWidget(self.load_button)
        layout = QVBoxLayout(self)
        layout.addLayout(tools)
        layout.addLayout(form)
        layout.addWidget(self.threshold_button)
        layout.addLayout(edits)
        layout.addLayout(files)
        layout.addWidget(self.show_check)
        layout.addWidget(self.use_check)
        layout.addStretch(1)

    def tool(self) -> str:
        for name, button in self.tool_buttons.items():
            if button.isChecked():
                return name
        return "pan"


class ReferencePanel(QFrame):
    """Pick a sharp photo of the same scene: button or drag and drop; thumbnail; clear."""

    file_dropped = Signal(str)
    _THUMBNAIL = QSize(180, 100)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.thumbnail = QLabel("Drop a sharp photo of the\nsame scene here")
        self.thumbnail.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.thumbnail.setFixedSize(self._THUMBNAIL)
        self.thumbnail.setFrameShape(QFrame.Shape.StyledPanel)
        self.thumbnail.setStyleSheet(
            "QLabel { border: 1px dashed palette(mid); color: palette(mid); }"
        )
        self.name_label = QLabel("No reference")
        self.name_label.setWordWrap(True)
        self.choose_button = QPushButton(qta.icon("mdi6.image-search-outline"), "Choose…")
        self.clear_button = QPushButton(qta.icon("mdi6.close"), "Clear")
        self.clear_button.setEnabled(False)
        self.model_note = QLabel()
        self.model_note.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.choose_button)
        buttons.addWidget(self.clear_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.thumbnail, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(self.name_label)
        layout.addLayout(buttons)
        layout.addWidget(self.model_note)
        layout.addStretch(1)

    def set_reference(self, path: str | None, thumbnail: QImage | None) -> None:
        """Show the chosen reference (None clears it)."""
        if path is None or thumbnail is None:
            self.thumbnail.setPixmap(QPixmap())
            self.thumbnail.setText("Drop a sharp photo of the\nsame scene here")
            self.name_label.setText("No reference")
            self.clear_button.setEnabled(False)
            return
        pixmap = QPixmap.fromImage(thumbnail).scaled(
            self._THUMBNAIL - QSize(4, 4),
            Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )
        self.thumbnail.setPixmap(pixmap)
        self.name_label.setText(Path(path).name)
        self.name_label.setToolTip(path)
        self.clear_button.setEnabled(True)

    def has_thumbnail(self) -> bool:
        pixmap = self.thumbnail.pixmap()
        return pixmap is not None and not pixmap.isNull()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 — Qt override
        if dropped_file(event):
            event.acceptProposedAction()
            self.setStyleSheet("ReferencePanel { background: rgba(80, 140, 220, 60); }")

    def dragLeaveEvent(self, event) -> None:  # noqa: N802 — Qt override
        self.setStyleSheet("")

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 — Qt override
        self.setStyleSheet("")
        path = dropped_file(event)
        if path:
            event.acceptProposedAction()
            self.file_dropped.emit(path)
