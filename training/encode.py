"""Ids and labels of shard samples, equal to what torchtune's ``tokenize_messages`` + ``SFTDataset``
make from the conversation text (``<|sound_XXXX|>`` as single ids), built without per-token Python.

Any conversation (an optional system turn, then user/assistant turns: single-turn instruction or
transcription, noise refusals, multi-turn, text only) becomes a run of *pieces*:

    bos | per turn: header(role) | body | eot | eos

A user turn with a sound span has the body pieces ``text before | sound_start | codes | sound_end |
text after``; every other body is the turn's stripped content as one text. Pieces come from three
places: a table of id lists tokenized once (runs of fixed pieces, e.g. ``bos + user header +
sound_start``, and the texts around a sound span: the transcription requests are few, so the table
stays small and bounded); the block's other texts (answers, text-only turns), tokenized by one tiktoken
call, joined by a special token (tiktoken encodes the text between two allowed special tokens on its
own, so each piece gets exactly its own ids); and the sound codes: the sample's ``tokens.npy`` where
the shard has one (the spans must hold that many tokens), else the spans' text, parsed in one numpy
pass (every ``<|sound_XXXX|>`` is 14 bytes). numpy then scatters every piece to its place and masks
the labels: user and system turns unless ``train_on_input``, bos and eos always; every assistant turn
(header, answer, eot) is trained on. Per turn, Python only slices strings.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from dataengine.training.shards import ShardError, ShardSample
from dataengine.training.tokenizer import SOUND_END, SOUND_START, SoundLlama3Tokenizer
from torchtune.data import CROSS_ENTROPY_IGNORE_IDX, Message
from torchtune.modules.transforms.tokenizers._tiktoken import MAX_NO_WHITESPACE_CHARS

SOUND_CHARS = len("<|sound_0000|>")
START_CHARS, END_CHARS = len(SOUND_START), len(SOUND_END)
SEPARATOR = "<|eot_id|>"  # any special token of the tokenizer would do
MAX_REQUESTS = 4096  # distinct texts around sound spans kept in the table; more are tokenized each time
IN_TEXT = -1  # table index of a text tokenized with the block's answers
TABLE, TEXT, CODES = 0, 1, 2  # where a piece's ids come from; a piece is packed into one int:
# ref << 3 | kind << 1 | trained (ref: index into the table, the block's texts or its sound spans)
ROLES = ("system", "user", "assistant")
_HEADER = {"system": "y", "user": "u", "assistant": "a"}
_TEXT_TAG, _CODES_TAG = TEXT << 1, CODES << 1
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
        self.fixed = {  # one letter per fixed piece; a run of them becomes one table entry
            "b": [tokenizer.bos_id],
            "z": [tokenizer.eos_id],
            "t": [tokenizer.eot_id],
            "s": [tokenizer.sound_start_id],
            "e": [tokenizer.sound_end_id],
        }
        self.fixed.update(
            {_HEADER[role]: tokenizer._tokenize_header(Message(role=role, content="")) for role in ROLES}
        )
        self._runs: tuple[dict[str, int], dict[str, int]] = ({}, {})  # per trained flag: run -> piece
        self._add_ids([])  # table entry 0 stays empty, so no packed piece is 0 (falsy in ``runs.get() or``)
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
        spans: list[str | int] = []  # each CODES piece's sound span: its text, or (tokens.npy) its length
        owners: list[tuple[int, int]] = []  # (sample, turn) of each span
        firsts: list[int] = []  # each sample's first piece
        for n, sample in enumerate(samples):
            firsts.append(len(pieces))
            self._sample_pieces(n, sample, pieces, texts, spans, owners)
        packed = np.array(pieces, dtype=np.int64)
        kinds, refs, trained = (packed >> 1) & 3, packed >> 3, (packed & 1).astype(bool)
        text_ids, text_lengths = self._tokenize(texts)
        codes, code_lengths = self._block_codes(spans, owners, samples)
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
        labels[first] = labels[first + sizes - 1] = CROSS_ENTROPY_IGNORE_IDX  # bos, eos
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
        spans: list[str | int],
        owners: list[tuple[int, int]],
    ) -> None:
        """Append the sample's pieces (packed ints; see ``TABLE``) -- the only per-turn Python."""
        runs, add, all_trained = self._runs, pieces.append, self.train_on_input
        stored = sample.codes is not None  # tokens.npy gives the codes: the span only needs its length
        run, run_tr = "b", 0  # fixed pieces not yet added; bos and eos lose their label by position
        for t, turn in enumerate(sample.conversations):
            role, content = turn.role, turn.content.strip()
            tr = 1 if all_trained or role == "assistant" else 0
            if tr != run_tr and run != "b":
                add(runs[run_tr].get(run) or self._run(run, run_tr))
                run = ""
            run, run_tr, fixed = run + _HEADER[role], tr, runs[tr]
            start = content.find(SOUND_START) if role == "user" else -1
            end = content.rfind(SOUND_END) if start >= 0 else -1
            if end > start:
                if start:
                    add(fixed.get(run) or self._run(run, tr))
                    add(self._text_piece(content[:start], tr, texts))
                    run = ""
                run += "s"
                add(fixed.get(run) or self._run(run, tr))
                add(len(spans) << 3 | _CODES_TAG | tr)
                spans.append(end - start - START_CHARS if stored else content[start + START_CHARS : end])
                owners.append((n, t))
                run = "e"
                if end + END_CHARS < len(content):
                    add(fixed.get(run) or self._run(run, tr))
                    add(self._text_piece(content[end + END_CHARS :], tr, texts))
                    run = ""
            else:
                add(fixed.get(run) or self._run(run, tr))
                add(len(texts) << 3 | _TEXT_TAG | tr)
                texts.append(content)
                run = ""
            run += "t"
        run += "z"
        add(runs[run_tr].get(run) or self._run(run, run_tr))

    def _run(self, run: str, tr: int) -> int:
        """The packed piece of a run of fixed pieces (their ids joined), made once per run and flag."""
        index = self._add_ids([i for letter in run for i in self.fixed[letter]])
        self._runs[tr][run] = index << 3 | TABLE << 1 | tr
        return self._runs[tr][run]

    def _text_piece(self, text: str, tr: int, texts: list[str]) -> int:
        """A text beside a sound span: from the table (requests repeat), else with the block's texts."""
        index = self._request_index.get(text)
        if index is None:
            index = self._add_request(text)
        if index == IN_TEXT:
            texts.append(text)
            return (len(texts) - 1) << 3 | _TEXT_TAG | tr
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

    def _block_codes(
        self, spans: list[str | int], owners: list[tuple[int, int]], samples: Sequence[ShardSample]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Every span's codes, concatenated, and their counts. A sample's codes come from its
        ``tokens.npy`` when the shard has one (its spans must hold that many tokens, in order), else
        from the text of its spans."""
        if not spans:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)

        def fail(span: int, why: str) -> ShardError:
            n, t = owners[span]
            return ShardError(f"{samples[n].shard}: member {samples[n].id}.json: turn {t}: {why}")

        chars = np.fromiter(
            (s if s.__class__ is int else len(s) for s in spans), dtype=np.int64, count=len(spans)
        )
        uneven = np.flatnonzero(chars % SOUND_CHARS)
        if uneven.size:
            raise fail(int(uneven[0]), "the sound span is not a run of <|sound_XXXX|> tokens")
        counts = chars // SOUND_CHARS
        texts = [(i, s) for i, s in enumerate(spans) if s.__class__ is str]
        parsed = self._parse_text(texts, counts, fail)
        per_sample = np.bincount([n for n, _ in owners], weights=counts, minlength=len(samples))
        parts, at = [], 0
        for n, sample in enumerate(samples):
            count = int(per_sample[n])
            if sample.codes is None:
                parts.append(parsed[at : at + count])
                at += count
            elif len(sample.codes) != count:
                raise ShardError(
                    f"{sample.shard}: member {sample.id}: json holds {count} sound tokens, "
                    f"tokens.npy {len(sample.codes)}"
                )
            else:
                parts.append(sample.codes)
        codes = np.concatenate(parts).astype(np.int64)
        if codes.size and (codes.min() < 0 or codes.max() >= self.n_codes):
            row = int(np.argmax((codes < 0) | (codes >= self.n_codes)))
            sample = samples[int(np.searchsorted(np.cumsum(per_sample), row, side="right"))]
            where = "tokens.npy" if sample.codes is not None else "json"
            raise ShardError(
                f"{sample.shard}: member {sample.id}.{where}: sound code {int(codes[row])} "
                f"out of range 0..{self.n_codes - 1}"
            )
        return codes, counts

    @staticmethod
    def _parse_text(texts: list[tuple[int, str]], counts: np.ndarray, fail) -> np.ndarray:  # noqa: ANN001
        """The codes written in sound spans (``<|sound_0042|>``: 14 ASCII bytes each), one numpy pass."""
        if not texts:
            return np.empty(0, dtype=np.int64)
        try:
            raw = "".join(s for _, s in texts).encode("ascii")
        except UnicodeEncodeError:
            bad = next(i for i, s in texts if not s.isascii())
            raise fail(bad, "the sound span is not a run of <|sound_XXXX|> tokens") from None
        rows = np.frombuffer(raw, dtype=_SOUND_ROW)
        digits = rows["digits"] - np.uint8(48)  # wraps below "0", so one bound checks both sides
        prefix_ok, suffix_ok = rows["prefix"] == _PREFIX, rows["suffix"] == _SUFFIX
        if not (prefix_ok.all() and suffix_ok.all() and digits.max(initial=0) <= 9):
            row = int(np.argmax(~prefix_ok | ~suffix_ok | (digits > 9).any(1)))
            span_of_row = np.repeat([i for i, _ in texts], counts[[i for i, _ in texts]])
            raise fail(int(span_of_row[row]), "the sound span is not a run of <|sound_XXXX|> tokens")
        return digits.astype(np.int64) @ _PLACES


def tokenize_conversation(
    tokenizer: SoundLlama3Tokenizer, sample: ShardSample, train_on_input: bool
) -> tuple[list[int], list[bool]]:
    """As torchtune's ``tokenize_messages`` on the string form: ids and mask (True = not trained on)."""
    tokens, labels = ConversationEncoder(tokenizer, train_on_input=train_on_input).encode(sample)
    return tokens.tolist(), (labels == CROSS_ENTROPY_IGNORE_IDX).tolist()
