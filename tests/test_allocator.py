"""Workers keep freed memory mapped (glibc's thresholds), so a batch does not fault every page in again."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dataengine.allocator import USER_SETTINGS

# The Whisper encoder over a batch of two 30 s windows, in full (as where its shortcuts do not apply:
# the generic pins, another weight file): tens of megabytes of activations per layer, allocated and
# freed in an order that makes glibc's default return them to the kernel. (The build's own pass, with
# the short stem and the padding template, allocates less and its default fault count varies between
# runs with glibc's sliding mmap threshold: 0 to ~15,000 per pass, so it cannot show the setting.)
_PROBE = """
import json, resource
import numpy as np
import torch
from dataengine.allocator import retain_freed_memory
from dataengine.tokenizer.whisper_encoder import log_mel_spectrogram, pad_or_trim_mel
from dataengine.tokenizer.whispervq import load_whispervq

model = load_whispervq("default")
clips = [np.random.default_rng(s).normal(0, 0.1, 16000 + 8000 * s).astype(np.float32) for s in (0, 1)]
windows = torch.stack([pad_or_trim_mel(log_mel_spectrogram(c)) for c in clips])

def faults_per_pass(passes=2):
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    with torch.inference_mode():
        for _ in range(passes):
            model.encoder(windows)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start) / passes

faults_per_pass(1)  # the first pass loads kernels and lets glibc adapt its thresholds
before = faults_per_pass()
applied = retain_freed_memory()
faults_per_pass(1)  # the heap grows to one pass's working set once
print(json.dumps({"before": before, "after": faults_per_pass(), "applied": applied}))
"""


def _probe(env: dict[str, str]) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in USER_SETTINGS}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_blocks_stay_mapped_after_retain_freed_memory():
    result = _probe(_clean_env())
    assert result["applied"] is True
    # measured alone (Zen 4, 4 runs): 27,000-52,000 faults (4 KiB pages) per pass by default, 0-1,125 with it
    assert result["before"] > 5_000
    assert result["after"] < result["before"] / 2  # under load (CI, -n 2): 10,656 -> 2,813


def test_the_environments_own_malloc_settings_win():
    code = "from dataengine.allocator import retain_freed_memory; print(retain_freed_memory())"
    own = ({"MALLOC_TRIM_THRESHOLD_": "131072"}, {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=131072"})
    for env in own:
        env = {**_clean_env(), **env}
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        assert done.stdout.strip() == "False", done.stderr
    other = {**_clean_env(), "GLIBC_TUNABLES": "glibc.cpu.x86_shstk=permissive"}  # not malloc's: applied
    done = subprocess.run([sys.executable, "-c", code], env=other, capture_output=True, text=True)
    assert done.stdout.strip() == "True", done.stderr
