"""Host/GPU transfers inside step loops: the values arrive, on CUDA one step late."""

from __future__ import annotations

import pytest
import torch

from dedit_app.hostreads import TrailingReads, to_device


def _run(device: torch.device) -> tuple[list, torch.Tensor | None]:
    reads = TrailingReads(device)
    seen = [reads.push(torch.full((2,), float(k), device=device) * 2) for k in range(4)]
    return seen, reads.flush()


def test_off_cuda_every_read_arrives_at_once():
    seen, last = _run(torch.device("cpu"))
    assert [t.tolist() for t in seen] == [[0.0, 0.0], [2.0, 2.0], [4.0, 4.0], [6.0, 6.0]]
    assert last is None
    x = torch.arange(6.0)
    assert torch.equal(to_device(x, torch.device("cpu")), x)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_cuda_each_read_arrives_one_step_late_and_none_is_lost():
    device = torch.device("cuda")
    seen, last = _run(device)
    assert seen[0] is None
    assert [t.tolist() for t in seen[1:]] == [[0.0, 0.0], [2.0, 2.0], [4.0, 4.0]]
    assert last.tolist() == [6.0, 6.0] and last.device.type == "cpu"
    x = torch.arange(6.0)
    assert torch.equal(to_device(x, device).cpu(), x)
