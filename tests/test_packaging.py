"""Packaging that survives a real install (issue 15.6): training's code as ``dataengine.training``, the
card templates as package data, and a non-editable install that builds, writes a card and trains from
another folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
import yaml
from conftest import SMALL_RECIPE
from setuptools import find_packages
from training_fixtures import tiny_dir

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]


def test_every_package_is_listed_and_the_mapped_folders_exist() -> None:
    mapped = PYPROJECT["package-dir"]
    assert mapped == {"dataengine.training": "training", "dataengine.cards": "cards"}
    found = set(find_packages(str(ROOT), include=["dataengine*"]))
    assert set(PYPROJECT["packages"]) == found | set(mapped)  # a new subpackage must be added to the list
    assert (ROOT / "training" / "__init__.py").is_file() and (ROOT / "cards" / "dataset_card.md.j2").is_file()
    assert "training" not in PYPROJECT["packages"]  # no top-level `training` package any more
    for config in (ROOT / "training" / "configs").glob("*.yaml"):
        components = [line for line in config.read_text().splitlines() if "_component_: training." in line]
        assert not components, config


def _copy_source(target: Path) -> Path:
    """The checkout without outputs or caches (pip builds inside the folder it installs from)."""
    ignore = shutil.ignore_patterns(".git", ".venv", "build", "__pycache__", "*.egg-info", ".*cache", ".dvc")
    shutil.copytree(ROOT, target, ignore=ignore)
    return target


@pytest.mark.slow
def test_a_non_editable_install_builds_writes_a_card_and_trains_from_another_folder(
    tmp_path: Path, small_build_dir: Path
) -> None:
    """Installed without -e into a fresh venv (the dependencies come from this environment: no network),
    run from a folder with no checkout in it. ``small_build_dir`` filled the stage cache this build reads."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # this env's packages
    source = _copy_source(tmp_path / "src")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-compile",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            str(source),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    shutil.rmtree(source)  # nothing may read the source tree from here on
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DATAENGINE_CARD_TEMPLATES")}
    env["TIKTOKEN_CACHE_DIR"] = str(tmp_path / "tiktoken")

    def run(*args: str) -> str:
        done = subprocess.run(
            [str(venv / "bin" / "dataengine"), *args], cwd=work, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    where = subprocess.run(
        [
            python,
            "-c",
            "import dataengine, dataengine.training, dataengine.cards; "
            "print(dataengine.__file__, dataengine.training.__file__, list(dataengine.cards.__path__)[0])",
        ],
        cwd=work,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert all(path.startswith(site) for path in where), where  # the installed copy, not a checkout
    assert subprocess.run([python, "-c", "import training"], cwd=work, env=env).returncode != 0

    recipe = work / "tiny.yaml"
    recipe.write_text(yaml.safe_dump({**SMALL_RECIPE, "limit": 3}))
    run("build", "tiny.yaml", "--out", "out", "--no-progress")
    info = json.loads((work / "out" / "build.json").read_text())
    assert info["kept"] + info["rejected"] == 3 and info["kept"] >= 1
    run("card", "out")  # the shipped template (no cards/ here, no $DATAENGINE_CARD_TEMPLATES)
    card = (work / "out" / "README.md").read_text()
    assert card.startswith("---\n") and "built by\ndataengine from the recipe `small`" in card
    assert list((work / "out" / "plots").glob("*.png"))

    run(
        "train",
        "run",
        "tiny_cpu",
        "data=out",
        f"tiny_dir={tiny_dir()}",
        "output_dir=run",
        "max_steps=2",
        "save_every_n_steps=2",
    )
    assert list((work / "run").rglob("*.pt")), "the run saved no checkpoint"
