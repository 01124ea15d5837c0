"""Publishing: verify, the local-folder target, and the Hub flow against a real local HTTP server."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import huggingface_hub.constants as hf_constants
import pytest
from build_facts import ManifestFacts
from click.testing import CliRunner
from hub_server import HubServer

from dataengine.cli import main
from dataengine.publish.seal import write_build_info
from dataengine.publish.verify import verify_build

TOKEN = "hf_dataengineTEST_secret_7Qx93kLmZ"


@pytest.fixture()
def build_copy(small_build_dir: Path, tmp_path: Path) -> Path:
    out = tmp_path / "build"
    shutil.copytree(small_build_dir, out)
    return out


@pytest.fixture()
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """The test Hub on 127.0.0.1:<random port>; the client speaks LFS (no Xet) and reads HF_TOKEN."""
    monkeypatch.setattr(hf_constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    with HubServer(TOKEN) as server:
        yield server
    assert server.state.errors == [], "the client sent requests the Hub would refuse"


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def other_build(out: Path) -> None:
    """Make ``out`` another whole build: a changed recipe, sealed into ``build.json`` as a build does."""
    (out / "recipe.yaml").write_text((out / "recipe.yaml").read_text() + "# changed\n")
    info = json.loads((out / "build.json").read_text())
    write_build_info(out, {k: v for k, v in info.items() if k not in ("files", "seal")})


def test_verify_passes_and_catches_tampering(build_copy: Path, small_facts: ManifestFacts) -> None:
    result = run("verify", str(build_copy))
    assert result.exit_code == 0, result.output
    n, shards = small_facts.kept, len(small_facts.shards)
    assert f"{n} samples in {shards} shard(s) match the manifest" in result.output
    shard = build_copy / "shards" / "train-000001.tar"
    with tarfile.open(shard) as tar:
        second = tar.getmembers()[1]
    assert second.size > 20
    data = bytearray(shard.read_bytes())
    data[second.offset_data + 10] ^= 0xFF  # a byte inside the second member's payload
    shard.write_bytes(bytes(data))
    report = verify_build(build_copy)
    assert not report.ok and "hash differs from the manifest" in report.problems[0]
    result = run("verify", str(build_copy))
    assert (
        result.exit_code == 2 and "verification failed" in result.output and "Traceback" not in result.output
    )
    assert len(result.output.strip().splitlines()) == 1


def test_verify_not_a_build(tmp_path: Path) -> None:
    result = run("verify", str(tmp_path))
    assert result.exit_code == 2 and "not a dataengine build" in result.output


def test_local_push_pull_roundtrip(build_copy: Path, tmp_path: Path, small_facts: ManifestFacts) -> None:
    repo = tmp_path / "repo"
    first = run("push", str(build_copy), "--repo", f"file://{repo}", "--version", "v1.0.0")
    assert first.exit_code == 0 and "published v1.0.0" in first.output, first.output
    again = run("push", str(build_copy), "--repo", str(repo), "--version", "v1.0.0")
    assert again.exit_code == 0 and "nothing to do" in again.output
    assert run("push", str(build_copy), "--repo", str(repo), "--version", "v1.1.0").exit_code == 0
    index = json.loads((repo / "index.json").read_text())
    assert [v["version"] for v in index["versions"]] == ["v1.0.0", "v1.1.0"] and index["latest"] == "v1.1.0"
    assert sorted(p.name for p in (repo / "versions").iterdir()) == ["v1.0.0", "v1.1.0"]  # no temp left

    other_build(build_copy)
    refused = run("push", str(build_copy), "--repo", str(repo), "--version", "v1.0.0")
    assert refused.exit_code == 2 and "already holds a different build" in refused.output
    assert "Traceback" not in refused.output

    dest = tmp_path / "pulled"
    pulled = run("pull", f"file://{repo}", "--version", "v1.0.0", "--out", str(dest))
    assert pulled.exit_code == 0 and "match the manifest" in pulled.output, pulled.output
    for rel in ["manifest/samples.parquet", *(f"shards/{name}" for name in small_facts.shards)]:
        assert (dest / rel).read_bytes() == (build_copy / rel).read_bytes()
    assert (dest / "README.md").read_text().startswith("---\n") and (dest / "plots").is_dir()
    missing = run("pull", str(repo), "--version", "v9.9.9", "--out", str(tmp_path / "x"))
    assert missing.exit_code == 2 and "no version v9.9.9" in missing.output


def test_interrupted_local_push_leaves_no_version(build_copy: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "versions" / ".v1.0.0.tmp" / "shards").mkdir(parents=True)  # what a killed push leaves
    assert run("pull", str(repo), "--version", "v1.0.0", "--out", str(tmp_path / "p")).exit_code == 2
    assert run("push", str(build_copy), "--repo", str(repo), "--version", "v1.0.0").exit_code == 0
    assert sorted(p.name for p in (repo / "versions").iterdir()) == ["v1.0.0"]
    assert verify_build(repo / "versions" / "v1.0.0").ok


def test_hub_push_tag_pull_and_identity(
    hub: HubServer, build_copy: Path, tmp_path: Path, small_facts: ManifestFacts
) -> None:
    args = ["push", str(build_copy), "--repo", "org/small", "--version", "v1.0.0", "--endpoint", hub.url]
    first = run(*args)
    assert first.exit_code == 0 and "published org/small@v1.0.0" in first.output, first.output
    repo = hub.state.repos["org/small"]
    assert list(repo.tags) == ["v1.0.0"] and repo.tags["v1.0.0"] == repo.branches["main"]
    tree = repo.commits[repo.tags["v1.0.0"]]
    last_shard = f"shards/{small_facts.shards[-1]}"
    assert {"README.md", "checksums.json", "manifest/samples.parquet", last_shard} <= set(tree)
    assert tree["shards/train-000000.tar"].data == (build_copy / "shards/train-000000.tar").read_bytes()
    assert tree["shards/train-000000.tar"].lfs and not tree["README.md"].lfs
    assert hub.state.count("POST", r"/commit/") == 1  # one commit for the whole version

    uploads = hub.state.count("PUT", "lfs-upload")
    again = run(*args)
    assert again.exit_code == 0 and "nothing to do" in again.output
    assert hub.state.count("POST", r"/commit/") == 1 and hub.state.count("PUT", "lfs-upload") == uploads

    other_build(build_copy)
    refused = run(*args)
    assert refused.exit_code == 2 and "tag v1.0.0 already holds a different build" in refused.output
    assert list(repo.tags) == ["v1.0.0"]

    dest = tmp_path / "pulled"
    pulled = run("pull", "org/small", "--version", "v1.0.0", "--out", str(dest), "--endpoint", hub.url)
    assert pulled.exit_code == 0 and "match the manifest" in pulled.output, pulled.output
    assert (dest / "shards/train-000001.tar").read_bytes() == tree["shards/train-000001.tar"].data
    assert not (dest / ".cache").exists()
    assert run("verify", str(dest)).exit_code == 0
    nope = run(
        "pull", "org/small", "--version", "v2.0.0", "--out", str(tmp_path / "n"), "--endpoint", hub.url
    )
    assert nope.exit_code == 2 and "no version v2.0.0" in nope.output


def test_hub_interrupted_push_leaves_no_tag_and_resumes(hub: HubServer, build_copy: Path) -> None:
    args = ["push", str(build_copy), "--repo", "org/resume", "--version", "v0.1.0", "--endpoint", hub.url]
    args.append("--private")
    hub.state.fail_commits = 1
    failed = run(*args)
    assert failed.exit_code == 2 and "create_commit failed (HTTP 500)" in failed.output, failed.output
    repo = hub.state.repos["org/resume"]
    assert repo.private and repo.tags == {} and len(repo.commits) == 1  # nothing visible: no tag, no commit
    uploaded = hub.state.count("PUT", "lfs-upload")
    assert uploaded >= 3  # the shards reached LFS storage before the commit failed

    resumed = run(*args)
    assert resumed.exit_code == 0 and "published org/resume@v0.1.0" in resumed.output, resumed.output
    assert hub.state.count("PUT", "lfs-upload") == uploaded  # the client's LFS batch skipped them
    assert list(repo.tags) == ["v0.1.0"]


def test_hub_push_interrupted_before_its_tag_tags_the_landed_commit(hub: HubServer, build_copy: Path) -> None:
    args = ["push", str(build_copy), "--repo", "org/tagless", "--version", "v2.0.0", "--endpoint", hub.url]
    hub.state.fail_tags = 1
    failed = run(*args)
    assert failed.exit_code == 2 and "create_tag failed" in failed.output, failed.output
    repo = hub.state.repos["org/tagless"]
    assert repo.tags == {} and len(repo.commits) == 2  # the commit landed, no version is visible
    resumed = run(*args)
    assert resumed.exit_code == 0 and "already on main: tagged it" in resumed.output, resumed.output
    assert len(repo.commits) == 2 and repo.tags == {"v2.0.0": repo.branches["main"]}


def test_token_never_leaks(hub: HubServer, build_copy: Path, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    outputs = [
        run(
            "push", str(build_copy), "--repo", "org/tok", "--version", "v1.0.0", "--endpoint", hub.url
        ).output,
        run(
            "pull", "org/tok", "--version", "v1.0.0", "--out", str(tmp_path / "p"), "--endpoint", hub.url
        ).output,
        run("push", str(build_copy), "--repo", str(tmp_path / "local"), "--version", "v1.0.0").output,
    ]
    os.environ["HF_TOKEN"] = TOKEN + "x"  # a wrong token: the refusal must not echo it either
    bad = run("push", str(build_copy), "--repo", "org/tok2", "--version", "v1.0.0", "--endpoint", hub.url)
    assert bad.exit_code == 2 and "401" in bad.output
    outputs.append(bad.output)
    texts = outputs + [caplog.text]
    for folder in (build_copy, tmp_path / "p", tmp_path / "local", Path(__file__).parents[1] / ".dvc"):
        texts += [p.read_bytes().decode("latin-1") for p in folder.rglob("*") if p.is_file()]
    for repo in hub.state.repos.values():
        texts += [e.data.decode("latin-1") for tree in repo.commits.values() for e in tree.values()]
    texts.append((Path(__file__).parents[1] / "dvc.yaml").read_text())
    assert len(texts) > 30
    assert not [t for t in texts if TOKEN in t]
    assert hub.state.count("POST", "/commit/") >= 1


def test_load_dataset_from_the_hub_server(
    hub: HubServer, build_copy: Path, tmp_path: Path, small_facts: ManifestFacts
) -> None:
    args = ["push", str(build_copy), "--repo", "org/load", "--version", "v1.0.0", "--endpoint", hub.url]
    assert run(*args).exit_code == 0
    code = (
        "import datasets, json; ds = datasets.load_dataset('org/load', revision='v1.0.0', split='train');"
        "r = ds[0]; print(json.dumps([len(ds), r['json']['id'], r['tokens.npy'][:3], "
        "type(r['flac']).__name__]))"
    )
    env = {
        **os.environ,
        "HF_ENDPOINT": hub.url,
        "HF_HUB_OFFLINE": "0",
        "HF_HOME": str(tmp_path / "hf2"),
        "HF_HUB_DISABLE_XET": "1",
    }
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    n, first_id, tokens, flac_type = json.loads(proc.stdout.strip().splitlines()[-1])
    assert n == small_facts.kept and first_id == small_facts.ids[0]
    assert len(tokens) == 3 and flac_type == "bytes"
    last_shard = re.escape(small_facts.shards[-1])
    assert hub.state.count("GET", rf"/resolve/[0-9a-f]{{40}}/shards/{last_shard}") >= 1


def test_hub_server_refuses_malformed_requests(hub: HubServer) -> None:
    import urllib.error
    import urllib.request

    def post(path: str, body: bytes, ctype: str, token: str = TOKEN) -> int:
        request = urllib.request.Request(hub.url + path, data=body, method="POST")
        request.add_header("Content-Type", ctype)
        request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    create = json.dumps({"name": "bad", "organization": "org", "type": "dataset"}).encode()
    assert post("/api/repos/create", create, "application/json", token="wrong") == 401
    assert post("/api/repos/create", create, "application/json") == 200
    header = {"key": "header", "value": {"summary": "x", "description": ""}}
    ghost = {"key": "lfsFile", "value": {"path": "a.tar", "algo": "sha256", "oid": "0" * 64, "size": 3}}
    body = "\n".join(json.dumps(x) for x in (header, ghost)).encode()
    assert post("/api/datasets/org/bad/commit/main", body, "application/x-ndjson") == 400
    assert post("/api/datasets/org/bad/commit/main", body, "application/json") == 400
    assert len(hub.state.errors) == 2 and "never uploaded" in hub.state.errors[0]
    hub.state.errors.clear()  # expected here; the fixture checks that real flows leave none
