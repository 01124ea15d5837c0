"""Conversation sources (OpenAI ``messages``, ShareGPT ``conversations``) and bad conversations as
reject rows that name the turn."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dataengine.recipe import FilesSource, Recipe, RecipeError
from dataengine.sample import ASSISTANT, TTS, USER, Sample, Turn
from dataengine.sources import iter_rows
from dataengine.sources.conversations import check_conversation, parse_messages
from dataengine.tasks import make_tasks


def test_openai_and_sharegpt_layouts_parse_alike() -> None:
    openai = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi?"},
        {"role": "assistant", "content": "Hello."},
    ]
    sharegpt = [
        {"from": "system", "value": "Be brief."},
        {"from": "human", "value": "Hi?"},
        {"from": "gpt", "value": "Hello."},
    ]
    for value in (openai, sharegpt):
        turns, problem = parse_messages(value)
        assert problem is None
        assert [(t.role, t.text) for t in turns] == [(USER, "Hi?"), (ASSISTANT, "Hello.")]  # system dropped


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("Hi there", "conversation is str"),
        ([["user", "hi"]], "message 0 is list"),
        ([{"role": "narrator", "content": "x"}], "message 0 has role 'narrator'"),
        ([{"role": "user", "content": 5}], "message 0 content is int"),
        ([{"role": "user"}], "message 0 content is NoneType"),
    ],
)
def test_malformed_conversations_are_named(value: object, problem: str) -> None:
    turns, found = parse_messages(value)
    assert turns == [] and found is not None and problem in found


def conversation(*pairs: tuple[str, str]) -> Sample:
    return Sample("c", 0, turns=[Turn(role, text) for role, text in pairs])


@pytest.mark.parametrize(
    ("turns", "reason", "turn"),
    [
        ([(ASSISTANT, "Hello.")], "no_user_turn", None),
        ([], "no_user_turn", None),
        ([(ASSISTANT, "Hello."), (USER, "Hi?")], "roles_out_of_order", 0),
        ([(USER, "Hi?"), (USER, "Anyone?"), (ASSISTANT, "Yes.")], "roles_out_of_order", 1),
        ([(USER, "Hi?"), (ASSISTANT, "Hello."), (USER, "Bye?")], "roles_out_of_order", 2),
        ([(USER, "Hi?"), (ASSISTANT, "  ")], "empty_turn", 1),
        ([(USER, ""), (ASSISTANT, "Hello.")], "empty_turn", 0),
    ],
)
def test_bad_conversations_become_reject_rows_naming_the_turn(
    turns: list[tuple[str, str]], reason: str, turn: int | None
) -> None:
    sample = check_conversation(conversation(*turns))
    assert sample.reject is not None
    assert (sample.reject.stage, sample.reject.reason, sample.reject.turn) == ("source", reason, turn)
    assert "\n" not in sample.reject.detail
    assert check_conversation(conversation((USER, "Hi?"), (ASSISTANT, "Hello."))).kept


def test_a_files_source_of_conversations(tmp_path: Path) -> None:
    good = [{"role": "user", "content": "One?"}, {"role": "assistant", "content": "Yes."}] * 2
    rows = [
        {"id": "a", "messages": good},
        {"id": "b", "conversations": [{"from": "human", "value": "One?"}, {"from": "gpt", "value": "Yes."}]},
        {"id": "c", "messages": [{"role": "assistant", "content": "Unasked."}]},
        {"id": "d", "messages": "not a list"},
    ]
    path = tmp_path / "chats.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{broken\n")
    source = FilesSource(kind="files", paths=[path], messages_column="messages", id_column="id")
    samples = list(iter_rows(source))
    assert [s.id for s in samples] == ["chats-a", "chats-b", "chats-c", "chats-d", "chats-000004"]
    assert samples[0].kept and len(samples[0].turns) == 4
    reasons = [(s.reject.reason, s.reject.detail[:40]) if s.reject else None for s in samples[1:]]
    assert reasons[0] == ("bad_row", "missing column 'messages'")
    assert reasons[1][0] == "no_user_turn" and reasons[2][0] == "bad_row" and reasons[3][0] == "bad_row"
    sharegpt = FilesSource(kind="files", paths=[path], messages_column="conversations", id_column="id")
    assert [s.kept for s in iter_rows(sharegpt)][:2] == [False, True]


def test_multi_turn_speaks_every_user_turn_with_its_own_key_and_needs_two(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text("{}\n")
    source = {"kind": "files", "paths": [str(path)], "messages_column": "messages"}
    recipe = Recipe.model_validate(
        {
            "name": "m",
            "tasks": {"multi_turn": {"share": 0.5, "source": source}, "instruction": {"share": 0.5}},
        }
    )
    tasks = make_tasks(recipe)
    three = conversation(
        (USER, "A?"), (ASSISTANT, "a."), (USER, "B?"), (ASSISTANT, "b."), (USER, "C?"), (ASSISTANT, "c.")
    )
    one = conversation((USER, "A?"), (ASSISTANT, "a."))
    spoken, short = tasks["multi_turn"].samples(iter([three, one]))
    assert [(t.origin, t.key) for t in spoken.turns if t.role == USER] == [
        (TTS, "c-t0"),
        (TTS, "c-t2"),
        (TTS, "c-t4"),
    ]
    assert all(t.origin is None for t in spoken.turns if t.role == ASSISTANT)
    assert (short.reject.reason, short.reject.value) == ("too_few_turns", 1.0)
    [several] = tasks["instruction"].samples(iter([conversation(*[(t.role, t.text) for t in three.turns])]))
    assert several.reject.reason == "not_single_turn"


def test_a_task_s_own_source_is_checked_before_work_and_named(tmp_path: Path) -> None:
    from dataengine.recipe import SettingError, load_recipe
    from dataengine.sources import check_source

    (tmp_path / "chats.csv").write_text("messages\n")
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text(
        "name: r\ntasks:\n  instruction: {share: 0.5}\n"
        "  multi_turn: {share: 0.5, source: {kind: files, paths: [chats.csv], messages_column: messages}}\n"
    )
    recipe = load_recipe(recipe_file)
    assert recipe.tasks.multi_turn.source.paths == [tmp_path / "chats.csv"]  # resolved beside the recipe
    with pytest.raises(SettingError, match=r"^tasks\.multi_turn\.source\.paths\.0: .*unsupported file type"):
        check_source(recipe)
    recipe_file.write_text(recipe_file.read_text().replace("chats.csv", "missing.jsonl"))
    with pytest.raises(RecipeError, match=r"tasks\.multi_turn\.source\.paths\.0: file not found"):
        load_recipe(recipe_file)
