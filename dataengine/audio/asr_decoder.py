"""Whisper's decoder over encoder output the caller already has, several clips per CTranslate2 call.

faster-whisper's ``generate_segments`` transcribes one clip. Given the encoder output of the clip's
first 30 s window, it calls the model's ``generate(encoder_output, [prompt], **options)`` for that window
(once: temperature 0, no fallback), then applies its quality checks and no-speech skip; windows after
the first it encodes and decodes itself. :class:`EncodedDecoder` keeps all of that faster-whisper's and
batches only the first call: it runs ``generate_segments`` for each clip of a batch against a model that
records that call and stops (:class:`_Capture`), runs the recorded calls as one ``generate`` over the
stacked encoder outputs, then runs ``generate_segments`` again against a model that answers the call with
the clip's own result (:class:`_Replay`). Every other call and attribute reaches the real model.

Batching changes no result where CTranslate2 decodes each item of a batch as it would alone (its int8
products are integer sums per row; its other kernels work per row or per item). That is checked, not
assumed: the first batch a decoder runs is decoded clip by clip as well, and where any sequence, score or
no-speech probability differs it decodes clip by clip from then on (and says so in the log).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from typing import Any

import numpy as np

from dataengine.threads import fixed_blas_threads

log = logging.getLogger(__name__)

BATCH = 2
"""Clips per ``generate`` call. Measured (tiny.en, beam 5, 1 thread, 48 demo clips, one process):
94 ms per clip alone, 76 in batches of 2, 79 of 4, 107 of 8 (each beam holds its own copy of the
cross-attention keys and values over 1500 frames: a larger batch outgrows the caches)."""


@dataclasses.dataclass
class _Call:
    """The arguments of a ``generate`` call after the encoder output."""

    prompts: list[list[int]]
    kwargs: dict[str, Any]


class _Captured(Exception):
    """Stops ``generate_segments`` at its first window's ``generate`` call, carrying the call."""

    def __init__(self, call: _Call) -> None:
        super().__init__("captured")
        self.call = call


class _Model:
    """The CTranslate2 Whisper as ``generate_segments`` sees it: ``generate`` calls on ``features`` (the
    first window's encoder output) go to :meth:`first`; everything else to the model."""

    def __init__(self, model: Any, features: Any) -> None:
        self._model = model
        self._features = features

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def generate(self, features: Any, prompts: list[list[int]], **kwargs: Any) -> list[Any]:
        if features is self._features:
            return self.first(features, _Call(prompts, kwargs))
        return self._model.generate(features, prompts, **kwargs)

    def first(self, features: Any, call: _Call) -> list[Any]:
        raise NotImplementedError


class _Capture(_Model):
    def first(self, features: Any, call: _Call) -> list[Any]:
        raise _Captured(call)


class _Replay(_Model):
    """Answers the recorded call once with ``result``; a call that differs (never seen) is run."""

    def __init__(self, model: Any, features: Any, call: _Call, result: Any) -> None:
        super().__init__(model, features)
        self._call, self._result = call, result

    def first(self, features: Any, call: _Call) -> list[Any]:
        if self._result is not None and call == self._call:
            result, self._result = self._result, None
            return [result]
        return self._model.generate(features, call.prompts, **call.kwargs)


