"""CPU-numerics pins: they win over inherited variables, reach every library and worker, and a build made
under a forced lower instruction set equals one made as is."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from dataengine import numerics
from dataengine.cli import main
from dataengine.commands.numerics import LOWER_ISA_ENV, cross_isa_check

AVX2 = numerics.profile() == "avx2"
needs_avx2 = pytest.mark.skipif(not AVX2, reason="the avx2 pins need a CPU with AVX2 and FMA")

PROBE = """
import json, os
import dataengine, numpy, torch
from numpy._core import _multiarray_umath as umath
print(json.dumps({
    "env": {k: os.environ.get(k) for k in %r},
    "torch": torch.backends.cpu.get_cpu_capability(),
    "numpy_avx2": bool(umath.__cpu_features__.get("X86_V3")),
}))
""".replace("%r", repr(sorted(numerics.AVX2_PINS)))


def _probe(env: dict[str, str]) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in {*numerics.AVX2_PINS, numerics.ENV}}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@needs_avx2
def test_pins_win_over_inherited_variables() -> None:
    got = _probe(dict(LOWER_ISA_ENV))
    assert got["env"] == numerics.AVX2_PINS
    assert got["torch"] == "AVX2"  # ATEN_CPU_CAPABILITY=default from the shell did not reach torch
    assert got["numpy_avx2"]  # nor NPY_DISABLE_CPU_FEATURES=X86_V3 numpy


@needs_avx2
def test_native_leaves_the_inherited_variables_to_the_libraries() -> None:
    got = _probe({**LOWER_ISA_ENV, numerics.ENV: "native"})
    assert got["env"]["CT2_FORCE_CPU_ISA"] == "GENERIC" and got["env"]["CT2_USE_MKL"] is None
    assert got["torch"] == "DEFAULT"  # the forced variables did reach the libraries: the knobs are real
    assert not got["numpy_avx2"]


def test_native_cannot_be_chosen_once_a_library_loaded_with_the_pins() -> None:
    import numpy  # noqa: F401 - loaded, as in this test process

    if numerics.mode() != numerics.PINNED:
        pytest.skip("this test process runs with DATAENGINE_NUMERICS=native")
    before = dict(os.environ)
    with pytest.raises(RuntimeError, match="before numpy loads"):
        numerics.use_native()
    assert dict(os.environ) == before


def test_a_library_loaded_before_the_pins_is_reported() -> None:
    code = "import numpy, json; from dataengine import numerics; print(json.dumps(numerics.describe()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    info = json.loads(out.stdout)
    assert info["loaded_before_pins"] == ["numpy"]
    assert "loaded before the pins" in numerics.reproducibility_note(info)


def test_profile_follows_the_cpu_flags() -> None:
    assert numerics.pins_for(numerics.profile({"avx2", "fma", "sse4_1"})) == numerics.AVX2_PINS
    assert numerics.pins_for(numerics.profile({"avx", "sse4_1"})) == numerics.GENERIC_PINS


def test_build_json_records_the_numerics_and_verify_says_when_bytes_reproduce(small_build_dir: Path) -> None:
    info = json.loads((small_build_dir / "build.json").read_text(encoding="utf-8"))["numerics"]
    assert info["mode"] == numerics.mode()
    assert info["versions"]["torch"] and info["versions"]["ctranslate2"] and info["versions"]["onnxruntime"]
    # Nothing machine-specific but the AVX-512 flag (the unpinned parts change with it): no CPU model.
    assert set(info) == {"mode", "profile", "pins", "avx512", "unpinned", "versions", "loaded_before_pins"}
    assert info["loaded_before_pins"] == []
    if info["mode"] == "pinned":
        assert info["pins"] == numerics.pins_for(numerics.profile())
    result = CliRunner().invoke(main, ["verify", str(small_build_dir)])
    assert result.exit_code == 0, result.output
    assert numerics.reproducibility_note(info) in result.output


def test_reproducibility_note_names_its_condition() -> None:
    assert "not recorded" in numerics.reproducibility_note(None)
    assert "may give other bytes" in numerics.reproducibility_note({"mode": "native"})
    pinned = numerics.reproducibility_note(
        {"mode": "pinned", "profile": "avx2", "avx512": False, "versions": {"torch": "2.13.0"}}
    )
    assert "AVX2+FMA" in pinned and "without AVX-512" in pinned and "torch 2.13.0" in pinned


@pytest.mark.slow
@needs_avx2
def test_cross_isa_build_gives_identical_bytes(tmp_path: Path) -> None:
    """The same recipe built as is and under every knob forced lower (another CPU's stand-in), by two
    workers, with the ASR round trip and two TTS engines: every shard and manifest byte is equal."""
    recipe = tmp_path / "cross.yaml"
    recipe.write_text(
        "name: cross\nseed: 5\nsource: {kind: chatterbot, categories: [ai]}\n"
        "tts: {voices: [{backend: piper, voice: joe-us}, {backend: espeak, voice: en-us}]}\n"
        "asr: {model: tiny.en, cpu_threads: 1}\nshards: {max_samples: 3}\n",
        encoding="utf-8",
    )
    result = cross_isa_check(recipe, limit=6, workers=2, workdir=tmp_path)
    assert any(p.startswith("shards/") for p in result.as_is) and "manifest/samples.parquet" in result.as_is
    assert result.identical, result.table()
