"""Where shards live and how one is read: local folders, published folders, ``hf://`` URLs.

A source is a shard file, a folder holding ``*.tar`` or ``shards/*.tar`` (a build's output folder, a
published version folder such as ``DIR/versions/v1.2.0``, also written ``DIR@v1.2.0``), or
``hf://datasets/ORG/NAME@REV[/PATH]``.
Shards are opened with webdataset's ``gopen`` (``hf://`` goes through huggingface_hub) and read as a
tar stream here, so any error names the shard and the member.
"""

from __future__ import annotations

import functools
import io
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from dataengine.training.tarstream import TarStreamError, iter_member_batches

_NPY_HEADER = re.compile(
    rb"\x93NUMPY\x01\x00..\{'descr': '(?P<descr><[iu][1248])', "
    rb"'fortran_order': False, 'shape': \((?P<n>\d+),\), \}",
    re.DOTALL,
)
TRAINING_MEMBERS = frozenset({"json", "tokens.npy"})
HF_URL = re.compile(r"^hf://datasets/(?P<repo>[^/@]+/[^/@]+)(?:@(?P<rev>[^/]+))?(?:/(?P<path>.*))?$")


class ShardError(RuntimeError):
    """A shard that cannot be found or read; the message names the shard (and member)."""


@dataclass(frozen=True)
class HfLocation:
    repo_id: str
    revision: str
    path: str

    def url(self, filename: str) -> str:
        return f"hf://datasets/{self.repo_id}@{self.revision}/{filename}"


def parse_hf_url(url: str) -> HfLocation:
    """``hf://datasets/ORG/NAME@vX.Y.Z/sub/dir`` -> repo ``ORG/NAME``, revision, path in the repo."""
    match = HF_URL.match(url)
    if not match:
        raise ShardError(f"{url}: not an hf://datasets/ORG/NAME[@REVISION][/PATH] URL")
    return HfLocation(match["repo"], match["rev"] or "main", (match["path"] or "").strip("/"))


def hf_shard_urls(url: str) -> list[str]:
    """List the ``.tar`` files of a Hub dataset revision (under PATH, or under ``shards/`` if any)."""
    from huggingface_hub import HfApi

    loc = parse_hf_url(url)
    if loc.path.endswith(".tar"):
        return [url]
    try:
        api = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None)  # read now, not at import time
        files = api.list_repo_files(loc.repo_id, repo_type="dataset", revision=loc.revision)
    except Exception as exc:  # noqa: BLE001 - huggingface_hub raises many kinds; all mean "not there"
        raise ShardError(f"{url}: cannot list the dataset: {exc}") from None
    return [loc.url(f) for f in _pick_tars(files, loc.path)] or _no_shards(url)


def _pick_tars(files: list[str], prefix: str) -> list[str]:
    tars = sorted(f for f in files if f.endswith(".tar") and (not prefix or f.startswith(prefix + "/")))
    in_shards = [f for f in tars if f.rsplit("/", 2)[-2:-1] == ["shards"]]
    return in_shards or tars


def _no_shards(source: str) -> list[str]:
    raise ShardError(f"{source}: no shards (*.tar or shards/*.tar) found")


def resolve_shards(source: str | Path) -> list[str]:
    """Every shard URL or path of ``source``, sorted, so all ranks see the same list."""
    text = str(source)
    if text.startswith("hf://"):
        return hf_shard_urls(text)
    path = Path(text).expanduser()
    if not path.exists() and "@" in path.name:  # DIR@vX.Y.Z: a version of a local published folder
        name, _, version = path.name.rpartition("@")
        path = path.with_name(name) / "versions" / version
    if path.is_file():
        return [str(path)]
    if not path.is_dir():
        raise ShardError(f"{text}: no such file or folder")
    if (path / "manifest").is_dir() and not (path / "build.json").is_file():
        raise ShardError(f"{text}: incomplete build (interrupted while being written); run the build again")
    for folder in (path / "shards", path):
        tars = sorted(folder.glob("*.tar"))
        if tars:
            return [str(t) for t in tars]
    return _no_shards(text)


def open_shard(url: str) -> Any:
    """A readable binary stream for a shard path or URL (webdataset's gopen handles the schemes)."""
    from webdataset.gopen import gopen

    try:
        return gopen(url, "rb")
    except Exception as exc:  # noqa: BLE001
        raise ShardError(f"{url}: cannot open: {exc}") from None


def iter_raw_samples(url: str, exts: frozenset[str] | None = None) -> Iterator[dict[str, Any]]:
    """Samples of one shard as ``{"__key__", "__shard__", ext: bytes}`` in stored order; with ``exts``,
    other members (e.g. the audio) are skipped unread."""
    current: dict[str, Any] = {}
    key = None
    stream = open_shard(url)
    suffixes = None if exts is None else tuple(sorted("." + ext for ext in exts))  # a superset test
    try:
        for batch in iter_member_batches(stream, suffixes):
            for member, data in batch:
                name_key, _, ext = member.rpartition("/")[2].partition(".")
                if exts is not None and ext not in exts:
                    continue
                if name_key != key:
                    if current:
                        yield current
                    key, current = name_key, {"__key__": name_key, "__shard__": url}
                current[ext] = data
    except TarStreamError as exc:
        raise ShardError(f"{url}: corrupt tar after member {exc.after}: {exc}") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ShardError(f"{url}: cannot read: {exc}") from None
    finally:
        stream.close()
    if current:
        yield current


