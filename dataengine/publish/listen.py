"""What the Hub can play: the configs its dataset viewer shows with an audio player, and two example FLACs
the card's players link to.

All configs of a repo are read by one ``datasets`` builder (``datasets`` infers it from the first
config's files), so they are all WebDataset here. The viewer shows a player only for an ``Audio``
feature; ``datasets`` 5.2 encodes every example a WebDataset tar yields through its features, and for
``Audio`` (``decode=False`` too) that imports torchcodec. So the ``default`` config keeps ``flac`` as
binary (``load_dataset`` works without torchcodec, as before) and two more configs over the same files
declare it ``Audio(decode=False)`` for the viewer (which has torchcodec): ``listen`` (the shards) and
``rejected`` (``rejected/*.tar``). Nothing is stored twice but the two examples.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dataengine.manifest import open_manifest
from dataengine.tarindex import ShardIndex

EXAMPLES_DIR = "examples"
EXAMPLE_FILES = {"kept": f"{EXAMPLES_DIR}/kept.flac", "rejected": f"{EXAMPLES_DIR}/rejected.flac"}
REJECTED_DIR = "rejected"


def rejected_features(metric_names: list[str]) -> Any:
    """The ``datasets`` features of one sample of ``rejected/*.tar`` (``schema.RejectRecord``)."""
    from datasets import Audio, Features, Value

    from dataengine.schema import RejectRecord, record_feature

    return Features(
        {
            "__key__": Value("string"),
            "json": record_feature(RejectRecord, metric_names),
            "flac": Audio(sampling_rate=16000, decode=False),
            "__url__": Value("string"),
        }
    )


def _first(con: Any, status: str) -> dict[str, Any] | None:
    if status == "kept":
        sql = "SELECT id, shard, key, task, voice, NULL, NULL, prompt, duration_s FROM samples"
    elif "shard" in {r[0] for r in con.execute("DESCRIBE rejects").fetchall()}:
        sql = (
            "SELECT id, shard, id, NULL, voice, stage, reason, prompt, duration_s FROM rejects "
            "WHERE shard IS NOT NULL"
        )
    else:  # a build made before rejected audio was kept
        return None
    rows = con.execute(sql + " ORDER BY index, id LIMIT 1").fetchall()
    names = ("id", "shard", "key", "task", "voice", "stage", "reason", "prompt", "duration_s")
    return dict(zip(names, rows[0], strict=True)) if rows else None


def write_examples(out: Path, dest: Path) -> dict[str, dict[str, Any]]:
    """Copy the FLAC of the first kept and the first rejected sample (by source order) out of their
    shards into ``dest/examples/{kept,rejected}.flac``; return what the card says about each."""
    con = open_manifest(out)
    try:
        picked = {status: _first(con, status) for status in EXAMPLE_FILES}
    finally:
        con.close()
    index = ShardIndex()
    examples = {}
    for status, name in EXAMPLE_FILES.items():
        (dest / name).unlink(missing_ok=True)
        row = picked[status]
        if row is None:
            continue
        folder = "shards" if status == "kept" else REJECTED_DIR
        flac = index.read(Path(out) / folder / row["shard"], row["key"], "flac")
        if flac is None:  # shards.keep_audio: false
            continue
        (dest / EXAMPLES_DIR).mkdir(parents=True, exist_ok=True)
        (dest / name).write_bytes(flac)
        examples[status] = row | {"file": name}
    return examples
