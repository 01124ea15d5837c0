"""``multi_turn``: a conversation whose every user turn is spoken; assistant turns stay text."""

from __future__ import annotations

from collections.abc import Iterator

from dataengine.sample import USER, Sample
from dataengine.tasks.base import Task


class MultiTurnTask(Task):
    """Each user turn gets its own key (``<id>-t<turn>``), hence its own voice draw, filters and token
    limit; a turn that fails rejects the conversation with that turn's index."""

    name = "multi_turn"

    def preparation(self) -> str:
        return f"multi_turn:{self.config.min_user_turns}" + (":t2s" if self.config.tokens == "t2s" else "")

    def samples(self, rows: Iterator[Sample] | None) -> Iterator[Sample]:
        assert rows is not None
        need = self.config.min_user_turns
        for sample in rows:
            if sample.kept:
                users = sum(t.role == USER for t in sample.turns)
                if users < need:
                    sample.drop("source", "too_few_turns", float(users), f"{users} user turn(s), need {need}")
                else:
                    for n, turn in enumerate(sample.turns):
                        if turn.role == USER:
                            turn.key = f"{sample.id}-t{n}"
                            turn.origin = self.spoken_origin(turn.key)
            yield sample
