"""``dataengine tokenizer fit``: speak a recipe's texts, encode them with Whisper, k-means a codebook.

Short utterances are joined (with seeded pauses) into clips of 4-30 s, so each 30 s encoder window is
mostly real speech: the encoder cost is per window, whatever the clip length.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dataengine.hashing import unit_draw
from dataengine.recipe import Recipe
from dataengine.sample import AUDIO_SAMPLE_RATE, TTS, Sample
from dataengine.sources import iter_source
from dataengine.stage import StageStats
from dataengine.text.filters import check_text
from dataengine.tokenizer.ct2_whisper import default_whisper_checkpoint
from dataengine.tokenizer.fit import build_checkpoint, extract_features, kmeans, save_checkpoint
from dataengine.tokenizer.whisper_encoder import load_whisper_encoder
from dataengine.tts.stage import TTSStage

log = logging.getLogger(__name__)

MAX_CLIP_S = 30.0


def training_texts(recipe: Recipe, limit: int) -> list[Sample]:
    """Distinct speakable texts (each pair's prompt, then response) from the recipe's source."""
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
            spoken = Sample.pair(f"{sample.id}-{role}", len(texts), text, "")
            spoken.turns[0].origin, spoken.turns[0].key = TTS, spoken.id
            texts.append(spoken)
            if len(texts) >= limit:
                return texts
    return texts


def join_into_clips(utterances: list[np.ndarray], seed: int) -> list[np.ndarray]:
    """Concatenate utterances with 0.1-0.6 s pauses into clips of seeded target length (4-30 s)."""
    clips: list[np.ndarray] = []
    parts: list[np.ndarray] = []
    target = 4 + 26 * unit_draw(seed, "clip", 0)
    for n, audio in enumerate(utterances):
        pause = np.zeros(int(AUDIO_SAMPLE_RATE * (0.1 + 0.5 * unit_draw(seed, "pause", n))), np.float32)
        parts += [audio, pause]
        if sum(len(p) for p in parts) >= target * AUDIO_SAMPLE_RATE:
            clips.append(np.concatenate(parts)[: int(MAX_CLIP_S * AUDIO_SAMPLE_RATE)])
            parts = []
            target = 4 + 26 * unit_draw(seed, "clip", len(clips))
    if parts:
        clips.append(np.concatenate(parts)[: int(MAX_CLIP_S * AUDIO_SAMPLE_RATE)])
    return clips


def fit_default_codebook(recipe: Recipe, out: Path, *, n_codes: int, seed: int, limit: int) -> str:
    """Fit and save a whisperspeech-format codebook checkpoint; return a short report."""
    started = time.perf_counter()
    samples = training_texts(recipe, limit)
    tts = TTSStage(recipe.tts, recipe.seed)
    tts.setup()
    stats = StageStats("tts")
    for start in tqdm(range(0, len(samples), 16), desc="speak", unit="batch"):
        tts(samples[start : start + 16], stats)
    audio = [s.turns[0].audio for s in samples if s.kept and s.turns[0].audio is not None]
    clips = join_into_clips(audio, seed)
    whisper_path = recipe.tokenizer.whisper or default_whisper_checkpoint()
    encoder = load_whisper_encoder(Path(whisper_path))
    features = np.concatenate(
        [
            extract_features(encoder, clips[start : start + 8])
            for start in tqdm(range(0, len(clips), 8), desc="encode", unit="batch")
        ]
    )
    log.info("k-means: %d frames x %d dims -> %d codes (seed %d)", *features.shape, n_codes, seed)
    codebook = kmeans(features, n_codes=n_codes, seed=seed)
    save_checkpoint(build_checkpoint(codebook, whisper_model_name="tiny.en"), out)
    elapsed = time.perf_counter() - started
    return (
        f"wrote {out}: {n_codes} codes from {len(samples)} texts in {len(clips)} clips, "
        f"{stats.audio_seconds:.0f} s of speech, {len(features)} frames, {elapsed:.0f} s"
    )
