"""Acoustic stages over a work directory: ``pmrs train-cnn`` and ``pmrs predict``.

``train-cnn`` trains the CNN on the songs that have both features (``features.lmdb``) and WMF
factors (the latest or a named ``models/wmf/<run>``), with catalog genres as labels where they
exist, and writes ``models/cnn/<run>/``. ``predict`` writes ``models/cnn/<run>/predictions/``:
predicted factors and embeddings for every song with audio, cold-start songs included.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Iterator

import numpy as np

from ..artifacts import new_run_name, replace_dir, resolve_run
from ..audio.store import FEATURES_FILE, FeatureStore
from ..catalog import CATALOG_FILE, Catalog
from ..collaborative.wmf import WMF_DIR, load_run
from .model import CNNConfig
from .runs import CNN_DIR, load_cnn_run, save_cnn_run, save_predictions
from .undertrained import verdict

log = logging.getLogger(__name__)

PREDICTIONS_DIR = "predictions"


class StoreLogMels(Mapping):
    """A read-only mapping song id -> log-mel array backed by the feature store (read on access)."""

    def __init__(self, store: FeatureStore, song_ids: list[str]):
        self._store, self._ids = store, list(song_ids)

    def __getitem__(self, song_id: str) -> np.ndarray:
        return self._store.get_log_mel(song_id)

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)


def genre_labels(catalog_path: Path, song_ids: list[str]) -> tuple[dict[str, int], list[str]]:
    """Integer genre labels for the songs the catalog labels, and the sorted genre names."""
    if not catalog_path.is_file():
        return {}, []
    with Catalog(catalog_path) as cat:
        names = {sid: (meta or {}).get("genre", "") for sid, meta in zip(song_ids, cat.get_many(song_ids))}
    genres = sorted({g for g in names.values() if g})
    index = {g: i for i, g in enumerate(genres)}
    return {sid: index[g] for sid, g in names.items() if g}, genres


def train_cnn_run(workdir: str | Path, cfg: CNNConfig, wmf_run: str | None = None,
                  run: str | None = None, show_progress: bool | None = None) -> Path:
    """Train the CNN to regress the WMF song factors from audio; write ``models/cnn/<run>/``."""
    from .train import train_cnn

    workdir = Path(workdir)
    wmf_dir = resolve_run(workdir / WMF_DIR, wmf_run)
    model_wmf, _, song_ids_b = load_run(wmf_dir)
    wmf_ids = [s.decode() for s in song_ids_b]
    with FeatureStore(workdir / FEATURES_FILE, readonly=True) as store:
        have = set(store.song_ids())
        warm = [i for i, sid in enumerate(wmf_ids) if sid in have]
        if not warm:
            raise ValueError(f"no song has both WMF factors ({wmf_dir}) and audio features; "
                             "run `pmrs extract` on the clips of played songs")
        ids = [wmf_ids[i] for i in warm]
        labels, genres = genre_labels(workdir / CATALOG_FILE, ids)
        log.info("training the CNN on %d warm songs (%d with a genre label, %d genres)",
                 len(ids), len(labels), len(genres))
        t0 = time.perf_counter()
        model, history = train_cnn(StoreLogMels(store, ids),
                                   (ids, np.asarray(model_wmf.song_factors)[warm]),
                                   labels or None, cfg, show_progress=show_progress)
        train_seconds = round(time.perf_counter() - t0, 2)
        val_ids = history.pop("validation_songs")
        cold = cold_weights(workdir, model, store, val_ids, wmf_ids, np.asarray(model_wmf.song_factors))
    judged = verdict(history, genres)
    for part, v in judged.items():
        if v and v["undertrained"]:
            log.warning("the CNN's %s learned from too little: %s", "genre head" if part == "genre_head"
                        else "factor prediction", v["reason"])
    out = workdir / CNN_DIR / (run or new_run_name())
    save_cnn_run(model, None, history, out,
                 extra={"wmf_run": str(wmf_dir), "genres": genres, "feature_store": str(workdir / FEATURES_FILE),
                        "train_seconds": train_seconds, "undertrained": judged, "cold_start": cold})
    log.info("CNN run written to %s", out)
    return out


def cold_weights(workdir: Path, model, store: FeatureStore, validation_ids: list[str], wmf_ids: list[str],
                 wmf_factors: np.ndarray) -> dict:
    """The weights a bundle combines a cold song's vector with (``pmrs.acoustic.cold``), chosen on
    the CNN's validation songs: ``{"weights", "loss", ..., "choices"}``, or ``{"weights": None,
    "why": ...}`` when too few were held out (then cold songs get the CNN's prediction alone)."""
    from .cold import CatalogKnowledge, TooFewSongs, choose_weights
    from .predict import predict_clips

    knowledge = CatalogKnowledge.read(workdir / CATALOG_FILE)
    audio = predict_clips(model, StoreLogMels(store, validation_ids), show_progress=False)["factors"]
    try:
        choices = choose_weights(knowledge, wmf_ids, wmf_factors, validation_ids, audio)
    except TooFewSongs as exc:
        log.warning("%s", exc)
        return {"weights": None, "why": str(exc)}
    best = choices["combined"]
    log.info("cold-start weights on %d validation songs: %s (loss %.3f; audio alone %.3f, the mean %.3f)",
             best["songs"], ", ".join(f"{p} {w:.3g}" for p, w in best["weights"].items()), best["loss"],
             choices["audio_only"]["loss"], best["loss_mean_predictor"])
    return {**best, "choices": {n: {k: v for k, v in c.items() if k != "coverage"} for n, c in choices.items()}}


def predict_run(workdir: str | Path, cnn_run: str | None = None, batch_size: int = 256,
                show_progress: bool | None = None) -> Path:
    """Predict factors and embeddings for every song in the feature store; returns the folder."""
    from .predict import predict_clips

    workdir = Path(workdir)
    run_dir = resolve_run(workdir / CNN_DIR, cnn_run)
    model, _, _ = load_cnn_run(run_dir)
    with FeatureStore(workdir / FEATURES_FILE, readonly=True) as store:
        ids = store.song_ids()
        pred = predict_clips(model, StoreLogMels(store, ids), batch_size=batch_size,
                             show_progress=show_progress)
    out = run_dir / PREDICTIONS_DIR
    staging = run_dir / f".{PREDICTIONS_DIR}.{new_run_name()}"
    save_predictions(pred, staging)
    replace_dir(staging, out)  # a new prediction replaces the old one whole
    log.info("predicted %d songs -> %s", len(ids), out)
    return out
