"""Decoding audio files to mono float32 at one sample rate.

soundfile (libsndfile 1.2: WAV, FLAC, OGG Vorbis, OGG Opus, MP3 and more) decodes every format a
clip folder normally holds; ``librosa.load`` (audioread) is tried only when soundfile cannot open
the file at all. Channels are averaged to mono *before* resampling (the mean is linear, so this
equals resampling every channel, at a fraction of the cost), and soxr resamples at its "HQ"
quality when the file's rate differs from the target.

Clips longer than ``max_seconds`` keep their middle ``max_seconds`` (intros and fade-outs are the
least typical part of a track); only those frames are decoded, after a seek, where the container
can seek. :attr:`DecodedAudio.seek` says what happened: ``"seek"`` (libsndfile 1.2 seeks WAV,
FLAC, OGG Vorbis, OGG Opus and MP3 files), ``"decode"`` (the part before the kept frames was
decoded and thrown away: libsndfile says the file cannot seek, or only the audioread fallback
opens it, or the file is shorter than its header says and its middle had to be found by reading
it all), ``"head"`` (the header gives no length: the first ``max_seconds`` are kept) or
``"none"`` (nothing to skip). Extraction counts them, so a folder whose files cannot seek shows.

Truncated files are decoded as far as they go: libsndfile either returns fewer frames than the
header declares (WAV, MP3) or raises part-way (FLAC "lost sync"); in the second case the file is
read again in quarter-second blocks and everything before the failing block is kept. The result
says it is ``truncated``; whether what is left is long enough is the caller's decision.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from ..errors import AudioError

log = logging.getLogger(__name__)

#: soxr quality preset used for every resampling.
RESAMPLE_QUALITY = "HQ"
#: A header claiming more than this many seconds is treated as "length unknown".
_UNKNOWN_LENGTH_S = 24 * 3600
#: Longest audio read from a file of unknown length when no ``max_seconds`` is given.
_UNKNOWN_LENGTH_CAP_S = 2 * 3600
#: A read this much shorter than the declared frame count marks the file as truncated.
_SHORT_READ = 0.99

_SF_ERRORS = (sf.LibsndfileError, RuntimeError)

#: Seconds decoded (and dropped) before the kept part after a seek.
_SEEK_PREROLL_S = 0.25
#: Values of :attr:`DecodedAudio.seek`.
SEEK_MODES = ("seek", "decode", "head", "none")


@dataclass(frozen=True)
class DecodedAudio:
    """A decoded clip and how it was obtained.

    Attributes
    ----------
    samples : numpy.ndarray
        ``(n,)`` float32 mono samples at ``sample_rate_hz``, nominally in [-1, 1].
    sample_rate_hz : int
        Sample rate of ``samples`` in Hz.
    source_sample_rate_hz : int
        The file's own sample rate in Hz.
    source_channels : int
        The file's channel count (averaged to mono).
    source_format : str
        ``"FORMAT/SUBTYPE"`` as libsndfile names it (``"MP3/MPEG_LAYER_III"``), or
        ``"audioread"`` when the fallback decoded it.
    declared_seconds : float or None
        Duration the file's header declares, in seconds (None when unknown).
    truncated : bool
        Decoding stopped before the declared end (the file is cut short or damaged).
    detail : str
        Why ``truncated`` is set; empty otherwise.
    seek : str
        How the part before the kept frames was skipped (see :data:`SEEK_MODES`): ``"seek"``,
        ``"decode"`` (decoded from the start and thrown away), ``"head"`` (length unknown: the
        first ``max_seconds`` kept) or ``"none"`` (nothing skipped).
    decode_seconds : float
        Wall time spent decoding and averaging to mono, in seconds.
    resample_seconds : float
        Wall time spent resampling, in seconds (0 when the rates match).
    """

    samples: np.ndarray
    sample_rate_hz: int
    source_sample_rate_hz: int
    source_channels: int
    source_format: str
    declared_seconds: float | None
    truncated: bool
    detail: str
    seek: str
    decode_seconds: float
    resample_seconds: float

    @property
    def seconds(self) -> float:
        """Duration of ``samples`` in seconds."""
        return len(self.samples) / self.sample_rate_hz


class _CannotOpen(Exception):
    """soundfile could not open the file (unknown or damaged container)."""


def load_audio(path: str | os.PathLike, sample_rate_hz: int = 22050,
               max_seconds: float | None = None) -> np.ndarray:
    """Decode an audio file to mono float32 at ``sample_rate_hz``.

    Parameters
    ----------
    path : str or path-like
        WAV, FLAC, OGG (Vorbis or Opus), MP3, or anything else libsndfile or audioread decodes;
        any sample rate and channel count.
    sample_rate_hz : int
        Output sample rate in Hz.
    max_seconds : float or None
        Keep at most this many seconds: the middle of a longer file. None keeps everything.

    Returns
    -------
    numpy.ndarray
        ``(n,)`` float32 samples at ``sample_rate_hz``. A truncated file gives the part that
        decodes (see :func:`decode_audio` to learn that it was truncated).

    Raises
    ------
    AudioError
        ``reason`` is ``"unreadable"``, ``"empty"``, ``"truncated"`` or ``"non-finite"``.

    Examples
    --------
    >>> y = load_audio("SOAKIMP12A8C130995.mp3", sample_rate_hz=22050, max_seconds=30.0)
    >>> y.dtype, y.ndim
    (dtype('float32'), 1)
    """
    return decode_audio(path, sample_rate_hz, max_seconds).samples


def decode_audio(path: str | os.PathLike, sample_rate_hz: int = 22050,
                 max_seconds: float | None = None) -> DecodedAudio:
    """:func:`load_audio` with the details: source format, truncation, decode and resample time.

    Parameters and errors are those of :func:`load_audio`.
    """
    path = Path(path)
    if sample_rate_hz <= 0:
        raise ValueError(f"sample_rate_hz must be positive, got {sample_rate_hz}")
    if max_seconds is not None and not max_seconds > 0:
        raise ValueError(f"max_seconds must be positive or None, got {max_seconds}")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise AudioError("unreadable", f"cannot read the file: {exc.strerror or exc}") from None
    if size == 0:
        raise AudioError("empty", "the file has 0 bytes")

    t0 = time.perf_counter()
    try:
        frames, sr, channels, fmt, declared, expected, err, seek = _read_soundfile(path, max_seconds)
    except _CannotOpen as exc:
        frames, sr, channels, fmt, declared, expected, err, seek = _read_fallback(path, max_seconds,
                                                                                   str(exc))
    if len(frames) == 0:
        if err is not None:
            raise AudioError("truncated", f"no audio decodes before the error: {err}")
        raise AudioError("empty", "the file holds no audio frames")
    mono = _mixdown(frames)
    if not np.isfinite(mono).all():
        raise AudioError("non-finite", f"{int((~np.isfinite(mono)).sum())} NaN or infinite samples")
    t1 = time.perf_counter()

    if sr != sample_rate_hz:
        mono = soxr.resample(mono, sr, sample_rate_hz, quality=RESAMPLE_QUALITY)
    if max_seconds is not None:
        mono = mono[:int(round(max_seconds * sample_rate_hz))]
    t2 = time.perf_counter()

    declared_s = declared / sr if declared else None
    truncated = err is not None or len(frames) < _SHORT_READ * expected
    detail = ""
    if truncated:
        detail = (f"decoded {len(frames) / sr:.2f} s of {declared_s or 0.0:.2f} s declared"
                  + (f" ({err})" if err else ""))
        log.info("%s is truncated: %s", path, detail)
    return DecodedAudio(samples=mono, sample_rate_hz=int(sample_rate_hz),
                        source_sample_rate_hz=int(sr), source_channels=int(channels),
                        source_format=fmt, declared_seconds=declared_s, truncated=truncated,
                        detail=detail, seek=seek, decode_seconds=t1 - t0, resample_seconds=t2 - t1)


def _read_soundfile(path: Path, max_seconds: float | None):
    """(frames (n, channels) float32, rate, channels, format, declared frames (0: unknown),
    frames aimed at, error message or None, seek mode)."""
    try:
        f = sf.SoundFile(str(path))  # opened once: some decoders scan the whole file to open it
    except _SF_ERRORS as exc:
        raise _CannotOpen(str(exc)) from None
    with f:
        sr, channels, declared = int(f.samplerate), int(f.channels), int(f.frames)
        fmt = f"{f.format}/{f.subtype}"
        if sr <= 0 or channels <= 0:
            raise AudioError("unreadable", f"header gives {sr} Hz and {channels} channels")
        block = max(4096, sr // 4)
        if declared <= 0 or declared > _UNKNOWN_LENGTH_S * sr:
            # Length unknown: read from the start until the end (or the cap).
            limit_s = max_seconds if max_seconds is not None else _UNKNOWN_LENGTH_CAP_S
            data, err = _read_blocks(f, 0, int(np.ceil(limit_s * sr)), block, channels)
            return data, sr, channels, fmt, 0, 0, err, "head" if max_seconds is not None else "none"
        max_frames = declared if max_seconds is None else min(declared, int(np.ceil(max_seconds * sr)))
        start = (declared - max_frames) // 2
        can_seek = f.seekable()
        seek = "none" if not start else "seek" if can_seek else "decode"
        if start and not can_seek:
            log.info("%s (%s) cannot seek: decoding its first %.1f s to skip them", path, fmt, start / sr)
        try:
            if start and can_seek:
                # A quarter second early: an MP3 decoder's first ~0.12 s after a seek come out
                # as silence (the bit reservoir of the frames before it is missing).
                preroll = min(start, int(_SEEK_PREROLL_S * sr))
                f.seek(start - preroll)
                data, err = f.read(preroll + max_frames, dtype="float32", always_2d=True)[preroll:], None
            elif start:
                data, err = _read_blocks(f, start, max_frames, block, channels, seek=False)
            else:
                data, err = f.read(max_frames, dtype="float32", always_2d=True), None
        except _SF_ERRORS as exc:
            data, err = None, str(exc)
    if data is None:  # broke off part-way: salvage what decodes, block by block
        with sf.SoundFile(str(path)) as f:
            data, err = _read_blocks(f, start, max_frames, block, channels, seek=can_seek)
    if start > 0 and len(data) < _SHORT_READ * max_frames:
        # Shorter than its header says, so the "middle" was misplaced: read it all, keep its middle.
        with sf.SoundFile(str(path)) as f:
            data, err2 = _read_blocks(f, 0, declared, block, channels)
        err = err or err2 or "shorter than its header declares"
        seek = "decode"
        if len(data) > max_frames:
            s = (len(data) - max_frames) // 2
            data = data[s:s + max_frames]
    return data, sr, channels, fmt, declared, max_frames, err, seek


def _read_blocks(f: sf.SoundFile, start: int, frames: int, block: int, channels: int,
                 seek: bool = True):
    """Read up to ``frames`` frames from ``start`` in blocks; stop at the end or the first error
    (keeping every block before it). ``seek=False``: reach ``start`` by decoding the frames
    before it (thrown away block by block), for a file that cannot seek."""
    chunks: list[np.ndarray] = []
    got, err = 0, None
    try:
        if start and seek:
            f.seek(start)
        elif start:
            buf = np.empty((block, channels), np.float32)
            skipped = 0
            while skipped < start:
                n = len(f.read(min(block, start - skipped), dtype="float32", always_2d=True,
                               out=buf[:min(block, start - skipped)]))
                skipped += n
                if n == 0:
                    break
        while got < frames:
            want = min(block, frames - got)
            chunk = f.read(want, dtype="float32", always_2d=True,
                           out=np.empty((want, channels), np.float32))
            if len(chunk):
                chunks.append(chunk)
                got += len(chunk)
            if len(chunk) < want:
                break
    except _SF_ERRORS as exc:
        err = str(exc)
    data = np.concatenate(chunks) if chunks else np.zeros((0, channels), np.float32)
    return data, err


def _mixdown(frames: np.ndarray) -> np.ndarray:
    """``(n, channels)`` -> ``(n,)`` float32 channel mean (column adds: several times faster
    than ``mean(axis=1)`` over a short inner axis)."""
    mono = np.array(frames[:, 0], dtype=np.float32)
    for c in range(1, frames.shape[1]):
        mono += frames[:, c]
    if frames.shape[1] > 1:
        mono *= np.float32(1.0 / frames.shape[1])
    return mono


def _read_fallback(path: Path, max_seconds: float | None, sf_error: str):
    """``librosa.load`` (audioread) for what libsndfile cannot open."""
    import librosa  # heavy; only on this rare path

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y, sr = librosa.load(str(path), sr=None, mono=False, dtype=np.float32)
    except Exception as exc:  # noqa: BLE001 - any decoder failure means "unreadable"
        why = str(exc) or type(exc).__name__
        raise AudioError("unreadable", f"soundfile: {sf_error}; audioread: {why}") from None
    frames = np.atleast_2d(y).T  # (n, channels)
    sr = int(sr)
    seek = "none"
    if max_seconds is not None:
        max_frames = int(np.ceil(max_seconds * sr))
        if len(frames) > max_frames:
            s = (len(frames) - max_frames) // 2
            frames = frames[s:s + max_frames]
            seek = "decode"  # audioread decodes the whole file
    return np.ascontiguousarray(frames), sr, frames.shape[1], "audioread", 0, 0, None, seek
