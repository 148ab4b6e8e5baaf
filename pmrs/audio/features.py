"""Clip features: the log-compressed mel spectrogram and MFCCs with their differences.

Pure functions of (audio, settings), the settings in :class:`FeatureConfig` with their defaults
defined once (DESIGN: 22,050 Hz mono, 128 mel bands, window 1024, hop 512, 13 MFCCs with first and
second differences).

Log compression is decibels of mel *power*, ``10 * log10(max(S, 1e-10))``, i.e.
``librosa.power_to_db(S, ref=1.0, amin=1e-10, top_db=None)``: an absolute scale (no per-clip
reference, no per-clip floor), so the same sound gives the same values in every clip; the floor is
-100 dB and a full-scale signal stays below +60 dB. It is what ``librosa.feature.mfcc`` expects as
``S``. Stored as float16, whose spacing is 1/32 dB between 32 and 64 dB and 1/16 dB between 64
and 128 dB in magnitude, far below anything audible or learnable; values are clipped to float16's
range first, so nothing can overflow to infinity.

The STFT is computed once per clip: the mel projection is one matrix product with a cached mel
filter bank (the same numbers as ``librosa.feature.melspectrogram``, which rebuilds the filter bank
and uses ``einsum`` on every call), and the MFCCs are the DCT of that log-mel spectrogram.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache

import librosa
import numpy as np

_FLOAT16_MAX = float(np.finfo(np.float16).max)


@dataclass(frozen=True)
class FeatureConfig:
    """Settings of the audio features (``[features]`` in a TOML config).

    Attributes
    ----------
    sample_rate_hz : int
        Clips are decoded and resampled to this rate, in Hz.
    n_fft : int
        STFT window length in samples (1024 = 46 ms at 22,050 Hz).
    hop_length : int
        STFT hop in samples (512 = 23 ms at 22,050 Hz); a clip of n samples has
        ``1 + n // hop_length`` frames.
    n_mels : int
        Mel bands.
    n_mfcc : int
        MFCCs per frame; with first and second differences a frame has ``3 * n_mfcc``.
    fmin_hz, fmax_hz : float, float or None
        Frequency range of the mel filter bank in Hz (None: half the sample rate).
    min_seconds : float
        Clips shorter than this (after decoding) are skipped as ``"too-short"``.
    max_seconds : float
        Longer clips keep their middle ``max_seconds`` seconds.
    silence_rms : float
        Clips whose RMS (full scale 1.0) is below this are skipped as ``"silent"``
        (1e-4 is -80 dBFS).
    amin : float
        Floor of the mel power before the logarithm (1e-10: -100 dB).
    delta_width : int
        Frames in the Savitzky-Golay window of the MFCC differences (odd, at least 3).
    """

    sample_rate_hz: int = 22050
    n_fft: int = 1024
    hop_length: int = 512
    n_mels: int = 128
    n_mfcc: int = 13
    fmin_hz: float = 0.0
    fmax_hz: float | None = None
    min_seconds: float = 3.0
    max_seconds: float = 30.0
    silence_rms: float = 1e-4
    amin: float = 1e-10
    delta_width: int = 9

    def __post_init__(self) -> None:
        for name in ("sample_rate_hz", "n_fft", "hop_length", "n_mels", "n_mfcc"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"FeatureConfig.{name} must be positive, got {getattr(self, name)}")
        if self.n_mfcc > self.n_mels:
            raise ValueError(f"FeatureConfig.n_mfcc ({self.n_mfcc}) cannot exceed n_mels ({self.n_mels})")
        nyquist = self.sample_rate_hz / 2
        fmax = nyquist if self.fmax_hz is None else self.fmax_hz
        if not 0 <= self.fmin_hz < fmax <= nyquist:
            raise ValueError(f"FeatureConfig needs 0 <= fmin_hz < fmax_hz <= {nyquist:g} Hz, "
                             f"got {self.fmin_hz}..{self.fmax_hz}")
        if not 0 < self.min_seconds <= self.max_seconds:
            raise ValueError(f"FeatureConfig needs 0 < min_seconds <= max_seconds, got "
                             f"{self.min_seconds} and {self.max_seconds}")
        if self.silence_rms < 0 or not self.amin > 0:
            raise ValueError("FeatureConfig.silence_rms must be >= 0 and amin > 0")
        if self.delta_width < 3 or self.delta_width % 2 != 1:
            raise ValueError(f"FeatureConfig.delta_width must be odd and >= 3, got {self.delta_width}")

    @property
    def n_summary(self) -> int:
        """Length of :func:`mfcc_summary`'s vector: mean and std of ``3 * n_mfcc`` coefficients."""
        return 6 * self.n_mfcc

    def frames(self, n_samples: int) -> int:
        """STFT frames of a clip of ``n_samples`` samples (centred frames)."""
        return 1 + n_samples // self.hop_length

    def defining(self) -> dict:
        """The settings that determine stored feature values (all but the skip thresholds
        ``min_seconds`` and ``silence_rms``, which only decide which clips are kept)."""
        d = dataclasses.asdict(self)
        del d["min_seconds"], d["silence_rms"]
        return d


