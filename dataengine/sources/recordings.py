"""Real recordings as samples: a folder, a manifest, a lhotse CutSet, or a 🤗 dataset's Audio column.

Each recording becomes one sample per segment: a user turn of origin ``recording`` (its transcript,
if any, as ``text``) and an assistant turn holding the row's answer (empty unless the corpus has one).
Tasks decide what to make of them (``pretrain``, ``transcription``, ``instruction``).

Decoding is not done here but in the workers: the turn carries a :class:`~dataengine.sample.RecordingRef`
(the path or bytes, the slice, the source's limits) and the ``decode`` stage
(:mod:`dataengine.audio.decode_stage`) sets its audio. Only a recording that must be cut needs its audio
here, to find its pauses: one whose header says it lasts about ``segment.max_s`` or more (or does not
say) is decoded and split in this process (:mod:`dataengine.audio.segment`), its segments' audio set.
Reading a header costs well under a millisecond, so the common case (utterances, clips) costs the main
process a ``stat`` and a header per file.

Nothing is listed into memory: folders are walked with ``os.scandir`` (sorted per directory),
manifests read line by line, datasets streamed. Ids come from the path relative to the corpus root
(a manifest's own ``id`` column, a cut's id), and a segment's id adds its start in milliseconds.
A row that cannot be used before decoding (a missing file named by a transcript, a manifest row
without a path) is a reject row of stage ``source``; a file neither decoder reads, NaN samples, a
header that says 6 hours or 8 channels are rejected by the ``decode`` stage, with the path and the
decoder's message.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dataengine.audio.decode import DecodeError, decode_recording, probe_seconds
from dataengine.audio.segment import cut_recording
from dataengine.audio.vad import SileroVAD
from dataengine.errors import one_line
from dataengine.recipe import HFAudioSource, RecordingsSource, SegmentConfig, SettingError
from dataengine.sample import ASSISTANT, AUDIO_SAMPLE_RATE, RECORDING, USER, RecordingRef, Sample, Turn
from dataengine.sources.rows import safe_id
from dataengine.texttable import TextTable

TEXT_COLUMNS = ("text", "transcription", "sentence", "transcript", "normalized_text")
"""Transcript columns tried in order when ``text_column`` is unset."""
csv.field_size_limit(1 << 24)  # long transcripts in one cell (the default is 128 kB)


@dataclass
class RecordingRow:
    """One recording before decoding: where it is (a file, or its bytes) and what the corpus says of it."""

    id: str
    where: str
    """The path relative to the corpus (for messages and the manifest)."""
    path: Path | None = None
    data: bytes | None = None
    text: str = ""
    answer: str = ""
    speaker: str | None = None
    start_s: float = 0.0
    duration_s: float | None = None
    problem: tuple[str, str] | None = None
    """``(reason, detail)`` when the row is unusable before decoding."""


# ---- transcripts and folder layouts -------------------------------------------------------------------


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
    return path.open(encoding="utf-8", errors="replace")


def read_transcripts(path: Path) -> dict[str, str]:
    """A transcript file beside its audio (LibriSpeech's ``*.trans.txt``: one folder's) as a dict."""
    return dict(transcript_lines(path))


def transcript_lines(path: Path) -> Iterator[tuple[str, str]]:
    """``(stem, text)`` of ``<stem> <text>`` / ``<stem>\\t<text>`` / ``<stem>: <text>`` lines (``;`` or
    ``#`` comments), one line in memory at a time."""
    with _open_text(path) as handle:
        for line in handle:
            line = line.strip()
            if not line or line[0] in ";#":
                continue
            key, _, text = line.partition(" ") if "\t" not in line else line.partition("\t")
            if key.endswith(":"):
                key = key[:-1]
            elif ":" in key:  # "name:text" without a space
                key, _, rest = key.partition(":")
                text = f"{rest} {text}".strip()
            text = text.strip()
            if text.startswith("[") and text.endswith("]"):
                text = ""  # "[ascending tones]": a description of a sound, not words spoken
            yield key, text


def _sorted_entries(folder: Path) -> list[os.DirEntry[str]]:
    with os.scandir(folder) as entries:
        return sorted(entries, key=lambda e: e.name)


def _walk(root: Path) -> Iterator[tuple[Path, list[os.DirEntry[str]]]]:
    """Each folder under ``root`` (depth first, sorted) with its sorted entries; one folder in memory."""
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = _sorted_entries(folder)
        except OSError:
            continue
        yield folder, entries
        stack.extend(reversed([Path(e.path) for e in entries if e.is_dir(follow_symlinks=False)]))


def _rel_id(path: Path, root: Path) -> tuple[str, str]:
    rel = path.relative_to(root)
    return safe_id(rel.with_suffix("").as_posix()), rel.as_posix()


def _folder_rows(config: RecordingsSource) -> Iterator[RecordingRow]:
    """Audio files under the folder; LibriSpeech ``*.trans.txt`` beside them give their text, a lab-level
    ``transcripts`` file (MLS ``transcripts.txt``, Asterisk's) too; a transcript line naming no file is
    a ``missing_file`` reject."""
    shared = _corpus_transcripts(config)
    try:
        yield from _folder_walk(config, shared)
    finally:
        shared.close()


_checked: dict[tuple[str, int, int], TextTable] = {}
"""The corpus-wide transcript table :func:`check_recordings` read, kept for the build that follows in the
same process (at most one; MLS English: 10.8 M lines, ~50 s to read), keyed by the file's path, size and
modification time."""


def _corpus_transcripts(config: RecordingsSource, keep: bool = False) -> TextTable:
    """The lab-level transcript file (``source.transcripts``, else the folder's ``transcripts.txt``) in a
    table looked up from disk, not a dict (empty without one): the one the check read when the file is
    unchanged since, else read now. ``keep``: also hold it for the next caller (the check does)."""
    path = config.transcripts
    if path is None and (config.path / "transcripts.txt").is_file():
        path = config.path / "transcripts.txt"
    if path is None:
        return TextTable()
    try:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        table = _checked.pop(key, None)
        if table is None:
            table = TextTable(transcript_lines(path))
    except (OSError, EOFError, zlib.error) as exc:  # a truncated .gz ends in EOFError
        raise SettingError("source.transcripts", f"{path}: unreadable ({one_line(exc)})") from None
    if keep:
        for stale in _checked.values():
            stale.close()
        _checked.clear()
        _checked[key] = table
    return table


def _folder_walk(config: RecordingsSource, shared: TextTable) -> Iterator[RecordingRow]:
    root = config.path
    extensions = {e.lower() for e in config.extensions}
    for folder, entries in _walk(root):
        local: dict[str, str] = {}
        for entry in entries:
            if entry.name.endswith(".trans.txt") and entry.is_file():
                local.update(read_transcripts(Path(entry.path)))
        found: set[str] = set()
        for entry in entries:
            path = Path(entry.path)
            if path.suffix.lower() not in extensions or entry.is_dir():
                continue
            stem = path.stem
            found.add(stem)
            rid, where = _rel_id(path, root)
            relative = path.relative_to(root).with_suffix("").as_posix()
            text = local.get(stem) or shared.get(relative) or shared.get(stem, "")
            yield RecordingRow(rid, where, path, text=text, speaker=_librispeech_speaker(stem, local))
        for stem in sorted(set(local) - found):
            rid, where = _rel_id(folder / stem, root)
            yield RecordingRow(
                rid, where, problem=("missing_file", f"{where}: named in a transcript file, no audio file")
            )


def _librispeech_speaker(stem: str, local: dict[str, str]) -> str | None:
    return stem.split("-", 1)[0] if local and "-" in stem else None


def _table_rows(
    config: RecordingsSource, table: Path, delimiter: str, path_column: str, audio_dir: Path
) -> Iterator[RecordingRow]:
    with table.open(encoding="utf-8", errors="replace", newline="") as handle:
        reader = csv.DictReader(
            handle, delimiter=delimiter, quoting=csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
        )
        for n, row in enumerate(reader):
            yield _manifest_row(config, row, n, audio_dir, path_column, table.name)


def _pick_text(row: dict[str, Any], column: str | None) -> str:
    for name in (column,) if column else TEXT_COLUMNS:
        value = row.get(name)
        if isinstance(value, str):
            return value.strip()
    return ""


def _manifest_row(
    config: RecordingsSource, row: Any, n: int, base: Path, path_column: str, name: str
) -> RecordingRow:
    fallback = f"{safe_id(Path(name).stem)}-{n:07d}"
    if not isinstance(row, dict):
        return RecordingRow(
            fallback, f"{name} row {n}", problem=("bad_row", f"{name} row {n}: not an object")
        )
    raw = row.get(path_column)
    if not isinstance(raw, str) or not raw.strip():
        return RecordingRow(
            fallback, f"{name} row {n}", problem=("bad_row", f"{name} row {n}: no {path_column!r} column")
        )
    path = Path(raw) if Path(raw).is_absolute() else base / raw
    try:
        rid, where = _rel_id(path, base)
    except ValueError:
        rid, where = safe_id(Path(raw).with_suffix("").as_posix()), raw
    if row.get("id") is not None:
        rid = safe_id(row["id"])
    speaker = row.get("speaker", row.get("client_id", row.get("speaker_id")))
    answer = row.get(config.answer_column)
    return RecordingRow(
        rid,
        where,
        path,
        text=_pick_text(row, config.text_column),
        answer=answer.strip() if isinstance(answer, str) else "",
        speaker=None if speaker is None else str(speaker),
    )


def _jsonl_rows(config: RecordingsSource, path: Path, path_column: str = "path") -> Iterator[RecordingRow]:
    with path.open("rb") as handle:
        for n, line in enumerate(handle):
            if not line.strip():
                continue
            try:
                row = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                rid = f"{safe_id(path.stem)}-{n:07d}"
                yield RecordingRow(
                    rid,
                    f"{path.name} line {n + 1}",
                    problem=("bad_row", f"{path.name} line {n + 1}: {one_line(exc)}"),
                )
                continue
            yield _manifest_row(config, row, n, path.parent, path_column, path.name)


def _lhotse_rows(path: Path) -> Iterator[RecordingRow]:
    """A lhotse ``CutSet`` JSONL (``.gz`` too): each ``MonoCut`` is a slice of a recording's file; its
    supervisions' texts, joined, are its transcript."""
    with _open_text(path) as handle:
        for n, line in enumerate(handle):
            if not line.strip():
                continue
            where = f"{path.name} line {n + 1}"
            try:
                cut = json.loads(line)
                recording = cut["recording"]
                sources = [s for s in recording["sources"] if s.get("type") == "file"]
                if not sources:
                    raise ValueError("no 'file' audio source (url/memory/command sources are not read)")
                file = Path(sources[0]["source"])
                supervisions = cut.get("supervisions") or []
                text = " ".join(s.get("text") or "" for s in supervisions).strip()
                speaker = next((s.get("speaker") for s in supervisions if s.get("speaker")), None)
                yield RecordingRow(
                    safe_id(cut["id"]),
                    str(file),
                    file if file.is_absolute() else path.parent / file,
                    text=text,
                    speaker=speaker,
                    start_s=float(cut.get("start", 0.0)),
                    duration_s=float(cut["duration"]),
                )
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                problem = f"{where}: not a lhotse cut ({type(exc).__name__}: {one_line(exc)})"
                yield RecordingRow(f"{safe_id(path.stem)}-{n:07d}", where, problem=("bad_row", problem))


def detect_layout(config: RecordingsSource) -> str:
    """The layout ``auto`` stands for, from what ``path`` is and holds."""
    if config.layout != "auto":
        return config.layout
    path = config.path
    if path.is_file():
        name = path.name.lower()
        if "cuts" in name and (name.endswith(".jsonl") or name.endswith(".jsonl.gz")):
            return "lhotse"
        if name == "validated.tsv" or name.endswith(".tsv"):
            return "commonvoice"
        if name.endswith(".csv"):
            return "audiofolder"
        return "jsonl"
    if (path / "metadata.csv").is_file() or (path / "metadata.jsonl").is_file():
        return "audiofolder"
    if (path / "validated.tsv").is_file():
        return "commonvoice"
    return "folder"


def recording_rows(config: RecordingsSource) -> Iterator[RecordingRow]:
    layout = detect_layout(config)
    path = config.path
    if layout in ("folder", "librispeech"):
        yield from _folder_rows(config)
    elif layout == "audiofolder":
        if path.is_file():
            yield from _table_rows(config, path, ",", "file_name", path.parent)
        elif (path / "metadata.csv").is_file():
            yield from _table_rows(config, path / "metadata.csv", ",", "file_name", path)
        else:
            yield from _jsonl_rows(config, path / "metadata.jsonl", "file_name")
    elif layout == "commonvoice":
        table = path if path.is_file() else path / "validated.tsv"
        yield from _table_rows(config, table, "\t", "path", table.parent / "clips")
    elif layout == "jsonl":
        yield from _jsonl_rows(config, path)
    elif layout == "lhotse":
        yield from _lhotse_rows(path)
    else:  # pragma: no cover - the recipe model admits no other layout
        raise ValueError(f"unknown layout {layout!r}")


def check_recordings(config: RecordingsSource) -> None:
    """The path exists; a manifest file is readable; the first row can be listed."""
    if not config.path.exists():
        raise SettingError("source.path", f"{config.path}: no such file or folder")
    if config.transcripts is not None and not config.transcripts.is_file():
        what = "a folder, not a transcript file" if config.transcripts.is_dir() else "no such file"
        raise SettingError("source.transcripts", f"{config.transcripts}: {what}")
    if config.segment is not None and config.segment.words_model != "none":
        from dataengine.audio.asr import check_model

        try:
            check_model(config.segment.words_model)
        except (ValueError, ImportError) as exc:
            raise SettingError("source.segment.words_model", one_line(exc)) from None
    layout = detect_layout(config)
    if layout in ("jsonl", "lhotse") and not config.path.is_file():
        raise SettingError("source.path", f"{config.path}: the {layout} layout needs a manifest file")
    try:
        if layout in ("folder", "librispeech"):  # the transcript table read here is the build's too
            first = next(_folder_walk(config, _corpus_transcripts(config, keep=True)), None)
        else:
            first = next(recording_rows(config), None)
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, csv.Error) as exc:
        raise SettingError("source.path", f"{config.path}: {one_line(exc)}") from None
    if first is None:
        what = f"no audio files ({', '.join(config.extensions)})" if layout == "folder" else "no rows"
        raise SettingError("source.path", f"{config.path}: {what}")


