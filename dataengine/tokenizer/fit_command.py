"""``dataengine tokenizer fit``: speak a recipe's texts, encode them with Whisper, k-means a codebook."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dataengine.recipe import Recipe
from dataengine.sample import Sample
from dataengine.sources import iter_source
from dataengine.stage import StageStats
from dataengine.text.filters import check_text
from dataengine.tokenizer.ct2_whisper import default_whisper_checkpoint
from dataengine.tokenizer.fit import build_checkpoint, extract_features, kmeans, save_checkpoint
from dataengine.tokenizer.whisper_encoder import load_whisper_encoder
from dataengine.tts.stage import TTSStage

log = logging.getLogger(__name__)


def training_texts(recipe: Recipe, limit: int) -> list[Sample]:
    """Distinct speakable texts (prompts, then responses) from the recipe's source, at most ``limit``."""
    seen: set[str] = set()
    texts: list[Sample] = []
    for sample in iter_source(recipe.with_overrides(limit=None)):
        if not sample.kept:
            continue
        for role, text in (("prompt", sample.prompt), ("response", sample.response)):
            text = text.strip()
            if text in seen or check_text(text, recipe.text_filters, recipe.tokenizer.max_sound_tokens):
                continue
            seen.add(text)
            texts.append(Sample(id=f"{sample.id}-{role}", index=len(texts), prompt=text, response=""))
            if len(texts) >= limit:
                return texts
    return texts


def fit_default_codebook(recipe: Recipe, out: Path, *, n_codes: int, seed: int, limit: int) -> str:
    """Fit and save a whisperspeech-format codebook checkpoint; return a short report."""
    started = time.perf_counter()
    samples = training_texts(recipe, limit)
    tts = TTSStage(recipe.tts, recipe.seed)
    tts.setup()
    stats = StageStats("tts")
    for start in tqdm(range(0, len(samples), 16), desc="speak", unit="batch"):
        tts(samples[start : start + 16], stats)
    audios = [s.audio for s in samples if s.kept and s.audio is not None]
    whisper_path = (
        Path(recipe.tokenizer.whisper) if recipe.tokenizer.whisper else default_whisper_checkpoint()
    )
    encoder = load_whisper_encoder(whisper_path)
    features = np.concatenate(
        [
            extract_features(encoder, audios[start : start + 32])
            for start in tqdm(range(0, len(audios), 32), desc="encode", unit="batch")
        ]
    )
    log.info("k-means: %d frames x %d dims -> %d codes (seed %d)", *features.shape, n_codes, seed)
    codebook = kmeans(features, n_codes=n_codes, seed=seed)
    save_checkpoint(build_checkpoint(codebook, whisper_model_name="tiny.en"), out)
    return (
        f"wrote {out}: {n_codes} codes from {len(audios)} clips, {stats.audio_seconds:.0f} s of speech, "
        f"{len(features)} frames, {time.perf_counter() - started:.0f} s"
    )
