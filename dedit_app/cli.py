"""The ``dedit`` command (also ``python -m dedit_app``): segment, prepare, edit, inspect,
and check whether a model will work on this computer.

Exit codes: 0 done; 1 a problem with the input, printed as one line
``dedit: error: <sentence>`` (``check``: the model cannot work as chosen, said above it);
2 a usage error (argparse); 130 cancelled with Ctrl-C (the project is left as it was; a
Ctrl-C during the final save waits for the save, and the line says the project holds the
work).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from dedit_app.errors import Cancelled, DEditError, EditError, ProjectError, as_out_of_memory
from dedit_app.jobs import Progress, run_job
from dedit_app.wording import counted

__all__ = ["main"]

# Each command's --help shows its own examples; `dedit --help` shows them all.
EXAMPLES = {
    "segment": """\
  dedit segment photo.jpg -o photo.dedit
  dedit segment photo.jpg -o photo.dedit --backend grounded-sam --text "bag. table. person"
  dedit segment photo.jpg -o photo.dedit --backend sam --option checkpoint=sam_vit_b_01ec64.pth
  dedit segment photo.jpg -o photo.dedit --backend sam --option points_per_side=16
""",
    "finetune": """\
  dedit finetune photo.dedit --model stabilityai/stable-diffusion-xl-base-1.0
  dedit finetune photo.dedit --model ~/models/sdxl --lora 8 --emb-steps 300 --model-steps 300
  dedit finetune photo.dedit --model ~/models/sdxl --reference other.dedit   # for swaps
""",
    "edit": """\
  dedit edit photo.dedit recon -o recon.png
  dedit edit photo.dedit text --item 0 --prompt "a white handbag" -o white.png
  dedit edit photo.dedit text --item 0 --prompt "a leather *" -o leather.png  # * = its tokens
  dedit edit photo.dedit swap --item 0 --reference other.dedit --ref-item 2 -o swap.png
  dedit edit photo.dedit swap --item 0 --reference other.jpg --ref-item 2 -o swap.png  # editor
  dedit edit photo.dedit move --item 0 --dx 200 --dy 140 --scale 0.5 -o moved.png
  dedit edit photo.dedit move --move 0:200:140:0.5 --move 3:-50:0 --order 3 0 -o moved.png
  dedit edit photo.dedit move --item 0 --angle 15 -o tilted.png   # turned 15° clockwise
  dedit edit photo.dedit flip --item 0 -o flipped.png   # mirrored left to right
  dedit edit photo.dedit flip --item 0 --vertical -o upside-down.png   # top to bottom
  dedit edit photo.dedit duplicate --item 0 --apply -o two.png   # a copy beside it
  dedit edit photo.dedit duplicate --item 0 --dx -300 --scale 0.8 -o two.png
  dedit edit photo.dedit remove --item 0 --candidates 4 -o removed.png
  dedit edit photo.dedit redraw -o redrawn.png   # items reshaped in the editor, not yet redrawn
""",
    "info": """\
  dedit info photo.dedit
""",
    "export": """\
  dedit export photo.dedit -o now.png
  dedit export photo.dedit --before 1 -o photo.png    # the photo before every edit
  dedit export scan.dedit --8-bit -o small.png   # a 16-bit photo's PNG at 8 bits
  dedit export photo.dedit --items 3 -o bag.png   # item 3 alone, transparent around it
""",
    "back": """\
  dedit back photo.dedit 3     # the picture, items and prompts from before edit 3
""",
    "check": """\
  dedit check --model stabilityai/stable-diffusion-xl-base-1.0   # here? where it runs?
  dedit check photo.dedit --device cpu
""",
}


def _examples(*commands: str) -> str:
    return "examples:\n" + "".join(EXAMPLES[c] for c in commands or EXAMPLES)


SEGMENT_ENVIRONMENT = """\
environment:
  DEDIT_SAM_CHECKPOINT  the SAM checkpoint (.pth) to use when --option checkpoint= names none
  DEDIT_MODEL_DIR       the folder searched for Meta's published SAM checkpoints, vit_h, then
                        vit_l, then vit_b (default: ~/.cache/dedit)
  DEDIT_GROUNDING_DINO  grounded-sam's Grounding DINO hub id or folder when --option model=
                        names none (default: IDEA-Research/grounding-dino-tiny)