# ---- rows -> samples ------------------------------------------------------------------------------------


SPLIT_MARGIN_S = 1.0
"""A recording whose header says at least ``segment.max_s`` minus this is decoded here to be cut: the
margin covers a header that rounds (an MP3's), so no recording that needs cutting reaches the decode
stage whole."""


class _Segmenter:
    """Turns rows into samples: most as a :class:`~dataengine.sample.RecordingRef` for the ``decode``
    stage; a recording longer than the segments is decoded here, cut at its pauses (one VAD model per
    source iterator)."""

    def __init__(
        self, source: str, max_file_s: float, max_channels: int, trim: bool, segment: SegmentConfig | None
    ) -> None:
        self.source = source
        self.max_file_s, self.max_channels = max_file_s, max_channels
        self.trim, self.split = trim, segment is not None
        self.segment = segment or SegmentConfig()
        self.vad = SileroVAD()
        self._asr = None

    def _ref(self, row: RecordingRow) -> RecordingRef:
        return RecordingRef(
            row.where,
            None if row.path is None else str(row.path),
            row.data,
            row.start_s,
            row.duration_s,
            self.max_file_s,
            self.max_channels,
            self.trim,
            self.segment.edge_pad_s,
        )

    def _needs_cutting(self, row: RecordingRow, target: Path | bytes) -> bool:
        """Whether the recording may be longer than a segment (by its header; unknown counts as long)
        and is not refused for its length anyway: only then is it decoded in this process."""
        if not self.split:
            return False
        try:
            seconds = probe_seconds(target, row.start_s, row.duration_s)
        except DecodeError:
            return False  # the decode stage rejects it, with the decoder's reason
        return seconds is None or self.segment.max_s - SPLIT_MARGIN_S <= seconds <= self.max_file_s

    def samples(self, row: RecordingRow) -> Iterator[Sample]:
        if row.problem is not None:
            reason, detail = row.problem
            yield Sample(row.id, 0, self.source).drop("source", reason, detail=detail)
            return
        target = row.data if row.data is not None else row.path
        assert target is not None
        voice = f"recording:{row.speaker}" if row.speaker else "recording"
        if not self._needs_cutting(row, target):
            user = Turn(USER, row.text, origin=RECORDING, key=row.id, voice=voice, recording=self._ref(row))
            yield Sample(row.id, 0, self.source, [user, Turn(ASSISTANT, row.answer)])
            return
        try:
            audio = decode_recording(
                target,
                max_s=self.max_file_s,
                max_channels=self.max_channels,
                start_s=row.start_s,
                duration_s=row.duration_s,
            )
        except DecodeError:  # the decode stage decodes it again and rejects it, like any other
            user = Turn(USER, row.text, origin=RECORDING, key=row.id, voice=voice, recording=self._ref(row))
            yield Sample(row.id, 0, self.source, [user, Turn(ASSISTANT, row.answer)])
            return
        cuts = cut_recording(audio, self.vad, self.segment, self.trim, self.split)
        several = len(cuts.spans) > 1
        texts = self._segment_texts(row.text, audio, cuts.spans) if several else [row.text]
        for (start, end), text in zip(cuts.spans, texts, strict=True):
            sample_id = f"{row.id}-{round(start * 1000 / AUDIO_SAMPLE_RATE):08d}" if several else row.id
            user = Turn(
                USER, text, origin=RECORDING, key=sample_id, voice=voice, audio=audio[start:end].copy()
            )
            # a spoken question's answer belongs to the whole recording: a segment has none
            yield Sample(sample_id, 0, self.source, [user, Turn(ASSISTANT, "" if several else row.answer)])

    def _segment_texts(self, text: str, audio: np.ndarray, spans: list[tuple[int, int]]) -> list[str]:
        """Each segment's words of the whole-recording transcript (word timestamps of
        ``segment.words_model``); empty texts without a transcript, with ``none``, or when no word aligns."""
        model = self.segment.words_model
        if not text.strip() or model == "none":
            return [""] * len(spans)
        from dataengine.audio.align import assign_words, word_times
        from dataengine.audio.asr import WhisperASR

        if self._asr is None:
            self._asr = WhisperASR(model, cpu_threads=1)
        seconds = [(a / AUDIO_SAMPLE_RATE, b / AUDIO_SAMPLE_RATE) for a, b in spans]
        return assign_words(text, word_times(self._asr, audio), seconds) or [""] * len(spans)


