"""How many math-library threads a worker may use: set by the executor before stages load models.

N workers on C cores each get C // N threads; without a limit every library would start one thread
per core in every worker and the workers would fight over the cores. Libraries whose results change
with the thread count (ONNX Runtime for Piper, CTranslate2 for ASR) take a fixed count from their
stage instead, so the output bytes do not depend on the machine or the number of workers.
"""

from __future__ import annotations

import os


def limit_threads(threads: int) -> None:
    """Limit this process to ``threads`` math threads (torch now; ONNX Runtime / OpenMP when they load)."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover - torch is a dependency, but stages may not need it
        pass
