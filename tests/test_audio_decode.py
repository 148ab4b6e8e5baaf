"""Tests for pmrs.audio.decode: every format to mono 22,050 Hz, and files that cannot be used."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import soundfile as sf

from pmrs.audio.decode import AudioError, decode_audio, load_audio

SR = 22050
SECONDS = 4.0


def tone(freq_hz: float, seconds: float, sr: int, channels: int = 1, amplitude: float = 0.4) -> np.ndarray:
    y = (amplitude * np.sin(2 * np.pi * freq_hz * np.arange(int(round(seconds * sr))) / sr)).astype(np.float32)
    return y if channels == 1 else np.stack([y] * channels, axis=1)


def dominant_hz(y: np.ndarray, sr: int = SR) -> float:
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return float(np.fft.rfftfreq(len(y), 1.0 / sr)[spectrum.argmax()])


def _mp3_writable() -> bool:
    return "MP3" in sf.available_formats() and "MPEG_LAYER_III" in sf.available_subtypes("MP3")


FORMATS = [
    pytest.param("wav", 44100, 2, dict(subtype="PCM_16"), id="wav-44k-stereo-16bit"),
    pytest.param("flac", 44100, 2, dict(), id="flac-44k-stereo"),
    pytest.param("ogg", 44100, 2, dict(format="OGG", subtype="VORBIS"), id="ogg-vorbis-44k"),
    pytest.param("opus", 48000, 2, dict(format="OGG", subtype="OPUS"), id="ogg-opus-48k"),
    pytest.param("mp3", 44100, 2, dict(format="MP3", subtype="MPEG_LAYER_III"), id="mp3-44k-stereo",
                 marks=pytest.mark.skipif(not _mp3_writable(),
                                          reason="this libsndfile cannot write MP3")),
    pytest.param("wav", 8000, 1, dict(subtype="PCM_16"), id="wav-8k-mono"),
]


@pytest.mark.parametrize("ext,sr,channels,kw", FORMATS)
def test_every_format_decodes_to_mono_22050(tmp_path, ext, sr, channels, kw):
    path = tmp_path / f"clip.{ext}"
    sf.write(path, tone(440.0, SECONDS, sr, channels), sr, **kw)
    dec = decode_audio(path)
    y = dec.samples
    assert y.dtype == np.float32 and y.ndim == 1
    assert len(y) == pytest.approx(SECONDS * SR, rel=0.01)
    assert dominant_hz(y) == pytest.approx(440.0, abs=2.0)
    assert np.sqrt(np.mean(y ** 2)) == pytest.approx(0.4 / np.sqrt(2), rel=0.1)
    assert (dec.source_sample_rate_hz, dec.source_channels) == (sr, channels)
    assert not dec.truncated
    np.testing.assert_array_equal(load_audio(path), y)


def test_channels_are_averaged(tmp_path):
    left = tone(440.0, 3.0, SR)
    sf.write(tmp_path / "lr.wav", np.stack([left, np.zeros_like(left)], axis=1), SR, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(tmp_path / "lr.wav"), left / 2, atol=1e-6)


def test_long_files_keep_their_middle(tmp_path):
    sr = 44100
    y = np.concatenate([tone(220.0, 3.0, sr), tone(440.0, 4.0, sr), tone(880.0, 3.0, sr)])
    sf.write(tmp_path / "long.flac", y, sr)
    mid = load_audio(tmp_path / "long.flac", max_seconds=4.0)
    assert len(mid) == 4 * SR
    assert dominant_hz(mid) == pytest.approx(440.0, abs=2.0)
    assert len(load_audio(tmp_path / "long.flac")) == 10 * SR


def test_empty_and_garbage_files(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioError) as exc:
        load_audio(tmp_path / "empty.wav")
    assert exc.value.reason == "empty"
    (tmp_path / "noise.wav").write_bytes(np.random.default_rng(0).bytes(4000))
    with pytest.raises(AudioError) as exc:
        load_audio(tmp_path / "noise.wav")
    assert exc.value.reason == "unreadable" and isinstance(exc.value, ValueError)
    with pytest.raises(AudioError) as exc:
        load_audio(tmp_path / "missing.wav")
    assert exc.value.reason == "unreadable"
    sf.write(tmp_path / "noframes.wav", np.zeros(0, np.float32), SR)
    with pytest.raises(AudioError) as exc:
        load_audio(tmp_path / "noframes.wav")
    assert exc.value.reason == "empty"


def test_non_finite_samples(tmp_path):
    y = tone(440.0, 3.0, SR)
    y[100] = np.nan
    sf.write(tmp_path / "nan.wav", y, SR, subtype="FLOAT")
    with pytest.raises(AudioError) as exc:
        load_audio(tmp_path / "nan.wav")
    assert exc.value.reason == "non-finite"


def test_truncated_files_decode_what_is_there(tmp_path):
    y = tone(440.0, 8.0, 44100, channels=2)
    # WAV: libsndfile sizes the data chunk by the bytes present, so a cut WAV is simply shorter.
    sf.write(tmp_path / "full.wav", y, 44100, subtype="PCM_16")
    raw = (tmp_path / "full.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(raw[:len(raw) // 2 + 1])
    cut = load_audio(tmp_path / "cut.wav")
    assert len(cut) == pytest.approx(4.0 * SR, rel=0.01)
    # FLAC: the decoder loses sync part-way; everything before the failing block is kept.
    sf.write(tmp_path / "full.flac", y, 44100)
    raw = (tmp_path / "full.flac").read_bytes()
    (tmp_path / "cut.flac").write_bytes(raw[:len(raw) // 2])
    dec = decode_audio(tmp_path / "cut.flac")
    assert dec.truncated and dec.detail
    assert 1.0 * SR < len(dec.samples) < 6.0 * SR
    assert dominant_hz(dec.samples) == pytest.approx(440.0, abs=2.0)
    # Cut inside the header: nothing usable.
    (tmp_path / "stub.flac").write_bytes(raw[:20])
    with pytest.raises(AudioError) as exc:
        load_audio(tmp_path / "stub.flac")
    assert exc.value.reason in ("unreadable", "truncated", "empty")


def test_audio_error_pickles_with_its_reason():
    err = pickle.loads(pickle.dumps(AudioError("too-short", "1.0 s")))
    assert (err.reason, err.detail) == ("too-short", "1.0 s")


SEEKING = [p for p in FORMATS if p.id in ("flac-44k-stereo", "ogg-vorbis-44k", "ogg-opus-48k",
                                          "mp3-44k-stereo")]


@pytest.mark.parametrize("ext,sr,channels,kw", SEEKING)
def test_the_kept_middle_is_reached_by_seeking_or_by_decoding_to_it(tmp_path, monkeypatch, ext, sr,
                                                                    channels, kw):
    # 3 s at 220 Hz, 4 s at 440 Hz, 3 s at 880 Hz: the middle 4 s are the 440 Hz part.
    y = np.concatenate([tone(220.0, 3.0, sr, channels), tone(440.0, 4.0, sr, channels),
                        tone(880.0, 3.0, sr, channels)])
    sf.write(tmp_path / f"long.{ext}", y, sr, **kw)
    sought = decode_audio(tmp_path / f"long.{ext}", max_seconds=2.0)
    assert sought.seek == "seek" and not sought.truncated
    assert dominant_hz(sought.samples) == pytest.approx(440.0, abs=2.0)
    assert decode_audio(tmp_path / f"long.{ext}").seek == "none"   # nothing to skip
    # A container libsndfile cannot seek: the frames before the middle are decoded and dropped,
    # giving the same samples.
    monkeypatch.setattr(sf.SoundFile, "seekable", lambda self: False)
    decoded = decode_audio(tmp_path / f"long.{ext}", max_seconds=2.0)
    assert decoded.seek == "decode" and not decoded.truncated
    np.testing.assert_allclose(decoded.samples, sought.samples, atol=1e-6)


def test_the_fallback_decoder_says_it_decoded_the_whole_file(tmp_path, monkeypatch):
    import pmrs.audio.decode as decode

    sr = 22050
    y = np.concatenate([tone(220.0, 3.0, sr), tone(440.0, 4.0, sr), tone(880.0, 3.0, sr)])
    sf.write(tmp_path / "long.wav", y, sr, subtype="PCM_16")

    def cannot_open(path, max_seconds):
        raise decode._CannotOpen("format not recognised")

    monkeypatch.setattr(decode, "_read_soundfile", cannot_open)
    dec = decode_audio(tmp_path / "long.wav", max_seconds=2.0)
    assert dec.source_format == "audioread" and dec.seek == "decode"
    assert dominant_hz(dec.samples) == pytest.approx(440.0, abs=2.0)
