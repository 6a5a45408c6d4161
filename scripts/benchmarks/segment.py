"""Segmentation speed: automatic items and one click, at 1024² and 4096².

Classical backend (CPU): our click (GrabCut on a ~256 px window of a cached 1024 px copy,
seeded by the precomputed items) beside the plain formulation a naive tool would run:
``cv2.grabCut`` on the full-resolution photo with the box, same iteration count. They must
agree (mask IoU printed in the note). Automatic items are timed as ``set_image`` +
``segment_auto`` (no reference: the superpixel pipeline is ours).

SAM (random weights; vit_b on a GPU or with ``--full``, the tests' tiny SAM in the quick CPU
profile because vit_b's encoder takes ~25 s per image on a CPU): ``set_image`` (the
image encoder, once per photo) and our decoder-only click on the cached embedding, beside
segment-anything's ``SamPredictor`` run end to end for every click (encoder + decoder), as a
tool without embedding reuse would. Both give the same mask (IoU printed). With ``--full``
on a GPU, vit_h and SAM's automatic grid are timed too.

The photo is the D-Edit example (``../shared/reference``) or, without it, a synthetic scene;
4096² is that photo enlarged.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from benchmarks.common import Row, guarded, measure, with_ratios
from dedit_app.segment.classical import ClassicalSegmenter

REFERENCE = Path(
    os.environ.get(
        "DEDIT_REFERENCE_DIR",
        Path(__file__).resolve().parents[3] / "shared" / "reference" / "dedit-example1",
    )
)
BAG_CLICK = (350, 650)  # on the handbag, in 1024² pixels
BAG_BOX = (160, 470, 590, 870)


def _photo(side: int) -> np.ndarray:
    path = REFERENCE / "image.png"
    if path.exists():
        from dedit_app.imageio import load_image

        img = load_image(path)
    else:
        rng = np.random.default_rng(0)
        img = np.full((1024, 1024, 3), (222, 212, 198), np.float64)
        img[800:] = (248, 248, 246)
        img[470:870, 160:590] = (40, 60, 150)
        img = np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)
    if img.shape[:2] != (side, side):
        img = cv2.resize(img, (side, side), interpolation=cv2.INTER_CUBIC)
    return img


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def _grabcut_full(image: np.ndarray, box: tuple[float, ...], iterations: int) -> np.ndarray:
    """The reference: GrabCut with the box on the full-resolution photo."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    mask = np.zeros(image.shape[:2], np.uint8)
    bgd, fgd = np.zeros((1, 65)), np.zeros((1, 65))
    cv2.grabCut(
        image, mask, (x0, y0, x1 - x0, y1 - y0), bgd, fgd, iterations, cv2.GC_INIT_WITH_RECT
    )
    return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)


def _classical(profile: str) -> Iterator[Row]:
    for side in (1024, 4096):
        img = _photo(side)
        f = side / 1024
        box = tuple(v * f for v in BAG_BOX)
        click = [(BAG_CLICK[0] * f, BAG_CLICK[1] * f)]
        seg = ClassicalSegmenter()
        n_items = []

        def auto(seg=seg, img=img, n=n_items):
            seg.set_image(img)
            n.append(len(seg.segment_auto().names))

        # The quick profile times one run of the slow calls: it must finish in 2 minutes.
        slow_reps = 3 if profile == "full" else 1
        t, m = measure(auto, repeats=slow_reps, warmup=0)
        yield Row(f"classical auto @{side}²", "ours", t, m, note=f"{n_items[-1]} items")
        t, m = measure(lambda seg=seg, c=click: seg.segment_click(c, [1]), repeats=5)
        yield Row(f"classical click @{side}²", "ours (point)", t, m)

        ours = seg.segment_click(None, box=box)
        iters = seg.config.grabcut_iterations
        # Full-resolution GrabCut at 4096² takes about a minute: once, and only with --full.
        if side == 4096 and profile != "full":
            t_o, m_o = measure(lambda seg=seg, b=box: seg.segment_click(None, box=b), repeats=5)
            yield Row(f"classical box @{side}²", "ours (box)", t_o, m_o)
            yield Row(
                f"classical box @{side}²", "grabCut full-res", None, None, note="--full runs it"
            )
            continue
        ref = _grabcut_full(img, box, iters)
        note = f"IoU {_iou(ours, ref):.3f}"
        t_o, m_o = measure(lambda seg=seg, b=box: seg.segment_click(None, box=b), repeats=5)
        reps = slow_reps if side == 1024 else 1
        t_r, m_r = measure(
            lambda i=img, b=box, n=iters: _grabcut_full(i, b, n), repeats=reps, warmup=0
        )
        yield from with_ratios(
            Row(f"classical box @{side}²", "ours (box)", t_o, m_o, note=note),
            Row(f"classical box @{side}²", "grabCut full-res", t_r, m_r),
        )


