"""Side panels: what they show stays readable at the sizes a dock gives them."""

from PySide6.QtCore import QRect, Qt
from PySide6.QtWidgets import QVBoxLayout, QWidget

from deblurstudio.gui._panels import MotionKey


def test_the_motion_keys_text_is_whole_in_a_narrow_dock(qtbot):
    host = QWidget()
    layout = QVBoxLayout(host)
    key = MotionKey()
    layout.addWidget(key)
    layout.addStretch()
    qtbot.addWidget(host)
    key.set_scale(24.2)
    host.resize(240, 400)
    host.show()
    qtbot.waitExposed(host)
    qtbot.waitUntil(lambda: key.width() > 0)
    text_width = key.width() - (MotionKey._WHEEL + 10)
    flags = int(Qt.AlignmentFlag.AlignLeft | Qt.TextFlag.TextWordWrap)
    wrapped = key.fontMetrics().boundingRect(QRect(0, 0, text_width, 10_000), flags, key.text())
    assert wrapped.height() > MotionKey._WHEEL + 4  # the case that was cut: more lines than
    assert key.height() >= wrapped.height()  # the wheel is tall, all of them shown
