"""Check the compiled engine with the real compiler on this machine, against the plain UNet,
on the tiny SDXL in a fresh kernel folder.

Preparations: three photos of one size. Prints, per photo, the time (compile included),
the graph count so far, the "compiling" notices, the largest difference of the trained
tensors from the plain run, and whether the model is still compiled. Photo 1 shares photo
0's key bucket (no compile expected), photo 2 has fewer items (a new bucket: compiles).

Edits: three edits of photo 0 with other prompts (other key counts) and regions: the
first compiles, the others must not; the largest pixel difference from the plain edit.

    .venv/bin/python scripts/check_compile.py [--backend inductor] [--kernels DIR]

About 7 minutes with inductor on a 2-core CPU. A second run with the same ``--kernels``
folder shows what a kept kernel folder saves.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchmarks.common import scratch_folder  # noqa: E402
from benchmarks.dedit_reference import tiny_model  # noqa: E402
from dedit_app.finetune import FinetuneOptions, TrainImage, finetune  # noqa: E402
from dedit_app.jobs import run_job  # noqa: E402
from dedit_app.sampler import SampleRequest, SamplingOptions, sample  # noqa: E402
from dedit_app.tiny_models import tiny_photo  # noqa: E402


def _photos() -> list[TrainImage]:
    image, four, names = tiny_photo()

    def bands(k: int) -> np.ndarray:
        return np.broadcast_to((np.arange(200) * k // 200).astype(np.int32), (300, 200)).copy()

    return [
        TrainImage(image, four, names),
        TrainImage(image[::-1].copy(), bands(5), ("sky", "stone wall", "dog", "lamp", "rug")),
        TrainImage(image[:, ::-1].copy(), bands(2), ("sea", "boat")),
    ]


def stages_of(stages: list[str]):
    return lambda p: stages.append(p.stage)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="inductor")
    parser.add_argument("--kernels", help="kernel folder (default: a new temporary one)")
    args = parser.parse_args()
    from torch._dynamo.utils import counters

    model = tiny_model()
    options = FinetuneOptions(emb_steps=3, model_steps=3, grad_accum=1, seed=0)
    photos = _photos()
    plain_edits = [run_job(sample(model, r)) for r in _edits(photos[0])]
    plain = [run_job(finetune(model, [p], options)) for p in photos]
    kernels = args.kernels or scratch_folder("dedit-kernels-")
    model.compile_unet(args.backend, cache_dir=kernels)
    for k, photo in enumerate(photos):
        stages: list[str] = []
        t0 = time.perf_counter()
        result = run_job(finetune(model, [photo], options), stages_of(stages))
        seconds = time.perf_counter() - t0
        diff = max(
            float((result.tensors[key] - value).abs().max() / value.abs().max().clamp_min(1e-12))
            for key, value in plain[k].tensors.items()
        )
        print(
            f"photo {k} ({len(photo.names)} items): {seconds:.1f} s, "
            f"graphs so far {counters['stats']['unique_graphs']}, "
            f"compiling notices {stages.count('compiling')}, max rel diff {diff:.1e}, "
            f"compiled {model.compiled} {model.compile_error}",
            flush=True,
        )
    model.reset()
    for k, (request, reference) in enumerate(zip(_edits(photos[0]), plain_edits)):
        stages = []
        graphs = counters["stats"]["unique_graphs"]
        t0 = time.perf_counter()
        result = run_job(sample(model, request), stages_of(stages))
        seconds = time.perf_counter() - t0
        diff = np.abs(result.images[0].astype(int) - reference.images[0]).max()
        print(
            f"edit {k} ({len(request.prompts)} prompts): {seconds:.1f} s, "
            f"new graphs {counters['stats']['unique_graphs'] - graphs}, "
            f"compiling notices {stages.count('compiling')}, max pixel diff {diff}, "
            f"compiled {model.compiled} {model.compile_error}",
            flush=True,
        )
    return 0 if model.compiled else 1


def _edits(photo: TrainImage) -> list[SampleRequest]:
    opts = SamplingOptions(steps=2, edge=10, previews=False)
    labels = photo.labels
    return [
        SampleRequest(labels, {0: "a wall", 1: "a table", 2: "a floor", 3: "a bag"},
                      photo.image, labels == 3, opts),
        SampleRequest(labels, {0: "a wall", 1: "a long wooden table with legs", 3: "a cat"},
                      photo.image, labels == 1, opts),
        SampleRequest(labels, {2: "green grass", 3: "a dog"}, photo.image, labels == 2, opts),
    ]  # fmt: skip


if __name__ == "__main__":
    torch.manual_seed(0)
    sys.exit(main())
