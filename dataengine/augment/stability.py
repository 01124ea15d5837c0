"""Token stability: how far WhisperVQ's sound tokens move under a condition.

For every augmented turn the clean audio is tokenized too (:class:`CleanTokenStage`, after the
tokenizer) and ``token_ned`` is the edit distance between the two code sequences after collapsing
repeats (a held sound is one unit: a longer or shorter hold is not a different sound), divided by the
longer collapsed length: 0 = the same tokens, 1 = nothing in common.
"""

from __future__ import annotations

import numpy as np

from dataengine.recipe import Recipe
from dataengine.sample import RECORDING, TTS, Turn, Unit
from dataengine.tokenizer.stage import TokenizerStage


def collapse_repeats(tokens: np.ndarray) -> np.ndarray:
    """Runs of the same code as one code: ``[5, 5, 7, 5]`` -> ``[5, 7, 5]``."""
    tokens = np.asarray(tokens)
    if len(tokens) == 0:
        return tokens
    return tokens[np.concatenate([[True], tokens[1:] != tokens[:-1]])]


def edit_distance(a: np.ndarray, b: np.ndarray) -> int:
    """Levenshtein distance (unit costs), one vectorised row of the table at a time."""
    a, b = np.asarray(a), np.asarray(b)
    if len(a) == 0 or len(b) == 0:
        return int(max(len(a), len(b)))
    offsets = np.arange(len(b) + 1)
    row = offsets.copy()
    for i, code in enumerate(a, start=1):
        step = np.empty_like(row)
        step[0] = i
        step[1:] = np.minimum(row[1:] + 1, row[:-1] + (b != code))  # deletion, substitution
        # insertion: row[j] = min over k <= j of step[k] + (j - k)
        row = np.minimum.accumulate(step - offsets) + offsets
    return int(row[-1])


def token_ned(clean: np.ndarray, augmented: np.ndarray) -> float:
    """Normalised edit distance between the collapsed sequences (0 when both are empty)."""
    a, b = collapse_repeats(clean), collapse_repeats(augmented)
    longest = max(len(a), len(b))
    return 0.0 if longest == 0 else edit_distance(a, b) / longest


SNR_BUCKETS: tuple[tuple[float, float, str], ...] = (
    (-1e9, 10, "<10 dB"),
    (10, 20, "10-20 dB"),
    (20, 1e9, ">=20 dB"),
)
"""SNR buckets of the token-stability table (the ``noise`` condition's drawn SNR)."""


def snr_bucket_sql(column: str = "aug_snr_db") -> str:
    """A SQL CASE naming each row's SNR bucket (``no noise`` where the turn had none)."""
    cases = " ".join(f"WHEN {column} < {high} THEN '{label}'" for _, high, label in SNR_BUCKETS[:-1])
    return f"CASE WHEN {column} IS NULL THEN 'no noise' {cases} ELSE '{SNR_BUCKETS[-1][2]}' END"


class CleanTokenStage(TokenizerStage):
    """Tokenizes an augmented turn's clean audio into ``clean_tokens`` (kept in the manifest) and
    measures ``token_ned`` against the augmented turn's tokens; never rejects."""

    name = "token_stability"
    origins = (TTS, RECORDING)
    metrics = ("token_ned",)
    reject_reasons = ()
    reads = ("clean_audio", "tokens")
    writes = ("clean_tokens",)
    columns = {"clean_tokens": "int16[]"}
    optional_columns = True
    code_modules = (*TokenizerStage.code_modules, "dataengine.tokenizer.stage")

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> CleanTokenStage | None:
        return cls(recipe.tokenizer) if recipe.augment is not None else None

    def applies(self, turn: Turn) -> bool:
        return turn.clean_audio is not None and turn.origin in self.origins

    def _encode(self, batch: list[Unit]) -> list[np.ndarray]:
        assert self.model is not None
        return self.model.encode([u.turn.clean_audio for u in batch])

    def _store(self, unit: Unit, tokens: np.ndarray) -> None:
        turn = unit.turn
        turn.clean_tokens = tokens.astype(np.int16)
        if turn.tokens is not None:
            turn.metrics["token_ned"] = token_ned(turn.clean_tokens, turn.tokens)

    def failures(self, unit: Unit) -> list[tuple[str, float]]:
        return []
