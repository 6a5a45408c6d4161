"""Shared test set-up: offline hub, headless Qt, and the D-Edit authors' example data."""

from __future__ import annotations

import os

# Set before anything imports huggingface_hub or Qt: tests never touch the network or a screen.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Before torch loads: with two cores shared by several processes, OpenMP's busy-waiting
# threads make torch many times slower; passive waiting removes that.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest_plugins = ["engine_fixtures", "editor_fixtures"]

REPO = Path(__file__).resolve().parents[1]
REFERENCE = Path(
    os.environ.get("DEDIT_REFERENCE_DIR", REPO.parent / "shared" / "reference" / "dedit-example1")
)


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """Folder of the D-Edit authors' example; skips the test when it is not beside the repo."""
    if not (REFERENCE / "labels.npz").exists():
        pytest.skip(f"the D-Edit reference example is not at {REFERENCE} (set DEDIT_REFERENCE_DIR)")
    return REFERENCE


@pytest.fixture(scope="session")
def reference_labels(reference_dir: Path) -> dict[str, np.ndarray]:
    """The authors' label maps: segmented, edited, removed_item0, moved_item0 (1024x1024)."""
    with np.load(reference_dir / "labels.npz") as data:
        return {k: data[k].astype(np.int32) for k in data.files}


def pytest_sessionfinish(session, exitstatus) -> None:
    """A window a test made may have started importing the engine on a thread of its
    own: let it finish before the interpreter tears its modules down (as the editor's
    own main() does)."""
    import sys

    engine = sys.modules.get("ui.engine")
    if engine is not None:
        engine.finish_loading()
