"""Check users' audio files with the build's own filters: the audio filters, the WhisperVQ token
budget and (with a transcript) the ASR round trip. Models load once per checker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dataengine.audio.asr import WhisperASR, check_asr, decoder_beam
from dataengine.audio.filters import check_audio
from dataengine.audio.io import read_audio_file
from dataengine.audio.vad import SileroVAD
from dataengine.recipe import Recipe


class AudioChecker:
    """``check(path, transcript)`` -> one JSON-ready verdict; a bad file is a ``unreadable`` reject."""

    def __init__(self, recipe: Recipe, asr: bool = True) -> None:
        self.recipe = recipe
        self.vad = SileroVAD()
        self.use_asr = asr
        model = recipe.asr.model if recipe.asr.model != "none" else "tiny.en"
        self.asr_config = recipe.asr.model_copy(update={"model": model})
        self._tokenizer = None
        self._shared: bool | None = None
        self._asr: WhisperASR | None = None

    def _encode(self, audio, states: bool) -> tuple[np.ndarray, np.ndarray | None]:  # noqa: ANN001
        """The clip's tokens and (when ``states`` and the build would share it) its encoder output."""
        if self._tokenizer is None:
            from dataengine.tokenizer.whisper_pass import shared_whisper
            from dataengine.tokenizer.whispervq import load_whispervq

            tok = self.recipe.tokenizer
            self._tokenizer = load_whispervq(tok.checkpoint, tok.whisper)
            self._shared = shared_whisper(self.asr_config, tok) is not None
            beam = decoder_beam(self.asr_config, self._shared)
            self._asr = WhisperASR(self.asr_config.model, self.asr_config.cpu_threads, beam)
        [(tokens, state)] = self._tokenizer.encode_with_states([audio], keep_states=states and self._shared)
        return tokens, state

    def check(self, path: Path, transcript: str | None = None) -> dict[str, Any]:
        try:
            audio, info = read_audio_file(path)
        except ValueError as exc:
            return {"path": str(path), "verdict": "reject", "reasons": ["unreadable"], "error": str(exc)}
        metrics, failing = check_audio(audio, self.recipe.audio_filters, self.vad)
        wants_asr = bool(self.use_asr and transcript)
        tokens, state = self._encode(audio, states=wants_asr)  # the build's one encoder pass, if it has one
        n_tokens = len(tokens)
        metrics["n_sound_tokens"] = float(n_tokens)
        if n_tokens > self.recipe.tokenizer.max_sound_tokens:
            failing.append(("too_many_sound_tokens", float(n_tokens)))
        result: dict[str, Any] = {"path": str(path)}
        if wants_asr:
            asr_metrics, asr_failing, heard = check_asr(audio, transcript, self.asr_config, self._asr, state)
            metrics.update(asr_metrics)
            failing.extend(asr_failing)
            result["transcript"] = heard
        result.update(
            verdict="reject" if failing else "keep",
            reasons=[reason for reason, _ in failing],
            sample_rate=info["sample_rate"],
            channels=info["channels"],
            metrics={k: round(v, 6) for k, v in metrics.items()},
        )
        return result
