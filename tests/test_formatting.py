import numpy as np
import pytest

from dataengine.formatting import (
    TRANSCRIPTION_REQUESTS,
    parse_sound_string,
    render_content,
    sound_string,
)
from dataengine.sample import TTS, USER, Turn


def test_sound_string_is_ichigo_layout_and_round_trips() -> None:
    text = sound_string([42, 7, 511])
    assert text == "<|sound_start|><|sound_0042|><|sound_0007|><|sound_0511|><|sound_end|>"
    assert parse_sound_string(text).tolist() == [42, 7, 511]
    assert parse_sound_string(sound_string([])).tolist() == []


def test_transcription_requests_are_ichigo_s_eight() -> None:
    """Character for character the strings Ichigo's tokenizer recognises (janhq's torchtune fork)."""
    assert TRANSCRIPTION_REQUESTS == (
        "Transcribe the following audio clip:",
        "Convert the spoken words to text:",
        "What is being said in this audio clip:",
        "Transcribe the speech in this audio sample:",
        "Please write down what is being said in the audio clip:",
        "Generate a transcript from this sound file:",
        "Recognize the speech in this audio clip:",
        "Produce a text version of this audio recording:",
    )


def test_render_content_text_sound_and_prefix() -> None:
    assert render_content(Turn(USER, "hello")) == "hello"
    spoken = Turn(USER, "What is AI?", origin=TTS, key="x", tokens=np.array([1, 2, 3], dtype=np.int16))
    assert render_content(spoken) == sound_string([1, 2, 3])
    spoken.prefix = TRANSCRIPTION_REQUESTS[0]
    assert render_content(spoken) == f"{TRANSCRIPTION_REQUESTS[0]}\n{sound_string([1, 2, 3])}"
    with pytest.raises(ValueError, match="no sound tokens"):
        render_content(Turn(USER, "x", origin=TTS, key="k"))
