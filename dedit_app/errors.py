"""Errors a user can cause, each carrying one sentence fit to show them.

Everything the engine raises on purpose derives from :class:`DEditError`; the command line
prints ``str(error)`` on one line and the editor shows it in a message bar. Anything else
that escapes is a bug.
"""


class DEditError(Exception):
    """Base class: ``str(err)`` is a complete, user-facing sentence."""


class ImageLoadError(DEditError):
    """An image file is missing, unreadable, corrupt, or too large."""


class ImageSaveError(DEditError):
    """An image could not be written (unknown extension, full disk, no permission)."""


class ProjectError(DEditError):
    """A project bundle is missing, corrupt, or from a newer version."""


class ItemError(DEditError):
    """An item index or item edit that does not make sense for this partition."""


class ModelLoadError(DEditError):
    """Model weights are missing, offline, incompatible, or not safetensors."""


class SegmentationError(DEditError):
    """A segmentation backend is unavailable or was given bad input."""


class SegmenterUnavailable(SegmentationError):
    """The chosen segmentation backend cannot be built: its package, its weights or its
    device is missing or does not fit. Mended where the backend is chosen (the editor's
    Settings; the command line's ``--backend`` and ``DEDIT_SAM_CHECKPOINT``), not by other
    input."""


class EditError(DEditError):
    """An edit request that cannot run (not prepared, empty prompt, bad parameters)."""


class Cancelled(DEditError):
    """The user cancelled a running job; nothing was changed."""

    def __init__(self, message: str = "The job was cancelled; nothing was changed.") -> None:
        super().__init__(message)


class OutOfMemory(DEditError):
    """The GPU (or RAM) ran out of memory during a job."""


class Overflowed(EditError):
    """The model's numbers overflowed (NaN or infinity) during a job, so its result would
    be blank or broken; nothing was kept."""


def overflowed(what: str, dtype: object, otherwise: str) -> Overflowed:
    """The sentence for numbers that stopped being numbers while ``what`` ran ("Preparing",
    "The edit") in ``dtype`` (a torch dtype): in half precision another precision mends
    it; in float32 the sentence ``otherwise`` says what to change ("Prepare again with
    lower learning rates.")."""
    name = str(dtype).removeprefix("torch.")
    remedy = (
        otherwise
        if name == "float32"
        else "Choose float32 as the precision (or bfloat16 on a GPU that has it) and try again."
    )
    return Overflowed(
        f"{what} went wrong: the model's numbers overflowed in {name} and are no longer "
        f"numbers, so nothing was kept. {remedy}"
    )


def as_out_of_memory(
    err: BaseException,
    what: str = "The job",
    remedy: str = "turn on low-memory mode or choose the CPU",
) -> OutOfMemory | None:
    """The user's sentence for a memory failure, or None when ``err`` is something else.

    Recognises ``MemoryError`` and torch's "can't allocate memory" (RAM), and torch's
    ``OutOfMemoryError`` / the "out of memory" RuntimeErrors of the CUDA and MPS back ends,
    without importing torch. ``remedy`` is what the user can change for a GPU failure, in
    the words of the place they change it.
    """
    if isinstance(err, OutOfMemory):
        return err
    # torch's processor allocator says "can't allocate memory" in a RuntimeError
    ram = isinstance(err, RuntimeError) and "can't allocate memory" in str(err).lower()
    if isinstance(err, MemoryError) or ram:
        return OutOfMemory(
            f"{what} ran out of memory. Close other programs or use a smaller photo, "
            "then try again."
        )
    if type(err).__name__ == "OutOfMemoryError" or (
        isinstance(err, RuntimeError) and "out of memory" in str(err).lower()
    ):
        return OutOfMemory(
            f"{what} ran out of GPU memory. Close other programs that use the GPU, or "
            f"{remedy}, then try again."
        )
    return None


def short_error(err: BaseException) -> str:
    """The first line of ``err``'s text (its class name when empty), at most 200 chars:
    what a library said, to quote inside one of our sentences."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text.rstrip(".")[:200]
