"""Synthetic music clips whose sound depends on their genre.

Each genre is a :class:`GenreStyle`: tempo, a 16-step bar of melodic onsets, drum patterns, a
harmonic (timbre) profile, a pitch register, a note envelope, a scale, chords, swing, vibrato and
a noise colour. :func:`render_clip` turns a style and a song seed into a mono clip; every song of a
genre shares the genre's sound but has its own key, tempo (a few per cent), instrument mix,
melody, bass line, drum variations and loudness, so no two clips are alike.

How a clip is made (vectorised numpy, about 15-40 ms per 30 s clip at 22,050 Hz on one core):

- a 4-bar phrase is drawn on a 16-step grid (onsets from the style's accent patterns, melody by a
  random walk on the song's scale, one chord root per bar) and repeated with small variations;
- melody and bass are monophonic *voices*: a per-sample frequency track is integrated into a phase
  that indexes one-period wavetables, one per pitch (additive synthesis: the harmonic profile
  shaped by the style's fixed formant and cutoff, band-limited below Nyquist), times an envelope
  looked up from the time since the note's onset; chords are extra voices a scale third and
  fifth above;
- drums (kick: a decaying pitch-swept sine; snare and hi-hat: spectrally shaped noise bursts) are
  overlap-added from one template each, and a continuous hiss bed is tiled from a shaped noise
  buffer;
- tonal and noise parts are mixed by the style's ``noise_level`` and the clip is normalised to a
  per-song loudness, never above a peak of 0.98.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace

import numpy as np

STEPS_PER_BAR = 16
BARS_PER_PHRASE = 4
_TABLE_SIZE = 2048  # samples in one wavetable period (a power of two)
_NOISE_BUFFER = 1 << 15  # samples in the tiled hiss buffer (about 1.5 s at 22,050 Hz)

SCALES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "harmonic-minor": (0, 2, 3, 5, 7, 8, 11),
    "major-pentatonic": (0, 2, 4, 7, 9),
    "minor-pentatonic": (0, 3, 5, 7, 10),
    "blues": (0, 3, 5, 6, 7, 10),
    "whole-tone": (0, 2, 4, 6, 8, 10),
}


@dataclass(frozen=True)
class GenreStyle:
    """The sound of one genre; every song of the genre varies around it.

    Attributes
    ----------
    name : str
        Genre name (no tabs or newlines; it is written to genre label files).
    tempo_bpm : float
        Base tempo in beats (quarter notes) per minute; a bar is 16 sixteenth-note steps.
    rhythm : tuple of 16 floats
        Melodic onset accents over one bar, 0..1: a step sounds a note with this probability
        (drawn once per 4-bar phrase), at a gain rising with the accent.
    harmonics : tuple of floats
        Amplitudes of partials 1, 2, ... of the melodic instrument (its timbre).
    noise_level : float
        Share, 0..1, of the noise part (drums and hiss) in the mix, by RMS amplitude.
    register_hz : float
        Centre pitch of the melody in Hz (the song's key transposes it by up to half an octave).
    attack_s, decay_s : float
        Note envelope: linear attack time and exponential decay time constant, in seconds.
    scale : tuple of int
        Semitone offsets within an octave that melody and bass draw notes from.
    chord_size : int
        1 plays a single line; 2 adds a scale fifth; 3 adds a scale third and fifth.
    kick, snare, hat : tuple of 16 floats
        Drum accents over one bar, 0..1 (probability and gain of a hit, as for ``rhythm``).
    noise_band_hz : float
        Centre frequency in Hz of the snare and hiss noise band (its colour).
    hiss : float
        Level of a continuous noise bed relative to the drums (0: none).
    bass_level : float
        Level of the bass line (roots of the bar chords, on the kick hits and the downbeats)
        relative to the melody.
    swing : float
        Delay of every second sixteenth step, as a fraction of a step (0: straight).
    vibrato_hz, vibrato_cents : float
        Pitch vibrato rate in Hz and depth in cents (0 cents: none).
    formant_hz, cutoff_hz : float
        The instrument's fixed spectral envelope (independent of pitch): a resonance centred at
        ``formant_hz`` and a 12 dB/octave roll-off above ``cutoff_hz``, both in Hz.
    """

    name: str
    tempo_bpm: float
    rhythm: tuple[float, ...]
    harmonics: tuple[float, ...]
    noise_level: float
    register_hz: float
    attack_s: float
    decay_s: float
    scale: tuple[int, ...] = SCALES["major"]
    chord_size: int = 1
    kick: tuple[float, ...] = (0.0,) * STEPS_PER_BAR
    snare: tuple[float, ...] = (0.0,) * STEPS_PER_BAR
    hat: tuple[float, ...] = (0.0,) * STEPS_PER_BAR
    noise_band_hz: float = 3000.0
    hiss: float = 0.0
    bass_level: float = 0.5
    swing: float = 0.0
    vibrato_hz: float = 5.0
    vibrato_cents: float = 0.0
    formant_hz: float = 1000.0
    cutoff_hz: float = 4000.0

    def __post_init__(self) -> None:
        for field in ("rhythm", "kick", "snare", "hat"):
            if len(getattr(self, field)) != STEPS_PER_BAR:
                raise ValueError(f"GenreStyle.{field} must have {STEPS_PER_BAR} steps")
        if not self.harmonics or max(self.harmonics) <= 0:
            raise ValueError("GenreStyle.harmonics needs at least one positive amplitude")
        if not self.scale:
            raise ValueError("GenreStyle.scale must name at least one semitone offset")
        if min(self.tempo_bpm, self.register_hz, self.formant_hz, self.cutoff_hz) <= 0:
            raise ValueError("GenreStyle tempo, register, formant and cutoff must be positive")
        if self.attack_s <= 0 or self.decay_s <= 0:
            raise ValueError("GenreStyle.attack_s and decay_s must be positive")
        if not 0.0 <= self.noise_level <= 1.0:
            raise ValueError("GenreStyle.noise_level must be between 0 and 1")
        if self.chord_size not in (1, 2, 3):
            raise ValueError("GenreStyle.chord_size must be 1, 2 or 3")


def _bar(*hits: tuple[int, float]) -> tuple[float, ...]:
    """A 16-step accent pattern from ``(step, accent)`` pairs."""
    bar = [0.0] * STEPS_PER_BAR
    for step, accent in hits:
        bar[step] = accent
    return tuple(bar)


def _every(period: int, accent: float, start: int = 0) -> tuple[float, ...]:
    return _bar(*((s, accent) for s in range(start, STEPS_PER_BAR, period)))


def _mix(*bars: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(max(v) for v in zip(*bars))


def _series(n: int, tilt: float, odd_even: float = 1.0) -> tuple[float, ...]:
    """Harmonic amplitudes ``k**-tilt``, even partials scaled by ``odd_even``."""
    return tuple(round((k ** -tilt) * (odd_even if k % 2 == 0 else 1.0), 4)
                 for k in range(1, n + 1))


# Hand-designed archetypes, most distinct first (the first few are used for small worlds).
_ARCHETYPES: tuple[GenreStyle, ...] = (
    GenreStyle(
        name="techno", formant_hz=1000.0, cutoff_hz=2500.0, tempo_bpm=128.0,
        rhythm=_mix(_every(2, 0.7), _bar((0, 1.0), (3, 0.9), (6, 0.9), (10, 0.9))),
        harmonics=_series(14, 1.0), noise_level=0.5, register_hz=220.0,
        attack_s=0.004, decay_s=0.09, scale=SCALES["minor"], chord_size=1,
        kick=_every(4, 1.0), snare=_bar((4, 0.9), (12, 0.9)), hat=_every(4, 0.9, start=2),
        noise_band_hz=2500.0, hiss=0.0, bass_level=0.7,
    ),
    GenreStyle(
        name="classical", formant_hz=2800.0, cutoff_hz=5000.0, tempo_bpm=92.0,
        rhythm=_mix(_every(4, 1.0), _every(2, 0.35)),
        harmonics=(1.0, 0.75, 0.55, 0.45, 0.35, 0.28, 0.22, 0.16, 0.12, 0.08),
        noise_level=0.02, register_hz=440.0, attack_s=0.09, decay_s=0.9,
        scale=SCALES["major"], chord_size=3, noise_band_hz=5000.0, hiss=1.0, bass_level=0.45,
        vibrato_hz=5.5, vibrato_cents=18.0,
    ),
    GenreStyle(
        name="metal", formant_hz=1500.0, cutoff_hz=4000.0, tempo_bpm=184.0,
        rhythm=_every(1, 0.85),
        harmonics=(1.0,) * 4 + (0.9,) * 4 + (0.8,) * 4 + (0.6,) * 4,
        noise_level=0.5, register_hz=92.0, attack_s=0.002, decay_s=0.16,
        scale=SCALES["phrygian"], chord_size=2,
        kick=_every(1, 0.85), snare=_bar((4, 1.0), (12, 1.0)), hat=_every(2, 0.8),
        noise_band_hz=4000.0, hiss=0.1, bass_level=0.5,
    ),
    GenreStyle(
        name="ambient", formant_hz=600.0, cutoff_hz=1200.0, tempo_bpm=68.0,
        rhythm=_bar((0, 1.0), (4, 0.4), (8, 0.9), (12, 0.4)),
        harmonics=(1.0, 0.25, 0.08, 0.03),
        noise_level=0.2, register_hz=220.0, attack_s=0.45, decay_s=2.2,
        scale=SCALES["major-pentatonic"], chord_size=3,
        noise_band_hz=1200.0, hiss=1.0, bass_level=0.3, vibrato_hz=3.0, vibrato_cents=12.0,
    ),
    GenreStyle(
        name="hiphop", formant_hz=250.0, cutoff_hz=1500.0, tempo_bpm=88.0,
        rhythm=_bar((0, 1.0), (3, 0.6), (6, 0.8), (10, 0.5), (14, 0.4)),
        harmonics=(1.0, 0.5, 0.3, 0.05, 0.12, 0.02), noise_level=0.55, register_hz=147.0,
        attack_s=0.01, decay_s=0.28, scale=SCALES["minor-pentatonic"], chord_size=1,
        kick=_bar((0, 1.0), (7, 0.8), (10, 0.9)), snare=_bar((4, 1.0), (12, 1.0)),
        hat=_every(2, 0.7), noise_band_hz=1800.0, hiss=0.12, bass_level=0.9, swing=0.18,
    ),
    GenreStyle(
        name="jazz", formant_hz=800.0, cutoff_hz=2000.0, tempo_bpm=144.0,
        rhythm=_bar((0, 0.8), (3, 0.5), (6, 0.7), (8, 0.4), (10, 0.8), (14, 0.6)),
        harmonics=(1.0, 0.45, 0.2, 0.1, 0.05), noise_level=0.25, register_hz=262.0,
        attack_s=0.02, decay_s=0.55, scale=SCALES["dorian"], chord_size=3,
        kick=_bar((0, 0.3)), snare=_bar((6, 0.25), (14, 0.3)),
        hat=_bar((0, 0.9), (4, 0.9), (6, 0.6), (8, 0.9), (12, 0.9), (14, 0.6)),
        noise_band_hz=6000.0, hiss=0.05, bass_level=0.8, swing=0.33,
    ),
    GenreStyle(
        name="folk", formant_hz=2000.0, cutoff_hz=6000.0, tempo_bpm=104.0,
        rhythm=_mix(_every(2, 0.75), _every(4, 1.0)),
        harmonics=(1.0, 0.7, 0.55, 0.4, 0.35, 0.25, 0.2, 0.15, 0.1, 0.08, 0.05, 0.04),
        noise_level=0.04, register_hz=294.0, attack_s=0.003, decay_s=0.38,
        scale=SCALES["major"], chord_size=1, hat=_every(8, 0.2, start=4),
        noise_band_hz=3500.0, hiss=0.4, bass_level=0.35,
    ),
    GenreStyle(
        name="reggae", formant_hz=1200.0, cutoff_hz=3000.0, tempo_bpm=76.0,
        rhythm=_bar((4, 1.0), (12, 1.0), (6, 0.3), (14, 0.3)),
        harmonics=(1.0, 0.0, 0.6, 0.0, 0.35, 0.0, 0.2), noise_level=0.4, register_hz=349.0,
        attack_s=0.004, decay_s=0.1, scale=SCALES["major"], chord_size=3,
        kick=_bar((8, 1.0)), snare=_bar((8, 0.9)), hat=_every(2, 0.5),
        noise_band_hz=2200.0, hiss=0.1, bass_level=1.0, swing=0.1,
    ),
    GenreStyle(
        name="chiptune", formant_hz=4000.0, cutoff_hz=10000.0, tempo_bpm=150.0,
        rhythm=_every(1, 1.0),
        harmonics=_series(11, 1.0, odd_even=0.0), noise_level=0.22, register_hz=660.0,
        attack_s=0.001, decay_s=0.07, scale=SCALES["major"], chord_size=1,
        kick=_every(8, 0.8), hat=_every(2, 0.7), noise_band_hz=7000.0, bass_level=0.5,
    ),
    GenreStyle(
        name="drum-and-bass", formant_hz=150.0, cutoff_hz=800.0, tempo_bpm=172.0,
        rhythm=_bar((0, 1.0), (10, 0.8)),
        harmonics=(1.0, 0.6, 0.35, 0.2, 0.1), noise_level=0.62, register_hz=110.0,
        attack_s=0.02, decay_s=0.6, scale=SCALES["minor"], chord_size=1,
        kick=_bar((0, 1.0), (10, 1.0)), snare=_bar((4, 1.0), (12, 1.0), (15, 0.3)),
        hat=_every(1, 0.6), noise_band_hz=3000.0, hiss=0.0, bass_level=1.0,
    ),
    GenreStyle(
        name="rock", formant_hz=700.0, cutoff_hz=3500.0, tempo_bpm=120.0,
        rhythm=_every(2, 0.9),
        harmonics=_series(12, 0.6, odd_even=0.6), noise_level=0.45, register_hz=165.0,
        attack_s=0.008, decay_s=0.45, scale=SCALES["minor-pentatonic"], chord_size=2,
        kick=_bar((0, 1.0), (8, 1.0), (10, 0.6)), snare=_bar((4, 1.0), (12, 1.0)),
        hat=_every(2, 0.8), noise_band_hz=3200.0, hiss=0.05, bass_level=0.6,
    ),
    GenreStyle(
        name="blues", formant_hz=1600.0, cutoff_hz=3000.0, tempo_bpm=84.0,
        rhythm=_bar((0, 1.0), (4, 0.7), (6, 0.5), (8, 0.9), (12, 0.7), (14, 0.5)),
        harmonics=(1.0, 0.8, 0.4, 0.5, 0.2, 0.25, 0.1), noise_level=0.3, register_hz=196.0,
        attack_s=0.01, decay_s=0.7, scale=SCALES["blues"], chord_size=1,
        kick=_bar((0, 0.8), (8, 0.7)), snare=_bar((4, 0.8), (12, 0.8)), hat=_every(2, 0.6),
        noise_band_hz=2600.0, hiss=0.2, bass_level=0.7, swing=0.3, vibrato_hz=6.0,
        vibrato_cents=25.0,
    ),
)


def _descriptor(style: GenreStyle) -> np.ndarray:
    """A coarse, roughly unit-scaled vector of what makes a style sound different."""
    h = np.asarray(style.harmonics, dtype=np.float64)
    k = np.arange(1, len(h) + 1)
    centroid = float((h * k).sum() / h.sum())
    even = float(h[1::2].sum() / h.sum())
    return np.array([
        np.log2(style.tempo_bpm) * 2.0,
        np.mean(style.rhythm) * 2.0,
        np.mean(style.kick), np.mean(style.snare), np.mean(style.hat),
        np.log2(centroid),
        even,
        np.log2(style.register_hz),
        np.log10(style.attack_s) * 0.5,
        np.log10(style.decay_s),
        style.noise_level * 2.0,
        np.log2(style.noise_band_hz) * 0.5,
        (style.chord_size - 1) * 0.5,
        style.bass_level,
        style.swing * 2.0,
        style.vibrato_cents / 20.0,
        np.log2(style.formant_hz),
        np.log2(style.cutoff_hz),
    ])


def _random_style(name: str, rng: np.random.Generator) -> GenreStyle:
    """A random but coherent style (a candidate for genres beyond the archetypes)."""
    def pattern(density: float, downbeat: bool) -> tuple[float, ...]:
        p = np.where(rng.random(STEPS_PER_BAR) < density, rng.uniform(0.4, 1.0, STEPS_PER_BAR), 0.0)
        if downbeat:
            p[0] = 1.0
        return tuple(round(float(v), 3) for v in p)

    n_harm = int(rng.integers(2, 17))
    harmonics = np.arange(1, n_harm + 1, dtype=np.float64) ** -rng.uniform(0.2, 2.0)
    harmonics[1::2] *= rng.choice([0.0, 0.3, 1.0])
    harmonics *= rng.uniform(0.6, 1.4, n_harm)
    harmonics[0] = 1.0
    drums = rng.random() < 0.75
    return GenreStyle(
        name=name,
        tempo_bpm=round(float(np.exp(rng.uniform(np.log(60), np.log(190)))), 2),
        rhythm=pattern(rng.uniform(0.1, 0.9), True),
        harmonics=tuple(round(float(v), 4) for v in harmonics),
        noise_level=round(float(rng.uniform(0.25, 0.7) if drums else rng.uniform(0.0, 0.2)), 3),
        register_hz=round(float(np.exp(rng.uniform(np.log(70), np.log(700)))), 2),
        attack_s=round(float(np.exp(rng.uniform(np.log(0.002), np.log(0.3)))), 4),
        decay_s=round(float(np.exp(rng.uniform(np.log(0.06), np.log(1.8)))), 3),
        scale=SCALES[list(SCALES)[int(rng.integers(len(SCALES)))]],
        chord_size=int(rng.integers(1, 4)),
        kick=pattern(rng.uniform(0.1, 0.4), True) if drums else _bar(),
        snare=pattern(rng.uniform(0.05, 0.3), False) if drums else _bar(),
        hat=pattern(rng.uniform(0.2, 1.0), False) if drums else pattern(0.1, False),
        noise_band_hz=round(float(np.exp(rng.uniform(np.log(800), np.log(7000)))), 1),
        hiss=round(float(rng.choice([0.0, rng.uniform(0.05, 1.0)])), 3),
        bass_level=round(float(rng.uniform(0.2, 1.0)), 3),
        swing=round(float(rng.choice([0.0, rng.uniform(0.1, 0.35)])), 3),
        vibrato_hz=round(float(rng.uniform(3.0, 7.0)), 2),
        vibrato_cents=round(float(rng.choice([0.0, rng.uniform(8.0, 30.0)])), 2),
        formant_hz=round(float(np.exp(rng.uniform(np.log(150), np.log(5000)))), 1),
        cutoff_hz=round(float(np.exp(rng.uniform(np.log(600), np.log(10000)))), 1),
    )


def _jitter(style: GenreStyle, rng: np.random.Generator) -> GenreStyle:
    """A world-specific variant of an archetype: same character, slightly different numbers."""
    h = np.asarray(style.harmonics) * rng.uniform(0.9, 1.1, len(style.harmonics))
    return replace(
        style,
        tempo_bpm=round(style.tempo_bpm * 2 ** rng.uniform(-0.05, 0.05), 2),
        register_hz=round(style.register_hz * 2 ** rng.uniform(-1 / 12, 1 / 12), 2),
        harmonics=tuple(round(float(v), 4) for v in h),
        attack_s=round(style.attack_s * 2 ** rng.uniform(-0.2, 0.2), 4),
        decay_s=round(style.decay_s * 2 ** rng.uniform(-0.2, 0.2), 3),
        noise_level=round(float(np.clip(style.noise_level + rng.uniform(-0.03, 0.03), 0, 1)), 3),
    )


def make_styles(n_genres: int, seed: int = 0) -> list[GenreStyle]:
    """Deterministic, well-separated genre styles.

    The first genres (up to 12) are hand-designed archetypes ("techno", "classical", "metal",
    "ambient", "hiphop", "jazz", ...; most distinct first), nudged slightly by ``seed``. Further
    genres, named ``genre-NN``, are drawn at random and chosen one at a time as the candidate
    farthest from every genre chosen so far (in a space of tempo, rhythm density, timbre, register,
    envelope, noise and swing), so they stay distinct.

    Parameters
    ----------
    n_genres : int
        Number of genres, at least 1.
    seed : int
        World seed; the same seed always gives the same styles.

    Returns
    -------
    list of GenreStyle
        ``n_genres`` styles with distinct names, tempos and timbres.

    Examples
    --------
    >>> styles = make_styles(4, seed=0)
    >>> [s.name for s in styles]
    ['techno', 'classical', 'metal', 'ambient']
    """
    if n_genres < 1:
        raise ValueError(f"n_genres must be at least 1, got {n_genres}")
    rng = np.random.default_rng([int(seed) % (1 << 63), 0x5EED])
    styles = [_jitter(s, rng) for s in _ARCHETYPES[:n_genres]]
    if n_genres <= len(styles):
        return styles
    chosen = np.stack([_descriptor(s) for s in styles])
    for i in range(len(styles), n_genres):
        candidates = [_random_style(f"genre-{i:02d}", rng) for _ in range(48)]
        desc = np.stack([_descriptor(c) for c in candidates])
        dist = np.sqrt(((desc[:, None, :] - chosen[None, :, :]) ** 2).sum(-1)).min(axis=1)
        best = int(np.argmax(dist))
        styles.append(candidates[best])
        chosen = np.vstack([chosen, desc[best]])
    return styles


# ----------------------------------------------------------------------------------- rendering


def _song_rng(style: GenreStyle, song_seed: int) -> np.random.Generator:
    """A generator fixed by the style's full content and the song seed (stable across runs)."""
    style_key = zlib.crc32(repr(style).encode("utf-8"))
    return np.random.default_rng([int(song_seed) % (1 << 63), style_key])


def _degree_semitones(degree: np.ndarray, scale: tuple[int, ...]) -> np.ndarray:
    """Semitones above the tonic of (possibly negative) scale degrees."""
    s = np.asarray(scale)
    octave, idx = np.divmod(degree, len(s))
    return 12 * octave + s[idx]


def _wavetables(freqs_hz: np.ndarray, amps: np.ndarray, phases: np.ndarray, formant_hz: float,
                formant_gain: float, cutoff_hz: float, sr: int, max_hz: float) -> np.ndarray:
    """One period per pitch (``(len(freqs_hz), _TABLE_SIZE)`` float32) of an instrument.

    Partial ``k`` of pitch ``f`` has amplitude ``amps[k-1]`` (the source) times a fixed spectral
    envelope of frequency ``k*f``: a resonance at ``formant_hz`` (``1 + formant_gain`` at its
    peak, about half an octave wide) and a 12 dB/octave low-pass above ``cutoff_hz``. The
    envelope does not move with pitch, which is what makes an instrument recognisable in any
    key. Partials at or above ``max_hz`` are dropped (band-limited); each table has RMS 1.
    """
    k = np.arange(1, len(amps) + 1)
    f = freqs_hz[:, None] * k[None, :]
    shape = (1.0 + formant_gain * np.exp(-0.5 * (np.log2(f / formant_hz) / 0.4) ** 2)) / (
        1.0 + (f / cutoff_hz) ** 2)
    a = amps[None, :] * shape * (f < max_hz)
    a[:, 0] = np.maximum(a[:, 0], 1e-3)  # never silent
    a /= np.sqrt((a ** 2).sum(axis=1, keepdims=True) / 2.0)
    spec = np.zeros((len(freqs_hz), _TABLE_SIZE // 2 + 1), dtype=np.complex128)
    spec[:, 1:len(amps) + 1] = a * np.exp(2j * np.pi * phases)[None, :]
    return (np.fft.irfft(spec, n=_TABLE_SIZE, axis=1) * (_TABLE_SIZE / 2.0)).astype(np.float32)


def _envelope(attack_s: float, decay_s: float, sr: int, max_s: float) -> np.ndarray:
    """Attack-decay envelope by sample since onset; its last value is 0 (used past the end)."""
    n = max(2, int(min(attack_s + 7.0 * decay_s, max_s) * sr))
    t = np.arange(n, dtype=np.float32)
    a = max(attack_s * sr, 1.0)
    env = np.minimum(t / a, 1.0) * np.exp(-np.maximum(t - a, 0.0) / (decay_s * sr))
    env[-1] = 0.0
    return env.astype(np.float32)


def _shaped_noise(n: int, sr: int, centre_hz: float, width_oct: float,
                  rng: np.random.Generator) -> np.ndarray:
    """White noise filtered to a log-Gaussian band around ``centre_hz``, RMS 1, float32."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / sr)
    f[0] = f[1]
    gain = np.exp(-0.5 * (np.log2(f / centre_hz) / width_oct) ** 2)
    out = np.fft.irfft(spec * gain, n=n)
    rms = np.sqrt(np.mean(out ** 2))
    return (out / rms if rms > 0 else out).astype(np.float32)


class _Notes:
    """Monophonic note segments: each note sounds from its onset until the next one.

    Built once per onset sequence; :meth:`amplitude` (envelope x gain) is shared by the voices
    of a chord, :meth:`wave` renders one voice's pitches through a wavetable.
    ``starts`` are sorted onset samples (the first may be negative), ``gains`` linear amplitudes.
    """

    def __init__(self, starts: np.ndarray, gains: np.ndarray, n: int) -> None:
        self.lead = len(starts) == 0 or starts[0] > 0  # a silent segment before the first onset
        if self.lead:
            starts = np.concatenate([[0], starts])
            gains = np.concatenate([[0.0], gains])
        self.n = n
        self.starts = starts.astype(np.int64)
        self.gains = gains.astype(np.float32)
        self.lengths = np.diff(np.append(np.clip(self.starts, 0, n), n))

    def amplitude(self, env: np.ndarray) -> np.ndarray:
        """``(n,)`` float32: the envelope by time since each note's onset, times its gain."""
        since = np.arange(self.n, dtype=np.int64) - np.repeat(self.starts, self.lengths)
        np.minimum(since, len(env) - 1, out=since)
        return env[since] * np.repeat(self.gains, self.lengths)

    def wave(self, freqs_hz: np.ndarray, instrument: dict, sr: int,
             vibrato: np.ndarray | None) -> np.ndarray:
        """``(n,)`` float32 wavetable oscillator playing ``freqs_hz`` (Hz, one per note).

        ``instrument`` holds the keyword arguments of :func:`_wavetables` other than the pitches.
        """
        if self.lead:
            freqs_hz = np.concatenate([freqs_hz[:1] if len(freqs_hz) else [110.0], freqs_hz])
        pitches, which = np.unique(freqs_hz, return_inverse=True)
        tables = _wavetables(pitches, sr=sr, **instrument).ravel()
        inc = np.repeat(freqs_hz * (_TABLE_SIZE / sr), self.lengths)
        if vibrato is not None:
            inc *= vibrato
        phase = np.cumsum(inc, out=inc).astype(np.int64)
        phase &= _TABLE_SIZE - 1
        phase += np.repeat(which.astype(np.int64) * _TABLE_SIZE, self.lengths)
        return tables[phase]


def _overlap_add(out: np.ndarray, template: np.ndarray, starts: np.ndarray,
                 gains: np.ndarray) -> None:
    """Add ``gain * template`` at each start sample (starts may run off either end)."""
    n, m = len(out), len(template)
    for s, g in zip(starts.tolist(), gains.tolist()):
        a, b = max(s, 0), min(s + m, n)
        if b > a:
            out[a:b] += g * template[a - s:b - s]


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.dot(x, x) / max(len(x), 1)))


def render_clip(style: GenreStyle, song_seed: int, seconds: float = 30.0,
                sample_rate_hz: int = 22050) -> np.ndarray:
    """Render one song of a genre as a mono clip.

    Per-song variation, all drawn from ``song_seed``: key (transposition of -5..+6 semitones),
    tempo (within about 4 %), instrument mix (harmonic amplitudes and phases, drum and bass
    levels, noise share), the melody (a random walk on the scale, as a 4-bar phrase repeated with
    variations), the bar chords, which weak steps sound, where in the phrase the clip starts, and
    loudness (RMS about -24 to -14 dBFS).

    Parameters
    ----------
    style : GenreStyle
        The genre's sound (see :func:`make_styles`).
    song_seed : int
        Identifies the song; the same (style, song_seed, seconds, sample_rate_hz) always gives the
        same clip.
    seconds : float
        Clip length in seconds, greater than 0.
    sample_rate_hz : int
        Sample rate in Hz, at least 4000.

    Returns
    -------
    numpy.ndarray
        ``(round(seconds * sample_rate_hz),)`` float32 samples, peak at most 0.98.

    Examples
    --------
    >>> clip = render_clip(make_styles(3)[0], song_seed=7, seconds=3.0)
    >>> clip.shape, clip.dtype
    ((66150,), dtype('float32'))
    """
    if not seconds > 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    if sample_rate_hz < 4000:
        raise ValueError(f"sample_rate_hz must be at least 4000, got {sample_rate_hz}")
    sr = int(sample_rate_hz)
    n = int(round(seconds * sr))
    if n < 1:
        raise ValueError(f"a clip of {seconds} s at {sr} Hz has no samples")
    rng = _song_rng(style, song_seed)

    # --- song parameters
    key = int(rng.integers(-5, 7))
    tempo = style.tempo_bpm * rng.uniform(0.96, 1.04)
    step = 60.0 / tempo / 4.0 * sr  # samples per sixteenth step
    phrase_steps = STEPS_PER_BAR * BARS_PER_PHRASE
    # The clip starts at step ``offset_steps`` of the song; two bars before it are rendered too
    # (at negative times), so notes and drums already sounding at the start are heard.
    lead_steps = 2 * STEPS_PER_BAR
    offset_steps = lead_steps + int(rng.integers(0, phrase_steps))
    n_steps = int(np.ceil(n / step)) + 1
    k = np.arange(offset_steps - lead_steps, offset_steps + n_steps)
    times = np.round((k - offset_steps + style.swing * (k % 2)) * step).astype(np.int64)
    pos = k % phrase_steps  # position in the phrase
    rep = k // phrase_steps  # phrase repetition
    n_rep = int(rep[-1]) + 1

    def hits(pattern: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Onset mask and gains over all steps: drawn once per phrase, a few redrawn per repeat."""
        acc = np.tile(np.asarray(pattern), BARS_PER_PHRASE)
        on = rng.random(phrase_steps) < acc
        flip = rng.random((n_rep, phrase_steps)) < 0.04 * (acc > 0)
        on_all = on[None, :] ^ flip
        gain = (0.4 + 0.6 * acc) * rng.uniform(0.85, 1.0, phrase_steps)
        return on_all[rep, pos], gain[pos]

    # Melody: random walk on scale degrees, reflected into about 1.5 octaves.
    n_deg = len(style.scale)
    moves = rng.choice([-2, -1, 0, 1, 2], size=phrase_steps, p=[0.15, 0.3, 0.1, 0.3, 0.15])
    walk = np.cumsum(moves)
    lo, width = -n_deg // 2, n_deg + n_deg // 2
    walk = np.mod(walk + rng.integers(0, width), 2 * width)
    degree = np.where(walk > width, 2 * width - walk, walk) + lo
    redo = rng.random((n_rep, phrase_steps)) < 0.12
    nudge = rng.choice([-1, 1], size=(n_rep, phrase_steps))
    degree_all = (degree[None, :] + redo * nudge)[rep, pos]
    chord_roots = rng.choice([0, 3, 4, 5, 0, 4], size=BARS_PER_PHRASE)  # degrees, per bar
    bar_root = chord_roots[pos // STEPS_PER_BAR]

    # Instrument mix.
    amps = np.asarray(style.harmonics, dtype=np.float64)
    amps = amps * rng.lognormal(0.0, 0.15, len(amps))
    noise_level = float(np.clip(style.noise_level * rng.uniform(0.75, 1.25), 0.0, 0.95))
    kick_lvl, snare_lvl, hat_lvl, hiss_lvl = rng.lognormal(0.0, 0.2, 4)
    bass_lvl = style.bass_level * rng.lognormal(0.0, 0.2)
    loudness_db = rng.uniform(-24.0, -14.0)
    formant_hz = style.formant_hz * 2.0 ** rng.uniform(-0.15, 0.15)
    cutoff_hz = style.cutoff_hz * 2.0 ** rng.uniform(-0.2, 0.2)

    # --- tonal part
    tonic_hz = style.register_hz * 2.0 ** (key / 12.0)
    on, gain = hits(style.rhythm)
    if not on.any():
        on[0] = True
    chord_steps = {1: (0,), 2: (0, 4), 3: (0, 2, 4)}[style.chord_size]
    starts = times[on]
    note_gain = gain[on]
    vib = None
    if style.vibrato_cents > 0:
        # Slow, so computed every 32nd sample and held.
        t = np.arange(0, n + 32, 32, dtype=np.float64) / sr
        vib = np.repeat(1.0 + (style.vibrato_cents / 1200.0 * np.log(2.0)) * np.sin(
            2.0 * np.pi * style.vibrato_hz * t + rng.uniform(0, 2 * np.pi)), 32)[:n]
    env = _envelope(style.attack_s, style.decay_s, sr, max_s=4.0)
    tonal = np.zeros(n, dtype=np.float32)
    notes = _Notes(starts, note_gain, n)
    max_hz = 0.45 * sr / (1.0 + style.vibrato_cents / 1200.0)
    for i, extra in enumerate(chord_steps):
        freqs = tonic_hz * 2.0 ** (_degree_semitones(degree_all[on] + extra, style.scale) / 12.0)
        instrument = dict(amps=amps, phases=rng.random(len(amps)), formant_hz=formant_hz,
                          formant_gain=5.0, cutoff_hz=cutoff_hz, max_hz=max_hz)
        tonal += notes.wave(freqs, instrument, sr, vib) * np.float32(1.0 if i == 0 else 0.6)
    tonal *= notes.amplitude(env)
    if bass_lvl > 0:
        bass_pat = _mix(style.kick, _bar((0, 1.0), (8, 0.6)))
        bon, bgain = hits(bass_pat)
        bon[0] = True
        octaves = max(1, int(np.ceil(np.log2(tonic_hz / 110.0))))
        bass_hz = tonic_hz / 2 ** octaves * 2.0 ** (
            _degree_semitones(bar_root[bon], style.scale) / 12.0)
        bamps = amps[:6] * 0.5 ** np.arange(min(6, len(amps)))
        bass_env = _envelope(0.005, max(0.25, style.decay_s), sr, max_s=3.0)
        bass = _Notes(times[bon], bgain[bon] * bass_lvl, n)
        instrument = dict(amps=bamps, phases=rng.random(len(bamps)), formant_hz=formant_hz,
                          formant_gain=1.0, cutoff_hz=cutoff_hz, max_hz=0.45 * sr)
        tonal += bass.wave(bass_hz, instrument, sr, None) * bass.amplitude(bass_env)

    # --- noise part: drums and hiss
    noise = np.zeros(n, dtype=np.float32)
    band = min(style.noise_band_hz, 0.4 * sr)
    if any(style.kick):
        m = int(0.3 * sr)
        t = np.arange(m) / sr
        f0, f1 = rng.uniform(45.0, 60.0), rng.uniform(120.0, 170.0)
        freq = f0 + (f1 - f0) * np.exp(-t / 0.03)
        kick = (np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.exp(-t / rng.uniform(0.08, 0.14)))
        kon, kgain = hits(style.kick)
        _overlap_add(noise, (kick * 2.0 * kick_lvl).astype(np.float32), times[kon], kgain[kon])
    if any(style.snare):
        m = int(0.25 * sr)
        t = np.arange(m) / sr
        body = _shaped_noise(m, sr, band, 1.0, rng) * np.exp(-t / rng.uniform(0.05, 0.1))
        tone = np.sin(2 * np.pi * rng.uniform(170.0, 220.0) * t) * np.exp(-t / 0.04)
        snare = ((body + 1.5 * tone) * snare_lvl).astype(np.float32)
        son, sgain = hits(style.snare)
        _overlap_add(noise, snare, times[son], sgain[son])
    if any(style.hat):
        m = int(0.12 * sr)
        t = np.arange(m) / sr
        hat = _shaped_noise(m, sr, min(8000.0, 0.38 * sr), 0.5, rng) * np.exp(
            -t / rng.uniform(0.015, 0.045))
        hon, hgain = hits(style.hat)
        _overlap_add(noise, (hat * 0.7 * hat_lvl).astype(np.float32), times[hon], hgain[hon])
    if style.hiss > 0:
        bed = _shaped_noise(_NOISE_BUFFER, sr, band, 1.5, rng)
        start = int(rng.integers(0, _NOISE_BUFFER))
        bed = np.roll(bed * np.float32(0.25 * style.hiss * hiss_lvl), -start)
        noise += np.tile(bed, n // _NOISE_BUFFER + 1)[:n]

    # --- mix and loudness
    t_rms, n_rms = _rms(tonal), _rms(noise)
    mix = tonal * np.float32((1.0 - noise_level) / t_rms if t_rms > 0 else 0.0)
    if n_rms > 0:
        mix += noise * np.float32(noise_level / n_rms)
    m_rms = _rms(mix)
    if m_rms > 0:
        mix *= np.float32(10.0 ** (loudness_db / 20.0) / m_rms)
    peak = float(np.abs(mix).max())
    if peak > 0.98:
        mix *= np.float32(0.98 / peak)
    return mix.astype(np.float32, copy=False)
