"""Full fine-tuning that streams dataengine's shards: a copy-and-edit of torchtune's
``full_finetune_single_device`` / ``full_finetune_distributed`` recipes, counted in optimizer steps.

    tune run dataengine/training/stream_finetune.py --config training/configs/tiny_cpu.yaml
    tune run --nproc_per_node 8 dataengine/training/stream_finetune.py \
        --config training/configs/stage1_llama3_1_8b.yaml

One process per device; with more than one process the model is sharded with FSDP2 (torchtune's
``shard_model``). Streaming data (``dataengine.training.dataset``), gradient accumulation, bf16, activation
checkpointing, warmup schedules, and checkpoint + resume, where the data position is part of the
recipe state. Edit this file rather than subclassing it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
from dataengine.training.checkpoints import (
    RECIPE_STATE,
    incomplete_note,
    latest_complete,
    mark_complete,
    weight_files,
)
from dataengine.training.loader import StreamingLoader
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.distributed.tensor import DTensor
from torchtune import config, modules, training, utils
from torchtune.training.lr_schedulers import get_lr

from dataengine.crashpoints import crash_point

log = utils.get_logger("INFO")
DATA_KEY = "data_position"
STEP_KEY = "global_step"


class StreamFinetuneRecipe:
    """Wires torchtune components around a streaming loader; ``train()`` runs ``max_steps`` steps."""

    def __init__(self, cfg: DictConfig) -> None:
        self.device = utils.get_device(device=cfg.device)
        self.distributed = _launched_by_torchrun()
        if self.distributed:  # gloo on CPU (tests), nccl (+ gloo for CPU offload) on GPUs
            offload = bool(cfg.get("fsdp_cpu_offload", False))
            torch.distributed.init_process_group(training.get_distributed_backend(self.device.type, offload))
        self.world_size, self.rank = utils.get_world_size_and_rank()
        self.is_rank_zero = self.rank == 0
        self.dtype = training.get_dtype(cfg.dtype, device=self.device)
        self.output_dir = Path(cfg.output_dir)
        self.max_steps = int(cfg.max_steps)
        self.stop_after_steps = cfg.get("stop_after_steps")
        self.save_every = int(cfg.get("save_every_n_steps", self.max_steps))
        self.accum = int(cfg.gradient_accumulation_steps)
        self.batch_size = int(cfg.batch_size)
        self.clip_grad_norm = cfg.get("clip_grad_norm")
        self.log_every = int(cfg.get("log_every_n_steps", 1))
        self.record_sample_ids = bool(cfg.get("record_sample_ids", False))
        self.resume = bool(cfg.resume_from_checkpoint)
        self.global_step = 0
        global_batch = cfg.get("global_batch_size")
        actual = self.batch_size * self.accum * self.world_size
        if global_batch is not None and int(global_batch) != actual:
            raise ValueError(
                f"global_batch_size {global_batch} != batch_size {self.batch_size} x "
                f"gradient_accumulation_steps {self.accum} x {self.world_size} process(es) = {actual}"
            )
        self.seed = training.set_seed(seed=cfg.seed)
        if self.device.type == "cpu" and cfg.get("cpu_threads"):  # tiny models: extra threads only contend
            torch.set_num_threads(int(cfg.cpu_threads))

    # -- setup -----------------------------------------------------------------------------------
    def setup(self, cfg: DictConfig) -> None:
        self.metric_logger = config.instantiate(cfg.metric_logger) if self.is_rank_zero else None
        ckpt = self._load_checkpoint(cfg.checkpointer)
        self.model = self._setup_model(cfg, ckpt[training.MODEL_KEY])
        self.tokenizer = config.instantiate(cfg.tokenizer)
        self.optimizer = config.instantiate(cfg.optimizer, self.model.parameters())
        if self.resume:
            if self.distributed:
                training.load_from_full_optimizer_state_dict(
                    self.model, self.optimizer, ckpt[training.OPT_KEY], self.device
                )
            else:
                self.optimizer.load_state_dict(ckpt[training.OPT_KEY])
            self.global_step = int(ckpt[STEP_KEY])
        self.loss_fn = config.instantiate(cfg.loss)
        if self.loss_fn.__class__.__name__ == "CEWithChunkedOutputLoss":
            self.model.set_num_output_chunks(self.loss_fn.num_output_chunks)
        self.lr_scheduler = (
            config.instantiate(
                cfg.lr_scheduler,
                self.optimizer,
                num_training_steps=self.max_steps,
                last_epoch=self.global_step - 1,
            )
            if cfg.get("lr_scheduler")
            else None
        )
        dataset = config.instantiate(cfg.dataset, self.tokenizer)
        self.loader = StreamingLoader(dataset, self.batch_size, num_workers=int(cfg.get("num_workers", 0)))
        if self.resume:
            self.loader.load_state_dict(ckpt[DATA_KEY])

    def _load_checkpoint(self, cfg_checkpointer: DictConfig) -> dict[str, Any]:
        overrides: dict[str, Any] = {"should_load_recipe_state": self.resume}
        if self.resume:  # the newest step folder written to the end (torchtune names it epoch_<n>)
            latest = latest_complete(self.output_dir)
            if latest is None:
                raise FileNotFoundError(f"resume_from_checkpoint: {incomplete_note(self.output_dir)}")
            log.info(f"resuming from {latest}")
            overrides["checkpoint_files"] = [f"{latest.name}/{p.name}" for p in weight_files(latest)]
            overrides["recipe_checkpoint"] = f"{latest.name}/{RECIPE_STATE}"  # that step's own state
        self.checkpointer = config.instantiate(cfg_checkpointer, **overrides)
        return self.checkpointer.load_checkpoint()

    def _setup_model(self, cfg: DictConfig, state_dict: dict[str, Any]) -> nn.Module:
        init_device = "meta" if self.distributed else self.device
        with training.set_default_dtype(self.dtype), torch.device(init_device):
            model = config.instantiate(cfg.model)
        if cfg.get("compile", False):
            training.compile_model(model, verbose=self.is_rank_zero)
        if cfg.get("enable_activation_checkpointing", False):
            training.set_activation_checkpointing(
                model, auto_wrap_policy={modules.TransformerSelfAttentionLayer}
            )
        if self.distributed:
            training.shard_model(
                model,
                [training.get_shard_conditions],
                cpu_offload=bool(cfg.get("fsdp_cpu_offload", False)),
                reshard_after_forward=bool(cfg.get("fsdp_reshard_after_forward", True)),
            )
            with training.set_default_dtype(self.dtype), self.device:
                for m in model.modules():
                    if hasattr(m, "rope_init"):
                        m.rope_init()
            training.load_from_full_model_state_dict(model, state_dict, self.device, strict=True)
        else:
            model.load_state_dict(state_dict)
        training.validate_expected_param_dtype(model.named_parameters(), dtype=self.dtype)
        return model

    # -- checkpoints -----------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        """Model, optimizer, step and every rank's data position; folder ``epoch_<step>``."""
        if self.distributed:
            model_sd = training.gather_cpu_state_dict(self.model, self.is_rank_zero, device=self.device)
            opt_sd = training.get_full_optimizer_state_dict(
                self.model, self.optimizer, self.is_rank_zero, device=self.device
            )
            states: list[Any] = [None] * self.world_size
            torch.distributed.all_gather_object(states, self.loader.state_dict())
            data = _merge_positions(states)
        else:
            model_sd, opt_sd, data = (
                self.model.state_dict(),
                self.optimizer.state_dict(),
                self.loader.state_dict(),
            )
        if self.is_rank_zero:
            self.checkpointer.save_checkpoint(
                {
                    training.MODEL_KEY: model_sd,
                    training.OPT_KEY: opt_sd,
                    training.SEED_KEY: self.seed,
                    STEP_KEY: self.global_step,
                    DATA_KEY: data,
                },
                epoch=self.global_step,
                intermediate_checkpoint=True,
            )
            crash_point("checkpoint_saved")
            mark_complete(self.output_dir, self.global_step)  # only now may a resume start from it
        if self.distributed:
            torch.distributed.barrier()

    # -- training --------------------------------------------------------------------------------
    def _loss(self, batch: dict[str, Any]) -> torch.Tensor:
        labels = batch.pop("labels")
        logits = self.model(**batch)
        ignore = torch.full((labels.shape[0], 1), self.loss_fn.ignore_index, device=self.device)
        labels = torch.hstack((labels[..., 1:], ignore))  # predict the next token
        if not isinstance(logits, list):
            labels, logits = labels.reshape(-1), logits.reshape(-1, logits.size(-1))
        return self.loss_fn(logits, labels)

    def train(self) -> None:
        ids_file = self.output_dir / f"sample_ids.rank{self.rank}.jsonl" if self.record_sample_ids else None
        if ids_file is not None and self.resume:
            keep_steps_up_to(ids_file, self.global_step)
        stop_at = min(self.max_steps, int(self.stop_after_steps or self.max_steps))
        running_loss, num_tokens, micro, t0 = 0.0, 0, 0, time.perf_counter()
        self.optimizer.zero_grad()
        batches = iter(self.loader)
        while self.global_step < stop_at:
            batch = next(batches)
            sample_ids = batch.pop("sample_ids")
            utils.batch_to_device(batch, self.device)
            tokens = int((batch["labels"] != self.loss_fn.ignore_index).sum())
            loss = self._loss(batch) * tokens
            running_loss += float(loss.detach())
            num_tokens += tokens
            loss.backward()
            micro += 1
            if ids_file is not None:
                with ids_file.open("a", encoding="utf-8") as f:
                    f.write(json.dumps({"step": self.global_step + 1, "ids": sample_ids}) + "\n")
            if micro % self.accum:
                continue
            if self.distributed:  # all ranks' loss and tokens: the gradient and the log are global means
                totals = torch.tensor([running_loss, num_tokens], dtype=torch.float64, device=self.device)
                torch.distributed.all_reduce(totals)
                running_loss, num_tokens = float(totals[0]), int(totals[1])
                # FSDP averaged the gradients over ranks; undo that, then divide by all ranks' tokens
                training.scale_grads(self.model, torch.tensor(self.world_size / max(1, num_tokens)))
            else:
                training.scale_grads(self.model, torch.tensor(1 / max(1, num_tokens)))
            grad_norm = None
            if self.clip_grad_norm is not None:
                grad_norm = torch.nn.utils.clip_grad_norm_(
                    self.model.parameters(), float(self.clip_grad_norm)
                )
                if isinstance(grad_norm, DTensor):  # FSDP: the norm over all shards
                    grad_norm = grad_norm.full_tensor()
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            if self.lr_scheduler is not None:
                self.lr_scheduler.step()
            self.global_step += 1
            if self.metric_logger is not None and self.global_step % self.log_every == 0:
                seconds = time.perf_counter() - t0
                metrics = {
                    "loss": running_loss / max(1, num_tokens),
                    "lr": get_lr(self.optimizer),
                    "tokens_per_second_per_gpu": num_tokens / seconds / self.world_size,
                }
                if grad_norm is not None:
                    metrics["grad_norm"] = float(grad_norm)
                self.metric_logger.log_dict(metrics, step=self.global_step)
                log.info(f"step {self.global_step}/{self.max_steps} loss {metrics['loss']:.4f}")
            running_loss, num_tokens, t0 = 0.0, 0, time.perf_counter()
            if self.global_step % self.save_every == 0 or self.global_step == stop_at:
                self.save_checkpoint()
            crash_point("train_step")

    def cleanup(self) -> None:
        if self.metric_logger is not None:
            self.metric_logger.close()
        if self.distributed:
            torch.distributed.destroy_process_group()


