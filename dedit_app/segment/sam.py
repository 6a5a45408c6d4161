"""Segment Anything (SAM) backend: the ``segment-anything`` package with Meta's checkpoints.

* Weights: the published ``vit_b`` / ``vit_l`` / ``vit_h`` ``.pth`` files, found through the
  ``checkpoint=`` option, the ``DEDIT_SAM_CHECKPOINT`` variable, or the model folder
  (``DEDIT_MODEL_DIR``, default ``~/.cache/dedit``) under their published names. They are
  read with ``torch.load(..., weights_only=True)`` (no pickle code runs) and loaded with
  ``strict=True``; the architecture comes from ``model_type`` or from the checkpoint's own
  image-encoder width, and a checkpoint that does not fit its architecture is refused with
  both named.
* One image embedding per photo: :meth:`SamSegmenter.set_image` runs the image encoder once
  (segment-anything's ``SamPredictor``); clicks, boxes and the automatic point grid only run
  the prompt encoder and the mask decoder against that cached embedding. (The package's
  ``SamAutomaticMaskGenerator`` would recompute the embedding on every call, so the grid is
  driven here, with the package's own stability score and box helpers.)
* Automatic masks become a partition with :func:`dedit_app.segment.masks.partition_from_masks`
  (higher predicted IoU wins an overlap, fragments join their nearest neighbour, the rest is
  "background").
* :meth:`SamSegmenter.release` moves the model and embedding to the CPU and empties the CUDA
  cache, so SDXL gets the GPU; the next call moves them back.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from dedit_app.errors import SegmentationError, SegmenterUnavailable
from dedit_app.jobs import CancelToken, Job, Progress
from dedit_app.segment.base import (
    Segmentation,
    Segmenter,
    check_image,
    check_option_names,
    config_from_options,
    device_problem,
    installed,
    pick_device,
    unique_names,
)
from dedit_app.segment.masks import partition_from_masks, upsample_labels
from dedit_app.segment.naming import describe_items

__all__ = [
    "SAM_ARCHS",
    "SAM_FILES",
    "SAM_OPTIONS",
    "SAM_URL",
    "SamArch",
    "SamAutoConfig",
    "SamSegmenter",
    "auto_option_names",
    "build_sam",
    "find_sam_checkpoint",
    "load_sam",
    "model_dir",
    "sam_status",
]

SAM_URL = "https://dl.fbaipublicfiles.com/segment_anything/"
SAM_FILES = {
    "vit_h": "sam_vit_h_4b8939.pth",
    "vit_l": "sam_vit_l_0b3195.pth",
    "vit_b": "sam_vit_b_01ec64.pth",
}
_ENCODER_WIDTH_KEY = "image_encoder.patch_embed.proj.weight"
# SamSegmenter's own options that text can give (the command line's --option), beside
# SamAutoConfig's fields; arch and model are for programs and tests
SAM_OPTIONS = ("checkpoint", "model_type", "device")


@dataclass(frozen=True)
class SamArch:
    """A SAM architecture. The published ones are in :data:`SAM_ARCHS`; tests build tiny
    ones through the same :func:`build_sam` / :func:`load_sam` path."""

    encoder_embed_dim: int
    encoder_depth: int
    encoder_num_heads: int
    encoder_global_attn_indexes: tuple[int, ...]
    image_size: int = 1024  # the encoder's input side; photos are resized to it
    patch_size: int = 16
    window_size: int = 14  # windowed attention in the non-global encoder blocks
    prompt_embed_dim: int = 256  # width of the embedding, prompt tokens and decoder
    mask_in_chans: int = 16
    decoder_depth: int = 2
    decoder_mlp_dim: int = 2048
    decoder_num_heads: int = 8
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256


SAM_ARCHS = {
    "vit_b": SamArch(768, 12, 12, (2, 5, 8, 11)),
    "vit_l": SamArch(1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": SamArch(1280, 32, 16, (7, 15, 23, 31)),
}


@dataclass(frozen=True)
class SamAutoConfig:
    """Automatic masks: SAM's point-grid settings plus how the partition is made."""

    points_per_side: int = 32  # the grid of single-click prompts is n x n
    points_per_batch: int = 64  # prompts decoded at once (memory vs speed)
    pred_iou_thresh: float = 0.88  # drop masks the model itself rates below this
    stability_score_thresh: float = 0.92  # drop masks that change with the threshold
    stability_score_offset: float = 1.0
    box_nms_thresh: float = 0.7  # drop a mask whose box overlaps a better one this much
    max_masks: int = 200  # keep at most this many candidates (best predicted IoU first)
    # Pieces smaller than this fraction of the picture join their nearest neighbour.
    min_area_fraction: float = 0.001
    work_side: int = 1024  # long side the partition is resolved at, then enlarged


