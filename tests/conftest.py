import os

# Qt runs headless in every test session; set once, before any test imports PySide6.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
