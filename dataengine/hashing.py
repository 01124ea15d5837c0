"""Stable, seeded draws from strings: the same inputs give the same number on any machine or worker."""

from __future__ import annotations

import hashlib


def unit_draw(*parts: object) -> float:
    """A uniform number in [0, 1) determined only by ``parts``."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def weighted_choice(weights: list[float], *parts: object) -> int:
    """Index drawn with probability proportional to ``weights``, determined only by ``parts``."""
    target = unit_draw(*parts) * sum(weights)
    running = 0.0
    for index, weight in enumerate(weights):
        running += weight
        if target < running:
            return index
    return len(weights) - 1