def auto_option_names() -> list[str]:
    """The automatic-mask options (:class:`SamAutoConfig`'s fields)."""
    return [f.name for f in fields(SamAutoConfig)]


def model_dir() -> Path:
    """Where downloaded weights live: ``$DEDIT_MODEL_DIR`` or ``~/.cache/dedit``."""
    return Path(os.environ.get("DEDIT_MODEL_DIR") or Path.home() / ".cache" / "dedit")


def _missing_message(model_type: str | None) -> str:
    # the files in the order find_sam_checkpoint looks for them (the largest first)
    kinds = [model_type] if model_type in SAM_FILES else list(SAM_FILES)
    names = [SAM_FILES[k] for k in kinds]
    files = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    return (
        f"No SAM checkpoint was found: download {files} from {SAM_URL} into {model_dir()}, "
        "or set DEDIT_SAM_CHECKPOINT (or the checkpoint option) to the file."
    )


def find_sam_checkpoint(
    checkpoint: str | os.PathLike[str] | None = None, model_type: str | None = None
) -> Path:
    """The checkpoint to load: ``checkpoint`` if given, else ``$DEDIT_SAM_CHECKPOINT``, else
    the first published file present in :func:`model_dir` (of ``model_type`` if given,
    else vit_h, vit_l, vit_b). Raises SegmenterUnavailable naming what to download and where."""
    if model_type is not None and model_type not in SAM_ARCHS:
        raise SegmenterUnavailable(
            f"There is no SAM model type {model_type!r}; choose vit_b, vit_l or vit_h."
        )
    given = checkpoint or os.environ.get("DEDIT_SAM_CHECKPOINT")
    if given:
        path = Path(given).expanduser()
        if not path.is_file():
            # The file to fetch again: the one the missing path was named after, if any.
            published = path.name in SAM_FILES.values()
            wanted = path.name if published else SAM_FILES[model_type or "vit_b"]
            raise SegmenterUnavailable(
                f"The SAM checkpoint {path} does not exist; download "
                f"{wanted} from {SAM_URL} and point to it."
            )
        return path
    kinds = [model_type] if model_type else list(SAM_FILES)
    for kind in kinds:
        path = model_dir() / SAM_FILES[kind]
        if path.is_file():
            return path
    raise SegmenterUnavailable(_missing_message(model_type))


def sam_status(**options: object) -> str:
    """Why the SAM backend cannot be built now ("" when it can); loads and imports nothing
    (see :func:`~dedit_app.segment.base.installed`)."""
    if not installed("segment_anything"):
        return "The segment-anything package is not installed (pip install segment-anything)."
    try:
        find_sam_checkpoint(options.get("checkpoint"), options.get("model_type"))  # type: ignore[arg-type]
    except SegmentationError as err:
        return str(err)
    return device_problem(options.get("device"))