class LazyFeatures:
    """faster-whisper's log-mel of ``audio``, computed only when read. ``generate_segments`` reads just its
    shape (the clip's length) while the encoder output it was given covers the clip; only a window after
    the first (audio over 30 s) reads the features themselves."""

    def __init__(self, extractor: Any, audio: np.ndarray) -> None:
        self._extractor = extractor
        self._audio = audio
        self._features: np.ndarray | None = None
        # FeatureExtractor pads one hop, frames the STFT centred and drops the last frame
        self.shape = (extractor.mel_filters.shape[0], len(audio) // extractor.hop_length + 1)

    def __getitem__(self, key: object) -> np.ndarray:
        if self._features is None:
            with fixed_blas_threads():  # as in WhisperASR.transcribe
                self._features = self._extractor(self._audio)
            if self._features.shape != self.shape:
                raise RuntimeError(f"faster-whisper's features are {self._features.shape}, not {self.shape}")
        return self._features[key]


def _same(a: Any, b: Any) -> bool:
    return (
        a.sequences_ids == b.sequences_ids and a.scores == b.scores and a.no_speech_prob == b.no_speech_prob
    )


class EncodedDecoder:
    """Transcripts of clips given their first window's encoder output ``(1500, d_model)``, with a loaded
    ``faster_whisper.WhisperModel``, its ``Tokenizer`` and the ``TranscriptionOptions`` to decode with."""

    def __init__(self, whisper: Any, tokenizer: Any, options: Any, batch: int = BATCH) -> None:
        self.whisper, self.tokenizer, self.options = whisper, tokenizer, options
        self.batch = batch
        self.checked = False
        """Whether a batch has been compared with clip-by-clip decoding yet."""
        self.batched_clips = 0
        """Clips whose first window was decoded in a batch (for tests and logs)."""

    def transcripts(self, audios: list[np.ndarray], states: list[np.ndarray]) -> list[str]:
        out: list[str] = []
        for start in range(0, len(audios), max(1, self.batch)):
            out += self._batch(audios[start : start + self.batch], states[start : start + self.batch])
        return out

    def _batch(self, audios: list[np.ndarray], states: list[np.ndarray]) -> list[str]:
        model = self.whisper.model
        audios = [np.ascontiguousarray(a, dtype=np.float32) for a in audios]
        arrays = [np.require(s[None], np.float32, ["C_CONTIGUOUS", "WRITEABLE"]) for s in states]
        import ctranslate2  # its StorageView is what CT2 takes (C-contiguous, writeable float32)

        views = [ctranslate2.StorageView.from_array(a) for a in arrays]
        if self.batch < 2 or len(audios) < 2:
            return [self._text(a, v, model) for a, v in zip(audios, views, strict=True)]
        calls: list[_Call | None] = []
        for audio, view in zip(audios, views, strict=True):
            try:
                self._text(audio, view, _Capture(model, view))
                calls.append(None)  # no first-window call (never seen): decoded alone below
            except _Captured as captured:
                calls.append(captured.call)
        lead = next((c for c in calls if c is not None), None)
        group = [i for i, c in enumerate(calls) if c is not None and c == lead]
        results: dict[int, Any] = {}
        if lead is not None and len(group) > 1:
            stacked = ctranslate2.StorageView.from_array(np.concatenate([arrays[i] for i in group]))
            prompts = [p for i in group for p in calls[i].prompts]  # type: ignore[union-attr]
            results = dict(zip(group, model.generate(stacked, prompts, **lead.kwargs), strict=True))
            if not self.checked:
                self.checked = True
                alone = {i: model.generate(views[i], lead.prompts, **lead.kwargs)[0] for i in group}
                if not all(_same(results[i], alone[i]) for i in group):
                    log.info("CTranslate2 decodes a batch unlike its clips alone here: one clip at a time")
                    self.batch = 1
                    results = alone
            self.batched_clips += len(group) if self.batch > 1 else 0
        texts = []
        for i, (audio, view) in enumerate(zip(audios, views, strict=True)):
            if i in results:
                texts.append(self._text(audio, view, _Replay(model, view, calls[i], results[i])))  # type: ignore[arg-type]
            else:
                texts.append(self._text(audio, view, model))
        return texts

    def _text(self, audio: np.ndarray, view: Any, model: Any) -> str:
        """faster-whisper's ``generate_segments`` over ``audio`` with ``view`` as its first window's
        encoder output, against ``model`` (the CTranslate2 Whisper or one of the wrappers above)."""
        whisper = self.whisper
        if model is not whisper.model:
            whisper = copy.copy(whisper)  # shallow: the same loaded model, tokenizer and feature extractor
            whisper.model = model
        segments = whisper.generate_segments(
            LazyFeatures(whisper.feature_extractor, audio),
            self.tokenizer,
            dataclasses.replace(self.options),  # generate_segments rewrites some fields of its copy
            False,
            view,
        )
        return " ".join(s.text.strip() for s in segments).strip()
