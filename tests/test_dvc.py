"""DVC: the repository's dvc.yaml shape on a tiny recipe in a throw-away git repo (repro, status, params diff,
push/pull through a local-directory remote)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TINY = """name: tiny
seed: 3
limit: 4
source: {kind: chatterbot, categories: [ai]}
audio_filters: {min_snr_db: 10.0}
shards: {max_samples: 2}
"""


def _env() -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }


def sh(cwd: Path, *args: str) -> str:
    proc = subprocess.run(list(args), cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{args}: {proc.stdout[-1500:]} {proc.stderr[-1500:]}"
    return proc.stdout


def dvc(cwd: Path, *args: str) -> str:
    return sh(cwd, sys.executable, "-m", "dvc", *args)


def test_repository_dvc_yaml_has_a_stage_per_recipe() -> None:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    recipes = sorted(p.stem for p in (ROOT / "recipes").glob("*.yaml") if p.stem != "codebook")
    assert sorted(stages) == recipes
    for name, stage in stages.items():
        assert f"recipes/{name}.yaml" in stage["deps"] and "dataengine" in stage["deps"]
        assert "dataengine/assets" in stage["deps"] and stage["outs"] == [f"build/{name}"]
        assert f"recipes/{name}.yaml" in stage["params"][0] and "dataengine card" in stage["cmd"]
    assert (ROOT / ".dvc" / "config").is_file() and "__pycache__/" in (ROOT / ".dvcignore").read_text()


@pytest.mark.slow
def test_dvc_repro_status_params_diff_and_remote_roundtrip(tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    (proj / "recipes").mkdir(parents=True)
    shutil.copytree(ROOT / "dataengine", proj / "dataengine", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "cards", proj / "cards")
    for name in (".dvcignore", ".gitignore"):  # the repository's own: build/ is git-ignored there too
        shutil.copy(ROOT / name, proj / name)
    (proj / "recipes" / "tiny.yaml").write_text(TINY)
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["demo"]
    tiny = yaml.safe_load(yaml.safe_dump(stage).replace("demo", "tiny").replace(" --workers 2", ""))
    (proj / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"tiny": tiny}}))
    sh(proj, "git", "init", "-q")
    dvc(proj, "init", "-q")

    dvc(proj, "repro")
    build = proj / "build" / "tiny"
    assert (build / "README.md").is_file() and (build / "plots" / "duration_hist.png").is_file()
    assert "up to date" in dvc(proj, "status")
    assert (proj / "dvc.lock").is_file() and "min_snr_db: 10.0" in (proj / "dvc.lock").read_text()

    remote = tmp_path / "remote"
    dvc(proj, "remote", "add", "-d", "store", str(remote))
    sh(proj, "git", "add", "-A")
    sh(proj, "git", "commit", "-q", "-m", "tiny build")
    dvc(proj, "push")

    recipe = proj / "recipes" / "tiny.yaml"
    recipe.write_text(TINY.replace("min_snr_db: 10.0", "min_snr_db: 12.5"))
    status = dvc(proj, "status")
    assert "tiny:" in status and "changed deps" in status and "recipes/tiny.yaml" in status
    diff = dvc(proj, "params", "diff")
    assert "audio_filters.min_snr_db" in diff and "10.0" in diff and "12.5" in diff

    clone = tmp_path / "clone"
    sh(tmp_path, "git", "clone", "-q", str(proj), str(clone))
    dvc(clone, "pull")
    files = sorted(p.relative_to(build) for p in build.rglob("*") if p.is_file())
    assert len(files) >= 8
    for rel in files:
        assert (clone / "build" / "tiny" / rel).read_bytes() == (build / rel).read_bytes(), rel
