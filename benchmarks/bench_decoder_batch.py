"""`make bench`: the ASR decoder over given encoder output, clip by clip vs several clips per call.

The shared Whisper pass (``dataengine/tokenizer/whisper_pass.py``) hands the tokenizer's encoder output
to CTranslate2's decoder; ``dataengine/audio/asr_decoder.py`` decodes the first windows of a batch in
one ``generate`` call. This script speaks ``--clips`` chatterbot prompts with the packaged Piper voice
(real speech, as in the demo), encodes them once with the embedded tokenizer's encoder, then decodes
them (tiny.en, beam 5, 1 thread) in batches of 1, 2, 4 and 8, interleaved for ``--rounds`` rounds, and
prints CPU ms per clip. Every batch size must give the transcripts of decoding clip by clip.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from dataengine import numerics
from dataengine.audio.asr import WhisperASR
from dataengine.audio.io import resample
from dataengine.recipe import ChatterbotSource, VoiceConfig
from dataengine.sample import AUDIO_SAMPLE_RATE
from dataengine.sources.chatterbot import iter_chatterbot
from dataengine.tokenizer.whispervq import load_whispervq
from dataengine.tts.piper import PiperBackend

SIZES = (1, 2, 4, 8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    numerics.apply()
    torch.set_num_threads(1)
    source = iter_chatterbot(ChatterbotSource(categories=["ai", "science"]))
    texts = [sample.turns[0].text for sample in source if sample.kept]
    voice = PiperBackend(VoiceConfig(backend="piper", voice="joe-us"))
    clips = [resample(voice.synthesize(t), voice.sample_rate, AUDIO_SAMPLE_RATE) for t in texts[: args.clips]]
    states = [state for clip in clips for _, state in load_whispervq("default").encode_with_states([clip])]
    asr = WhisperASR("tiny.en", cpu_threads=1, beam_size=5)
    decoder = asr.encoded_decoder()
    reference = [asr.transcribe_encoded(c, s) for c, s in zip(clips, states, strict=True)]  # also warms up
    times: dict[int, list[float]] = {size: [] for size in SIZES}
    for r in range(args.rounds):
        for size in SIZES if r % 2 == 0 else SIZES[::-1]:
            decoder.batch = size
            started = time.process_time()
            heard = decoder.transcripts(clips, states)
            times[size].append(1000 * (time.process_time() - started) / len(clips))
            if decoder.batch != size:
                raise SystemExit("CTranslate2 decodes a batch unlike its clips alone here (the check failed)")
            if heard != reference:
                raise SystemExit(f"batches of {size} changed a transcript")
    seconds = sum(len(c) for c in clips) / AUDIO_SAMPLE_RATE / len(clips)
    print(f"CTranslate2 decoder (tiny.en, beam 5, 1 thread), {len(clips)} Piper clips of {seconds:.1f} s on")
    print(f"average, median of {args.rounds} interleaved rounds (the batch check passed)")
    print("| clips per generate call | CPU ms per clip | vs 1 | transcripts |")
    print("|---|---|---|---|")
    alone = statistics.median(times[1])
    for size in SIZES:
        ms = statistics.median(times[size])
        print(f"| {size} | {ms:.1f} | {ms / alone:.3f} | same as clip by clip |")


if __name__ == "__main__":
    main()
