"""The streaming torchtune recipe: the tiny model learns, resume is exact, the 8B configs are sound."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from build_facts import ManifestFacts
from click.testing import CliRunner
from dataengine.training.checkpoints import MARKER, latest_complete
from dataengine.training.preflight import PreflightError, check_run_config
from dataengine.training.stream_finetune import run
from omegaconf import OmegaConf
from torchtune import config
from training_fixtures import tiny_dir, tiny_tokenizer

from dataengine.cli import main

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "training" / "configs"
DATAENGINE = [sys.executable, "-m", "dataengine.cli"]


def tiny_cfg(data: Path, out: Path, **overrides: object) -> dict:
    cfg = OmegaConf.load(CONFIGS / "tiny_cpu.yaml")
    cfg.merge_with({"data": str(data), "tiny_dir": str(tiny_dir()), "output_dir": str(out), **overrides})
    return cfg


def step_ids(out: Path) -> list[tuple[int, list[str]]]:
    lines = (out / "sample_ids.rank0.jsonl").read_text().splitlines()
    return [(r["step"], r["ids"]) for r in map(json.loads, lines)]


def logged_losses(out: Path) -> list[float]:
    text = "".join(p.read_text() for p in sorted((out / "logs").glob("*.txt")))
    return [float(x) for x in re.findall(r"loss:([0-9.]+)", text)]


@pytest.mark.slow
def test_train_run_trains_the_tiny_model_from_the_shards_and_the_loss_falls(
    small_build_dir: Path, tmp_path: Path, small_facts: ManifestFacts
) -> None:
    """The product path: ``dataengine train init-tiny`` then ``dataengine train run`` (= ``tune run``)."""
    tiny, out = tmp_path / "tiny", tmp_path / "run"
    env = {**os.environ, "TIKTOKEN_CACHE_DIR": str(tmp_path / "tiktoken")}
    made = subprocess.run(
        [*DATAENGINE, "train", "init-tiny", str(tiny)], capture_output=True, text=True, env=env
    )
    assert made.returncode == 0 and "vocab_size 1091" in made.stdout, made.stderr[-2000:]
    cmd = [
        *DATAENGINE,
        "train",
        "run",
        str(CONFIGS / "tiny_cpu.yaml"),
        f"data={small_build_dir}",
        f"tiny_dir={tiny}",
        f"output_dir={out}",
        "max_steps=30",
        "save_every_n_steps=30",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    losses = logged_losses(out)
    assert len(losses) == 30
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5, losses
    assert (out / "epoch_30" / "model-00001-of-00001.bin").is_file()
    trained = [i for _, ids in step_ids(out) for i in ids]
    assert set(trained) == set(small_facts.ids) and len(trained) > small_facts.kept  # > 1 epoch


def test_train_run_and_init_tiny_bad_input_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["train", "run", str(tmp_path / "nope.yaml")])
    assert (
        result.exit_code == 2
        and result.output.strip().startswith(f"Error: {tmp_path / 'nope.yaml'}: no such config file (shipped")
        and "tiny_cpu" in result.output
        and len(result.output.strip().splitlines()) == 1
    )
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    result = CliRunner().invoke(main, ["train", "init-tiny", str(tmp_path / "full")])
    assert result.exit_code == 2 and "folder exists and is not empty" in result.output


@pytest.fixture(scope="module")
def uninterrupted(small_build_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 steps straight, a checkpoint every 4: what a killed and resumed run must equal."""
    out = tmp_path_factory.mktemp("whole")
    run(tiny_cfg(small_build_dir, out, max_steps=10, save_every_n_steps=4))
    return out


