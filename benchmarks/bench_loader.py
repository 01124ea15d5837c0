"""`make bench`: the streaming shard loader vs torchtune's ``chat_dataset`` over the same samples.

The samples of a real build are replicated to ``--samples`` rows and stored twice: as dataengine
WebDataset shards (``json`` + ``tokens.npy`` + ``flac``) and as Parquet in Ichigo's layout (one
``conversations`` column of ``{role, content}`` turns, sound as ``<|sound_XXXX|>`` text). Both paths use
the same sound-aware tokenizer and give the same token ids and labels (checked on every sample); only the
route differs: codes -> ids straight from ``tokens.npy``, vs. datasets/Arrow + string parsing in a
map-style dataset. Each configuration runs ``--repeat`` times, round robin, and the median run is
reported (building the dataset is timed too: chat_dataset converts the Parquet file into a fresh cache
every run). For scale, the same run measures what the tiny CPU model's training consumes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from itertools import count
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dataengine.writers.shards import ShardWriter

ROOT = Path(__file__).resolve().parents[1]
Run = tuple[int, int, float]  # samples, tokens, seconds


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
    from dataengine.training.shards import iter_raw_samples, resolve_shards

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
    from dataengine.training.dataset import ShardStream

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


def _items(ds) -> Iterable[dict[str, Any]]:  # noqa: ANN001
    return iter(ds) if not hasattr(ds, "__len__") else (ds[i] for i in range(len(ds)))


def same_ids_and_labels(stream, chat) -> int:  # noqa: ANN001
    """Number of samples; fails unless both give the same token ids and labels, sample by sample."""
    ours = [([int(t) for t in i["tokens"]], [int(x) for x in i["labels"]]) for i in _items(stream)]
    theirs = [([int(t) for t in i["tokens"]], [int(x) for x in i["labels"]]) for i in _items(chat)]
    assert ours == theirs, "the two paths disagree on the token ids or labels"
    return len(ours)


def items_run(make: Callable[[], Any]) -> Run:
    """One pass over the dataset's items (samples, all tokens); building the dataset is timed too."""
    started = time.perf_counter()
    samples = tokens = 0
    for item in _items(make()):
        samples += len(item.get("sample_ids", (0,)))
        tokens += len(item["tokens"])
    return samples, tokens, time.perf_counter() - started


def loader_run(make: Callable[[], Any], bos_id: int) -> Run:
    """One pass in batches of 8, collated (samples = bos ids, tokens = tokens that carry loss)."""
    from dataengine.training.loader import StreamingLoader
    from torch.utils.data import DataLoader
    from torchtune.data import padded_collate_packed, padded_collate_sft

    started = time.perf_counter()
    ds = make()
    if hasattr(ds, "__len__"):  # torchtune: a map-style dataset behind a plain DataLoader
        collate = padded_collate_packed if "seq_lens" in ds[0] else padded_collate_sft
        batches: Iterable[dict[str, Any]] = DataLoader(ds, batch_size=8, collate_fn=collate)
    else:
        batches = StreamingLoader(ds, batch_size=8)
    samples = tokens = 0
    for batch in batches:
        samples += int((batch["tokens"] == bos_id).sum())
        tokens += int((batch["labels"] != -100).sum())
    return samples, tokens, time.perf_counter() - started


