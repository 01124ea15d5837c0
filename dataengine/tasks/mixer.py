"""The seeded, exact task mix: every block of kept samples holds each task's share exactly."""

from __future__ import annotations

import math
from fractions import Fraction

from dataengine.hashing import unit_draw

MAX_DENOMINATOR = 100
MAX_BLOCK = 1000


class MixError(ValueError):
    """Shares that cannot be mixed exactly; one line for the user."""


def block_counts(shares: dict[str, float]) -> tuple[int, dict[str, int]]:
    """The block length and each task's count in it: each share as a fraction with a denominator of at
    most 100 (0.7 -> 7/10), the largest one the rest of 1 (so float shares that sum to 1 sum to exactly 1),
    the block their least common multiple."""
    if not shares:
        raise MixError("no tasks to mix")
    total = sum(shares.values())
    if abs(total - 1.0) > 1e-6:
        raise MixError(f"the task shares sum to {total:g}, not 1")
    largest = max(shares, key=lambda task: shares[task])
    fractions = {
        task: Fraction(share).limit_denominator(MAX_DENOMINATOR)
        for task, share in shares.items()
        if task != largest
    }
    fractions[largest] = 1 - sum(fractions.values(), Fraction(0))
    fractions = {task: fractions[task] for task in shares}  # the recipe's order
    if any(f <= 0 for f in fractions.values()):
        raise MixError("every task share must be above 0")
    block = math.lcm(*(f.denominator for f in fractions.values()))
    if block > MAX_BLOCK:
        raise MixError(f"the task shares need blocks of {block} samples; use shares with at most 2 decimals")
    return block, {task: int(f * block) for task, f in fractions.items()}


class TaskMixer:
    """Assigns tasks to kept samples in arrival order so the mix is exact in every block.

    Each consecutive block of kept samples holds exactly each task's count (:func:`block_counts`),
    placed by a seeded shuffle. Runs in the ordered (single) part of the pipeline, so the result does not
    depend on workers. With ``{"instruction": 0.7, "transcription": 0.3}`` it places the tasks exactly
    as the two-task mixer it generalises did.
    """

    def __init__(self, shares: dict[str, float], seed: int) -> None:
        self.block, self.counts = block_counts(shares)
        self.seed = seed
        self.count = 0
        self._pattern: list[str] = []

    def _block_pattern(self, block: int) -> list[str]:
        order = sorted(range(self.block), key=lambda pos: unit_draw(self.seed, "task-block", block, pos))
        tasks = [""] * self.block
        start = 0
        for task, count in self.counts.items():
            for pos in order[start : start + count]:
                tasks[pos] = task
            start += count
        return tasks

    def peek(self) -> str:
        """The task of the next kept sample, without taking it (a sample that then fails is not counted)."""
        block, position = divmod(self.count, self.block)
        if position == 0 or not self._pattern:
            self._pattern = self._block_pattern(block)
        return self._pattern[position]

    def next_task(self) -> str:
        task = self.peek()
        self.count += 1
        return task
