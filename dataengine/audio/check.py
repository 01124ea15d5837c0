"""Check users' audio files with the build's own filters: the audio filters, the WhisperVQ token
budget and (with a transcript) the ASR round trip. Models load once per checker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dataengine.audio.asr import WhisperASR, check_asr
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
        self.asr = WhisperASR(model, recipe.asr.cpu_threads)
        self._tokenizer = None

    def _count_tokens(self, audio) -> int:  # noqa: ANN001 - 16 kHz float32 array
        if self._tokenizer is None:
            from dataengine.tokenizer.whispervq import load_whispervq

            tok = self.recipe.tokenizer
            self._tokenizer = load_whispervq(tok.checkpoint, tok.whisper)
        return len(self._tokenizer.encode([audio])[0])

    def check(self, path: Path, transcript: str | None = None) -> dict[str, Any]:
        try:
            audio, info = read_audio_file(path)
        except ValueError as exc:
            return {"path": str(path), "verdict": "reject", "reasons": ["unreadable"], "error": str(exc)}
        metrics, failing = check_audio(audio, self.recipe.audio_filters, self.vad)
        n_tokens = self._count_tokens(audio)
        metrics["n_sound_tokens"] = float(n_tokens)
        if n_tokens > self.recipe.tokenizer.max_sound_tokens:
            failing.append(("too_many_sound_tokens", float(n_tokens)))
        result: dict[str, Any] = {"path": str(path)}
        if self.use_asr and transcript:
            asr_metrics, asr_failing, heard = check_asr(audio, transcript, self.recipe.asr, self.asr)
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
