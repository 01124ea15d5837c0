"""Real-world conditions on kept speech (issue 19): the conditions and their draws, the seeded split of
the real noise clips (never both a refusal input and a background), token stability, and one small
build (beside mode, every condition) checked for exact shares, recorded conditions, clean tokens and
identical bytes on a second build."""

from __future__ import annotations

import io
import json
from pathlib import Path

import duckdb
import numpy as np
import pytest
import webdataset as wds

from dataengine.augment import conditions as cond
from dataengine.augment.plan import BESIDE_SUFFIX, augment_stream
from dataengine.augment.stability import collapse_repeats, edit_distance, token_ned
from dataengine.augment.stage import AugmentStage
from dataengine.cache import StageCache
from dataengine.inspect import summarize
from dataengine.noise import clips
from dataengine.noise.stage import NoiseStage
from dataengine.publish.card import render_card
from dataengine.recipe import BACKGROUND_KINDS, AugmentConfig, Recipe, RecipeError, load_recipe
from dataengine.registry import build_stages, extra_columns, metric_names
from dataengine.sample import ASSISTANT, NOISE, TTS, USER, Sample, Turn, Unit
from dataengine.schema import encode_record, sample_record
from dataengine.serve.catalog import Catalog
from dataengine.tasks.mixer import TaskMixer

ROOT = Path(__file__).resolve().parents[1]
SR = 16_000
ALL_ON = {
    "fraction": 1.0,
    "mode": "beside",
    "noise": {"probability": 1.0, "kinds": ["music", "sounds"], "snr_db": [12, 30]},
    "room": {"probability": 1.0, "rt60_s": [0.2, 0.5], "length_m": [3, 5]},
    "level": {"probability": 1.0, "rumble_probability": 1.0},
    "codec": {"probability": 1.0, "bitrates": {"opus": [48000]}},
}
needs_recordings = pytest.mark.skipif(
    bool(clips.missing_packages(list(BACKGROUND_KINDS))), reason="the Debian noise recordings are missing"
)


def speechlike(seconds: float = 1.5, seed: int = 0) -> np.ndarray:
    """Syllable-like harmonic bursts at about -20 dBFS with exact digital zeros between them (as
    espeak-ng leaves them)."""
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    f0 = 120 + 20 * np.sin(2 * np.pi * 0.7 * t)
    voiced = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / SR) / k for k in range(1, 12))
    envelope = np.clip(np.sin(2 * np.pi * 3 * t), 0, None) ** 2
    audio = 0.1 * voiced * envelope + 0.002 * rng.standard_normal(len(t)) * envelope
    return np.round(audio.astype(np.float32) * 32768) / 32768


def unit(audio: np.ndarray, key: str = "k1") -> Unit:
    turn = Turn(USER, "words", origin=TTS, key=key, audio=audio, augment=True)
    return Unit(Sample(id=key, index=0, turns=[turn, Turn(ASSISTANT, "ok")]), 0)


def stage(seed: int = 5, **conditions: object) -> AugmentStage:
    """Only the named conditions, each always applied."""
    off = dict.fromkeys(("noise", "room", "level", "codec"))
    config = AugmentConfig.model_validate(
        {**off, **{k: {"probability": 1.0, **v} for k, v in conditions.items()}}
    )
    return AugmentStage(config, seed)


def all_on() -> AugmentConfig:
    return AugmentConfig.model_validate(ALL_ON)


