"""``dataengine tokenizer …``: inspect and fit WhisperVQ checkpoints."""

from __future__ import annotations

from pathlib import Path

import click

from dataengine.commands import UserError
from dataengine.recipe import RecipeError, load_recipe


@click.group()
def tokenizer() -> None:
    """The WhisperVQ sound tokenizer."""


@tokenizer.command("info")
@click.option("--checkpoint", default="default", show_default=True, help="default, a path, or org/repo:file.")
def tokenizer_info(checkpoint: str) -> None:
    """Print the codebook size, token rate and source of a WhisperVQ checkpoint."""
    from dataengine.tokenizer.errors import TokenizerError
    from dataengine.tokenizer.whispervq import load_whispervq

    try:
        model = load_whispervq(checkpoint)
    except TokenizerError as exc:
        raise UserError(str(exc)) from None
    click.echo(f"codes: {model.vq_codes}\ntokens/s: {model.tokens_per_second:g}\nsource: {model.source}")


@tokenizer.command("fit")
@click.option(
    "--recipe",
    "recipe_path",
    type=click.Path(path_type=Path),
    default=Path("recipes/demo.yaml"),
    show_default=True,
    help="Recipe whose source and voices make the training audio.",
)
@click.option("--limit", type=click.IntRange(min=1), default=900, show_default=True, help="Texts to speak.")
@click.option("--codes", type=click.IntRange(min=2), default=512, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Checkpoint file to write.")
def tokenizer_fit(recipe_path: Path, limit: int, codes: int, seed: int, out: Path) -> None:
    """Fit a codebook by k-means over Whisper encoder features of the project's own TTS output."""
    from dataengine.tokenizer.fit_command import fit_default_codebook

    try:
        recipe = load_recipe(recipe_path)
    except RecipeError as exc:
        raise UserError(str(exc)) from None
    report = fit_default_codebook(recipe, out, n_codes=codes, seed=seed, limit=limit)
    click.echo(report)
