"""Ids and labels of shard samples, equal to what torchtune's ``tokenize_messages`` + ``SFTDataset``
make from the conversation text (``<|sound_XXXX|>`` as single ids), built without per-token Python.

Any conversation (an optional system turn, then user/assistant turns: single-turn instruction or
transcription, noise refusals, multi-turn, text only) becomes a run of *pieces*:

    bos | per turn: header(role) | body | eot | eos

A user turn with a sound span has the body pieces ``text before | sound_start | codes | sound_end |
text after``; every other body is the turn's stripped content as one text. Pieces come from three
places: a table of id lists tokenized once (the fixed pieces, and the texts around a sound span: the
transcription requests are few, so the table stays small and bounded); the block's other texts
(answers, text-only turns), tokenized by one tiktoken call, joined by a special token (tiktoken encodes
the text between two allowed special tokens on its own, so each piece gets exactly its own ids); and
the sound codes, read from the block's sound spans in one numpy pass (every ``<|sound_XXXX|>`` is 14
bytes) and checked against ``tokens.npy`` where the shard has it. numpy then scatters every piece to
its place and masks the labels: user and system turns unless ``train_on_input``, bos and eos always;
every assistant turn (header, answer, eot) is trained on. Per turn, Python only slices strings.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torchtune.data import CROSS_ENTROPY_IGNORE_IDX, Message
from torchtune.modules.transforms.tokenizers._tiktoken import MAX_NO_WHITESPACE_CHARS

from training.shards import ShardError, ShardSample
from training.tokenizer import SOUND_END, SOUND_START, SoundLlama3Tokenizer

SOUND_CHARS = len("<|sound_0000|>")
START_CHARS, END_CHARS = len(SOUND_START), len(SOUND_END)
SEPARATOR = "<|eot_id|>"  # any special token of the tokenizer would do
MAX_REQUESTS = 4096  # distinct texts around sound spans kept in the table; more are tokenized each time
IN_TEXT = -1  # table index of a text tokenized with the block's answers
TABLE, TEXT, CODES = 0, 1, 2  # where a piece's ids come from
ROLES = ("system", "user", "assistant")
_PREFIX, _SUFFIX = np.frombuffer(b"<|sound_", np.uint8), np.frombuffer(b"|>", np.uint8)
_PLACES = np.array([1000, 100, 10, 1], dtype=np.int64)


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The indices ``start, start+1, …, start+length-1`` of every range, concatenated."""
    ends = np.cumsum(lengths)
    return np.arange(ends[-1] if len(ends) else 0) + np.repeat(starts - (ends - lengths), lengths)


class _Pieces:
    """The pieces of a block, in order: where each comes from, which entry, and whether it is trained."""

    def __init__(self) -> None:
        self.kinds: list[int] = []
        self.refs: list[int] = []
        self.trained: list[bool] = []
        self.texts: list[str] = []
        self.spans: list[str] = []
        self.span_owner: list[tuple[int, int]] = []  # (sample, turn) of each span

    def add(self, kind: int, ref: int, trained: bool) -> None:
        self.kinds.append(kind)
        self.refs.append(ref)
        self.trained.append(trained)

    def text(self, text: str, trained: bool) -> None:
        self.add(TEXT, len(self.texts), trained)
        self.texts.append(text)