def longest_zero_run(audio: np.ndarray) -> int:
    zero = np.concatenate([[0], (audio == 0).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(zero))
    return int(np.max(edges[1::2] - edges[::2])) if len(edges) else 0


# -- the seeded split of the real noise clips ----------------------------------------------------------


@needs_recordings
@pytest.mark.parametrize("kind", BACKGROUND_KINDS)
def test_the_split_gives_every_recording_to_exactly_one_side(kind: str) -> None:
    refusal, background = clips.split_recordings(kind, 7, 0.5)
    assert refusal and background and not set(refusal) & set(background)
    assert sorted(refusal + background) == sorted(clips.recordings(kind))
    assert clips.split_recordings(kind, 7, 0.5) == (refusal, background)  # seeded, not random


@needs_recordings
def test_a_clip_is_never_both_a_refusal_input_and_a_background(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every file the noise-refusal stage and the augment stage read in one recipe, recorded as it is
    read: the two sets are disjoint (and each is the side of the split it should be)."""
    read: dict[str, set[Path]] = {"refusal": set(), "background": set()}
    side = ["refusal"]
    original = clips.load_recording
    monkeypatch.setattr(clips, "load_recording", lambda path: read[side[0]].add(path) or original(path))
    recipe = Recipe.model_validate(
        {
            "name": "t",
            "seed": 3,
            "tasks": {"instruction": {"share": 0.5}, "noise_refusal": {"share": 0.5, "max_s": 2}},
            "augment": {**ALL_ON, "room": None, "level": None, "codec": None},
        }
    )
    noise = NoiseStage.from_recipe(recipe)
    assert noise is not None and noise.background_share == 0.5
    for n, kind in enumerate(["music", "sounds", "room_tone"] * 6):
        turn = Turn(USER, "", origin=NOISE, key=f"noise-{n}", voice=f"noise:{kind}")
        noise.process_turn(Unit(Sample(f"noise-{n}", n, turns=[turn]), 0))
    side[0] = "background"
    augment = AugmentStage.from_recipe(recipe)
    assert augment is not None
    labels = []
    for n in range(18):
        u = unit(speechlike(0.5), key=f"s{n}")
        augment.process_turn(u)
        labels.append(u.turn.labels["aug_noise_clip"])
    assert read["refusal"] and read["background"] and not read["refusal"] & read["background"]
    for kind in ("music", "sounds"):
        refusal, background = clips.split_recordings(kind, 3, 0.5)
        assert {p for p in read["refusal"] if p.parent == refusal[0].parent} <= set(refusal)
        assert {p for p in read["background"] if p.parent == background[0].parent} <= set(background)
    assert {label.split("/")[0] for label in labels} == {"music", "sounds"}


def test_without_augment_the_noise_refusal_task_uses_every_recording() -> None:
    recipe = Recipe.model_validate(
        {"name": "t", "tasks": {"instruction": {"share": 0.5}, "noise_refusal": {"share": 0.5}}}
    )
    noise = NoiseStage.from_recipe(recipe)
    assert noise is not None and noise.files("music") is None and noise.files("pink") is None


# -- the conditions --------------------------------------------------------------------------------------


def test_every_condition_is_applied_recorded_and_seeded() -> None:
    clean = speechlike()
    assert longest_zero_run(clean) > 1000  # digital silence between the bursts
    first, again = unit(clean.copy()), unit(clean.copy())
    AugmentStage(all_on(), 5).process_turn(first)
    AugmentStage(all_on(), 5).process_turn(again)
    turn = first.turn
    assert turn.labels["conditions"] == "room+noise+level+codec"
    assert set(turn.metrics) == set(AugmentStage.metrics)
    assert turn.labels["aug_codec"] == "opus" and turn.metrics["aug_codec_kbps"] == 48
    assert 12 <= turn.metrics["aug_snr_db"] <= 30 and 0.2 <= turn.metrics["aug_rt60_s"] <= 0.5
    assert turn.audio.tobytes() == again.turn.audio.tobytes()  # same seed and key: the same bytes
    assert np.array_equal(turn.clean_audio, clean) and len(turn.audio) == len(clean)
    assert np.array_equal(turn.audio, np.round(turn.audio * 32768) / 32768)  # on the 16-bit grid
    other = unit(clean.copy(), key="k2")
    AugmentStage(all_on(), 5).process_turn(other)
    assert other.turn.audio.tobytes() != turn.audio.tobytes()


def test_level_sets_the_speech_level_and_a_floor_replaces_digital_silence() -> None:
    u = unit(speechlike())
    stage(level={"rms_dbfs": [-30, -30], "floor_dbfs": [-70, -70], "rumble_probability": 0.0}).process_turn(u)
    out = u.turn.audio
    assert u.turn.metrics["aug_level_dbfs"] == pytest.approx(-30, abs=0.01)
    assert cond.dbfs(out) == pytest.approx(-30, abs=0.2)  # the floor is 40 dB below: it adds nothing
    assert longest_zero_run(out) < 20  # no digital silence left (was > 1000 samples)
    quiet = out[np.abs(u.turn.clean_audio) == 0]
    assert cond.dbfs(quiet) == pytest.approx(-70, abs=1.5)


def test_noise_is_added_at_the_drawn_snr() -> None:
    u = unit(speechlike())
    stage(noise={"kinds": ["music"], "snr_db": [15, 15]}).process_turn(u) if not clips.missing_packages(
        ["music"]
    ) else pytest.skip("no music recordings")
    added = u.turn.audio - u.turn.clean_audio
    snr = 20 * np.log10(cond.rms(u.turn.clean_audio) / cond.rms(added))
    assert snr == pytest.approx(15, abs=0.3)


def test_room_reverberates_into_the_pauses_and_keeps_the_level() -> None:
    clean = speechlike()
    u = unit(clean.copy())
    stage(room={"rt60_s": [0.6, 0.6], "length_m": [6, 6]}).process_turn(u)
    out = u.turn.audio
    assert cond.dbfs(out) == pytest.approx(cond.dbfs(clean), abs=0.5)
    assert longest_zero_run(out) < longest_zero_run(clean) / 2  # the tail fills the gaps
    rir = cond.room_impulse_response(0.6, (6, 5, 3), (1, 1, 1.5), (4, 3, 1.2))
    assert np.array_equal(rir, cond.room_impulse_response(0.6, (6, 5, 3), (1, 1, 1.5), (4, 3, 1.2)))


def test_each_turn_gets_at_least_one_condition_at_the_drawn_rates() -> None:
    augment = AugmentStage(AugmentConfig(), 1)  # defaults: noise .5, room .5, level 1, codec .3
    counts = {name: 0 for name in ("room", "noise", "level", "codec")}
    for n in range(400):
        for name in augment.chosen(f"key-{n}"):
            counts[name] += 1
    assert counts["level"] == 400
    assert 150 < counts["noise"] < 250 and 150 < counts["room"] < 250 and 80 < counts["codec"] < 160
    only_codec = AugmentStage(AugmentConfig(noise=None, room=None, level=None, codec={"probability": 0.0}), 1)
    assert all(only_codec.chosen(f"k{n}") == ["codec"] for n in range(20))  # never none at all


# -- token stability -------------------------------------------------------------------------------------


def reference_distance(a: list[int], b: list[int]) -> int:
    table = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        previous, table[0] = table[0], i
        for j, y in enumerate(b, 1):
            previous, table[j] = table[j], min(table[j] + 1, table[j - 1] + 1, previous + (x != y))
    return table[-1]


def test_edit_distance_matches_the_textbook_table() -> None:
    rng = np.random.default_rng(0)
    for _ in range(60):
        a, b = rng.integers(0, 4, rng.integers(0, 12)), rng.integers(0, 4, rng.integers(0, 12))
        assert edit_distance(a, b) == reference_distance(a.tolist(), b.tolist())
    assert collapse_repeats(np.array([5, 5, 7, 5, 5])).tolist() == [5, 7, 5]
    assert token_ned(np.array([1, 1, 2, 3]), np.array([1, 2, 2, 2, 3])) == 0.0  # holds differ only
    assert token_ned(np.array([1, 2]), np.array([3, 4, 5])) == 1.0
    assert token_ned(np.array([], np.int16), np.array([], np.int16)) == 0.0


# -- the recipe, and what stays as it was without it ----------------------------------------------------


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            "{codec: {bitrates: {mp3: [32000]}}}",
            "augment.codec: mp3: give bitrates of at least 48000",
        ),
        ("{noise: null, room: null, level: null, codec: null}", "augment: enable at least one condition"),
        ("{noise: {snr_db: [30, 5]}}", "augment.noise: snr_db: low must not exceed high"),
        ("{tasks: [multi_turn]}", "augment.tasks: 'multi_turn' is not one of the recipe's tasks"),
    ],
)
def test_a_bad_augment_section_is_one_line(tmp_path: Path, section: str, message: str) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(f"name: r\naugment: {section}\n")
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_augment_is_off_by_default_and_changes_nothing_then() -> None:
    recipe = load_recipe(ROOT / "recipes" / "demo.yaml")
    assert recipe.augment is None and "augment" not in recipe.dump_yaml()
    names = [s.name for s in build_stages(recipe)]
    assert "augment" not in names and "token_stability" not in names
    assert not any(m.startswith("aug_") or m == "token_ned" for m in metric_names(names))
    assert extra_columns(names) == {}
    record = encode_record(
        sample_record(
            Sample(
                "a",
                0,
                turns=[
                    Turn(USER, "hi", origin=TTS, key="a", tokens=np.zeros(3, np.int16)),
                    Turn(ASSISTANT, "x"),
                ],
            )
        )
    )
    assert b"labels" not in record  # a clean turn's json member is what it was before augment existed
    on = load_recipe(ROOT / "recipes" / "augment.yaml")
    assert on.augment is not None and "augment" in on.dump_yaml()
    assert [s.name for s in build_stages(on)].index("augment") < [s.name for s in build_stages(on)].index(
        "audio_filters"
    )


def test_replace_marks_the_turn_beside_adds_a_marked_copy() -> None:
    def samples() -> list[Sample]:
        return [
            Sample(f"s{n}", n, turns=[Turn(USER, "hi", origin=TTS, key=f"s{n}"), Turn(ASSISTANT, "x")])
            for n in range(40)
        ]

    base = {"name": "t", "seed": 2}
    replaced = list(
        augment_stream(
            iter(samples()), Recipe.model_validate({**base, "augment": {"fraction": 0.5}}), ["instruction"]
        )
    )
    marked = [s for s in replaced if s.turns[0].augment]
    assert len(replaced) == 40 and 10 < len(marked) < 30
    beside = list(
        augment_stream(
            iter(samples()),
            Recipe.model_validate({**base, "augment": {"fraction": 0.5, "mode": "beside"}}),
            ["instruction"],
        )
    )
    copies = [s for s in beside if s.id.endswith(BESIDE_SUFFIX)]
    assert [s.id.removesuffix(BESIDE_SUFFIX) for s in copies] == [s.id for s in marked]
    assert all(s.turns[0].augment for s in copies) and not any(
        s.turns[0].augment for s in beside if s not in copies
    )
    for copy in copies:  # right after its clean original
        assert beside[beside.index(copy) - 1].id == copy.id.removesuffix(BESIDE_SUFFIX)
    other = Recipe.model_validate(
        {
            **base,
            "augment": {"fraction": 1.0, "tasks": ["instruction"]},
            "tasks": {
                "instruction": {"share": 0.5},
                "transcription": {"share": 0.5, "source": {"kind": "chatterbot", "categories": ["ai"]}},
            },
        }
    )
    assert not any(s.turns[0].augment for s in augment_stream(iter(samples()), other, ["transcription"]))


# -- one small build -------------------------------------------------------------------------------------

BUILD = {
    "name": "aug",
    "seed": 4,
    "limit": 6,
    "source": {"kind": "chatterbot", "categories": ["ai"]},
    "tts": {"voices": [{"backend": "espeak", "voice": "en-us"}]},
    "asr": {"model": "none"},
    "tasks": {
        "instruction": {"share": 0.75},
        "noise_refusal": {"share": 0.25, "kinds": {"music": 1, "sounds": 1}, "max_s": 2},
    },
    "augment": ALL_ON,
}


@pytest.fixture(scope="module")
def augment_builds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Recipe]:
    recipe = Recipe.model_validate(BUILD)
    root = tmp_path_factory.mktemp("augment")
    cache = StageCache(root / "cache")
    from dataengine.pipeline import build

    first = build(recipe, root / "a", progress=False, cache=cache)
    build(
        recipe, root / "b", progress=False, cache=cache
    )  # the models' results from the cache; augment reruns
    assert not any(s.errors for s in first.stages)
    return root / "a", root / "b", recipe


@needs_recordings
def test_two_builds_give_the_same_bytes(augment_builds: tuple[Path, Path, Recipe]) -> None:
    a, b, _ = augment_builds
    files = sorted(
        p.relative_to(a)
        for p in a.rglob("*")
        if p.is_file() and p.parent.name in ("shards", "manifest", "rejected")
    )
    assert files and all((a / f).read_bytes() == (b / f).read_bytes() for f in files)


@needs_recordings
def test_the_build_records_conditions_clean_tokens_and_exact_shares(
    augment_builds: tuple[Path, Path, Recipe],
) -> None:
    out, _, recipe = augment_builds
    rows = duckdb.sql(f"SELECT * FROM read_parquet('{out}/manifest/samples.parquet')").fetchall()
    columns = [
        d[0]
        for d in duckdb.sql(
            f"DESCRIBE SELECT * FROM read_parquet('{out}/manifest/samples.parquet')"
        ).fetchall()
    ]
    table = [dict(zip(columns, row, strict=True)) for row in rows]
    copies = [r for r in table if r["id"].endswith(BESIDE_SUFFIX)]
    clean = [r for r in table if r["task"] == "instruction" and not r["id"].endswith(BESIDE_SUFFIX)]
    assert copies and clean
    for row in copies:
        assert row["conditions"] == "room+noise+level+codec" and row["aug_codec"] == "opus"
        assert row["clean_tokens"] and 0.0 <= row["token_ned"] <= 1.0
        refusal, background = clips.split_recordings(row["aug_noise_clip"].split("/")[0], recipe.seed, 0.5)
        assert row["aug_noise_clip"].split("/")[1] in {p.name for p in background} - {p.name for p in refusal}
    assert all(r["conditions"] is None and r["clean_tokens"] is None for r in clean)
    written = []  # the writing order: the exact task pattern, copies included
    for shard in sorted((out / "shards").glob("*.tar")):
        for member in wds.WebDataset(str(shard), shardshuffle=False):
            record = json.loads(member["json"])
            written.append(record["task"])
            if record["id"].endswith(BESIDE_SUFFIX):
                assert record["speech"][0]["labels"]["conditions"] == "room+noise+level+codec"
                assert len(np.load(io.BytesIO(member["tokens.npy"]))) == record["n_sound_tokens"]
    mixer = TaskMixer({name: task.share for name, task in recipe.tasks.enabled().items()}, recipe.seed)
    assert written == [mixer.next_task() for _ in written]
    text = summarize(out)
    assert "token stability" in text and "room+noise+level+codec" in text
    catalog = Catalog(out)  # the viewer: a filter and a chart by conditions
    charted = {c["conditions"]: c["kept"] for c in catalog.overview()["conditions"]}
    assert charted["room+noise+level+codec"] == len(copies)
    assert "room+noise+level+codec" in catalog.facets()["conditions"]
    card = render_card(out)
    assert "### Augmentation" in card and "| all |" in card and "Background noise mixed into" in card
