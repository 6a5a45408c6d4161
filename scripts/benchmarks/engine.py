"""The engine end to end: fine-tuning steps and sampling steps, ours beside the paper's
formulation (see benchmarks.finetune and benchmarks.sample)."""

from __future__ import annotations

from benchmarks import finetune, sample
from benchmarks.common import Row


def run(profile: str) -> list[Row]:
    return finetune.run(profile) + sample.run(profile)