def _killed_run(small_build_dir: Path, out: Path, crash_at: str) -> None:
    cfg = OmegaConf.to_container(
        tiny_cfg(small_build_dir, out, max_steps=10, save_every_n_steps=4), resolve=True
    )
    code = (
        "import json, sys; from dataengine.training.stream_finetune import run; run(json.loads(sys.argv[1]))"
    )
    env = {**os.environ, "DATAENGINE_CRASH_AT": crash_at}  # kill -9 itself there
    killed = subprocess.run(
        [sys.executable, "-c", code, json.dumps(cfg)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]


def _resume_equals(small_build_dir: Path, parts: Path, whole: Path) -> None:
    run(tiny_cfg(small_build_dir, parts, max_steps=10, save_every_n_steps=4, resume_from_checkpoint=True))
    assert step_ids(parts) == step_ids(whole)  # the lost steps again, on the same samples, recorded once
    final = [
        torch.load(d / "epoch_10" / "model-00001-of-00001.bin", weights_only=True) for d in (whole, parts)
    ]
    for key, value in final[0].items():
        torch.testing.assert_close(final[1][key], value, rtol=1e-5, atol=1e-6)


def test_killed_and_resumed_run_trains_on_exactly_the_uninterrupted_sequence(
    small_build_dir: Path, tmp_path: Path, uninterrupted: Path
) -> None:
    """SIGKILLed after step 6 (checkpoints every 4 steps: the step-4 one is on disk, steps 5-6 are lost),
    then resumed: it trains steps 5-10 on exactly the samples of an uninterrupted run, to the same weights."""
    parts = tmp_path / "parts"
    _killed_run(small_build_dir, parts, "train_step:6")
    assert [s for s, _ in step_ids(parts)] == list(range(1, 7))  # it trained past its checkpoint
    assert sorted(p.name for p in parts.glob("epoch_*")) == ["epoch_4"]
    assert (parts / "epoch_4" / MARKER).is_file()
    _resume_equals(small_build_dir, parts, uninterrupted)


def test_a_kill_inside_a_checkpoint_save_resumes_from_the_last_complete_one(
    small_build_dir: Path, tmp_path: Path, uninterrupted: Path
) -> None:
    """SIGKILLed while the step-8 checkpoint is being saved (torchtune wrote it, it is not yet marked
    complete), and ``recipe_state/recipe_state.pt`` then cut short as a kill inside it leaves it: the
    resume starts from step 4 with step 4's own recipe state and ends where the uninterrupted run does.
    (Before, it took epoch_8 as the latest and failed on the torn file; killed between torchtune's two
    writes it would have paired step 8's weights with step 4's optimizer and data position.)"""
    parts = tmp_path / "parts"
    _killed_run(small_build_dir, parts, "checkpoint_saved:2")
    assert sorted(p.name for p in parts.glob("epoch_*")) == ["epoch_4", "epoch_8"]
    assert (parts / "epoch_4" / MARKER).is_file() and not (parts / "epoch_8" / MARKER).exists()
    assert latest_complete(parts) == parts / "epoch_4"
    state = parts / "recipe_state" / "recipe_state.pt"
    state.write_bytes(state.read_bytes()[:200])  # torn mid-write
    _resume_equals(small_build_dir, parts, uninterrupted)


def test_resume_without_a_complete_checkpoint_is_one_line(small_build_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "epoch_4").mkdir()  # a step folder never marked complete (or from before the marks)
    overrides = [f"data={small_build_dir}", f"tiny_dir={tiny_dir()}", f"output_dir={tmp_path}"]
    with pytest.raises(
        PreflightError, match=r"no complete checkpoint in .* \(epoch_4: .*need CHECKPOINT_COMPLETE"
    ):
        check_run_config(CONFIGS / "tiny_cpu.yaml", [*overrides, "resume_from_checkpoint=true"])


@pytest.mark.parametrize(
    ("name", "global_batch", "lr", "warmup", "wd", "max_len"),
    [
        ("stage1_llama3_1_8b.yaml", 80, 2e-4, 20, 0.01, 512),
        ("stage2_llama3_1_8b.yaml", 128, 0.5e-4, 73, 0.005, 1024),
    ],
)
def test_8b_configs_parse_and_their_components_instantiate(
    small_build_dir: Path, name: str, global_batch: int, lr: float, warmup: int, wd: float, max_len: int
) -> None:
    cfg = OmegaConf.load(CONFIGS / name)
    cfg.data = str(small_build_dir)
    assert cfg.batch_size * cfg.gradient_accumulation_steps * 8 == cfg.global_batch_size == global_batch
    assert (cfg.dtype, cfg.enable_activation_checkpointing, cfg.dataset.max_seq_len) == (
        "bf16",
        True,
        max_len,
    )
    assert cfg.model._component_ == "torchtune.models.llama3_1.llama3_1"
    assert cfg.model.vocab_size == 128771 and cfg.model.num_layers == 32  # no 8B model is built here
    param = torch.nn.Parameter(torch.zeros(4))
    cfg.optimizer.fused = False  # fused AdamW is for GPUs
    optimizer = config.instantiate(cfg.optimizer, [param])
    assert optimizer.defaults["lr"] == lr and optimizer.defaults["weight_decay"] == wd
    scheduler = config.instantiate(cfg.lr_scheduler, optimizer, num_training_steps=cfg.max_steps)
    lrs = []
    for _ in range(warmup + 2):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == 0 and lrs[warmup] == pytest.approx(lr) and lrs[warmup + 1] < lr
    assert config.instantiate(cfg.loss).ignore_index == -100
    dataset = config.instantiate(cfg.dataset, tiny_tokenizer())  # the real tokenizer.model is not here
    item = next(iter(dataset))
    assert item["tokens"].shape == (max_len,)
    assert OmegaConf.select(cfg, "checkpointer.model_type") == "LLAMA3"


def _step_folder(out: Path, step: int, weights: str = "model-00001-of-00001.bin") -> Path:
    from dataengine.training.checkpoints import mark_complete

    (out / "recipe_state").mkdir(parents=True, exist_ok=True)
    torch.save({"global_step": step}, out / "recipe_state" / "recipe_state.pt")
    folder = out / f"epoch_{step}"
    folder.mkdir()
    if weights.endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file({"w": torch.ones(64)}, folder / weights)
    else:
        torch.save({"w": torch.ones(64)}, folder / weights)
    return mark_complete(out, step)


@pytest.mark.parametrize("weights", ["model-00001-of-00001.bin", "model-00001-of-00001.safetensors"])
def test_a_marked_checkpoint_with_a_torn_or_missing_file_is_passed_over(tmp_path: Path, weights: str) -> None:
    """A mark says the save finished; files damaged afterwards (a disk, a user) must not be loaded:
    resume falls back to the step before, as for a folder never marked."""
    older, newer = _step_folder(tmp_path, 2, weights), _step_folder(tmp_path, 4, weights)
    assert latest_complete(tmp_path) == newer
    for damage in ("truncate state", "delete state", "truncate weights", "delete weights"):
        target = newer / ("recipe_state.pt" if "state" in damage else weights)
        saved = target.read_bytes()
        if damage.startswith("truncate"):
            target.write_bytes(saved[: len(saved) // 2])
        else:
            target.unlink()
        assert latest_complete(tmp_path) == older, damage
        target.write_bytes(saved)
        assert latest_complete(tmp_path) == newer


def test_an_output_dir_that_cannot_take_checkpoints_is_one_line(
    small_build_dir: Path, tmp_path: Path
) -> None:
    overrides = [f"data={small_build_dir}", f"tiny_dir={tiny_dir()}"]
    afile = tmp_path / "run.txt"
    afile.write_text("not a folder")
    with pytest.raises(PreflightError, match=r"^output_dir: .*run.txt is a file, not a folder$"):
        check_run_config(CONFIGS / "tiny_cpu.yaml", [*overrides, f"output_dir={afile}"])
    out = tmp_path / "run"
    _step_folder(out, 2)
    (out / "epoch_4").write_text("hi")  # torchtune would train to step 4, then fail to save there
    for resume in ("false", "true"):
        with pytest.raises(PreflightError, match=r"^output_dir: .*epoch_4 is not a folder"):
            check_run_config(
                CONFIGS / "tiny_cpu.yaml",
                [*overrides, f"output_dir={out}", f"resume_from_checkpoint={resume}"],
            )
