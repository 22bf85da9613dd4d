"""The before/after viewer: canvases that share zoom and pan, side by side or as a split "wipe".

Coordinates: "image px" are pixels of the full-resolution photo, x right and y down, pixel (row i,
column j) covering [j, j + 1) × [i, i + 1); "widget px" are the canvas's logical pixels. A shared
`ViewState` holds the zoom (widget px per image px) and the image point shown at each canvas's
centre, so every canvas showing the photo moves together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QLineF, QObject, QPointF, QRectF, QSizeF, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QResizeEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QHBoxLayout, QStackedLayout, QWidget

from deblurstudio.gui._qimage import Picture

MIN_SCALE = 1.0 / 64.0
MAX_SCALE = 32.0
WHEEL_STEP = 1.25  # zoom factor per wheel notch
_BACKGROUND = QColor(38, 38, 40)
_DIVIDER_GRAB_PX = 8.0
_GLYPH_SPACING_PX = 44.0  # target distance between motion glyphs on screen
_Z_ORDER = ("blur", "motion", "mask", "confidence")  # overlay names, bottom to top


class ViewState(QObject):
    """Zoom and pan shared by every canvas of one photo.

    Attributes:
        image_size: the photo's size in image px.
        scale: widget px per image px.
        center: the image point (image px) at the centre of each canvas.
        fitted: True while the view follows the window size ("fit"); any zoom or pan clears it.
    """

    changed = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.image_size = QSizeF()
        self.scale = 1.0
        self.center = QPointF()
        self.fitted = True

    def reset(self, image_size: QSizeF, viewport: QSizeF) -> None:
        self.image_size = QSizeF(image_size)
        self.fit(viewport)

    def fit(self, viewport: QSizeF) -> None:
        """Show the whole photo, centred."""
        self.fitted = True
        if self.image_size.isEmpty() or viewport.isEmpty():
            self.scale = 1.0
        else:
            self.scale = min(
                viewport.width() / self.image_size.width(),
                viewport.height() / self.image_size.height(),
            )
        self.center = QPointF(self.image_size.width() / 2, self.image_size.height() / 2)
        self.changed.emit()

    def zoom_at(self, scale: float, anchor: QPointF, viewport: QSizeF) -> None:
        """Set the zoom to `scale`, keeping the image point under widget point `anchor` fixed."""
        scale = min(max(scale, MIN_SCALE), MAX_SCALE)
        offset = anchor - QPointF(viewport.width() / 2, viewport.height() / 2)
        image_point = self.center + offset / self.scale
        self.scale = scale
        self.center = image_point - offset / scale
        self.fitted = False
        self.changed.emit()

    def pan(self, delta: QPointF) -> None:
        """Move the photo by `delta` widget px (the photo follows the mouse)."""
        self.center -= delta / self.scale
        self.fitted = False
        self.changed.emit()


@dataclass
class _Overlay:
    picture: Picture
    opacity: float
    smooth: bool


class Canvas(QWidget):
    """Draws the photo, optionally the result right of a wipe divider, and the overlays.

    Signals:
        hovered(object): the image point (QPointF, image px) under the mouse, None when it leaves.
        stroke_started(QPointF), stroke_moved(QPointF, QPointF), stroke_finished(): a brush drag
            in image px (tool "brush" or "eraser").
    """

    hovered = Signal(object)
    stroke_started = Signal(QPointF)
    stroke_moved = Signal(QPointF, QPointF)
    stroke_finished = Signal()

    def __init__(self, state: ViewState, caption: str = "", placeholder: str = ""):
        super().__init__()
        self.state = state
        self.caption = caption
        self.placeholder = placeholder
        self.picture: Picture | None = None
        self.wipe_picture: Picture | None = None  # drawn right of the divider (split view)
        self.wipe_caption = ""
        self.divider = 0.5  # fraction of the widget width
        self.overlays: dict[str, _Overlay] = {}
        self.wipe_overlays: dict[str, _Overlay] = {}
        self.glyphs: dict[float, np.ndarray] | None = None  # spacing (image px) -> N×4 x, y, dx, dy
        self.region: QRectF | None = None  # outlined on the result (the previewed region)
        self.tool = "pan"
        self.brush_radius = 20.0
        self._drag: str | None = None
        self._last_mouse = QPointF()
        self._last_image_point = QPointF()
        self._cursor: QPointF | None = None
        state.changed.connect(self.update)
        self.setMouseTracking(True)
        self.setMinimumSize(160, 120)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)

    # --- coordinates -------------------------------------------------------------------------

    def _viewport(self) -> QSizeF:
        return QSizeF(self.width(), self.height())

    def to_widget(self, point: QPointF) -> QPointF:
        return (point - self.state.center) * self.state.scale + QPointF(
            self.width() / 2, self.height() / 2
        )

    def to_image(self, point: QPointF) -> QPointF:
        return (point - QPointF(self.width() / 2, self.height() / 2)) / self.state.scale + (
            self.state.center
        )

    def visible_image_rect(self) -> QRectF:
        """The part of the photo on screen, in image px (empty without a photo)."""
        if self.picture is None:
            return QRectF()
        shown = QRectF(
            self.to_image(QPointF(0, 0)), self.to_image(QPointF(self.width(), self.height()))
        )
        return shown.intersected(QRectF(QPointF(0, 0), self.state.image_size))

    def divider_x(self) -> float:
        return self.divider * self.width()

    # --- painting ----------------------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 — Qt override
        painter = QPainter(self)
        painter.fillRect(self.rect(), _BACKGROUND)
        if self.picture is None:
            self._draw_text_centered(painter, self.placeholder)
            return
        visible = self.visible_image_rect()
        if visible.isEmpty():
            return
        target = QRectF(self.to_widget(visible.topLeft()), self.to_widget(visible.bottomRight()))
        self._draw_side(painter, self.picture, self.overlays, visible, target, with_glyphs=True)
        if self.wipe_picture is not None:
            painter.save()
            split = self.divider_x()
            painter.setClipRect(QRectF(split, 0, self.width() - split, self.height()))
            painter.fillRect(self.rect(), _BACKGROUND)
            self._draw_side(painter, self.wipe_picture, self.wipe_overlays, visible, target)
            painter.restore()
            self._draw_divider(painter)
        if self.region is not None:
            outline = QRectF(
                self.to_widget(self.region.topLeft()), self.to_widget(self.region.bottomRight())
            )
            painter.setPen(QPen(QColor(255, 255, 255, 200), 1.5, Qt.PenStyle.DashLine))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRect(outline)
        self._draw_captions(painter)
        if self.tool != "pan" and self._cursor is not None:
            radius = self.brush_radius * self.state.scale
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            for color, width in ((QColor(0, 0, 0, 160), 3.0), (QColor(255, 255, 255), 1.0)):
                painter.setPen(QPen(color, width))
                painter.drawEllipse(self._cursor, radius, radius)

    def _draw_side(
        self,
        painter: QPainter,
        picture: Picture,
        overlays: dict[str, _Overlay],
        visible: QRectF,
        target: QRectF,
        with_glyphs: bool = False,
    ) -> None:
        # Smooth when reducing; crisp pixels when zoomed in, as photographers expect at 200 %.
        self._draw_picture(painter, picture, visible, target, smooth=self.state.scale < 1.0)
        for overlay in overlays.values():
            painter.setOpacity(overlay.opacity)
            self._draw_picture(painter, overlay.picture, visible, target, overlay.smooth)
        painter.setOpacity(1.0)
        if with_glyphs and self.glyphs:
            self._draw_glyphs(painter, visible)

    def _draw_picture(
        self, painter: QPainter, picture: Picture, visible: QRectF, target: QRectF, smooth: bool
    ) -> None:
        image, source = picture.level_for(self.state.scale, visible)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, smooth)
        painter.drawImage(target, image, source)

    def _draw_glyphs(self, painter: QPainter, visible: QRectF) -> None:
        # Pick the glyph grid whose spacing is closest to a comfortable distance on screen.
        spacing = min(
            self.glyphs, key=lambda s: abs(math.log(s * self.state.scale / _GLYPH_SPACING_PX))
        )
        glyphs = self.glyphs[spacing]
        if not len(glyphs):
            return
        inside = (
            (glyphs[:, 0] >= visible.left() - spacing)
            & (glyphs[:, 0] <= visible.right() + spacing)
            & (glyphs[:, 1] >= visible.top() - spacing)
            & (glyphs[:, 1] <= visible.bottom() + spacing)
        )
        lines = []
        for x, y, dx, dy in glyphs[inside]:
            half = QPointF(dx / 2, dy / 2)
            lines.append(
                QLineF(self.to_widget(QPointF(x, y) - half), self.to_widget(QPointF(x, y) + half))
            )
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        for color, width in ((QColor(0, 0, 0, 180), 3.5), (QColor(255, 255, 255), 1.6)):
            pen = QPen(color, width)
            pen.setCapStyle(Qt.PenCapStyle.RoundCap)
            painter.setPen(pen)
            painter.drawLines(lines)

    def _draw_divider(self, painter: QPainter) -> None:
        x = self.divider_x()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(QPen(QColor(0, 0, 0, 140), 3))
        painter.drawLine(QPointF(x, 0), QPointF(x, self.height()))
        painter.setPen(QPen(QColor(255, 255, 255), 1.5))
        painter.drawLine(QPointF(x, 0), QPointF(x, self.height()))
        handle = QPointF(x, self.height() / 2)
        painter.setBrush(QColor(255, 255, 255))
        painter.setPen(QPen(QColor(0, 0, 0, 140), 1))
        painter.drawEllipse(handle, 9, 9)
        painter.setPen(QPen(QColor(60, 60, 60), 1.5))
        for sign in (-1, 1):
            tip = handle + QPointF(sign * 6, 0)
            painter.drawLine(tip, handle + QPointF(sign * 2, -4))
            painter.drawLine(tip, handle + QPointF(sign * 2, 4))

    def _draw_captions(self, painter: QPainter) -> None:
        font = QFont(painter.font())
        font.setBold(True)
        painter.setFont(font)
        captions = [(self.caption, 10.0, Qt.AlignmentFlag.AlignLeft)]
        if self.wipe_picture is not None:
            captions.append((self.wipe_caption, self.width() - 10.0, Qt.AlignmentFlag.AlignRight))
        for text, x, align in captions:
            if not text:
                continue
            width = painter.fontMetrics().horizontalAdvance(text) + 12
            left = x if align == Qt.AlignmentFlag.AlignLeft else x - width
            box = QRectF(left, 8, width, painter.fontMetrics().height() + 6)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(0, 0, 0, 150))
            painter.drawRoundedRect(box, 4, 4)
            painter.setPen(QColor(255, 255, 255))
            painter.drawText(box, Qt.AlignmentFlag.AlignCenter, text)

    def _draw_text_centered(self, painter: QPainter, text: str) -> None:
        painter.setPen(QColor(170, 170, 170))
        painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, text)

    # --- interaction -------------------------------------------------------------------------

    def showEvent(self, event) -> None:  # noqa: N802 — Qt override
        # A canvas that was hidden (the other compare mode) may have a different size.
        if self.state.fitted and self.picture is not None:
            self.state.fit(self._viewport())
        super().showEvent(event)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 — Qt override
        if self.state.fitted and self.isVisible() and self.picture is not None:
            self.state.fit(self._viewport())
        super().resizeEvent(event)

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 — Qt override
        if self.picture is None:
            return
        notches = event.angleDelta().y() / 120.0
        if notches:
            self.state.zoom_at(
                self.state.scale * WHEEL_STEP**notches, event.position(), self._viewport()
            )

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 — Qt override
        if self.picture is None:
            return
        position = event.position()
        self._last_mouse = position
        if event.button() == Qt.MouseButton.MiddleButton:
            self._drag = "pan"
        elif event.button() != Qt.MouseButton.LeftButton:
            return
        elif (
            self.wipe_picture is not None
            and abs(position.x() - self.divider_x()) <= _DIVIDER_GRAB_PX
        ):
            self._drag = "divider"
        elif self.tool in ("brush", "eraser"):
            self._drag = "stroke"
            self._last_image_point = self.to_image(position)
            self.stroke_started.emit(self._last_image_point)
        else:
            self._drag = "pan"
            self.setCursor(Qt.CursorShape.ClosedHandCursor)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 — Qt override
        position = event.position()
        if self._drag == "pan":
            self.state.pan(position - self._last_mouse)
        elif self._drag == "divider":
            self.divider = min(max(position.x() / max(self.width(), 1), 0.0), 1.0)
            self.update()
        elif self._drag == "stroke":
            image_point = self.to_image(position)
            self.stroke_moved.emit(self._last_image_point, image_point)
            self._last_image_point = image_point
        self._last_mouse = position
        if self.picture is not None:
            self.hovered.emit(self.to_image(position))
        if self.tool != "pan":
            self._cursor = position
            self.update()
        elif self.wipe_picture is not None and self._drag is None:
            near = abs(position.x() - self.divider_x()) <= _DIVIDER_GRAB_PX
            self.setCursor(Qt.CursorShape.SplitHCursor if near else Qt.CursorShape.ArrowCursor)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 — Qt override
        if self._drag == "stroke":
            self.stroke_finished.emit()
        self._drag = None
        self.unsetCursor()

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802 — Qt override
        if self.picture is not None and self.tool == "pan":
            self.state.fit(self._viewport())

    def leaveEvent(self, event) -> None:  # noqa: N802 — Qt override
        self._cursor = None
        self.hovered.emit(None)
        self.update()


class CompareView(QWidget):
    """Before and after, side by side (two synchronised canvases) or split by a wipe divider.

    Overlays have a side: "before" ones (blur map, motion, mask: they describe the input) are
    drawn on the before canvas, "after" ones (reference confidence) on the result; the split view
    draws each on its own side of the divider.
    """

    hovered = Signal(object)
    stroke_started = Signal(QPointF)
    stroke_moved = Signal(QPointF, QPointF)
    stroke_finished = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = ViewState()
        self.before = Canvas(self.state, "Before", "Open a photo (Ctrl+O) or drop one here")
        self.after = Canvas(self.state, "After", "Not deblurred yet — press Deblur (Ctrl+D)")
        self.split = Canvas(self.state, "Before", "Open a photo (Ctrl+O) or drop one here")
        self.split.wipe_caption = "After"
        pair = QWidget()
        pair_layout = QHBoxLayout(pair)
        pair_layout.setContentsMargins(0, 0, 0, 0)
        pair_layout.setSpacing(2)
        pair_layout.addWidget(self.before, 1)
        pair_layout.addWidget(self.after, 1)
        self._stack = QStackedLayout(self)
        self._stack.addWidget(pair)
        self._stack.addWidget(self.split)
        self._result: Picture | None = None
        for canvas in self.canvases():
            canvas.hovered.connect(self.hovered)
            canvas.stroke_started.connect(self.stroke_started)
            canvas.stroke_moved.connect(self.stroke_moved)
            canvas.stroke_finished.connect(self.stroke_finished)

    def canvases(self) -> tuple[Canvas, Canvas, Canvas]:
        return self.before, self.after, self.split

    def is_split(self) -> bool:
        return self._stack.currentIndex() == 1

    def set_split(self, split: bool) -> None:
        self._stack.setCurrentIndex(1 if split else 0)

    def active_canvas(self) -> Canvas:
        """The canvas showing the photo itself (before, or the split view)."""
        return self.split if self.is_split() else self.before

    def set_photo(self, picture: Picture | None) -> None:
        """Show a new photo (fitted to the window); forgets the result and the overlays."""
        for canvas in (self.before, self.split):
            canvas.picture = picture
        self.set_result(None)
        for canvas in self.canvases():
            canvas.overlays.clear()
            canvas.wipe_overlays.clear()
            canvas.glyphs = None
        if picture is not None:
            self.state.reset(QSizeF(picture.size), self._fit_viewport())
        self._update_all()

    def set_result(self, picture: Picture | None, region: QRectF | None = None) -> None:
        """Show the restored photo; `region` (image px) outlines what a preview covered."""
        self._result = picture
        self.after.picture = picture
        self.split.wipe_picture = picture
        for canvas in (self.after, self.split):
            canvas.region = region
        self._update_all()

    def result_picture(self) -> Picture | None:
        return self._result

    def set_overlay(
        self,
        name: str,
        picture: Picture | None,
        opacity: float,
        side: str = "before",
        smooth: bool = True,
    ) -> None:
        """Add, update or (picture None) remove an overlay drawn with `opacity` in [0, 1]."""
        if side == "before":
            targets = ((self.before, "overlays"), (self.split, "overlays"))
        else:
            targets = ((self.after, "overlays"), (self.split, "wipe_overlays"))
        for canvas, attribute in targets:
            overlays = getattr(canvas, attribute)
            overlays.pop(name, None)
            if picture is not None:
                overlays[name] = _Overlay(picture, opacity, smooth)
            # Draw in a fixed stacking order, however the overlays were switched on.
            ordered = sorted(overlays.items(), key=lambda item: _Z_ORDER.index(item[0]))
            overlays.clear()
            overlays.update(ordered)
        self._update_all()

    def set_glyphs(self, glyphs: dict[float, np.ndarray] | None) -> None:
        """Motion glyphs per grid spacing (image px): N×4 rows of x, y, dx, dy in image px."""
        self.before.glyphs = glyphs
        self.split.glyphs = glyphs
        self._update_all()

    def set_tool(self, tool: str, brush_radius: float) -> None:
        for canvas in self.canvases():
            canvas.tool = tool
            canvas.brush_radius = brush_radius
            canvas.update()

    def fit(self) -> None:
        self.state.fit(self._fit_viewport())

    def zoom_to(self, scale: float) -> None:
        """Zoom about the centre of the view (1.0 = 100 %: one image px per screen px)."""
        viewport = self._fit_viewport()
        self.state.zoom_at(scale, QPointF(viewport.width() / 2, viewport.height() / 2), viewport)

    def visible_image_rect(self) -> QRectF:
        return self.active_canvas().visible_image_rect()

    def _fit_viewport(self) -> QSizeF:
        canvas = self.active_canvas()
        return QSizeF(canvas.width(), canvas.height())

    def _update_all(self) -> None:
        for canvas in self.canvases():
            canvas.update()