def iter_recordings(config: RecordingsSource) -> Iterator[Sample]:
    segmenter = _Segmenter(
        "recordings", config.max_file_s, config.max_channels, config.trim_edges, config.segment
    )
    for row in recording_rows(config):
        yield from segmenter.samples(row)


# ---- 🤗 datasets with an Audio column ------------------------------------------------------------------


def _open_hf(config: HFAudioSource) -> Any:
    import datasets

    dataset = datasets.load_dataset(
        config.name, config.config, split=config.split, revision=config.revision, streaming=True
    )
    if config.audio_column in (dataset.features or {}):
        dataset = dataset.cast_column(config.audio_column, datasets.Audio(decode=False))
    return dataset


def check_hf_audio(config: HFAudioSource) -> None:
    """The dataset opens and its first row has the audio column (a streaming read of one row)."""
    try:
        row = next(iter(_open_hf(config)), None)
    except Exception as exc:  # noqa: BLE001 - datasets raises many types (offline, missing, bad split)
        raise SettingError(
            "source", f"hf dataset {config.name!r}: {type(exc).__name__}: {one_line(exc)}"
        ) from None
    if row is not None and config.audio_column not in row:
        raise SettingError(
            "source.audio_column", f"no column {config.audio_column!r} (columns: {', '.join(row)})"
        )


