"""Real recordings in: the corpus layouts, bad files as reject rows, segmentation at pauses, and builds
of real speech into pretrain + transcription shards that the stage-1 config trains on.

The speech is Allison Smith's Asterisk prompts (Debian asterisk-core-sounds-en-g722, ``make install``);
the tests that need it skip with the apt line when it is missing."""

from __future__ import annotations

import gzip
import io
import json
import os
import struct
from pathlib import Path

import duckdb
import numpy as np
import pytest
import soundfile as sf
from omegaconf import OmegaConf
from training_fixtures import tiny_dir

from dataengine.audio.decode import DECODE_REASONS
from dataengine.audio.decode_stage import DecodeStage
from dataengine.audio.io import read_audio_file
from dataengine.audio.segment import plan_cuts
from dataengine.cache import StageCache
from dataengine.pipeline import build
from dataengine.recipe import Recipe, RecordingsSource, SegmentConfig, SettingError
from dataengine.sources import check_source, iter_rows
from dataengine.sources.recordings import check_recordings
from dataengine.stage import StageStats

ALLISON = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
TRANSCRIPTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"
STEMS = ("activated", "agent-loginok", "auth-thankyou", "call-waiting", "cancelled", "conf-getpin")
SR = 16_000

needs_allison = pytest.mark.skipif(
    not (ALLISON.is_dir() and TRANSCRIPTS.is_file()),
    reason="apt-get install -y asterisk-core-sounds-en-g722 asterisk-core-sounds-en",
)


def _texts() -> dict[str, str]:
    lines = gzip.open(TRANSCRIPTS, "rt", encoding="utf-8").read().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(": ") for line in lines if ": " in line)}


@pytest.fixture(scope="module")
def prompts() -> list[tuple[str, np.ndarray, str]]:
    if not (ALLISON.is_dir() and TRANSCRIPTS.is_file()):
        pytest.skip("apt-get install -y asterisk-core-sounds-en-g722 asterisk-core-sounds-en")
    texts = _texts()
    return [(s, read_audio_file(ALLISON / f"{s}.g722")[0], texts[s]) for s in STEMS]


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory, prompts) -> dict[str, Path]:  # noqa: ANN001
    """The same six prompts in LibriSpeech layout (+ a transcript line naming no file) and in 🤗
    audiofolder layout (``metadata.csv``)."""
    root = tmp_path_factory.mktemp("corpora")
    libri = root / "libri" / "19" / "198"
    libri.mkdir(parents=True)
    lines = []
    for n, (_, audio, text) in enumerate(prompts):
        sf.write(libri / f"19-198-{n:04d}.flac", audio, SR)
        lines.append(f"19-198-{n:04d} {text.upper()}")
    (libri / "19-198.trans.txt").write_text("\n".join([*lines, "19-198-0099 NOT THERE"]) + "\n")
    folder = root / "audiofolder"
    (folder / "data").mkdir(parents=True)
    rows = ["file_name,transcription"]
    for stem, audio, text in prompts:
        sf.write(
            folder / "data" / f"{stem}.flac", audio, SR
        )  # the same audio: the second build hits the cache
        rows.append(f'data/{stem}.flac,"{text}"')
    (folder / "metadata.csv").write_text("\n".join(rows) + "\n")
    return {"libri": root / "libri", "audiofolder": folder}


def decoded(samples: list) -> list:
    """The samples after the ``decode`` stage (what the workers do first)."""
    stage = DecodeStage()
    stage.start()
    return stage(samples, StageStats(stage.name))


def rows_of(**source: object) -> list:
    return decoded(list(iter_rows(RecordingsSource.model_validate({"kind": "recordings", **source}))))


