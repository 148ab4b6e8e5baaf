"""Clip-level predictions of a trained CNN: the mean over consecutive windows of the window outputs.

A clip ``(n_mels, n_frames)`` is cut into ``n_frames // window_frames`` consecutive,
non-overlapping windows starting at frame 0; a trailing partial window is dropped (at most
``window_frames - 1`` frames, under 3 s of a 30 s preview). A clip shorter than one window is
tiled (repeated from its start) up to one full window, the same padding training uses: repeating
keeps the clip's spectral statistics, where zeros would be a silence level the log-mel scale never
produces. A clip's factors, embedding and genre probabilities are each the mean over its windows
(genre probabilities are the softmax of each window's logits, then averaged).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping

import numpy as np
import torch
from tqdm.auto import tqdm

from .model import LatentFactorCNN

DEFAULT_BATCH_SIZE = 256


def pad_clip(log_mel: np.ndarray, window_frames: int) -> np.ndarray:
    """``log_mel`` ``(n_mels, n_frames)`` unchanged when it has at least ``window_frames`` frames,
    else tiled along time to exactly ``window_frames`` frames."""
    n = log_mel.shape[1]
    if n == 0:
        raise ValueError("empty clip (0 frames)")
    if n >= window_frames:
        return log_mel
    reps = -(-window_frames // n)
    return np.tile(log_mel, (1, reps))[:, :window_frames]


def clip_windows(log_mel: np.ndarray, window_frames: int) -> np.ndarray:
    """Consecutive non-overlapping windows ``(n_windows, n_mels, window_frames)`` of a clip
    (trailing partial window dropped; a short clip tiled to one window). Same dtype as the input."""
    if log_mel.ndim != 2:
        raise ValueError(f"a log-mel clip is (n_mels, n_frames); got shape {log_mel.shape}")
    x = pad_clip(log_mel, window_frames)
    n_mels, n = x.shape
    k = n // window_frames
    return x[:, :k * window_frames].reshape(n_mels, k, window_frames).transpose(1, 0, 2)


def _run_windows(model: LatentFactorCNN, windows: np.ndarray, batch_size: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Per-window factors, embeddings and genre probabilities (float32 numpy) in eval mode."""
    cfg = model.config
    if windows.ndim != 3 or windows.shape[1:] != (cfg.n_mels, cfg.window_frames):
        raise ValueError(f"windows must be (n, {cfg.n_mels}, {cfg.window_frames}); "
                         f"got {windows.shape}")
    n = windows.shape[0]
    factors = np.empty((n, cfg.n_factors), np.float32)
    emb = np.empty((n, cfg.embedding_dim), np.float32)
    probs = np.empty((n, cfg.n_genres), np.float32) if model.genre_head is not None else None
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for i in range(0, n, batch_size):
                xb = torch.from_numpy(np.ascontiguousarray(windows[i:i + batch_size],
                                                           dtype=np.float32)).to(model.device)
                out = model(xb)
                factors[i:i + batch_size] = out["factors"].cpu().numpy()
                emb[i:i + batch_size] = out["embedding"].cpu().numpy()
                if probs is not None:
                    probs[i:i + batch_size] = torch.softmax(out["genre_logits"], 1).cpu().numpy()
    finally:
        model.train(was_training)
    return factors, emb, probs


def predict_windows(model: LatentFactorCNN, log_mel: np.ndarray,
                    batch_size: int = DEFAULT_BATCH_SIZE) -> dict:
    """Outputs for each window of one clip ``(n_mels, n_frames)``.

    Returns ``factors`` ``(n_windows, n_factors)``, ``embeddings`` ``(n_windows, embedding_dim)``
    and ``genre_probs`` ``(n_windows, n_genres)`` or ``None``, all float32.
    """
    f, e, p = _run_windows(model, clip_windows(log_mel, model.config.window_frames), batch_size)
    return {"factors": f, "embeddings": e, "genre_probs": p}


def _ascii_id(key: str | bytes) -> bytes:
    return key.encode("ascii") if isinstance(key, str) else bytes(key)


def predict_clips(model: LatentFactorCNN,
                  log_mels: Mapping[str, np.ndarray] | Iterable[tuple[str, np.ndarray]],
                  batch_size: int = DEFAULT_BATCH_SIZE, show_progress: bool | None = None) -> dict:
    """Clip-level predictions: for each clip, the mean of its window outputs.

    ``log_mels``: a mapping (or iterable of pairs) song id -> ``(n_mels, n_frames)`` log-mel
    (float16 or float32). Windows of several clips share a batch; memory stays at about
    ``batch_size`` windows plus one clip. Returns ``song_ids`` (``S`` bytes array, input order),
    ``factors`` ``(n, n_factors)``, ``embeddings`` ``(n, embedding_dim)`` and ``genre_probs``
    ``(n, n_genres)`` or ``None``, all float32.
    """
    cfg = model.config
    items = log_mels.items() if isinstance(log_mels, Mapping) else log_mels
    total = len(log_mels) if hasattr(log_mels, "__len__") else None
    ids: list[bytes] = []
    outs: list[list[np.ndarray]] = [[], [], []]
    pending: list[np.ndarray] = []
    pending_n = 0

    def flush() -> None:
        nonlocal pending, pending_n
        if not pending:
            return
        counts = np.array([len(w) for w in pending])
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        for slot, values in zip(outs, _run_windows(model, np.concatenate(pending), batch_size)):
            if values is not None:
                sums = np.add.reduceat(values.astype(np.float64), starts, axis=0)
                slot.append((sums / counts[:, None]).astype(np.float32))
        pending, pending_n = [], 0

    disable = None if show_progress is None else not show_progress
    for song_id, log_mel in tqdm(items, total=total, desc="predict", unit="clip", disable=disable,
                                 file=sys.stderr):
        if log_mel.ndim != 2 or log_mel.shape[0] != cfg.n_mels:
            raise ValueError(f"clip {song_id!r}: expected ({cfg.n_mels}, n_frames), "
                             f"got {log_mel.shape}")
        windows = clip_windows(log_mel, cfg.window_frames)
        ids.append(_ascii_id(song_id))
        pending.append(windows)
        pending_n += len(windows)
        if pending_n >= batch_size:
            flush()
    flush()

    def stack(slot: list[np.ndarray], dim: int) -> np.ndarray:
        return np.concatenate(slot) if slot else np.empty((0, dim), np.float32)

    has_genres = model.genre_head is not None
    return {"song_ids": np.array(ids, dtype="S") if ids else np.empty(0, dtype="S1"),
            "factors": stack(outs[0], cfg.n_factors),
            "embeddings": stack(outs[1], cfg.embedding_dim),
            "genre_probs": stack(outs[2], cfg.n_genres) if has_genres else None}
