"""The default shares of the neighbours and metadata sources, chosen on validation through the
served blend (``pmrs train-neighbours``).

The server blends sources by quotas: a source with share ``s`` contributes ``round(s * k)`` songs
of a list of ``k``, the primary (collaborative) source the rest, interleaved by score normalised
within each source's candidate list (``pmrs.serving.recommend``). The share of the neighbours
source is chosen the way the WMF settings are (``pmrs.collaborative.selection.select_settings``): on a validation
split drawn from the training data, the share in ``SHARES`` whose blend of the two play-based
sources (collaborative + neighbours) maximises mAP@500 + recall@50 of the validation users'
held-out songs. The blend is the server's own pick (``pmrs.blend.Interleaver``, all validation
users at once, exactly ``pmrs.blend.pick``'s answer) over the lists it
would search: each source's top ``max(4k, 100)`` candidates after the user's songs are left out
(the neighbours source lists only songs with a non-zero score); mAP@500 is read from the list of
500, recall@50 from the list of 50 (quotas differ with ``k``). When the work directory has a
catalog, the metadata source's share is then chosen the same way given the neighbours share
(``METADATA_SHARES``; its candidates are the songs nearest the mean metadata vector of the
user's songs, cold songs included, as the server finds them), and recorded beside it.

The split is drawn from the whole matrix up to ``max_plays`` plays (about twice the Taste
Profile's), and from a random sample of users holding about that many above it. Not from a
small sample, as ``select_settings`` searches WMF settings: co-occurrences need every listener a
song has, and at the Taste Profile's shape the neighbourhood model of a sample sized for 10
listeners per song scored nearly nothing where the whole matrix's beat WMF on mAP@500
(docs/ARCHITECTURE.md, "The neighbours source"). WMF is fitted there with the WMF run's
settings, the neighbourhood model with the run's, so the choice costs about one fit of each.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp
from tqdm import tqdm

from ..blend import Interleaver, candidate_count, share_quotas
from ..evaluation.metrics import ranking_metrics
from ..evaluation.split import SPLITS, draw_validation, pair_times, split_times, times_matrix
from .neighbours import NeighboursConfig, build_neighbours
from .wmf import WMFConfig, train_wmf

log = logging.getLogger(__name__)

#: Shares of the neighbours source tried (0: collaborative alone, 1: neighbours alone).
SHARES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
#: Shares of the metadata source tried, given the neighbours share chosen (ties: the smaller).
METADATA_SHARES = (0.0, 0.05, 0.1, 0.2, 0.3)


@dataclass(frozen=True)
class ShareConfig:
    """How the share is chosen (``[select]``'s seed and split settings are reused by the caller).

    max_plays: the whole matrix up to this many stored plays; above it, a random sample of users
    holding about this many. validation_users: users whose songs are held out (at most).
    holdout_fraction, min_songs: as ``holdout_split``. split: ``"random"``, or ``"time"`` (each
    validation user's latest songs held out, as ``SelectConfig.split``).
    """

    shares: tuple[float, ...] = SHARES
    metadata_shares: tuple[float, ...] = METADATA_SHARES
    max_plays: int = 100_000_000
    validation_users: int = 1000
    holdout_fraction: float = 0.2
    min_songs: int = 5
    seed: int = 0
    split: str = "random"

    def __post_init__(self) -> None:
        object.__setattr__(self, "shares", tuple(float(s) for s in self.shares))
        object.__setattr__(self, "metadata_shares", tuple(float(s) for s in self.metadata_shares))
        if not self.shares or not all(0.0 <= s <= 1.0 for s in self.shares):
            raise ValueError(f"shares must be in [0, 1], got {self.shares}")
        if not self.metadata_shares or not all(0.0 <= s < 1.0 for s in self.metadata_shares):
            raise ValueError(f"metadata_shares must be in [0, 1), got {self.metadata_shares}")
        if self.max_plays < 1 or self.validation_users < 1:
            raise ValueError("need max_plays >= 1 and validation_users >= 1")
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {self.split!r}")


def _top_excluding(scores: np.ndarray, played: np.ndarray, top: int, nonzero: bool) -> tuple[np.ndarray, np.ndarray]:
    """The ``top`` best songs of one user's dense ``scores``, the user's ``played`` songs left out
    (and, for a neighbours source, songs scored 0: not in its candidate lists); ties: lower row."""
    s = np.asarray(scores, np.float32).copy()
    s[played] = -np.inf
    if nonzero:
        s[s == 0] = -np.inf
    n = min(top, int(np.isfinite(s).sum()))
    if n <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    part = np.argpartition(-s, n - 1)[:n] if n < len(s) else np.arange(len(s))
    order = np.lexsort((part, -s[part]))
    rows = part[order][:n]
    return rows.astype(np.int64), s[rows]


def _metadata_columns(metadata, song_ids: np.ndarray, n_songs: int) -> tuple[np.ndarray, np.ndarray]:
    """``(vectors (n_catalog, d) float32, column of each catalog song)`` of the metadata source:
    a catalog song the play counts name gets its column there; any other (a song nobody played)
    a column past ``n_songs``, which no held-out song can match (it takes a place in a list,
    as it does when served)."""
    ids, vectors = metadata
    ids = np.asarray(ids)
    cols = np.searchsorted(song_ids, ids)
    cols = np.minimum(cols, len(song_ids) - 1)
    known = song_ids[cols] == ids
    out = np.where(known, cols, n_songs + np.arange(len(ids)))
    return np.ascontiguousarray(vectors, np.float32), out.astype(np.int64)


def choose_neighbours_share(counts: sp.csr_matrix, wmf_cfg: WMFConfig | None = None,
                            nb_cfg: NeighboursConfig | Sequence[NeighboursConfig] | None = None,
                            cfg: ShareConfig | None = None,
                            show_progress: bool | None = None, song_ids: np.ndarray | None = None,
                            metadata: tuple[np.ndarray, np.ndarray] | None = None,
                            first_played: np.ndarray | None = None) -> dict:
    """The neighbours source's share (module docstring) for the users x songs play counts
    ``counts``; with ``metadata`` (the metadata source's ``(song_ids, vectors)``, as
    ``pmrs.metadata.catalog_vectors`` makes them, and ``song_ids`` naming the columns of
    ``counts``), then the metadata source's share given that one, through the same blend (its
    candidates: the songs nearest the mean metadata vector of the user's songs, as served).
    ``nb_cfg`` may be several neighbour settings (the finalists of the settings search, one per
    similarity): each gets its table of shares, and the setting and share with the best score
    through the blend are chosen together (ties: the earlier setting). ``first_played``: each
    stored pair's first play, which a ``cfg.split == "time"`` validation split holds out by.
    Returns ``{"share", "metric", "table": [{share, map@500, recall@50, score}],
    "metadata_share", "metadata_table", "validation_users", "sampled_users", "sampled_plays",
    "sampled_songs", "wmf", "neighbours" (the setting chosen), "finalists": [{neighbours, share,
    score}], "seconds"}``."""
    t0 = time.perf_counter()
    cfg = cfg or ShareConfig()
    wmf_cfg = wmf_cfg or WMFConfig()
    nb_cfgs = [nb_cfg] if isinstance(nb_cfg, NeighboursConfig) else list(nb_cfg or []) or [NeighboursConfig()]
    counts = sp.csr_matrix(counts)
    firsts = split_times(cfg.split, first_played)
    firsts = None if firsts is None else times_matrix(counts, firsts)
    rng = np.random.default_rng(cfg.seed)
    n_users = counts.shape[0]
    n_sample = n_users if counts.nnz <= cfg.max_plays else \
        max(2, int(np.ceil(n_users * cfg.max_plays / counts.nnz)))
    sub_songs = np.arange(counts.shape[1])
    if n_users > n_sample:
        sample = np.sort(rng.choice(n_users, n_sample, replace=False))
        sub = counts[sample]
        sub_songs = np.flatnonzero(np.diff(sub.tocsc().indptr) > 0)
        sub = sub[:, sub_songs].tocsr()
        firsts = None if firsts is None else firsts[sample][:, sub_songs].tocsr()
    else:
        sub = counts
    eligible = int((np.diff(sub.indptr) >= max(cfg.min_songs, 2)).sum())
    n_val = min(cfg.validation_users, eligible)
    if n_val < 1:
        raise ValueError("no user has enough songs to draw a validation split from")
    val = draw_validation(sub, n_val, holdout_fraction=cfg.holdout_fraction, min_songs=cfg.min_songs,
                          seed=cfg.seed + 1, first_played=None if firsts is None else pair_times(firsts))
    wmf = train_wmf(val.train, wmf_cfg, show_progress=False)
    nbs = [build_neighbours(val.train, c, show_progress=False) for c in nb_cfgs]
    meta = None
    if metadata is not None and song_ids is not None and len(metadata[0]):
        vectors, meta_cols = _metadata_columns(metadata, np.asarray(song_ids)[sub_songs], sub.shape[1])
        col_to_meta = np.full(sub.shape[1], -1, np.int64)
        inside = meta_cols < sub.shape[1]
        col_to_meta[meta_cols[inside]] = np.flatnonzero(inside)
        meta = (vectors, meta_cols, col_to_meta)
    users = val.test_users[np.diff(val.test.indptr)[val.test_users] > 0]
    train = val.train
    # per k, per user: [wmf list, metadata list (or none), one neighbours list per setting]
    candidates = {500: [], 50: []}
    for u in tqdm(users.tolist(), desc="serving shares", unit="user", disable=not show_progress,
                  leave=False):
        played = train.indices[train.indptr[u]:train.indptr[u + 1]]
        w_scores = wmf.scores(np.asarray([u]))[0]
        n_scores = [nb.scores(train[u])[0] for nb in nbs]
        m_scores = _metadata_scores(meta, played) if meta is not None else None
        for k in (500, 50):
            top = candidate_count(k)
            m_list = None
            if m_scores is not None:
                m_played = meta[2][played]
                rows, sc = _top_excluding(m_scores, m_played[m_played >= 0], top, nonzero=False)
                m_list = (meta[1][rows], sc)
            candidates[k].append([_top_excluding(w_scores, played, top, nonzero=False), m_list,
                                  *[_top_excluding(n, played, top, nonzero=True) for n in n_scores]])

    blends: dict[tuple[int, int, bool], Interleaver] = {}

    def score(shares: tuple[float, ...], which: int = 0) -> dict:
        got = {}
        for k in (500, 50):
            key = (k, which, len(shares) > 2)
            if key not in blends:   # a user without a metadata list blends the other two
                blends[key] = Interleaver([[c[0], c[2 + which]] + ([c[1]] if key[2] and c[1] is not None else [])
                                           for c in candidates[k]], k)
            blend = blends[key]
            n_lists = blend.lists_of
            quota = np.zeros((len(users), blend.n_lists), np.int64)
            for n in np.unique(n_lists).tolist():
                quota[n_lists == n, :n] = share_quotas(shares[:n], k)
            got[k] = blend.pick(quota)
        # a metadata song nobody played sits past the last column: no held-out song matches it
        m500 = ranking_metrics(np.where(got[500] < sub.shape[1], got[500], -1), val.test, users, ks=(500,))["map@500"]
        r50 = ranking_metrics(np.where(got[50] < sub.shape[1], got[50], -1), val.test, users, ks=(50,))["recall@50"]
        return {"map@500": round(m500, 5), "recall@50": round(r50, 5), "score": round(m500 + r50, 5)}

    tables = [[{"share": s, **score((1.0 - s, s), which)} for s in cfg.shares] for which in range(len(nbs))]
    bests = [max(t, key=lambda r: np.nan_to_num(r["score"], nan=-1.0)) for t in tables]  # ties: the smaller share
    which = max(range(len(nbs)), key=lambda j: np.nan_to_num(bests[j]["score"], nan=-1.0))  # ties: the earlier
    table, best, nb_cfg = tables[which], bests[which], nb_cfgs[which]
    out = {"share": best["share"], "metric": "map@500+recall@50", "table": table,
           "finalists": [{"neighbours": asdict(c), "share": b["share"], "score": b["score"]}
                         for c, b in zip(nb_cfgs, bests)]}
    if meta is not None:
        m_table = []
        for m in cfg.metadata_shares:
            n = best["share"] * (1.0 - m)   # served: the play-based share scaled by what m leaves
            m_table.append({"metadata_share": m, "neighbours_share": round(n, 4),
                            **score((1.0 - n - m, n, m), which)})
        m_best = max(m_table, key=lambda t: np.nan_to_num(t["score"], nan=-1.0))
        out.update(metadata_share=m_best["metadata_share"], metadata_table=m_table)
    out.update({"split": cfg.split, "validation_users": int(len(users)), "sampled_users": int(sub.shape[0]), "users": int(n_users),
                "sampled_plays": int(sub.nnz), "plays": int(counts.nnz),
                "sampled_songs": int(sub.shape[1]), "songs": int(counts.shape[1]),
                "wmf": asdict(wmf_cfg), "neighbours": asdict(nb_cfg),
                "seconds": round(time.perf_counter() - t0, 2)})
    log.info("neighbours share %g chosen on %d validation users (mAP@500 %.4f, recall@50 %.4f; %.1f s)%s",
             best["share"], len(users), best["map@500"], best["recall@50"], out["seconds"],
             f"; metadata share {out['metadata_share']:g}" if meta is not None else "")
    return out


def _metadata_scores(meta, played: np.ndarray) -> np.ndarray | None:
    """Inner products of every catalog song's metadata vector with the mean vector of the
    ``played`` columns that have one (the metadata source's query as served); ``None`` when none
    has."""
    vectors, _, col_to_meta = meta
    rows = col_to_meta[played]
    rows = rows[rows >= 0]
    if not rows.size:
        return None
    q = vectors[rows].mean(axis=0, dtype=np.float64).astype(np.float32)
    return vectors @ q
