"""Drag an item of the reference photo's canvas onto the photo with a real mouse, on a real
X server, and check that the photo's canvas takes the drop (the tests can only hand the
canvas a stand-in for ``QDrag``, whose ``exec`` runs an event loop of its own).

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/real_drag_check.py

Needs an X server (Xvfb will do), ``xdotool`` (which moves the pointer and presses the
button as a hand would), Qt's xcb plugin and its libraries (on Debian: ``apt-get install
xvfb xdotool libxcb-cursor0``). Exits 0 when the drop named the right two items. The
swap itself needs a joint preparation and is not made: the drop is what is checked.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
EXAMPLE = ROOT.parent / "shared" / "reference" / "dedit-example1"


def _mid_sized(doc, share: float) -> int:
    """The largest item below ``share`` of the picture: one a hand would pick."""
    counts, total = doc.counts, doc.counts.sum()
    return max(doc.visible_items(), key=lambda k: counts[k] if counts[k] < share * total else 0)


def main() -> int:
    if not os.environ.get("DISPLAY") or shutil.which("xdotool") is None:
        print("needs an X server (DISPLAY) and xdotool; see the module's docstring")
        return 2
    from PySide6.QtWidgets import QApplication

    from ui.testing import inner_pixel, make_window, view_point, wait_idle, write_synthetic_photo

    tmp = Path(tempfile.mkdtemp(prefix="dedit-drag-"))
    photo, reference = EXAMPLE / "image.png", EXAMPLE / "reference_image.png"
    if not photo.is_file():
        photo, reference = tmp / "photo.png", tmp / "reference.png"
        write_synthetic_photo(photo, 600, 800)
        write_synthetic_photo(reference, 480, 640)
    window = make_window(tmp, size=(1400, 900))
    window.show()
    window.open_path(photo)
    wait_idle(window)
    window.reference_photo.open(reference)
    wait_idle(window)
    QApplication.processEvents()

    source, target = window.reference_panel.canvas, window.canvas
    ref_doc, doc = window.reference_photo.doc, window.doc
    ref_item, item = _mid_sized(ref_doc, 0.2), _mid_sized(doc, 0.16)  # not the same ids
    start = source.viewport().mapToGlobal(
        view_point(source, *inner_pixel(ref_doc.labels, ref_item))
    )
    end = target.viewport().mapToGlobal(view_point(target, *inner_pixel(doc.labels, item)))
    dropped = []
    target.swap_dropped.connect(lambda a, b: dropped.append((a, b)))
    window.editing.swap_item = lambda *_: None  # the drop is checked, not the swap

    steps = "".join(
        f"xdotool mousemove {start.x() + (end.x() - start.x()) * k // 10} "
        f"{start.y() + (end.y() - start.y()) * k // 10}; sleep 0.1; "
        for k in range(1, 11)
    )
    hand = f"sleep 0.5; xdotool mousemove {start.x()} {start.y()}; sleep 0.3; "
    hand += f"xdotool mousedown 1; sleep 0.3; {steps}sleep 0.4; xdotool mouseup 1"
    proc = subprocess.Popen(["bash", "-c", hand])
    deadline = time.time() + 30
    while proc.poll() is None and time.time() < deadline:
        QApplication.processEvents()
        time.sleep(0.01)
    for _ in range(50):
        QApplication.processEvents()
        time.sleep(0.02)
    wanted = (item, ref_item)
    print(
        f"dragged “{ref_doc.item_name(ref_item)}” of the reference onto "
        f"“{doc.item_name(item)}”: drops {dropped}, wanted [{wanted}]"
    )
    ok = dropped == [wanted]
    print("the photo's canvas took the drop" if ok else "the drop did not arrive")
    os._exit(0 if ok else 1)  # the window's threads need not be waited for


if __name__ == "__main__":
    raise SystemExit(main())