def keep_steps_up_to(ids_file: Path, step: int) -> None:
    """On resume from ``step``: drop the sample-id records of later steps (a killed run trained past its
    last checkpoint; the resumed run trains those steps again) and a last line the kill cut short."""
    if not ids_file.is_file():
        return
    tmp = ids_file.with_name(f".{ids_file.name}.tmp")
    with ids_file.open(encoding="utf-8") as src, tmp.open("w", encoding="utf-8") as dst:
        for line in src:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # only the last line can be cut short, by the kill
            if record["step"] <= step:
                dst.write(line if line.endswith("\n") else line + "\n")
    os.replace(tmp, ids_file)


def _launched_by_torchrun() -> bool:
    import os

    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _merge_positions(states: list[dict[str, Any]]) -> dict[str, Any]:
    merged = dict(states[0])
    merged["positions"] = {slot: pos for s in states for slot, pos in s["positions"].items()}
    return merged


@config.parse
def recipe_main(cfg: DictConfig) -> None:
    """Entry point for ``tune run``: config file values, overridden by ``key=value`` arguments."""
    config.log_config(recipe_name="StreamFinetuneRecipe", cfg=cfg)
    recipe = StreamFinetuneRecipe(cfg=cfg)
    recipe.setup(cfg=cfg)
    recipe.train()
    recipe.cleanup()


def run(cfg: dict[str, Any] | DictConfig) -> StreamFinetuneRecipe:
    """Run the recipe in this process (tests, notebooks); returns it for inspection."""
    cfg = cfg if isinstance(cfg, DictConfig) else OmegaConf.create(cfg)
    threads = torch.get_num_threads()
    try:
        recipe = StreamFinetuneRecipe(cfg=cfg)
        recipe.setup(cfg=cfg)
        recipe.train()
        recipe.cleanup()
    finally:
        torch.set_num_threads(threads)
    return recipe


if __name__ == "__main__":
    sys.exit(recipe_main())
