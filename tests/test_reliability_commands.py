"""Bad input and faults in publishing, verify, query and the other commands (issue 12): each is one line
on stderr with a non-zero exit, loses nothing, and writes nothing half-done."""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from click.testing import CliRunner
from hub_server import HubServer

from dataengine.cli import main
from dataengine.publish.local import STAGE_PREFIX
from dataengine.publish.seal import write_build_info
from dataengine.publish.verify import verify_build
from dataengine.redact import redact

ROOT = Path(__file__).resolve().parents[1]
DATAENGINE = [sys.executable, "-m", "dataengine.cli"]
CONFIGS = ROOT / "training" / "configs"
HOLD_STAGING = """
import sys, time
from pathlib import Path
from dataengine.publish.local import staging_folder
with staging_folder(Path(sys.argv[1])) as folder:
    print(folder.name, flush=True)
    time.sleep(600)
"""


@pytest.fixture()
def build_copy(small_build_dir: Path, tmp_path: Path) -> Path:
    out = tmp_path / "build"
    shutil.copytree(small_build_dir, out)
    return out


def run(*args: str, **kwargs):
    return CliRunner().invoke(main, list(args), **kwargs)


def one_line_error(result, code: int = 2) -> str:
    """The only stderr line (after ``Error: ``), checking the exit code and that nothing else came."""
    assert result.exit_code == code, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0][len("Error: ") :]


def env_with_path() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


# --- 3: verify covers the manifest, the recipe, build.json and whole shard files ---------------------


def _rewrite_samples(out: Path) -> None:
    src = str(out / "manifest" / "samples.parquet")
    duckdb.sql(
        f"COPY (SELECT * REPLACE ('What is tampering?' AS prompt) FROM read_parquet('{src}')) "
        f"TO '{out}/manifest/samples.tmp' (FORMAT parquet)"
    )
    os.replace(out / "manifest" / "samples.tmp", out / "manifest" / "samples.parquet")


def _add_reject(out: Path) -> None:
    path = out / "manifest" / "rejects.parquet"
    table = pq.read_table(path)
    extra = pa.Table.from_pylist(
        [{"id": "x-1", "index": 99, "source": "x", "stage": "audio_filters", "reason": "noise"}],
        schema=table.schema,
    )
    pq.write_table(pa.concat_tables([table, extra]), path)


def _edit_build_json(out: Path) -> None:
    info = json.loads((out / "build.json").read_text())
    info["kept"] += 1
    (out / "build.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")


def _flip_end_of_archive(out: Path) -> None:
    shard = out / "shards" / "train-000001.tar"
    data = bytearray(shard.read_bytes())
    data[-7] ^= 0x01  # inside the two zero blocks that end a tar: no sample covers them
    shard.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (_rewrite_samples, "manifest/samples.parquet: sha256 differs from build.json"),
        (_add_reject, "manifest/rejects.parquet: sha256 differs from build.json"),
        (_edit_build_json, "build.json: edited after the build"),
        (_flip_end_of_archive, "shards/train-000001.tar: sha256 differs from build.json"),
    ],
    ids=["samples-prompt", "rejects-row", "build-json", "tar-end-block"],
)
def test_verify_and_push_refuse_an_edited_build(build_copy: Path, tmp_path: Path, edit, named: str) -> None:
    assert verify_build(build_copy).ok
    edit(build_copy)
    report = verify_build(build_copy)
    assert not report.ok and any(p.startswith(named) for p in report.problems), report.problems
    assert "verification failed" in one_line_error(run("verify", str(build_copy)))
    repo = tmp_path / "repo"
    message = one_line_error(run("push", str(build_copy), "--repo", str(repo), "--version", "v1.0.0"))
    assert "verification failed" in message and named.split(":")[0] in message
    assert not (repo / "versions").exists() and not (repo / "index.json").exists()


def test_build_json_carries_the_digests_and_an_unsealed_build_is_refused(build_copy: Path) -> None:
    info = json.loads((build_copy / "build.json").read_text())
    assert {"manifest/samples.parquet", "manifest/rejects.parquet", "recipe.yaml"} <= set(info["files"])
    assert {f"shards/{s}" for s in info["shards"]} <= set(info["files"]) and len(info["seal"]) == 64
    del info["files"], info["seal"]  # what an older dataengine wrote
    (build_copy / "build.json").write_text(json.dumps(info))
    assert "holds no file digests" in one_line_error(run("verify", str(build_copy)))
    write_build_info(build_copy, info)  # sealing the same files again restores the build exactly
    assert run("verify", str(build_copy)).exit_code == 0


