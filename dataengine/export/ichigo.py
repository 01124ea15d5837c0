"""A build as Parquet in the column layout of Ichigo's published datasets.

Ichigo's speech-instruction sets (``homebrewltd/instruction-speech-whispervq-v1`` / ``-v2``,
``jan-hq/instruction-speech-whispervq-v2-prompt-transcribe``, …) declare, in this order: ``index``
int64, ``tokens`` sequence of int64 (WhisperVQ codes of the user's query), ``text_prompt`` (the user's
query), ``answer`` (the assistant's answer), ``length`` int64 ("length of user's query"; the cards do
not say in what unit: characters here), ``prompt`` (the query as ``<|sound_start|>…<|sound_end|>``)
and ``conversations``, a list of ``{content, role}`` structs. Their training reads only
``conversations`` (janhq/torchtune ``recipes/configs/jan-llama3-1-s/finetune/8B_full.yaml``:
``chat_dataset``, ``conversation_column: conversations``, ``conversation_style: openai``). Files are
``data/train-00000-of-00001.parquet`` under a dataset folder, so ``datasets.load_dataset(folder)``
finds the train split. Two columns follow theirs: ``id`` and ``task`` (dataengine's sample id and
task), which their loaders ignore. For a multi-turn sample the single-turn columns describe its first
user turn and first answer.

Rows are streamed from the shards (tar members read in order, one row group at a time), so memory does
not grow with the build. Every sample is checked against Ichigo's tokenizer rules
(:mod:`dataengine.ichigo`) first: a build whose text their training would silently drop is refused.
"""

from __future__ import annotations

import json
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dataengine.ichigo import SOUND_END, SOUND_START, check_conversation
from dataengine.manifest import ManifestError, open_manifest

ROW_GROUP = 1024
DATA_FILE = Path("data") / "train-00000-of-00001.parquet"
TURN = pa.struct([("content", pa.string()), ("role", pa.string())])
SCHEMA = pa.schema(
    [
        ("index", pa.int64()),
        ("tokens", pa.list_(pa.int64())),
        ("text_prompt", pa.string()),
        ("answer", pa.string()),
        ("length", pa.int64()),
        ("prompt", pa.string()),
        ("conversations", pa.list_(TURN)),
        ("id", pa.string()),
        ("task", pa.string()),
    ]
)
ICHIGO_COLUMNS = SCHEMA.names[:7]
CARD = """---
dataset_info:
  features:
  - name: index
    dtype: int64
  - name: tokens
    sequence: int64
  - name: text_prompt
    dtype: string
  - name: answer
    dtype: string
  - name: length
    dtype: int64
  - name: prompt
    dtype: string
  - name: conversations
    list:
    - name: content
      dtype: string
    - name: role
      dtype: string
  - name: id
    dtype: string
  - name: task
    dtype: string
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*
---

# {name} (Ichigo layout)

Exported from the dataengine build `{name}` ({rows} samples) by `dataengine export --format ichigo`.
Columns as in Ichigo's speech-instruction datasets; its training reads `conversations`
(`chat_dataset`, `conversation_style: openai`). `id` and `task` are dataengine's.
"""


class ExportError(ValueError):
    """The input is not a build that can be exported, or the target is taken; one line for the user."""


def default_destination(build: Path) -> Path:
    """Beside the build, never inside it (a build folder holds only what the build wrote)."""
    return build.parent / f"{build.name}-ichigo"


def _target_file(dest: Path) -> Path:
    """``--out x.parquet`` is the file itself; anything else a dataset folder holding ``data/…``."""
    return dest if dest.suffix == ".parquet" else dest / DATA_FILE


