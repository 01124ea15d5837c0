"""The audio filters scored on the larger labeled corpus (``make bench``): precision/recall per reject
class, clean keep-rate, per-kind breakdown and the wall time; then the same on the real-recording subset."""

from __future__ import annotations

import sys
import time

from dataengine.evaluation.asr_eval import score_asr
from dataengine.evaluation.corpus import SIZES, build_corpus
from dataengine.evaluation.real import REAL_SIZES, build_real_corpus
from dataengine.evaluation.score import format_result, predict, score
from dataengine.recipe import ASRConfig, AudioFilterConfig


def main(utterances: int = SIZES["bench"], seed: int = 0) -> None:
    started = time.perf_counter()
    items = build_corpus(utterances, seed)
    built = time.perf_counter()
    result = score(predict(items, AudioFilterConfig()))
    done = time.perf_counter()
    print(f"audio filter evaluation: {utterances} utterances, seed {seed}")
    print(format_result(result, verbose=True))
    print(f"corpus {built - started:.1f} s, filters {done - built:.1f} s")
    real_started = time.perf_counter()
    real = build_real_corpus(REAL_SIZES["bench"], seed)
    print(f"real recordings ({REAL_SIZES['bench']} Allison prompts + every other source):")
    print(format_result(score(predict(real, AudioFilterConfig())), verbose=True))
    print(f"real subset {time.perf_counter() - real_started:.1f} s")
    asr_started = time.perf_counter()
    print(score_asr(12, ASRConfig(model="tiny.en"), seed).format())
    print(f"ASR round trip {time.perf_counter() - asr_started:.1f} s (48 clips, tiny.en int8, 2 threads)")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
