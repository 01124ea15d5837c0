"""The stage registry: the one list of per-sample stages, in pipeline order.

Each stage class declares its recipe section, the origins it handles, the metrics it writes, its
reject reasons and the turn fields it reads and writes (:class:`~dataengine.stage.Stage`). The
pipeline's stage list, the manifest's metric columns, ``audio-check`` and the card's features are
derived from here, and :func:`check_order` proves from the declared reads/writes that every stage
finds what it needs before a build starts. A new stage is one new file plus :func:`register_stage`.
"""

from __future__ import annotations

import importlib
from collections.abc import Collection
from typing import TYPE_CHECKING

from dataengine.recipe import RecipeError, register_section, unregister_section
from dataengine.sample import NOISE, ORIGINS, RECORDING, T2S, TOKENS, TTS

if TYPE_CHECKING:
    from dataengine.cache import StageCache
    from dataengine.recipe import Recipe
    from dataengine.stage import Stage

_STAGES: list[str | type[Stage]] = [
    "dataengine.audio.decode_stage:DecodeStage",  # recordings: the file -> audio, in the workers
    "dataengine.text.filters:TextFilter",
    "dataengine.tts.stage:TTSStage",
    "dataengine.noise.stage:NoiseStage",
    "dataengine.augment.stage:AugmentStage",
    "dataengine.audio.filters:AudioFilter",
    "dataengine.tokenizer.whisper_pass:WhisperPassStage",  # only when asr.share_encoder pairs them
    "dataengine.audio.asr:ASRStage",
    "dataengine.tokenizer.stage:TokenizerStage",
    "dataengine.augment.stability:CleanTokenStage",
    "dataengine.speaker.stage:SpeakerStage",
    "dataengine.t2s.stage:T2SStage",
    "dataengine.t2s.guard:DriftGuardStage",
]
"""Stage classes (or ``module:Class`` imported on first use), in the order a sample goes through them."""

PROVIDED: dict[str, frozenset[str]] = {
    TTS: frozenset({"role", "origin", "key", "text", "prefix", "augment"}),
    NOISE: frozenset({"role", "origin", "key", "text", "prefix", "voice"}),
    RECORDING: frozenset({"role", "origin", "key", "text", "prefix", "recording", "augment"}),
    TOKENS: frozenset({"role", "origin", "key", "text", "prefix"}),
    T2S: frozenset({"role", "origin", "key", "text", "prefix"}),
}
"""Turn fields a spoken turn has before any stage runs, by origin (set by the source and the task).
A recording turn has the :class:`~dataengine.sample.RecordingRef` its audio is read from (the ``decode``
stage writes ``audio``); segments of a long recording, cut by the source, have their audio already."""


def _resolve(entry: str | type[Stage]) -> type[Stage]:
    if isinstance(entry, str):
        module, _, attr = entry.partition(":")
        return getattr(importlib.import_module(module), attr)
    return entry


def stage_classes() -> list[type[Stage]]:
    """Every registered stage class, in pipeline order."""
    return [_resolve(entry) for entry in _STAGES]


def register_stage(stage: type[Stage], after: str | None = None) -> None:
    """Add a stage class after the stage named ``after`` (default: at the end); its recipe section, if
    it is not one of the recipe's own, becomes a top-level key of recipes loaded from now on."""
    classes = stage_classes()
    names = [cls.name for cls in classes]
    if stage.name in names:
        raise ValueError(f"a stage named {stage.name!r} is already registered")
    position = len(classes) if after is None else names.index(after) + 1
    _STAGES.insert(position, stage)
    if stage.section and stage.config_model is not None:
        register_section(stage.section, stage.config_model)


def unregister_stage(name: str) -> None:
    """Remove a stage by name, and its plug-in recipe section (for tests and plug-ins that replace one)."""
    for cls in stage_classes():
        if cls.name == name and cls.section:
            unregister_section(cls.section)
    _STAGES[:] = [entry for entry in _STAGES if _resolve(entry).name != name]


def metric_names(build: Collection[str] = ()) -> list[str]:
    """Every metric any registered stage writes, in pipeline order: the manifest's metric columns, the
    same for every build (null where a stage did not run), except those of ``optional_columns`` stages,
    which count only when named in ``build`` (the stage names of the build)."""
    names: list[str] = []
    for cls in stage_classes():
        if cls.optional_columns and cls.name not in build:
            continue
        names += [m for m in cls.metrics if m not in names]
    return names


def all_columns() -> dict[str, str]:
    """Every registered stage's non-metric columns (name -> kind), whether a build has them or not."""
    return extra_columns([cls.name for cls in stage_classes()])


def extra_columns(build: Collection[str] = ()) -> dict[str, str]:
    """The non-metric columns (name -> kind, :attr:`~dataengine.stage.Stage.columns`) of a build whose
    stages are named in ``build`` (an ``optional_columns`` stage's only when it is one of them)."""
    columns: dict[str, str] = {}
    for cls in stage_classes():
        if cls.optional_columns and cls.name not in build:
            continue
        columns.update({name: kind for name, kind in cls.columns.items() if name not in columns})
    return columns


def reject_reasons() -> dict[str, tuple[str, ...]]:
    """Stage name -> the reasons it can reject for."""
    return {cls.name: tuple(cls.reject_reasons) for cls in stage_classes()}


def check_order(stages: list[Stage], origins: tuple[str, ...] = ORIGINS) -> None:
    """Every stage must find the turn fields it reads, for every one of ``origins`` (those the build's
    tasks make) it handles, either set before the stages run (:data:`PROVIDED`) or written by an earlier
    stage; else one-line RecipeError."""
    for origin in origins:
        have = set(PROVIDED[origin])
        for position, stage in enumerate(stages):
            if origin not in stage.origins:
                continue
            missing = [field for field in stage.reads if field not in have]
            if missing:
                order = ", ".join(s.name for s in stages)
                raise RecipeError(
                    f"stage {stage.name!r} reads {missing[0]!r} of {origin} turns, which no stage before "
                    f"it writes (stage order: {order}; position {position + 1})"
                )
            have |= set(stage.writes)


def configured_stages(recipe: Recipe, classes: list[type[Stage]] | None = None) -> list[Stage]:
    """The stages of ``classes`` (default: every registered one) that the recipe switches on, in order; a
    stage that another one :attr:`~dataengine.stage.Stage.measures_for` is replaced by its decider."""
    stages = [stage for cls in classes or stage_classes() if (stage := cls.from_recipe(recipe)) is not None]
    measured = {name for stage in stages for name in stage.measures_for}
    return [stage.decider() if stage.name in measured else stage for stage in stages]


def build_stages(recipe: Recipe, cache: StageCache | None = None) -> list[Stage]:
    """The recipe's stages, in order (a stage the recipe switches off is left out), their order checked;
    cacheable ones wrapped by ``cache``. Each is picklable and loads its model in ``setup``."""
    from dataengine.tasks import task_origins

    origins = task_origins(recipe)
    stages = configured_stages(recipe)
    if recipe.t2s is not None:  # no model loads for turns that never come: a T2S-only build loads no voice
        stages = [stage for stage in stages if set(stage.origins) & set(origins)]
    check_order(stages, origins)
    if cache is None:
        return stages
    from dataengine.cache import CachedStage

    return [CachedStage(stage, cache) if stage.cacheable else stage for stage in stages]
