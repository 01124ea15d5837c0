"""``dataengine cache stats|gc``: look at and trim the per-sample stage cache."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import click

from dataengine.commands import UserError

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _seconds(text: str) -> float:
    match = _DURATION.match(text.strip())
    if not match:
        raise UserError(f"--older-than: expected a duration like 30m, 12h or 7d, got {text!r}")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


@click.group("cache")
@click.option("--cache-dir", type=click.Path(path_type=Path), help="Cache root (default: $DATAENGINE_CACHE).")
@click.pass_context
def cache_group(ctx: click.Context, cache_dir: Path | None) -> None:
    """The content-addressed cache of per-sample stage results."""
    from dataengine.cache import StageCache, cache_root
    from dataengine.cachedb import CacheError

    root = cache_dir or cache_root()
    for path in (root, root / "stages"):
        if path.exists() and not path.is_dir():
            env = os.environ.get("DATAENGINE_CACHE")
            source = "--cache-dir" if cache_dir else "$DATAENGINE_CACHE" if env else "default location"
            raise UserError(f"{path}: not a folder, so not a stage cache ({source})")
    cache = StageCache(root)
    try:
        cache.verify()
    except CacheError as exc:
        raise UserError(str(exc)) from None
    ctx.obj = cache


@cache_group.command("stats")
@click.pass_obj
def cache_stats(cache) -> None:  # noqa: ANN001 - StageCache, imported lazily
    """Entries and bytes per stage."""
    stats = cache.stats()
    click.echo(f"cache: {cache.root}")
    for stage, (count, size) in stats.by_stage.items():
        click.echo(f"  {stage:<14} {count:>8} entries  {size / 2**20:10.1f} MiB")
    click.echo(f"  {'total':<14} {stats.entries:>8} entries  {stats.bytes / 2**20:10.1f} MiB")
    files, size = stats.legacy
    if files:
        click.echo(
            f"  and {files} entries ({size / 2**20:.1f} MiB) in the one-file-per-entry layout of an earlier "
            "dataengine: no build reads them; `cache gc` removes them once unused for --older-than"
        )


@cache_group.command("gc")
@click.option("--older-than", default="30d", show_default=True, help="Delete entries unused for this long.")
@click.pass_obj
def cache_gc(cache, older_than: str) -> None:  # noqa: ANN001 - StageCache, imported lazily
    """Delete entries no build has used for a while, and Whisper checkpoints converted by other code."""
    from dataengine.tokenizer.ct2_whisper import superseded_conversions

    seconds = _seconds(older_than)
    cutoff = time.time() - seconds
    removed, freed = cache.gc(seconds)
    click.echo(f"removed {removed} entries, freed {freed / 2**20:.1f} MiB")
    folder = cache.root.parent / "whisper"  # where default_whisper_checkpoint keeps its conversions
    try:
        stale = superseded_conversions(folder)
    except OSError as exc:
        raise UserError(f"{folder}: cannot list it ({exc.strerror or exc})") from None
    for path in stale:
        try:
            stat = path.stat()
            if stat.st_mtime >= cutoff:
                continue
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise UserError(f"{path}: cannot remove it ({exc.strerror or exc})") from None
        size = stat.st_size / 2**20
        click.echo(f"removed {path.name} ({size:.1f} MiB): a Whisper conversion this version never reads")
