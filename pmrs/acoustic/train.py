"""Training the latent-factor CNN on random windows of warm songs (with audio and WMF factors).

Objective (van den Oord et al. 2013): sum over factor dimensions of the squared error between the
WMF song factors and the prediction from a window, averaged over the batch, in the scaled target
space of ``CNNConfig.target_scaling`` (with the default "global" scaling, predicting the
training mean scores about 1.0). Where genre labels exist, ``genre_loss_weight`` times the
cross-entropy of the genre head is added, over the labelled songs of the batch only.

Data: every warm song's log-mel is copied once into one time-major float16 array
``(total_frames, n_mels)`` with per-song offsets (clips shorter than a window are tiled to one
window, see ``predict.pad_clip``). An epoch draws ``windows_per_song_per_epoch`` windows per
training song at uniform random start frames; a batch is gathered with one numpy fancy index,
so there are no per-window Python objects.

Validation: a ``validation_share`` of the warm songs (by song, seeded) is held out and scored
each epoch at clip level, exactly as ``predict_clips`` scores a clip (the mean over consecutive
windows). Training stops after ``patience`` epochs without a better validation loss, and the best
epoch's weights are restored. On CPU, the same seed and thread count give the same weights
(``torch.manual_seed`` inside a forked RNG, so the caller's RNG state is untouched, a numpy
``Generator``, deterministic algorithms); on CUDA only with ``CUBLAS_WORKSPACE_CONFIG`` set.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import replace
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .model import CNNConfig, LatentFactorCNN, resolve_device
from .predict import pad_clip, predict_clips

log = logging.getLogger(__name__)


def _str_id(key: str | bytes) -> str:
    return key.decode("ascii") if isinstance(key, (bytes, np.bytes_)) else str(key)


def _target_table(targets) -> dict[str, np.ndarray]:
    """``{song_id: (n_factors,)}`` from a mapping or a ``(song_ids, factor_matrix)`` pair."""
    if isinstance(targets, Mapping):
        return {_str_id(k): np.asarray(v, dtype=np.float32) for k, v in targets.items()}
    song_ids, matrix = targets
    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.ndim != 2 or len(song_ids) != matrix.shape[0]:
        raise ValueError(f"targets: {len(song_ids)} ids for factors of shape {matrix.shape}")
    return {_str_id(k): matrix[i] for i, k in enumerate(song_ids)}


class _Stacked:
    """All songs' frames in one time-major float16 array ``(total_frames, n_mels)`` + offsets."""

    def __init__(self, clips: list[np.ndarray], n_mels: int, window_frames: int) -> None:
        lengths = np.array([max(c.shape[1], window_frames) for c in clips], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        self.lengths = lengths
        self.frames = np.empty((int(lengths.sum()), n_mels), dtype=np.float16)
        for clip, off, n in zip(clips, self.offsets, lengths):
            self.frames[off:off + n] = pad_clip(clip, window_frames).T

    def clip(self, i: int) -> np.ndarray:
        """Song ``i`` as ``(n_mels, n_frames)`` (a view)."""
        return self.frames[self.offsets[i]:self.offsets[i] + self.lengths[i]].T

    def band_stats(self, songs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-band mean and standard deviation over every frame of ``songs``."""
        n_mels = self.frames.shape[1]
        s, ss, n = np.zeros(n_mels), np.zeros(n_mels), 0
        for i in songs:
            seg = self.frames[self.offsets[i]:self.offsets[i] + self.lengths[i]].astype(np.float64)
            s += seg.sum(0)
            ss += (seg * seg).sum(0)
            n += len(seg)
        mean = s / n
        return mean, np.sqrt(np.maximum(ss / n - mean * mean, 0.0))


@contextmanager
def _training_env(cfg: CNNConfig, device: torch.device) -> Iterator[None]:
    """Seeded torch RNG (restored afterwards), thread count and deterministic algorithms."""
    prev_threads = torch.get_num_threads()
    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        try:
            if cfg.threads:
                torch.set_num_threads(cfg.threads)
            # warn_only: an op without a deterministic kernel warns instead of failing a run. On
            # CUDA, cuBLAS is deterministic only with CUBLAS_WORKSPACE_CONFIG set before start-up;
            # without it, GPU runs are repeatable only approximately (and nothing is forced).
            if device.type == "cpu" or os.environ.get("CUBLAS_WORKSPACE_CONFIG"):
                torch.use_deterministic_algorithms(True, warn_only=True)
            torch.manual_seed(cfg.seed)
            yield
        finally:
            torch.use_deterministic_algorithms(prev_det, warn_only=prev_warn)
            torch.set_num_threads(prev_threads)


def _target_scaling(y: np.ndarray, how: str) -> tuple[np.ndarray, np.ndarray]:
    k = y.shape[1]
    if how == "none":
        return np.zeros(k), np.ones(k)
    mean = y.mean(0)
    var = y.var(0)
    if how == "global":
        return mean, np.full(k, max(math.sqrt(var.sum()), 1e-8))
    return mean, np.sqrt(np.maximum(var, 1e-12) * k)  # per_dim


def train_cnn(log_mels: Mapping[str, np.ndarray],
              targets: Mapping[str, np.ndarray] | tuple[np.ndarray, np.ndarray],
              genres: Mapping[str, int] | None = None, cfg: CNNConfig = CNNConfig(),
              show_progress: bool | None = None) -> tuple[LatentFactorCNN, dict]:
    """Train the CNN to predict WMF song factors from log-mel windows.

    Parameters
    ----------
    log_mels : song id -> ``(n_mels, n_frames)`` log-mel (float16 or float32). Only songs that also
        have targets are read.
    targets : song id -> ``(n_factors,)`` WMF song factors, or ``(song_ids, (n_songs, n_factors))``
        as stored in a WMF run (ids may be bytes).
    genres : song id -> genre index in ``[0, n_genres)``; songs without a label are masked out
        of the genre loss.
    cfg : settings; ``n_factors``/``n_genres`` 0 are filled from the data (``model.config``
        holds the effective settings).
    show_progress : tqdm bar; ``None``: only on a terminal.

    Returns
    -------
    ``(model, history)``: the model with the best validation epoch's weights, in eval mode on the
    training device; ``history`` has per-epoch ``epochs`` entries (``epoch``, ``train_loss``,
    ``train_genre_loss``, ``val_loss``, ``val_genre_accuracy``, ``seconds``, ``windows_per_s``)
    and a summary (``best_epoch``, ``best_val_loss``, ``val_loss_mean_predictor``, counts, device,
    the genre head's labelled training songs per genre and its validation accuracy beside the most
    common genre's share) and ``validation_songs``, the ids of the warm songs held out.
    """
    t_start = time.perf_counter()
    table = _target_table(targets)
    keys = {_str_id(k): k for k in log_mels.keys()}
    warm = sorted(set(keys) & set(table))
    if not warm:
        raise ValueError("no song has both a log-mel and WMF factors; nothing to train on")
    log.info("%d warm songs (%d with audio, %d with factors)", len(warm), len(keys), len(table))
    y = np.stack([table[s] for s in warm]).astype(np.float32)
    n_factors = y.shape[1]
    if cfg.n_factors and cfg.n_factors != n_factors:
        raise ValueError(f"cfg.n_factors={cfg.n_factors} but the targets have {n_factors} factors")

    labels = np.full(len(warm), -1, dtype=np.int64)
    if genres is not None:
        g = {_str_id(k): int(v) for k, v in genres.items()}
        labels = np.array([g.get(s, -1) for s in warm], dtype=np.int64)
    n_genres = cfg.n_genres
    if n_genres == 0 and cfg.genre_loss_weight > 0 and (labels >= 0).any():
        n_genres = int(labels.max()) + 1
    if n_genres and labels.max(initial=-1) >= n_genres:
        raise ValueError(f"genre label {labels.max()} out of range for n_genres={n_genres}")
    if labels.min(initial=0) < -1:
        raise ValueError("genre labels must be >= 0")
    use_genres = n_genres > 0 and cfg.genre_loss_weight > 0 and bool((labels >= 0).any())
    cfg = replace(cfg, n_factors=n_factors, n_genres=n_genres)

    clips = []
    for s in warm:
        clip = np.asarray(log_mels[keys[s]])
        if clip.ndim != 2 or clip.shape[0] != cfg.n_mels or clip.shape[1] == 0:
            raise ValueError(f"log-mel of {s}: expected ({cfg.n_mels}, n_frames > 0), "
                             f"got {clip.shape}")
        clips.append(clip.astype(np.float16, copy=False))
    data = _Stacked(clips, cfg.n_mels, cfg.window_frames)
    del clips

    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(warm))
    n_val = min(max(round(cfg.validation_share * len(warm)), 1), len(warm) - 1) \
        if cfg.validation_share > 0 and len(warm) > 1 else 0
    val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])

    device = resolve_device(cfg.device)
    W, B = cfg.window_frames, cfg.batch_size
    frame_offsets = np.arange(W, dtype=np.int64)
    history: dict = {"epochs": []}
    with _training_env(cfg, device):
        model = LatentFactorCNN(cfg)
        model.set_input_normalization(*data.band_stats(train_idx))
        t_mean, t_scale = _target_scaling(y[train_idx].astype(np.float64), cfg.target_scaling)
        model.set_target_scaling(t_mean, t_scale)
        model.to(device)
        y_scaled = torch.from_numpy(((y - t_mean) / t_scale).astype(np.float32)).to(device)
        labels_t = torch.from_numpy(labels).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate,
                                weight_decay=cfg.weight_decay)

        val_scaled = ((y[val_idx] - t_mean) / t_scale) if n_val else None
        baseline = float((val_scaled ** 2).sum(1).mean()) if n_val else None
        best_loss, best_epoch, best_state, stale = math.inf, None, None, 0
        per_epoch = len(train_idx) * cfg.windows_per_song_per_epoch
        bar = tqdm(total=cfg.max_epochs * per_epoch, unit="window", desc="train-cnn",
                   disable=None if show_progress is None else not show_progress, file=sys.stderr)
        try:
            for epoch in range(1, cfg.max_epochs + 1):
                t0 = time.perf_counter()
                model.train()
                songs = np.repeat(train_idx, cfg.windows_per_song_per_epoch)
                rng.shuffle(songs)
                starts = data.offsets[songs] + rng.integers(0, data.lengths[songs] - W + 1)
                f_sum = g_sum = 0.0
                g_n = 0
                for b in range(0, len(songs), B):
                    idx = starts[b:b + B, None] + frame_offsets
                    xb = torch.from_numpy(data.frames[idx]).to(device).float()
                    xb = xb.permute(0, 2, 1).contiguous()  # (batch, n_mels, W)
                    sb = torch.from_numpy(songs[b:b + B]).to(device)
                    out = model(xb)
                    f_loss = ((out["factors_scaled"] - y_scaled[sb]) ** 2).sum(1).mean()
                    loss = f_loss
                    if use_genres:
                        lb = labels_t[sb]
                        mask = lb >= 0
                        if bool(mask.any()):
                            g_loss = F.cross_entropy(out["genre_logits"][mask], lb[mask])
                            loss = loss + cfg.genre_loss_weight * g_loss
                            g_sum += g_loss.item() * int(mask.sum())
                            g_n += int(mask.sum())
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    f_sum += f_loss.item() * len(sb)
                    bar.update(len(sb))
                train_seconds = time.perf_counter() - t0

                row: dict = {"epoch": epoch, "train_loss": f_sum / len(songs),
                             "train_genre_loss": g_sum / g_n if g_n else None,
                             "val_loss": None, "val_genre_accuracy": None}
                if n_val:
                    val = predict_clips(model, ((str(i), data.clip(i)) for i in val_idx),
                                        batch_size=max(B, 256), show_progress=False)
                    pred, probs = val["factors"], val["genre_probs"]
                    row["val_loss"] = float(((((pred - t_mean) / t_scale) - val_scaled) ** 2)
                                            .sum(1).mean())
                    lv = labels[val_idx]
                    if probs is not None and (lv >= 0).any():
                        row["val_genre_accuracy"] = float(
                            (probs[lv >= 0].argmax(1) == lv[lv >= 0]).mean())
                row["seconds"] = time.perf_counter() - t0
                row["windows_per_s"] = len(songs) / train_seconds
                history["epochs"].append(row)
                log.info("epoch %d: train %.4f, val %s, %.1fs", epoch, row["train_loss"],
                         "-" if row["val_loss"] is None else f"{row['val_loss']:.4f}",
                         row["seconds"])
                bar.set_postfix(epoch=epoch, train=f"{row['train_loss']:.3f}",
                                val="-" if row["val_loss"] is None else f"{row['val_loss']:.3f}")

                if not n_val:
                    continue
                if row["val_loss"] < best_loss:
                    best_loss, best_epoch, stale = row["val_loss"], epoch, 0
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                else:
                    stale += 1
                    if stale >= cfg.patience:
                        log.info("no better validation loss for %d epochs; stopping",
                                 cfg.patience)
                        break
        finally:
            bar.close()
        if best_state is not None:
            model.load_state_dict(best_state)
        model.eval()

    epochs_run = len(history["epochs"])
    best_row = next((r for r in history["epochs"] if r["epoch"] == best_epoch), None)
    lv = labels[val_idx]
    history.update({
        "best_epoch": best_epoch if n_val else epochs_run,
        "best_val_loss": best_loss if n_val else None,
        "val_loss_mean_predictor": baseline,
        "stopped_early": epochs_run < cfg.max_epochs,
        "n_train_songs": int(len(train_idx)), "n_val_songs": int(n_val),
        "n_genre_labelled": int((labels >= 0).sum()),
        # what pmrs.acoustic.undertrained judges the genre head by
        "genre_train_songs": (np.bincount(labels[train_idx][labels[train_idx] >= 0], minlength=n_genres).tolist()
                              if use_genres else []),
        "val_genre_accuracy": best_row["val_genre_accuracy"] if best_row else None,
        "val_genre_majority_share": (float(np.bincount(lv[lv >= 0]).max() / (lv >= 0).sum())
                                     if use_genres and (lv >= 0).any() else None),
        # the warm songs the CNN did not train on (the cold-start weights are chosen on them);
        # callers take it out before saving the history (it is as long as a tenth of the songs)
        "validation_songs": [warm[i] for i in val_idx],
        "windows_per_epoch": int(per_epoch), "device": str(device),
        "seconds": time.perf_counter() - t_start,
    })
    return model, history
