"""``noise_refusal``: a spoken turn that holds no speech, answered by a refusal.

Samples are generated (``noise-<n>``): each draws a noise kind by the recipe's weights, and an answer
from the refusal list. Audio kinds get their clip from the noise stage and their tokens from the
tokenizer; ``tokens`` turns get a random sound-token sequence at writing time, its length drawn from the
lengths of the real spoken prompts written before it (as Ichigo did).
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import count

import numpy as np

from dataengine.hashing import unit_draw, weighted_choice
from dataengine.noise.clips import missing_packages
from dataengine.recipe import SettingError
from dataengine.sample import ASSISTANT, NOISE, TOKENS, USER, Sample, Turn
from dataengine.tasks.base import FormatContext, Task
from dataengine.tasks.refusals import REFUSALS

TOKENS_PER_SECOND = 25


class NoiseRefusalTask(Task):
    name = "noise_refusal"
    origins = (NOISE, TOKENS)
    generates = True

    @property
    def answers(self) -> tuple[str, ...]:
        return tuple(self.config.answers or REFUSALS)

    def preflight(self) -> None:
        missing = missing_packages(list(self.config.kinds))
        if missing:
            raise SettingError(
                "tasks.noise_refusal.kinds", f"the recorded kinds need apt-get install -y {' '.join(missing)}"
            )

    def samples(self, rows: Iterator[Sample] | None) -> Iterator[Sample]:
        kinds = list(self.config.kinds)
        weights = [self.config.kinds[k] for k in kinds]
        seed, answers = self.recipe.seed, self.answers
        for n in count():
            sample_id = f"noise-{n:06d}"
            kind = kinds[weighted_choice(weights, seed, "noise-kind", sample_id)]
            answer = answers[weighted_choice([1.0] * len(answers), seed, "refusal", sample_id)]
            origin = TOKENS if kind == "tokens" else NOISE
            user = Turn(USER, "", origin=origin, key=sample_id, voice=f"noise:{kind}")
            yield Sample(sample_id, n, "noise", [user, Turn(ASSISTANT, answer)])

    def format(self, sample: Sample, context: FormatContext) -> None:
        user = sample.turns[0]
        if user.origin == TOKENS:
            fallback = (
                max(1, int(self.config.min_s * TOKENS_PER_SECOND)),
                min(context.max_sound_tokens, int(self.config.max_s * TOKENS_PER_SECOND)),
            )
            length = max(1, context.draw_length(fallback, "noise-tokens", sample.id))
            rng = np.random.default_rng(int(unit_draw(context.seed, "noise-codes", sample.id) * 2**32))
            user.tokens = rng.integers(0, self.config.codes, size=length).astype(np.int16)
        sample.task = self.name
