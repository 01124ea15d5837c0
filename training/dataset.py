"""A streaming, packing, resumable IterableDataset over dataengine's WebDataset shards.

Order of operations, per *slot* (one dataloader worker on one rank):
shards (sorted, seeded shuffle per epoch) -> every ``n_slots``-th shard -> samples -> seeded shuffle
buffer -> tokenize (codes map straight to ids) -> pack to ``max_seq_len``.
Everything is a pure function of (seed, epoch, slot), so a position is just ``(epoch, consumed)``:
how many shuffled samples of this epoch went into items already handed out. Resuming replays the
shuffle buffer over the raw bytes (nothing is decoded or tokenized) and skips those, so a resumed run
neither repeats nor skips a sample.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info
from torchtune.data import CROSS_ENTROPY_IGNORE_IDX, Message

from training.shards import (
    TRAINING_MEMBERS,
    ShardError,
    ShardSample,
    decode_sample,
    iter_raw_samples,
    resolve_shards,
)
from training.tokenizer import SOUND_END, SOUND_START, SoundLlama3Tokenizer

SOUND_CHARS = len("<|sound_0000|>")


def rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def tokenize_conversation(
    tokenizer: SoundLlama3Tokenizer, sample: ShardSample, train_on_input: bool
) -> tuple[list[int], list[bool]]:
    """Token ids and loss mask (True = not trained on), identical to torchtune's ``tokenize_messages``
    on the string form, but the sound span comes from the integer codes."""
    user, assistant = sample.conversations[0]["content"].strip(), sample.conversations[1]["content"].strip()
    start, end = user.find(SOUND_START), user.rfind(SOUND_END)
    if start < 0 or end < start:
        user_ids = tokenizer.encode(user, add_bos=False, add_eos=False)
    else:
        span = end - start - len(SOUND_START)
        if span != SOUND_CHARS * len(sample.codes):
            raise ShardError(
                f"{sample.shard}: member {sample.id}: json holds {span // SOUND_CHARS} sound tokens, "
                f"tokens.npy {len(sample.codes)}"
            )
        try:
            sound = tokenizer.sound_ids(sample.codes)
        except ValueError as exc:
            raise ShardError(f"{sample.shard}: member {sample.id}.tokens.npy: {exc}") from None
        user_ids = (
            _encode_text(tokenizer, user[:start])
            + sound
            + _encode_text(tokenizer, user[end + len(SOUND_END) :])
        )
    user_part = _header(tokenizer, "user") + user_ids + [tokenizer.eot_id]
    assistant_part = (
        _header(tokenizer, "assistant") + tokenizer.encode(assistant, add_bos=False, add_eos=False)
    ) + [tokenizer.eot_id]
    tokens = [tokenizer.bos_id, *user_part, *assistant_part, tokenizer.eos_id]
    mask = [True] + [not train_on_input] * len(user_part) + [False] * len(assistant_part) + [True]
    return tokens, mask


def _encode_text(tokenizer: SoundLlama3Tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_bos=False, add_eos=False) if text else []


def _header(tokenizer: SoundLlama3Tokenizer, role: str) -> list[int]:
    cache = tokenizer.__dict__.setdefault("_header_cache", {})
    if role not in cache:
        cache[role] = tokenizer._tokenize_header(Message(role=role, content=""))
    return cache[role]


@dataclass
class _Pack:
    tokens: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    length: int = 0

    def add(self, tokens: np.ndarray, labels: np.ndarray, sample_id: str) -> None:
        self.tokens.append(tokens)
        self.labels.append(labels)
        self.ids.append(sample_id)
        self.length += len(tokens)


class ShardStream(IterableDataset):
    """Yields packed (or single) training items from shards; see the module docstring.

    Args:
        source: a folder, shard file, or ``hf://datasets/ORG/NAME@REV`` URL (see ``training.shards``).
        tokenizer: a :class:`SoundLlama3Tokenizer`.
        max_seq_len: pack length (and truncation length of a single sample).
        packed: pack several samples per item (block-causal attention) or one sample per item.
        train_on_input: also train on the user turn (the speech tokens and request).
        shuffle_buffer: seeded shuffle buffer size (1 = stored order).
        shuffle_shards: shuffle the shard order every epoch.
        epochs: stop after this many passes; ``None`` streams forever (the recipe counts steps).
    """

    def __init__(
        self,
        source: str,
        tokenizer: SoundLlama3Tokenizer,
        max_seq_len: int,
        packed: bool = True,
        train_on_input: bool = False,
        shuffle_buffer: int = 1000,
        shuffle_shards: bool = True,
        seed: int = 0,
        epochs: int | None = None,
    ) -> None:
        self.source = source
        self.shards = resolve_shards(source)
        self.tokenizer = tokenizer
        self.max_seq_len = max_seq_len
        self.packed = packed
        self.train_on_input = train_on_input
        self.shuffle_buffer = max(1, shuffle_buffer)
        self.shuffle_shards = shuffle_shards
        self.seed = seed
        self.epochs = epochs
        self.positions: dict[int, tuple[int, int]] = {}  # slot -> (epoch, consumed), set by the loader
        self.worker_offset = 0  # rotates worker -> slot so a resumed DataLoader starts at the right one

    # -- splitting -------------------------------------------------------------------------------
    def slot_info(self) -> tuple[int, int]:
        """(this process/worker's slot, number of slots) over ranks x dataloader workers."""
        rank, world = rank_and_world()
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        return rank * workers + (worker + self.worker_offset) % workers, world * workers

    def slot_shards(self, slot: int, n_slots: int, epoch: int) -> list[str]:
        shards = list(self.shards)
        if self.shuffle_shards:
            random.Random(f"shards-{self.seed}-{epoch}").shuffle(shards)
        return shards[slot::n_slots]

    # -- the stream ------------------------------------------------------------------------------
    def _shuffled(self, slot: int, n_slots: int, epoch: int) -> Iterator[dict[str, Any]]:
        rng = random.Random(f"samples-{self.seed}-{epoch}-{slot}")
        buffer: list[dict[str, Any]] = []
        for url in self.slot_shards(slot, n_slots, epoch):
            for raw in iter_raw_samples(url, TRAINING_MEMBERS):
                buffer.append(raw)
                if len(buffer) >= self.shuffle_buffer:
                    yield _pop_random(buffer, rng)
        while buffer:
            yield _pop_random(buffer, rng)

    def _item(self, pack: _Pack, position: tuple[int, int, int]) -> dict[str, Any]:
        if not self.packed:
            return {
                "tokens": torch.from_numpy(pack.tokens[0]),
                "labels": torch.from_numpy(pack.labels[0]),
                "sample_ids": pack.ids,
                "position": position,
            }
        seq_lens = [len(t) for t in pack.tokens]
        tokens, labels = np.concatenate(pack.tokens), np.concatenate(pack.labels)
        input_pos = np.concatenate([np.arange(n) for n in seq_lens])
        pad = self.max_seq_len - pack.length
        if pad:  # as torchtune's PackedDataset: pad ids, ignored labels, positions continue (clamped)
            tokens = np.concatenate([tokens, np.full(pad, self.tokenizer.pad_id)])
            labels = np.concatenate([labels, np.full(pad, CROSS_ENTROPY_IGNORE_IDX)])
            start = input_pos[-1] + 1
            input_pos = np.concatenate(
                [input_pos, np.minimum(np.arange(start, start + pad), self.max_seq_len - 1)]
            )
            seq_lens.append(pad)
        return {
            "tokens": torch.from_numpy(tokens),
            "labels": torch.from_numpy(labels),
            "input_pos": torch.from_numpy(input_pos),
            "seq_lens": torch.tensor(seq_lens),
            "sample_ids": pack.ids,
            "position": position,
        }

    def _encode(self, sample: ShardSample) -> tuple[np.ndarray, np.ndarray]:
        token_list, mask_list = tokenize_conversation(self.tokenizer, sample, self.train_on_input)
        tokens, mask = np.asarray(token_list, dtype=np.int64), np.asarray(mask_list, dtype=bool)
        if len(tokens) > self.max_seq_len:  # torchtune's truncation: keep the head, end on eos
            tokens, mask = tokens[: self.max_seq_len].copy(), mask[: self.max_seq_len]
            tokens[-1] = self.tokenizer.eos_id
        return tokens, np.where(mask, CROSS_ENTROPY_IGNORE_IDX, tokens)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        slot, n_slots = self.slot_info()
        if not self.slot_shards(slot, n_slots, 0):
            raise ShardError(
                f"{self.source}: {len(self.shards)} shard(s) cannot feed {n_slots} ranks x workers; "
                "use fewer dataloader workers or more shards"
            )
        epoch, consumed = self.positions.get(slot, (0, 0))
        while self.epochs is None or epoch < self.epochs:
            pack, drawn = _Pack(), 0
            for raw in self._shuffled(slot, n_slots, epoch):
                drawn += 1
                if drawn <= consumed:
                    continue  # already trained on before the checkpoint: replayed, not decoded
                sample = decode_sample(raw)
                tokens, labels = self._encode(sample)
                if pack.length and (not self.packed or pack.length + len(tokens) > self.max_seq_len):
                    yield self._item(pack, (slot, epoch, drawn - 1))
                    pack = _Pack()
                pack.add(tokens, labels, sample.id)
            if pack.length:
                yield self._item(pack, (slot, epoch + 1, 0))
            epoch, consumed = epoch + 1, 0


def _pop_random(buffer: list[dict[str, Any]], rng: random.Random) -> dict[str, Any]:
    index = rng.randrange(len(buffer))
    buffer[index], buffer[-1] = buffer[-1], buffer[index]
    return buffer.pop()


def shard_stream(tokenizer: SoundLlama3Tokenizer, source: str, **options: Any) -> ShardStream:
    """Config builder (``_component_: training.dataset.shard_stream``): the recipe passes the tokenizer,
    the config the source and any :class:`ShardStream` option by name."""
    return ShardStream(source, tokenizer, **options)