def test_a_file_added_to_the_manifest_folder_is_reported(build_copy: Path) -> None:
    (build_copy / "manifest" / "extra.parquet").write_bytes(b"PAR1")
    report = verify_build(build_copy)
    assert report.problems == ["manifest/extra.parquet: not written by the build (not listed in build.json)"]


# --- 4 and 16: tokenizer encode ----------------------------------------------------------------------


def test_tokenizer_encode_rejects_non_finite_audio(tmp_path: Path) -> None:
    for name, value in (("nan.wav", np.nan), ("inf.wav", np.inf)):
        path = tmp_path / name
        audio = np.full(16_000, 0.1, dtype=np.float32)
        audio[100:200] = value
        sf.write(path, audio, 16_000, subtype="FLOAT")
        message = one_line_error(run("tokenizer", "encode", str(path)))
        assert message == f"{path}: audio holds NaN or infinite samples"


def test_tokenizer_encode_missing_file_and_not_a_checkpoint(tmp_path: Path) -> None:
    missing = tmp_path / "missing.wav"
    assert one_line_error(run("tokenizer", "encode", str(missing))) == f"{missing}: no such file"
    assert "is a folder" in one_line_error(run("tokenizer", "encode", str(tmp_path)))
    wav = tmp_path / "tone.wav"
    sf.write(wav, (0.1 * np.sin(np.arange(16_000) / 5)).astype(np.float32), 16_000)
    text, junk, objects = tmp_path / "text.pt", tmp_path / "junk.pt", tmp_path / "objects.pt"
    text.write_text("hello, not a checkpoint\n")
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    objects.write_bytes(pickle.dumps({"config": print}, protocol=4))  # a pickle naming a function
    for bad in (text, junk, objects):
        message = one_line_error(run("tokenizer", "encode", str(wav), "--checkpoint", str(bad)))
        assert message.startswith(f"{bad}: not a ") and "checkpoint" in message
        assert "weights_only" not in message


# --- 5 and 11: where push publishes -------------------------------------------------------------------


@pytest.mark.parametrize("repo", ["a/b/c", "org", "~/repo", "http://example.com/x", "org/-name", "o/na..me"])
def test_push_refuses_a_name_that_is_neither_a_hub_repo_nor_a_folder(
    build_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, repo: str
) -> None:
    monkeypatch.chdir(tmp_path)
    message = one_line_error(run("push", str(build_copy), "--repo", repo, "--version", "v1.0.0"))
    assert "not a Hub repository ORG/NAME" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["build"]  # no folder a/, org/, ~/, http:/
    assert "not a Hub repository" in one_line_error(run("pull", repo, "--version", "v1.0.0"))


