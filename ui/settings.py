"""Editor settings: a dataclass with commented defaults, persisted with QSettings. The
dialog that edits them is :mod:`ui.settings_dialog`.

The window receives its ``QSettings`` object from outside (``ui.app.main`` passes the
user's; tests pass one backed by an .ini file in a temporary folder), so nothing here ever
touches a settings store it was not given.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any

from PySide6.QtCore import QSettings

DEFAULT_MODEL = "stabilityai/stable-diffusion-xl-base-1.0"
MAX_RECENT = 10
MAX_PROMPTS = 50  # prompts remembered for the prompt field's suggestions


@dataclass
class EditorSettings:
    """What the user chose in Settings. Defaults follow the paper (D-Edit, SDXL)."""

    model: str = DEFAULT_MODEL  # Hugging Face hub id or a local diffusers folder
    device: str = "auto"  # auto | cuda | mps | cpu
    precision: str = "auto"  # auto | bfloat16 | float16 | float32
    compile: bool = False  # torch.compile the UNet (CUDA only): one wait, faster edits after
    segmenter: str = "classical"  # a name from dedit_app.segment.list_backends()
    sam_checkpoint: str = ""  # SAM .pth file (sam / grounded-sam backends)
    grounding_checkpoint: str = ""  # Grounding DINO hub id or folder (grounded-sam backend)
    segment_text: str = ""  # what the text backend looks for, e.g. "handbag. table. person"
    steps: int = 20  # sampling steps per edit
    guidance: float = 3.0  # classifier-free guidance scale
    strength: float = 0.6  # fraction of steps the soft band is kept (0.4-0.8 in the paper)
    edge: int = 24  # soft band width around the edited region, pixels
    candidates: int = 2  # results per edit
    seed: int = -1  # -1 = a new random seed per edit
    emb_steps: int = 500  # preparing, stage 1 (token embeddings)
    model_steps: int = 500  # preparing, stage 2 (cross-attention weights)
    lora_rank: int = 0  # 0 = train to_q/to_k/to_v directly; >0 = LoRA of this rank
    # preparing: recompute activations, park idle models in RAM. auto: on for SDXL on a
    # GPU with less memory than it needs without (dedit_app.recompute.low_memory_reason)
    low_memory: str = "auto"  # auto | on | off
    recent: list[str] = field(default_factory=list)  # recently opened photos and projects
    prompts: list[str] = field(default_factory=list)  # prompts typed for edits, newest first

    @classmethod
    def load(cls, qs: QSettings) -> EditorSettings:
        out = cls()
        for f in fields(cls):
            if not qs.contains(f.name):
                continue
            raw = qs.value(f.name)
            default = getattr(out, f.name)
            try:
                if isinstance(default, list):
                    value: Any = [str(v) for v in (raw if isinstance(raw, list) else [raw]) if v]
                elif isinstance(default, bool):
                    value = str(raw).lower() in ("1", "true", "yes")
                elif isinstance(default, int):
                    value = int(float(raw))
                elif isinstance(default, float):
                    value = float(raw)
                else:
                    value = str(raw)
            except (TypeError, ValueError):
                continue  # a damaged value falls back to the default
            setattr(out, f.name, value)
        return out.clamped()

    def save(self, qs: QSettings) -> None:
        for f in fields(self):
            qs.setValue(f.name, getattr(self, f.name))
        qs.sync()

    def clamped(self) -> EditorSettings:
        """The same settings with every number inside its sensible range."""
        return dataclasses.replace(
            self,
            steps=min(max(self.steps, 1), 200),
            guidance=min(max(self.guidance, 0.0), 30.0),
            strength=min(max(self.strength, 0.0), 1.0),
            edge=min(max(self.edge, 0), 512),
            candidates=min(max(self.candidates, 1), 8),
            emb_steps=max(self.emb_steps, 0),
            model_steps=max(self.model_steps, 0),
            lora_rank=max(self.lora_rank, 0),
            low_memory=_low_memory_choice(self.low_memory),
            recent=list(dict.fromkeys(self.recent))[:MAX_RECENT],
            prompts=list(dict.fromkeys(p.strip() for p in self.prompts if p.strip()))[:MAX_PROMPTS],
        )

    def add_recent(self, path: str) -> None:
        self.recent = [path] + [p for p in self.recent if p != path]
        self.recent = self.recent[:MAX_RECENT]

    def add_prompt(self, prompt: str) -> None:
        """Remember ``prompt`` first among the suggestions (once, at most
        :data:`MAX_PROMPTS`)."""
        prompt = prompt.strip()
        if prompt:
            self.prompts = [prompt, *(p for p in self.prompts if p != prompt)][:MAX_PROMPTS]


# Automatic's line is dedit_app.recompute.LOW_MEMORY_BELOW (a test holds them equal; the
# dialog does not import torch to read it).
LOW_MEMORY_HINT = (
    "Prepares SDXL on a GPU with 24 GB or less: slower, and it learns the same. Automatic "
    "turns it on for GPUs under 28 GB; choose On if Prepare still runs out of GPU memory."
)
LOW_MEMORY_CHOICES = {
    "auto": "Automatic: on for a GPU too small for SDXL without it",
    "on": "On",
    "off": "Off",
}


def _low_memory_choice(value: object) -> str:
    """``value`` as one of :data:`LOW_MEMORY_CHOICES`. Settings saved before there was an
    automatic choice hold a switch: on stays on; off becomes automatic, which turns low
    memory on only where preparing would otherwise run out of GPU memory."""
    text = str(value).strip().lower()
    if text in LOW_MEMORY_CHOICES:
        return text
    return "on" if text in ("1", "true", "yes") else "auto"
