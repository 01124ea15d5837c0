"""``dataengine tokenizer encode`` / ``info``: codes, JSON, the Ichigo string, presets, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner
from test_tokenizer import _tiny_vq, _tiny_whisper, speechlike

from dataengine.audio.io import resample
from dataengine.cli import main
from dataengine.formatting import parse_sound_string
from dataengine.recipe import Recipe, TokenizerConfig
from dataengine.tokenizer import load_whispervq
from dataengine.tokenizer.presets import PRESETS

SR = 16_000


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("tiny")
    whisper = _tiny_whisper(root / "whisper.pt")
    return _tiny_vq(root / "vq.pt", str(whisper)), whisper


@pytest.fixture(scope="module")
def wavs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("wavs")
    a, b = root / "a.wav", root / "narrow-8k.wav"
    sf.write(a, speechlike(2.0, seed=1), SR, subtype="FLOAT")
    sf.write(b, resample(speechlike(3.0, seed=2), SR, 8000), 8000, subtype="FLOAT")
    return {"a": a, "b": b}


def test_encode_prints_codes_json_and_ichigo(tiny: tuple[Path, Path], wavs: dict[str, Path]) -> None:
    vq_path, _ = tiny
    runner = CliRunner()
    files = [str(wavs["a"]), str(wavs["b"])]
    plain = runner.invoke(main, ["tokenizer", "encode", *files, "--checkpoint", str(vq_path)])
    assert plain.exit_code == 0, plain.output
    lines = plain.output.strip().splitlines()
    codes = [np.array(line.split("\t")[1].split(), dtype=np.int64) for line in lines]
    assert [len(c) for c in codes] == [50, 75]
    # the 8 kHz file is resampled to 16 kHz by the CLI exactly as dataengine.audio.io.resample does
    vq = load_whispervq(str(vq_path))
    want = vq.encode([speechlike(2.0, seed=1), resample(sf.read(wavs["b"], dtype="float32")[0], 8000, SR)])
    for have, expected in zip(codes, want, strict=True):
        np.testing.assert_array_equal(have, expected)
    as_json = runner.invoke(main, ["tokenizer", "encode", *files, "--checkpoint", str(vq_path), "--json"])
    records = [json.loads(line) for line in as_json.output.strip().splitlines()]
    assert [r["path"] for r in records] == files and records[1]["seconds"] == 3.0
    assert [r["tokens"] for r in records] == [c.tolist() for c in codes]
    ichigo = runner.invoke(
        main, ["tokenizer", "encode", files[0], "--checkpoint", str(vq_path), "--format", "ichigo", "--json"]
    )
    record = json.loads(ichigo.output)
    assert record["ichigo"].startswith("<|sound_start|><|sound_") and record["ichigo"].endswith(
        "<|sound_end|>"
    )
    np.testing.assert_array_equal(parse_sound_string(record["ichigo"]), codes[0])


def test_encode_errors_are_one_line_exit_2(
    tiny: tuple[Path, Path], wavs: dict[str, Path], tmp_path: Path
) -> None:
    vq_path, _ = tiny
    runner = CliRunner()
    missing = runner.invoke(
        main, ["tokenizer", "encode", str(tmp_path / "nope.wav"), "--checkpoint", str(vq_path)]
    )
    assert missing.exit_code == 2 and "nope.wav" in missing.output and "Traceback" not in missing.output
    short = tmp_path / "short.wav"
    sf.write(short, np.zeros(100, np.float32), SR)
    too_short = runner.invoke(main, ["tokenizer", "encode", str(short), "--checkpoint", str(vq_path)])
    assert too_short.exit_code == 2 and "too short" in too_short.output
    bad_ckpt = runner.invoke(
        main, ["tokenizer", "encode", str(wavs["a"]), "--checkpoint", str(tmp_path / "x.pt")]
    )
    assert bad_ckpt.exit_code == 2 and "no such file" in bad_ckpt.output


def test_device_cuda_encodes_on_a_gpu_or_is_a_one_line_error(
    tiny: tuple[Path, Path], wavs: dict[str, Path]
) -> None:
    """Asserts on both kinds of machine: with a GPU the encoder runs there and gives the CPU's codes up
    to near-tie frames (as the bf16 path: README, "Batches, devices, precision"); without one, exit 2."""
    vq_path, _ = tiny
    runner = CliRunner()
    args = ["tokenizer", "encode", str(wavs["a"]), "--checkpoint", str(vq_path), "--device"]
    on_cuda = runner.invoke(main, [*args, "cuda"])
    if torch.cuda.is_available():
        assert on_cuda.exit_code == 0, on_cuda.output
        assert load_whispervq(str(vq_path), device="cuda").device.type == "cuda"
        on_cpu = runner.invoke(main, [*args, "cpu"])
        gpu, cpu = (np.array(r.output.split("\t")[1].split(), dtype=np.int64) for r in (on_cuda, on_cpu))
        assert gpu.shape == cpu.shape == (50,) and np.mean(gpu == cpu) > 0.9
    else:
        assert on_cuda.exit_code == 2, on_cuda.output
        line = on_cuda.output.strip()
        assert "\n" not in line and "tokenizer device 'cuda'" in line and "sees no CUDA device" in line


def test_info_lists_presets_and_describes_a_checkpoint(tiny: tuple[Path, Path]) -> None:
    runner = CliRunner()
    listing = runner.invoke(main, ["tokenizer", "info", "--presets"])
    assert listing.exit_code == 0
    assert (
        "ichigo-v3-7lang: WhisperSpeech/WhisperSpeech:whisper-vq-stoks-v3-7lang.model | whisper medium"
        in (listing.output)
    )
    assert "collabora/spear-tts-pytorch:whisper-vq-stoks-medium-en+pl.model" in listing.output
    vq_path, whisper = tiny
    info = runner.invoke(main, ["tokenizer", "info", "--checkpoint", str(vq_path), "--whisper", str(whisper)])
    assert info.exit_code == 0, info.output
    for line in (
        "codes: 512",
        "codebook rows: 513 (incl. mask code)",
        "codebook dim: 16",
        "distance: euclidean",
    ):
        assert line in info.output
    assert "whisper encoder: 80 mels, width 64, 1 layers" in info.output


def test_preset_not_cached_is_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    result = CliRunner().invoke(main, ["tokenizer", "info", "--checkpoint", "whisperspeech-medium-en+pl"])
    assert result.exit_code == 2
    line = result.output.strip()
    assert "\n" not in line and "collabora/spear-tts-pytorch:whisper-vq-stoks-medium-en+pl.model" in line
    assert "hf download collabora/spear-tts-pytorch whisper-vq-stoks-medium-en+pl.model" in line


def test_recipe_accepts_presets_device_and_dtype() -> None:
    recipe = Recipe.model_validate(
        {"name": "x", "tokenizer": {"checkpoint": "ichigo-v3-7lang", "device": "cuda:0", "dtype": "bfloat16"}}
    )
    assert recipe.tokenizer.checkpoint in PRESETS and recipe.tokenizer.dtype == "bfloat16"
    with pytest.raises(ValueError):
        TokenizerConfig(device="tpu")
    with pytest.raises(ValueError):
        TokenizerConfig(dtype="int8")  # type: ignore[arg-type]


def test_bfloat16_autocast_path_runs_on_cpu(tiny: tuple[Path, Path]) -> None:
    """The reduced-precision code path (meant for CUDA) runs; float32 stays the exact reference."""
    vq_path, _ = tiny
    clips = [speechlike(2.0, seed=3), speechlike(1.2, seed=4)]
    fp32 = load_whispervq(str(vq_path)).encode(clips)
    bf16 = load_whispervq(str(vq_path), dtype="bfloat16").encode(clips)
    assert [t.shape for t in bf16] == [t.shape for t in fp32] == [(50,), (30,)]
    agree = np.mean(np.concatenate(fp32) == np.concatenate(bf16))
    assert agree > 0.9, agree  # reduced precision may move near-tie frames to a neighbouring code


def test_device_resolution() -> None:
    from dataengine.tokenizer.errors import TokenizerError
    from dataengine.tokenizer.whispervq import resolve_device

    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected and resolve_device("cpu").type == "cpu"
    with pytest.raises(TokenizerError, match="expected cpu, cuda"):
        resolve_device("nonsense")
    with pytest.raises(TokenizerError, match="dtype 'int8'"):
        load_whispervq("default", dtype="int8")
