"""Benchmarks: ours beside a reference implementation of the paper's formulation, same run.

    python scripts/bench.py MODE [--quick | --full]

MODE is one of the modules in ``scripts/benchmarks/`` (partition, attention, finetune,
sample, segment, engine, ui, estimate, profile) or ``all`` (every one but engine, estimate
and profile).
``--quick`` is the CPU profile (a couple of minutes); ``--full`` adds full-size shapes and,
where a GPU is present, full-size SDXL. ``estimate`` predicts full-size SDXL's FLOPs,
kernels and GPU memory on fake tensors, without a GPU; ``profile`` breaks a step's time
down by kind of operation with torch's profiler.
Each mode prints a table: case, implementation, median time, peak memory, ratio; a row
appears as soon as it is measured. A part that fails prints a ``failed`` row with its error,
the others still run, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Before torch loads: OpenMP's busy-waiting threads distort timings on a shared machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODES = ["partition", "attention", "finetune", "sample", "segment", "engine", "ui", "estimate",
         "profile"]  # fmt: skip
# engine is finetune + sample under one name; estimate predicts full-size SDXL on fake
# tensors (about 6 minutes, the same on any machine) and profile says where the steps'
# time goes (it times again what finetune and sample time), so they run only when named
ALL = [m for m in MODES if m not in ("engine", "estimate", "profile")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=MODES + ["all"])
    profile = parser.add_mutually_exclusive_group()
    profile.add_argument("--quick", action="store_const", const="quick", dest="profile")
    profile.add_argument("--full", action="store_const", const="full", dest="profile")
    parser.add_argument(
        "--only",
        metavar="NAMES",
        help="comma-separated part names (substrings) to run, e.g. 'job compiled,switches'",
    )
    args = parser.parse_args(argv)
    prof = args.profile or "quick"
    modes = ALL if args.mode == "all" else [args.mode]
    from benchmarks import common
    from benchmarks.common import print_table

    common.ONLY = tuple(t.strip() for t in (args.only or "").split(",") if t.strip())

    failed = 0
    took: list[str] = []
    for mode in modes:
        started = time.perf_counter()
        try:
            module = importlib.import_module(f"benchmarks.{mode}")
        except ModuleNotFoundError as err:
            if err.name == f"benchmarks.{mode}":
                print(f"[{mode}] not implemented yet", flush=True)
                continue
            raise
        print(f"\n== {mode} ({prof}) ==", flush=True)
        failed += print_table(module.run(prof))
        took.append(f"{mode} {time.perf_counter() - started:.0f} s")
    # What each mode costs: the quick profile has to stay under two minutes in all.
    print(f"\nTook: {', '.join(took)}.", flush=True)
    if failed:
        print(f"\n{failed} benchmark part(s) failed; their errors are above.", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
