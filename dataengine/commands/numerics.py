"""``dataengine numerics info|check``: which CPU kernels decide the bytes, and a cross-ISA build check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import click

from dataengine.commands import UserError

LOWER_ISA_ENV = {
    "CT2_FORCE_CPU_ISA": "GENERIC",
    "ATEN_CPU_CAPABILITY": "default",
    "ONEDNN_MAX_CPU_ISA": "SSE41",
    "MKL_CBWR": "COMPATIBLE",
    "OPENBLAS_CORETYPE": "Prescott",
    "NPY_DISABLE_CPU_FEATURES": "X86_V3",
}
"""Every knob forced to its lowest level: the stand-in for another CPU. The pins must win over it."""


@dataclass
class CrossISAResult:
    """Per-file digests of the same build made as is and under :data:`LOWER_ISA_ENV`."""

    as_is: dict[str, str] = field(default_factory=dict)
    lowered: dict[str, str] = field(default_factory=dict)
    seconds: tuple[float, float] = (0.0, 0.0)

    @property
    def differing(self) -> list[str]:
        return sorted(
            p for p in set(self.as_is) | set(self.lowered) if self.as_is.get(p) != self.lowered.get(p)
        )

    @property
    def identical(self) -> bool:
        return bool(self.as_is) and not self.differing

    def table(self) -> str:
        parts = sorted({p.split("/")[0] for p in self.as_is})
        lines = ["| part | files | as is | lower ISAs forced | equal |", "|---|---|---|---|---|"]
        for part in parts:
            names = [p for p in sorted(self.as_is) if p.split("/")[0] == part]
            same = all(self.as_is[p] == self.lowered.get(p) for p in names)
            first = names[0]
            lines.append(
                f"| {part} | {len(names)} | {self.as_is[first][:12]} | {self.lowered.get(first, '-')[:12]} | "
                f"{'yes' if same else '**no**'} |"
            )
        lines.append(f"build seconds: as is {self.seconds[0]:.1f}, lowered {self.seconds[1]:.1f}")
        return "\n".join(lines)


def _build(recipe: Path, out: Path, limit: int | None, workers: int, numerics: str, env: dict) -> float:
    args = [
        sys.executable,
        "-m",
        "dataengine.cli",
        "build",
        str(recipe),
        "--out",
        str(out),
        "--no-cache",
        "--no-progress",
        "--workers",
        str(workers),
        "--numerics",
        numerics,
    ]
    if limit is not None:
        args += ["--limit", str(limit)]
    started = time.perf_counter()
    proc = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines() or ["(no output)"]
        raise UserError(f"build of {recipe} failed: {lines[-1]}")
    return time.perf_counter() - started


def cross_isa_check(
    recipe: Path,
    limit: int | None = 6,
    workers: int = 1,
    numerics: str = "pinned",
    workdir: Path | None = None,
) -> CrossISAResult:
    """Build ``recipe`` twice without the cache, once as is and once under :data:`LOWER_ISA_ENV`."""
    from dataengine.publish.files import data_files, file_sha256

    base_env = {k: v for k, v in os.environ.items() if k not in LOWER_ISA_ENV}
    result = CrossISAResult()
    with tempfile.TemporaryDirectory(prefix="cross-isa-", dir=workdir) as tmp:
        seconds = []
        for name, env in (("as-is", base_env), ("lowered", {**base_env, **LOWER_ISA_ENV})):
            out = Path(tmp) / name
            seconds.append(_build(recipe, out, limit, workers, numerics, env))
            digests = {rel: file_sha256(out / rel) for rel in data_files(out)}
            setattr(result, "as_is" if name == "as-is" else "lowered", digests)
        result.seconds = (seconds[0], seconds[1])
    return result


@click.group()
def numerics() -> None:
    """CPU-kernel pins that make builds byte-identical across x86-64 CPUs."""


@numerics.command()
def info() -> None:
    """Print the numerics profile, the pins in force and what the libraries actually chose."""
    from dataengine import numerics as pins

    facts = pins.describe()
    import numpy
    import torch

    enabled = [k for k, v in numpy._core._multiarray_umath.__cpu_features__.items() if v]  # type: ignore[attr-defined]
    facts["effective"] = {
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "numpy_dispatch": [f for f in numpy._core._multiarray_umath.__cpu_dispatch__ if f in enabled],  # type: ignore[attr-defined]
    }
    click.echo(json.dumps(facts, indent=2))
    click.echo(pins.reproducibility_note(facts))


@numerics.command()
@click.argument("recipe", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option(
    "--limit", type=click.IntRange(min=1), default=6, show_default=True, help="Source rows to build."
)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True)
@click.option(
    "--numerics",
    "mode",
    type=click.Choice(["pinned", "native"]),
    default="pinned",
    show_default=True,
    help="native shows what happens without the pins (digests may then differ).",
)
def check(recipe: Path, limit: int, workers: int, mode: str) -> None:
    """Build RECIPE twice (no cache): as is, and with every kernel knob forced lower, standing in for
    another CPU; the shard and manifest digests must be equal. Exit 1 when they differ."""
    result = cross_isa_check(recipe, limit, workers, mode)
    click.echo(result.table())
    if not result.identical:
        click.echo(f"differ: {', '.join(result.differing)}", err=True)
        raise SystemExit(1)
    if mode == "pinned":
        click.echo("identical: the pins decide the kernels, not the environment")
    else:
        click.echo("identical without pins: this recipe touched no kernel-dependent result on this CPU")
