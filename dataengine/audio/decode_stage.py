"""The decode stage: a recording turn's file (or bytes) -> its 16 kHz mono audio, in the workers.

The recordings sources (:mod:`dataengine.sources.recordings`) yield a turn with a
:class:`~dataengine.sample.RecordingRef` and no audio; this stage, first in the pipeline, decodes it
(:func:`~dataengine.audio.decode.decode_recording`: bounded, resampled to 16 kHz on the 16-bit grid),
trims its edges at the VAD's speech frames when the source asks, and sets ``audio``. A file that cannot
be used is a reject row with the decoder's reason (:data:`~dataengine.audio.decode.DECODE_REASONS`) and
message. Segments of a long recording arrive already decoded (the source had to decode it to find its
pauses) and are left alone.

Not cacheable: it would not pay. Measured here on 60 Asterisk prompts (227 s), decoding takes 1.9 ms
of CPU per audio second and trimming (the VAD) 6.1 ms, under 2 % of what the rest of a build spends on
that second (``benchmarks/bench_real.py``: 0.65 CPU-s per audio-s); a cached entry would be its 16 kHz
float32 audio, 230 MB per audio hour (about 10 TB for MLS English), keyed by the file's content (so read
anyway). Every later stage's cache key is built from the audio this stage writes, so a rebuild or a
resumed build still skips the filters, the ASR and the tokenizer.
"""

from __future__ import annotations

from pathlib import Path

from dataengine.audio.decode import DECODE_REASONS, DecodeError, decode_recording
from dataengine.audio.segment import cut_recording
from dataengine.audio.vad import SileroVAD
from dataengine.recipe import Recipe, SegmentConfig
from dataengine.sample import RECORDING, Turn, Unit
from dataengine.stage import TurnStage


class DecodeStage(TurnStage):
    name = "decode"
    origins = (RECORDING,)
    reject_reasons = DECODE_REASONS
    reads = ("recording",)
    writes = ("audio",)

    def __init__(self) -> None:
        self.vad = SileroVAD()

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> DecodeStage | None:
        """Only in builds whose tasks make recording turns (other builds keep their stage lists)."""
        from dataengine.tasks import task_origins

        return cls() if RECORDING in task_origins(recipe) else None

    def applies(self, turn: Turn) -> bool:
        return turn.origin == RECORDING and turn.recording is not None and turn.audio is None

    def setup(self) -> None:
        self.vad.load()

    def process_turn(self, unit: Unit) -> None:
        turn = unit.turn
        ref = turn.recording
        assert ref is not None
        target = ref.data if ref.data is not None else Path(ref.path or "")
        try:
            audio = decode_recording(
                target,
                max_s=ref.max_file_s,
                max_channels=ref.max_channels,
                start_s=ref.start_s,
                duration_s=ref.duration_s,
            )
        except DecodeError as exc:
            unit.drop(self.name, exc.reason, exc.value, f"{ref.where}: {exc}")
            return
        if ref.trim:  # one span: a recording that needs splitting was decoded and cut by the source
            config = SegmentConfig(edge_pad_s=ref.edge_pad_s)
            [(start, end)] = cut_recording(audio, self.vad, config, trim=True, split=False).spans
            audio = audio[start:end].copy()
        turn.audio, turn.recording = audio, None
