"""``dataengine train resize-vocab``: mean-initialised sound rows, torchtune and HF safetensors formats."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from click.testing import CliRunner
from dataengine.training.tiny import TINY_MODEL
from dataengine.training.tokenizer import load_special_tokens, sound_llama3_tokenizer
from safetensors.torch import load_file, save_file
from torchtune.models.llama3 import llama3
from training_fixtures import BASE_ROWS, tiny_base_model, tiny_dir

from dataengine.cli import main


def check_rows(old: torch.Tensor, new: torch.Tensor) -> None:
    assert new.shape == (1091, old.shape[1])
    torch.testing.assert_close(new[: old.shape[0]], old)
    torch.testing.assert_close(new[old.shape[0] :], old.mean(0, keepdim=True).expand(1091 - old.shape[0], -1))


def test_resize_torchtune_checkpoint_then_the_tokenizer_and_model_agree(tmp_path: Path) -> None:
    src = tmp_path / "base"
    state = tiny_base_model(src)
    torch.save(state, src / "model.pt")
    result = CliRunner().invoke(main, ["train", "resize-vocab", str(src), str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "vocabulary 577 -> 1091 rows (sound tokens from id 577)" in result.output
    new = torch.load(tmp_path / "out" / "model.pt", weights_only=True)
    check_rows(state["tok_embeddings.weight"], new["tok_embeddings.weight"])
    check_rows(state["output.weight"], new["output.weight"])
    torch.testing.assert_close(new["layers.0.attn.q_proj.weight"], state["layers.0.attn.q_proj.weight"])
    tok = sound_llama3_tokenizer(
        str(tiny_dir() / "tokenizer.model"), str(tmp_path / "out" / "special_tokens.json")
    )
    assert tok.vocab_size == 1091 and tok.sound_start_id == 577
    model = llama3(vocab_size=tok.vocab_size, **TINY_MODEL)
    model.load_state_dict(new)  # strict: the shapes fit
    logits = model(torch.tensor([tok.encode("Hi <|sound_start|><|sound_0511|><|sound_end|>")]))
    assert logits.shape[-1] == 1091 and torch.isfinite(logits).all()


def test_resize_hf_safetensors_updates_config_and_index(tmp_path: Path) -> None:
    src = tmp_path / "hf"
    state = tiny_base_model(src)
    hf = {
        "model.embed_tokens.weight": state["tok_embeddings.weight"],
        "lm_head.weight": state["output.weight"],
        "model.norm.weight": state["norm.scale"],
    }
    save_file(
        {"model.embed_tokens.weight": hf["model.embed_tokens.weight"]},
        str(src / "model-00001-of-00002.safetensors"),
    )
    save_file(
        {k: v for k, v in hf.items() if k != "model.embed_tokens.weight"},
        str(src / "model-00002-of-00002.safetensors"),
    )
    (src / "config.json").write_text(json.dumps({"vocab_size": BASE_ROWS, "hidden_size": 64}))
    index = {
        "metadata": {"total_size": 1000},
        "weight_map": {"model.embed_tokens.weight": "model-00001-of-00002.safetensors"},
    }
    (src / "model.safetensors.index.json").write_text(json.dumps(index))
    result = CliRunner().invoke(main, ["train", "resize-vocab", str(src), str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    check_rows(
        hf["model.embed_tokens.weight"],
        load_file(out / "model-00001-of-00002.safetensors")["model.embed_tokens.weight"],
    )
    second = load_file(out / "model-00002-of-00002.safetensors")
    check_rows(hf["lm_head.weight"], second["lm_head.weight"])
    torch.testing.assert_close(second["model.norm.weight"], hf["model.norm.weight"])
    assert json.loads((out / "config.json").read_text())["vocab_size"] == 1091
    assert (
        json.loads((out / "model.safetensors.index.json").read_text())["metadata"]["total_size"]
        == 1000 + 2 * 514 * 64 * 4
    )
    assert load_special_tokens(out / "special_tokens.json")["<|sound_0511|>"] == 1090


def test_resize_bad_input_is_one_line_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["train", "resize-vocab", str(tmp_path / "nope"), str(tmp_path / "out")]
    )
    assert (
        result.exit_code == 2
        and result.output.strip() == f"Error: {tmp_path / 'nope'}: no such file or folder"
    )
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(
        main, ["train", "resize-vocab", str(tmp_path / "empty"), str(tmp_path / "out")]
    )
    assert result.exit_code == 2 and "no *.safetensors, *.pt or *.bin checkpoint files" in result.output
