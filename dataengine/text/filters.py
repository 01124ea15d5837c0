"""Drop texts that cannot be spoken naturally, or that would make too many sound tokens, before TTS.

TTS is the expensive step, so everything decidable from text alone is decided here.
"""

from __future__ import annotations

import re
import unicodedata

from dataengine.recipe import Recipe, TextFilterConfig
from dataengine.sample import T2S, TTS, Unit
from dataengine.stage import TurnStage

TOKENS_PER_SECOND = 25

_URL = re.compile(r"(https?://|ftp://|www\.)\S+|\b[\w-]+\.(com|org|net|io|edu|gov)\b", re.IGNORECASE)
_CODE = re.compile(
    r"```|`[^`]+`|[{};]\s*$|\b(def|function)\s+\w+\s*\(|\bclass\s+\w+\s*[:({]|\bimport\s+\w+\.\w+"
    r"|#include|=>|->|::|\w+\([^)]*\)\s*[;{]|</?\w+>|\b[a-z]+_[a-z_]+\b|==|!=|&&|\|\|",
    re.MULTILINE,
)
_MATH = re.compile(r"\d\s*[-+*/^=<>]\s*\d|\\(frac|sqrt|sum|int)|[=^∑∫√≤≥≠±]")
_PLAIN_PUNCT = set(" .,;:!?'\"-()&%$/")


def estimated_sound_tokens(text: str, chars_per_second: float) -> int:
    """Rough sound-token count from the text length at a typical speaking rate."""
    return round(len(text.strip()) / chars_per_second * TOKENS_PER_SECOND)


def symbol_ratio(text: str) -> float:
    """Share of characters that are neither letters, digits, whitespace nor plain punctuation."""
    if not text:
        return 0.0
    odd = sum(
        1
        for ch in text
        if not (ch.isalnum() or ch.isspace() or ch in _PLAIN_PUNCT or unicodedata.category(ch) == "Pf")
    )
    return odd / len(text)


def digit_ratio(text: str) -> float:
    letters_digits = [ch for ch in text if ch.isalnum()]
    if not letters_digits:
        return 0.0
    return sum(ch.isdigit() for ch in letters_digits) / len(letters_digits)


def check_text(text: str, config: TextFilterConfig, max_sound_tokens: int) -> tuple[str, float] | None:
    """Return ``(reason, value)`` when the prompt cannot be turned into a good spoken prompt."""
    stripped = text.strip()
    if not stripped:
        return "empty_text", 0.0
    if sum(ch.isalpha() for ch in stripped) < config.min_chars:
        return "too_few_letters", float(len(stripped))
    if _URL.search(stripped):
        return "url", 1.0
    if _CODE.search(stripped):
        return "code", 1.0
    if _MATH.search(stripped):
        return "math", 1.0
    ratio = symbol_ratio(stripped)
    if ratio > config.max_symbol_ratio:
        return "symbols", round(ratio, 4)
    digits = digit_ratio(stripped)
    if digits > config.max_digit_ratio:
        return "digits", round(digits, 4)
    estimate = estimated_sound_tokens(stripped, config.chars_per_second)
    if estimate > max_sound_tokens * config.length_margin:
        return "too_long_estimate", float(estimate)
    return None


TEXT_REJECT_REASONS: tuple[str, ...] = (
    "empty_text",
    "too_few_letters",
    "url",
    "code",
    "math",
    "symbols",
    "digits",
    "too_long_estimate",
)
"""What :func:`check_text` can return, in the order it checks."""


class TextFilter(TurnStage):
    """Checks the text a TTS turn will speak and rejects unspeakable or overly long ones."""

    name = "text_filters"
    section = "text_filters"
    config_model = TextFilterConfig
    origins = (TTS, T2S)  # text checks: a T2S turn speaks its text too
    metrics = ("est_sound_tokens",)
    reject_reasons = TEXT_REJECT_REASONS
    reads = ("text",)

    def __init__(self, config: TextFilterConfig, max_sound_tokens: int) -> None:
        self.config = config
        self.max_sound_tokens = max_sound_tokens

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> TextFilter:
        return cls(recipe.text_filters, recipe.tokenizer.max_sound_tokens)

    def process_turn(self, unit: Unit) -> None:
        text = unit.turn.text
        unit.turn.metrics["est_sound_tokens"] = float(
            estimated_sound_tokens(text, self.config.chars_per_second)
        )
        verdict = check_text(text, self.config, self.max_sound_tokens)
        if verdict is not None:
            unit.drop(self.name, *verdict)
