"""Start D-Edit Studio: ``python main.py [IMAGE | PROJECT.dedit]``."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

# Before torch loads: OpenMP threads that busy-wait between the worker's kernels would take
# the CPU from the UI thread; passive waiting keeps the canvas smooth while a job runs.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication

ORGANIZATION = "D-Edit Studio"
APPLICATION = "D-Edit Studio"


def create_app(argv: list[str] | None = None) -> QApplication:
    """The QApplication with our names and theme (reused if one exists)."""
    from ui.theme import apply_theme

    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    apply_theme(app)
    return app


def close_on_interrupt(window) -> QTimer:
    """Ctrl+C in the terminal that started the editor closes ``window`` the normal way
    (asking about running jobs and unsaved changes), instead of raising
    KeyboardInterrupt inside whichever slot happens to run, which could drop a job's
    result half taken in. Python runs its signal handlers only between its own
    bytecodes, so the returned timer (keep it) lets it in four times a second while Qt
    waits for events."""
    signal.signal(signal.SIGINT, lambda *_: QTimer.singleShot(0, window.close))
    timer = QTimer(window)
    timer.timeout.connect(lambda: None)
    timer.start(250)
    return timer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dedit-studio",
        description="D-Edit Studio: edit a photo item by item with prompts.",
    )
    parser.add_argument("path", nargs="?", help="a photo (PNG, JPEG, ...) or a .dedit project")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    app = create_app()
    from ui.engine import finish_loading, load_ahead
    from ui.mainwindow import MainWindow

    window = MainWindow(QSettings())
    window.show()
    close_on_interrupt(window)
    if args.path:
        QTimer.singleShot(0, lambda: window.open_path(args.path))
    # after the picture asked for, so that its "Opened" line does not hide the offer
    QTimer.singleShot(0, window.recovery.offer)
    # The engine's modules load while the start page waits for a choice: the stall of
    # loading them (half a second on two cores) lands there, not on a photo being worked on.
    QTimer.singleShot(300, load_ahead)
    code = app.exec()
    finish_loading()  # the window has gone; the engine's import may still be under way
    return code


if __name__ == "__main__":
    raise SystemExit(main())
