"""Speaker embeddings (resemblyzer's GE2E encoder), the voice-drift bound and the voice-diversity report."""

from __future__ import annotations

import importlib.util

import numpy as np
import pyarrow.parquet as pq
import pytest

from dataengine.recipe import Recipe, SpeakerConfig
from dataengine.sample import RECORDING, TTS, Sample, Turn
from dataengine.speaker import diversity
from dataengine.speaker.drift import VoiceDrift
from dataengine.speaker.encoder import digest
from dataengine.writers import speakers as speakers_writer
from dataengine.writers.speakers import SPEAKERS_FILE, SpeakerWriter

needs_encoder = pytest.mark.skipif(
    importlib.util.find_spec("resemblyzer") is None, reason="resemblyzer is not installed"
)


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def spoken(voice: str | None, embedding: np.ndarray, origin: str = TTS) -> Turn:
    return Turn("user", "hi", origin=origin, voice=voice, speaker_embedding=embedding)


def sample(n: int, *turns: Turn) -> Sample:
    return Sample(id=f"s{n}", index=n, turns=[*turns, Turn("assistant", "ok")])


@needs_encoder
def test_embeddings_tell_real_speakers_apart_and_repeat_exactly() -> None:
    from dataengine.evaluation.real import ALLISON, ARCTIC, load_16k, missing_real_audio
    from dataengine.speaker.encoder import SpeakerEncoder

    if missing_real_audio():
        pytest.skip(f"real recordings not installed: {missing_real_audio()}")
    encoder = SpeakerEncoder()
    allison = [load_16k(ALLISON / f"{name}.g722") for name in ("agent-pass", "all-circuits-busy-now")]
    a, b = (encoder.embed(x) for x in allison)
    arctic = encoder.embed(load_16k(ARCTIC))
    assert a.dtype == np.float32 and a.shape == (256,) and abs(float(np.linalg.norm(a)) - 1) < 1e-5
    same, other = 1 - float(a @ b), min(1 - float(a @ arctic), 1 - float(b @ arctic))
    assert same < diversity.SAME_SPEAKER_DISTANCE < other, (same, other)  # one woman vs one man
    assert digest(encoder.embed(allison[0])) == digest(a)  # the same audio, the same bytes


def test_drift_bound_waits_for_enough_turns_and_names_the_turn() -> None:
    drift = VoiceDrift(SpeakerConfig(enabled=True, max_drift=0.3, drift_min_turns=2))
    base, rng = unit(np.ones(256)), np.random.default_rng(0)
    far = unit(rng.random(256) * (np.arange(256) < 8))  # mass on 8 dimensions: far from the mean
    first = sample(0, spoken("v", far))
    assert drift.failing(drift.measure(first)) is None  # no reference yet: nothing to drift from
    for n in (1, 2):
        drift.record(sample(n, spoken("v", base)))
    near, off = sample(3, spoken("v", base)), sample(4, spoken("other", far), spoken("v", far))
    assert drift.measure(near)[0] == pytest.approx(0.0, abs=1e-6)
    drifts = drift.measure(off)
    assert drifts[0] is None and drifts[1] > 0.3  # voice "other" has no turns yet
    assert drift.failing(drifts) == (1, drifts[1])
    assert VoiceDrift(SpeakerConfig(max_drift=None)).failing({0: 1.5}) is None
    recording = sample(5, spoken(None, far, origin=RECORDING))
    assert drift.measure(recording) == {}  # only TTS voices are bound to sound like themselves


