"""Tests for pmrs.synth.audio: synthetic clips with recognisable genres."""

from __future__ import annotations


import librosa
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from pmrs.synth.audio import GenreStyle, make_styles, render_clip

SR = 22050


@pytest.fixture(scope="module", autouse=True)
def _one_blas_thread():
    """Small matrix products: threads only contend (badly so on a shared two-core machine)."""
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def styles() -> list[GenreStyle]:
    return make_styles(6, seed=0)


MEL_BASIS = librosa.filters.mel(sr=SR, n_fft=1024, n_mels=128)


def _features(clip: np.ndarray) -> np.ndarray:
    """Mean and standard deviation of 13 MFCCs and their mean absolute frame difference.

    The log-mel settings of the project (128 bands, window 1024, hop 512); the mel projection is
    a plain matrix product, several times faster than ``librosa.feature.melspectrogram``'s.
    """
    power = np.abs(librosa.stft(clip, n_fft=1024, hop_length=512)) ** 2
    m = librosa.feature.mfcc(S=librosa.power_to_db(MEL_BASIS @ power), n_mfcc=13)
    return np.concatenate([m.mean(axis=1), m.std(axis=1), np.abs(np.diff(m, axis=1)).mean(axis=1)])


def test_clip_is_deterministic_and_well_formed(styles):
    a = render_clip(styles[0], song_seed=11, seconds=2.5)
    b = render_clip(styles[0], song_seed=11, seconds=2.5)
    assert a.dtype == np.float32
    assert a.shape == (round(2.5 * SR),)
    assert np.array_equal(a, b)
    assert np.isfinite(a).all()
    assert np.abs(a).max() <= 1.0
    assert np.sqrt(np.mean(a.astype(np.float64) ** 2)) > 0.01


def test_different_song_seeds_and_styles_give_different_clips(styles):
    a = render_clip(styles[1], song_seed=1, seconds=2.0)
    b = render_clip(styles[1], song_seed=2, seconds=2.0)
    c = render_clip(styles[2], song_seed=1, seconds=2.0)
    assert not np.allclose(a, b, atol=1e-3)
    assert not np.allclose(a, c, atol=1e-3)


@pytest.mark.parametrize("seconds, sr", [(0.5, 22050), (1.2345, 22050), (2.0, 16000), (1.0, 8000)])
def test_length_follows_seconds_and_sample_rate(styles, seconds, sr):
    clip = render_clip(styles[3], song_seed=5, seconds=seconds, sample_rate_hz=sr)
    assert clip.shape == (round(seconds * sr),)
    assert np.isfinite(clip).all() and np.abs(clip).max() <= 0.98 + 1e-6


def test_every_archetype_renders_in_range_and_audible():
    for i, style in enumerate(make_styles(12, seed=3)):
        for song in range(3):
            clip = render_clip(style, song_seed=100 * i + song, seconds=2.0)
            rms = np.sqrt(np.mean(clip.astype(np.float64) ** 2))
            assert np.isfinite(clip).all(), style.name
            assert np.abs(clip).max() <= 0.98 + 1e-6, style.name
            assert rms > 0.01, style.name


def test_invalid_arguments_raise(styles):
    with pytest.raises(ValueError):
        render_clip(styles[0], song_seed=0, seconds=0.0)
    with pytest.raises(ValueError):
        render_clip(styles[0], song_seed=0, seconds=1.0, sample_rate_hz=1000)
    with pytest.raises(ValueError):
        make_styles(0)
    with pytest.raises(ValueError):
        GenreStyle(name="bad", tempo_bpm=100.0, rhythm=(1.0,) * 8, harmonics=(1.0,),
                   noise_level=0.1, register_hz=220.0, attack_s=0.01, decay_s=0.2)


