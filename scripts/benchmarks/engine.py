"""The engine end to end: fine-tuning steps and sampling steps, ours beside the paper's
formulation (see benchmarks.finetune and benchmarks.sample)."""

from __future__ import annotations

from collections.abc import Iterator

from benchmarks import finetune, sample
from benchmarks.common import Row


def run(profile: str) -> Iterator[Row]:
    yield from finetune.run(profile)
    yield from sample.run(profile)
