"""The ``dataengine`` command line: parse, call, print."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from dataengine.commands import UserError
from dataengine.commands.audio import audio_check, eval_filters
from dataengine.commands.cache import cache_group
from dataengine.commands.export import export
from dataengine.commands.numerics import numerics as numerics_group
from dataengine.commands.publish import card, pull, push, verify
from dataengine.commands.serve import serve
from dataengine.commands.tokenizer import tokenizer
from dataengine.commands.train import train
from dataengine.recipe import RecipeError, SettingError, load_recipe
from dataengine.redact import install_log_redaction

INTERRUPTED_EXIT = 130
"""Exit code after Ctrl-C: 128 + SIGINT, what a shell reports for a process the signal ended."""
NOTHING_KEPT_EXIT = 3
"""Exit code of a build that finished but kept no sample (its manifest of rejects is written)."""


class _Main(click.Group):
    """The root command: Ctrl-C while a command runs is one line on stderr and exit code 130."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("interrupted (Ctrl-C)", err=True)
            ctx.exit(INTERRUPTED_EXIT)


class NothingKept(click.ClickException):
    """The build finished but kept no sample: loud, and a non-zero exit so scripts and DVC stop."""

    exit_code = NOTHING_KEPT_EXIT


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    install_log_redaction()  # a password in an --endpoint URL must not reach the log either
    if not verbose:  # torch logs cache statistics at exit when its own logging set-up has not run yet
        logging.getLogger("torch").setLevel(logging.WARNING)


@click.group(cls=_Main)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.version_option(package_name="dataengine")
def main(verbose: bool) -> None:
    """Build spoken-instruction datasets for speech LLMs."""
    _setup_logging(verbose)


@main.command()
@click.argument("recipe_path", metavar="RECIPE", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), help="Output folder (default: build/<recipe name>).")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    help="Take at most N items, kept or rejected: source rows, joined prompts, noise (overrides the recipe).",
)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Worker processes.")
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="What runs the stages: local worker processes or Ray actors.",
)
@click.option("--ray-address", help="Ray cluster address for --executor ray (default: start Ray locally).")
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
@click.option(
    "--no-cache", is_flag=True, help="Recompute everything (the stage cache is neither read nor written)."
)
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path),
    help="Stage cache root (default: $DATAENGINE_CACHE or ~/.cache/dataengine).",
)
@click.option(
    "--numerics",
    type=click.Choice(["pinned", "native"]),
    default="pinned",
    show_default=True,
    help="pinned: the project's CPU-kernel pins (same bytes on every AVX2 CPU); native: this CPU's "
    "fastest kernels (bytes may differ elsewhere). Also $DATAENGINE_NUMERICS.",
)
def build(
    recipe_path: Path,
    out: Path | None,
    limit: int | None,
    workers: int,
    executor: str,
    ray_address: str | None,
    no_progress: bool,
    no_cache: bool,
    cache_dir: Path | None,
    numerics: str,
) -> None:
    """Build RECIPE into sharded WebDataset files plus a DuckDB-queryable manifest.

    Per-sample results of the expensive stages are cached by content, so a rebuild after a change
    re-runs only what the change affects, and re-running a killed build resumes it.
    """
    from dataengine import numerics as numerics_pins

    if numerics == "native" or numerics_pins.mode() == "native":
        try:
            numerics_pins.use_native()  # before anything below loads numpy, torch or CTranslate2
        except RuntimeError as exc:
            raise UserError(str(exc)) from None
    from dataengine.cache import CacheError, StageCache
    from dataengine.executors import RayExecutor, StageFailed, WorkerError
    from dataengine.pipeline import OutputError
    from dataengine.pipeline import build as run_build
    from dataengine.stage import StageError

    try:
        recipe = load_recipe(recipe_path)
        if limit is not None:
            recipe = recipe.with_overrides(limit=limit)
        out = out or Path("build") / recipe.name
        cache = None if no_cache else StageCache(cache_dir)
        runner = None
        if executor == "ray":
            runner = RayExecutor(workers, ray_address, recipe.executor)
        summary = run_build(
            recipe, out, workers=workers, progress=not no_progress, cache=cache, executor=runner
        )
    except (SettingError, StageError) as exc:  # found as the build starts: name the recipe file too
        raise UserError(f"{recipe_path}: {exc}") from None
    except (RecipeError, OutputError, CacheError) as exc:
        raise UserError(str(exc)) from None
    except StageFailed as exc:
        if exc.details:
            logging.getLogger("dataengine.pipeline").error("%s", exc.details.rstrip())
        raise click.ClickException(str(exc)) from None
    except WorkerError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(_format_summary(summary))
    if summary.kept == 0:
        raise NothingKept(_nothing_kept(summary))