def _hf_row(config: HFAudioSource, row: dict[str, Any], n: int, stem: str) -> RecordingRow:
    rid = f"{stem}-{n:07d}"
    if config.id_column and row.get(config.id_column) is not None:
        rid = f"{stem}-{safe_id(row[config.id_column])}"
    where = f"{config.name} row {n}"
    value = row.get(config.audio_column)
    data: bytes | None = None
    path: Path | None = None
    if isinstance(value, dict):
        data = value.get("bytes")
        if data is None and value.get("path"):
            path = Path(value["path"])
            where = f"{where} ({value['path']})"
    elif isinstance(value, bytes):
        data = value
    if data is None and path is None:
        return RecordingRow(
            rid, where, problem=("bad_row", f"{where}: column {config.audio_column!r} holds no audio")
        )
    speaker = row.get(config.speaker_column) if config.speaker_column else None
    answer = row.get(config.answer_column)
    return RecordingRow(
        rid,
        where,
        path,
        data,
        text=_pick_text(row, config.text_column),
        answer=answer.strip() if isinstance(answer, str) else "",
        speaker=None if speaker is None else str(speaker),
    )


def iter_hf_audio(config: HFAudioSource) -> Iterator[Sample]:
    stem = safe_id(config.name.rstrip("/").rsplit("/", 1)[-1])
    segmenter = _Segmenter(stem, config.max_file_s, config.max_channels, config.trim_edges, config.segment)
    for n, row in enumerate(_open_hf(config)):
        yield from segmenter.samples(_hf_row(config, row, n, stem))
