"""The card's PNG plots (matplotlib, Agg backend): durations, sound tokens, reject reasons."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first

PLOT_FILES = {
    "duration": "duration_hist.png",
    "tokens": "sound_tokens_hist.png",
    "rejects": "reject_reasons.png",
}
_SAVE = {"dpi": 100, "metadata": {"Software": None}}  # no version string: same data, same bytes


def _histogram(values: list[float], path: Path, title: str, xlabel: str, color: str) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    if values:
        ax.hist(values, bins=min(30, max(5, len(values) // 4)), color=color, edgecolor="white")
    else:
        ax.text(0.5, 0.5, "no kept samples", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("samples")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, **_SAVE)
    plt.close(fig)


def _reject_bars(reasons: list[tuple[str, int]], path: Path) -> None:
    height = max(2.4, 0.45 * len(reasons) + 1.2)
    fig, ax = plt.subplots(figsize=(6.4, height))
    if reasons:
        labels = [name for name, _ in reversed(reasons)]
        counts = [n for _, n in reversed(reasons)]
        bars = ax.barh(labels, counts, color="#c0504d")
        ax.bar_label(bars, padding=3)
        ax.set_xlim(0, max(counts) * 1.15)
    else:
        ax.text(0.5, 0.5, "no rejected samples", ha="center", va="center", transform=ax.transAxes)
        ax.set_yticks([])
    ax.set_title("Rejected samples by stage/reason")
    ax.set_xlabel("samples")
    fig.tight_layout()
    fig.savefig(path, **_SAVE)
    plt.close(fig)


def write_plots(
    folder: Path, durations: list[float], tokens: list[int], reasons: list[tuple[str, int]]
) -> dict[str, str]:
    """Write the three PNGs into ``folder``; return plot name -> file name."""
    folder.mkdir(parents=True, exist_ok=True)
    _histogram(
        durations, folder / PLOT_FILES["duration"], "Audio duration of kept samples", "seconds", "#4f81bd"
    )
    _histogram(
        [float(t) for t in tokens],
        folder / PLOT_FILES["tokens"],
        "Sound tokens per prompt (25 tokens/s)",
        "sound tokens",
        "#9bbb59",
    )
    _reject_bars(reasons, folder / PLOT_FILES["rejects"])
    return dict(PLOT_FILES)
