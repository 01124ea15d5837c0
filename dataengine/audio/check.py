"""Check users' audio files with the build's own filters: every registered stage that works on recorded
turns (:mod:`dataengine.registry`: today the audio filters, the ASR round trip when there is a
transcript, and the WhisperVQ token budget), in pipeline order. Models load once per checker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dataengine.audio.io import read_audio_file
from dataengine.recipe import Recipe
from dataengine.registry import configured_stages, stage_classes
from dataengine.sample import ASSISTANT, RECORDING, USER, Sample, Turn, Unit
from dataengine.stage import Stage


class AudioChecker:
    """``check(path, transcript)`` -> one JSON-ready verdict; a bad file is a ``unreadable`` reject.

    Unlike a build, which records the first failing reason, every failing reason of every stage is
    reported."""

    def __init__(self, recipe: Recipe, asr: bool = True) -> None:
        if asr and recipe.asr.model == "none":  # the round trip runs with tiny.en unless the recipe names one
            recipe = recipe.model_copy(update={"asr": recipe.asr.model_copy(update={"model": "tiny.en"})})
        if not asr:
            recipe = recipe.model_copy(update={"asr": recipe.asr.model_copy(update={"model": "none"})})
        self.recipe = recipe
        self.stages: list[Stage] = configured_stages(
            recipe, [cls for cls in stage_classes() if RECORDING in cls.origins]
        )
        self._ready: set[str] = set()

    def check(self, path: Path, transcript: str | None = None) -> dict[str, Any]:
        try:
            audio, info = read_audio_file(path)
        except ValueError as exc:
            return {"path": str(path), "verdict": "reject", "reasons": ["unreadable"], "error": str(exc)}
        turn = Turn(USER, transcript or "", origin=RECORDING, key=str(path), audio=audio)
        sample = Sample(id=Path(path).name, index=0, turns=[turn, Turn(ASSISTANT, "")])
        unit = Unit(sample, 0)
        failing: list[tuple[str, float]] = []
        for stage in self.stages:
            if not stage.applies(turn):
                continue
            if stage.name not in self._ready:
                stage.setup()
                self._ready.add(stage.name)
            stage.process([unit])
            if sample.reject is not None:  # the stage itself failed on this file
                failing.append((sample.reject.reason, sample.reject.value or 0.0))
                sample.reject = None
                continue
            failing.extend(stage.failures(unit))
        result: dict[str, Any] = {"path": str(path)}
        if turn.transcript is not None:
            result["transcript"] = turn.transcript
        result.update(
            verdict="reject" if failing else "keep",
            reasons=[reason for reason, _ in failing],
            sample_rate=info["sample_rate"],
            channels=info["channels"],
            metrics={k: round(v, 6) for k, v in turn.metrics.items()},
        )
        return result
