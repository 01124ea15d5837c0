"""The labeled evaluation corpus and the filters' scores on its CI-sized form (real Piper, codecs, VAD)."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from dataengine.cli import main
from dataengine.evaluation.corpus import BORDERLINE, build_corpus
from dataengine.evaluation.score import format_result, predict, score
from dataengine.recipe import AudioFilterConfig


@pytest.fixture(scope="module")
def corpus():
    return build_corpus(4, seed=0)


def test_ci_corpus_meets_the_goal_except_opus_12k(corpus) -> None:
    result = score(predict(corpus, AudioFilterConfig()))
    assert result.clean_kept >= 0.98
    for c in result.classes:
        assert c.precision >= 0.95, c
        if c.label != "bad_compression":
            assert c.recall >= 0.95, c
    # the one known miss: Opus at 12 kbps codes the full 0-8 kHz band (wideband SILK) and leaves no
    # spectral edge or holes; every other codec and bitrate is caught
    missed = {item_id.split("-", 2)[-1] for item_id, label, _ in result.mistakes}
    assert missed <= {"opus_12k"}
    assert "goal" in format_result(result)


def test_corpus_is_labeled_and_deterministic(corpus) -> None:
    labels = {item.label for item in corpus}
    assert labels == {
        "clean",
        "bad_compression",
        "noise",
        BORDERLINE,
        "clipping",
        "silence",
        "non_speech",
        "too_short",
        "too_long",
    }
    kinds = {item.kind for item in corpus}
    assert {
        "codec/gsm",
        "codec/mp3",
        "codec/opus",
        "codec/amr_nb",
        "codec/mulaw",
        "noise/babble",
        "non_speech/music_a",
        "clean/reverb",
    } <= kinds
    assert len({item.id for item in corpus}) == len(corpus)
    again = build_corpus(1, seed=0)
    first = {i.id: i.audio for i in corpus}
    assert all(np.array_equal(first[i.id], i.audio) for i in again if i.id in first)


def test_eval_filters_command_rejects_bad_size() -> None:
    result = CliRunner().invoke(main, ["eval-filters", "--size", "huge"])
    assert result.exit_code == 2 and "--size" in result.output
