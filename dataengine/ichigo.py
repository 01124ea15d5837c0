"""How Ichigo's own tokenizer reads a conversation turn, and what it would silently drop.

Ichigo trains with janhq's torchtune fork; its ``Llama3STokenizer._tokenize_body``
(``torchtune/models/llama3/_tokenizer_custom.py``) reads each turn's ``content`` by these rules, in order:

1. content that holds ``<|reserved_special_token_69|>`` takes a prefix path (dataengine never writes it);
2. the text before the first ``<|sound_start|>``, stripped, is one of its transcription requests: the
   request's ids, then the sound tokens of everything from that ``<|sound_start|>`` on;
3. content that holds both ``<|sound_start|>`` and ``<|sound_end|>``: *only* its sound tokens, so any
   text around them (an unrecognised request) is lost without a word;
4. anything else is plain text (stripped).

Sound tokens are cut out of the text by splitting it at ``|><|`` and discarding the first and the last
piece (the ``<|sound_start`` / ``sound_end|>`` ends, together with whatever text is glued to them);
every other piece must be one vocabulary token (``sound_0042``), or their tokenizer raises. Rule 2
strips the text since the fork's commit facbf82 (2025-01-16); before it, the text had to equal a
request exactly, and six of the eight requests ended in a space (``legacy=True`` applies that rule).
This module re-implements those rules so a build can be checked without the fork installed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

SOUND_START = "<|sound_start|>"
SOUND_END = "<|sound_end|>"
PREFIX_TOKEN = "<|reserved_special_token_69|>"
ICHIGO_SOUND_CODES = 513  # <|sound_0000|>…<|sound_0512|> in the v0.3/v0.4 vocabulary (512 codes + mask)

ICHIGO_REQUESTS = (  # the English requests of the fork's ``transcribe_prompt`` (since facbf82)
    "Transcribe the following audio clip:",
    "Convert the spoken words to text:",
    "What is being said in this audio clip:",
    "Transcribe the speech in this audio sample:",
    "Please write down what is being said in the audio clip:",
    "Generate a transcript from this sound file:",
    "Recognize the speech in this audio clip:",
    "Produce a text version of this audio recording:",
)
_NO_TRAILING_SPACE_BEFORE_2025 = {
    "Transcribe the speech in this audio sample:",
    "Please write down what is being said in the audio clip:",
}
ICHIGO_REQUESTS_LEGACY = tuple(r if r in _NO_TRAILING_SPACE_BEFORE_2025 else r + " " for r in ICHIGO_REQUESTS)

_SOUND_PIECE = re.compile(r"sound_(\d{4})")
SPOKEN_TASKS = frozenset({"instruction", "transcription", "noise_refusal", "multi_turn"})


@dataclass(frozen=True)
class TurnReading:
    """One turn as Ichigo's tokenizer sees it.

    ``kind``: ``transcription`` (request + sound), ``sound`` (sound only), ``text`` or ``prefixed``;
    ``text``: the text it tokenizes; ``codes``: the sound codes it tokenizes; ``dropped``: the text it
    ignores (empty when nothing is lost); ``error``: why its tokenizer would fail or misread the turn.
    """

    kind: str
    text: str = ""
    codes: tuple[int, ...] = ()
    dropped: tuple[str, ...] = ()
    error: str | None = None

    @property
    def lossless(self) -> bool:
        return self.error is None and not self.dropped


def _cut_sound(text: str, n_codes: int) -> tuple[tuple[int, ...], tuple[str, ...], str | None]:
    """The fork's sound cut: split at ``|><|``, drop both ends; each inner piece one sound token."""
    if SOUND_END not in text:
        return (), (), f"no {SOUND_END} after {SOUND_START}"
    pieces = text.strip().split("|><|")
    head, tail = pieces[0], pieces[-1]
    dropped = [head[: -len("<|sound_start")].strip() if head.endswith("<|sound_start") else head.strip()]
    dropped.append(tail[len("sound_end|>") :].strip() if tail.startswith("sound_end|>") else tail.strip())
    codes: list[int] = []
    for piece in pieces[1:-1]:
        match = _SOUND_PIECE.fullmatch(piece)
        if match is None:
            if piece in ("sound_start", "sound_end"):
                return (), (), "more than one sound span in one turn"
            return (), (), f"{piece[:40]!r} inside the sound span is not one sound token"
        code = int(match[1])
        if code >= n_codes:
            return (), (), f"<|sound_{code:04d}|> is not in Ichigo's vocabulary (codes 0..{n_codes - 1})"
        codes.append(code)
    return tuple(codes), tuple(d for d in dropped if d), None