def test_push_accepts_the_folder_forms(
    build_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for n, repo in enumerate(
        ["./r1", f"file://{tmp_path}/r2", str(tmp_path / "r3"), "../" + tmp_path.name + "/r4"]
    ):
        assert run("push", str(build_copy), "--repo", repo, "--version", "v1.0.0").exit_code == 0, repo
        assert (tmp_path / f"r{n + 1}" / "versions" / "v1.0.0" / "checksums.json").is_file()


def test_push_refuses_a_repo_with_a_stray_folder_in_versions_before_publishing(
    build_copy: Path, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    assert run("push", str(build_copy), "--repo", str(repo), "--version", "v1.0.0").exit_code == 0
    index = (repo / "index.json").read_bytes()
    for stray in ("notes", "v2.0.0"):  # a hand-made folder; an empty folder under a version's name
        (repo / "versions" / stray).mkdir()
        message = one_line_error(run("push", str(build_copy), "--repo", str(repo), "--version", "v1.1.0"))
        assert f"versions/{stray}" in message and "not a version published by dataengine" in message
        assert sorted(p.name for p in (repo / "versions").iterdir()) == sorted(["v1.0.0", stray])
        assert (repo / "index.json").read_bytes() == index
        (repo / "versions" / stray).rmdir()
    assert run("push", str(build_copy), "--repo", str(repo), "--version", "v1.1.0").exit_code == 0


# --- 19: a push killed with SIGKILL leaves a staging folder the next push removes ------------------------


def test_next_push_removes_what_a_killed_push_left_but_not_a_running_ones(
    build_copy: Path, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    env = {**env_with_path(), "DATAENGINE_CRASH_AT": "push_copy:3"}
    cmd = [*DATAENGINE, "push", str(build_copy), "--repo", str(repo), "--version", "v1.0.0"]
    killed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    left = [p.name for p in repo.iterdir() if p.name.startswith(STAGE_PREFIX)]
    assert len(left) == 1 and (repo / left[0] / "version").is_dir()  # a half-copied version
    holder = subprocess.Popen(  # a push still running: it holds its staging folder's lock
        [
            sys.executable,
            "-c",
            HOLD_STAGING,
            str(repo),
        ],
        env=env_with_path(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        running = holder.stdout.readline().strip()
        assert running.startswith(STAGE_PREFIX)
        result = run("push", str(build_copy), "--repo", str(repo), "--version", "v1.0.0")
        assert result.exit_code == 0 and "published v1.0.0" in result.output, result.output
        assert sorted(p.name for p in repo.iterdir()) == sorted(["index.json", "versions", running])
        assert verify_build(repo / "versions" / "v1.0.0").ok
    finally:
        holder.kill()
        holder.wait()


# --- 6: a Ray cluster that is not there ---------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_ray_address_with_no_cluster_is_one_line_within_seconds(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\nlimit: 2\n")
    port = _free_port()
    started = time.monotonic()
    result = subprocess.run(
        [*DATAENGINE, "build", str(recipe), "--out", str(tmp_path / "out"), "--executor", "ray"]
        + ["--ray-address", f"127.0.0.1:{port}", "--no-progress"],
        env=env_with_path(),
        capture_output=True,
        text=True,
        timeout=90,  # before the fix ray.init retried for minutes
    )
    elapsed = time.monotonic() - started
    lines = [line for line in result.stderr.strip().splitlines() if "torchao" not in line]
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith(f"Error: --ray-address 127.0.0.1:{port}: no Ray cluster answers")
    assert elapsed < 45 and not (tmp_path / "out").exists()


def test_ray_executor_checks_the_address_before_any_work() -> None:
    from dataengine.executors import ClusterError, RayExecutor

    started = time.monotonic()
    for address in (f"127.0.0.1:{_free_port()}", f"ray://127.0.0.1:{_free_port()}", "nohost.invalid:6379"):
        with pytest.raises(ClusterError, match="no Ray cluster answers"):
            RayExecutor(2, address)
    with pytest.raises(ClusterError, match="not host:port"):
        RayExecutor(2, "127.0.0.1:port")
    assert time.monotonic() - started < 15


# --- 9 and 14: manifests that are not manifests, empty SQL --------------------------------------------


@pytest.mark.parametrize("command", ["query", "inspect", "verify", "card"])
def test_garbage_or_wrong_schema_manifest_is_one_line(build_copy: Path, command: str) -> None:
    args = [command, str(build_copy)] + (["select count(*) from samples"] if command == "query" else [])
    samples = build_copy / "manifest" / "samples.parquet"
    good = samples.read_bytes()
    samples.write_bytes(b"this is not parquet at all")
    assert "manifest/samples.parquet" in one_line_error(run(*args))
    pq.write_table(pa.table({"id": [1, 2], "prompt": ["a", "b"]}), samples)  # Parquet, another schema
    message = one_line_error(run(*args))
    assert "manifest/samples.parquet" in message
    samples.write_bytes(good)
    rejects = build_copy / "manifest" / "rejects.parquet"
    table = pq.read_table(rejects).drop_columns(["reason"])
    pq.write_table(table, rejects)
    assert "manifest/rejects.parquet" in one_line_error(run(*args))


def test_manifest_errors_name_the_problem(build_copy: Path) -> None:
    from dataengine.manifest import ManifestError, open_manifest

    samples = build_copy / "manifest" / "samples.parquet"
    samples.write_bytes(b"junk")
    with pytest.raises(ManifestError, match=r"samples\.parquet: not a readable Parquet file"):
        open_manifest(build_copy)
    pq.write_table(pa.table({"id": ["a"], "duration_s": ["long"]}), samples)
    with pytest.raises(ManifestError, match=r"not a dataengine manifest \(no column 'index'\)"):
        open_manifest(build_copy)


@pytest.mark.parametrize("sql", ["", "   ", ";", "-- only a comment"])
def test_query_without_a_statement_is_one_line(small_build_dir: Path, sql: str) -> None:
    assert "SQL" in one_line_error(run("query", str(small_build_dir), "--", sql))


# --- 10: train run checks before tune starts -----------------------------------------------------------


def test_train_run_checks_data_and_model_files_before_launching(
    small_build_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    launched: list[list[str]] = []
    monkeypatch.setattr(subprocess, "call", lambda cmd, *a, **k: launched.append(cmd) or 0)
    cfg = str(CONFIGS / "tiny_cpu.yaml")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("not a build")
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    for name in ("tokenizer.model", "special_tokens.json", "model.pt"):
        (tiny / name).write_text("x")  # only their presence is checked before the launch
    cases = {
        "no such file or folder": [f"data={tmp_path / 'nope'}", f"tiny_dir={tiny}"],
        "no shards": [f"data={tmp_path / 'notes'}", f"tiny_dir={tiny}"],
        "tokenizer.path": [f"data={small_build_dir}", f"tiny_dir={tmp_path / 'no-tiny'}"],
        "resume_from_checkpoint": [
            f"data={small_build_dir}",
            f"tiny_dir={tiny}",
            "resume_from_checkpoint=true",
            f"output_dir={tmp_path / 'run'}",
        ],
        "overrides must be key=value": [f"data={small_build_dir}", "max_steps"],
    }
    for expected, overrides in cases.items():
        assert expected in one_line_error(run("train", "run", cfg, *overrides)), overrides
    message = one_line_error(run("train", "run", str(CONFIGS / "stage1_llama3_1_8b.yaml")))
    assert message.endswith("data is not set (give data=... on the command line)")
    (tiny / "model.pt").unlink()
    assert "model.pt: no such file" in one_line_error(
        run("train", "run", cfg, f"data={small_build_dir}", f"tiny_dir={tiny}")
    )
    assert launched == []
    (tiny / "model.pt").write_text("x")
    result = run("train", "run", cfg, f"data={small_build_dir}", f"tiny_dir={tiny}")
    # the recipe as tune run's module path (dataengine.training.stream_finetune): it runs from any folder
    assert result.exit_code == 0 and len(launched) == 1
    assert "dataengine/training/stream_finetune.py" in launched[0]
    message = one_line_error(run("train", "run", "no_such_config"))
    assert "no such config file (shipped configs: " in message and ", tiny_cpu" in message
    result = run("train", "run", "tiny_cpu", f"data={small_build_dir}", f"tiny_dir={tiny}")  # a shipped one
    config = launched[-1][launched[-1].index("--config") + 1]
    assert result.exit_code == 0 and Path(config).resolve() == (CONFIGS / "tiny_cpu.yaml").resolve()


# --- 13: audio-check on paths that are not files ---------------------------------------------------------


def test_audio_check_missing_path_and_folder_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "missing.wav"
    result = run("audio-check", "--no-asr", "--json", str(missing), str(tmp_path))
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["error"] for r in rows] == ["no such file", "is a folder, not an audio file"]
    assert one_line_error(result) == f"{missing}: no such file (and 1 more)"


# --- 17: credentials in an --endpoint URL -------------------------------------------------------------


def test_password_in_endpoint_url_is_never_echoed(
    build_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    import huggingface_hub.constants as hf_constants

    caplog.set_level(logging.DEBUG)
    monkeypatch.setattr(hf_constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_TOKEN", "hf_the_wrong_token_for_this_server_00")
    secret = "pw-Zq81xVv"
    with HubServer("hf_the_right_token_0000000000000000") as hub:
        endpoint = hub.url.replace("http://", f"http://alice:{secret}@")
        pushed = run(
            "push", str(build_copy), "--repo", "org/x", "--version", "v1.0.0", "--endpoint", endpoint
        )
        pulled = run(
            "pull", "org/x", "--version", "v1.0.0", "--endpoint", endpoint, "--out", str(tmp_path / "p")
        )
        hub.state.errors.clear()  # the refusals are the point here
    for result in (pushed, pulled):
        assert "401" in one_line_error(result) and "alice:***@" not in result.output
        assert "http://***@127.0.0.1" in result.output
    assert secret not in caplog.text and "***@127.0.0.1" in caplog.text
    assert secret not in one_line_error(
        run("push", str(build_copy), "--repo", f"https://u:{secret}@h/x", "--version", "v1.0.0")
    )


def test_redact() -> None:
    assert (
        redact("GET https://bob:pa55@hub.example/x and ray://u@h:1")
        == "GET https://***@hub.example/x and ray://***@h:1"
    )
    assert redact("token hf_abcdefghijklmnopqrstuvwxyz0123 leaked") == "token hf_*** leaked"
    assert redact("http://127.0.0.1:8080/api/repos/create") == "http://127.0.0.1:8080/api/repos/create"


# --- 18: cache stats on a path that is not a folder ------------------------------------------------------


def test_cache_commands_refuse_a_cache_path_that_is_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = tmp_path / "cache-file"
    file.write_text("x")
    for command in (["stats"], ["gc", "--older-than", "1d"]):
        assert one_line_error(run("cache", "--cache-dir", str(file), *command)).startswith(
            f"{file}: not a folder"
        )
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "stages").write_text("x")
    monkeypatch.setenv("DATAENGINE_CACHE", str(tmp_path / "c"))
    assert "$DATAENGINE_CACHE" in one_line_error(run("cache", "stats"))
    empty = run("cache", "--cache-dir", str(tmp_path / "new"), "stats")
    assert empty.exit_code == 0 and "0 entries" in empty.output  # a cache not made yet is empty, not an error
