"""The list of segmentation backends the editor and the command line can choose from.

    >>> [b.name for b in list_backends()]
    ['classical', 'sam', 'grounded-sam']
    >>> seg = get_backend("classical")

``list_backends()`` and ``backend_status(name, **options)`` never raise, load no weights and
import no torch: they check that the Python package is installed and that the weight files can
be found, and say what is missing.
``get_backend(name, **options)`` builds the backend (loading weights) or raises
:class:`~dedit_app.errors.SegmenterUnavailable` naming what to install or download and where.
``parse_options(["points_per_side=16"])`` reads options typed as ``KEY=VALUE`` (the
command line's ``--option``) for either; the backend converts the values and refuses a key
it does not know.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from dedit_app.errors import SegmentationError, SegmenterUnavailable
from dedit_app.segment.base import Segmenter

__all__ = [
    "DEFAULT_BACKEND",
    "BackendInfo",
    "backend_status",
    "get_backend",
    "list_backends",
    "parse_options",
]

DEFAULT_BACKEND = "classical"


@dataclass(frozen=True)
class BackendInfo:
    """One backend as the UI lists it."""

    name: str  # what get_backend() takes
    title: str  # what a menu shows
    needs: str  # what it needs, in words
    available: bool  # can get_backend(name) build it now, with default options?
    reason: str  # why not (what to install or download), or "" when available


def _classical_status(**_options: object) -> str:
    return ""


def _classical(**options: object) -> Segmenter:
    from dedit_app.segment.base import config_from_options
    from dedit_app.segment.classical import ClassicalConfig, ClassicalSegmenter

    return ClassicalSegmenter(config_from_options(ClassicalConfig, options))


def _sam_status(**options: object) -> str:
    from dedit_app.segment.sam import sam_status

    return sam_status(**options)


def _sam(**options: object) -> Segmenter:
    from dedit_app.segment.sam import SamSegmenter

    return SamSegmenter(**options)  # type: ignore[arg-type]


def _grounded_status(**options: object) -> str:
    from dedit_app.segment.grounded import grounded_status

    return grounded_status(**options)


def _grounded(**options: object) -> Segmenter:
    from dedit_app.segment.grounded import GroundedSamSegmenter

    return GroundedSamSegmenter(**options)  # type: ignore[arg-type]


_BACKENDS: dict[str, tuple[str, str, Callable[..., str], Callable[..., Segmenter]]] = {
    "classical": (
        "Colour and edges (no download)",
        "nothing: numpy, scipy and OpenCV only",
        _classical_status,
        _classical,
    ),
    "sam": (
        "Segment Anything (SAM)",
        "the segment-anything package and a SAM checkpoint (vit_b, vit_l or vit_h .pth)",
        _sam_status,
        _sam,
    ),
    "grounded-sam": (
        "Grounding DINO + SAM (find items by text)",
        "transformers with Grounding DINO weights, plus everything SAM needs",
        _grounded_status,
        _grounded,
    ),
}


def list_backends() -> list[BackendInfo]:
    """Every backend, with whether it can be built right now (default options) and, if not,
    why."""
    out = []
    for name, (title, needs, _status, _build) in _BACKENDS.items():
        reason = backend_status(name)
        out.append(BackendInfo(name, title, needs, not reason, reason))
    return out


def backend_status(name: str, **options: object) -> str:
    """Why ``get_backend(name, **options)`` cannot build the backend, in one sentence, or ""
    when it may (a checkpoint of the wrong kind is only found out by loading it).

    Never raises, loads no weights and imports neither torch nor transformers, so the UI
    thread may ask it before it starts a job or asks the user a question.
    """
    if name not in _BACKENDS:
        return _unknown(name)
    title, _needs, status, _build = _BACKENDS[name]
    try:
        return status(**options)
    except Exception as err:  # a broken optional install must not break the menu
        return f"Checking whether {title} can run failed: {err}"


def _unknown(name: str) -> str:
    choices = ", ".join(_BACKENDS)
    return f"There is no segmentation backend called {name!r}; choose one of {choices}."


def get_backend(name: str = DEFAULT_BACKEND, **options: object) -> Segmenter:
    """Build the backend called ``name`` ("classical", "sam", "grounded-sam").

    Options are passed to the backend (for SAM: ``checkpoint``, ``model_type``, ``device``,
    ...; see each backend's class). Raises SegmenterUnavailable for an unknown name or when the
    backend's package or weights are missing, naming what to install or download.
    """
    if name not in _BACKENDS:
        raise SegmenterUnavailable(_unknown(name))
    return _BACKENDS[name][3](**options)


def parse_options(pairs: Iterable[str]) -> dict[str, str]:
    """Backend options typed as ``KEY=VALUE`` (``--option points_per_side=16``), as a dict for
    :func:`get_backend` and :func:`backend_status`. Values stay text (the backend converts
    them, and refuses a key it does not know); a key given twice keeps its last value.
    Raises SegmentationError for text that is not ``KEY=VALUE``."""
    options: dict[str, str] = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        key = key.strip()
        if not equals or not key or any(c.isspace() for c in key):
            raise SegmentationError(
                f"The segmentation option {pair!r} must look like KEY=VALUE, such as "
                "points_per_side=16."
            )
        options[key] = value.strip()
    return options
