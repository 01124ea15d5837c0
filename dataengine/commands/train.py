"""``dataengine train …``: prepare checkpoints for, and launch, the streaming torchtune recipe."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click

from dataengine.commands import UserError


@click.group()
def train() -> None:
    """Train a speech-aware Llama 3 straight from the shards (torchtune; see training/README.md)."""


@train.command("resize-vocab")
@click.argument("src", metavar="IN", type=click.Path(path_type=Path))
@click.argument("dst", metavar="OUT", type=click.Path(path_type=Path))
@click.option(
    "--codes",
    type=click.IntRange(min=1),
    default=None,
    help="Sound codes (default: 512, dataengine's codebook; 513 with --layout ichigo, as Ichigo's "
    "checkpoints, whose extra code is the mask code).",
)
@click.option(
    "--layout",
    type=click.Choice(["append", "ichigo"]),
    default="append",
    show_default=True,
    help="Where the sound ids go: after every existing id, or at the ids of Ichigo's released "
    "checkpoints (<|sound_start|> 128256, <|sound_end|> 128257, <|sound_0000|> 128258).",
)
@click.option(
    "--special-tokens",
    "special_tokens",
    type=click.Path(path_type=Path),
    help="tokenizer.json-style special tokens of IN (default: IN/special_tokens.json, else "
    "torchtune's Llama 3 map).",
)
def resize_vocab(src: Path, dst: Path, codes: int | None, layout: str, special_tokens: Path | None) -> None:
    """Add the sound tokens to the Llama 3 checkpoint IN (HF safetensors or torchtune format), write OUT.

    With --layout ichigo a released Ichigo checkpoint (already 128,771 rows) is copied unchanged with a
    special_tokens.json that lets training/ continue it on dataengine's shards."""
    from dataengine.training.vocab import VocabError
    from dataengine.training.vocab import resize_vocab as run_resize

    try:
        report = run_resize(src, dst, n_sound_codes=codes, special_tokens_path=special_tokens, layout=layout)
    except (VocabError, ValueError, OSError) as exc:
        raise UserError(str(exc)) from None
    click.echo(
        f"{report.format} checkpoint: vocabulary {report.old_rows} -> {report.new_rows} rows "
        f"(sound tokens from id {report.sound_start_id}{', Ichigo layout' if layout == 'ichigo' else ''}); "
        f"wrote {dst} and {dst / 'special_tokens.json'}"
    )


@train.command("init-tiny")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--seed", type=int, default=0, show_default=True)
def init_tiny(out: Path, seed: int) -> None:
    """Write a tiny BPE tokenizer + random tiny llama3 checkpoint to OUT (for tiny_cpu.yaml)."""
    from dataengine.training.tiny import init_tiny as run_init

    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out}: folder exists and is not empty")
    made = run_init(out, seed=seed)
    click.echo(
        f"wrote {out}: tokenizer.model, special_tokens.json, model.pt (vocab_size {made['vocab_size']})"
    )


RECIPE = "dataengine/training/stream_finetune.py"
"""How ``tune run`` is given the recipe: it turns a custom recipe's path into a module name
(``dataengine.training.stream_finetune``) and imports that, so the installed package's recipe runs from
any working directory (an absolute path would not: it makes no module name)."""


@train.command("run", context_settings={"ignore_unknown_options": True})
@click.argument("config", type=click.Path(path_type=Path))
@click.argument("overrides", nargs=-1, type=click.UNPROCESSED)
def run(config: Path, overrides: tuple[str, ...]) -> None:
    """``tune run dataengine/training/stream_finetune.py --config CONFIG [key=value …]`` in this environment.

    CONFIG is a file, or the name of a config shipped in training/configs (``tiny_cpu``)."""
    from dataengine import training

    package = Path(training.__file__).parent
    if not config.is_file():
        shipped = package / "configs" / (config.name if config.suffix == ".yaml" else f"{config.name}.yaml")
        if config.parent != Path(".") or not shipped.is_file():
            names = ", ".join(sorted(p.stem for p in (package / "configs").glob("*.yaml")))
            raise UserError(f"{config}: no such config file (shipped configs: {names})")
        config = shipped
    from dataengine.training.preflight import PreflightError, check_run_config

    try:  # the data, tokenizer and checkpoint must be there before tune starts
        check_run_config(config, overrides)
    except PreflightError as exc:
        raise UserError(str(exc)) from None
    cmd = [
        sys.executable,
        "-m",
        "torchtune._cli.tune",
        "run",
        RECIPE,
        "--config",
        str(config),
        *overrides,
    ]
    raise SystemExit(subprocess.call(cmd))