"""

# The command line's sampling defaults: one picture, always the same seed, so a command
# run again gives the same picture (the editor's Settings make 2 with a new random seed).
CANDIDATES = 1
SEED = 0


class _Bar:
    """A plain-text progress bar on stderr: redrawn in place on a terminal, a line every
    tenth of the way otherwise (logs, CI)."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.monotonic()
        self.last_tenth = -1
        self.drawn = False

    def __call__(self, p: Progress) -> None:
        if not p.total:
            if p.message:
                self._line(p.message)
            return
        frac = min(max(p.fraction, 0.0), 1.0)
        filled = int(frac * 30)
        bar = "#" * filled + "-" * (30 - filled)
        loss = f" loss {p.loss:.4f}" if p.loss is not None else ""
        elapsed = time.monotonic() - self.start
        text = f"{p.stage or 'working':<9} [{bar}] {p.step}/{p.total}{loss} {elapsed:.0f}s"
        if self.tty:
            self.stream.write("\r" + text)
            self.stream.flush()
            self.drawn = True
            if p.step >= p.total:
                self.done()
        else:
            tenth = int(frac * 10)
            if tenth != self.last_tenth:
                self.last_tenth = tenth
                self._line(text)

    def _line(self, text: str) -> None:
        self.done()
        self.stream.write(text + "\n")
        self.stream.flush()

    def done(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False


class _Help(argparse.HelpFormatter):
    """Descriptions wrapped to the terminal; text laid out in lines (examples, the
    environment) kept as it is."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def _parser() -> argparse.ArgumentParser:
    fmt = _Help
    parser = argparse.ArgumentParser(
        prog="dedit",
        description="D-Edit Studio from the command line: every item in a picture is worth a "
        "prompt.",
        epilog=_examples(),
        formatter_class=fmt,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    seg = sub.add_parser(
        "segment",
        help="split a photo into items and start a project",
        description="Split a photo into items and save them as a new project.",
        epilog=SEGMENT_ENVIRONMENT + "\n" + _examples("segment"),
        formatter_class=fmt,
    )
    seg.add_argument("image", help="the photo (PNG, JPEG, WebP, TIFF, BMP, GIF)")
    seg.add_argument("-o", "--output", required=True, help="project folder to create (NAME.dedit)")
    seg.add_argument(
        "--backend", default="classical", help="classical, sam, grounded-sam (default: %(default)s)"
    )
    seg.add_argument("--text", default=None, help='item names for grounded-sam, "bag. table"')
    seg.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a backend option (repeat for more), such as checkpoint=FILE, model_type=vit_b, "
        "device=cpu or points_per_side=16 for sam; see docs/SEGMENTATION.md",
    )
    seg.add_argument(
        "--force",
        action="store_true",
        help="replace the project at -o; its preparation (the learned weights) and its edit "
        "history are thrown away",
    )

    ft = sub.add_parser(
        "finetune",
        help="prepare a project: learn its item tokens",
        description="Prepare a project: learn a few tokens per item and adapt the model to "
        "the photo, so that edits can name the items.",
        epilog=_examples("finetune"),
        formatter_class=fmt,
    )
    ft.add_argument("project", help="the project folder (NAME.dedit)")
    _model_args(ft, required=True)
    ft.add_argument("--reference", help="a second project to prepare jointly (for swaps)")
    ft.add_argument(
        "--emb-steps", type=int, default=500, help="stage-1 micro-steps (default: %(default)s)"
    )
    ft.add_argument(
        "--model-steps", type=int, default=500, help="stage-2 micro-steps (default: %(default)s)"
    )
    ft.add_argument(
        "--lora",
        type=int,
        default=0,
        metavar="RANK",
        help="train a LoRA of this rank instead of the cross-attention weights (default: "
        "%(default)s, no LoRA)",
    )
    ft.add_argument("--tokens", type=int, default=5, help="tokens per item (default: %(default)s)")
    ft.add_argument(
        "--batch-size", type=int, default=2, help="images per micro-step (default: %(default)s)"
    )
    ft.add_argument(
        "--grad-accum", type=int, default=5, help="micro-steps per update (default: %(default)s)"
    )
    ft.add_argument(
        "--emb-lr",
        type=float,
        default=1e-4,
        help="stage-1 learning rate, for the tokens (default: %(default)g)",
    )
    ft.add_argument(
        "--unet-lr",
        type=float,
        default=5e-5,
        help="stage-2 learning rate, for the model's weights (default: %(default)g)",
    )
    ft.add_argument(
        "--seed", type=int, default=0, help="random seed of the training (default: %(default)s)"
    )
    ft.add_argument(
        "--low-memory",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="gradient checkpointing; models a stage does not use wait in RAM (default: on "
        "for SDXL on a GPU under 28 GB)",
    )

    ed = sub.add_parser(
        "edit",
        help="edit a prepared project and write the result",
        description=f"Edit a prepared project and write the result. By default the command "
        f"line makes {CANDIDATES} candidate with seed {SEED}, so the same command gives the "
        "same picture again; the editor makes 2 with a new random seed each time (--candidates "
        "and --seed change it here).",
        epilog=_examples("edit"),
        formatter_class=fmt,
    )
    ed.add_argument("project", help="the prepared project folder (NAME.dedit)")
    ed.add_argument(
        "kind",
        choices=["recon", "text", "swap", "move", "flip", "duplicate", "remove", "redraw"],
        help="the edit to make",
    )
    ed.add_argument(
        "-o",
        "--output",
        required=True,
        help="image to write; more candidates go to NAME-2.png, NAME-3.png, ...",
    )
    _eight_bit_option(ed)
    ed.add_argument(
        "--item",
        type=int,
        nargs="+",
        help="the item to edit (remove, flip: one or more items; flip mirrors them as a "
        "group, about the middle of the box around them all; duplicate: the item to copy, "
        "put beside it unless --dx, --dy, --scale or --angle say where)",
    )
    ed.add_argument(
        "--vertical",
        action="store_true",
        help="flip: mirror top to bottom instead of left to right",
    )
    ed.add_argument("--prompt", help="text edit: the new prompt (* = the item's own tokens)")
    ed.add_argument(
        "--dx", type=float, default=0.0, help="move: pixels to the right (default: %(default)s)"
    )
    ed.add_argument(
        "--dy", type=float, default=0.0, help="move: pixels down (default: %(default)s)"
    )
    ed.add_argument(
        "--scale", type=float, default=1.0, help="move: size factor (default: %(default)s)"
    )
    ed.add_argument(
        "--angle",
        type=float,
        default=0.0,
        help="move: degrees to turn the item, clockwise as seen (default: %(default)s)",
    )
    ed.add_argument(
        "--move",
        action="append",
        default=[],
        metavar="I:DX:DY[:S[:A]]",
        help="move (or duplicate) several items (repeat); instead of "
        "--item/--dx/--dy/--scale/--angle",
    )
    ed.add_argument("--order", type=int, nargs="+", help="move: stacking order, bottom first")
    ed.add_argument(
        "--reference",
        help="swap: the reference project prepared jointly, or the reference photo the "
        "project was prepared with in the editor",
    )
    ed.add_argument("--ref-item", type=int, help="swap: the item of the reference photo")
    ed.add_argument(
        "--extra-active", type=int, nargs="+", default=[], help="more items to regenerate"
    )
    ed.add_argument(
        "--seed",
        type=int,
        default=SEED,
        help="random seed of the first candidate (default: %(default)s, the same picture "
        "every time)",
    )
    ed.add_argument("--steps", type=int, default=20, help="denoising steps (default: %(default)s)")
    ed.add_argument(
        "--guidance",
        type=float,
        default=3.0,
        help="how closely to follow the prompt; 1 or less turns guidance off (default: "
        "%(default)s)",
    )
    ed.add_argument(
        "--strength",
        type=float,
        default=0.6,
        help="the share of the steps, 0 to 1, for which the soft band around the edit follows "
        "the photo (default: %(default)s)",
    )
    ed.add_argument(
        "--edge", type=float, default=24.0, help="soft band width in pixels (default: %(default)s)"
    )
    ed.add_argument(
        "--candidates",
        type=int,
        default=CANDIDATES,
        help="pictures to make, each with the next seed (default: %(default)s)",
    )
    ed.add_argument(
        "--scheduler",
        default="model",
        choices=["model", "euler", "ddim", "ddpm"],
        help="the sampler; model: the one the model comes with (default: %(default)s)",
    )
    ed.add_argument(
        "--apply", action="store_true", help="make the (first) result the project's new picture"
    )
    _model_args(ed, required=False)

    info = sub.add_parser(
        "info",
        help="describe a project",
        description="Describe a project: its size, its items (share of the picture, tokens, "
        "prompts), whether and how it was prepared, and its edit history.",
        epilog=_examples("info"),
        formatter_class=fmt,
    )
    info.add_argument("project", help="the project folder (NAME.dedit)")

    export = sub.add_parser(
        "export",
        help="write a project's picture, or one from before an edit, to a file",
        description="Write the project's picture at its full resolution to a PNG, TIFF, "
        "JPEG or WebP file; with --before N, the picture from before its edit N (as "
        "`dedit info` numbers them): every earlier picture stays in the project.",
        epilog=_examples("export"),
        formatter_class=fmt,
    )
    export.add_argument("project", help="the project folder (NAME.dedit)")
    export.add_argument("-o", "--output", required=True, help="the picture file to write")
    export.add_argument(
        "--before",
        type=int,
        metavar="N",
        help="the picture from before edit N (1 = the photo itself); default: the picture now",
    )
    export.add_argument(
        "--items",
        type=int,
        nargs="+",
        metavar="N",
        help="only these items, cut out: the box round them, transparent elsewhere (.png or .webp)",
    )
    _eight_bit_option(export)

    back = sub.add_parser(
        "back",
        help="go back to the picture from before an edit, as a new edit",
        description="Make the picture, items and prompts from before edit N (as `dedit "
        "info` numbers them) the project's own again. It is saved as one more edit: the "
        "edits after N stay in the history, and going back to before this one undoes it.",
        epilog=_examples("back"),
        formatter_class=fmt,
    )
    back.add_argument("project", help="the project folder (NAME.dedit)")
    back.add_argument("before", type=int, metavar="N", help="the edit to go back to before")

    check = sub.add_parser(
        "check",
        help="say whether a model is here and where it would run, before anything loads",
        description="Say where the model's files are (a local folder, the Hugging Face "
        "cache, still to download) and where it would run (the GPU's name, memory and "
        "precision, or the processor, and why), as the editor's Settings > Model does. "
        "Loads nothing and never uses the network. Exit code 1 when the model cannot work "
        "as chosen.",
        epilog=_examples("check"),
        formatter_class=fmt,
    )
    check.add_argument("project", nargs="?", help="check the model this project was prepared with")
    check.add_argument(
        "--model",
        help="hub id or local diffusers folder (default: the project's, else SDXL base)",
    )
    check.add_argument("--device", help="cpu, cuda, mps (default: the best available)")
    check.add_argument("--dtype", help="fp32, fp16, bf16 (default: the device's best)")
    check.add_argument(
        "--low-memory",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="as for `dedit finetune` (default: on for SDXL on a GPU under 28 GB)",
    )
    return parser


class SavedBeforeCtrlC(KeyboardInterrupt):
    """Ctrl-C came during a command's final save, which was finished first: the project
    holds the command's work (main says so instead of "the project is unchanged")."""

    def __init__(self, folder: Path, what: str) -> None:
        super().__init__(f"{folder} holds {what}")
        self.folder = folder
        self.what = what


@contextlib.contextmanager
def _final_save(folder: Path | None, what: str) -> Iterator[None]:
    """Run a command's final save with Ctrl-C held back until it returns, so the project
    is either as it was or saved whole, and main's last words are true. A Ctrl-C held back
    is raised afterwards as :class:`SavedBeforeCtrlC`; one that comes through all the same
    (off the main thread, or raised inside) is too when project.json was replaced."""
    from dedit_app.project_file import project_bytes

    before = project_bytes(folder) if folder is not None else None
    pressed: list[int] = []

    def hold_back(signum: int, _frame: object) -> None:
        if not pressed:  # a large weights file can take seconds to write
            print("\ndedit: finishing the save first ...", file=sys.stderr, flush=True)
        pressed.append(signum)

    main_thread = threading.current_thread() is threading.main_thread()  # signals go there
    previous = signal.signal(signal.SIGINT, hold_back) if main_thread else None
    try:
        yield
    except KeyboardInterrupt:
        if folder is not None and project_bytes(folder) != before:
            raise SavedBeforeCtrlC(folder, what) from None
        raise
    finally:
        if main_thread:  # None: a handler set outside Python; Python's own comes back
            signal.signal(
                signal.SIGINT, previous if previous is not None else signal.default_int_handler
            )
    if pressed and folder is not None:
        raise SavedBeforeCtrlC(folder, what)


def _model_args(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument(
        "--model",
        required=required,
        help="hub id or local diffusers folder"
        + ("" if required else " (default: the one the project was prepared with)"),
    )
    p.add_argument("--device", help="cpu, cuda, mps (default: the best available)")
    p.add_argument(
        "--dtype",
        help="fp32, fp16, bf16 (default: bf16 on NVIDIA GPUs since Ampere, fp16 on older "
        "ones and Apple's, fp32 on the processor)",
    )
    p.add_argument("--vae", help="a replacement VAE (hub id or folder)")
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the UNet (pays a one-time compile; see docs/PERFORMANCE.md)",
    )


def _load_project(path: str):
    from dedit_app.project import Project

    return Project.load(path)


def _load_model(args, fallback: str | None = None):
    from dedit_app.models import compile_cache_dir, load_model
    from dedit_app.slow_device import processor_warning

    source = args.model or fallback
    if not source:
        raise EditError("Say which model to use with --model (the project does not name one).")
    if slow := processor_warning(source, args.device):
        print(f"note: {slow}", file=sys.stderr, flush=True)
    print(f"loading {source} ...", file=sys.stderr, flush=True)
    model = load_model(source, device=args.device, dtype=args.dtype, vae=args.vae)
    if getattr(args, "compile", False):
        model.compile_unet(cache_dir=compile_cache_dir())
    return model


def _cmd_segment(args) -> int:
    from dedit_app import colour_profiles
    from dedit_app.imageio import load_image
    from dedit_app.project import Project
    from dedit_app.project_file import PROJECT_FILE
    from dedit_app.segment import get_backend, parse_options

    options = parse_options(args.option)
    out = Path(args.output)
    if out.exists() and not args.force:
        raise ProjectError(f"{out} already exists; choose another name or add --force.")
    if (
        out.exists()
        and not (out / PROJECT_FILE).is_file()
        and (not out.is_dir() or any(out.iterdir()))
    ):  # --force replaces a project, never a file or a folder of other things
        raise ProjectError(
            f"{out} is not a D-Edit project, so --force does not replace it; choose another name."
        )
    lost = _discarded(out)  # read before anything is replaced
    notes: list[str] = []
    deep: list = []  # the photo at 16 bits, when its file has them: kept for PNG/TIFF exports
    image = load_image(args.image, notes=notes, deep=deep)
    for note in notes:  # transparency placed on white, frames left out: said, not silent
        print(f"note: {note}", file=sys.stderr, flush=True)
    segmenter = get_backend(args.backend, **options)
    segmenter.set_image(image)
    seg = segmenter.segment_auto(text=args.text)
    project = Project.new(
        image,
        seg.labels,
        list(seg.names),
        source=Path(args.image).name,
        profile=colour_profiles.of_file(args.image),
        deep=deep[0] if deep else None,
    )
    try:
        with _final_save(out, "the new project"):
            project.save(out)
    finally:
        if lost and project.folder == out:  # saved: what was there is gone
            print(f"note: replaced {out}: {lost}.", file=sys.stderr, flush=True)
    print(f"{out}: {counted(len(seg.names), 'item')}: {'; '.join(seg.names)}")  # names hold commas
    return 0


def _discarded(folder: Path) -> str:
    """What replacing the project in ``folder`` throws away, as "its preparation and 3 edits
    are gone"; "" when there is no project there or it holds neither."""
    from dedit_app.project_file import PROJECT_FILE, read_document

    if not (folder / PROJECT_FILE).is_file():
        return ""
    doc = read_document(folder)  # a damaged one: its sentence, as the save would give
    training, edits = doc.get("training"), len(doc.get("history") or [])
    prepared = isinstance(training, dict) and "weights" in training
    if prepared and edits:
        return f"its preparation and {counted(edits, 'edit')} are gone"
    if prepared:
        return "its preparation is gone"
    if edits:
        return f"its {counted(edits, 'edit')} {'is' if edits == 1 else 'are'} gone"
    return ""


def _cmd_finetune(args) -> int:
    from dedit_app.finetune import FinetuneOptions, finetune_project, store_result
    from dedit_app.recompute import low_memory_reason

    project = _load_project(args.project)
    project.check_writable()  # the weights are written there after the training
    reference = _joint_reference(args.reference, args.project) if args.reference else None
    options = FinetuneOptions(
        emb_steps=args.emb_steps,
        model_steps=args.model_steps,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        emb_lr=args.emb_lr,
        unet_lr=args.unet_lr,
        n_tokens=args.tokens,
        lora_rank=args.lora,
        seed=args.seed,
    )
    options.check()
    model = _load_model(args)
    # neither --low-memory nor --no-low-memory: on where the GPU is too small without
    why = low_memory_reason(model.family, model.device) if args.low_memory is None else ""
    if why:
        print(f"note: {why} --no-low-memory turns it off.", file=sys.stderr, flush=True)
    if args.low_memory or why:
        options = options.with_low_memory()
    bar = _Bar()
    try:
        result = run_job(finetune_project(model, project, reference, options), bar)
    except (MemoryError, RuntimeError) as err:
        # low memory is on already: main's advice to add it would not help
        oom = options.gradient_checkpointing and as_out_of_memory(
            err, "`dedit finetune` in low-memory mode", "use a smaller --model"
        )
        if oom:
            raise oom from err
        raise
    bar.done()
    with _final_save(project.folder, "the preparation"):
        store_result(project, result, reference=reference)
    losses = result.losses
    print(f"{args.project}: prepared on {model.name}; loss {losses[0]:.4f} -> {losses[-1]:.4f}")
    return 0


def _joint_reference(path: str, project: str):
    """The reference project to prepare ``project`` with. A photo is refused with the way
    to make it one: its items must be found first, and kept, for a swap to name them."""
    if Path(path).is_file():
        stem = Path(path).with_suffix(".dedit")
        raise EditError(
            f"{path} is a photo; prepare with a project of it: `dedit segment {path} -o "
            f"{stem}`, then `dedit finetune {project} --reference {stem}`."
        )
    return _load_project(path)


def _request(args, project):
    from dedit_app.edits import (
        DuplicateRequest,
        MoveRequest,
        ReconRequest,
        RedrawRequest,
        RemoveRequest,
        SwapRequest,
        TextRequest,
    )
    from dedit_app.partition import Move, copy_offset, flip_moves, item_bbox
    from dedit_app.sampler import SamplingOptions

    opts = SamplingOptions(
        steps=args.steps,
        guidance=args.guidance,
        strength=args.strength,
        edge=args.edge,
        candidates=args.candidates,
        seed=args.seed,
        scheduler=args.scheduler,
    )
    extra = tuple(args.extra_active)

    def need(value, flag: str):
        if value is None:
            raise EditError(f"The {args.kind} edit needs {flag}.")
        if flag.startswith("--item") and args.kind not in ("remove", "flip"):
            if len(value) > 1:
                raise EditError(
                    f"The {args.kind} edit takes one --item; remove and flip take several."
                )
            return value[0]
        return value

    if args.vertical and args.kind != "flip":
        raise EditError("--vertical goes with the flip edit: `dedit edit PROJECT flip --vertical`.")
    if args.kind == "recon":
        return ReconRequest(opts)
    if args.kind == "text":
        return TextRequest(need(args.item, "--item"), need(args.prompt, "--prompt"), extra, opts)
    if args.kind == "swap":
        need(args.reference, "--reference")
        return SwapRequest(
            need(args.item, "--item"), need(args.ref_item, "--ref-item"), extra, opts
        )
    if args.kind == "remove":
        first, *also = need(args.item, "--item")
        return RemoveRequest(first, extra, opts, also=tuple(also))
    if args.kind == "flip":
        items = need(args.item, "--item")
        twice = sorted({i for i in items if items.count(i) > 1})
        if twice:
            raise EditError(f"Name each item to flip once; item {twice[0]} is named twice.")
        boxes = {i: item_bbox(project.labels, i) for i in items}
        return MoveRequest(flip_moves(boxes, args.vertical), None, extra, opts)
    if args.kind == "redraw":
        # What the editor saved as left to redraw
        drawn = project.drawn if project.drawn is not None else project.labels
        request = RedrawRequest(drawn, extra, opts)
        if not request.changed(project.labels).any():
            # the engine's sentence sends the user to the brush, which only the editor has
            raise EditError(
                "No item was reshaped since the picture was made: reshape items in the "
                "editor (brush or erase), save the project, then redraw here."
            )
        return request
    moves = []
    for text in args.move:
        parts = text.split(":")
        try:
            if len(parts) not in (3, 4, 5):
                raise ValueError
            given = [float(x) for x in parts[1:]]
            dx, dy, scale, angle = given + [1.0, 0.0][len(given) - 2 :]
            moves.append(Move(int(parts[0]), dx, dy, scale, angle=angle))
        except ValueError:
            raise EditError(
                f"--move {text!r} must look like ITEM:DX:DY, ITEM:DX:DY:SCALE or "
                "ITEM:DX:DY:SCALE:ANGLE."
            ) from None
    single = (args.item, args.dx, args.dy, args.scale, args.angle) != (None, 0.0, 0.0, 1.0, 0.0)
    if moves and single:  # one of the two would be dropped without a word
        raise EditError(
            "Give the moves with --move, or one item with --item --dx --dy --scale --angle, "
            "not both."
        )
    if not moves:
        item = need(args.item, "--item or --move")
        dx, dy = args.dx, args.dy
        placed = (args.dx, args.dy, args.scale, args.angle) != (0.0, 0.0, 1.0, 0.0)
        if args.kind == "duplicate" and not placed:  # beside it, as a design tool puts it
            dx, dy = copy_offset(item_bbox(project.labels, item), project.size)
        moves = [Move(item, dx, dy, args.scale, angle=args.angle)]
    if args.kind == "duplicate":
        if args.order:
            raise EditError(
                "A duplicate lays its copies on top in the order given; leave out --order."
            )
        return DuplicateRequest(tuple(moves), extra, opts)
    order = tuple(args.order) if args.order else None
    return MoveRequest(tuple(moves), order, extra, opts)


def _load_reference(path: str, project):
    """The reference of a swap: a project, or the photo ``project`` was prepared with (in
    the editor), with the items its preparation kept (:mod:`dedit_app.reference_items`)."""
    from dedit_app.imageio import load_image
    from dedit_app.project import Project
    from dedit_app.reference_items import prepared_reference

    if Path(path).is_dir():
        return _load_project(path)
    image = load_image(path)
    kept = prepared_reference(project, of=image) if project.has_weights else None
    if kept is None:
        raise EditError(
            f"{project.folder} was not prepared together with the photo {path}; make it a "
            f"project (`dedit segment {path} -o REFERENCE.dedit`) and prepare the two "
            "together (`dedit finetune PROJECT --reference REFERENCE.dedit`)."
        )
    return Project.new(image, kept.labels, list(kept.names), source=Path(path).name)


def _outside(out: Path, *bundles) -> None:
    """EditError when ``out`` would be written inside one of the projects ``bundles``."""
    for bundle in bundles:
        if bundle is None or bundle.folder is None:
            continue
        if out.resolve().is_relative_to(bundle.folder.resolve()):
            raise EditError(
                f"{out} is inside the project {bundle.folder}, whose files only the project "
                "writes; choose a place outside it for the picture."
            )


def _outputs(path: Path, n: int) -> list[Path]:
    return [path] + [path.with_name(f"{path.stem}-{k}{path.suffix}") for k in range(2, n + 1)]


def _cmd_edit(args) -> int:
    from dedit_app.edits import plan_edit, run_edit
    from dedit_app.imageio import SAVE_FORMATS, check_save_target, save_image

    out = Path(args.output)
    if out.suffix.lower() not in SAVE_FORMATS:
        *most, last = SAVE_FORMATS
        raise EditError(f"{out} must end in {', '.join(most)} or {last}.")
    project = _load_project(args.project)
    reference = _load_reference(args.reference, project) if args.reference else None
    _outside(out, project, reference)
    # where the picture goes, and whether it fits its format: before minutes of work
    check_save_target(out, project.size)
    request = _request(args, project)
    plan_edit(project, request, reference)  # every user error before the model loads
    model = _load_model(args, (project.training or {}).get("source"))
    bar = _Bar()
    result = run_job(run_edit(model, project, request, reference=reference), bar)
    bar.done()
    paths = _outputs(out, len(result.images))
    for path, image in zip(paths, result.images):
        save_image(path, image, profile=project.profile, deep=_deep(project, args))
    if args.apply:
        labels = result.labels if result.labels is not None else project.labels
        entry = result.entry()
        if reference is not None:  # which photo a swap took its item from, as the editor
            entry["reference"] = reference.source
        # a reshape by hand not yet redrawn stays to redraw where this edit did not paint
        project.apply(
            result.images[0], labels, entry, result.active | result.soft, items=result.items
        )
        with _final_save(project.folder, "the edit"):
            project.save()
    print(", ".join(str(p) for p in paths))
    return 0


def _cmd_info(args) -> int:
    from dedit_app.colour_profiles import describe
    from dedit_app.going_back import set_aside
    from dedit_app.looks import look_names
    from dedit_app.partition import item_areas
    from dedit_app.project import weights_metadata
    from dedit_app.wording import edit_words

    project = _load_project(args.project)
    h, w = project.size
    space = "" if project.profile is None else f", colour profile {describe(project.profile)}"
    space += "" if project.deep is None else ", 16 bits per channel"
    print(f"{project.folder}: {w} x {h} pixels{space}, {counted(len(project.items), 'item')}")
    counts = item_areas(project.labels, len(project.items))
    swapped = look_names(project)
    for i, item in enumerate(project.items):
        share = 100.0 * counts[i] / counts.sum()
        extra = f"  looks like {swapped[i]}" if i in swapped else ""
        extra += f"  prompt {item.prompt!r}" if item.prompt else ""
        tokens = f"  tokens {item.tokens}" if item.tokens else ""
        print(f"  {i:>3} {item.name:<20} {share:5.1f}%{tokens}{extra}")
    t = project.training or {}
    if project.prepared:
        print(
            f"prepared on {t.get('base_model', '?')} ({t.get('unet', '?')}, "
            f"{t.get('emb_steps', '?')} + {t.get('model_steps', '?')} steps)"
            + (f" jointly with {_reference_words(t)}" if t.get("reference_key") else "")
        )
        try:
            weights_metadata(project)
        except DEditError as err:  # a weights file missing or damaged since
            print(f"but its learned weights cannot be used: {err}")
        else:
            if project.refined:
                print("items changed by hand since preparing; prepare again for the best results")
    else:
        print("not prepared yet (dedit finetune)")
    if project.drawn is not None:
        print("items reshaped by hand since the picture was made: `dedit edit PROJECT redraw`")
    print(f"{counted(len(project.history), 'edit')} in the history")
    names = [item.name for item in project.items]
    aside = set_aside(project.history)
    for k, record in enumerate(project.history, start=1):
        when = str(record.get("time", "")).replace("T", " ")
        note = "  set aside by going back" if aside[k - 1] else ""
        print(f"  {k:>3} {edit_words(record, names)}" + (f"  ({when})" if when else "") + note)
    if project.history:
        print("the picture before edit N: `dedit export PROJECT --before N -o FILE`")
        print("going back to before edit N, as a new edit: `dedit back PROJECT N`")
    return 0


def _eight_bit_option(parser) -> None:
    parser.add_argument(
        "--8-bit",
        dest="eight_bit",
        action="store_true",
        help="write a PNG or TIFF of a 16-bit photo at 8 bits per channel, a smaller file; by "
        "default it is 16-bit, its untouched pixels the photo file's own",
    )


def _deep(project, args):
    """The 16-bit photo a PNG or TIFF is written from, unless --8-bit (None: 8 bits)."""
    return None if args.eight_bit else project.deep


def _cmd_export(args) -> int:
    from dedit_app.errors import ItemError
    from dedit_app.going_back import picture_before
    from dedit_app.imageio import check_save_target, cut_out, save_image

    out = Path(args.output)
    project = _load_project(args.project)
    _outside(out, project)
    check_save_target(out, project.size)  # an extension it cannot write, among the rest
    if args.before is None:
        picture, labels = project.image, project.labels
    else:
        picture, labels = picture_before(project, args.before, args.project)
    deep, alpha = _deep(project, args), None
    if args.items:
        n = len(project.items)
        for item in args.items:  # the map then: an item may have no pixels in it
            if not 0 <= item < n:
                raise ItemError(f"There is no item {item}; the project has items 0 to {n - 1}.")
            if not (labels == item).any():
                name = project.items[item].name
                raise ItemError(f"Item {item} ({name}) has no pixels there to cut out.")
        picture, alpha, deep = cut_out(picture, labels, args.items, deep)
    save_image(out, picture, profile=project.profile, deep=deep, alpha=alpha)
    print(out)
    return 0


def _cmd_back(args) -> int:
    from dedit_app.going_back import back_before
    from dedit_app.wording import edit_words

    project = _load_project(args.project)
    way = back_before(project, args.before, args.project)
    project.apply(way.image, way.labels, way.entry, items=way.items)
    with _final_save(project.folder, "the picture from before that edit"):
        project.save()
    names = [item.name for item in project.items]
    print(f"{project.folder}: edit {len(project.history)}, {edit_words(way.entry, names)}")
    return 0


def _reference_words(training: dict) -> str:
    name = training.get("reference")
    return f"the reference photo {name}" if name else "a reference photo"


def _cmd_check(args) -> int:
    from dedit_app.hub import DEFAULT_MODEL
    from dedit_app.placement import COMMAND_LINE, describe_runs, describe_source

    model = args.model
    if model is None and args.project:
        project = _load_project(args.project)
        model = (project.training or {}).get("source")
        if not model:
            why = "is not prepared yet, so it names no model"
            if project.prepared:  # prepared before projects kept the model's source
                why = "does not say which model prepared it"
            raise EditError(f"{args.project} {why}: say which with --model.")
    model = model or DEFAULT_MODEL
    low_memory = {None: "auto", True: "on", False: "off"}[args.low_memory]
    found = describe_source(model, args.device, args.dtype, COMMAND_LINE)
    runs = describe_runs(model, args.device, args.dtype, low_memory, COMMAND_LINE)
    # one line each, unwrapped: a wrapped `hf download` line would not paste into a shell
    print(f"model: {model}\n  {found.text}")
    print(f"runs:\n  {runs.text}")
    return 0 if found.ok and runs.ok else 1


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    for what in ("output", "project", "image", "reference"):
        if getattr(args, what, None) is not None and not str(getattr(args, what)).strip():
            print(f"dedit: error: the {what} name is empty; give a file name.", file=sys.stderr)
            return 1
    commands = {
        "segment": _cmd_segment,
        "finetune": _cmd_finetune,
        "edit": _cmd_edit,
        "info": _cmd_info,
        "export": _cmd_export,
        "back": _cmd_back,
        "check": _cmd_check,
    }
    from dedit_app.hub import offline_subject

    said = offline_subject.set("this computer")  # not "the editor"
    try:
        return commands[args.command](args)
    except SavedBeforeCtrlC as done:
        print(
            f"\ndedit: Ctrl-C came while the project was being saved, so the save was "
            f"finished first: {done.folder} holds {done.what}.",
            file=sys.stderr,
        )
        return 130
    except (KeyboardInterrupt, Cancelled):
        print("\ndedit: cancelled; the project is unchanged.", file=sys.stderr)
        return 130
    except DEditError as err:
        print(f"dedit: error: {err}", file=sys.stderr)
        return 1
    except (MemoryError, RuntimeError) as err:
        remedy = {
            "finetune": "add --low-memory or use --device cpu",
            "edit": "use fewer --candidates or --device cpu",
        }.get(args.command, "run it on the CPU")
        oom = as_out_of_memory(err, f"`dedit {args.command}`", remedy)
        if oom is None:
            raise  # a bug: keep the traceback
        print(f"dedit: error: {oom}", file=sys.stderr)
        return 1
    finally:
        offline_subject.reset(said)


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    raise SystemExit(main())
