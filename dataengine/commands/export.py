"""``dataengine export``: a build in another project's dataset layout."""

from __future__ import annotations

from pathlib import Path

import click

from dataengine.commands import UserError


@click.command("export")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--format", "fmt", help="Target layout: ichigo (Ichigo's Parquet datasets).")
@click.option(
    "--out",
    "dest",
    type=click.Path(path_type=Path),
    help="A .parquet file, or a dataset folder (gets data/train-00000-of-00001.parquet and README.md); "
    "default: OUT-ichigo beside the build.",
)
@click.option("--overwrite", is_flag=True, help="Replace a file an earlier export wrote.")
def export(out: Path, fmt: str | None, dest: Path | None, overwrite: bool) -> None:
    """Write the build OUT (shards + manifest) in another layout, streaming, row group by row group."""
    from dataengine.export import FORMATS, ExportError, export_build

    if fmt is None:
        raise UserError(f"--format is required (known: {', '.join(sorted(FORMATS))})")
    try:
        path, rows = export_build(out, fmt, dest, overwrite)
    except (ExportError, OSError) as exc:
        raise UserError(str(exc)) from None
    click.echo(f"wrote {path}: {rows} rows ({fmt} layout)")
