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
TABLE, TEXT, CODES = 0, 1, 2  # where a piece's ids come from; a piece is packed into one int:
# ref << 3 | kind << 1 | trained (ref: index into the table, the block's texts or its sound spans)
ROLES = ("system", "user", "assistant")
_SOUND_ROW = np.dtype([("prefix", "<u8"), ("digits", "u1", (4,)), ("suffix", "<u2")])  # one token
_PREFIX = np.frombuffer(b"<|sound_", "<u8")[0]
_SUFFIX = np.frombuffer(b"|>", "<u2")[0]
_PLACES = np.array([1000, 100, 10, 1], dtype=np.int64)


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The indices ``start, start+1, …, start+length-1`` of every range, concatenated."""
    ends = np.cumsum(lengths)
    return np.arange(ends[-1] if len(ends) else 0) + np.repeat(starts - (ends - lengths), lengths)


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
        self._packed = tuple(  # per trained flag: fixed piece name -> packed piece
            {name: i << 3 | TABLE << 1 | tr for name, i in self.fixed.items()} for tr in (0, 1)
        )
        self.separator_id = tokenizer.special_tokens[SEPARATOR]
        self.code_base, self.n_codes = tokenizer.sound_code_base, tokenizer.n_sound_codes

    def encode(self, sample: ShardSample) -> tuple[np.ndarray, np.ndarray]:
        return self.encode_block([sample])[0]

    def encode_block(self, samples: Sequence[ShardSample]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Token ids and labels (``CROSS_ENTROPY_IGNORE_IDX`` where not trained on) of each sample,
        truncated as torchtune truncates: keep the head, end on eos, the last label ignored."""
        if not samples:
            return []
        pieces: list[int] = []  # packed, in order
        texts: list[str] = []  # the TEXT pieces' texts, in order
        spans: list[str] = []  # the CODES pieces' sound spans (between the markers), in order
        owners: list[tuple[int, int]] = []  # (sample, turn) of each span
        firsts: list[int] = []  # each sample's first piece
        for n, sample in enumerate(samples):
            firsts.append(len(pieces))
            self._sample_pieces(n, sample, pieces, texts, spans, owners)
        packed = np.array(pieces, dtype=np.int64)
        kinds, refs, trained = (packed >> 1) & 3, packed >> 3, (packed & 1).astype(bool)
        text_ids, text_lengths = self._tokenize(texts)
        codes, code_lengths = self._parse_spans(spans, owners, samples)
        self._check_stored_codes(samples, owners, codes, code_lengths)
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

    def _sample_pieces(
        self,
        n: int,
        sample: ShardSample,
        pieces: list[int],
        texts: list[str],
        spans: list[str],
        owners: list[tuple[int, int]],
    ) -> None:
        """Append the sample's pieces (packed ints; see ``TABLE``) -- the only per-turn Python."""
        packed, add, extend, all_trained = self._packed, pieces.append, pieces.extend, self.train_on_input
        add(packed[0]["bos"])
        for t, turn in enumerate(sample.conversations):
            role, content = turn.role, turn.content.strip()
            tr = 1 if all_trained or role == "assistant" else 0
            fixed = packed[tr]
            add(fixed[role])
            start = content.find(SOUND_START) if role == "user" else -1
            end = content.rfind(SOUND_END) if start >= 0 else -1
            if end > start:
                if start:
                    add(self._text_piece(content[:start], tr, texts))
                extend((fixed["start"], len(spans) << 3 | CODES << 1 | tr, fixed["end"]))
                spans.append(content[start + START_CHARS : end])
                owners.append((n, t))
                if end + END_CHARS < len(content):
                    add(self._text_piece(content[end + END_CHARS :], tr, texts))
            else:
                add(len(texts) << 3 | TEXT << 1 | tr)
                texts.append(content)
            add(fixed["eot"])
        add(packed[0]["eos"])

    def _text_piece(self, text: str, tr: int, texts: list[str]) -> int:
        """A text beside a sound span: from the table (requests repeat), else with the block's texts."""
        index = self._request_index.get(text)
        if index is None:
            index = self._add_request(text)
        if index == IN_TEXT:
            texts.append(text)
            return (len(texts) - 1) << 3 | TEXT << 1 | tr
        return index << 3 | TABLE << 1 | tr

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

    def _parse_spans(
        self, spans: list[str], owners: list[tuple[int, int]], samples: Sequence[ShardSample]
    ) -> tuple[np.ndarray, np.ndarray]:
        """The codes of every sound span (``<|sound_0042|>…``, 14 ASCII bytes each) and their counts."""
        if not spans:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        chars = np.fromiter(map(len, spans), dtype=np.int64, count=len(spans))
        counts = chars // SOUND_CHARS

        def fail(span: int, why: str) -> ShardError:
            n, t = owners[span]
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
        rows = np.frombuffer(raw, dtype=_SOUND_ROW)
        digits = rows["digits"] - np.uint8(48)  # wraps below "0", so one bound checks both sides
        span_of_row = np.repeat(np.arange(len(spans)), counts)
        prefix_ok, suffix_ok = rows["prefix"] == _PREFIX, rows["suffix"] == _SUFFIX
        if not (prefix_ok.all() and suffix_ok.all() and digits.max(initial=0) <= 9):
            row = int(np.argmax(~prefix_ok | ~suffix_ok | (digits > 9).any(1)))
            raise fail(int(span_of_row[row]), "the sound span is not a run of <|sound_XXXX|> tokens")
        codes = digits.astype(np.int64) @ _PLACES
        high = np.flatnonzero(codes >= self.n_codes)
        if high.size:
            code = int(codes[high[0]])
            raise fail(int(span_of_row[high[0]]), f"sound code {code} out of range 0..{self.n_codes - 1}")
        return codes, counts

    def _check_stored_codes(
        self,
        samples: Sequence[ShardSample],
        owners: list[tuple[int, int]],
        codes: np.ndarray,
        counts: np.ndarray,
    ) -> None:
        """Where a sample has ``tokens.npy``, it must hold the codes of its spoken turns, in order."""
        stored = [s.codes is not None for s in samples]
        if not any(stored):
            return
        owner = np.array([n for n, _ in owners], dtype=np.int64)
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