def read_turn(content: str, n_codes: int = ICHIGO_SOUND_CODES, legacy: bool = False) -> TurnReading:
    """Apply the fork's rules (module docstring) to one turn's ``content``."""
    if PREFIX_TOKEN in content:
        return TurnReading("prefixed", error=f"holds {PREFIX_TOKEN}, which Ichigo reads as a prefix marker")
    head, has_start, _ = content.partition(SOUND_START)
    request = head if legacy else head.strip()
    if has_start and request in (ICHIGO_REQUESTS_LEGACY if legacy else ICHIGO_REQUESTS):
        codes, dropped, error = _cut_sound(content[len(head) :], n_codes)
        return TurnReading("transcription", request.strip(), codes, dropped, error)
    if has_start and SOUND_END in content:
        codes, dropped, error = _cut_sound(content, n_codes)
        return TurnReading("sound", "", codes, dropped, error)
    text = content.strip()
    if "<|sound_" in text:
        return TurnReading("text", text, error="sound tokens outside a sound span are read as plain text")
    return TurnReading("text", text)


@dataclass
class ConversationCheck:
    """The readings of a conversation's turns and every way Ichigo's training would misread it."""

    readings: list[TurnReading] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _role_problem(roles: Sequence[str]) -> str | None:
    """The first way ``roles`` breaks the OpenAI layout torchtune's chat_dataset accepts."""
    body = roles[1:] if roles and roles[0] == "system" else roles
    if not body:
        return "no user turn"
    for n, role in enumerate(body):
        want = "user" if n % 2 == 0 else "assistant"
        if role != want:
            return f"turn {n + len(roles) - len(body)} is {role!r} where {want!r} belongs"
    if body[-1] != "assistant":
        return "the last turn is not an assistant turn"
    return None


def check_conversation(
    conversations: Iterable[Mapping[str, object]],
    task: str | None = None,
    n_codes: int = ICHIGO_SOUND_CODES,
    legacy: bool = False,
) -> ConversationCheck:
    """Check a shard sample's ``conversations`` against Ichigo's tokenizer and the task's layout.

    Layout per task: ``transcription`` starts with a recognised request + sound; ``instruction``,
    ``noise_refusal`` and ``multi_turn`` have only spoken user turns (``multi_turn`` at least two);
    ``text_only`` has no sound at all. Assistant and system turns must read as plain text.
    """
    turns = list(conversations)
    check = ConversationCheck()
    roles = [str(t.get("role")) for t in turns]
    if (problem := _role_problem(roles)) is not None:
        check.problems.append(problem)
    for n, turn in enumerate(turns):
        content = turn.get("content")
        if not isinstance(content, str) or not content.strip():
            check.problems.append(f"turn {n} ({roles[n]}): empty content")
            check.readings.append(TurnReading("text"))
            continue
        reading = read_turn(content, n_codes, legacy)
        check.readings.append(reading)
        if reading.error:
            check.problems.append(f"turn {n} ({roles[n]}): {reading.error}")
        for text in reading.dropped:
            check.problems.append(f"turn {n} ({roles[n]}): Ichigo's tokenizer drops {text[:60]!r}")
        if roles[n] != "user" and reading.kind != "text":
            check.problems.append(f"turn {n} ({roles[n]}): read as {reading.kind}, not as text")
    check.problems += _task_problems(task, roles, check.readings)
    return check


def _task_problems(task: str | None, roles: list[str], readings: list[TurnReading]) -> list[str]:
    users = [(n, r) for n, (role, r) in enumerate(zip(roles, readings, strict=True)) if role == "user"]
    if not users or task not in (*SPOKEN_TASKS, "text_only"):
        return []
    if task == "text_only":
        return [f"turn {n}: text_only turn carries sound" for n, r in users if r.kind != "text"]
    problems = []
    first, rest = users[0], users[1:]
    if task == "transcription" and first[1].kind != "transcription":
        problems.append(f"turn {first[0]}: transcription sample without a recognised request")
    for n, reading in users if task != "transcription" else rest:
        if reading.kind != "sound":
            problems.append(f"turn {n}: {task} user turn is {reading.kind}, not spoken")
    if task == "multi_turn" and len(users) < 2:
        problems.append("multi_turn sample with fewer than two user turns")
    return problems
