"""``dataengine audio-check`` on real files: rates 8-48 kHz, stereo, WAV/FLAC/OGG/MP3, bad files, JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from audio_fixtures import SPEECH_TEXT, speech
from click.testing import CliRunner

from dataengine.audio.io import resample
from dataengine.cli import main
from dataengine.evaluation import signals as sig

SR = 16_000


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("check")
    x = speech()
    paths = {
        name: str(d / name)
        for name in (
            "stereo44k.wav",
            "tel8k.flac",
            "s48k.ogg",
            "s22k.mp3",
            "music.wav",
            "empty.wav",
            "junk.mp3",
        )
    }
    sf.write(paths["stereo44k.wav"], np.stack([resample(x, SR, 44_100)] * 2, axis=1), 44_100)
    sf.write(paths["tel8k.flac"], resample(x, SR, 8_000), 8_000)
    sf.write(paths["s48k.ogg"], resample(x, SR, 48_000), 48_000)
    sf.write(paths["s22k.mp3"], resample(x, SR, 22_050), 22_050)
    sf.write(paths["music.wav"], sig.set_level(sig.music(3 * SR, 5), -20.0), SR)
    open(paths["empty.wav"], "wb").close()
    (d / "junk.mp3").write_text("not audio at all")
    (d / "stereo44k.txt").write_text(SPEECH_TEXT)  # sidecar transcript
    paths["missing"] = str(d / "missing.wav")
    return paths


def run(*args: str) -> tuple[int, list[dict]]:
    result = CliRunner().invoke(main, ["audio-check", "--json", *args])
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result.exit_code, lines


def test_verdicts_and_reasons(files: dict[str, str]) -> None:
    order = [
        "stereo44k.wav",
        "tel8k.flac",
        "s48k.ogg",
        "s22k.mp3",
        "music.wav",
        "empty.wav",
        "junk.mp3",
        "missing",
    ]
    code, rows = run(*(files[k] for k in order))
    assert code == 2 and [r["path"] for r in rows] == [files[k] for k in order]  # 2: a path is missing
    got = {k: (r["verdict"], r["reasons"]) for k, r in zip(order, rows, strict=True)}
    assert got["stereo44k.wav"] == ("keep", [])
    assert got["tel8k.flac"] == ("reject", ["bad_compression"])
    assert got["s48k.ogg"] == ("keep", []) and got["s22k.mp3"] == ("keep", [])
    assert got["music.wav"][1][0] == "non_speech"
    for bad in ("empty.wav", "junk.mp3", "missing"):
        assert got[bad] == ("reject", ["unreadable"])
    first = rows[0]
    assert first["sample_rate"] == 44_100 and first["channels"] == 2
    assert "capital of france" in first["transcript"].lower() and first["metrics"]["asr_wer"] < 0.2
    assert first["metrics"]["n_sound_tokens"] > 100 and "band_edge_db" in first["metrics"]
    assert "asr_wer" not in rows[2]["metrics"]  # no transcript for that file: ASR skipped


def test_text_no_asr_and_token_limit(files: dict[str, str], tmp_path) -> None:
    _, [row] = run(files["s48k.ogg"], "--text", "Seven green dragons fly over the sea tonight.")
    assert row["reasons"] == ["asr_mismatch"]
    _, [row] = run(files["s48k.ogg"], "--no-asr", "--text", "Seven green dragons fly over the sea tonight.")
    assert row["verdict"] == "keep" and "asr_wer" not in row["metrics"]
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\ntokenizer: {max_sound_tokens: 50}\naudio_filters: {max_duration_s: 5}\n")
    _, [row] = run(files["s48k.ogg"], "--no-asr", "--recipe", str(recipe))
    assert row["reasons"] == ["too_long", "too_many_sound_tokens"]


def test_plain_output_and_bad_recipe(files: dict[str, str], tmp_path) -> None:
    result = CliRunner().invoke(main, ["audio-check", "--no-asr", files["tel8k.flac"], files["missing"]])
    assert result.exit_code == 2
    assert "tel8k.flac: reject (bad_compression)" in result.stdout
    assert "missing.wav: reject (unreadable): no such file" in result.stdout
    assert result.stderr.strip() == f"Error: {files['missing']}: no such file"
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\naudio_filters: {nope: 1}\n")
    result = CliRunner().invoke(main, ["audio-check", "--recipe", str(bad), files["tel8k.flac"]])
    assert result.exit_code == 2 and "audio_filters.nope" in result.output


def test_real_recordings_from_debian_packages() -> None:
    """Human recordings as installed (make install): a 16 kHz G.722 prompt, an 8 kHz telephone-band talker
    and a 48 kHz Vorbis announcement; the G.722 and Vorbis files go through the same loader as WAV."""
    from dataengine.evaluation.real import ALLISON, CODEC2, FREEDESKTOP

    paths = [
        str(ALLISON / "vm-intro.g722"),
        str(CODEC2 / "wav" / "hts1a.wav"),
        str(FREEDESKTOP / "audio-channel-front-center.oga"),
        str(FREEDESKTOP / "camera-shutter.oga"),
    ]
    code, rows = run("--no-asr", *paths)
    assert code == 0
    assert [(r["verdict"], r["reasons"][:1]) for r in rows] == [
        ("keep", []),
        ("reject", ["bad_compression"]),
        ("keep", []),
        ("reject", ["non_speech"]),
    ]
    assert [r["sample_rate"] for r in rows] == [16_000, 8_000, 48_000, 96_000]
