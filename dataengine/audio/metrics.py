"""Signal-quality features on mono float32 audio (numpy only); every result is a finite float.

Bounds: dB features are floored at :data:`DB_FLOOR`; :func:`wada_snr_db` lies in [-20, 100] dB
(the range of the published table); silence or empty input gives the lower bound, never NaN/inf.
"""

from __future__ import annotations

import numpy as np

from dataengine.sample import AUDIO_SAMPLE_RATE

DB_FLOOR = -120.0
"""Value of a dB ratio whose numerator (or the whole signal) is zero."""

WADA_MIN_DB = -20.0
WADA_MAX_DB = 100.0

_FRAME = 512
_HOP = 256
_SILENCE_POWER = 1e-20

# Kim & Stern (2008), "Robust signal-to-noise ratio estimation based on waveform amplitude
# distribution analysis": G(SNR) = log(E|z|) - E[log|z|] for gamma-distributed (shape 0.4) speech
# plus Gaussian noise, tabulated at SNR = -20 ... 100 dB in 1 dB steps (values of the authors' code).
_WADA_DB = np.arange(WADA_MIN_DB, WADA_MAX_DB + 1.0)
# fmt: off
_WADA_G = np.array([
    0.40974774, 0.40986926, 0.40998566, 0.40969089, 0.40986186, 0.40999006, 0.41027138, 0.41052627,
    0.41101024, 0.41143264, 0.41231718, 0.41337272, 0.41526426, 0.41781920, 0.42077252, 0.42452799,
    0.42918886, 0.43510373, 0.44234195, 0.45161485, 0.46221153, 0.47491647, 0.48883809, 0.50509236,
    0.52353709, 0.54372088, 0.56532427, 0.58847532, 0.61346212, 0.63954496, 0.66750818, 0.69583724,
    0.72454762, 0.75414799, 0.78323148, 0.81240985, 0.84219775, 0.87166406, 0.90030504, 0.92880418,
    0.95655449, 0.98353490, 1.01047155, 1.03620950, 1.06136425, 1.08579312, 1.10948190, 1.13277995,
    1.15472826, 1.17627308, 1.19703503, 1.21671694, 1.23535898, 1.25364313, 1.27103891, 1.28718029,
    1.30302865, 1.31839527, 1.33294817, 1.34700935, 1.36057270, 1.37345513, 1.38577122, 1.39733504,
    1.40856397, 1.41959619, 1.42983624, 1.43958467, 1.44902176, 1.45804831, 1.46669568, 1.47486938,
    1.48269965, 1.49034339, 1.49748214, 1.50435106, 1.51076426, 1.51698915, 1.52290970, 1.52857800,
    1.53389835, 1.53912110, 1.54390650, 1.54858517, 1.55310776, 1.55744391, 1.56164927, 1.56566348,
    1.56938671, 1.57307767, 1.57654764, 1.57980083, 1.58304129, 1.58602496, 1.58880681, 1.59162477,
    1.59419690, 1.59693155, 1.59944600, 1.60185011, 1.60408668, 1.60627134, 1.60826199, 1.61004547,
    1.61192472, 1.61369656, 1.61534074, 1.61688905, 1.61838916, 1.61985374, 1.62135878, 1.62268119,
    1.62390423, 1.62513143, 1.62632463, 1.62740270, 1.62842767, 1.62945532, 1.63033070, 1.63128026,
    1.63204102,
])
# fmt: on


def _as_float64(audio: np.ndarray) -> np.ndarray:
    arr = np.asarray(audio, dtype=np.float64).reshape(-1)
    return np.nan_to_num(arr, nan=0.0, posinf=1.0, neginf=-1.0)


def duration_s(audio: np.ndarray, sr: int = AUDIO_SAMPLE_RATE) -> float:
    """Length in seconds."""
    return float(len(audio)) / float(sr)


def power_spectrum(audio: np.ndarray, frame: int = _FRAME, hop: int = _HOP) -> np.ndarray:
    """Mean power spectrum over Hann-windowed frames (Welch-like); length ``frame // 2 + 1``.

    Input shorter than one frame is zero-padded to one frame.
    """
    x = _as_float64(audio)
    if len(x) < frame:
        x = np.pad(x, (0, frame - len(x)))
    n_frames = 1 + (len(x) - frame) // hop
    frames = np.lib.stride_tricks.sliding_window_view(x, frame)[::hop][:n_frames]
    spec = np.fft.rfft(frames * np.hanning(frame), axis=1)
    return (np.abs(spec) ** 2).mean(axis=0)


