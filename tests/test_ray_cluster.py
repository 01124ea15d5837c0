"""The Ray executor on a real two-node cluster (``ray start --head`` + ``ray start --address``): the same
bytes as a local build with stages placed on both nodes; a node killed mid-build fails the build with one
line, and the rerun resumes from the cache with identical bytes."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from ray_cluster import ENV, TwoNodeCluster

from dataengine.cache import StageCache

pytestmark = pytest.mark.slow

RECIPE = {
    "name": "two-nodes",
    "seed": 5,
    "limit": 6,
    "source": {"kind": "chatterbot", "categories": ["computers"]},
    "tts": {"voices": [{"backend": "piper", "voice": "joe-us"}]},
    "shards": {"max_samples": 3},
    "executor": {  # the local executor ignores the stage resources: one recipe file for both builds
        "batch_size": 1,
        "placement_timeout_s": 120,  # a stage that cannot be placed: one line, not the test's timeout
        "stages": {
            "tts": {"actors": 1, "resources": {"head_node": 0.5}},
            "audio_filters": {"actors": 1, "resources": {"worker_node": 0.25}},
            "tokenizer": {"actors": 1, "resources": {"worker_node": 0.5}},
        },
    },
}
PLACED = re.compile(r"ray: stage (\w+) ran on \d+ actor\(s\), node\(s\) ([0-9a-f, ]+)")


def tree_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def cluster() -> Iterator[TwoNodeCluster]:
    running = TwoNodeCluster(cpus=2)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def recipe_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("recipe") / "two-nodes.yaml"
    path.write_text(yaml.safe_dump(RECIPE))
    return path


def command(recipe_file: Path, out: Path, *extra: str) -> list[str]:
    base = [sys.executable, "-m", "dataengine.cli", "build", str(recipe_file), "--out", str(out)]
    return [*base, "--no-progress", *extra]


def on_ray(cluster: TwoNodeCluster, cache: Path) -> list[str]:
    return ["--executor", "ray", "--ray-address", cluster.address, "--workers", "1"] + [
        "--cache-dir",
        str(cache),
    ]


def run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=600, env=ENV)


@pytest.fixture(scope="module")
def local_build(recipe_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("local") / "out"
    result = run(command(recipe_file, out, "--no-cache"))
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_a_two_node_build_equals_the_local_bytes_with_stages_on_both_nodes(
    cluster: TwoNodeCluster, recipe_file: Path, local_build: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ray"
    result = run(command(recipe_file, out, *on_ray(cluster, tmp_path / "cache")))
    assert result.returncode == 0, result.stderr[-3000:]
    assert tree_bytes(out) == tree_bytes(local_build)
    placed = {stage: nodes.split(", ") for stage, nodes in PLACED.findall(result.stderr)}
    kinds = cluster.nodes()  # node id -> head_node / worker_node
    assert {stage: [kinds[n] for n in nodes] for stage, nodes in placed.items()} == {
        "tts": ["head_node"],
        "audio_filters": ["worker_node"],
        "tokenizer": ["worker_node"],
    }


def test_a_stage_no_node_can_hold_stops_the_build_in_one_line_instead_of_hanging(
    cluster: TwoNodeCluster, tmp_path: Path
) -> None:
    """Each resource is there in the cluster's totals, but no one node holds both: Ray would wait forever
    (the build hung without a word); the placement timeout makes it one line, exit 2. Runs before the
    node-kill test, which leaves the cluster with a new worker node."""
    recipe = {**RECIPE, "name": "unplaceable"}
    recipe["executor"] = {
        **RECIPE["executor"],
        "placement_timeout_s": 10,
        "stages": {"tokenizer": {"actors": 1, "resources": {"head_node": 0.5, "worker_node": 0.5}}},
    }
    recipe_file = tmp_path / "unplaceable.yaml"
    recipe_file.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "out"
    args = command(recipe_file, out, *on_ray(cluster, tmp_path / "cache"))
    result = subprocess.run(args, capture_output=True, text=True, timeout=180, env=ENV)
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 2, result.stderr[-3000:]
    assert last.startswith("Error: the Ray cluster found no node within 10 s for "), last
    assert "1 actor(s) of stage tokenizer (each asks num_cpus=" in last, last
    assert "head_node=0.5, worker_node=0.5)" in last and "executor.placement_timeout_s" in last, last
    assert not (out / "build.json").exists()


def test_a_node_killed_mid_build_fails_in_one_line_and_the_rerun_resumes_from_the_cache(
    cluster: TwoNodeCluster, recipe_file: Path, local_build: Path, tmp_path: Path
) -> None:
    cache_dir, out = tmp_path / "cache", tmp_path / "ray"
    args = command(recipe_file, out, *on_ray(cluster, cache_dir))
    log = tmp_path / "killed.log"
    with log.open("w") as stderr:
        build = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=stderr, text=True, env=ENV)
    cache = StageCache(cache_dir)
    deadline = time.time() + 300
    while time.time() < deadline and build.poll() is None and cache.count("tts") < 2:
        time.sleep(0.2)
    raylet = cluster.worker.raylet()
    assert build.poll() is None and raylet is not None, log.read_text()[-3000:]
    tokens_before_kill = cache.count("tokenizer")
    raylet.kill()  # the worker node's raylet: its actors (audio filters, tokenizer) die with it
    build.wait(timeout=300)
    lines = log.read_text().strip().splitlines()
    assert build.returncode == 1, lines[-20:]
    assert lines[-1].startswith("Error: a Ray worker, actor or node died ("), lines[-20:]
    assert "finished samples are cached" in lines[-1]
    assert tokens_before_kill < 6 and not (out / "build.json").exists()

    cluster.restart_worker()  # the node comes back (on a cluster: the autoscaler or the operator)
    cached_tts = cache.count("tts")
    rerun = run(args)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert tree_bytes(out) == tree_bytes(local_build)
    from_cache = dict(re.findall(r"^\s+(\w+)\s+seen.*from cache\s+(\d+)", rerun.stdout, re.MULTILINE))
    assert int(from_cache["tts"]) == cached_tts >= 2  # resumed: the voices already spoken were not redone


def test_worker_port_ranges_stay_out_of_the_ephemeral_range_and_apart() -> None:
    from ray_cluster import WORKER_PORTS, free_port_range

    taken: set[int] = set()
    for _ in range(3):
        base = free_port_range(WORKER_PORTS, taken)
        ports = set(range(base, base + WORKER_PORTS))
        assert not ports & taken and max(ports) < 32_768
        taken |= ports
