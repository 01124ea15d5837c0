"""Builds in other projects' layouts: ``dataengine export OUT --format FORMAT``."""

from __future__ import annotations

from pathlib import Path

from dataengine.export.ichigo import ExportError, export_ichigo

FORMATS = {"ichigo": export_ichigo}


def export_build(
    build: Path, fmt: str, dest: Path | None = None, overwrite: bool = False
) -> tuple[Path, int]:
    """Export ``build`` as ``fmt``; returns the file written and its number of rows."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r} (known: {', '.join(sorted(FORMATS))})")
    return FORMATS[fmt](build, dest, overwrite)


__all__ = ["FORMATS", "ExportError", "export_build"]
