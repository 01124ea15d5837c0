"""A DataLoader over :class:`~training.dataset.ShardStream` whose position is checkpointable.

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
from torch.utils.data import DataLoader
from torchtune.data import CROSS_ENTROPY_IGNORE_IDX, padded_collate_packed
from torchtune.modules.attention_utils import _SUPPORTS_FLEX_ATTENTION

from training.dataset import ShardStream


def pad_right(items: list[dict[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
    """Single samples right-padded to the longest, as torchtune's ``padded_collate_sft`` does."""
    longest = max(len(i["tokens"]) for i in items)
    tokens = torch.full((len(items), longest), pad_id, dtype=torch.long)
    labels = torch.full((len(items), longest), CROSS_ENTROPY_IGNORE_IDX, dtype=torch.long)
    for row, item in enumerate(items):
        tokens[row, : len(item["tokens"])] = item["tokens"]
        labels[row, : len(item["labels"])] = item["labels"]
    return {"tokens": tokens, "labels": labels}


def block_causal_mask(seq_lens: list[torch.Tensor]) -> torch.Tensor:
    """The dense mask torchtune's ``create_block_causal_mask`` makes, built in one vectorised step:
    a token sees earlier tokens of its own sample only. Shape (batch, length, length), bool."""
    docs = np.stack([np.repeat(np.arange(len(n)), n.numpy()) for n in seq_lens])
    causal = np.tri(docs.shape[1], dtype=bool)
    return torch.from_numpy((docs[:, :, None] == docs[:, None, :]) & causal)


class StreamCollate:
    """Collate packed (block-causal mask) or padded single samples; keep ids and the position."""

    def __init__(self, packed: bool, pad_id: int) -> None:
        self.packed = packed
        self.pad_id = pad_id

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        if self.packed and _SUPPORTS_FLEX_ATTENTION:  # GPUs: torchtune builds a flex-attention BlockMask
            batch = padded_collate_packed(items)
        elif self.packed:
            batch = {key: torch.stack([i[key] for i in items]) for key in ("tokens", "labels", "input_pos")}
            batch["mask"] = block_causal_mask([i["seq_lens"] for i in items])
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
