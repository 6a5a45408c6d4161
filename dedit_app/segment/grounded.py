"""Grounding DINO + SAM backend: find items by text, then cut them out with SAM.

``"handbag. table. person"`` -> Grounding DINO (transformers' ``GroundingDinoForObjectDetection``)
scores every detection slot against every word of the text and gives a box per slot; each
slot keeps the phrase it matches best, slots under ``box_threshold`` are dropped, duplicate
boxes of one phrase are removed (box NMS), SAM turns each box into a mask against its cached
image embedding, and :func:`~dedit_app.segment.masks.partition_from_masks` makes the
partition (a higher detection score wins an overlap, the uncovered rest is "background").
Item names are the user's own phrases ("handbag", "handbag 2"), not words decoded back from
tokens, so a phrase the tokenizer splits still names its item properly.

Why transformers' implementation and not the ``groundingdino-py`` package: it loads the
published weights (converted to ``IDEA-Research/grounding-dino-tiny`` / ``-base`` on the hub)
through the same ``from_pretrained`` path as everything else in this project, in safetensors,
with no compiled extension to build, and a tiny random model can be built offline from its
config class for tests.

Weights: the ``model=`` option, else ``$DEDIT_GROUNDING_DINO``, else
``IDEA-Research/grounding-dino-tiny``; a hub id or a local folder (``save_pretrained``
layout). With ``HF_HUB_OFFLINE=1`` (or ``local_files_only=True``) nothing is downloaded and a
missing model is reported with the command that fetches it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dedit_app.errors import SegmentationError, SegmenterUnavailable
from dedit_app.jobs import CancelToken, Job, Progress
from dedit_app.segment.base import (
    Segmentation,
    Segmenter,
    check_image,
    check_option_names,
    installed,
    option_value,
)
from dedit_app.segment.masks import partition_from_masks, upsample_labels
from dedit_app.segment.sam import (
    SAM_OPTIONS,
    SamArch,
    SamSegmenter,
    auto_option_names,
    sam_status,
)

__all__ = [
    "DEFAULT_GROUNDING_MODEL",
    "GroundedSamSegmenter",
    "grounded_status",
    "split_phrases",
]

DEFAULT_GROUNDING_MODEL = "IDEA-Research/grounding-dino-tiny"
# GroundedSamSegmenter's own options that text can give (the command line's --option),
# beside SAM's; sam and sam_arch are for programs and tests
GROUNDED_OPTIONS = ("model", "box_threshold", "nms_thresh", "local_files_only")


def split_phrases(text: str) -> list[str]:
    """``"Handbag. table.  person"`` -> ``["handbag", "table", "person"]`` (lower case, as
    Grounding DINO was trained; empty phrases dropped)."""
    parts = re.split(r"[.;\n]+", text.lower())
    return [" ".join(p.split()) for p in parts if p.strip()]


def _model_id(model: str | os.PathLike[str] | None) -> str:
    return str(model or os.environ.get("DEDIT_GROUNDING_DINO") or DEFAULT_GROUNDING_MODEL)


def _offline(local_files_only: bool | None) -> bool:
    if local_files_only is not None:
        return bool(local_files_only)
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def _looks_like_folder(model_id: str) -> bool:
    return (
        Path(model_id).expanduser().exists()
        or model_id.startswith(("/", ".", "~"))
        or (model_id.count("/") > 1)
    )


def _weights_present(model_id: str) -> bool:
    if _looks_like_folder(model_id):
        return (Path(model_id).expanduser() / "config.json").is_file()
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(model_id, "config.json")
    except (ImportError, ValueError):  # ValueError: not a valid hub id
        return False
    return isinstance(found, str)


def _download(model_id: str) -> str:
    # only the safetensors weights are read; double quotes keep the pattern whole in
    # POSIX shells, PowerShell and cmd alike (as hub.download_command)
    return f'hf download {model_id} --exclude "*.bin"'


def _missing_weights(model_id: str) -> str:
    if _looks_like_folder(model_id):
        return (
            f"The Grounding DINO folder {model_id} has no model in it (config.json is "
            f"missing); save one there with save_pretrained, or download "
            f"{DEFAULT_GROUNDING_MODEL} once with network access "
            f"(`{_download(DEFAULT_GROUNDING_MODEL)}`)."
        )
    return (
        f"The Grounding DINO weights {model_id} are not on this machine; download them once "
        f"with network access (`{_download(model_id)}`), or choose a folder saved with "
        "save_pretrained (Settings > Segmentation > Grounding DINO in the editor; "
        "DEDIT_GROUNDING_DINO on the command line)."
    )


def grounded_status(**options: object) -> str:
    """Why the grounded-sam backend cannot be built now ("" when it can); loads and imports
    nothing (see :func:`~dedit_app.segment.base.installed`)."""
    if not installed("transformers", "models", "grounding_dino"):
        return (
            "transformers with Grounding DINO is not installed (pip install 'transformers>=4.40')."
        )
    model_id = _model_id(options.get("model"))  # type: ignore[arg-type]
    sam_options = ("checkpoint", "model_type", "device")
    sam = sam_status(**{k: v for k, v in options.items() if k in sam_options})
    if not _weights_present(model_id):  # both, when both are missing: one trip to mend
        return f"{_missing_weights(model_id)} {sam}".strip()
    return sam


class GroundedSamSegmenter(Segmenter):
    """Text -> boxes (Grounding DINO) -> masks (SAM) -> partition; see the module docstring.

    Args:
        model: Grounding DINO hub id or local folder.
        checkpoint, model_type, sam_arch: the SAM weights (see :class:`SamSegmenter`).
        device: "cuda", "mps", "cpu"; default: the best available.
        box_threshold: a detection slot is kept when its best phrase scores above this.
        nms_thresh: boxes of one phrase overlapping more than this (IoU) are duplicates.
        local_files_only: never download; default: on when ``HF_HUB_OFFLINE`` is set.
        sam: an already built :class:`SamSegmenter` to share (its embedding included).
        **sam_options: passed to :class:`SamSegmenter` (automatic-mask settings).
    """

    name = "grounded-sam"

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        checkpoint: str | os.PathLike[str] | None = None,
        model_type: str | None = None,
        device: str | None = None,
        box_threshold: float = 0.35,
        nms_thresh: float = 0.5,
        local_files_only: bool | None = None,
        sam_arch: SamArch | None = None,
        sam: SamSegmenter | None = None,
        **sam_options: object,
    ) -> None:
        super().__init__()
        try:
            from transformers import AutoProcessor, GroundingDinoForObjectDetection
        except ImportError as err:
            raise SegmenterUnavailable(
                "The grounded-sam backend needs transformers with Grounding DINO: "
                "pip install 'transformers>=4.40'."
            ) from err
        known = [*GROUNDED_OPTIONS, *SAM_OPTIONS, *auto_option_names()]
        typed = {k: v for k, v in (("sam", sam), ("sam_arch", sam_arch)) if isinstance(v, str)}
        check_option_names({**typed, **sam_options}, known)  # before anything loads
        self.box_threshold = float(option_value("box_threshold", box_threshold, float))  # type: ignore[arg-type]
        self.nms_thresh = float(option_value("nms_thresh", nms_thresh, float))  # type: ignore[arg-type]
        if local_files_only is not None:
            local_files_only = bool(option_value("local_files_only", local_files_only, bool))
        model_id = _model_id(model)
        offline = _offline(local_files_only)
        # SAM first: its missing checkpoint is the more common problem and the cheaper check.
        try:
            self.sam = sam or SamSegmenter(
                checkpoint, model_type, device, arch=sam_arch, **sam_options
            )
        except SegmenterUnavailable as err:
            if _weights_present(model_id):
                raise
            # both missing: both said, Grounding DINO's first (as grounded_status)
            raise SegmenterUnavailable(f"{_missing_weights(model_id)} {err}") from err
        self.device = self.sam.device
        if offline and not _weights_present(model_id):
            raise SegmenterUnavailable(_missing_weights(model_id))
        try:
            self.processor = AutoProcessor.from_pretrained(model_id, local_files_only=offline)
            self.detector = GroundingDinoForObjectDetection.from_pretrained(
                model_id, local_files_only=offline, use_safetensors=True
            )
        except (OSError, ValueError) as err:
            raise SegmenterUnavailable(
                f"The Grounding DINO model {model_id} could not be loaded "
                f"({str(err).splitlines()[0][:160]}). " + _missing_weights(model_id)
            ) from err
        self.detector.to(self.device).eval()
        self.model_id = model_id
        self._image: np.ndarray | None = None

    def set_image(self, image: np.ndarray) -> None:
        """Cache SAM's embedding of ``image`` ``(H, W, 3)`` uint8 RGB; the detector runs per
        text query (its image features depend on the text)."""
        image = check_image(image)
        self.sam.set_image(image)
        self._image = image
        self._size = image.shape[:2]

    def release(self) -> None:
        """Move both models (and SAM's embedding) to the CPU and free the GPU cache."""
        self.detector.to("cpu")
        self.sam.release()

    def segment_click(
        self,
        points: np.ndarray | Sequence[Sequence[float]] | None,
        point_labels: np.ndarray | Sequence[int] | None = None,
        box: Sequence[float] | np.ndarray | None = None,
    ) -> np.ndarray:
        """Clicks and boxes go straight to SAM (same embedding, decoder only)."""
        self._require_image()
        return self.sam.segment_click(points, point_labels, box)

    def detect(self, phrases: list[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Boxes for ``phrases`` in the current photo.

        Returns:
            ``boxes (B, 4)`` float ``(x0, y0, x1, y1)`` photo pixels, ``scores (B,)``, and
            the phrase of each box, best first, duplicates removed.
        """
        import torch
        from torchvision.ops import batched_nms

        h, w = self._require_image()
        caption = ". ".join(phrases) + "."
        inputs = self.processor(images=self._image, text=caption, return_tensors="pt")
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        self.detector.to(self.device)
        with torch.inference_mode():
            out = self.detector(**inputs)
        ids = inputs["input_ids"][0].tolist()
        spans = self._phrase_spans(ids, len(phrases))
        probs = out.logits[0].float().sigmoid()  # (Q, text length)
        # Each slot: the best score over each phrase's tokens, then the best phrase.
        per_phrase = torch.stack([probs[:, a:b].max(dim=1).values for a, b in spans], dim=1)
        score, which = per_phrase.max(dim=1)
        keep = score > self.box_threshold
        cx, cy, bw, bh = out.pred_boxes[0].float().unbind(-1)
        boxes = torch.stack(
            [(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h], -1
        )
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w - 1)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h - 1)
        keep &= (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
        boxes, score, which = boxes[keep], score[keep], which[keep]
        order = batched_nms(boxes, score, which, self.nms_thresh)
        boxes, score, which = boxes[order].cpu(), score[order].cpu(), which[order].cpu()
        names = self._span_names(ids, spans, phrases)
        return boxes.numpy(), score.numpy(), [names[int(i)] for i in which]

    def _phrase_spans(self, ids: list[int], n: int) -> list[tuple[int, int]]:
        """Token ranges ``[a, b)`` of the phrases: runs between full stops and specials."""
        tok = self.processor.tokenizer
        stops = set(tok.all_special_ids) | set(tok.convert_tokens_to_ids(["."]))
        spans, start = [], None
        for i, t in enumerate(ids):
            if t in stops:
                if start is not None:
                    spans.append((start, i))
                start = None
            elif start is None:
                start = i
        if start is not None:
            spans.append((start, len(ids)))
        if not spans:
            raise SegmentationError("The text has no words the detector knows; type some items.")
        return spans

    def _span_names(
        self, ids: list[int], spans: list[tuple[int, int]], phrases: list[str]
    ) -> list[str]:
        if len(spans) == len(phrases):
            return list(phrases)
        # The tokenizer split the text differently (a phrase held a full stop of its own,
        # or was cut at the length limit): name items by the words the detector saw.
        tok = self.processor.tokenizer
        return [tok.decode(ids[a:b]).strip() or "item" for a, b in spans]

    def segment_auto_job(
        self, text: str | None = None, cancel: CancelToken | None = None
    ) -> Job[Segmentation]:
        """Items named by ``text`` (phrases separated by full stops) plus "background".

        Without text this is SAM's automatic segmentation. Raises SegmentationError when
        nothing in the picture matches the text (the caller keeps its partition).
        """
        h, w = self._require_image()
        cancel = cancel or CancelToken()
        phrases = split_phrases(text or "")
        if not phrases:
            return (yield from self.sam.segment_auto_job(None, cancel))
        yield Progress(0, 2, "finding items by text")
        boxes, scores, names = self.detect(phrases)
        cancel.raise_if_cancelled()
        nothing = SegmentationError(
            f'Nothing in the picture matched "{text.strip()}"; try other words. '
            "The items were left as they were."
        )
        if len(boxes) == 0:
            raise nothing
        yield Progress(1, 2, "cutting out items")
        work = self.sam.work_image
        masks, _ = self.sam.masks_for_boxes(boxes, work.shape[:2])
        cancel.raise_if_cancelled()
        found = masks.reshape(len(masks), -1).any(axis=1)
        if not found.any():
            raise nothing
        masks, scores = masks[found], scores[found]
        names = [n for n, f in zip(names, found) if f]
        min_area = max(
            int(self.sam.auto_config.min_area_fraction * work.shape[0] * work.shape[1]), 1
        )
        seg, _ = partition_from_masks(
            masks, scores, names, min_area=min_area, keep_small_items=True
        )
        yield Progress(2, 2, "done")
        return Segmentation(upsample_labels(seg.labels, (h, w)), seg.names, seg.scores)
