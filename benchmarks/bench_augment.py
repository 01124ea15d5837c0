"""`make bench`: token stability under real-world conditions (recipes/augment.yaml).

Builds the augment recipe (every condition on a seeded share of the spoken turns; the clean turn is
tokenized too) and prints, per condition and SNR bucket, how far WhisperVQ's sound tokens move: the
normalised edit distance between the clean and augmented code sequences after collapsing repeats. Also
what the filters rejected among the augmented turns, and the build's seconds per stage.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from dataengine.augment.report import augment_stats, format_stats
from dataengine.cache import StageCache
from dataengine.manifest import open_manifest
from dataengine.pipeline import build
from dataengine.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "augment.yaml")
    parser.add_argument("--limit", type=int, default=None, help="source rows (default: the recipe's)")
    parser.add_argument("--fraction", type=float, default=None, help="share of spoken turns augmented")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    recipe = load_recipe(args.recipe)
    if recipe.augment is None:
        raise SystemExit(f"{args.recipe}: the recipe has no augment section")
    if args.limit is not None:
        recipe = recipe.with_overrides(limit=args.limit)
    if args.fraction is not None:
        recipe = recipe.with_overrides(augment={**recipe.augment.model_dump(), "fraction": args.fraction})
    with tempfile.TemporaryDirectory(prefix="bench-augment-") as tmp:
        from dataengine.executors import LocalExecutor

        summary = build(
            recipe,
            Path(tmp) / "out",
            progress=False,
            executor=LocalExecutor(args.workers),
            cache=StageCache(Path(tmp) / "cache"),
        )
        con = open_manifest(summary.out)
        try:
            stats = augment_stats(con)
        finally:
            con.close()
    print(f"recipe {args.recipe.name}: {summary.kept} kept, {sum(summary.rejected.values())} rejected")
    assert stats is not None
    print("\n".join(format_stats(stats)))
    print("seconds per stage: " + ", ".join(f"{s.name} {s.seconds:.1f}" for s in summary.stages))


if __name__ == "__main__":
    main()