def load_codes(payload: bytes) -> np.ndarray:
    """A 1-d integer ``.npy`` array; the common little-endian header is parsed without ``np.load``."""
    start = 10 + int.from_bytes(payload[8:10], "little")
    layout = _npy_layout(payload[:start])
    if layout is not None and len(payload) - start == layout[1] * layout[0].itemsize:
        return np.frombuffer(payload, dtype=layout[0], offset=start)
    codes = np.load(io.BytesIO(payload), allow_pickle=False)
    if codes.ndim != 1 or codes.dtype.kind not in "iu":
        raise ValueError(f"expected a 1-d integer array, got {codes.dtype} {codes.shape}")
    return codes


@functools.lru_cache(maxsize=4096)
def _npy_layout(header: bytes) -> tuple[np.dtype, int] | None:
    """(dtype, length) of a version-1 ``.npy`` header for a 1-d little-endian integer array, else None.
    Cached: a build holds a few hundred distinct headers (one per sample length)."""
    match = _NPY_HEADER.match(header)
    return None if match is None else (np.dtype(match["descr"].decode()), int(match["n"]))


class Turn(msgspec.Struct):
    """One turn of a conversation (other keys of the turn are ignored)."""

    role: str
    content: str


class SampleJson(msgspec.Struct):
    """The fields of a sample's ``json`` member that training reads; the others are skipped unparsed."""

    conversations: list[Turn]
    id: str | int | None = None
    task: str | None = None


_SAMPLE_JSON = msgspec.json.Decoder(SampleJson)


def parse_json(payload: bytes) -> SampleJson:
    """Typed, selective decode (the metrics are skipped, not built). Python's ``json`` writes ``NaN``
    for a NaN metric, which is not JSON: such a member goes through ``json`` and is then checked the
    same way; a member that ``json`` cannot read either raises ``json``'s error."""
    try:
        return _SAMPLE_JSON.decode(payload)
    except msgspec.ValidationError:
        raise
    except msgspec.DecodeError:
        return msgspec.convert(json.loads(payload.decode("utf-8")), SampleJson)


@dataclass(slots=True)
class ShardSample:
    """What training needs from one sample: its id, task, conversation and, when the shard has a
    ``tokens.npy`` member, the sound codes stored there (checked against the conversation's text)."""

    id: str
    task: str
    conversations: list[Turn]
    codes: np.ndarray | None
    shard: str


PRETRAIN = "pretrain"
"""The task whose samples are one user turn of sound tokens alone (stage 1: no answer to train on)."""


def conversation_problem(turns: list[Turn], task: str = "") -> str | None:
    """Why ``turns`` is not an OpenAI-style chat (an optional system turn, then user and assistant
    turns alternating, user first and assistant last; a ``pretrain`` sample: one user turn), or None."""
    roles = [t.role for t in turns]
    if task == PRETRAIN:
        return None if roles == ["user"] else f"a {PRETRAIN} sample is one user turn, not {roles}"
    body = roles[1:] if roles and roles[0] == "system" else roles
    if not body:
        return "conversations has no user turn"
    for n, role in enumerate(body):
        want = "user" if n % 2 == 0 else "assistant"
        if role != want:
            return f"conversations turn {n + len(roles) - len(body)} is {role!r}, expected {want!r}"
    if body[-1] != "assistant":
        return "conversations does not end with an assistant turn"
    return None


def decode_sample(raw: dict[str, Any]) -> ShardSample:
    """Parse the ``json`` member (and ``tokens.npy`` if there); a broken one is a ShardError naming it."""
    try:
        payload = raw["json"]
    except KeyError as exc:
        raise ShardError(f"{_member(raw)}.{exc.args[0]}: missing") from None
    try:
        meta = parse_json(payload)
        problem = conversation_problem(meta.conversations, meta.task)
        if problem is not None:
            raise ValueError(problem)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise ShardError(f"{_member(raw)}.json: {exc}") from None
    codes = None
    if "tokens.npy" in raw:
        try:
            codes = load_codes(raw["tokens.npy"])
        except (ValueError, OSError, EOFError) as exc:
            raise ShardError(f"{_member(raw)}.tokens.npy: {exc}") from None
    sample_id = raw["__key__"] if meta.id is None else str(meta.id)
    return ShardSample(sample_id, meta.task or "", meta.conversations, codes, raw["__shard__"])


def _member(raw: dict[str, Any]) -> str:
    return f"{raw['__shard__']}: member {raw['__key__']}"
