"""Executors run a list of stages over batches of samples. They never know what a stage does."""

from __future__ import annotations

from dataengine.executors.local import LocalExecutor, StageFailed, WorkerError
from dataengine.executors.ray import ClusterError, RayExecutor

__all__ = ["ClusterError", "LocalExecutor", "RayExecutor", "StageFailed", "WorkerError"]
