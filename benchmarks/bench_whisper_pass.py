"""CPU seconds per kept sample of a build, source trees interleaved (e.g. main before the shared Whisper
pass, and this branch): ``python benchmarks/bench_whisper_pass.py BEFORE_SRC AFTER_SRC [AFTER_SRC ...]``.

Each run is ``dataengine build RECIPE --limit N --workers W --no-cache`` in a fresh process with the
tree's code first on ``PYTHONPATH``; its CPU time is the user + system time of that child and its
children (``resource.getrusage(RUSAGE_CHILDREN)`` around it), so other load on a shared machine costs
wall time but hardly CPU time. Runs alternate before/after, ``--rounds`` times, and the table gives the
median of each side and their ratio. ``--after-recipe`` gives the after side its own recipe (e.g. the
demo with ``asr.share_encoder: true``, a key the before tree does not know); given more than once, each
recipe is its own after side (``after:NAME``, the recipe's file stem), and so is each further source tree
(``after:FOLDER``), all of them interleaved with the before side in the same rounds (the order rotates
each round), so their ratios are comparable.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_build(src: Path, recipe: Path, out: Path, limit: int, workers: int) -> dict[str, float]:
    """One cold build with ``src``'s code: CPU seconds, wall seconds, kept and rejected counts."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    cmd = [sys.executable, "-m", "dataengine.cli", "build", str(recipe), "--out", str(out)]
    cmd += ["--limit", str(limit), "--workers", str(workers), "--no-cache", "--no-progress"]
    env = {**_env(), "PYTHONPATH": str(src)}
    done = subprocess.run(cmd, cwd=src, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{src}: build failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    info = json.loads((out / "build.json").read_text())
    result = {"cpu_s": cpu, "wall_s": wall, "kept": info["kept"], "rejected": info["rejected"]}
    for line in done.stdout.split("stages:")[-1].splitlines():  # the summary's per-stage seconds
        if line.strip().endswith(" s") and " seen " in line:
            result[f"{line.split()[0]}_s"] = float(line.split()[-2])
    return result


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("before", type=Path, help="source tree of the baseline (e.g. an export of main)")
    parser.add_argument(
        "after",
        type=Path,
        nargs="+",
        help="source trees to compare (e.g. this checkout)",
    )
    parser.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "demo.yaml")
    parser.add_argument(
        "--after-recipe",
        type=Path,
        action="append",
        help="the after side's recipe (default: --recipe); repeat it for several after sides",
    )
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="write the builds here (else a temporary folder)")
    args = parser.parse_args()
    sides = _sides(args)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.keep) as tmp:
        if args.keep is not None:
            tmp = str(args.keep)
        names = list(sides)
        for i in range(args.rounds):
            order = names[i % len(names) :] + names[: i % len(names)]
            for name in order:
                src, recipe = sides[name]
                out = Path(tmp) / f"{name.replace(':', '_')}{i}"
                result = run_build(src, recipe, out, args.limit, args.workers)
                runs[name].append(result)
                rounded = {k: round(v, 2) for k, v in result.items()}
                print(f"round {i} {name}: {json.dumps(rounded)}", flush=True)
    per_kept = {name: statistics.median(r["cpu_s"] / r["kept"] for r in rs) for name, rs in runs.items()}
    print(
        f"recipe {args.recipe.name} (after: {', '.join(sides[n][1].name for n in names[1:])}), "
        f"--limit {args.limit} --workers {args.workers}, {args.rounds} rounds each"
    )
    print("| side | CPU s per kept sample (median) | kept | CPU s (runs) | after / before |")
    print("|---|---|---|---|---|")
    for name, rs in runs.items():
        cpus = ", ".join(f"{r['cpu_s']:.1f}" for r in rs)
        ratio = "" if name == "before" else f"{per_kept[name] / per_kept['before']:.3f}"
        print(f"| {name} | {per_kept[name]:.3f} | {rs[0]['kept']:.0f} | {cpus} | {ratio} |")
    for name in names[1:]:
        print(f"ratio {name} / before: {per_kept[name] / per_kept['before']:.3f}")


def _sides(args: argparse.Namespace) -> dict[str, tuple[Path, Path]]:
    """Side name -> (source tree, recipe): ``before``, then one after side per source tree and
    ``--after-recipe`` (named by the tree's folder and the recipe's file stem where there are several)."""
    sides = {"before": (args.before.resolve(), args.recipe.resolve())}
    recipes = args.after_recipe or [args.recipe]
    if len(recipes) == 1 and len(args.after) == 1:
        sides["after"] = (args.after[0].resolve(), recipes[0].resolve())
        return sides
    for src in args.after:
        for recipe in recipes:
            parts = [src.resolve().name] if len(args.after) > 1 else []
            parts += [recipe.stem] if len(recipes) > 1 else []
            name = "after:" + ":".join(parts)
            if name in sides:
                raise SystemExit(f"two after sides share the name {name!r}")
            sides[name] = (src.resolve(), recipe.resolve())
    return sides


if __name__ == "__main__":
    main()
