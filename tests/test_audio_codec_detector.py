"""The shipped low-bitrate codec detector: residual features, the fitted weights on real speech it was not
trained on (CMU ARCTIC) and on Piper speech through Opus, the logistic fit, and the asset's refit."""

from __future__ import annotations

import numpy as np
import pytest
from audio_fixtures import speech, through_codec

from dataengine.audio.codec_detector import (
    FEATURE_NAMES,
    SCORE_FLOOR,
    CodecDetector,
    codec_score,
    fit_logistic,
    load_detector,
    residual_features,
)
from dataengine.audio.io import read_audio_file
from dataengine.evaluation import real
from dataengine.evaluation.codecs import codec_roundtrip
from dataengine.recipe import AudioFilterConfig

SR = 16_000
LIMIT = AudioFilterConfig().max_codec_score


def test_features_are_level_invariant_and_silence_has_none() -> None:
    x = speech()
    feats = residual_features(x)
    assert feats is not None and feats.shape == (len(FEATURE_NAMES),) and np.isfinite(feats).all()
    quiet = residual_features(x * 0.01)
    assert quiet is not None and np.allclose(feats, quiet, atol=1e-3)
    assert residual_features(np.zeros(SR, np.float32)) is None
    assert residual_features(x[:100]) is None
    assert codec_score(np.zeros(SR, np.float32)) == SCORE_FLOOR


@pytest.mark.parametrize("rate", [9_000, 12_000])
def test_piper_speech_through_wideband_opus_is_flagged(rate: int) -> None:
    x = speech()
    assert codec_score(x) < LIMIT
    assert codec_score(through_codec(x, "opus", rate)) > LIMIT


def test_held_out_real_talker_clean_kept_opus_flagged() -> None:
    """CMU ARCTIC a0007 is not in the training set (codec_fit.HELD_OUT)."""
    assert real.ARCTIC.is_file(), real.REAL_HINT
    x, _ = read_audio_file(real.ARCTIC)
    assert codec_score(x) < LIMIT - 2.0
    for rate in (9_000, 10_000, 11_000, 12_000):
        assert codec_score(codec_roundtrip(x, SR, "opus", rate)) > LIMIT, rate


def test_fit_separates_and_round_trips_through_json() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, len(FEATURE_NAMES)))
    y = (x[:, 0] + 0.5 * x[:, 3] > 0).astype(int)
    det = fit_logistic(x, y, l2=1.0)
    assert np.mean((det.score_features(x) > 0) == (y == 1)) > 0.95
    again = CodecDetector.from_json(det.to_json())
    assert np.allclose(again.score_features(x), det.score_features(x), atol=1e-5)
    assert np.array_equal(fit_logistic(x, y).weights, det.weights)


def test_weights_for_other_features_are_refused() -> None:
    text = load_detector().to_json().replace("unvoiced_bin0", "something_else")
    with pytest.raises(ValueError, match="refit"):
        CodecDetector.from_json(text)


@pytest.mark.slow
def test_shipped_weights_are_reproducible(tmp_path, capsys) -> None:
    """A refit equals the shipped asset byte for byte where its inputs are the same (a CPU like the one
    that made it, under the pins), and within the stated tolerance elsewhere; a real change is refused."""
    import json
    from importlib import resources

    from dataengine.evaluation import codec_fit

    shipped = resources.files("dataengine") / "assets" / "codec_detector.json"
    examples = codec_fit.build_examples()
    refit = codec_fit.fit(examples)
    text = codec_fit.asset_text(refit, examples)
    out = tmp_path / "w.json"
    out.write_text(shipped.read_text(encoding="utf-8"), encoding="utf-8")
    assert codec_fit.check_against(out, text, refit, examples) == 0, capsys.readouterr().out

    moved = json.loads(out.read_text(encoding="utf-8"))
    moved["weights"] = [w + 3 * codec_fit.WEIGHT_TOLERANCE for w in moved["weights"]]
    out.write_text(json.dumps(moved), encoding="utf-8")
    assert codec_fit.check_against(out, text, refit, examples) == 1
    assert "OUT OF TOLERANCE" in capsys.readouterr().out
