"""Small pieces of the sentences the editor and the command line show."""

from __future__ import annotations

__all__ = ["counted"]


def counted(n: int, noun: str) -> str:
    """``"1 item"``, ``"3 items"``: ``n`` and ``noun`` in the singular only for one (nouns
    whose plural adds an s: item, edit, job, result)."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
