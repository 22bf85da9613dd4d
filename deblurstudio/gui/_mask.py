"""The blur mask being edited, with undo/redo (a QUndoStack of pixel patches).

The mask is float32 H×W in [0, 1] (1 = deblur here), the size of the photo. Brush strokes store
only the rectangle they touched, so undo history stays small on big photos.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from deblurstudio.core import brush, masks

Region = tuple[slice, slice]
_WHOLE: Region = (slice(None), slice(None))
_THRESHOLD_COMMAND_ID = 1  # consecutive threshold changes merge into one undo step


class _MaskEdit(QUndoCommand):
    """Replace the mask inside `region` by `after`; undo puts `before` back."""

    def __init__(
        self,
        document: MaskDocument,
        text: str,
        region: Region,
        before: np.ndarray,
        after: np.ndarray,
        merge_id: int = -1,
    ):
        super().__init__(text)
        self._document = document
        self._region = region
        self._before = before
        self._after = after
        self._merge_id = merge_id

    def id(self) -> int:  # noqa: A003 — Qt's name
        return self._merge_id

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802 — Qt override
        if not isinstance(other, _MaskEdit) or other.id() != self.id() or self.id() < 0:
            return False
        self._after = other._after
        return True

    def redo(self) -> None:
        self._document._write(self._region, self._after)

    def undo(self) -> None:
        self._document._write(self._region, self._before)


class MaskDocument(QObject):
    """The editable mask of the open photo.

    Signals:
        changed(object): (rows, columns) slices of the pixels that changed.
    """

    changed = Signal(object)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.mask = np.zeros((0, 0), dtype=np.float32)
        self.undo_stack = QUndoStack(self)
        self.undo_stack.setUndoLimit(30)
        self._stroke_before: np.ndarray | None = None
        self._stroke_region: list[int] | None = None  # top, bottom, left, right
        self._stroke_erase = False

    @property
    def shape(self) -> tuple[int, int]:
        return self.mask.shape

    def reset(self, shape: tuple[int, int]) -> None:
        """An empty mask for a photo of `shape` (H, W); forgets the history."""
        self.undo_stack.clear()
        self.mask = np.zeros(shape, dtype=np.float32)
        self.changed.emit(_WHOLE)

    def is_empty(self) -> bool:
        return not bool(self.mask.any())

    def last_edit_was_threshold(self) -> bool:
        """True when the latest edit set the mask from the blur map (moving the threshold
        slider then updates that edit instead of stacking new ones)."""
        index = self.undo_stack.index()
        return index > 0 and self.undo_stack.command(index - 1).id() == _THRESHOLD_COMMAND_ID

    # --- brush strokes -----------------------------------------------------------------------

    def begin_stroke(self, erase: bool) -> None:
        # The whole mask is copied once per stroke because the stroke's extent is not known yet;
        # only the touched rectangle is kept for undo when it ends.
        self._stroke_before = self.mask.copy()
        self._stroke_region = None
        self._stroke_erase = erase

    def stroke_to(
        self, start: tuple[float, float], end: tuple[float, float], radius: float, feather: float
    ) -> None:
        """Paint (or erase) one segment of the current stroke, in image px."""
        if self._stroke_before is None:
            return
        region = brush.paint_segment(self.mask, start, end, radius, feather, self._stroke_erase)
        if region is None:
            return
        rows, cols = region
        if self._stroke_region is None:
            self._stroke_region = [rows.start, rows.stop, cols.start, cols.stop]
        else:
            bounds = self._stroke_region
            bounds[:] = [
                min(bounds[0], rows.start),
                max(bounds[1], rows.stop),
                min(bounds[2], cols.start),
                max(bounds[3], cols.stop),
            ]
        self.changed.emit(region)

    def end_stroke(self) -> None:
        before, bounds = self._stroke_before, self._stroke_region
        self._stroke_before = self._stroke_region = None
        if before is None or bounds is None:
            return
        region = (slice(bounds[0], bounds[1]), slice(bounds[2], bounds[3]))
        text = "Erase" if self._stroke_erase else "Paint"
        self.undo_stack.push(
            _MaskEdit(self, text, region, before[region].copy(), self.mask[region].copy())
        )

    # --- whole-mask edits --------------------------------------------------------------------

    def set_from_probability(self, blur_probability: np.ndarray, threshold: float) -> None:
        """Mask = where the blur probability (float32 H×W in [0, 1]) is at least `threshold`."""
        self._replace(
            masks.threshold_probability(blur_probability, threshold),
            f"Threshold {threshold:.2f}",
            _THRESHOLD_COMMAND_ID,
        )

    def invert(self) -> None:
        self._replace(1.0 - self.mask, "Invert")

    def clear(self) -> None:
        self._replace(np.zeros_like(self.mask), "Clear")

    def set_mask(self, mask: np.ndarray, text: str = "Load mask") -> None:
        """Replace the mask (float32 H×W in [0, 1], the photo's size)."""
        if mask.shape != self.mask.shape:
            raise ValueError(
                f"mask is {mask.shape[1]}×{mask.shape[0]} px but the photo is "
                f"{self.mask.shape[1]}×{self.mask.shape[0]} px"
            )
        self._replace(np.clip(mask, 0.0, 1.0).astype(np.float32), text)

    def _replace(self, new_mask: np.ndarray, text: str, merge_id: int = -1) -> None:
        self.undo_stack.push(
            _MaskEdit(self, text, _WHOLE, self.mask.copy(), new_mask.astype(np.float32), merge_id)
        )

    def _write(self, region: Region, values: np.ndarray) -> None:
        self.mask[region] = values
        self.changed.emit(region)
