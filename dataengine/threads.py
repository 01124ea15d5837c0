"""How many math-library threads a worker may use: set by the executor before stages load models.

N workers on C cores each get C // N threads; without a limit every library would start one thread
per core in every worker and the workers would fight over the cores. Libraries whose results change
with the thread count (ONNX Runtime for Piper, CTranslate2 for ASR) take a fixed count from their
stage instead, so the output bytes do not depend on the machine or the number of workers; numpy's
OpenBLAS, where its result is written, runs a fixed count too (:func:`fixed_blas_threads`).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator

from threadpoolctl import ThreadpoolController


def limit_threads(threads: int) -> None:
    """Limit this process to ``threads`` math threads (torch now; ONNX Runtime / OpenMP when they load)."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover - torch is a dependency, but stages may not need it
        pass


BLAS_THREADS = 1
"""OpenBLAS threads (numpy's ``@``) for a computation whose result is written: fixed, because OpenBLAS
splits a product differently by thread count and so rounds it differently (measured: faster-whisper's
log-mel of a 1 s Piper clip moved in the last bit in 1 % of its values with 2 threads instead of 1, and
tiny.en then heard "What is AI?" as "What is the eye?"). One, as the workers of a ``--workers 2`` build
on 2 cores already had; numpy's products here are per clip and small."""


@functools.cache
def _controller() -> ThreadpoolController:
    return ThreadpoolController()  # finds numpy's OpenBLAS (loaded with numpy, before any caller)


@contextlib.contextmanager
def fixed_blas_threads() -> Iterator[None]:
    """Run the block with :data:`BLAS_THREADS` BLAS threads, whatever this process was given (an inline
    build keeps the libraries' default of one per core, a worker gets its share): its numpy products
    then round the same in every process, on any machine, with any ``--workers``."""
    with _controller().limit(limits=BLAS_THREADS, user_api="blas"):
        yield