class ConversationEncoder:
    """``encode_block(samples)`` -> one (token ids, labels) pair of int64 arrays per sample."""

    def __init__(
        self, tokenizer: SoundLlama3Tokenizer, max_seq_len: int | None = None, train_on_input: bool = False
    ) -> None:
        self.tokenizer = tokenizer
        self.max_seq_len = max_seq_len
        self.train_on_input = train_on_input
        self._table_ids: list[list[int]] = []
        self._table: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._request_index: dict[str, int] = {}
        fixed = {
            "bos": [tokenizer.bos_id],
            "eos": [tokenizer.eos_id],
            "eot": [tokenizer.eot_id],
            "start": [tokenizer.sound_start_id],
            "end": [tokenizer.sound_end_id],
        }
        fixed.update({role: tokenizer._tokenize_header(Message(role=role, content="")) for role in ROLES})
        self.fixed = {name: self._add_ids(ids) for name, ids in fixed.items()}
        self.separator_id = tokenizer.special_tokens[SEPARATOR]
        self.code_base, self.n_codes = tokenizer.sound_code_base, tokenizer.n_sound_codes

    def encode(self, sample: ShardSample) -> tuple[np.ndarray, np.ndarray]:
        return self.encode_block([sample])[0]

    def encode_block(self, samples: Sequence[ShardSample]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Token ids and labels (``CROSS_ENTROPY_IGNORE_IDX`` where not trained on) of each sample,
        truncated as torchtune truncates: keep the head, end on eos, the last label ignored."""
        if not samples:
            return []
        pieces, firsts = _Pieces(), []
        for n, sample in enumerate(samples):
            firsts.append(len(pieces.kinds))
            self._sample_pieces(pieces, n, sample)
        kinds = np.array(pieces.kinds, dtype=np.int8)
        refs = np.array(pieces.refs, dtype=np.int64)
        trained = np.array(pieces.trained, dtype=bool)
        text_ids, text_lengths = self._tokenize(pieces.texts)
        codes, code_lengths = self._parse_spans(pieces, samples)
        self._check_stored_codes(samples, pieces, codes, code_lengths)
        table_ids, table_starts, table_lengths = self._request_table()

        tabled, texted, coded = kinds == TABLE, kinds == TEXT, kinds == CODES
        lengths = np.empty(len(kinds), dtype=np.int64)
        lengths[tabled] = table_lengths[refs[tabled]]
        lengths[texted] = text_lengths
        lengths[coded] = code_lengths
        starts = np.cumsum(lengths) - lengths
        tokens = np.empty(int(lengths.sum()), dtype=np.int64)
        tokens[_ranges(starts[tabled], lengths[tabled])] = table_ids[
            _ranges(table_starts[refs[tabled]], lengths[tabled])
        ]
        tokens[_ranges(starts[texted], lengths[texted])] = text_ids
        tokens[_ranges(starts[coded], lengths[coded])] = codes + self.code_base
        labels = tokens.copy()
        labels[_ranges(starts[~trained], lengths[~trained])] = CROSS_ENTROPY_IGNORE_IDX

        first = starts[np.array(firsts)]
        sizes = np.diff(np.append(first, len(tokens)))
        out = []
        limit = self.max_seq_len
        for begin, size in zip(first.tolist(), sizes.tolist(), strict=True):
            if limit is not None and size > limit:
                out.append(self._truncated(tokens[begin : begin + limit], labels[begin : begin + limit]))
            else:
                out.append((tokens[begin : begin + size], labels[begin : begin + size]))
        return out

    def _sample_pieces(self, pieces: _Pieces, n: int, sample: ShardSample) -> None:
        fixed, lookup = self.fixed, self._request_index.get
        pieces.add(TABLE, fixed["bos"], False)
        for t, turn in enumerate(sample.conversations):
            role, content = turn.role, turn.content.strip()
            train = role == "assistant" or self.train_on_input
            pieces.add(TABLE, fixed[role], train)
            start = content.find(SOUND_START) if role == "user" else -1
            end = content.rfind(SOUND_END) if start >= 0 else -1
            if end > start:
                for text in (content[:start], None, content[end + END_CHARS :]):
                    if text is None:  # the sound span itself
                        pieces.add(TABLE, fixed["start"], train)
                        pieces.add(CODES, len(pieces.spans), train)
                        pieces.add(TABLE, fixed["end"], train)
                        pieces.spans.append(content[start + START_CHARS : end])
                        pieces.span_owner.append((n, t))
                    elif text:
                        index = lookup(text)
                        if index is None:
                            index = self._add_request(text)
                        if index == IN_TEXT:
                            pieces.text(text, train)
                        else:
                            pieces.add(TABLE, index, train)
            else:
                pieces.text(content, train)
            pieces.add(TABLE, fixed["eot"], train)
        pieces.add(TABLE, fixed["eos"], False)

    def _truncated(self, tokens: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        tokens, labels = tokens.copy(), labels.copy()
        tokens[-1], labels[-1] = self.tokenizer.eos_id, CROSS_ENTROPY_IGNORE_IDX
        return tokens, labels

    def _add_ids(self, ids: list[int]) -> int:
        self._table_ids.append(list(ids))
        self._table = None
        return len(self._table_ids) - 1

    def _add_request(self, text: str) -> int:
        if len(self._request_index) >= MAX_REQUESTS:
            return IN_TEXT
        index = self._add_ids(self.tokenizer.encode(text, add_bos=False, add_eos=False))
        self._request_index[text] = index
        return index

    def _request_table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All table ids concatenated, and each entry's start and length in there."""
        if self._table is None:
            lengths = np.array([len(ids) for ids in self._table_ids], dtype=np.int64)
            flat = np.array([i for ids in self._table_ids for i in ids], dtype=np.int64)
            self._table = flat, np.cumsum(lengths) - lengths, lengths
        return self._table

    def _tokenize(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """All texts' ids concatenated, and each text's number of ids."""
        if not texts:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        joined = SEPARATOR.join(texts)
        if (
            "<|sound_" in joined
            or joined.count(SEPARATOR) != len(texts) - 1
            or max(map(len, texts)) > MAX_NO_WHITESPACE_CHARS
        ):  # sound tokens as text, the separator as text, long runs: each text on the reference path
            pieces = [self.tokenizer.encode(text, add_bos=False, add_eos=False) for text in texts]
            flat = np.array([i for p in pieces for i in p], dtype=np.int64)
            return flat, np.array([len(p) for p in pieces], dtype=np.int64)
        model = self.tokenizer.tt_model.tt_model
        ids = np.array(
            model.encode(joined, allowed_special={SEPARATOR}, disallowed_special=()), dtype=np.int64
        )
        at = np.flatnonzero(ids == self.separator_id)
        lengths = np.diff(np.concatenate(([-1], at, [len(ids)]))) - 1
        return np.delete(ids, at), lengths

    def _parse_spans(self, pieces: _Pieces, samples: Sequence[ShardSample]) -> tuple[np.ndarray, np.ndarray]:
        """The codes of every sound span (``<|sound_0042|>…``, 14 ASCII bytes each) and their counts."""
        spans = pieces.spans
        if not spans:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        chars = np.fromiter(map(len, spans), dtype=np.int64, count=len(spans))
        counts = chars // SOUND_CHARS

        def fail(span: int, why: str) -> ShardError:
            n, t = pieces.span_owner[span]
            sample = samples[n]
            return ShardError(f"{sample.shard}: member {sample.id}.json: turn {t}: {why}")

        uneven = np.flatnonzero(chars % SOUND_CHARS)
        if uneven.size:
            raise fail(int(uneven[0]), "the sound span is not a run of <|sound_XXXX|> tokens")
        try:
            raw = "".join(spans).encode("ascii")
        except UnicodeEncodeError:
            bad = next(i for i, span in enumerate(spans) if not span.isascii())
            raise fail(bad, "the sound span is not a run of <|sound_XXXX|> tokens") from None
        grid = np.frombuffer(raw, dtype=np.uint8).reshape(-1, SOUND_CHARS)
        digits = grid[:, 8:12] - np.uint8(48)  # wraps below "0", so one bound checks both sides
        ok = (grid[:, :8] == _PREFIX).all(1) & (grid[:, 12:] == _SUFFIX).all(1) & (digits <= 9).all(1)
        span_of_row = np.repeat(np.arange(len(spans)), counts)
        if not ok.all():
            row = int(np.argmin(ok))
            raise fail(int(span_of_row[row]), "the sound span is not a run of <|sound_XXXX|> tokens")
        codes = digits.astype(np.int64) @ _PLACES
        high = np.flatnonzero(codes >= self.n_codes)
        if high.size:
            code = int(codes[high[0]])
            raise fail(int(span_of_row[high[0]]), f"sound code {code} out of range 0..{self.n_codes - 1}")
        return codes, counts

    def _check_stored_codes(
        self, samples: Sequence[ShardSample], pieces: _Pieces, codes: np.ndarray, counts: np.ndarray
    ) -> None:
        """Where a sample has ``tokens.npy``, it must hold the codes of its spoken turns, in order."""
        stored = [s.codes is not None for s in samples]
        if not any(stored):
            return
        owner = np.array([n for n, _ in pieces.span_owner], dtype=np.int64)
        in_text = np.bincount(owner, weights=counts, minlength=len(samples)).astype(np.int64)
        for n, sample in enumerate(samples):
            if sample.codes is not None and len(sample.codes) != in_text[n]:
                raise ShardError(
                    f"{sample.shard}: member {sample.id}: json holds {in_text[n]} sound tokens, "
                    f"tokens.npy {len(sample.codes)}"
                )
        keep = np.array(stored)[np.repeat(owner, counts)] if len(owner) else np.zeros(0, dtype=bool)
        flat = [s.codes for s in samples if s.codes is not None]
        npy = np.concatenate(flat).astype(np.int64) if flat else np.empty(0, dtype=np.int64)
        differ = np.flatnonzero(codes[keep] != npy)
        if differ.size:
            ends = np.cumsum([len(c) for c in flat])
            with_npy = [s for s in samples if s.codes is not None]
            sample = with_npy[int(np.searchsorted(ends, differ[0], "right"))]
            raise ShardError(f"{sample.shard}: member {sample.id}: json and tokens.npy hold different codes")


def tokenize_conversation(
    tokenizer: SoundLlama3Tokenizer, sample: ShardSample, train_on_input: bool
) -> tuple[list[int], list[bool]]:
    """As torchtune's ``tokenize_messages`` on the string form: ids and mask (True = not trained on)."""
    tokens, labels = ConversationEncoder(tokenizer, train_on_input=train_on_input).encode(sample)
    return tokens.tolist(), (labels == CROSS_ENTROPY_IGNORE_IDX).tolist()