def build_sam(arch: SamArch):  # -> segment_anything.modeling.Sam
    """A randomly initialised SAM of architecture ``arch`` (eval mode, on the CPU)."""
    from functools import partial

    import torch
    from segment_anything.modeling import (
        ImageEncoderViT,
        MaskDecoder,
        PromptEncoder,
        Sam,
        TwoWayTransformer,
    )

    grid = arch.image_size // arch.patch_size
    sam = Sam(
        image_encoder=ImageEncoderViT(
            img_size=arch.image_size,
            patch_size=arch.patch_size,
            embed_dim=arch.encoder_embed_dim,
            depth=arch.encoder_depth,
            num_heads=arch.encoder_num_heads,
            mlp_ratio=4,
            out_chans=arch.prompt_embed_dim,
            qkv_bias=True,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=True,
            window_size=arch.window_size,
            global_attn_indexes=tuple(arch.encoder_global_attn_indexes),
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=arch.prompt_embed_dim,
            image_embedding_size=(grid, grid),
            input_image_size=(arch.image_size, arch.image_size),
            mask_in_chans=arch.mask_in_chans,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(
                depth=arch.decoder_depth,
                embedding_dim=arch.prompt_embed_dim,
                mlp_dim=arch.decoder_mlp_dim,
                num_heads=arch.decoder_num_heads,
            ),
            transformer_dim=arch.prompt_embed_dim,
            iou_head_depth=arch.iou_head_depth,
            iou_head_hidden_dim=arch.iou_head_hidden_dim,
        ),
        # The published models' normalisation (ImageNet mean/std in 0..255).
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    return sam.eval()


def load_sam(
    checkpoint: str | os.PathLike[str],
    model_type: str | None = None,
    arch: SamArch | None = None,
):  # -> segment_anything.modeling.Sam
    """Build SAM and load ``checkpoint`` into it, safely and strictly.

    Args:
        checkpoint: a ``.pth`` state dict (Meta's published format).
        model_type: "vit_b", "vit_l" or "vit_h"; None = read it from the checkpoint.
        arch: an explicit architecture instead of ``model_type`` (tests use tiny ones).
    Raises:
        SegmenterUnavailable: unreadable file, or a checkpoint that does not fit the
            architecture (both are named).
    """
    import torch

    path = Path(checkpoint)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise SegmenterUnavailable(
            f"The SAM checkpoint {path.name} could not be read as safe PyTorch weights "
            f"({type(err).__name__}); download it again from {SAM_URL}."
        ) from err
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SegmenterUnavailable(f"The file {path.name} does not hold SAM weights.")
    width = state.get(_ENCODER_WIDTH_KEY)
    width = int(width.shape[0]) if width is not None else None
    if arch is None:
        if model_type is None:
            model_type = next(
                (k for k, a in SAM_ARCHS.items() if a.encoder_embed_dim == width), None
            )
            if model_type is None:
                raise SegmenterUnavailable(
                    f"The checkpoint {path.name} is not one of SAM's published models "
                    f"(image encoder width {width}); vit_b, vit_l and vit_h are supported."
                )
        if model_type not in SAM_ARCHS:
            raise SegmenterUnavailable(
                f"There is no SAM model type {model_type!r}; choose vit_b, vit_l or vit_h."
            )
        arch = SAM_ARCHS[model_type]
        expected = arch.encoder_embed_dim
        if width is not None and width != expected:
            actual = next((k for k, a in SAM_ARCHS.items() if a.encoder_embed_dim == width), None)
            hint = f" (it looks like {actual})" if actual else ""
            raise SegmenterUnavailable(
                f"The checkpoint {path.name} does not match the SAM {model_type} architecture"
                f"{hint}: its image encoder is {width} wide where {model_type} has {expected}."
            )
    what = model_type or "given"
    model = build_sam(arch)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        detail = str(err).splitlines()
        detail = next((ln.strip() for ln in detail[1:] if ln.strip()), detail[0])[:160]
        raise SegmenterUnavailable(
            f"The checkpoint {path.name} does not match the SAM {what} architecture: {detail}"
        ) from err
    return model


@dataclass
class _Cache:
    """The photo SAM currently holds an embedding of."""

    key: str = ""
    size: tuple[int, int] = (0, 0)
    work: np.ndarray | None = None  # the photo at the work size, for item names


class SamSegmenter(Segmenter):
    """SAM behind the :class:`Segmenter` interface; see the module docstring.

    Args:
        checkpoint: path of a SAM ``.pth``; default: see :func:`find_sam_checkpoint`.
        model_type: "vit_b", "vit_l", "vit_h"; default: read from the checkpoint.
        device: "cuda", "mps", "cpu"; default: the best available.
        arch: explicit architecture (tests).
        model: an already built ``Sam`` (shared with :class:`GroundedSamSegmenter`).
        **auto: fields of :class:`SamAutoConfig` (strings are converted).
    """

    name = "sam"

    def __init__(
        self,
        checkpoint: str | os.PathLike[str] | None = None,
        model_type: str | None = None,
        device: str | None = None,
        arch: SamArch | None = None,
        model: object | None = None,
        **auto: object,
    ) -> None:
        super().__init__()
        try:
            from segment_anything import SamPredictor
        except ImportError as err:
            raise SegmenterUnavailable(
                "The SAM backend needs the segment-anything package: pip install segment-anything."
            ) from err
        # arch and model typed as text (--option model=...) are not options text can give
        typed = {k: v for k, v in (("arch", arch), ("model", model)) if isinstance(v, str)}
        check_option_names(typed, [*SAM_OPTIONS, *auto_option_names()])
        self.auto_config: SamAutoConfig = config_from_options(SamAutoConfig, auto, SAM_OPTIONS)  # type: ignore[assignment]
        self.device = pick_device(device)
        if model is None:
            path = find_sam_checkpoint(checkpoint, model_type)
            model = load_sam(path, model_type, arch)
        self.model = model.to(self.device)  # type: ignore[attr-defined]
        self.predictor = SamPredictor(self.model)
        self._cache = _Cache()

    # ---------------------------------------------------------------- image and device

    def set_image(self, image: np.ndarray) -> None:
        """Run the image encoder on ``image`` ``(H, W, 3)`` uint8 RGB, once: setting the
        same pixels again keeps the cached embedding."""
        image = check_image(image)
        key = hashlib.blake2b(image.tobytes(), digest_size=16).hexdigest() + str(image.shape)
        self._size = image.shape[:2]
        if key == self._cache.key and self.predictor.is_image_set:
            return
        self._to_device()
        self._cache = _Cache()  # a failure below must not leave the old photo's embedding
        self.predictor.set_image(image)
        self._cache = _Cache(key, image.shape[:2], self._work_copy(image))

    @property
    def work_image(self) -> np.ndarray:
        """The photo at the size partitions are resolved at (long side ``work_side``)."""
        self._require_embedding()
        return self._cache.work

    def _work_copy(self, image: np.ndarray) -> np.ndarray:
        import cv2

        h, w = image.shape[:2]
        s = min(self.auto_config.work_side / max(h, w), 1.0)
        size = (max(round(w * s), 1), max(round(h * s), 1))
        return image if s == 1 else cv2.resize(image, size, interpolation=cv2.INTER_AREA)

    def _require_embedding(self) -> tuple[int, int]:
        size = self._require_image()
        if not self.predictor.is_image_set:
            raise SegmentationError(
                "The segmenter lost its picture (loading it failed); open the picture again."
            )
        self._to_device()
        return size

    def _to_device(self) -> None:
        import torch

        # Compare types: 'cuda' and the model's 'cuda:0' are the same place.
        if self.model.device.type != torch.device(self.device).type:
            self.model.to(self.device)
            if self.predictor.features is not None:
                self.predictor.features = self.predictor.features.to(self.device)

    def release(self) -> None:
        """Move the model and the cached embedding to the CPU and free the GPU cache; the
        next call moves them back (the embedding is kept, so no re-encoding)."""
        import torch

        self.model.to("cpu")
        if self.predictor.features is not None:
            self.predictor.features = self.predictor.features.to("cpu")
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    # ---------------------------------------------------------------- decoding

    def decode(self, coords, labels, boxes, multimask: bool):
        """Prompt encoder + mask decoder on the cached embedding.

        Args:
            coords: ``(B, N, 2)`` float tensor of points in the encoder's input frame, or
                None; labels ``(B, N)`` int (1 positive, 0 negative).
            boxes: ``(B, 4)`` float tensor in the input frame, or None.
            multimask: three masks per prompt instead of one.
        Returns:
            ``(low_res_logits (B, C, h, w), iou_predictions (B, C))``.
        """
        import torch

        with torch.inference_mode():
            points = (coords, labels) if coords is not None else None
            sparse, dense = self.model.prompt_encoder(points=points, boxes=boxes, masks=None)
            return self.model.mask_decoder(
                image_embeddings=self.predictor.features,
                image_pe=self.model.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=multimask,
            )

    def upscale(self, low_res, size: tuple[int, int]):
        """Low-resolution logits ``(B, C, h, w)`` -> logits ``(B, C, H, W)`` at ``size``."""
        return self.model.postprocess_masks(low_res, self.predictor.input_size, size)

    def _frame(self, xy: np.ndarray) -> np.ndarray:
        """Pixel-centre ``(x, y)`` of the photo -> the encoder's input frame."""
        return self.predictor.transform.apply_coords(xy + 0.5, self._size)

    def masks_for_boxes(self, boxes: np.ndarray, size: tuple[int, int]):
        """One mask per box ``(B, 4)`` (photo pixels) at ``size``: bool ``(B, H, W)`` numpy
        and the predicted IoU ``(B,)``."""
        import torch

        self._require_embedding()
        if len(boxes) == 0:
            return np.zeros((0, *size), dtype=bool), np.zeros(0)
        b = self.predictor.transform.apply_boxes(np.asarray(boxes) + 0.5, self._size)
        b = torch.as_tensor(b, dtype=torch.float, device=self.device)
        out, ious = [], []
        step = self.auto_config.points_per_batch
        with torch.inference_mode():
            for i in range(0, len(b), step):
                low, iou = self.decode(None, None, b[i : i + step], multimask=False)
                logits = self.upscale(low, size)[:, 0]
                out.append((logits > self.model.mask_threshold).cpu().numpy())
                ious.append(iou[:, 0].float().cpu().numpy())
        return np.concatenate(out), np.concatenate(ious)

    # ---------------------------------------------------------------- the interface

    def segment_click(
        self,
        points: np.ndarray | Sequence[Sequence[float]] | None,
        point_labels: np.ndarray | Sequence[int] | None = None,
        box: Sequence[float] | np.ndarray | None = None,
    ) -> np.ndarray:
        import torch

        (h, w), pts, lab, bx = self._checked_prompt(points, point_labels, box)
        self._require_embedding()
        coords = labels = boxes = None
        if len(pts):
            coords = torch.as_tensor(self._frame(pts), dtype=torch.float, device=self.device)
            coords = coords[None]
            labels = torch.as_tensor(lab, dtype=torch.int, device=self.device)[None]
        if bx is not None:
            b = self.predictor.transform.apply_boxes(bx[None] + 0.5, (h, w))
            boxes = torch.as_tensor(b, dtype=torch.float, device=self.device)
        # One click is ambiguous (a button, the flap, the whole bag): ask for three masks
        # and keep the one the model rates best, as SAM's authors recommend.
        multimask = len(pts) == 1 and bx is None
        with torch.inference_mode():
            low, iou = self.decode(coords, labels, boxes, multimask)
            best = int(iou[0].argmax())
            logits = self.upscale(low[:, best : best + 1], (h, w))[0, 0]
            mask = (logits > self.model.mask_threshold).cpu().numpy()
        if not mask.any():
            raise SegmentationError("SAM found no item there; click inside the item.")
        return mask

    def segment_auto_job(
        self, text: str | None = None, cancel: CancelToken | None = None
    ) -> Job[Segmentation]:
        h, w = self._require_image()
        if text is not None and text.strip():
            raise SegmentationError(
                "SAM on its own cannot search for items by text; clear the text or choose "
                "the grounded-sam backend."
            )
        self._require_embedding()
        masks, scores = yield from self._grid_masks(cancel or CancelToken())
        work = self.work_image
        min_area = max(int(self.auto_config.min_area_fraction * work.shape[0] * work.shape[1]), 1)
        seg, sources = partition_from_masks(masks, scores, [""] * len(masks), min_area=min_area)
        described = describe_items(seg.labels, work)
        names = [
            n if src < 0 else described[k] for k, (n, src) in enumerate(zip(seg.names, sources))
        ]
        labels = upsample_labels(seg.labels, (h, w))
        return Segmentation(labels, unique_names(names), seg.scores)

    def _grid_masks(self, cancel: CancelToken) -> Job[tuple[np.ndarray, np.ndarray]]:
        """SAM's automatic candidates at the work size: bool ``(M, h, w)`` and scores."""
        import torch
        from segment_anything.utils.amg import (
            batched_mask_to_box,
            build_point_grid,
            calculate_stability_score,
        )
        from torchvision.ops import batched_nms

        cfg = self.auto_config
        h, w = self._size
        work_size = self._cache.work.shape[:2]
        grid = build_point_grid(cfg.points_per_side) * np.array([w, h]) - 0.5
        coords = torch.as_tensor(self._frame(grid), dtype=torch.float, device=self.device)
        thr = self.model.mask_threshold
        kept_masks, kept_iou, kept_boxes = [], [], []
        total = -(-len(coords) // cfg.points_per_batch)
        for step, i in enumerate(range(0, len(coords), cfg.points_per_batch)):
            cancel.raise_if_cancelled()
            c = coords[i : i + cfg.points_per_batch, None, :]
            ones = torch.ones(c.shape[:2], dtype=torch.int, device=self.device)
            with torch.inference_mode():
                low, iou = self.decode(c, ones, None, multimask=True)
                low, iou = low.flatten(0, 1), iou.flatten(0, 1)
                keep = iou > cfg.pred_iou_thresh
                low, iou = low[keep], iou[keep]
                logits = self.upscale(low[:, None], work_size)[:, 0]
                stable = calculate_stability_score(logits, thr, cfg.stability_score_offset)
                keep = stable >= cfg.stability_score_thresh
                binary = logits[keep] > thr
                iou = iou[keep]
                boxes = batched_mask_to_box(binary)
                # De-duplicate within the batch now, so memory stays bounded.
                keep = batched_nms(
                    boxes.float(), iou.float(), torch.zeros_like(iou), cfg.box_nms_thresh
                )
                kept_masks.append(binary[keep].cpu())
                kept_iou.append(iou[keep].float().cpu())
                kept_boxes.append(boxes[keep].float().cpu())
            yield Progress(step + 1, total, "finding items")
        masks = (
            torch.cat(kept_masks) if kept_masks else torch.zeros((0, *work_size), dtype=torch.bool)
        )
        ious = torch.cat(kept_iou) if kept_iou else torch.zeros(0)
        boxes = torch.cat(kept_boxes) if kept_boxes else torch.zeros((0, 4))
        keep = batched_nms(boxes, ious, torch.zeros_like(ious), cfg.box_nms_thresh)
        keep = keep[: cfg.max_masks]  # batched_nms returns indices by decreasing score
        return masks[keep].numpy(), ious[keep].numpy()
