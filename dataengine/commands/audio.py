"""``dataengine audio-check`` (the build's audio filters on a user's files) and ``dataengine
eval-filters`` (the filters scored on the project's labeled corpus)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from dataengine.commands import UserError


def _recipe(path: Path | None):  # noqa: ANN202 - a Recipe, imported lazily
    from dataengine.recipe import Recipe, RecipeError, load_recipe

    if path is None:
        return Recipe(name="audio-check")
    try:
        return load_recipe(path)
    except RecipeError as exc:
        raise UserError(str(exc)) from None


def _transcript(path: Path, text: str | None) -> str | None:
    if text is not None:
        return text
    sidecar = path.with_suffix(".txt")
    if sidecar.is_file():
        try:
            return sidecar.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            return None
    return None


@click.command("audio-check")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file.")
@click.option("--recipe", "recipe_path", type=click.Path(path_type=Path), help="Thresholds from this recipe.")
@click.option("--text", help="Transcript of every FILE (default: a sidecar FILE.txt next to each file).")
@click.option("--no-asr", is_flag=True, help="Skip the ASR round trip.")
def audio_check(
    files: tuple[Path, ...], as_json: bool, recipe_path: Path | None, text: str | None, no_asr: bool
):
    """The build's audio filters on FILES (any rate 8-48 kHz, mono/stereo, WAV/FLAC/OGG/MP3).

    Reasons: bad_compression, noise, non_speech, clipping, silence, too_short, too_long,
    too_many_sound_tokens, asr_mismatch, unreadable. The ASR check runs when a transcript is given
    (--text or FILE.txt) with the recipe's asr.model (tiny.en when the recipe has none). Exit code 0
    when every file was checked; 2 when a FILE does not exist or is not a file (its row says why).
    """
    from dataengine.audio.check import AudioChecker
    from dataengine.audio.io import path_problem

    recipe = _recipe(recipe_path)
    checker = AudioChecker(recipe, asr=not no_asr)
    not_files = [(path, path_problem(path)) for path in files if path_problem(path)]
    for path in files:
        result = checker.check(path, _transcript(path, text))
        click.echo(json.dumps(result, ensure_ascii=False) if as_json else _line(result))
    if not_files:
        path, problem = not_files[0]
        more = f" (and {len(not_files) - 1} more)" if len(not_files) > 1 else ""
        raise UserError(f"{path}: {problem}{more}")


def _line(result: dict) -> str:
    reasons = ", ".join(result["reasons"])
    head = f"{result['path']}: {result['verdict']}" + (f" ({reasons})" if reasons else "")
    if "error" in result:
        return f"{head}: {result['error']}"
    m = result["metrics"]
    keys = ("duration_s", "speech_fraction", "band_edge_db", "snr_db", "clipping_ratio", "asr_wer")
    return head + "  " + " ".join(f"{k}={m[k]:.3g}" for k in keys if k in m)


@click.command("eval-filters")
@click.option("--size", default="ci", show_default=True, help="ci, bench, or a number of utterances.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--recipe", "recipe_path", type=click.Path(path_type=Path), help="Thresholds from this recipe.")
@click.option("-v", "--verbose", is_flag=True, help="Per-kind breakdown and every wrong call.")
@click.option(
    "--asr",
    "asr_utterances",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Also score the ASR round trip on N utterances x 4 simulated TTS outcomes (0: skip).",
)
@click.option(
    "--real", is_flag=True, help="Also score the real-recording subset (human speech, music, sounds)."
)
def eval_filters(
    size: str, seed: int, recipe_path: Path | None, verbose: bool, asr_utterances: int, real: bool
) -> None:
    """Build the labeled corpus (Piper speech + codecs, noise, clipping, silence, non-speech), run the
    audio filters and print precision/recall per reject class and the clean keep-rate. With --real, the
    same for real recordings from Debian packages (make install puts them in place)."""
    from dataengine.evaluation.corpus import SIZES, build_corpus
    from dataengine.evaluation.real import REAL_HINT, REAL_SIZES, build_real_corpus, missing_real_audio
    from dataengine.evaluation.score import format_result, predict, score

    if size in SIZES:
        utterances = SIZES[size]
    elif size.isdigit() and int(size) > 0:
        utterances = int(size)
    else:
        raise UserError(f"--size: use {', '.join(SIZES)} or a positive number, not {size!r}")
    recipe = _recipe(recipe_path)
    if real and missing_real_audio():
        raise UserError(f"--real: missing {', '.join(missing_real_audio())}: {REAL_HINT}")
    items = build_corpus(utterances, seed)
    click.echo(format_result(score(predict(items, recipe.audio_filters)), verbose))
    if real:
        prompts = REAL_SIZES["bench"] if utterances >= SIZES["bench"] else REAL_SIZES["ci"]
        click.echo(f"real recordings ({prompts} Allison prompts + every other source):")
        real_items = build_real_corpus(prompts, seed)
        click.echo(format_result(score(predict(real_items, recipe.audio_filters)), verbose))
    if asr_utterances:
        from dataengine.evaluation.asr_eval import score_asr

        click.echo(score_asr(asr_utterances, recipe.asr, seed, recipe.tokenizer).format())
