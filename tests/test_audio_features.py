"""Tests for pmrs.audio.features: log-mel and MFCCs against librosa, on generated tones."""

from __future__ import annotations

import dataclasses

import librosa
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from pmrs.audio.features import (ClipFeatures, FeatureConfig, clip_features, log_mel, mel_power,
                                 mfcc_deltas, mfcc_summary, to_float16)

SR = 22050


@pytest.fixture(scope="module", autouse=True)
def _one_blas_thread():
    with threadpool_limits(limits=1):
        yield


def tone(freq_hz: float = 440.0, seconds: float = 3.0, amplitude: float = 0.5,
         sr: int = SR) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * freq_hz * np.arange(int(seconds * sr)) / sr)).astype(np.float32)


def librosa_log_mel(y: np.ndarray) -> np.ndarray:
    S = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=1024, hop_length=512, n_mels=128)
    return librosa.power_to_db(S, ref=1.0, amin=1e-10, top_db=None)


def test_defaults_are_the_design():
    cfg = FeatureConfig()
    assert (cfg.sample_rate_hz, cfg.n_fft, cfg.hop_length, cfg.n_mels, cfg.n_mfcc) == (22050, 1024, 512, 128, 13)
    assert cfg.n_summary == 78
    assert cfg.frames(30 * SR) == 1292


def test_log_mel_shape_and_peak_band_of_a_440_hz_tone():
    y = tone(440.0)
    lm = log_mel(y)
    assert lm.shape == (128, 1 + len(y) // 512) and lm.dtype == np.float32
    centres = librosa.mel_frequencies(n_mels=130, fmin=0.0, fmax=SR / 2)[1:-1]
    assert int(lm.mean(axis=1).argmax()) == int(np.abs(centres - 440.0).argmin())
    # A 3 kHz tone peaks higher up.
    assert int(log_mel(tone(3000.0)).mean(axis=1).argmax()) == int(np.abs(centres - 3000.0).argmin())


def test_log_mel_equals_librosa_melspectrogram_then_db():
    y = tone(440.0) + tone(1234.0, amplitude=0.1)
    ref = librosa_log_mel(y)
    np.testing.assert_allclose(mel_power(y), librosa.feature.melspectrogram(
        y=y, sr=SR, n_fft=1024, hop_length=512, n_mels=128), rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(log_mel(y), ref, atol=1e-3)
    assert ref.min() >= -100.0 - 1e-3  # amin floor, no top_db clipping
    stored = clip_features(y).log_mel
    assert stored.dtype == np.float16
    # float16 keeps 11 significant bits: at most 1/16 dB off below 128 dB.
    np.testing.assert_allclose(stored.astype(np.float32), ref, rtol=2 ** -11, atol=1e-6)


def test_mfcc_deltas_match_librosa_on_the_same_spectrogram():
    y = tone(440.0) + tone(660.0, amplitude=0.2)
    S = librosa_log_mel(y)
    m = mfcc_deltas(log_mel(y))
    assert m.shape == (39, S.shape[1]) and m.dtype == np.float32
    ref = librosa.feature.mfcc(S=S, n_mfcc=13)
    np.testing.assert_allclose(m[:13], ref, atol=2e-3)
    np.testing.assert_allclose(m[13:26], librosa.feature.delta(ref, order=1), atol=2e-3)
    np.testing.assert_allclose(m[26:], librosa.feature.delta(ref, order=2), atol=2e-3)
    # Samples in, the same as log-mel in.
    np.testing.assert_allclose(mfcc_deltas(y), m, atol=1e-5)


@pytest.mark.filterwarnings("ignore:n_fft=1024 is too large")
def test_mfcc_deltas_on_clips_shorter_than_the_delta_window():
    for n_frames in (1, 2, 3, 4, 8):
        y = tone(440.0, seconds=(n_frames - 1) * 512 / SR + 1e-3) if n_frames > 1 else tone(440.0, seconds=0.01)
        m = mfcc_deltas(y)
        assert m.shape == (39, n_frames) and np.isfinite(m).all()


def test_mfcc_summary_is_mean_then_std():
    rng = np.random.default_rng(0)
    m = rng.standard_normal((39, 50)).astype(np.float32)
    s = mfcc_summary(m)
    assert s.shape == (78,) and s.dtype == np.float32
    np.testing.assert_allclose(s[:39], m.mean(axis=1), atol=1e-5)
    np.testing.assert_allclose(s[39:], m.std(axis=1), atol=1e-5)


def test_clip_features():
    y = tone(440.0, seconds=4.0)
    f = clip_features(y)
    assert isinstance(f, ClipFeatures)
    assert f.log_mel.shape == (128, 1 + len(y) // 512) and f.log_mel.dtype == np.float16
    assert f.mfcc_summary.shape == (78,) and f.mfcc_summary.dtype == np.float32
    assert f.seconds == pytest.approx(4.0)
    np.testing.assert_allclose(f.mfcc_summary, mfcc_summary(mfcc_deltas(log_mel(y))), rtol=1e-5)
    # Other settings flow through.
    cfg = dataclasses.replace(FeatureConfig(), n_mels=64, n_mfcc=20, fmax_hz=8000.0)
    g = clip_features(y, cfg)
    assert g.log_mel.shape[0] == 64 and g.mfcc_summary.shape == (120,)


def test_float16_never_overflows():
    x = np.array([-1e9, -70000.0, 0.0, 1e3, 70000.0, 1e9], dtype=np.float32)
    h = to_float16(x)
    assert h.dtype == np.float16 and np.isfinite(h).all()
    assert h[-1] == np.finfo(np.float16).max and h[0] == -np.finfo(np.float16).max
    loud = clip_features(tone(440.0, amplitude=1e6))
    assert np.isfinite(loud.log_mel).all()


@pytest.mark.parametrize("bad", [dict(n_mels=0), dict(n_mfcc=200), dict(fmax_hz=20000.0),
                                 dict(min_seconds=40.0), dict(delta_width=4), dict(amin=0.0)])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValueError):
        FeatureConfig(**bad)