def iter_records(build: Path, shards: list[str]) -> Iterator[dict[str, Any]]:
    """Each sample's ``json`` member, shard by shard in stored order, read as a tar stream."""
    for name in shards:
        path = build / "shards" / name
        try:
            with tarfile.open(path, "r|") as tar:
                for member in tar:
                    if member.isfile() and member.name.endswith(".json"):
                        handle = tar.extractfile(member)
                        assert handle is not None
                        yield json.loads(handle.read().decode("utf-8"))
        except (OSError, tarfile.TarError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ExportError(f"{path}: cannot read: {exc}") from None


def ichigo_row(record: dict[str, Any]) -> dict[str, Any]:
    """One sample in Ichigo's columns (``id``, ``task`` last); ExportError if Ichigo would misread it."""
    turns = record.get("conversations")
    sample_id = str(record.get("id"))
    if not isinstance(turns, list) or not all(isinstance(t, dict) for t in turns):
        raise ExportError(f"sample {sample_id}: json has no conversations list of turns")
    task = record.get("task")
    check = check_conversation(turns, task)
    if not check.ok:
        raise ExportError(f"sample {sample_id}: Ichigo's tokenizer would misread it: {check.problems[0]}")
    users = [(t, r) for t, r in zip(turns, check.readings, strict=True) if t["role"] == "user"]
    spoken = next(((t, r) for t, r in users if r.kind != "text"), None)
    first_user = users[0][0]["content"]
    text_prompt = next((s.get("text") for s in record.get("speech") or [] if s.get("text")), None)
    if not isinstance(text_prompt, str):  # the spoken text (schema.SpokenTurnRecord); else older builds'
        text_prompt = record.get("prompt")
    if not isinstance(text_prompt, str):  # a text-only turn is its own text; noise has none
        text_prompt = first_user if spoken is None else ""
    answer = next(t["content"] for t in turns if t["role"] == "assistant")
    prompt = ""
    if spoken is not None:
        content = spoken[0]["content"]
        prompt = content[content.index(SOUND_START) : content.rindex(SOUND_END) + len(SOUND_END)]
    return {
        "index": int(record.get("index", 0)),
        "tokens": list(spoken[1].codes) if spoken is not None else [],
        "text_prompt": text_prompt,
        "answer": answer,
        "length": len(text_prompt),
        "prompt": prompt,
        "conversations": [{"content": t["content"], "role": t["role"]} for t in turns],
        "id": sample_id,
        "task": str(task or ""),
    }


def _manifest(build: Path) -> tuple[int, list[str]]:
    try:
        con = open_manifest(build)
    except ManifestError as exc:
        raise ExportError(str(exc)) from None
    try:
        (rows,) = con.execute("select count(*) from samples").fetchall()[0]
        names = con.execute("select distinct shard from samples order by shard").fetchall()
    finally:
        con.close()
    return int(rows), [name for (name,) in names]


def export_ichigo(build: Path, dest: Path | None = None, overwrite: bool = False) -> tuple[Path, int]:
    """Write the build's samples as Ichigo-layout Parquet; return the file written and its row count."""
    rows, shards = _manifest(build)
    dest = dest or default_destination(build)
    target = _target_file(dest)
    card = target.parent.parent / "README.md" if target.parent.name == "data" else None
    if build.resolve() in (target.resolve(), *target.resolve().parents):
        raise ExportError(f"{target}: inside the build folder; export beside it (--out)")
    for path in (target, card):
        if path is not None and path.exists() and not overwrite:
            raise ExportError(f"{path}: exists (pass --overwrite to replace it)")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.tmp")
    written = 0
    try:
        with pq.ParquetWriter(partial, SCHEMA) as writer:
            batch: list[dict[str, Any]] = []
            for record in iter_records(build, shards):
                batch.append(ichigo_row(record))
                if len(batch) == ROW_GROUP:
                    writer.write_table(pa.Table.from_pylist(batch, schema=SCHEMA))
                    written, batch = written + len(batch), []
            if batch:
                writer.write_table(pa.Table.from_pylist(batch, schema=SCHEMA))
                written += len(batch)
        if written != rows:
            raise ExportError(f"{build}: shards hold {written} samples, manifest {rows}; run the build again")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    if card is not None:
        card.write_text(CARD.format(name=build.name, rows=rows), encoding="utf-8")
    return target, written