def hf_energy_db(audio: np.ndarray, sr: int = AUDIO_SAMPLE_RATE, cutoff_hz: float = 6000.0) -> float:
    """Energy above ``cutoff_hz`` relative to the total energy, in dB (<= 0, floored at DB_FLOOR).

    Speech that went through a narrow-band codec or an 8 kHz link has almost nothing above 6 kHz.
    Silence returns DB_FLOOR.
    """
    psd = power_spectrum(audio)
    freqs = np.fft.rfftfreq(_FRAME, d=1.0 / sr)
    total = float(psd.sum())
    if total <= _SILENCE_POWER:
        return DB_FLOOR
    high = float(psd[freqs >= cutoff_hz].sum())
    if high <= 0.0:
        return DB_FLOOR
    return float(max(DB_FLOOR, 10.0 * np.log10(high / total)))


def wada_snr_db(audio: np.ndarray) -> float:
    """Blind SNR estimate in dB by waveform amplitude distribution analysis (Kim & Stern 2008).

    Computes G = log(mean|x|) - mean(log|x|) of the peak-normalised waveform and inverts the
    published G(SNR) table by linear interpolation. Result in [WADA_MIN_DB, WADA_MAX_DB];
    silence gives WADA_MIN_DB.
    """
    eps = 1e-10
    x = _as_float64(audio)
    peak = float(np.abs(x).max()) if len(x) else 0.0
    if peak < eps:
        return WADA_MIN_DB
    mag = np.maximum(np.abs(x / peak), eps)
    g = float(np.log(max(mag.mean(), eps)) - np.log(mag).mean())
    below = np.nonzero(_WADA_G < g)[0]
    if len(below) == 0:
        return WADA_MIN_DB
    i = int(below.max())
    if i >= len(_WADA_G) - 1:
        return WADA_MAX_DB
    frac = (g - _WADA_G[i]) / (_WADA_G[i + 1] - _WADA_G[i])
    snr = _WADA_DB[i] + frac * (_WADA_DB[i + 1] - _WADA_DB[i])
    return float(np.clip(snr, WADA_MIN_DB, WADA_MAX_DB))


def clipping_ratio(audio: np.ndarray, level: float = 0.99) -> float:
    """Share of samples with ``|x| >= level`` (0.0 for empty input)."""
    x = _as_float64(audio)
    if len(x) == 0:
        return 0.0
    return float(np.count_nonzero(np.abs(x) >= level)) / float(len(x))


def frame_power(audio: np.ndarray, frame: int = _FRAME, hop: int = _HOP) -> np.ndarray:
    """Power spectrum of every Hann-windowed frame, shape ``(frames, frame // 2 + 1)``."""
    x = _as_float64(audio)
    if len(x) < frame:
        x = np.pad(x, (0, frame - len(x)))
    frames = np.lib.stride_tricks.sliding_window_view(x, frame)[::hop]
    return np.abs(np.fft.rfft(frames * np.hanning(frame), axis=1)) ** 2


def active_frames(power: np.ndarray, within_db: float = 30.0) -> np.ndarray:
    """The rows of ``power`` whose energy is within ``within_db`` of the loudest frame (none if silent)."""
    energy = power.sum(axis=1)
    peak = float(energy.max()) if len(energy) else 0.0
    if peak <= _SILENCE_POWER:
        return power[:0]
    return power[energy >= peak * 10 ** (-within_db / 10)]


def band_edge_db(
    audio: np.ndarray, sr: int = AUDIO_SAMPLE_RATE, lo_hz: float = 2500.0, hi_hz: float = 6000.0
) -> tuple[float, float]:
    """The sharpest drop of the long-term spectrum of the active frames: ``(drop dB, frequency Hz)``.

    At every candidate edge ``f`` in ``[lo_hz, hi_hz]`` the mean level of ``f-600 .. f-100`` Hz minus that
    of ``f+100 .. f+600`` Hz; the largest wins. A codec's or an 8/11 kHz channel's low-pass is a cliff of
    50-85 dB; speech, even without fricatives, and any noise fall off gently (under 20 dB). With the
    default ``hi_hz`` a band that reaches 6.6 kHz or more (a 16 kHz source, 7 kHz wideband voice) shows no
    edge. ``(0, 0)`` for silence.
    """
    active = active_frames(frame_power(audio))
    if len(active) == 0:
        return 0.0, 0.0
    level = 10.0 * np.log10(active.mean(axis=0) + _SILENCE_POWER)
    freqs = np.fft.rfftfreq(_FRAME, d=1.0 / sr)
    best, where = 0.0, 0.0
    for f in freqs[(freqs >= lo_hz) & (freqs <= hi_hz)]:
        below = level[(freqs >= f - 600) & (freqs < f - 100)].mean()
        above = level[(freqs > f + 100) & (freqs <= f + 600)].mean()
        if below - above > best:
            best, where = float(below - above), float(f)
    return best, where


