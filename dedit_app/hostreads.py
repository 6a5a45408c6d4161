"""Moving small tensors between host and GPU inside a job's step loop without making the
CPU wait for the GPU.

A step loop is fast only while the CPU can queue step i+1's kernels as the GPU runs step
i. Any plain read of a CUDA tensor (``float(loss)``, ``.cpu()``) and any plain copy of host
data to the GPU (``tensor.to("cuda")`` synchronises the stream after the copy) drains that
queue: the GPU then idles while Python prepares the next step. These helpers keep such
transfers asynchronous on CUDA and are the plain operations everywhere else (CPU, MPS),
where there is nothing to overlap.
"""

from __future__ import annotations

import torch

__all__ = ["TrailingReads", "to_device"]


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``tensor`` (on the host) on ``device``; to CUDA through pinned memory without a
    synchronisation, elsewhere a plain ``.to``."""
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


class TrailingReads:
    """Device tensors read back to the host one step late.

    ``push(t)`` starts copying ``t`` to pinned host memory and returns the copy of the
    tensor pushed before it, which the GPU finished a step ago, so waiting for it costs
    nothing; ``flush()`` returns the last one (it waits, so call it once the loop is done).
    Off CUDA ``push`` returns ``t``'s host copy at once and ``flush`` has nothing left.
    """

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self._pending: tuple[torch.Tensor, torch.cuda.Event] | None = None

    def push(self, tensor: torch.Tensor) -> torch.Tensor | None:
        """Start reading ``tensor`` back; the host copy of the previous push (None at the
        first push on CUDA), or of ``tensor`` itself off CUDA."""
        tensor = tensor.detach()
        if not self.cuda:
            return tensor.cpu()
        host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
        host.copy_(tensor, non_blocking=True)
        done = torch.cuda.Event()
        done.record()
        ready, self._pending = self._pending, (host, done)
        return _finished(ready)

    def flush(self) -> torch.Tensor | None:
        """The host copy of the last push not yet returned (None if there is none)."""
        ready, self._pending = self._pending, None
        return _finished(ready)


def _finished(entry: tuple[torch.Tensor, torch.cuda.Event] | None) -> torch.Tensor | None:
    if entry is None:
        return None
    host, done = entry
    done.synchronize()
    return host