def test_librispeech_and_audiofolder_layouts_give_stable_ids_texts_and_a_missing_file_row(corpora) -> None:  # noqa: ANN001
    libri = rows_of(path=str(corpora["libri"]))
    assert [s.id for s in libri] == [f"19_198_19-198-{n:04d}" for n in (*range(6), 99)]
    assert libri[0].turns[0].text == "ACTIVATED." and libri[0].turns[0].origin == "recording"
    assert libri[0].turns[0].voice == "recording:19"
    missing = libri[-1]
    assert (missing.reject.reason, missing.reject.detail) == (
        "missing_file",
        "19/198/19-198-0099: named in a transcript file, no audio file",
    )
    folder = rows_of(path=str(corpora["audiofolder"]))
    assert [s.id for s in folder] == [f"data_{s}" for s in STEMS]
    assert all(s.kept and s.turns[0].text for s in folder)
    for sample in libri[:6] + folder:  # trimmed to the speech plus its pads, on the 16-bit grid
        audio = sample.turns[0].audio
        assert 0.3 < len(audio) / SR < 8 and np.array_equal(audio, np.round(audio * 32768) / 32768)


def test_common_voice_jsonl_lhotse_and_hf_audio_sources(tmp_path: Path, prompts) -> None:  # noqa: ANN001
    stem, audio, text = prompts[0]
    cv = tmp_path / "cv"
    (cv / "clips").mkdir(parents=True)
    sf.write(cv / "clips" / "a.mp3", audio, SR, format="MP3")
    (cv / "validated.tsv").write_text(f"client_id\tpath\tsentence\tlocale\nspk1\ta.mp3\t{text}\ten\n")
    [row] = rows_of(path=str(cv))
    assert (row.id, row.turns[0].text, row.turns[0].voice) == ("a", text, "recording:spk1")

    long = np.concatenate([prompts[1][1], np.zeros(SR // 2, np.float32), audio])
    sf.write(tmp_path / "long.wav", long, SR)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        json.dumps({"path": "long.wav", "text": "hi", "speaker": "s", "answer": "Hello!"})
        + "\nnot json\n"
        + json.dumps({"text": "no path"})
        + "\n"
    )
    good, bad, nopath = rows_of(path=str(manifest))
    assert (good.id, good.turns[1].text) == ("long", "Hello!")
    assert (bad.reject.reason, nopath.reject.reason) == ("bad_row", "bad_row")

    start = len(prompts[1][1]) / SR + 0.5
    cut = {
        "id": "cut-1",
        "start": start,
        "duration": len(audio) / SR,
        "channel": 0,
        "supervisions": [{"id": "s", "text": text, "speaker": "allison", "start": 0, "duration": 1}],
        "recording": {
            "id": "long",
            "sources": [{"type": "file", "channels": [0], "source": str(tmp_path / "long.wav")}],
            "sampling_rate": SR,
            "num_samples": len(long),
            "duration": len(long) / SR,
        },
    }
    (tmp_path / "cuts.jsonl").write_text(json.dumps(cut) + "\n" + json.dumps({"id": "broken"}) + "\n")
    sliced, broken = rows_of(path=str(tmp_path / "cuts.jsonl"), trim_edges=False)
    assert sliced.id == "cut-1" and sliced.turns[0].text == text and broken.reject.reason == "bad_row"
    assert abs(len(sliced.turns[0].audio) - len(audio)) <= 2  # the cut's slice, not the whole file

    import datasets

    buffer = io.BytesIO()
    sf.write(buffer, audio, SR, format="FLAC")
    data = {"audio": [{"bytes": buffer.getvalue(), "path": None}, {"bytes": b"junk", "path": None}]}
    table = datasets.Dataset.from_dict({**data, "text": [text, "x"]})
    (tmp_path / "hf").mkdir()
    table.cast_column("audio", datasets.Audio(decode=False)).to_parquet(
        str(tmp_path / "hf" / "train.parquet")
    )
    recipe = Recipe.model_validate(
        {
            "name": "hf",
            "source": {"kind": "hf_audio", "name": str(tmp_path / "hf")},
            "tasks": {"pretrain": {"share": 1}},
        }
    )
    check_source(recipe)
    good, junk = decoded(list(iter_rows(recipe.source)))
    assert (good.id, good.turns[0].text, junk.reject.reason) == ("hf-0000000", text, "unreadable")
    assert (good.turns[0].duration_s > 0.3, junk.reject.stage) == (True, "decode")


def _members(out: Path, ext: str) -> list[bytes]:
    import tarfile

    found = []
    for shard in sorted((out / "shards").glob("*.tar")):
        with tarfile.open(shard) as tar:
            found += [tar.extractfile(m).read() for m in tar.getmembers() if m.name.endswith(f".{ext}")]
    return found


def _sparse_wav(path: Path, seconds: int) -> None:
    """A valid 16-bit mono WAV header saying ``seconds`` long, the data a sparse hole (no disk used)."""
    data = seconds * SR * 2
    header = (
        b"RIFF"
        + struct.pack("<I", 36 + data)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, SR, SR * 2, 2, 16)
    )
    path.write_bytes(header + b"data" + struct.pack("<I", data))
    os.truncate(path, 44 + data)


def test_bad_files_become_reject_rows_with_the_path_and_the_decoders_message(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "corrupt.mp3").write_bytes(b"ID3" + os.urandom(3000))
    (bad / "empty.wav").write_bytes(b"")
    _sparse_wav(bad / "six_hours.wav", 6 * 3600)
    sf.write(bad / "surround.wav", np.zeros((9600, 8), np.float32), 96_000)
    nan = np.sin(np.arange(SR) / 10).astype(np.float32)
    nan[100] = np.nan
    sf.write(bad / "nan.wav", nan, SR, subtype="FLOAT")
    clean = np.sin(np.arange(2 * SR) * 0.05).astype(np.float32) * 0.3
    sf.write(bad / "truncated.flac", clean, SR)
    (bad / "truncated.flac").write_bytes((bad / "truncated.flac").read_bytes()[:3000])
    rows = {s.id: s for s in rows_of(path=str(bad))}
    reasons = {key: (s.reject.reason if s.reject else "kept") for key, s in rows.items()}
    assert (
        reasons["corrupt"] == "unreadable"
        and "corrupt.mp3: cannot decode audio" in rows["corrupt"].reject.detail
    )
    assert (reasons["empty"], reasons["nan"]) == ("empty_audio", "nan_audio")
    assert (
        reasons["six_hours"] == "file_too_long" and "21600 s by its header" in rows["six_hours"].reject.detail
    )
    assert (
        reasons["surround"] == "too_many_channels"
        and "8 channels at 96000 Hz" in rows["surround"].reject.detail
    )
    assert reasons["truncated"] in ("kept", *DECODE_REASONS)  # whatever survives, never a crash
    assert all("\n" not in s.reject.detail for s in rows.values() if s.reject)

    (tmp_path / "none").mkdir()
    (tmp_path / "none" / "notes.txt").write_text("no audio here")
    with pytest.raises(SettingError, match=r"none: no audio files \(\.wav"):
        check_recordings(RecordingsSource(kind="recordings", path=tmp_path / "none"))


def test_long_recordings_split_at_pauses_within_bounds_with_ids_from_the_start_and_their_words(
    tmp_path: Path, prompts
) -> None:  # noqa: ANN001
    """Twice the six prompts with 0.7 s pauses (~23 s) and one transcript for the whole recording: the
    segments start and end in pauses, and split the transcript's words in order, each word once."""
    gap = np.zeros(int(0.7 * SR), np.float32)
    parts, words, starts_at = [gap], [], []
    for _ in range(2):
        for _, audio, text in prompts:
            starts_at.append(text.split()[0])
            parts += [audio, gap]
            words.append(text)
    long = np.concatenate(parts)
    sf.write(tmp_path / "book.wav", long, SR)
    (tmp_path / "book.trans.txt").write_text("book " + " ".join(words) + "\n")
    config = {
        "path": str(tmp_path),
        "segment": {"min_s": 3, "max_s": 8, "min_pause_s": 0.3, "edge_pad_s": 0.2},
    }
    segments = rows_of(**config)
    assert len(segments) >= len(long) / SR / 8
    starts = [int(s.id.rsplit("-", 1)[1]) for s in segments]
    assert starts == sorted(starts) and all(s.id.startswith("book-") for s in segments)
    for sample in segments:
        assert 0.5 <= sample.turns[0].duration_s <= 8 + 0.4 + 0.1
    silent = np.abs(long) < 1e-4  # every segment starts and ends inside a pause (never inside speech)
    for start_ms, sample in zip(starts, segments, strict=True):
        first, last = start_ms * SR // 1000, start_ms * SR // 1000 + len(sample.turns[0].audio) - 1
        assert silent[min(first, len(long) - 1)] or first == 0
        assert silent[min(last, len(long) - 1)]
    texts = [s.turns[0].text for s in segments]
    assert " ".join(t for t in texts if t).split() == " ".join(words).split()  # every word once, in order
    begins = sum(t.split()[0] in starts_at for t in texts if t)  # segments begin where a prompt begins
    assert begins >= len(segments) - 1, texts
    again = rows_of(**{**config, "segment": {**config["segment"], "words_model": "none"}})
    assert [s.id for s in again] == [s.id for s in segments]  # deterministic cuts
    assert all(s.turns[0].text == "" for s in again)  # no word timings: segments say nothing


def test_the_main_process_decodes_only_recordings_it_must_cut(
    tmp_path: Path, prompts, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    """Short files reach the workers as a path (the ``decode`` stage reads them, with the same audio the
    source used to make); only a recording longer than a segment is decoded by the source, to be cut."""
    import dataengine.sources.recordings as recordings
    from dataengine.audio.decode import decode_recording
    from dataengine.audio.segment import cut_recording
    from dataengine.audio.vad import SileroVAD

    gap = np.zeros(int(0.7 * SR), np.float32)
    sf.write(tmp_path / "long.wav", np.concatenate([x for _, a, _ in prompts for x in (a, gap)]), SR)
    for stem, audio, _ in prompts[:2]:
        sf.write(tmp_path / f"{stem}.wav", np.concatenate([gap, audio, gap]), SR)
    in_source: list[object] = []
    real = recordings.decode_recording

    def counted(target: object, **kwargs: object) -> np.ndarray:
        in_source.append(target)
        return real(target, **kwargs)

    monkeypatch.setattr(recordings, "decode_recording", counted)
    segment = SegmentConfig(min_s=2, max_s=5, min_pause_s=0.3, edge_pad_s=0.2, words_model="none")
    source = RecordingsSource(kind="recordings", path=tmp_path, segment=segment)
    rows = list(iter_rows(source))
    assert in_source == [tmp_path / "long.wav"]
    short = [s for s in rows if not s.id.startswith("long")]
    assert len(short) == 2 and all(s.turns[0].audio is None and s.turns[0].recording for s in short)
    cut = [s for s in rows if s.id.startswith("long-")]
    assert len(cut) >= 2 and all(s.turns[0].audio is not None and s.turns[0].recording is None for s in cut)
    decoded(rows)
    vad = SileroVAD()
    for sample in short:  # what the source computed before decoding moved to the workers
        whole = decode_recording(tmp_path / f"{sample.id}.wav", max_s=3600, max_channels=2)
        [(a, b)] = cut_recording(whole, vad, segment, trim=True, split=True).spans
        assert np.array_equal(sample.turns[0].audio, whole[a:b]) and sample.turns[0].recording is None


def test_plan_cuts_forces_a_cut_only_where_there_is_no_pause() -> None:
    probs = np.ones(1000, np.float32)  # 32 s of speech without a pause
    cuts = plan_cuts(probs, 1000 * 512, 512, SegmentConfig(min_s=5, max_s=10), trim=True, split=True)
    assert cuts.forced >= 3 and all((b - a) / SR <= 10.5 for a, b in cuts.spans)
    assert cuts.spans[0][0] == 0 and cuts.spans[-1][1] == 1000 * 512


@needs_allison
def test_librispeech_and_audiofolder_build_into_pretrain_and_transcription_and_stage1_trains(
    tmp_path: Path, corpora
) -> None:  # noqa: ANN001
    from dataengine.training.stream_finetune import run

    manifests = {}
    for name in ("libri", "audiofolder"):
        recipe = Recipe.model_validate(
            {
                "name": name,
                "seed": 3,
                "source": {"kind": "recordings", "path": str(corpora[name])},
                "tasks": {"pretrain": {"share": 0.5}, "transcription": {"share": 0.5}},
                "shards": {"max_samples": 4},
            }
        )
        out = tmp_path / name
        summary = build(recipe, out, progress=False, cache=StageCache())
        assert summary.tasks["pretrain"] >= 1 and summary.tasks["transcription"] >= 1
        manifests[name] = out
        kept = duckdb.sql(f"SELECT id, task, origin, prompt, response FROM '{out}/manifest/samples.parquet'")
        rejects = duckdb.sql(f"SELECT id, stage, reason FROM '{out}/manifest/rejects.parquet'").fetchall()
        kept = kept.fetchall()
        # the two tasks split the rows by a seeded draw; the build ends where the exact mix must
        assert 0 < len(kept) + len(rejects) <= (7 if name == "libri" else 6)
        assert all(origin == "recording" for _, _, origin, _, _ in kept)
        assert all(resp == prompt != "" for _, task, _, prompt, resp in kept if task == "transcription")
        raws = [json.loads(m) for m in _members(out, "json")]
        pretrain = [r for r in raws if r["task"] == "pretrain"]
        assert pretrain and all(len(r["conversations"]) == 1 for r in pretrain)
        assert all(r["conversations"][0]["content"].startswith("<|sound_start|>") for r in pretrain)
    cfg = OmegaConf.load(CONFIGS / "stage1_tiny_cpu.yaml")
    out = tmp_path / "train"
    cfg.merge_with(
        {"data": str(manifests["libri"]), "tiny_dir": str(tiny_dir()), "output_dir": str(out), "max_steps": 3}
    )
    cfg.save_every_n_steps = 3
    run(cfg)
    ids = {
        i
        for line in (out / "sample_ids.rank0.jsonl").read_text().splitlines()
        for i in json.loads(line)["ids"]
    }
    kept_ids = {
        r[0] for r in duckdb.sql(f"SELECT id FROM '{manifests['libri']}/manifest/samples.parquet'").fetchall()
    }
    assert ids and ids <= kept_ids
    assert (out / "epoch_3").is_dir()


@needs_allison
def test_a_single_real_word_with_silence_around_it_is_kept_not_silence(prompts) -> None:  # noqa: ANN001
    """Regression (issue 14): a clean word in the middle of a 4 s recording was ``silence`` because the
    silence fraction counted the leading and trailing silence that ``max_edge_silence_s`` bounds."""
    from dataengine.audio.filters import check_audio
    from dataengine.recipe import AudioFilterConfig

    word = prompts[4][1]  # "Cancelled.", cut to where it sounds
    loud = np.flatnonzero(np.abs(word) > 1e-2)
    word = word[loud[0] : loud[-1] + 1]
    pad = np.zeros(int(1.6 * SR), np.float32)
    config = AudioFilterConfig(max_silence_fraction=0.6)
    metrics, reasons = check_audio(np.concatenate([pad, word, pad]), config)
    assert metrics["silence_fraction"] > config.max_silence_fraction  # the whole clip is mostly silence...
    assert "silence" not in [r for r, _ in reasons]  # ...but its edges are bounded on their own


def test_a_folder_of_a_thousand_files_streams_in_flat_memory(tmp_path: Path) -> None:
    """The source holds one folder's entries and one row at a time, and reads only headers (the workers
    decode): the peak of Python allocations over 1,000 files is that of 100 (within a margin)."""
    import tracemalloc

    rng = np.random.default_rng(0)
    clip = (0.1 * rng.standard_normal(int(0.05 * SR))).astype(np.float32)
    for n in range(1000):
        folder = tmp_path / f"{n // 100:02d}"
        folder.mkdir(exist_ok=True)
        sf.write(folder / f"{n:04d}.wav", clip, SR)

    def peak(path: Path) -> tuple[int, int]:  # the walk, the headers and the samples (no decoding)
        source = RecordingsSource(kind="recordings", path=path)
        tracemalloc.start()
        count = sum(1 for s in iter_rows(source) if s.turns[0].recording is not None)
        high = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return count, high

    small_count, small_peak = peak(tmp_path / "00")
    big_count, big_peak = peak(tmp_path)
    assert (small_count, big_count) == (100, 1000)
    assert big_peak < 1.5 * small_peak + 256 * 1024, (small_peak, big_peak)


def test_a_corpus_wide_transcript_file_is_not_held_in_memory(tmp_path: Path) -> None:
    """MLS keeps one ``transcripts.txt`` for a whole split (10.8 M lines for English): 200,000 lines of it
    add under 8 MB to the source's peak of Python allocations (a dict of them held ~45 MB), and the files
    it names still get their texts, by relative path or by stem."""
    import tracemalloc

    rng = np.random.default_rng(1)
    clip = (0.1 * rng.standard_normal(int(0.05 * SR))).astype(np.float32)
    folder = tmp_path / "corpus" / "audio" / "4800" / "10003"
    folder.mkdir(parents=True)
    for stem in ("4800_10003_000000", "4800_10003_000001"):
        sf.write(folder / f"{stem}.flac", clip, SR)
    words = "the quick brown fox jumps over the lazy dog while the band plays on into the night"

    def transcripts(lines: int) -> Path:
        path = tmp_path / f"transcripts-{lines}.txt"
        with path.open("w", encoding="utf-8") as handle:
            for n in range(lines):
                handle.write(f"{n // 1000:04d}_{n % 1000:05d}_{n:06d}\t{words} {n}\n")
            handle.write(f"4800_10003_000000\tthe first of two {lines}\n")
            handle.write(f"audio/4800/10003/4800_10003_000001\tthe second {lines}\n")
        return path

    def peak(path: Path) -> tuple[list[str], int]:
        source = RecordingsSource(kind="recordings", path=tmp_path / "corpus", transcripts=path)
        tracemalloc.start()
        texts = [s.turns[0].text for s in iter_rows(source)]
        high = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return texts, high

    small_texts, small_peak = peak(transcripts(10))
    big_texts, big_peak = peak(transcripts(200_000))
    assert small_texts == ["the first of two 10", "the second 10"]
    assert big_texts == ["the first of two 200000", "the second 200000"]
    assert big_peak < small_peak + 8 * 2**20, (small_peak, big_peak)


def test_an_unreadable_transcript_file_is_one_line_naming_it(tmp_path: Path) -> None:
    sf.write(tmp_path / "a.wav", np.zeros(SR, np.float32), SR)
    whole = gzip.compress(b"a\thello there\n" * 2000)
    cases = {
        "cut.txt.gz": (whole[: len(whole) // 2], r"unreadable \(Compressed file ended"),  # a torn download
        "plain.txt.gz": (b"a\thello\n", r"unreadable \(Not a gzipped file"),
    }
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        source = RecordingsSource(kind="recordings", path=tmp_path, transcripts=tmp_path / name)
        with pytest.raises(SettingError, match=rf"^source.transcripts: .*{name}: {message}") as caught:
            check_recordings(source)
        assert "\n" not in str(caught.value)
    (tmp_path / "folder").mkdir()
    source = RecordingsSource(kind="recordings", path=tmp_path, transcripts=tmp_path / "folder")
    with pytest.raises(SettingError, match=r"folder: a folder, not a transcript file$"):
        check_recordings(source)


def test_a_corpus_wide_transcript_file_is_read_once_for_the_check_and_the_build(tmp_path: Path) -> None:
    """The check read it whole into a table, then the build read it again (MLS English: ~50 s each); now
    the build takes the check's table, unless the file changed since."""
    from dataengine.sources import recordings

    sf.write(tmp_path / "a.wav", np.zeros(SR, np.float32), SR)
    path = tmp_path / "transcripts.txt"
    path.write_text("".join(f"x{n:07d}\tsome words {n}\n" for n in range(3000)) + "a\thello there\n")
    read: list[str] = []
    original = recordings.transcript_lines

    def counting(file: Path):  # noqa: ANN202 - the real reader, its lines counted
        for pair in original(file):
            read.append(pair[0])
            yield pair

    source = RecordingsSource(kind="recordings", path=tmp_path)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(recordings, "transcript_lines", counting)
        check_recordings(source)
        assert [s.turns[0].text for s in iter_rows(source)] == ["hello there"]
        assert len(read) == 3001  # once, not twice
        check_recordings(source)
        path.write_text("a\tgood morning\n")  # changed after the check: read again
        assert [s.turns[0].text for s in iter_rows(source)] == ["good morning"]
        assert [s.turns[0].text for s in iter_rows(source)] == ["good morning"]  # no check: read anew


@pytest.mark.slow
def test_kill_9_during_a_recordings_build_then_resume_gives_identical_bytes(
    tmp_path: Path, prompts: list
) -> None:
    """A folder of two short prompts and a corrupt file, one sample a batch: killed once the tokenizer
    has cached its first result, the same command finishes the build, byte-identical to one never killed
    (the decode stage runs again in the workers; the cache gives back what the killed run finished)."""
    import signal
    import subprocess
    import sys
    import time

    import yaml

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for stem, audio, _ in prompts[:2]:
        sf.write(corpus / f"{stem}.flac", audio, SR)
    (corpus / "broken.mp3").write_bytes(b"ID3" + bytes(range(256)) * 8)
    recipe = {
        "name": "resume",
        "seed": 2,
        "source": {"kind": "recordings", "path": str(corpus)},
        "tasks": {"pretrain": {"share": 1}},
        "executor": {"batch_size": 1},
        "shards": {"max_samples": 1},
    }
    recipe_file = tmp_path / "resume.yaml"
    recipe_file.write_text(yaml.safe_dump(recipe))
    cache_dir, out = tmp_path / "cache", tmp_path / "out"
    command = [sys.executable, "-m", "dataengine.cli", "build", str(recipe_file), "--out", str(out)]
    command += ["--cache-dir", str(cache_dir), "--no-progress", "--workers", "1"]
    log = tmp_path / "killed.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
    deadline, entries = time.time() + 120, 0
    while time.time() < deadline and process.poll() is None:
        entries = StageCache(cache_dir).count("tokenizer")
        if entries >= 1:
            break
        time.sleep(0.05)
    running = process.poll() is None
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert running and process.returncode == -signal.SIGKILL, log.read_text(errors="replace")[-2000:]
    assert entries >= 1 and not (out / "manifest").exists()  # killed half-way, nothing visible
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    whole = build(Recipe.model_validate(recipe), tmp_path / "whole", progress=False, cache=None)
    assert whole.kept == 2 and whole.rejected == {"decode/unreadable": 1}

    def tree(folder: Path) -> dict[str, bytes]:
        return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}

    assert tree(out) == tree(tmp_path / "whole")