def spectral_hole_ratio(
    audio: np.ndarray, sr: int = AUDIO_SAMPLE_RATE, lo_hz: float = 1000.0, hi_hz: float = 6500.0
) -> float:
    """Share of time-frequency bins (active frames, ``lo_hz .. hi_hz``) more than 30 dB below the mean
    of their 9 neighbouring bins: the zeroed bands a low-bitrate perceptual codec (MP3) leaves.

    Clean, noisy or reverberant speech measured at most 0.002; MP3 at 24-32 kbps 0.015 and more. The
    band stops at 6.5 kHz so that the low-pass of a 16 kHz source (7 kHz and up) is not counted as holes.
    0.0 for silence.
    """
    active = active_frames(frame_power(audio))
    if len(active) == 0:
        return 0.0
    freqs = np.fft.rfftfreq(_FRAME, d=1.0 / sr)
    band = active[:, (freqs >= lo_hz) & (freqs <= hi_hz)]
    padded = np.pad(band, ((0, 0), (4, 4)))
    csum = np.concatenate([np.zeros((len(band), 1)), np.cumsum(padded, axis=1)], axis=1)
    local = (csum[:, 9:] - csum[:, :-9]) / 9.0  # mean of each bin and its 8 neighbours
    return float(np.mean(band < local * 1e-3))


def level_snr_db(audio: np.ndarray, frame: int = _FRAME) -> float:
    """Speech-to-noise-floor estimate from frame levels: 95th minus 10th percentile of the frame
    energies in dB (0 .. 120). Pauses and reverberation tails reach the floor; stationary noise
    lifts it. Silence or input shorter than a frame gives 0.0.
    """
    x = _as_float64(audio)
    n = len(x) // frame
    if n == 0:
        return 0.0
    energy = np.square(x[: n * frame]).reshape(n, frame).mean(axis=1)
    if float(energy.max()) <= _SILENCE_POWER:
        return 0.0
    db = 10.0 * np.log10(np.maximum(energy, float(energy.max()) * 1e-12))
    return float(np.clip(np.percentile(db, 95) - np.percentile(db, 10), 0.0, 120.0))


def band_dynamics_db(
    audio: np.ndarray,
    sr: int = AUDIO_SAMPLE_RATE,
    lo_hz: float = 4500.0,
    hi_hz: float = 7500.0,
    frame: int = _FRAME,
    hop: int = _HOP,
) -> float:
    """How much the energy of one band moves over time: 95th minus 10th percentile of the per-frame
    energy in ``lo_hz .. hi_hz``, in dB (0 .. 120).

    A band that carries speech rises by 15-60 dB from pauses to syllables; a band that holds only a
    stationary noise floor moves by 1-2.5 dB (the spread of a noise estimate over ~100 bins). Speech
    that went through an 8 kHz telephone channel and got a wideband noise floor afterwards keeps a
    speech-like low band and a flat, noise-only band above 4 kHz. 0.0 for silence.
    """
    return bands_dynamics_db(audio, [(lo_hz, hi_hz)], sr, frame, hop)[0]


def bands_dynamics_db(
    audio: np.ndarray,
    bands: list[tuple[float, float]],
    sr: int = AUDIO_SAMPLE_RATE,
    frame: int = _FRAME,
    hop: int = _HOP,
) -> list[float]:
    """:func:`band_dynamics_db` of several bands from one short-time spectrum."""
    power = frame_power(audio, frame, hop)
    freqs = np.fft.rfftfreq(frame, d=1.0 / sr)
    out = []
    for lo_hz, hi_hz in bands:
        energy = power[:, (freqs >= lo_hz) & (freqs < hi_hz)].sum(axis=1)
        peak = float(energy.max()) if len(energy) else 0.0
        if peak <= _SILENCE_POWER:
            out.append(0.0)
            continue
        energy = np.maximum(energy, peak * 1e-12)
        ratio = np.percentile(energy, 95) / np.percentile(energy, 10)
        out.append(float(np.clip(10.0 * np.log10(ratio), 0.0, 120.0)))
    return out
