"""Long prompts: consecutive source pairs joined into one spoken turn of a drawn target length.

The chatterbot prompts all speak in under 3 s; Ichigo's authors note their model "cannot listen to
>10 s audio". Joining prompts until the estimated speech length reaches a target drawn between
``min_s`` and ``max_s`` gives spoken prompts of 10-20 s (or whatever the recipe asks) from the same
sources; the token limit then decides, as for any prompt, which are too long.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from dataengine.hashing import unit_draw
from dataengine.recipe import LongPrompts
from dataengine.sample import Sample


def join_pairs(
    rows: Iterator[Sample], config: LongPrompts, seed: int, chars_per_second: float
) -> Iterator[Sample]:
    """Kept pairs, a seeded ``config.fraction`` of them joined with the pairs that follow into one
    pair ``<first id>-j<n>`` (prompts joined as sentences, answers in order, one paragraph each).

    A prompt already in the group (sources repeat prompts) is kept for a later sample rather than said
    twice; rejected rows pass through where they occur. Every row ends up in exactly one sample."""
    rows = iter(rows)
    deferred: deque[Sample] = deque()

    def pull() -> Sample | None:
        return deferred.popleft() if deferred else next(rows, None)

    while (row := pull()) is not None:
        if not row.kept or unit_draw(seed, "join", row.id) >= config.fraction:
            yield row
            continue
        target = config.min_s + (config.max_s - config.min_s) * unit_draw(seed, "join-seconds", row.id)
        group, said, repeats = [row], {_norm(row.prompt)}, []
        while estimated_s(group, chars_per_second) < target and len(group) < config.max_prompts:
            nxt = pull()
            if nxt is None:
                break
            if not nxt.kept:
                yield nxt
            elif _norm(nxt.prompt) in said and len(repeats) < config.max_prompts:
                repeats.append(nxt)
            else:
                group.append(nxt)
                said.add(_norm(nxt.prompt))
        deferred.extendleft(reversed(repeats))
        if len(group) == 1:
            yield row
            continue
        first = group[0]
        yield Sample.pair(
            f"{first.id}-j{len(group)}",
            first.index,
            " ".join(_sentence(s.prompt) for s in group),
            "\n\n".join(s.response.strip() for s in group),
            first.source,
        )


def estimated_s(group: list[Sample], chars_per_second: float) -> float:
    """Speech length of the joined prompts, estimated from their characters."""
    return len(" ".join(_sentence(s.prompt) for s in group)) / chars_per_second


def _norm(text: str) -> str:
    return " ".join(text.lower().split()).rstrip(".!?")


def _sentence(text: str) -> str:
    """The prompt ending in punctuation, so the joined text is spoken as separate sentences."""
    text = text.strip()
    return text if text[-1:] in ".!?" else f"{text}."
