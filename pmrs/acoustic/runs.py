"""CNN run directories and saved predictions, written atomically and read without unpickling.

A run lives in ``models/cnn/<run>/``:

- ``weights.pt``: the model's ``state_dict`` (tensors only, including the input normalisation and
  target scaling buffers), written with ``torch.save`` and read with ``weights_only=True``;
- ``config.json``: the effective ``CNNConfig`` (``n_factors``/``n_genres`` filled in);
- ``history.json``: the training history (per-epoch ``epochs`` and the summary) plus ``extra``.

Predictions (``save_predictions``) are a directory of ``.npy`` files: ``song_ids.npy`` (sorted
fixed-width ASCII bytes, so an id maps to its row by binary search, as in ``interactions``),
``factors.npy`` ``(n, n_factors)``, ``embeddings.npy`` ``(n, embedding_dim)`` and, when the model
has a genre head, ``genre_probs.npy`` ``(n, n_genres)``, all float32.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ..artifacts import load_npy, read_json, save_npy, staged_dir, tmp_path, write_json
from .model import CNNConfig, LatentFactorCNN, resolve_device

CNN_DIR = Path("models") / "cnn"
WEIGHTS = "weights.pt"

# Settings that decide the shapes in the state_dict: a run's config must agree with its weights.
_ARCHITECTURE = ("n_mels", "window_frames", "channels", "kernel_frames", "pool_frames",
                 "batch_norm", "hidden", "embedding_dim", "embedding_activation", "n_factors",
                 "n_genres")


def save_cnn_run(model: LatentFactorCNN, cfg: CNNConfig | None, history: dict,
                 run_dir: str | os.PathLike, extra: dict | None = None) -> Path:
    """Write ``weights.pt``, ``config.json`` and ``history.json`` as one run directory, atomically.

    ``cfg`` ``None`` writes ``model.config`` (the effective settings ``train_cnn`` used); a given
    ``cfg`` must agree with the model's architecture. ``extra`` keys are added to
    ``history.json`` (e.g. the WMF run the targets came from).
    """
    cfg = cfg or model.config
    diff = [n for n in _ARCHITECTURE if getattr(cfg, n) != getattr(model.config, n)]
    if diff:
        raise ValueError(f"cfg disagrees with the model on {', '.join(diff)}; pass model.config")
    clash = set(extra or {}) & set(history)
    if clash:
        raise ValueError(f"extra would overwrite history keys: {', '.join(sorted(clash))}")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with staged_dir(run_dir) as tmp:
        weights = tmp_path(tmp / WEIGHTS)
        try:
            torch.save(state, weights)
            os.replace(weights, tmp / WEIGHTS)
        except BaseException:
            weights.unlink(missing_ok=True)
            raise
        write_json(tmp / "config.json", asdict(cfg))
        write_json(tmp / "history.json", {**history, **(extra or {})})
    return Path(run_dir)


def load_cnn_run(run_dir: str | os.PathLike, device: str = "cpu"
                 ) -> tuple[LatentFactorCNN, CNNConfig, dict]:
    """``(model, cfg, history)`` from a run directory; the model is in eval mode on ``device``.

    The weights are read with ``torch.load(..., weights_only=True)``: a file holding anything but
    tensors and plain containers is refused (``ValueError``) and never unpickled.
    """
    d = Path(run_dir)
    if not (d / WEIGHTS).is_file():
        raise FileNotFoundError(f"{d} is not a CNN run (no {WEIGHTS})")
    cfg = CNNConfig.from_dict(read_json(d / "config.json"))
    dev = resolve_device(device)
    try:
        state = torch.load(d / WEIGHTS, map_location=dev, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ValueError(f"{d / WEIGHTS} holds more than tensors; refusing to load it "
                         f"({str(exc).splitlines()[0]})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{d / WEIGHTS} is not a state_dict of tensors")
    model = LatentFactorCNN(cfg)
    model.load_state_dict(state)
    model.to(dev).eval()
    return model, cfg, read_json(d / "history.json")


def save_predictions(pred: dict, directory: str | os.PathLike) -> Path:
    """Write ``predict_clips`` output as ``.npy`` files in a new directory, sorted by song id."""
    ids = np.asarray(pred["song_ids"])
    if ids.dtype.kind == "U":
        ids = np.char.encode(ids, "ascii")
    if ids.dtype.kind != "S":
        raise TypeError(f"song_ids must be bytes or str, got dtype {ids.dtype}")
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    if len(ids) > 1 and (ids[1:] == ids[:-1]).any():
        raise ValueError("duplicate song ids in the predictions")
    with staged_dir(directory) as tmp:
        save_npy(tmp / "song_ids.npy", ids)
        for name in ("factors", "embeddings", "genre_probs"):
            if pred.get(name) is not None:
                values = np.asarray(pred[name], dtype=np.float32)
                if len(values) != len(ids):
                    raise ValueError(f"{name} has {len(values)} rows for {len(ids)} song ids")
                save_npy(tmp / f"{name}.npy", values[order])
    return Path(directory)


def load_predictions(directory: str | os.PathLike, mmap: bool = False) -> dict:
    """The dict ``save_predictions`` wrote (``genre_probs`` None when absent); never unpickles."""
    d = Path(directory)
    genre = d / "genre_probs.npy"
    return {"song_ids": load_npy(d / "song_ids.npy", mmap=mmap),
            "factors": load_npy(d / "factors.npy", mmap=mmap),
            "embeddings": load_npy(d / "embeddings.npy", mmap=mmap),
            "genre_probs": load_npy(genre, mmap=mmap) if genre.exists() else None}