def _sam(profile: str) -> Iterator[Row]:
    import torch
    from segment_anything import SamPredictor

    from dedit_app.segment.sam import SAM_ARCHS, SamSegmenter, build_sam
    from dedit_app.segment.tiny import TINY_SAM

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    # SAM's smallest published encoder (vit_b) takes about 25 s per image on a CPU, so the
    # quick CPU profile uses the tests' tiny SAM: the same code paths and the same
    # embedding-reuse ratio in seconds; --full measures vit_b (and vit_h on a GPU).
    if profile == "full":
        archs = {"vit_b": SAM_ARCHS["vit_b"]} | ({"vit_h": SAM_ARCHS["vit_h"]} if cuda else {})
    else:
        archs = {"vit_b": SAM_ARCHS["vit_b"]} if cuda else {"tiny": TINY_SAM}
    enc_reps, warm = (5, 1) if cuda else (1, 0)
    for kind, arch in archs.items():
        torch.manual_seed(0)
        model = build_sam(arch).to(device)
        seg = SamSegmenter(model=model, device=device)
        naive = SamPredictor(model)
        for side in (1024, 4096):
            img = _photo(side)
            f = side / 1024
            x, y = BAG_CLICK[0] * f, BAG_CLICK[1] * f
            where = f"{kind} {device} @{side}²"

            def encode(seg=seg, img=img):
                seg._cache.key = ""  # force a new embedding
                seg.set_image(img)

            t_enc, m = measure(encode, repeats=enc_reps, warmup=warm)
            yield Row(f"sam set_image {where}", "ours (encoder once)", t_enc, m)
            seg.set_image(img)
            mine = _click_any(seg, x, y)
            t_o, m_o = measure(
                lambda seg=seg, x=x, y=y: _click_any(seg, x, y), repeats=20 if cuda else 5
            )

            def naive_click(img=img, x=x, y=y, naive=naive):
                naive.set_image(img)
                masks, scores, _ = naive.predict(np.array([[x + 0.5, y + 0.5]]), np.array([1]))
                return masks[int(scores.argmax())]

            ref_mask = naive_click()
            same = 1.0 if not (mine.any() or ref_mask.any()) else _iou(mine, ref_mask)
            t_r, m_r = measure(naive_click, repeats=enc_reps, warmup=warm)
            yield from with_ratios(
                Row(
                    f"sam click {where}",
                    "ours (decoder only)",
                    t_o,
                    m_o,
                    note=f"IoU {same:.3f}, mask {mine.mean():.0%}",
                ),
                Row(f"sam click {where}", "predictor per click", t_r, m_r),
            )
        if cuda and profile == "full":
            seg.auto_config = type(seg.auto_config)(pred_iou_thresh=-1e9, stability_score_thresh=0)
            for side in (1024, 4096):
                img = _photo(side)
                seg.set_image(img)
                t, m = measure(lambda seg=seg: seg.segment_auto(), repeats=2)
                yield Row(f"sam auto {kind} {device} @{side}²", "ours (32x32 grid)", t, m)
        seg.release()
        del seg, naive, model
        if cuda:
            torch.cuda.empty_cache()


def _click_any(seg, x: float, y: float) -> np.ndarray:
    """One click; a random model may find nothing there (still a full decode)."""
    from dedit_app.errors import SegmentationError

    try:
        return seg.segment_click([(x, y)], [1])
    except SegmentationError:
        return np.zeros(seg.image_size, bool)


def run(profile: str) -> Iterator[Row]:
    yield from guarded("classical", lambda: _classical(profile))
    yield from guarded("sam", lambda: _sam(profile))