@dataclass(frozen=True)
class ClipFeatures:
    """What the feature store keeps per song.

    Attributes
    ----------
    log_mel : numpy.ndarray
        ``(n_mels, frames)`` float16 log-mel spectrogram in dB (see the module docstring).
    mfcc_summary : numpy.ndarray
        ``(6 * n_mfcc,)`` float32: per-coefficient mean, then standard deviation, of the
        ``3 * n_mfcc`` MFCCs and differences (78 values with the defaults).
    seconds : float
        Duration of the audio the features describe, in seconds.
    """

    log_mel: np.ndarray
    mfcc_summary: np.ndarray
    seconds: float


@lru_cache(maxsize=8)
def _mel_basis(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None) -> np.ndarray:
    basis = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax,
                                dtype=np.float32)
    basis.setflags(write=False)
    return basis


def mel_power(y: np.ndarray, cfg: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """Mel power spectrogram, ``librosa.feature.melspectrogram`` with ``cfg``'s settings.

    Parameters
    ----------
    y : numpy.ndarray
        ``(n,)`` mono samples at ``cfg.sample_rate_hz``.
    cfg : FeatureConfig

    Returns
    -------
    numpy.ndarray
        ``(n_mels, 1 + n // hop_length)`` float32 mel-band power (Hann window, centred frames,
        zero padding, Slaney-normalised filters).
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ValueError(f"expected mono samples of shape (n,), got {y.shape}")
    stft = librosa.stft(y, n_fft=cfg.n_fft, hop_length=cfg.hop_length, window="hann",
                        center=True, pad_mode="constant")
    power = np.square(stft.real)
    power += np.square(stft.imag)
    basis = _mel_basis(cfg.sample_rate_hz, cfg.n_fft, cfg.n_mels, cfg.fmin_hz, cfg.fmax_hz)
    return basis @ power


def power_to_log(mel: np.ndarray, cfg: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """PMRS's log compression: ``librosa.power_to_db(mel, ref=1.0, amin=cfg.amin, top_db=None)``.

    Parameters
    ----------
    mel : numpy.ndarray
        ``(n_mels, frames)`` mel power.

    Returns
    -------
    numpy.ndarray
        Same shape, float32, in dB (at least ``10 * log10(cfg.amin)``).
    """
    return librosa.power_to_db(mel, ref=1.0, amin=cfg.amin, top_db=None).astype(np.float32, copy=False)


def log_mel(y: np.ndarray, cfg: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """Log-compressed mel spectrogram of a mono clip.

    Parameters
    ----------
    y : numpy.ndarray
        ``(n,)`` mono samples at ``cfg.sample_rate_hz``.
    cfg : FeatureConfig

    Returns
    -------
    numpy.ndarray
        ``(n_mels, 1 + n // hop_length)`` float32, dB of mel power (floor -100 dB).

    Examples
    --------
    >>> y = np.sin(2 * np.pi * 440.0 * np.arange(22050) / 22050).astype(np.float32)
    >>> log_mel(y).shape
    (128, 44)
    """
    return power_to_log(mel_power(y, cfg), cfg)


def _delta_width(frames: int, width: int) -> int:
    """The largest odd window <= ``width`` that fits ``frames`` frames (0: too few for any)."""
    w = min(width, frames if frames % 2 == 1 else frames - 1)
    return w if w >= 3 else 0


def mfcc_deltas(x: np.ndarray, cfg: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """MFCCs with their first and second differences.

    Parameters
    ----------
    x : numpy.ndarray
        A log-mel spectrogram from :func:`log_mel` (``(n_mels, frames)``, float16 or float32), or
        ``(n,)`` mono samples (then :func:`log_mel` is computed first).
    cfg : FeatureConfig

    Returns
    -------
    numpy.ndarray
        ``(3 * n_mfcc, frames)`` float32: ``librosa.feature.mfcc(S=log_mel, n_mfcc=n_mfcc)``
        (DCT-II, orthonormal), then ``librosa.feature.delta`` of order 1 and 2 (width
        ``cfg.delta_width``, narrowed to fit clips of fewer frames; zeros below 3 frames).
    """
    x = np.asarray(x)
    S = log_mel(x, cfg) if x.ndim == 1 else x.astype(np.float32, copy=False)
    if S.ndim != 2:
        raise ValueError(f"expected (n,) samples or an (n_mels, frames) log-mel, got {S.shape}")
    mfcc = librosa.feature.mfcc(S=S, n_mfcc=cfg.n_mfcc).astype(np.float32, copy=False)
    width = _delta_width(mfcc.shape[1], cfg.delta_width)
    if width:
        d1 = librosa.feature.delta(mfcc, width=width, order=1)
        d2 = librosa.feature.delta(mfcc, width=width, order=2)
    else:
        d1 = d2 = np.zeros_like(mfcc)
    return np.concatenate([mfcc, d1, d2]).astype(np.float32, copy=False)


def mfcc_summary(mfcc: np.ndarray) -> np.ndarray:
    """Clip-level summary of frame-level coefficients.

    Parameters
    ----------
    mfcc : numpy.ndarray
        ``(d, frames)`` coefficients, e.g. :func:`mfcc_deltas`' ``(39, frames)``.

    Returns
    -------
    numpy.ndarray
        ``(2 * d,)`` float32: the per-coefficient mean over frames, then the per-coefficient
        (population) standard deviation; 78 values for 39 coefficients.
    """
    m = np.asarray(mfcc, dtype=np.float64)
    if m.ndim != 2 or m.shape[1] == 0:
        raise ValueError(f"expected (d, frames) with at least one frame, got {m.shape}")
    return np.concatenate([m.mean(axis=1), m.std(axis=1)]).astype(np.float32)


def to_float16(x: np.ndarray) -> np.ndarray:
    """``x`` as float16, clipped to float16's finite range (no overflow to infinity)."""
    return np.clip(x, -_FLOAT16_MAX, _FLOAT16_MAX).astype(np.float16)


def clip_features(y: np.ndarray, cfg: FeatureConfig = FeatureConfig()) -> ClipFeatures:
    """Everything the feature store keeps for one clip, from one STFT.

    Parameters
    ----------
    y : numpy.ndarray
        ``(n,)`` mono samples at ``cfg.sample_rate_hz`` (already cropped to ``cfg.max_seconds``;
        length and silence checks are the caller's).
    cfg : FeatureConfig

    Returns
    -------
    ClipFeatures
        ``log_mel`` ``(n_mels, 1 + n // hop_length)`` float16 dB; ``mfcc_summary``
        ``(6 * n_mfcc,)`` float32, computed from the float32 log-mel; ``seconds = n / sr``.

    Examples
    --------
    >>> f = clip_features(np.random.default_rng(0).standard_normal(3 * 22050).astype(np.float32))
    >>> f.log_mel.shape, f.log_mel.dtype, f.mfcc_summary.shape
    ((128, 130), dtype('float16'), (78,))
    """
    lm = log_mel(y, cfg)
    summary = mfcc_summary(mfcc_deltas(lm, cfg))
    return ClipFeatures(log_mel=to_float16(lm), mfcc_summary=summary,
                        seconds=len(y) / cfg.sample_rate_hz)
