"""Write the tiny random SDXL and SD 1.5 (diffusers format, safetensors) used by tests,
benchmarks and screenshots.

    python scripts/make_tiny_models.py OUT_DIR [--family sdxl|sd15|both] [--seed N]

Creates OUT_DIR/tiny-sdxl and/or OUT_DIR/tiny-sd15; point the editor or
``dedit finetune --model`` at either folder. Offline; takes seconds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write the models into")
    parser.add_argument("--family", choices=["sdxl", "sd15", "both"], default="both")
    parser.add_argument("--seed", type=int, default=0, help="random weights seed (0)")
    args = parser.parse_args(argv)
    from dedit_app.tiny_models import save_tiny_model

    families = ["sdxl", "sd15"] if args.family == "both" else [args.family]
    for family in families:
        folder = save_tiny_model(args.out / f"tiny-{family}", family, seed=args.seed)
        print(folder)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