def round_robin(runs: dict[str, Callable[[], Run]], repeat: int) -> dict[str, Run]:
    """Every configuration ``repeat`` times, interleaved (so all see the same machine load); the
    median run of each."""
    results: dict[str, list[Run]] = {name: [] for name in runs}
    for _ in range(repeat):
        for name, run in runs.items():
            results[name].append(run())
    return {name: sorted(r, key=lambda x: x[2])[len(r) // 2] for name, r in results.items()}


def training_consumption(build_dir: Path, tiny: Path, out: Path, steps: int = 12) -> tuple[float, float]:
    """(samples/s, trained tokens/s) the tiny CPU model trains on (tiny_cpu.yaml: packed 256-token
    rows, batch 2), over the training steps only (model and data setup excluded)."""
    from dataengine.training.stream_finetune import StreamFinetuneRecipe
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(ROOT / "training" / "configs" / "tiny_cpu.yaml")
    overrides = {"max_steps": steps, "save_every_n_steps": 10**9, "record_sample_ids": True}
    cfg.merge_with({"data": str(build_dir), "tiny_dir": str(tiny), "output_dir": str(out), **overrides})
    recipe = StreamFinetuneRecipe(cfg=cfg)
    recipe.setup(cfg=cfg)
    started = time.perf_counter()
    recipe.train()
    seconds = time.perf_counter() - started
    recipe.cleanup()
    lines = (out / "sample_ids.rank0.jsonl").read_text().splitlines()
    log = "".join(p.read_text() for p in (out / "logs").glob("*.txt"))
    rates = [float(x.split(":")[1]) for x in log.split() if x.startswith("tokens_per_second_per_gpu:")]
    return sum(len(json.loads(line)["ids"]) for line in lines) / seconds, statistics.median(rates)


def table(title: str, rows: dict[str, Run], pairs: dict[str, str]) -> list[str]:
    lines = [f"{title:<44} {'samples/s':>10} {'tokens/s':>11} {'tokens':>9}   vs chat_dataset"]
    for name, (samples, tokens, seconds) in rows.items():
        versus = ""
        if name in pairs:
            base_samples, base_tokens, base_seconds = rows[pairs[name]]
            speed = seconds / base_seconds
            versus = f"{samples / base_samples / speed:.1f}x, {tokens / base_tokens / speed:.1f}x"
        lines.append(
            f"{name:<44} {samples / seconds:>10.0f} {tokens / seconds:>11.0f} {tokens:>9}   {versus}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--build", type=Path, help="A build or published folder (default: build/demo or a new one)"
    )
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5, help="runs per configuration (median reported)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        os.environ["TIKTOKEN_CACHE_DIR"] = str(tmp / "tiktoken")
        import datasets
        from dataengine.training.tiny import init_tiny
        from dataengine.training.tokenizer import sound_llama3_tokenizer
        from torchtune.models.llama3 import llama3_tokenizer

        datasets.disable_progress_bars()
        build_dir = source_build(tmp, args.build)
        shards, parquet = replicate(build_dir, tmp / "data", args.samples)
        init_tiny(tmp / "tiny")
        files = (str(tmp / "tiny" / "tokenizer.model"), str(tmp / "tiny" / "special_tokens.json"))
        tok = sound_llama3_tokenizer(*files)
        packing_tok = sound_llama3_tokenizer(*files, max_seq_len=1024)
        stock = llama3_tokenizer(*files)
        caches = (tmp / f"cache{n}" for n in count())
        checked = same_ids_and_labels(
            streaming_items(shards, tok, False, shuffle=False), torchtune_items(parquet, tok, next(caches))
        )
        load = os.getloadavg()[0]
        items = round_robin(
            {
                "ShardStream, stored order": lambda: items_run(
                    lambda: streaming_items(shards, tok, packed=False, shuffle=False)
                ),
                "ShardStream, shuffle buffer 1000": lambda: items_run(
                    lambda: streaming_items(shards, tok, packed=False)
                ),
                "chat_dataset, same tokenizer": lambda: items_run(
                    lambda: torchtune_items(parquet, tok, next(caches))
                ),
                "chat_dataset, stock tokenizer*": lambda: items_run(
                    lambda: torchtune_items(parquet, stock, next(caches))
                ),
            },
            args.repeat,
        )
        loaders = round_robin(
            {
                "StreamingLoader, 1 sample/row": lambda: loader_run(
                    lambda: streaming_items(shards, tok, packed=False), tok.bos_id
                ),
                "chat_dataset + DataLoader, 1 sample/row": lambda: loader_run(
                    lambda: torchtune_items(parquet, tok, next(caches)), tok.bos_id
                ),
                "StreamingLoader, packed 1024": lambda: loader_run(
                    lambda: streaming_items(shards, tok, packed=True), tok.bos_id
                ),
                "chat_dataset(packed=True) + DataLoader": lambda: loader_run(
                    lambda: torchtune_items(parquet, packing_tok, next(caches), packed=True), tok.bos_id
                ),
            },
            args.repeat,
        )
        load = max(load, os.getloadavg()[0])
        train_sps, train_tps = training_consumption(build_dir, tmp / "tiny", tmp / "train")

    print(f"\n{' '.join([Path(sys.executable).name, *sys.argv])}")
    print(
        f"{args.samples} samples from {build_dir}; median of {args.repeat} runs each, building the dataset "
        f"included; {os.cpu_count()} CPUs, load average up to {load:.1f}; "
        f"token ids and labels identical on all {checked} samples\n"
    )
    same = "chat_dataset, same tokenizer"
    print("\n".join(table("dataset items, no batching", items, {n: same for n in list(items)[:2]})))
    print()
    print(
        "\n".join(
            table(
                "batches of 8, collated",
                loaders,
                {
                    "StreamingLoader, 1 sample/row": "chat_dataset + DataLoader, 1 sample/row",
                    "StreamingLoader, packed 1024": "chat_dataset(packed=True) + DataLoader",
                },
            )
        )
    )
    print("(items: all tokens; batches: tokens that carry loss, i.e. the assistant turns)")
    packed = loaders["StreamingLoader, packed 1024"]
    print(
        f"\ntiny llama3 training on this CPU (tiny_cpu.yaml) consumes {train_sps:.0f} samples/s, "
        f"{train_tps:.0f} trained tokens/s; the packed streaming loader delivers "
        f"{packed[0] / packed[2] / train_sps:.0f}x / {packed[1] / packed[2] / train_tps:.0f}x that "
        "on one core"
    )
    print("* stock Llama3Tokenizer: each <|sound_XXXX|> becomes several BPE ids (wrong for training)")


if __name__ == "__main__":
    main()
