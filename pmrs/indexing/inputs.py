"""What a bundle is built from: a WMF run, a CNN run's predictions (or injected vectors), sorted
id arrays and the rows of ids in the song universe."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..acoustic.runs import CNN_DIR, load_predictions
from ..acoustic.stages import PREDICTIONS_DIR
from ..artifacts import list_runs, read_json, resolve_run



def sorted_order(ids: np.ndarray, what: str) -> np.ndarray | None:
    """``None`` when ``ids`` is sorted and unique, else the order that sorts it (duplicates: error)."""
    ids = np.asarray(ids)
    if ids.dtype.kind != "S":
        raise TypeError(f"{what}: ids must be fixed-width bytes, got dtype {ids.dtype}")
    if len(ids) < 2 or bool((ids[1:] > ids[:-1]).all()):
        return None
    order = np.argsort(ids, kind="stable")
    s = ids[order]
    if bool((s[1:] == s[:-1]).any()):
        raise ValueError(f"{what}: duplicate ids")
    return order


def rows_of(universe: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Rows of ``ids`` in the sorted ``universe``; every id must be there."""
    rows = np.searchsorted(universe, ids)
    ok = rows < len(universe)
    ok[ok] = universe[rows[ok]] == np.asarray(ids)[ok]
    if not ok.all():
        raise ValueError(f"{int((~ok).sum())} ids missing from the song universe")
    return rows


def resolve_cnn_run(workdir: Path, cnn_run: str | None) -> Path | None:
    parent = workdir / CNN_DIR
    if cnn_run:
        return resolve_run(parent, cnn_run)
    runs = list_runs(parent)
    return runs[-1] if runs else None


def cnn_inputs(cnn_dir: Path, wmf_dir: Path, k: int) -> dict:
    pred_dir = cnn_dir / PREDICTIONS_DIR
    if not (pred_dir / "song_ids.npy").is_file():
        raise FileNotFoundError(f"CNN run {cnn_dir} has no predictions; run `pmrs predict "
                                f"--cnn-run {cnn_dir.name}` first")
    history = read_json(cnn_dir / "history.json") if (cnn_dir / "history.json").is_file() else {}
    trained_on = history.get("wmf_run")
    if trained_on and Path(trained_on).name != wmf_dir.name:
        raise ValueError(
            f"CNN run {cnn_dir.name} predicts the factors of WMF run {Path(trained_on).name}, but the "
            f"bundle's WMF run is {wmf_dir.name}; their latent spaces differ. Pass --wmf-run "
            f"{Path(trained_on).name}, or retrain the CNN on {wmf_dir.name} (`pmrs train-cnn`, `pmrs predict`)")
    pred = dict(load_predictions(pred_dir))
    pred["genres"] = list(history.get("genres") or [])
    pred["source"] = str(cnn_dir)
    if pred["factors"].shape[1] != k:
        raise ValueError(f"CNN predictions have {pred['factors'].shape[1]} factors, the WMF run {k}")
    return pred


def unit_rows(a: np.ndarray) -> np.ndarray:
    """``(n, e)`` float32 rows scaled to unit length (zero rows stay zero): MMR's embeddings."""
    a = np.asarray(a, dtype=np.float32)
    norms = np.linalg.norm(a, axis=1, keepdims=True)
    return np.where(norms > 0, a / np.where(norms > 0, norms, 1), 0).astype(np.float32)
