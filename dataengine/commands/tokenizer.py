"""``dataengine tokenizer …``: inspect WhisperVQ checkpoints, encode audio files, fit a codebook."""

from __future__ import annotations

from pathlib import Path

import click

from dataengine.commands import UserError
from dataengine.recipe import RecipeError, load_recipe


@click.group()
def tokenizer() -> None:
    """The WhisperVQ sound tokenizer."""


_CHECKPOINT_HELP = "default, a preset name (see `info --presets`), a path, or org/repo:file."


def _load(checkpoint: str, whisper: str | None, device: str = "cpu", dtype: str = "float32"):
    from dataengine.tokenizer.errors import TokenizerError
    from dataengine.tokenizer.whispervq import load_whispervq

    try:
        return load_whispervq(checkpoint, whisper, device=device, dtype=dtype)
    except TokenizerError as exc:
        raise UserError(str(exc)) from None


@tokenizer.command("info")
@click.option("--checkpoint", default="default", show_default=True, help=_CHECKPOINT_HELP)
@click.option("--whisper", default=None, help="Whisper model name or checkpoint path (overrides the VQ's).")
@click.option("--presets", "list_presets", is_flag=True, help="List the known checkpoints; loads nothing.")
def tokenizer_info(checkpoint: str, whisper: str | None, list_presets: bool) -> None:
    """Print the codebook size, token rate and source of a WhisperVQ checkpoint."""
    from dataengine.tokenizer.presets import PRESETS

    if list_presets:
        for preset in PRESETS.values():
            click.echo(preset.describe())
        return
    model = _load(checkpoint, whisper)
    enc = model.encoder
    lines = {
        "codes": model.vq_codes,
        "codebook rows": f"{model.codebook.shape[0]} (incl. mask code)"
        if model.codebook.shape[0] > model.vq_codes
        else model.codebook.shape[0],
        "codebook dim": model.codebook_dim,
        "distance": "cosine" if model.use_cosine_sim else "euclidean",
        "tokens/s": f"{model.tokens_per_second:g}",
        "whisper encoder": f"{enc.n_mels} mels, width {enc.n_state}, {len(enc.blocks)} layers",
        "source": model.source,
    }
    if checkpoint in PRESETS:
        lines["preset"] = PRESETS[checkpoint].describe()
    for key, value in lines.items():
        click.echo(f"{key}: {value}")


@tokenizer.command("encode")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--checkpoint", default="default", show_default=True, help=_CHECKPOINT_HELP)
@click.option("--whisper", default=None, help="Whisper model name or checkpoint path (overrides the VQ's).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file (path, seconds, tokens).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["codes", "ichigo"]),
    default="codes",
    show_default=True,
    help="codes: space-separated ids; ichigo: <|sound_start|><|sound_0042|>...<|sound_end|>.",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--dtype", type=click.Choice(["float32", "float16", "bfloat16"]), default="float32")
def tokenizer_encode(
    files: tuple[Path, ...],
    checkpoint: str,
    whisper: str | None,
    as_json: bool,
    fmt: str,
    batch_size: int,
    device: str,
    dtype: str,
) -> None:
    """Print the WhisperVQ codes of audio FILEs (any rate/channels soundfile reads; resampled to 16 kHz)."""
    import json

    from dataengine.audio.io import read_audio_file
    from dataengine.formatting import sound_string
    from dataengine.sample import AUDIO_SAMPLE_RATE

    audios = []
    for path in files:
        try:  # audio-check's reader: missing files, undecodable data, NaN/inf samples are one line
            audios.append(read_audio_file(path, AUDIO_SAMPLE_RATE)[0])
        except ValueError as exc:
            raise UserError(f"{path}: {str(exc).splitlines()[0]}") from None
        if len(audios[-1]) <= 200:
            raise UserError(f"{path}: too short to encode ({len(audios[-1])} samples at 16 kHz)")
    model = _load(checkpoint, whisper, device, dtype)
    for path, audio, tokens in zip(files, audios, model.encode(audios, batch_size), strict=True):
        codes = [int(t) for t in tokens]
        text = sound_string(codes) if fmt == "ichigo" else " ".join(map(str, codes))
        if as_json:
            record: dict[str, object] = {
                "path": str(path),
                "seconds": round(len(audio) / AUDIO_SAMPLE_RATE, 3),
                "tokens": codes,
            }
            if fmt == "ichigo":
                record["ichigo"] = text
            click.echo(json.dumps(record))
        else:
            click.echo(f"{path}\t{text}")


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
