"""`make bench`: the streaming shard loader vs torchtune's ``chat_dataset`` over the same samples.

The samples of a real build are replicated to ``--samples`` rows and stored twice: as dataengine
WebDataset shards (``json`` + ``tokens.npy`` + ``flac``) and as Parquet in Ichigo's layout (one
``conversations`` column of ``{role, content}`` turns, sound as ``<|sound_XXXX|>`` text). Both paths use
the same sound-aware tokenizer and give the same ids (checked on every sample); only the route differs:
codes -> ids straight from ``tokens.npy``, vs. datasets/Arrow + string parsing in a map-style dataset.
For scale, the same run also measures the tiny CPU model's training step.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from dataengine.writers.shards import ShardWriter

ROOT = Path(__file__).resolve().parents[1]


def source_build(tmp: Path, build_dir: Path | None) -> Path:
    if build_dir is not None:
        return build_dir
    if (ROOT / "build" / "demo" / "shards").is_dir():
        return ROOT / "build" / "demo"
    from dataengine.pipeline import build
    from dataengine.recipe import load_recipe

    recipe = load_recipe(ROOT / "recipes" / "demo.yaml").with_overrides(limit=32)
    return build(recipe, tmp / "build", progress=False).out


def replicate(build_dir: Path, out: Path, n: int) -> tuple[Path, Path]:
    """``n`` samples (the build's, repeated with new ids) as shards of 256 and as one Parquet file."""
    from training.shards import iter_raw_samples, resolve_shards

    raws = [raw for url in resolve_shards(build_dir) for raw in iter_raw_samples(url)]
    writer = ShardWriter(out / "shards", "train", max_samples=256, max_bytes=1 << 30)
    rows = []
    for k in range(n):
        raw = raws[k % len(raws)]
        meta = json.loads(raw["json"])
        meta["id"] = f"{meta['id']}-r{k // len(raws)}"
        members = {ext: raw[ext] for ext in raw if not ext.startswith("__")}
        members["json"] = json.dumps(meta, sort_keys=True).encode()
        writer.add(meta["id"].replace(".", "_"), members)
        rows.append({"id": meta["id"], "conversations": meta["conversations"]})
    writer.close()
    pq.write_table(pa.Table.from_pylist(rows), out / "ichigo.parquet")
    return out, out / "ichigo.parquet"


def streaming_items(shards: Path, tokenizer, packed: bool, shuffle: bool = True):  # noqa: ANN001, ANN201
    from training.dataset import ShardStream

    buffer = 1000 if shuffle else 1
    return ShardStream(
        str(shards), tokenizer, 1024, packed=packed, shuffle_buffer=buffer, shuffle_shards=shuffle, epochs=1
    )


def torchtune_items(parquet: Path, tokenizer, cache: Path, packed: bool = False):  # noqa: ANN001, ANN201
    from torchtune.datasets import chat_dataset

    return chat_dataset(
        tokenizer,
        source="parquet",
        data_files=str(parquet),
        conversation_column="conversations",
        conversation_style="openai",
        split="train",
        cache_dir=str(cache),
        packed=packed,
    )


def token_lists(ds) -> list[list[int]]:  # noqa: ANN001
    items = iter(ds) if not hasattr(ds, "__len__") else (ds[i] for i in range(len(ds)))
    return [[int(t) for t in item["tokens"]] for item in items]


def timed(make, loader: bool = False, workers: int = 0) -> tuple[int, int, float]:  # noqa: ANN001
    """(samples, tokens, seconds) for one pass; building the dataset is timed too."""
    from torch.utils.data import DataLoader
    from torchtune.data import padded_collate_packed, padded_collate_sft

    from training.loader import StreamingLoader

    started = time.perf_counter()
    ds = make()
    samples = tokens = 0
    if not loader:
        items = iter(ds) if not hasattr(ds, "__len__") else (ds[i] for i in range(len(ds)))
        for item in items:
            samples += len(item.get("sample_ids", [0]))
            tokens += len(item["tokens"])
    elif hasattr(ds, "__len__"):  # torchtune: a map-style dataset behind a plain DataLoader
        collate = padded_collate_packed if "seq_lens" in ds[0] else padded_collate_sft
        for batch in DataLoader(ds, batch_size=8, num_workers=workers, collate_fn=collate):
            samples += len(batch["tokens"]) if collate is padded_collate_sft else 0
            tokens += int((batch["labels"] != -100).sum())
    else:
        for batch in StreamingLoader(ds, batch_size=8, num_workers=workers):
            samples += len(batch["sample_ids"])
            tokens += int((batch["labels"] != -100).sum())
    return samples, tokens, time.perf_counter() - started


def time_training_step(build_dir: Path, tiny: Path, out: Path, steps: int = 8) -> float:
    """Samples/s the tiny CPU model trains on (tiny_cpu.yaml: packed 256-token rows, batch 2)."""
    from omegaconf import OmegaConf

    from training.stream_finetune import run

    cfg = OmegaConf.load(ROOT / "training" / "configs" / "tiny_cpu.yaml")
    overrides = {"max_steps": steps, "save_every_n_steps": 10**9, "record_sample_ids": True}
    cfg.merge_with({"data": str(build_dir), "tiny_dir": str(tiny), "output_dir": str(out), **overrides})
    started = time.perf_counter()
    run(cfg)
    seconds = time.perf_counter() - started
    lines = (out / "sample_ids.rank0.jsonl").read_text().splitlines()
    return sum(len(json.loads(line)["ids"]) for line in lines) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--build", type=Path, help="A build or published folder (default: build/demo or a new one)"
    )
    parser.add_argument("--samples", type=int, default=2000)
    args = parser.parse_args()

    import os

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        os.environ["TIKTOKEN_CACHE_DIR"] = str(tmp / "tiktoken")
        from torchtune.models.llama3 import llama3_tokenizer

        from training.tiny import init_tiny
        from training.tokenizer import sound_llama3_tokenizer

        build_dir = source_build(tmp, args.build)
        shards, parquet = replicate(build_dir, tmp / "data", args.samples)
        init_tiny(tmp / "tiny")
        files = (str(tmp / "tiny" / "tokenizer.model"), str(tmp / "tiny" / "special_tokens.json"))
        tok = sound_llama3_tokenizer(*files)
        packing_tok = sound_llama3_tokenizer(*files, max_seq_len=1024)
        stock = llama3_tokenizer(*files)
        same = token_lists(streaming_items(shards, tok, False, shuffle=False)) == token_lists(
            torchtune_items(parquet, tok, tmp / "c0")
        )
        assert same, "the two paths disagree on the ids"
        ordered = timed(lambda: streaming_items(shards, tok, packed=False, shuffle=False))
        chat = timed(lambda: torchtune_items(parquet, tok, tmp / "c1"))
        items = [
            ("streaming ShardStream, stored order", ordered),
            (
                "streaming ShardStream, shuffle buffer",
                timed(lambda: streaming_items(shards, tok, packed=False)),
            ),
            ("torchtune chat_dataset, same tokenizer", chat),
            (
                "torchtune chat_dataset, stock tokenizer*",
                timed(lambda: torchtune_items(parquet, stock, tmp / "c2")),
            ),
        ]
        loaders = [
            (
                "StreamingLoader, 1 sample/row",
                timed(lambda: streaming_items(shards, tok, False), loader=True),
            ),
            ("StreamingLoader, packed 1024", timed(lambda: streaming_items(shards, tok, True), loader=True)),
            (
                "StreamingLoader, packed, 2 workers",
                timed(lambda: streaming_items(shards, tok, True), loader=True, workers=2),
            ),
            (
                "chat_dataset + DataLoader, 1 sample/row",
                timed(lambda: torchtune_items(parquet, tok, tmp / "c3"), loader=True),
            ),
            (
                "chat_dataset(packed=True) + DataLoader",
                timed(lambda: torchtune_items(parquet, packing_tok, tmp / "c4", packed=True), loader=True),
            ),
        ]
        train_sps = time_training_step(build_dir, tmp / "tiny", tmp / "train")

    print(f"{args.samples} samples from {build_dir}; one pass each, building the dataset included\n")
    print(f"{'dataset items (no batching)':<44} {'samples/s':>10} {'tokens/s':>11} {'tokens':>9}")
    for name, (samples, tokens, seconds) in items:
        print(f"{name:<44} {samples / seconds:>10.0f} {tokens / seconds:>11.0f} {tokens:>9}")
    print(f"\n{'batches of 8 (collated)':<44} {'samples/s':>10} {'tokens/s':>11} {'trained':>9}")
    for name, (samples, tokens, seconds) in loaders:
        rate = f"{samples / seconds:>10.0f}" if samples else f"{'-':>10}"
        print(f"{name:<44} {rate} {tokens / seconds:>11.0f} {tokens:>9}")
    print("(tokens/s here counts tokens that carry loss: the assistant turns)")
    ratio = (items[0][1][0] / items[0][1][2]) / (chat[0] / chat[2])
    stock_ratio = (items[0][1][0] / items[0][1][2]) / (items[3][1][0] / items[3][1][2])
    packed_ratio = (loaders[1][1][1] / loaders[1][1][2]) / (loaders[4][1][1] / loaders[4][1][2])
    print(
        f"\nstreaming vs chat_dataset: {ratio:.1f}x (same tokenizer), {stock_ratio:.1f}x (stock tokenizer); "
        f"packed loaders: {packed_ratio:.1f}x; ids identical on all {args.samples} samples"
    )
    print(
        f"tiny llama3 training on this CPU consumes {train_sps:.0f} samples/s (setup included); the packed "
        f"streaming loader delivers {loaders[1][1][0] / loaders[1][1][2] / train_sps:.0f}x that"
    )
    print("* stock Llama3Tokenizer: each <|sound_XXXX|> becomes several BPE ids (wrong for training)")


if __name__ == "__main__":
    main()
