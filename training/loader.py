"""A DataLoader over :class:`~dataengine.training.dataset.ShardStream` whose position is checkpointable.

Every item carries ``(slot, epoch, consumed)``; every batch comes whole from one worker (one slot),
so the loader keeps the latest position per slot plus the number of batches handed out. ``state_dict``
goes into the recipe checkpoint; ``load_state_dict`` restores the positions and rotates the workers so
the first batch after a resume comes from the slot that was next (DataLoader visits workers round-robin).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from dataengine.training.dataset import ShardStream
from torch.utils.data import DataLoader
from torchtune.data import CROSS_ENTROPY_IGNORE_IDX
from torchtune.modules.attention_utils import _SUPPORTS_FLEX_ATTENTION, packed_block_causal_mask


def pad_right(items: list[dict[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
    """Single samples right-padded to the longest, as torchtune's ``padded_collate_sft`` does."""
    longest = max(len(i["tokens"]) for i in items)
    tokens = np.full((len(items), longest), pad_id, dtype=np.int64)
    labels = np.full((len(items), longest), CROSS_ENTROPY_IGNORE_IDX, dtype=np.int64)
    for row, item in enumerate(items):
        tokens[row, : len(item["tokens"])] = item["tokens"]
        labels[row, : len(item["labels"])] = item["labels"]
    return {"tokens": torch.from_numpy(tokens), "labels": torch.from_numpy(labels)}


def block_causal_mask(seq_lens: list[np.ndarray]) -> torch.Tensor:
    """The dense mask torchtune's ``create_block_causal_mask`` makes: a token sees earlier tokens of
    its own sequence only. Shape (batch, length, length), bool; each row's diagonal blocks are copied
    from one lower triangle, everything else stays zero."""
    length = int(np.sum(seq_lens[0]))
    causal = np.tri(length, dtype=bool)
    mask = np.zeros((len(seq_lens), length, length), dtype=bool)
    for row, lens in enumerate(seq_lens):
        start = 0
        for n in np.asarray(lens).tolist():
            mask[row, start : start + n, start : start + n] = causal[:n, :n]
            start += n
    return torch.from_numpy(mask)


class StreamCollate:
    """Collate packed (block-causal mask) or padded single samples; keep ids and the position."""

    def __init__(self, packed: bool, pad_id: int) -> None:
        self.packed = packed
        self.pad_id = pad_id

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        if self.packed:
            batch = {
                k: torch.from_numpy(np.stack([i[k] for i in items]))
                for k in ("tokens", "labels", "input_pos")
            }
            seq_lens = [i["seq_lens"] for i in items]
            if _SUPPORTS_FLEX_ATTENTION:  # GPUs: torchtune's flex-attention BlockMask
                batch["mask"] = packed_block_causal_mask([torch.from_numpy(n) for n in seq_lens])
            else:
                batch["mask"] = block_causal_mask(seq_lens)
        else:
            batch = pad_right(items, self.pad_id)
        batch["sample_ids"] = [sid for item in items for sid in item["sample_ids"]]
        batch["position"] = items[-1]["position"]
        return batch


class StreamingLoader:
    """Iterate batches; ``state_dict()`` is where the stream stands after the last batch handed out."""

    def __init__(self, dataset: ShardStream, batch_size: int, num_workers: int = 0) -> None:
        self.dataset = dataset
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.positions: dict[int, tuple[int, int]] = {}
        self.batches = 0
        self.n_slots: int | None = None

    def state_dict(self) -> dict[str, Any]:
        return {"positions": dict(self.positions), "batches": self.batches, "num_workers": self.num_workers}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("num_workers", self.num_workers) != self.num_workers:
            raise ValueError(
                f"the checkpoint was taken with {state['num_workers']} workers; resume with as many"
            )
        self.positions = {int(k): (int(v[0]), int(v[1])) for k, v in state["positions"].items()}
        self.batches = int(state["batches"])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self.dataset.positions = dict(self.positions)
        self.dataset.worker_offset = self.batches % max(1, self.num_workers)
        loader = DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            collate_fn=StreamCollate(self.dataset.packed, self.dataset.tokenizer.pad_id),
            persistent_workers=False,
        )
        for batch in loader:
            slot, epoch, consumed = batch.pop("position")
            self.positions[slot] = (epoch, consumed)
            self.batches += 1
            yield batch