def test_diversity_report_counts_voices_merges_near_duplicates_and_finds_the_nearest_recording(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(speakers_writer, "ROW_GROUP", 2)  # several row groups, read back in batches
    monkeypatch.setattr(diversity, "_BATCH", 3)
    rng = np.random.default_rng(1)
    dims = np.arange(256)
    a, c, r = (unit(rng.random(256) * (dims // 100 == k)) for k in range(3))  # disjoint: distance 1
    a2 = unit(a + 0.05 * unit(rng.random(256)))  # a near-duplicate of a
    writer = SpeakerWriter(tmp_path, store_embeddings=True)
    rows = [("kokoro:a", a), ("kokoro:a", a), ("kokoro:a2", a2), ("piper:c", c), ("piper:c", c)]
    for n, (voice, emb) in enumerate(rows):
        writer.add(sample(n, spoken(voice, emb)), {0: 0.01 if n else None})
    real = unit(r + 0.3 * c)  # closer to c than to anything else, still another speaker
    writer.add(sample(9, spoken("arctic", real, RECORDING), spoken(None, a, RECORDING)), {})
    writer.close()
    table = pq.read_table(tmp_path / SPEAKERS_FILE)
    assert table.num_rows == 7 and table.column("speaker_digest")[0].as_py() == digest(a)
    assert table.column("drift").to_pylist()[:2] == [None, 0.01]

    report = diversity.voice_diversity(tmp_path.parent / tmp_path.name / "..", 0.2)  # no manifest there
    assert report is None
    (tmp_path / "manifest").mkdir()
    (tmp_path / SPEAKERS_FILE).rename(tmp_path / "manifest" / SPEAKERS_FILE)
    report = diversity.voice_diversity(tmp_path)
    assert (report.tts_voices, report.tts_turns, report.recording_turns) == (3, 5, 2)
    assert report.recording_speakers == 2  # "arctic" and the unnamed group
    # a and a2 are one speaker; c and the named recording "arctic" are two more
    assert 1 - float(a @ a2) < 0.2 and report.distinct_speakers == 3
    by_voice = {v.voice: v for v in report.voices}
    pairs = [1 - float(x @ y) for x, y in ((a, a2), (a, c), (a2, c))]
    assert report.mean_pairwise_distance == pytest.approx(np.mean(pairs), abs=1e-4)
    assert report.min_pairwise_distance == pytest.approx(min(pairs), abs=1e-4)
    assert by_voice["kokoro:a"].nearest_voice == "kokoro:a2" and by_voice["kokoro:a"].spread == 0
    assert by_voice["kokoro:a"].nearest_recording_distance == pytest.approx(0.0, abs=1e-4)  # the unnamed one
    assert by_voice["piper:c"].nearest_recording_distance == pytest.approx(1 - float(c @ real), abs=1e-4)
    text = "\n".join(diversity.summary_lines(report))
    assert "TTS voices 3 over 5 turns" in text and "estimated distinct speakers 3" in text

    bare = SpeakerWriter(tmp_path / "bare" / "manifest", store_embeddings=False)
    bare.add(sample(0, spoken("kokoro:a", a)), {})
    bare.close()
    report = diversity.voice_diversity(tmp_path / "bare")
    assert not report.embeddings_stored and report.tts_voices == 1 and report.distinct_speakers is None
    assert "embeddings not stored" in "\n".join(diversity.summary_lines(report))


@needs_encoder
def test_build_embeds_every_kept_turn_reports_diversity_and_rejects_a_drifting_voice(tmp_path) -> None:
    import duckdb

    from dataengine.cache import StageCache
    from dataengine.inspect import summarize
    from dataengine.pipeline import build
    from dataengine.publish.card import manifest_stats

    spec = {
        "name": "speakers",
        "seed": 3,
        "limit": 4,
        "source": {"kind": "chatterbot", "categories": ["ai"]},
        "tts": {"voices": [{"backend": "piper"}, {"backend": "espeak", "voice": "en-us"}]},
        "speaker": {"enabled": True},
    }
    cache = StageCache()
    first = build(Recipe.model_validate(spec), tmp_path / "a", progress=False, cache=cache)
    speakers = tmp_path / "a" / "manifest" / SPEAKERS_FILE
    kept_turns = duckdb.sql(
        f"select count(*) from read_parquet('{tmp_path}/a/manifest/samples.parquet')"
    ).fetchall()[0][0]
    table = pq.read_table(speakers)
    assert first.kept == kept_turns == table.num_rows >= 3  # one spoken turn per sample here
    embeddings, digests = table.column("embedding").to_pylist(), table.column("speaker_digest").to_pylist()
    for emb, dig in zip(embeddings, digests, strict=True):
        assert digest(np.asarray(emb, dtype=np.float32)) == dig
    assert "voice diversity" in summarize(tmp_path / "a")
    stats = manifest_stats(tmp_path / "a")["diversity"]
    assert stats["tts_voices"] == len({v for v in table.column("voice").to_pylist()}) == 2
    assert stats["distinct_speakers"] == 2  # Piper Joe and espeak-ng are not one speaker

    again = build(Recipe.model_validate(spec), tmp_path / "b", progress=False, cache=cache)
    assert next(s for s in again.stages if s.name == "speaker").cached == again.kept
    assert (tmp_path / "b" / "manifest" / SPEAKERS_FILE).read_bytes() == speakers.read_bytes()

    tight = {**spec, "speaker": {"enabled": True, "max_drift": 0.0001, "drift_min_turns": 1}}
    bound = build(Recipe.model_validate(tight), tmp_path / "c", progress=False, cache=cache)
    assert bound.rejected["speaker/voice_drift"] >= 1 and bound.kept >= 2  # each voice's first turn stays
    value, detail = duckdb.sql(
        f"select value, detail from read_parquet('{tmp_path}/c/manifest/rejects.parquet') "
        "where reason = 'voice_drift'"
    ).fetchall()[0]
    assert value > 0.0001 and "mean of voice" in detail
