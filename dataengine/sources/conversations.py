"""Conversations in the two common layouts, and the checks every sample's turns must pass.

OpenAI-style ``[{"role": "user"|"assistant"|"system", "content": ...}]`` and ShareGPT-style
``[{"from": "human"|"gpt"|"system", "value": ...}]``. Leading system messages are dropped (Ichigo's
layout has none); any other problem becomes a reject row naming the turn.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dataengine.sample import ASSISTANT, RECORDING, USER, Sample, Turn

ROLES: dict[str, str] = {
    "user": USER,
    "human": USER,
    "assistant": ASSISTANT,
    "gpt": ASSISTANT,
    "model": ASSISTANT,
    "bot": ASSISTANT,
    "system": "system",
}
"""Role names of either layout -> ``user``, ``assistant`` (or ``system``)."""

CONVERSATION_REASONS = ("bad_row", "no_user_turn", "roles_out_of_order", "empty_turn")


def parse_messages(value: Any) -> tuple[list[Turn], str | None]:
    """The turns of one conversation value, or ``([], problem)`` when it is not a conversation."""
    if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
        return [], f"conversation is {type(value).__name__}, expected a list of messages"
    turns: list[Turn] = []
    for n, message in enumerate(value):
        if not isinstance(message, Mapping):
            return [], f"message {n} is {type(message).__name__}, expected an object"
        role = message.get("role", message.get("from"))
        content = message.get("content", message.get("value"))
        if not isinstance(role, str) or role.lower() not in ROLES:
            return [], f"message {n} has role {role!r} (use user/assistant or human/gpt)"
        if not isinstance(content, str):
            return [], f"message {n} content is {type(content).__name__}, expected text"
        if "\ufffd" in content:
            return [], f"message {n} is not valid UTF-8"
        turns.append(Turn(ROLES[role.lower()], content))
    while turns and turns[0].role == "system":
        turns.pop(0)
    return turns, None


def check_conversation(sample: Sample) -> Sample:
    """Reject (stage ``source``) a conversation without a user turn, with roles that do not alternate
    user/assistant from a user turn to an assistant turn, or with an empty turn; return the sample."""
    if not sample.kept or any(t.origin == RECORDING for t in sample.turns):
        return sample  # a recording's content is its audio: its task checks what it needs (text, answer)
    turns = sample.turns
    if not any(t.role == USER for t in turns):
        return sample.drop("source", "no_user_turn", detail=f"{len(turns)} turn(s), none from the user")
    for n, turn in enumerate(turns):
        expected = USER if n % 2 == 0 else ASSISTANT
        if turn.role != expected:
            return sample.drop(
                "source",
                "roles_out_of_order",
                float(n),
                f"turn {n} is {turn.role}, expected {expected}",
                turn=n,
            )
    if turns[-1].role != ASSISTANT:
        n = len(turns) - 1
        return sample.drop("source", "roles_out_of_order", float(n), "ends with a user turn", turn=n)
    for n, turn in enumerate(turns):
        if not turn.text.strip():
            return sample.drop("source", "empty_turn", float(n), f"{turn.role} turn {n} is empty", turn=n)
    return sample
