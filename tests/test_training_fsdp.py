"""FSDP2 for real: the recipe under ``torchrun`` with 2 processes on CPU (gloo), from the shards."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from training_fixtures import equal_shards, tiny_dir

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "training" / "stream_finetune.py"
CONFIG = ROOT / "training" / "configs" / "tiny_cpu.yaml"
STEPS = 6


def torchrun(data: Path, out: Path, *overrides: str) -> None:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(RECIPE),
        "--config",
        str(CONFIG),
        f"data={data}",
        f"tiny_dir={tiny_dir()}",
        f"output_dir={out}",
        f"max_steps={STEPS}",
        f"save_every_n_steps={STEPS}",
        *overrides,
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]


def trained_ids(out: Path, rank: int) -> list[tuple[int, list[str]]]:
    lines = (out / f"sample_ids.rank{rank}.jsonl").read_text().splitlines()
    return [(r["step"], r["ids"]) for r in map(json.loads, lines)]


@pytest.mark.slow
def test_two_process_fsdp_splits_the_data_learns_and_resumes_exactly(
    small_build_dir: Path, tmp_path: Path
) -> None:
    ids = equal_shards(small_build_dir, tmp_path / "data")  # 4 shards x 4 samples: 2 shards per rank
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    torchrun(tmp_path / "data", whole)
    torchrun(tmp_path / "data", parts, "stop_after_steps=3")
    torchrun(tmp_path / "data", parts, "resume_from_checkpoint=true")

    log = "".join(p.read_text() for p in (whole / "logs").glob("*.txt"))
    losses = [float(x) for x in re.findall(r"loss:([0-9.naife+-]+)", log)]  # rank 0 logs the global loss
    assert len(losses) == STEPS and all(math.isfinite(x) for x in losses) and losses[-1] < losses[0], losses

    epoch_one = []  # each rank's first 8 samples are its first epoch: together every sample once
    for rank in (0, 1):
        seen = [i for _, batch in trained_ids(whole, rank) for i in batch]
        assert len(seen) > 8 and len(set(seen[:8])) == 8
        epoch_one += seen[:8]
    assert sorted(epoch_one) == sorted(ids)

    for rank in (0, 1):  # stopped after step 3 and resumed: each rank went on at its exact next sample
        assert [s for s, _ in trained_ids(parts, rank)] == list(range(1, STEPS + 1))
        assert trained_ids(parts, rank) == trained_ids(whole, rank)
    final = [
        torch.load(d / f"epoch_{STEPS}" / "model-00001-of-00001.bin", weights_only=True)
        for d in (whole, parts)
    ]
    for key, value in final[0].items():
        torch.testing.assert_close(final[1][key], value, rtol=1e-5, atol=1e-6)
