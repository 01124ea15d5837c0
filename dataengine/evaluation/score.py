"""Run the audio filters over a labeled corpus and score them: precision and recall per reject class,
the share of clean clips kept, and a per-kind breakdown.

An item's prediction is the first failing reason (what the build records), or ``clean`` when it passes.
Precision of class C = items predicted C that are labeled C / items predicted C (borderline items,
noise at 10 dB SNR, are left out of every figure and reported on their own).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from dataengine.audio.filters import AUDIO_REJECT_REASONS, check_audio
from dataengine.audio.vad import SileroVAD
from dataengine.evaluation.corpus import BORDERLINE, CorpusItem
from dataengine.recipe import AudioFilterConfig


@dataclass
class ClassScore:
    label: str
    support: int
    predicted: int
    correct: int

    @property
    def precision(self) -> float:
        return self.correct / self.predicted if self.predicted else 1.0

    @property
    def recall(self) -> float:
        return self.correct / self.support if self.support else 1.0


@dataclass
class EvalResult:
    classes: list[ClassScore]
    clean_kept: float
    n_items: int
    by_kind: dict[str, Counter[str]] = field(default_factory=dict)
    borderline_kept: float = 0.0
    n_borderline: int = 0
    mistakes: list[tuple[str, str, str]] = field(default_factory=list)
    """(item id, label, prediction) of every wrong call."""

    def meets_goal(
        self, min_precision: float = 0.95, min_recall: float = 0.95, min_kept: float = 0.98
    ) -> bool:
        scored = [c for c in self.classes if c.support]
        return self.clean_kept >= min_kept and all(
            c.precision >= min_precision and c.recall >= min_recall for c in scored
        )


def predict(items: Iterable[CorpusItem], config: AudioFilterConfig) -> list[tuple[CorpusItem, str]]:
    """(item, first failing reason or ``clean``) for every item, with one VAD instance."""
    vad = SileroVAD()
    out = []
    for item in items:
        _, reasons = check_audio(item.audio, config, vad)
        out.append((item, reasons[0][0] if reasons else "clean"))
    return out


def score(predictions: list[tuple[CorpusItem, str]]) -> EvalResult:
    """Precision/recall per reject class present in the labels, clean keep-rate, per-kind counts."""
    scored = [(i, p) for i, p in predictions if i.label != BORDERLINE]
    border = [p for i, p in predictions if i.label == BORDERLINE]
    labels = [r for r in AUDIO_REJECT_REASONS if any(i.label == r for i, _ in scored)]
    classes = [
        ClassScore(
            label,
            support=sum(1 for i, _ in scored if i.label == label),
            predicted=sum(1 for _, p in scored if p == label),
            correct=sum(1 for i, p in scored if i.label == label and p == label),
        )
        for label in labels
    ]
    clean = [p for i, p in scored if i.label == "clean"]
    by_kind: dict[str, Counter[str]] = defaultdict(Counter)
    for item, pred in predictions:
        by_kind[f"{item.label}:{item.kind}"][pred] += 1
    return EvalResult(
        classes=classes,
        clean_kept=sum(p == "clean" for p in clean) / len(clean) if clean else 1.0,
        n_items=len(predictions),
        by_kind=dict(sorted(by_kind.items())),
        borderline_kept=sum(p == "clean" for p in border) / len(border) if border else 1.0,
        n_borderline=len(border),
        mistakes=[(i.id, i.label, p) for i, p in scored if i.label != p],
    )


def format_result(result: EvalResult, verbose: bool = False) -> str:
    """The table ``eval-filters`` prints."""
    lines = [f"{'class':<16} {'support':>7} {'predicted':>9} {'precision':>9} {'recall':>7}"]
    for c in result.classes:
        lines.append(f"{c.label:<16} {c.support:>7} {c.predicted:>9} {c.precision:>9.3f} {c.recall:>7.3f}")
    n_clean = sum(n for k, cnt in result.by_kind.items() if k.startswith("clean:") for n in cnt.values())
    lines.append(f"clean kept: {result.clean_kept:.3f} of {n_clean}")
    if result.n_borderline:
        lines.append(f"borderline (noise at 10 dB SNR, not scored) kept: {result.borderline_kept:.3f}")
    lines.append(
        f"items: {result.n_items}; goal (P>=0.95, R>=0.95, clean kept>=0.98) met: {result.meets_goal()}"
    )
    if verbose:
        lines.append("per kind (label:kind -> predictions):")
        for kind, cnt in result.by_kind.items():
            lines.append(f"  {kind:<36} " + ", ".join(f"{p}={n}" for p, n in cnt.most_common()))
        for item_id, label, pred in result.mistakes:
            lines.append(f"  wrong: {item_id} labeled {label}, predicted {pred}")
    return "\n".join(lines)
