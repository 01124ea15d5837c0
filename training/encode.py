"""Ids and labels of shard samples, equal to what torchtune's ``tokenize_messages`` + ``SFTDataset``
make from the string form (``<|sound_XXXX|>`` text), built without the string round trip.

A block of samples is encoded at once. Each sample's ids are nine pieces:

    0 bos + user header | 1 request before the sound | 2 sound_start | 3 codes + base | 4 sound_end |
    5 request after the sound | 6 eot + assistant header | 7 answer | 8 eot + eos

The fixed pieces are tokenized once. The requests come from a few templates (dataengine's
``TRANSCRIPTION_REQUESTS``), so their ids are kept in a bounded table. The answers of the block (and any
text not in the table) go through tiktoken in one call, joined by a special token: tiktoken encodes
the text between two allowed special tokens on its own, so each piece gets exactly its own ids. The
codes of the block become ids with one numpy add; numpy then scatters every piece to its place and
masks the labels. Per sample, Python only slices the sample's strings.
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
MAX_REQUESTS = 4096  # distinct request texts kept in the table; further ones are tokenized each time
IN_TEXT = -1  # request index of a text tokenized with the block's answers


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

        def header(role: str) -> list[int]:
            return tokenizer._tokenize_header(Message(role=role, content=""))

        self.fixed = {  # piece -> ids
            0: np.array([tokenizer.bos_id, *header("user")]),
            2: np.array([tokenizer.sound_start_id]),
            4: np.array([tokenizer.sound_end_id]),
            6: np.array([tokenizer.eot_id, *header("assistant")]),
            8: np.array([tokenizer.eot_id, tokenizer.eos_id]),
        }
        self.separator_id = tokenizer.special_tokens[SEPARATOR]
        self.code_base, self.n_codes = tokenizer.sound_code_base, tokenizer.n_sound_codes
        self._request_index: dict[str, int] = {}
        self._request_ids: list[list[int]] = []
        self._table: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._add_request("")

    def encode(self, sample: ShardSample) -> tuple[np.ndarray, np.ndarray]:
        return self.encode_block([sample])[0]

    def encode_block(self, samples: Sequence[ShardSample]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Token ids and labels (``CROSS_ENTROPY_IGNORE_IDX`` where not trained on) of each sample,
        truncated as torchtune truncates: keep the head, end on eos, the last label ignored."""
        if not samples:
            return []
        texts: list[str] = []  # tokenized together: answers, and requests not in the table
        requests: list[int] = []  # two per sample: table index of the request before / after
        codes: list[np.ndarray] = []
        has_sound: list[bool] = []
        lookup = self._request_index.get
        for sample in samples:
            user = sample.conversations[0].content.strip()
            answer = sample.conversations[1].content.strip()
            start, end = user.find(SOUND_START), user.rfind(SOUND_END)
            if start < 0 or end < start:
                texts += (user, answer)
                requests += (IN_TEXT, 0)
                has_sound.append(False)
                continue
            chars = end - start - START_CHARS
            if chars != SOUND_CHARS * len(sample.codes):
                raise ShardError(
                    f"{sample.shard}: member {sample.id}: json holds {chars // SOUND_CHARS} sound tokens, "
                    f"tokens.npy {len(sample.codes)}"
                )
            before, after = user[:start], user[end + END_CHARS :]
            first, second = lookup(before), lookup(after)
            if first is None:
                first = self._add_request(before)
            if second is None:
                second = self._add_request(after)
            if first == IN_TEXT:
                texts.append(before)
            if second == IN_TEXT:
                texts.append(after)
            texts.append(answer)
            requests += (first, second)
            codes.append(sample.codes)
            has_sound.append(True)
        sound = np.array(has_sound)
        text_ids, text_lengths = self._tokenize(texts)
        code_ids = self._sound_ids(codes, [s for s, has in zip(samples, sound, strict=True) if has])
        table_ids, table_starts, table_lengths = self._request_table()
        request = np.array(requests).reshape(-1, 2)
        tabled = request != IN_TEXT
        in_text = np.ones((len(samples), 3), dtype=bool)  # pieces 1, 5, 7 taken from text_ids
        in_text[:, :2] = ~tabled

        # lengths[sample, piece], then where each piece starts in the block
        lengths = np.zeros((len(samples), 9), dtype=np.int64)
        for piece, ids in self.fixed.items():
            lengths[:, piece] = len(ids)
        lengths[:, (2, 4)] *= sound[:, None]
        lengths[sound, 3] = [len(c) for c in codes]
        text_pieces = np.zeros((len(samples), 3), dtype=np.int64)
        text_pieces[in_text] = text_lengths
        text_pieces[:, :2][tabled] = table_lengths[request[tabled]]
        lengths[:, (1, 5, 7)] = text_pieces
        starts = np.cumsum(lengths.ravel()).reshape(lengths.shape) - lengths
        tokens = np.empty(int(lengths.sum()), dtype=np.int64)
        for piece, ids in self.fixed.items():
            rows = starts[sound, piece] if piece in (2, 4) else starts[:, piece]
            tokens[rows[:, None] + np.arange(len(ids))] = ids
        tokens[_ranges(starts[:, (1, 5, 7)][in_text], text_pieces[in_text])] = text_ids
        used = request[tabled]
        tokens[_ranges(starts[:, (1, 5)][tabled], table_lengths[used])] = table_ids[
            _ranges(table_starts[used], table_lengths[used])
        ]
        tokens[_ranges(starts[sound, 3], lengths[sound, 3])] = code_ids

        sizes = lengths.sum(axis=1)
        firsts = starts[:, 0]
        masked = np.ones(len(samples), dtype=np.int64) if self.train_on_input else starts[:, 6] + 1 - firsts
        labels = tokens.copy()
        labels[_ranges(firsts, masked)] = CROSS_ENTROPY_IGNORE_IDX  # bos (+ the user turn)
        labels[firsts + sizes - 1] = CROSS_ENTROPY_IGNORE_IDX  # eos
        out = []
        limit = self.max_seq_len
        for first, size in zip(firsts.tolist(), sizes.tolist(), strict=True):
            if limit is not None and size > limit:
                out.append(self._truncated(tokens[first : first + limit], labels[first : first + limit]))
            else:
                out.append((tokens[first : first + size], labels[first : first + size]))
        return out

    def _truncated(self, tokens: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        tokens, labels = tokens.copy(), labels.copy()
        tokens[-1], labels[-1] = self.tokenizer.eos_id, CROSS_ENTROPY_IGNORE_IDX
        return tokens, labels

    def _add_request(self, text: str) -> int:
        if len(self._request_ids) >= MAX_REQUESTS:
            return IN_TEXT
        self._request_index[text] = len(self._request_ids)
        self._request_ids.append(self.tokenizer.encode(text, add_bos=False, add_eos=False))
        self._table = None
        return len(self._request_ids) - 1

    def _request_table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All request ids concatenated, and each request's start and length in there."""
        if self._table is None:
            lengths = np.array([len(ids) for ids in self._request_ids], dtype=np.int64)
            flat = np.array([i for ids in self._request_ids for i in ids], dtype=np.int64)
            self._table = flat, np.cumsum(lengths) - lengths, lengths
        return self._table

    def _tokenize(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """All texts' ids concatenated, and each text's number of ids."""
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

    def _sound_ids(self, codes: list[np.ndarray], samples: list[ShardSample]) -> np.ndarray:
        if not codes:
            return np.empty(0, dtype=np.int64)
        flat = np.concatenate(codes).astype(np.int64)
        if flat.size and self._out_of_range(flat):
            bad = next(s for s, c in zip(samples, codes, strict=True) if c.size and self._out_of_range(c))
            raise ShardError(
                f"{bad.shard}: member {bad.id}.tokens.npy: sound code out of range 0..{self.n_codes - 1}"
            )
        return flat + self.code_base

    def _out_of_range(self, codes: np.ndarray) -> bool:
        return bool(codes.min() < 0 or codes.max() >= self.n_codes)


def tokenize_conversation(
    tokenizer: SoundLlama3Tokenizer, sample: ShardSample, train_on_input: bool
) -> tuple[list[int], list[bool]]:
    """As torchtune's ``tokenize_messages`` on the string form: ids and mask (True = not trained on)."""
    tokens, labels = ConversationEncoder(tokenizer, train_on_input=train_on_input).encode(sample)
    return tokens.tolist(), (labels == CROSS_ENTROPY_IGNORE_IDX).tolist()
