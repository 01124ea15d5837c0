"""A streaming, packing, resumable IterableDataset over dataengine's WebDataset shards.

Order of operations, per *slot* (one dataloader worker on one rank):
shards (sorted, seeded shuffle per epoch) -> every ``n_slots``-th shard -> samples -> seeded shuffle
buffer -> decode + tokenize a block of samples at a time (``dataengine.training.encode``: codes map
straight to ids) -> pack to ``max_seq_len``. Items hold numpy arrays; the loader's collate makes the tensors.
Everything is a pure function of (seed, epoch, slot), so a position is just ``(epoch, consumed)``:
how many shuffled samples of this epoch went into items already handed out. Resuming replays the
shuffle buffer over the raw bytes (nothing is decoded or tokenized) and skips those, so a resumed run
neither repeats nor skips a sample.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import numpy as np
import torch
from dataengine.training.encode import ConversationEncoder
from dataengine.training.shards import (
    TRAINING_MEMBERS,
    ShardError,
    decode_sample,
    iter_raw_samples,
    resolve_shards,
)
from dataengine.training.tokenizer import SoundLlama3Tokenizer
from torch.utils.data import IterableDataset, get_worker_info
from torchtune.data import CROSS_ENTROPY_IGNORE_IDX

Encoded = tuple[str, np.ndarray, np.ndarray]  # sample id, token ids, labels
ENCODE_BLOCK = 512  # samples decoded and tokenized together (numpy and tiktoken calls per block)


def rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


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
        source: a folder, shard file, or ``hf://datasets/ORG/NAME@REV`` URL (see
            ``dataengine.training.shards``).
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
        self._positions = np.arange(max_seq_len)
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
        if self.shuffle_buffer == 1:  # stored order
            for url in self.slot_shards(slot, n_slots, epoch):
                yield from iter_raw_samples(url, TRAINING_MEMBERS)
            return
        rng = random.Random(f"samples-{self.seed}-{epoch}-{slot}")
        buffer: list[dict[str, Any]] = []
        for url in self.slot_shards(slot, n_slots, epoch):
            for raw in iter_raw_samples(url, TRAINING_MEMBERS):
                buffer.append(raw)
                if len(buffer) >= self.shuffle_buffer:
                    yield _pop_random(buffer, rng)
        while buffer:
            yield _pop_random(buffer, rng)

    def _encoded(self, draws: Iterator[dict[str, Any]]) -> Iterator[Encoded]:
        """(sample id, token ids, labels) of each draw; decoded and tokenized a block at a time."""
        encoder = ConversationEncoder(self.tokenizer, self.max_seq_len, self.train_on_input)
        while block := [decode_sample(raw) for raw in islice(draws, ENCODE_BLOCK)]:
            yield from zip(
                [s.id for s in block], *zip(*encoder.encode_block(block), strict=True), strict=True
            )

    def _singles(
        self, samples: Iterator[Encoded], slot: int, epoch: int, drawn: int
    ) -> Iterator[dict[str, Any]]:
        """One item per sample. An item is handed out once the next sample is drawn (or the epoch
        ended), so its position says "this many drawn" or "next epoch"."""
        held = None
        for sample in samples:
            if held is not None:
                yield {
                    "tokens": held[1],
                    "labels": held[2],
                    "sample_ids": [held[0]],
                    "position": (slot, epoch, drawn),
                }
            held, drawn = sample, drawn + 1
        if held is not None:
            yield {
                "tokens": held[1],
                "labels": held[2],
                "sample_ids": [held[0]],
                "position": (slot, epoch + 1, 0),
            }

    def _packs(
        self, samples: Iterator[Encoded], slot: int, epoch: int, drawn: int
    ) -> Iterator[dict[str, Any]]:
        """Whole samples packed up to ``max_seq_len``; a pack is handed out when the next sample does
        not fit (its position: the samples drawn before that one) or the epoch ended."""
        pack = _Pack()
        for sample_id, tokens, labels in samples:
            if pack.length and pack.length + len(tokens) > self.max_seq_len:
                yield self._packed_item(pack, (slot, epoch, drawn))
                pack = _Pack()
            pack.add(tokens, labels, sample_id)
            drawn += 1
        if pack.length:
            yield self._packed_item(pack, (slot, epoch + 1, 0))

    def _packed_item(self, pack: _Pack, position: tuple[int, int, int]) -> dict[str, Any]:
        """A pack laid out as torchtune's ``PackedDataset`` does: pad ids, ignored labels, positions
        restart per sample and continue (clamped) over the padding, which counts as one more sequence.
        Items hold numpy arrays; the collate makes the batch tensors."""
        seq_lens = [len(t) for t in pack.tokens]
        pad = self.max_seq_len - pack.length
        tokens = np.concatenate([*pack.tokens, np.full(pad, self.tokenizer.pad_id)])
        labels = np.concatenate([*pack.labels, np.full(pad, CROSS_ENTROPY_IGNORE_IDX)])
        if pad:
            seq_lens.append(pad)
        starts = np.cumsum(seq_lens) - seq_lens
        input_pos = self._positions - np.repeat(starts, seq_lens)
        if pad:
            input_pos[-pad:] = np.minimum(input_pos[-pad:] + seq_lens[-2], self.max_seq_len - 1)
        return {
            "tokens": tokens,
            "labels": labels,
            "input_pos": input_pos,
            "seq_lens": np.array(seq_lens),
            "sample_ids": pack.ids,
            "position": position,
        }

    def __iter__(self) -> Iterator[dict[str, Any]]:
        slot, n_slots = self.slot_info()
        if not self.slot_shards(slot, n_slots, 0):
            raise ShardError(
                f"{self.source}: {len(self.shards)} shard(s) cannot feed {n_slots} ranks x workers; "
                "use fewer dataloader workers or more shards"
            )
        epoch, consumed = self.positions.get(slot, (0, 0))
        items = self._packs if self.packed else self._singles
        while self.epochs is None or epoch < self.epochs:
            draws = self._shuffled(slot, n_slots, epoch)
            deque(islice(draws, consumed), maxlen=0)  # trained on before the checkpoint: replayed only
            yield from items(self._encoded(draws), slot, epoch, consumed)
            epoch, consumed = epoch + 1, 0


def _pop_random(buffer: list[dict[str, Any]], rng: random.Random) -> dict[str, Any]:
    index = rng.randrange(len(buffer))
    buffer[index], buffer[-1] = buffer[-1], buffer[index]
    return buffer.pop()


def shard_stream(tokenizer: SoundLlama3Tokenizer, source: str, **options: Any) -> ShardStream:
    """Config builder (``_component_: dataengine.training.dataset.shard_stream``): the recipe passes the
    tokenizer, the config the source and any :class:`ShardStream` option by name."""
    return ShardStream(source, tokenizer, **options)
