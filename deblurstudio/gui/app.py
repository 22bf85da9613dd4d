"""Entry point of the desktop application: `deblurstudio [PHOTO]`, `python -m deblurstudio [PHOTO]`.

`--self-test` runs headless: the engine check of `deblurstudio.core.selftest` plus building the
main window offscreen (a frozen bundle that lost a Qt plugin fails here, not in a user's hands);
it prints one line and exits 0 when everything passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from deblurstudio import __version__

# When set to a file path, the app writes "<title>\t<width>x<height>" there once its main window
# is shown and the event loop runs: packaging/smoke_test.py's proof that a frozen bundle starts.
SHOWN_MARKER_ENV = "DEBLURSTUDIO_SHOWN_MARKER"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="deblurstudio",
        description="See where and how a photo is motion-blurred, and deblur only there.",
    )
    parser.add_argument("photo", nargs="?", help="a photo to open")
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="load every installed model, deblur the bundled sample headless, check the result "
        "is sharper, and exit (0 = passed)",
    )
    parser.add_argument(
        "--device", default="auto", help="device for --self-test (auto|cpu|cuda|mps)"
    )
    parser.add_argument("--version", action="version", version=f"DeblurStudio {__version__}")
    return parser.parse_args(argv)


def _application(argv0: str):
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([argv0])
    app.setApplicationName("DeblurStudio")
    app.setOrganizationName("DeblurStudio")
    app.setApplicationVersion(__version__)
    return app


def self_test(device: str = "auto") -> int:
    """Run the headless self-test; print one line; return the exit status."""
    from deblurstudio.core.errors import DeblurStudioError
    from deblurstudio.core.selftest import run_self_test

    try:
        report = run_self_test(device=device)
    except DeblurStudioError as exc:
        print(f"self-test FAILED: {exc}", file=sys.stderr)
        return 1
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    try:
        from deblurstudio.gui._main_window import MainWindow
        from deblurstudio.gui._settings import open_settings

        _application(sys.argv[0] if sys.argv else "deblurstudio")
        window = MainWindow(open_settings(os.devnull))
        window.deleteLater()
    except Exception as exc:  # noqa: BLE001 — any failure here means a broken installation
        print(f"self-test FAILED: the main window cannot be built ({exc})", file=sys.stderr)
        return 1
    print(report.summary(), file=sys.stdout if report.passed else sys.stderr)
    return 0 if report.passed else 1


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.self_test:
        return self_test(args.device)
    from deblurstudio.gui._platform import startup_problem

    problem = startup_problem()
    if problem is not None:
        print(f"deblurstudio cannot open its window: {problem}", file=sys.stderr)
        return 2
    from PySide6.QtCore import QTimer

    from deblurstudio.gui._jobs import user_message
    from deblurstudio.gui._main_window import MainWindow

    app = _application(sys.argv[0] if sys.argv else "deblurstudio")
    window = MainWindow()

    def show_unexpected_error(kind, error, trace) -> None:
        # A bug in a slot must not pass silently or take the window down: log it, say it.
        traceback.print_exception(kind, error, trace)
        window.banner.show_message(user_message(error))

    sys.excepthook = show_unexpected_error
    window.show()
    if args.photo:
        QTimer.singleShot(0, lambda: window.open_photo(args.photo))
    marker = os.environ.get(SHOWN_MARKER_ENV)
    if marker:
        QTimer.singleShot(0, lambda: _write_shown_marker(window, marker))
    return app.exec()


def _write_shown_marker(window, path: str) -> None:
    with open(path, "w", encoding="utf-8") as marker:
        marker.write(f"{window.windowTitle()}\t{window.width()}x{window.height()}\n")


if __name__ == "__main__":
    raise SystemExit(main())
