"""Item-to-item neighbourhood model: song similarities from co-occurrence, top-K kept sparse.

Two similarities, both built so that popularity does not swamp them:

- ``asymmetric-cosine`` (Aiolli, the Million Song Dataset Challenge winner): for a song ``i`` a
  user played and a candidate ``j``, ``s(i, j) = n_ij / (n_j^alpha * n_i^(1 - alpha))`` where
  ``n_ij`` counts the users who played both and ``n_i`` those who played ``i``. ``alpha = 0.5`` is
  the cosine; a small ``alpha`` is close to P(j | i). ``locality`` q raises every similarity to
  the power q, so that a few strong neighbours outweigh many weak ones.
- ``bm25``: songs as documents over users, BM25-weighted as in ``implicit``'s
  ``BM25Recommender`` (``k1``, ``b``; users who played many songs count less), similarity the
  inner product of the weighted song rows.
- ``ease``: EASE's weights (Steck 2019, :mod:`pmrs.collaborative.ease`, regularization
  ``ease_lambda``), ``s(i, j) = B_ij``, the weight of a played song ``i`` in candidate ``j``'s
  score; only positive weights are kept. It needs one dense song x song matrix while it is built,
  so it is for catalogs whose matrix fits ``ease.MAX_GIB`` (the settings search skips it above).

Each song keeps its ``neighbours`` best candidates: a ``(n_songs, n_songs)`` float32 CSR matrix
``S`` whose row ``i`` holds ``s(i, .)``. A user's scores are the sum of the rows of the songs they
played (``played @ S``); a song's similar songs are its row.

A run lives in ``models/neighbours/<run>/``: ``indptr.npy``, ``indices.npy``, ``data.npy`` (the
CSR arrays of ``S``), ``song_ids.npy`` naming its rows and columns, ``config.json`` (the
effective settings; with ``serving_share``, the share of a serving blend chosen on validation,
``pmrs.collaborative.share``) and ``train_log.json``.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from tqdm import tqdm

from ..artifacts import load_npy, read_json, save_npy, staged_dir, write_json
from .ease import DEFAULT_LAMBDA, fit_ease

log = logging.getLogger(__name__)

NEIGHBOURS_DIR = Path("models") / "neighbours"
SIMILARITIES = ("asymmetric-cosine", "bm25", "ease")


@dataclass(frozen=True)
class NeighboursConfig:
    """Settings of the neighbourhood model (``[neighbours]`` in a TOML config)."""

    similarity: str = "asymmetric-cosine"
    alpha: float = 0.5       # asymmetric cosine: exponent of the candidate's user count
    locality: float = 1.0    # q: similarities raised to this power
    neighbours: int = 100    # K: candidates kept per song
    bm25_k1: float = 1.2
    bm25_b: float = 0.75
    ease_lambda: float = DEFAULT_LAMBDA
    block_songs: int = 4096  # songs whose co-occurrence rows are computed at once (memory bound)
    threads: int = 0         # blocks computed at once, one per thread (0: every usable core)

    def __post_init__(self) -> None:
        if self.similarity not in SIMILARITIES:
            raise ValueError(f"similarity must be one of {', '.join(SIMILARITIES)}; got {self.similarity!r}")
        if not 0.0 <= self.alpha <= 1.0 or self.locality <= 0:
            raise ValueError("need alpha in [0, 1] and locality > 0")
        if self.neighbours < 1 or self.block_songs < 1:
            raise ValueError("neighbours and block_songs must be at least 1")
        if self.threads < 0:
            raise ValueError("threads must be 0 (every usable core) or more")
        if not self.ease_lambda > 0:
            raise ValueError("ease_lambda must be positive")


def _song_vectors(counts: sp.csr_matrix, cfg: NeighboursConfig) -> sp.csr_matrix:
    """Songs x users float32 CSR: binary for the cosine, BM25-weighted for ``bm25``."""
    items = sp.csr_matrix(counts.T, dtype=np.float32)
    items.sum_duplicates()
    if cfg.similarity != "bm25":
        items.data[:] = 1.0
        return items
    # As implicit's bm25_weight applied to the songs x users matrix: a user's idf is
    # log(n_songs) - log(1 + songs they played), and a song's length is its total plays.
    songs_per_user = np.bincount(items.indices, minlength=counts.shape[0])
    idf = np.log(items.shape[0]) - np.log1p(songs_per_user)
    row_sums = np.asarray(items.sum(axis=1)).ravel()
    length_norm = (1.0 - cfg.bm25_b) + cfg.bm25_b * row_sums / max(row_sums.mean(), 1e-12)
    rows = np.repeat(np.arange(items.shape[0]), np.diff(items.indptr))
    x = items.data
    items.data = (x * (cfg.bm25_k1 + 1.0) / (cfg.bm25_k1 * length_norm[rows] + x)
                  * idf[items.indices]).astype(np.float32)
    return items


def _top_per_row(block: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """The ``k`` largest stored values of each row of a CSR matrix without duplicate entries, as
    CSR with sorted columns; among equal values at the cut, the lower columns are kept.

    One ``np.partition`` per row longer than ``k`` finds its k-th largest value: at the full
    Taste Profile shape a block of 4,096 songs holds about 43 million co-occurrences, and a
    lexicographic sort of all of them took 15 s of the block's 17 (docs/ARCHITECTURE.md)."""
    n_rows = block.shape[0]
    indptr, data, indices = block.indptr, block.data, block.indices
    keep = np.ones(data.size, dtype=bool)
    lengths = np.diff(indptr)
    for r in np.flatnonzero(lengths > k):
        lo, hi = int(indptr[r]), int(indptr[r + 1])
        d = data[lo:hi]
        kth = np.partition(d, d.size - k)[d.size - k]
        above = d > kth
        ties = np.flatnonzero(d == kth)
        need = k - int(np.count_nonzero(above))
        if need < ties.size:  # keep the ties with the lowest columns
            ties = ties[np.argsort(indices[lo:hi][ties], kind="stable")[:need]]
        above[ties] = True
        keep[lo:hi] = above
    new_indptr = np.zeros(n_rows + 1, dtype=np.int64)
    rows = np.repeat(np.arange(n_rows), lengths)
    np.cumsum(np.bincount(rows[keep], minlength=n_rows), out=new_indptr[1:])
    out = sp.csr_matrix((data[keep], indices[keep], new_indptr), shape=block.shape)
    out.sort_indices()
    return out


