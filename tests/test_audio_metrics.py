"""Audio I/O and signal metrics on real Piper speech and synthetic signals."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
from audio_fixtures import add_white_noise, hard_clipped, speech, through_8k, tone, white_noise

from dataengine.audio.io import decode_audio, encode_flac, load_audio, resample, to_mono_float32
from dataengine.audio.metrics import (
    DB_FLOOR,
    WADA_MAX_DB,
    WADA_MIN_DB,
    band_dynamics_db,
    clipping_ratio,
    duration_s,
    hf_energy_db,
    wada_snr_db,
)

SR = 16_000


# --- io ---------------------------------------------------------------------------------------


def test_flac_round_trip_and_byte_determinism() -> None:
    x = speech()
    data = encode_flac(x)
    assert data[:4] == b"fLaC"
    assert encode_flac(x) == data
    assert encode_flac(x.copy()) == data
    y, sr = decode_audio(data)
    assert sr == SR and y.dtype == np.float32 and y.shape == x.shape
    assert np.max(np.abs(y - np.clip(x, -1, 1))) <= 1.0 / 32768 + 1e-7


def test_flac_clips_out_of_range_samples() -> None:
    y, _ = decode_audio(encode_flac(np.array([2.0, -2.0, 0.5], dtype=np.float32)))
    np.testing.assert_allclose(y, [32767 / 32768, -1.0, 0.5], atol=1e-6)


def test_load_audio_resamples_and_downmixes(tmp_path) -> None:
    stereo = np.stack([tone(1.0, 300), tone(1.0, 300)], axis=1)
    stereo_22k = np.stack([resample(stereo[:, 0], SR, 22050)] * 2, axis=1)
    path = tmp_path / "clip.wav"
    sf.write(path, stereo_22k, 22050, subtype="PCM_16")
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - SR) <= 2
    assert 0.45 < np.max(np.abs(audio)) < 0.55


def test_load_audio_unreadable_names_the_file(tmp_path) -> None:
    bad = tmp_path / "not_audio.wav"
    bad.write_text("this is not audio")
    with pytest.raises(ValueError, match="not_audio.wav"):
        load_audio(bad)
    with pytest.raises(ValueError, match="missing.flac"):
        load_audio(tmp_path / "missing.flac")


def test_resample_is_deterministic_and_keeps_duration() -> None:
    x = speech()
    a, b = resample(x, SR, 22050), resample(x, SR, 22050)
    assert np.array_equal(a, b) and a.dtype == np.float32
    assert abs(len(a) / 22050 - len(x) / SR) < 1e-3
    assert to_mono_float32(np.array([[0, 32767]], dtype=np.int16))[0] == pytest.approx(0.5, abs=1e-3)


# --- metrics ----------------------------------------------------------------------------------


@pytest.mark.parametrize("snr", [20.0, 10.0, 5.0])
def test_wada_snr_tracks_added_white_noise(snr: float) -> None:
    estimate = wada_snr_db(add_white_noise(speech(), snr))
    assert abs(estimate - snr) < 3.0


def test_wada_snr_orders_noise_levels_and_is_bounded() -> None:
    x = speech()
    estimates = [wada_snr_db(add_white_noise(x, s)) for s in (0, 10, 20, 30)]
    assert estimates == sorted(estimates)
    assert wada_snr_db(white_noise(SR)) < 0  # pure Gaussian noise sits at the bottom of the table
    assert WADA_MIN_DB <= wada_snr_db(x) <= WADA_MAX_DB


def test_hf_energy_separates_full_band_from_band_limited() -> None:
    x = speech()
    clean = hf_energy_db(x)
    assert -35.0 < clean < -15.0
    assert hf_energy_db(through_8k(x)) < -60.0
    # white noise: the band above 6 kHz is a quarter of 0..8 kHz
    assert hf_energy_db(white_noise(4 * SR)) == pytest.approx(10 * math.log10(0.25), abs=0.5)
    assert hf_energy_db(tone(1.0, 440)) < -80.0


def test_band_dynamics_tells_a_speech_band_from_a_noise_floor() -> None:
    """4.5-7.5 kHz: speech rises from pauses to syllables; a stationary floor barely moves. The telephone
    band keeps its speech dynamics when the top band holds only a floor added after the 8 kHz link."""
    x = speech()
    assert band_dynamics_db(x) > 15.0
    assert band_dynamics_db(white_noise(3 * SR)) < 3.0
    floor = white_noise(len(x), seed=3, rms=float(np.sqrt(np.mean(x**2))) * 10 ** (-35 / 20))
    assert band_dynamics_db(through_8k(x) + floor) < 3.0
    assert band_dynamics_db(through_8k(x) + floor, lo_hz=300.0, hi_hz=3400.0) > 34.0
    assert band_dynamics_db(x + floor) > 5.0  # wideband speech under the same floor still moves its top band
    assert band_dynamics_db(np.zeros(SR, dtype=np.float32)) == 0.0
    assert band_dynamics_db(np.zeros(0, dtype=np.float32)) == 0.0


def test_clipping_ratio_and_duration() -> None:
    x = speech()
    assert clipping_ratio(x) < 1e-4
    assert clipping_ratio(hard_clipped(x)) > 0.01
    assert clipping_ratio(np.array([0.0, 0.995, -1.0, 0.5], dtype=np.float32)) == 0.5
    assert duration_s(np.zeros(24_000, dtype=np.float32)) == 1.5


@pytest.mark.parametrize("n", [0, 1, 100, SR])
def test_silence_and_empty_give_finite_values(n: int) -> None:
    silence = np.zeros(n, dtype=np.float32)
    values = [hf_energy_db(silence), wada_snr_db(silence), clipping_ratio(silence), duration_s(silence)]
    assert all(math.isfinite(v) for v in values)
    assert hf_energy_db(silence) == DB_FLOOR
    assert wada_snr_db(silence) == WADA_MIN_DB
    assert clipping_ratio(silence) == 0.0


def test_non_finite_input_gives_finite_values() -> None:
    x = speech()
    x[100] = np.nan
    x[200] = np.inf
    assert math.isfinite(hf_energy_db(x)) and math.isfinite(wada_snr_db(x))
