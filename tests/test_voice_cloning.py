"""Voice cloning entries: ``clone:N:FOLDER`` draws N reference recordings, one per voice, from the seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dataengine.recipe import RecipeError, VoiceConfig
from dataengine.tts.pool import expand_voices
from dataengine.tts.references import draw_references


def refs(folder: Path, names: list[str]) -> Path:
    folder.mkdir(exist_ok=True)
    for name in names:
        sf.write(folder / name, np.zeros(1600, dtype=np.float32), 16000)
    (folder / "notes.txt").write_text("not audio", encoding="utf-8")
    return folder


def test_clone_entry_draws_distinct_references_from_the_seed(tmp_path: Path) -> None:
    folder = refs(tmp_path / "refs", [f"speaker{i}.wav" for i in range(6)])
    entry = VoiceConfig(backend="whisperspeech", voice=f"clone:4:{folder}", weight=2)
    pool = expand_voices([VoiceConfig(backend="piper"), entry], seed=7)
    cloned = pool[1:]
    files = [Path(v.voice) for v in cloned]
    assert len(files) == len(set(files)) == 4
    assert all(f.parent == folder and f.suffix == ".wav" for f in files)
    assert sum(v.weight for v in cloned) == pytest.approx(2) and len({v.name for v in pool}) == 5
    assert [v.voice for v in expand_voices([entry], seed=7)] == [str(f) for f in files]  # seeded
    assert [v.voice for v in expand_voices([entry], seed=8)] != [str(f) for f in files]
    # a recording's place in the draw depends on (seed, its name) only: more recordings keep the order
    refs(folder, ["speaker6.wav", "speaker7.wav"])
    old = {f"speaker{i}.wav" for i in range(6)}
    assert [f for f in draw_references(folder, 8, seed=7) if f.name in old][:4] == files
    coqui = expand_voices([VoiceConfig(backend="coqui", voice=f"clone:2:{folder}")], seed=7)
    assert [Path(v.voice).parent for v in coqui] == [folder, folder]


def test_bad_clone_entries_are_one_line_errors(tmp_path: Path) -> None:
    folder = refs(tmp_path / "refs", ["a.wav", "b.flac"])
    for voice, words in [
        (VoiceConfig(backend="kokoro", voice=f"clone:1:{folder}"), "Kokoro takes a style table"),
        (VoiceConfig(backend="piper", voice=f"clone:1:{folder}"), "does not speak from a reference"),
        (VoiceConfig(backend="whisperspeech", voice=f"clone:3:{folder}"), "cannot draw 3 reference voices"),
        (VoiceConfig(backend="whisperspeech", voice=f"clone:1:{tmp_path}/nope"), "does not exist"),
        (VoiceConfig(backend="whisperspeech", voice=f"clone:x:{folder}"), "write clone:N:FOLDER"),
    ]:
        with pytest.raises(RecipeError) as info:
            expand_voices([VoiceConfig(backend="piper"), voice], seed=0)
        message = str(info.value)
        assert message.startswith("tts.voices.1: ") and words in message and "\n" not in message, message
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RecipeError, match="holds no audio file"):
        expand_voices([VoiceConfig(backend="coqui", voice=f"clone:1:{empty}")], seed=0)


def test_real_recordings_folder_gives_one_prompt_per_voice() -> None:
    from dataengine.evaluation.real import ALLISON

    if not ALLISON.is_dir():
        pytest.skip("asterisk-core-sounds-en-g722 is not installed")
    pool = expand_voices([VoiceConfig(backend="whisperspeech", voice=f"clone:5:{ALLISON}")], seed=1)
    assert len({v.voice for v in pool}) == 5 and all(v.voice.endswith(".g722") for v in pool)