@dataclass
class NeighboursModel:
    """Top-K song-to-song similarities ``S``, ``(n_songs, n_songs)`` float32 CSR, rows = played song."""

    similarity: sp.csr_matrix
    config: NeighboursConfig = field(default_factory=NeighboursConfig)
    log: dict = field(default_factory=dict)

    def scores(self, played: sp.csr_matrix) -> np.ndarray:
        """Dense scores ``(n, n_songs)`` float32 of users given their played songs ``(n, n_songs)``
        (any stored value counts as one play: binary)."""
        played = sp.csr_matrix(played, dtype=np.float32, copy=True)
        played.data[:] = 1.0
        return (played @ self.similarity).toarray().astype(np.float32, copy=False)

    def recommend(self, played_songs: np.ndarray, k: int,
                  exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best songs for a user who played ``played_songs`` (song indices), skipping
        them and ``exclude``; songs with no similarity to any of them are never listed.
        Returns ``(song_indices, scores)``, best first."""
        played_songs = np.unique(np.asarray(played_songs, dtype=np.int64))
        rows = self.similarity[played_songs]
        row = sp.csr_matrix(np.asarray(rows.sum(axis=0)).ravel()[None, :])
        skip = played_songs if exclude is None else np.union1d(played_songs, exclude)
        return _top_of_row(row, k, skip)

    def similar_songs(self, song_row: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The song's ``k`` nearest neighbours (itself excluded): ``(song_indices, scores)``."""
        return _top_of_row(self.similarity[int(song_row)], k, np.array([song_row]))


def _top_of_row(row: sp.csr_matrix, k: int, skip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    row = sp.csr_matrix(row)
    row.eliminate_zeros()
    idx, val = row.indices.astype(np.int64), row.data.astype(np.float32)
    keep = ~np.isin(idx, skip)
    idx, val = idx[keep], val[keep]
    order = np.lexsort((idx, -val))[:k]
    return idx[order], val[order]


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def build_neighbours(counts: sp.csr_matrix, cfg: NeighboursConfig,
                     show_progress: bool | None = None) -> NeighboursModel:
    """Similarities from a users x songs play-count matrix (one progress bar over song blocks).

    Blocks of ``cfg.block_songs`` songs are computed by ``cfg.threads`` threads at once: scipy's
    sparse product and numpy's partition release the GIL, so threads share the matrices instead
    of copying them into processes."""
    if show_progress is None:
        show_progress = sys.stderr.isatty()
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    if cfg.similarity == "ease":
        return _ease_neighbours(counts, cfg, t0, cpu0)
    items = _song_vectors(sp.csr_matrix(counts), cfg)
    n_songs = items.shape[0]
    users_per_song = np.diff(items.indptr).astype(np.float64)
    with np.errstate(divide="ignore"):  # a song nobody played has no co-occurrences to scale
        candidate_scale = users_per_song ** -cfg.alpha
        played_scale = users_per_song ** -(1.0 - cfg.alpha)
    items_t = items.T.tocsr()

    def one_block(lo: int) -> sp.csr_matrix:
        hi = min(lo + cfg.block_songs, n_songs)
        block = (items[lo:hi] @ items_t).tocsr()  # (block, n_songs) co-occurrence or BM25 dots
        block.setdiag(0.0, k=lo)
        block.eliminate_zeros()
        if cfg.similarity == "asymmetric-cosine":
            rows = np.repeat(played_scale[lo:hi], np.diff(block.indptr))
            block.data = (block.data * candidate_scale[block.indices] * rows).astype(np.float32)
        if cfg.locality != 1.0:
            block.data = (block.data ** cfg.locality).astype(np.float32)
        return _top_per_row(block, cfg.neighbours)

    starts = range(0, n_songs, cfg.block_songs)
    threads = max(1, min(cfg.threads or _usable_cores(), len(starts)))
    with ThreadPoolExecutor(max_workers=threads) as pool:
        blocks = list(tqdm(pool.map(one_block, starts), total=len(starts), desc="neighbours",
                           unit="block", disable=not show_progress, leave=False))
    sim = sp.vstack(blocks, format="csr") if blocks else sp.csr_matrix((n_songs, n_songs), dtype=np.float32)
    sim = sp.csr_matrix(sim, dtype=np.float32)
    seconds = time.perf_counter() - t0
    log.info("neighbours: %d songs, %d similarities kept (%s), %.2fs on %d threads", n_songs, sim.nnz,
             cfg.similarity, seconds, threads)
    return NeighboursModel(similarity=sim, config=cfg,
                           log={"build_seconds": round(seconds, 3), "build_cpu_seconds":
                                round(time.process_time() - cpu0, 3), "threads": threads,
                                "stored": int(sim.nnz)})


def _ease_neighbours(counts: sp.csr_matrix, cfg: NeighboursConfig, t0: float, cpu0: float) -> NeighboursModel:
    """The ``ease`` similarity: EASE's positive weights, the top ``cfg.neighbours`` of each row
    (raised to ``cfg.locality``), made sparse block by block from the dense weights."""
    weights = fit_ease(counts, cfg.ease_lambda)
    n_songs = weights.shape[0]
    blocks = []
    for lo in range(0, n_songs, cfg.block_songs):
        dense = weights[lo:lo + cfg.block_songs]
        block = sp.csr_matrix(np.where(dense > 0, dense, 0.0).astype(np.float32))
        if cfg.locality != 1.0:
            block.data = (block.data ** cfg.locality).astype(np.float32)
        blocks.append(_top_per_row(block, cfg.neighbours))
    del weights
    sim = sp.csr_matrix(sp.vstack(blocks, format="csr") if blocks else sp.csr_matrix((n_songs, n_songs)),
                        dtype=np.float32)
    seconds = time.perf_counter() - t0
    log.info("neighbours: %d songs, %d EASE weights kept (lambda %g), %.2fs", n_songs, sim.nnz, cfg.ease_lambda,
             seconds)
    return NeighboursModel(similarity=sim, config=cfg,
                           log={"build_seconds": round(seconds, 3), "build_cpu_seconds":
                                round(time.process_time() - cpu0, 3), "threads": 1, "stored": int(sim.nnz)})


def save_run(model: NeighboursModel, run_dir: str | os.PathLike, song_ids: np.ndarray,
             extra: dict | None = None) -> Path:
    """Write a run directory atomically (assembled under a temporary name, then renamed)."""
    s = model.similarity
    with staged_dir(run_dir) as tmp:
        save_npy(tmp / "indptr.npy", s.indptr.astype(np.int64))
        save_npy(tmp / "indices.npy", s.indices.astype(np.int32))
        save_npy(tmp / "data.npy", s.data.astype(np.float32))
        save_npy(tmp / "song_ids.npy", song_ids)
        recorded = {key: extra[key] for key in ("selection", "serving_share") if extra and key in extra}
        write_json(tmp / "config.json", {**asdict(model.config), **recorded})
        write_json(tmp / "train_log.json", {**model.log, **(extra or {})})
    return Path(run_dir)


def load_run(run_dir: str | os.PathLike) -> tuple[NeighboursModel, np.ndarray]:
    """Load ``(model, song_ids)`` from a run directory (never unpickles); ``model.similarity`` is
    the sparse neighbour matrix, rows and columns named by ``song_ids``."""
    d = Path(run_dir)
    song_ids = load_npy(d / "song_ids.npy")
    n = len(song_ids)
    sim = sp.csr_matrix((load_npy(d / "data.npy"), load_npy(d / "indices.npy"), load_npy(d / "indptr.npy")),
                        shape=(n, n))
    names = {f.name for f in fields(NeighboursConfig)}
    cfg = NeighboursConfig(**{k: v for k, v in read_json(d / "config.json").items() if k in names})
    return (NeighboursModel(similarity=sim, config=cfg,
                            log=read_json(d / "train_log.json")), song_ids)