def _nothing_kept(summary) -> str:  # noqa: ANN001 - BuildSummary, imported lazily
    rejected = sum(summary.rejected.values())
    if rejected == 0:
        return f"the build kept no sample: the source gave no rows (built {summary.out} empty)"
    top = ", ".join(f"{reason} {n}" for reason, n in summary.rejected.most_common(3))
    return (
        f"the build kept no sample: all {rejected} rejected ({top}); see "
        f'`dataengine query {summary.out} "select stage, reason, count(*) from rejects group by all"`'
    )


def _format_summary(summary) -> str:  # noqa: ANN001 - BuildSummary, imported lazily
    rejected = sum(summary.rejected.values())
    wall = max(summary.wall_seconds, 1e-9)
    lines = [
        f"built {summary.out}: {summary.kept} kept, {rejected} rejected, {len(summary.shards)} shard(s)",
        f"audio: {summary.audio_seconds / 3600:.3f} h ({summary.audio_seconds:.1f} s) kept",
        f"wall time: {summary.wall_seconds:.1f} s; {(summary.kept + rejected) / wall:.2f} samples/s, "
        f"{summary.audio_seconds / wall:.2f} audio-s/s",
        "tasks: " + ", ".join(f"{task}={n}" for task, n in sorted(summary.tasks.items())),
    ]
    if summary.rejected:
        lines.append("rejected by reason:")
        lines += [f"  {reason:<40} {n}" for reason, n in summary.rejected.most_common()]
    lines.append("stages:")
    for stage in summary.stages:
        lines.append(
            f"  {stage.name:<14} seen {stage.seen:>6}  dropped {stage.dropped:>5}  errors {stage.errors:>4}  "
            f"from cache {stage.cached:>6}  {stage.seconds:8.1f} s"
        )
    return "\n".join(lines)


@main.command()
@click.argument("out", type=click.Path(path_type=Path))
@click.argument("sql")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per row.")
def query(out: Path, sql: str, as_json: bool) -> None:
    """Run read-only SQL over the build OUT's manifest (tables: samples, rejects)."""
    from dataengine.manifest import ManifestError, run_query

    try:
        columns, rows = run_query(out, sql)
    except ManifestError as exc:
        raise UserError(str(exc)) from None
    if as_json:
        for row in rows:
            click.echo(json.dumps(dict(zip(columns, row, strict=True)), default=str, ensure_ascii=False))
        return
    click.echo(_table(columns, rows))


def _table(columns: list[str], rows: list[tuple]) -> str:
    cells = [[str(c) for c in columns]] + [["NULL" if v is None else str(v) for v in row] for row in rows]
    widths = [min(60, max(len(r[i]) for r in cells)) for i in range(len(columns))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(v[:60].ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


@main.command()
@click.argument("out", type=click.Path(path_type=Path))
def inspect(out: Path) -> None:
    """Summarize the build OUT: counts, hours, tasks, voices, reject reasons, length percentiles."""
    from dataengine.inspect import summarize
    from dataengine.manifest import ManifestError

    try:
        click.echo(summarize(out))
    except ManifestError as exc:
        raise UserError(str(exc)) from None


# Command groups that live in their own modules (one module per area, heavy imports inside functions).
main.add_command(tokenizer)
main.add_command(train)
main.add_command(audio_check)
main.add_command(eval_filters)
for _command in (card, push, pull, verify):
    main.add_command(_command)
main.add_command(cache_group)
main.add_command(numerics_group)
main.add_command(export)
main.add_command(serve)


if __name__ == "__main__":  # pragma: no cover
    main()
