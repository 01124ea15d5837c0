"""Llama 3 tokenizer with ``<|sound_start|>``, ``<|sound_end|>`` and ``<|sound_XXXX|>`` as single ids.

Two id layouts. ``append`` (the default): sound ids sit after the base BPE vocabulary *and* after every
existing special id (torchtune's stock map puts ``<|image|>`` at 128256), so nothing clashes; with
Llama 3 that is ``<|sound_start|>`` 128257, ``<|sound_end|>`` 128258, ``<|sound_0000|>`` 128259.
``ichigo``: the ids of Ichigo's released checkpoints, right after Llama 3's 256 special slots
(128256, 128257, then 128258 + code; see :func:`ichigo_special_tokens`), with torchtune's ``<|image|>``
moved into the free slot of the special block so it does not clash.
Shards carry the codes as integers: :meth:`SoundLlama3Tokenizer.sound_ids` maps them straight to ids;
the string form (``<|sound_0042|>``) encodes to the same ids through :meth:`encode`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tiktoken.load import load_tiktoken_bpe
from torchtune.models.llama3._tokenizer import LLAMA3_SPECIAL_TOKENS, Llama3Tokenizer
from torchtune.modules.transforms.tokenizers._tiktoken import MAX_NO_WHITESPACE_CHARS

SOUND_START = "<|sound_start|>"
SOUND_END = "<|sound_end|>"
DEFAULT_SOUND_CODES = 512  # dataengine's WhisperVQ codebook; Ichigo's checkpoints use 513 (+ mask code)
ICHIGO_SOUND_CODES = 513
LAYOUTS = ("append", "ichigo")
LLAMA3_SPECIAL_SLOTS = 256  # Llama 3 reserves ids base .. base + 255 for special tokens
_SOUND_PIECE = re.compile(r"(<\|sound_(?:start|end|\d{4})\|>)")


def sound_token(code: int) -> str:
    return f"<|sound_{code:04d}|>"


def sound_special_tokens(first_id: int, n_codes: int = DEFAULT_SOUND_CODES) -> dict[str, int]:
    """``<|sound_start|>``, ``<|sound_end|>`` then one token per code, numbered from ``first_id``."""
    tokens = {SOUND_START: first_id, SOUND_END: first_id + 1}
    tokens.update({sound_token(c): first_id + 2 + c for c in range(n_codes)})
    return tokens


def with_sound_tokens(
    base_special: dict[str, int], base_vocab_size: int, n_codes: int = DEFAULT_SOUND_CODES
) -> dict[str, int]:
    """The special-token map plus sound tokens placed after every existing id (kept if already there)."""
    if SOUND_START in base_special:
        missing = [sound_token(c) for c in range(n_codes) if sound_token(c) not in base_special]
        if missing or SOUND_END not in base_special:
            raise ValueError(f"special-token map has {SOUND_START} but lacks {(missing or [SOUND_END])[0]}")
        return dict(base_special)
    first = max(base_vocab_size, max(base_special.values(), default=-1) + 1)
    return {**base_special, **sound_special_tokens(first, n_codes)}


def ichigo_special_tokens(
    base_special: dict[str, int], base_vocab_size: int, n_codes: int = ICHIGO_SOUND_CODES
) -> dict[str, int]:
    """Ichigo's layout: ``<|sound_start|>`` and ``<|sound_end|>`` at ``base + 256`` and ``+ 1``, codes after.

    Where the numbers come from (Llama 3: base 128000): janhq's torchtune fork,
    ``torchtune/models/llama3/_tokenizer_custom.py``, sets ``SPECIAL_SOUND_TOKENS`` to
    ``128013 + len(RESERVED_TOKENS)`` = 128013 + 243 = 128256 and 128257, and its
    ``modules/tokenizers/llama3_s_tiktoken.py`` numbers ``<|sound_XXXX|>`` from ``len(mergeable_ranks) +
    len(special_tokens)`` = 128000 + 258 = 128258; its ``llama3_1_s_8b`` builder has ``vocab_size=128_771``
    (= 128258 + 513 codes) for v0.3/v0.4. The Hub checkpoints' ``tokenizer.json`` were made as the
    homebrewltd/ichigo README shows: ``add_special_tokens`` of the two markers onto Llama 3.1's 128,256
    ids, then ``add_tokens`` of the 513 sound tokens, which gives the same ids.

    Sound tokens already in ``base_special`` must sit at those ids. Any other special token at or past
    ``base + 256`` (torchtune's ``<|image|>`` at 128256) moves to the lowest free id of the special block
    (128011, where torchtune kept ``<|image|>`` when Ichigo was trained); ``<|image|>``, which torchtune's
    Llama 3 tokenizer requires, is added there when missing (a Hugging Face map), taking the place of a
    ``<|reserved_special_token_N|>`` if the block is full.
    """
    first = base_vocab_size + LLAMA3_SPECIAL_SLOTS
    wanted = sound_special_tokens(first, n_codes)
    specials = {}
    for token, token_id in base_special.items():
        if _SOUND_PIECE.fullmatch(token):
            if wanted.get(token, token_id) != token_id:
                raise ValueError(
                    f"special-token map has {token} at {token_id}; Ichigo's layout puts it at {wanted[token]}"
                )
            continue
        specials[token] = token_id
    movers = sorted((i, t) for t, i in specials.items() if i >= first)
    if "<|image|>" not in specials:
        movers.append((-1, "<|image|>"))
    for _, token in movers:
        specials.pop(token, None)
        specials[token] = _free_special_id(specials, base_vocab_size, first, token)
    return {**specials, **wanted}


def _free_special_id(specials: dict[str, int], low: int, high: int, token: str) -> int:
    used = set(specials.values())
    free = [i for i in range(low, high) if i not in used]
    if free:
        return free[0]
    reserved = sorted(i for t, i in specials.items() if t.startswith("<|reserved_special_token_"))
    if not reserved:
        raise ValueError(f"no free id in the special block {low}..{high - 1} for {token}")
    holder = next(t for t, i in specials.items() if i == reserved[0])
    del specials[holder]
    return reserved[0]


def layout_special_tokens(
    base_special: dict[str, int], base_vocab_size: int, n_codes: int, layout: str = "append"
) -> dict[str, int]:
    """The special-token map with sound tokens in ``layout`` (``append`` or ``ichigo``)."""
    if layout == "ichigo":
        return ichigo_special_tokens(base_special, base_vocab_size, n_codes)
    if layout != "append":
        raise ValueError(f"unknown sound-token layout {layout!r} (choose {' or '.join(LAYOUTS)})")
    return with_sound_tokens(base_special, base_vocab_size, n_codes)


def load_special_tokens(path: str | Path) -> dict[str, int]:
    """A Hugging Face ``tokenizer.json`` style file: ``{"added_tokens": [{"id": …, "content": …}]}``."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return {t["content"]: int(t["id"]) for t in data["added_tokens"]}


def write_special_tokens(tokens: dict[str, int], path: str | Path) -> None:
    """Write ``tokens`` in the format :func:`load_special_tokens` and torchtune's builders read."""
    added = [
        {"id": i, "content": s, "special": True} for s, i in sorted(tokens.items(), key=lambda kv: kv[1])
    ]
    Path(path).write_text(json.dumps({"added_tokens": added}, indent=1) + "\n", encoding="utf-8")


class SoundLlama3Tokenizer(Llama3Tokenizer):
    """torchtune's Llama 3 tokenizer whose sound tokens are single ids, in text and from codes."""

    def __init__(
        self,
        path: str,
        special_tokens: dict[str, int] | None = None,
        n_sound_codes: int = DEFAULT_SOUND_CODES,
        max_seq_len: int | None = None,
        layout: str = "append",
    ) -> None:
        base_vocab_size = len(load_tiktoken_bpe(path))
        n_layout = max(n_sound_codes, ICHIGO_SOUND_CODES) if layout == "ichigo" else n_sound_codes
        specials = layout_special_tokens(
            dict(special_tokens or LLAMA3_SPECIAL_TOKENS), base_vocab_size, n_layout, layout
        )
        super().__init__(path, special_tokens=specials, max_seq_len=max_seq_len)
        self.n_sound_codes = n_sound_codes
        self.sound_start_id = specials[SOUND_START]
        self.sound_end_id = specials[SOUND_END]
        self.sound_code_base = specials[sound_token(0)]
        self._sound_ids = {s: i for s, i in specials.items() if _SOUND_PIECE.fullmatch(s)}

    @property
    def vocab_size(self) -> int:
        """Model embedding rows needed: one past the largest id."""
        return max(self.special_tokens.values()) + 1

    def sound_ids(self, codes: Sequence[int] | np.ndarray) -> list[int]:
        """``<|sound_start|>`` + one id per code + ``<|sound_end|>``, without building any string."""
        codes = np.asarray(codes, dtype=np.int64)
        if codes.size and (codes.min() < 0 or codes.max() >= self.n_sound_codes):
            raise ValueError(f"sound code out of range 0..{self.n_sound_codes - 1}")
        return [self.sound_start_id, *(codes + self.sound_code_base).tolist(), self.sound_end_id]

    def encode(self, text: str, add_bos: bool = True, add_eos: bool = True) -> list[int]:
        """Llama 3's encode (same ids, same empty-text rule), but each sound token is its single id."""
        if not text:
            return []
        ids = [self.bos_id] if add_bos else []
        if "<|sound_" in text:
            for n, piece in enumerate(_SOUND_PIECE.split(text)):
                if n % 2:
                    ids.append(self._sound_ids[piece])
                elif piece:
                    ids += self._encode_plain(piece)
        else:
            ids += self._encode_plain(text)
        return ids + [self.eos_id] if add_eos else ids

    def _encode_plain(self, text: str) -> list[int]:
        # torchtune only splits runs longer than MAX_NO_WHITESPACE_CHARS; shorter text goes to tiktoken whole.
        if len(text) <= MAX_NO_WHITESPACE_CHARS:
            return self.tt_model.tt_model.encode(text, allowed_special=set(), disallowed_special=())
        return self.tt_model.encode(text, add_bos=False, add_eos=False)


def sound_llama3_tokenizer(
    path: str,
    special_tokens_path: str | None = None,
    n_sound_codes: int = DEFAULT_SOUND_CODES,
    max_seq_len: int | None = None,
    layout: str = "append",
) -> SoundLlama3Tokenizer:
    """Config builder: ``path`` is Llama 3's ``tokenizer.model``; ``special_tokens_path`` an optional
    ``tokenizer.json``-style file (the one ``dataengine train resize-vocab`` writes: its sound ids win);
    ``layout`` (``append`` or ``ichigo``) places the sound tokens when that map has none, and with
    ``ichigo`` checks that the ones it has sit at Ichigo's ids."""
    specials = load_special_tokens(special_tokens_path) if special_tokens_path else None
    return SoundLlama3Tokenizer(
        path, special_tokens=specials, n_sound_codes=n_sound_codes, max_seq_len=max_seq_len, layout=layout
    )
