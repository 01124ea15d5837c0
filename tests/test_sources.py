import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from dataengine.recipe import Recipe
from dataengine.sources import iter_source


def recipe(**source) -> Recipe:
    return Recipe.model_validate({"name": "t", "source": source})


def test_chatterbot_yields_real_pairs_with_stable_ids() -> None:
    first = list(iter_source(recipe(kind="chatterbot", categories=["ai"]).with_overrides(limit=5)))
    again = list(iter_source(recipe(kind="chatterbot", categories=["ai"]).with_overrides(limit=5)))
    assert [s.id for s in first] == [s.id for s in again] == [f"chatterbot-ai-{n:04d}" for n in range(5)]
    assert first[0].prompt == "What is AI?"
    assert first[0].response.startswith("Artificial Intelligence")
    assert [s.index for s in first] == list(range(5))


def test_chatterbot_whole_corpus_has_about_two_thousand_pairs() -> None:
    samples = list(iter_source(recipe(kind="chatterbot")))
    assert 1900 < len(samples) < 2200
    assert len({s.id for s in samples}) == len(samples)
    assert all("." not in s.id for s in samples)


def test_jsonl_with_column_mapping_and_broken_rows(tmp_path: Path) -> None:
    path = tmp_path / "my.data.jsonl"
    lines = [
        json.dumps({"q": "What is rain?", "a": "Water falling from clouds.", "uid": "r.1"}),
        json.dumps({"q": "No answer here"}),
        json.dumps({"q": 42, "a": "numbers are not text"}),
        "{not json",
        json.dumps(["a", "list"]),
    ]
    payload = "\n".join(lines).encode() + b"\n" + b'{"q": "caf\xe9", "a": "x"}\n'
    path.write_bytes(payload)
    samples = list(
        iter_source(
            recipe(kind="files", paths=[str(path)], prompt_column="q", response_column="a", id_column="uid")
        )
    )
    assert len(samples) == 6
    good = samples[0]
    assert good.kept and good.id == "my_data-r_1" and good.response == "Water falling from clouds."
    reasons = [s.reject.detail for s in samples[1:]]
    assert "missing column 'a'" in reasons[0]
    assert "is int, expected text" in reasons[1]
    assert "not valid JSON" in reasons[2]
    assert "expected an object" in reasons[3]
    assert "not valid UTF-8" in reasons[4]
    assert all(s.reject.stage == "source" and s.reject.reason == "bad_row" for s in samples[1:])


def test_parquet_source(tmp_path: Path) -> None:
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"prompt": ["Hi there", None], "response": ["Hello", "x"]}), path)
    samples = list(iter_source(recipe(kind="files", paths=[str(path)])))
    assert samples[0].kept and samples[0].id == "rows-000000"
    assert not samples[1].kept and "NoneType" in samples[1].reject.detail


def test_hf_source_from_a_local_dataset_folder(tmp_path: Path) -> None:
    folder = tmp_path / "local_ds"
    (folder / "data").mkdir(parents=True)
    pq.write_table(
        pa.table({"instruction": ["Name a fruit.", "Say hi."], "output": ["Apple.", "Hi."]}),
        folder / "data" / "train-00000-of-00001.parquet",
    )
    samples = list(
        iter_source(
            recipe(
                kind="hf",
                name=str(folder),
                split="train",
                prompt_column="instruction",
                response_column="output",
            )
        )
    )
    assert [(s.id, s.prompt, s.response) for s in samples] == [
        ("local_ds-0000000", "Name a fruit.", "Apple."),
        ("local_ds-0000001", "Say hi.", "Hi."),
    ]