def test_genres_are_recovered_by_nearest_neighbour_but_songs_differ(styles):
    n_songs = 8
    feats, labels, clips = [], [], []
    for g, style in enumerate(styles):
        for s in range(n_songs):
            clip = render_clip(style, song_seed=1000 * g + s, seconds=3.0)
            clips.append(clip)
            feats.append(_features(clip))
            labels.append(g)
    x = np.array(feats)
    y = np.array(labels)
    x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-9)
    dist = ((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=-1)
    np.fill_diagonal(dist, np.inf)

    # Leave-one-out 1-nearest-neighbour.
    accuracy = float((y[dist.argmin(axis=1)] == y).mean())
    assert accuracy >= 0.9, accuracy

    # Leave-one-out nearest centroid.
    hits = 0
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        centroids = np.stack([x[keep & (y == g)].mean(axis=0) for g in range(len(styles))])
        hits += int(((centroids - x[i]) ** 2).sum(axis=1).argmin() == y[i])
    assert hits / len(y) >= 0.9

    # Songs of one genre are not copies of each other, in samples or in features.
    for g in range(len(styles)):
        idx = np.flatnonzero(y == g)
        within = dist[np.ix_(idx, idx)][~np.eye(len(idx), dtype=bool)]
        assert within.min() > 1e-3
        for i in idx[1:]:
            assert not np.allclose(clips[idx[0]], clips[i], atol=1e-3)


def test_songs_vary_in_tempo_and_key_within_a_genre(styles):
    """Onset-strength tempo and chroma differ across songs of one genre (per-song variation)."""
    chroma_peaks, tempi = set(), set()
    for s in range(8):
        clip = render_clip(styles[0], song_seed=s, seconds=6.0)
        chroma = librosa.feature.chroma_stft(y=clip, sr=SR, n_fft=2048, hop_length=512)
        chroma_peaks.add(int(chroma.mean(axis=1).argmax()))
        onset = librosa.onset.onset_strength(y=clip, sr=SR, hop_length=512)
        tempi.add(round(float(librosa.feature.tempo(onset_envelope=onset, sr=SR)[0]), 1))
    assert len(chroma_peaks) >= 3
    assert len(tempi) >= 2


def test_make_styles_is_deterministic_by_seed():
    assert make_styles(8, seed=4) == make_styles(8, seed=4)
    assert make_styles(14, seed=4) == make_styles(14, seed=4)
    assert make_styles(8, seed=4) != make_styles(8, seed=5)
    # A world with more genres extends, rather than reshuffles, a smaller one.
    assert make_styles(14, seed=4)[:8] == make_styles(8, seed=4)


@pytest.mark.parametrize("n_genres", [1, 16, 20])
def test_make_styles_gives_distinct_genres(n_genres):
    styles = make_styles(n_genres, seed=0)
    assert len(styles) == n_genres
    assert len({s.name for s in styles}) == n_genres
    tempos = np.sort([s.tempo_bpm for s in styles])
    assert np.all(np.diff(tempos) > 0.1)
    timbres = {(s.harmonics, s.formant_hz, s.cutoff_hz) for s in styles}
    assert len(timbres) == n_genres
    for s in styles:
        assert 40.0 <= s.tempo_bpm <= 220.0
        assert len(s.rhythm) == len(s.kick) == len(s.snare) == len(s.hat) == 16
        clip = render_clip(s, song_seed=1, seconds=1.0)
        assert np.isfinite(clip).all() and np.abs(clip).max() <= 0.98 + 1e-6


def test_generated_genres_are_recognisable():
    """Genres beyond the hand-designed ones still separate (looser bound: 16 genres, 4 songs)."""
    styles = make_styles(16, seed=1)
    feats, labels = [], []
    for g, style in enumerate(styles):
        for s in range(4):
            feats.append(_features(render_clip(style, song_seed=50 * g + s, seconds=3.0)))
            labels.append(g)
    x = np.array(feats)
    y = np.array(labels)
    x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-9)
    dist = ((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=-1)
    np.fill_diagonal(dist, np.inf)
    assert float((y[dist.argmin(axis=1)] == y).mean()) >= 0.75
