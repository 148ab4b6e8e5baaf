"""Listening events, resolved to songs, as interactions with time.

Per (user, song): the plays, the first and last play time, the total time played, and the skips.
A listen shorter than ``min_play_seconds`` (30 s by default: the length at which Last.fm and
Spotify count a stream) or flagged skipped by its source counts as a skip, not a play; a pair
with skips and no play is kept only in the skips. Counts are summed in int64 and stored capped
(``pmrs.interactions.capped_counts``).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from ..interactions import Interactions, capped_counts
from .resolve import NAMING, CatalogIndex, Resolution, resolve

#: A listen shorter than this is a skip (seconds; Last.fm scrobbles at 30 s, Spotify counts a stream at 30 s).
MIN_PLAY_SECONDS = 30.0


def to_interactions(table: pa.Table, index: CatalogIndex,
                    min_play_seconds: float = MIN_PLAY_SECONDS) -> tuple[Interactions, Resolution]:
    """Interactions from a :data:`~pmrs.ingest.listens.LISTEN_SCHEMA` table whose songs are
    resolved against ``index`` (:mod:`pmrs.ingest.resolve`; songs it creates are added to it),
    and how they were resolved. All in Arrow's group-bys: the listens are first reduced per
    (user, naming), the distinct namings resolved once each, then reduced per (user, song)."""
    one = pc.fill_null(table["count"], 1)
    short = pc.and_(pc.is_valid(table["ms_played"]), pc.less(table["ms_played"], int(min_play_seconds * 1000)))
    skipped = pc.or_(pc.fill_null(table["skipped"], False), pc.fill_null(short, False))
    zero = pa.scalar(0, pa.int64())
    # the time and duration of plays only (a skip says nothing of when the song was listened to)
    cols = {"user": table["user"],
            **{c: pc.fill_null(table[c], "") for c in NAMING},
            "plays": pc.if_else(skipped, zero, one), "skips": pc.if_else(skipped, one, zero),
            "ts": pc.if_else(skipped, pa.scalar(None, table["ts"].type), table["ts"]),
            "ms": pc.if_else(skipped, pa.scalar(None, pa.int64()), table["ms_played"]),
            "events": pa.array(np.ones(table.num_rows, np.int64))}
    t = pa.table(cols)
    per_naming = t.group_by(["user", *NAMING]).aggregate(
        [("plays", "sum"), ("skips", "sum"), ("ts", "min"), ("ts", "max"), ("ms", "sum"), ("events", "sum")])
    namings = per_naming.group_by(list(NAMING)).aggregate([("events_sum", "sum")])
    ids, resolution = resolve(namings, index, namings["events_sum_sum"].to_numpy(zero_copy_only=False))
    keyed = namings.select(list(NAMING)).append_column("sid", pa.array(ids, pa.string()))
    joined = per_naming.join(keyed, keys=list(NAMING), join_type="inner")
    joined = joined.filter(pc.is_valid(joined["sid"]))
    g = joined.group_by(["user", "sid"]).aggregate(
        [("plays_sum", "sum"), ("skips_sum", "sum"), ("ts_min", "min"), ("ts_max", "max"), ("ms_sum", "sum")])
    users = np.sort(pc.unique(g["user"]).to_numpy(zero_copy_only=False).astype(str))
    songs = np.sort(pc.unique(g["sid"]).to_numpy(zero_copy_only=False).astype(str))
    rows = pc.index_in(g["user"], value_set=pa.array(users)).to_numpy(zero_copy_only=False).astype(np.int64)
    cols_ = pc.index_in(g["sid"], value_set=pa.array(songs)).to_numpy(zero_copy_only=False).astype(np.int64)
    plays = g["plays_sum_sum"].to_numpy(zero_copy_only=False).astype(np.int64)
    skips = g["skips_sum_sum"].to_numpy(zero_copy_only=False).astype(np.int64)
    first, last = _epoch(g["ts_min_min"]), _epoch(g["ts_max_max"])
    played_ms = pc.fill_null(g["ms_sum_sum"], -1).to_numpy(zero_copy_only=False).astype(np.int64)
    shape = (len(users), len(songs))
    has = plays > 0
    order = np.lexsort((cols_[has], rows[has]))
    matrix = sp.csr_matrix((capped_counts(plays[has][order]), (rows[has][order], cols_[has][order])), shape=shape)
    matrix.sort_indices()
    time = {"first_played": first[has][order], "last_played": last[has][order], "played_ms": played_ms[has][order]}
    sk = skips > 0
    skip_matrix = sp.csr_matrix((capped_counts(skips[sk]), (rows[sk], cols_[sk])), shape=shape)
    return Interactions(matrix, _ids(users), _ids(songs), time=time, skips=skip_matrix), resolution


def _epoch(col) -> np.ndarray:
    """Epoch seconds of a timestamp column, 0 where null."""
    return pc.fill_null(pc.cast(col, pa.timestamp("s", tz="UTC")).cast(pa.int64()), 0) \
        .to_numpy(zero_copy_only=False).astype(np.int64)


def _ids(values: np.ndarray) -> np.ndarray:
    width = max(1, max((len(v.encode()) for v in values), default=1))
    return np.array([v.encode() for v in values], dtype=f"S{width}")


def combine(parts: list[Interactions]) -> Interactions:
    """Several inputs' interactions as one over the union of their ids: counts added (in int64,
    capped), first play the earliest known, last play the latest, time played summed where
    known, skips added. A part without time contributes unknown times."""
    parts = [p for p in parts if p is not None]
    if len(parts) == 1:
        return parts[0]
    users = np.unique(np.concatenate([p.user_ids.astype(object).astype(str) for p in parts]))
    songs = np.unique(np.concatenate([p.song_ids.astype(object).astype(str) for p in parts]))
    U, S = _ids(users), _ids(songs)
    rows, cols, vals, firsts, lasts, mss, srows, scols, svals = ([] for _ in range(9))
    for p in parts:
        urow = np.searchsorted(U, p.user_ids.astype(U.dtype))
        scol = np.searchsorted(S, p.song_ids.astype(S.dtype))
        m = p.matrix.tocoo()
        rows.append(urow[m.row])
        cols.append(scol[m.col])
        vals.append(m.data.astype(np.int64))
        # (coo from a canonical csr keeps the data order, so time arrays stay aligned)
        t = p.time or {"first_played": np.zeros(m.nnz, np.int64), "last_played": np.zeros(m.nnz, np.int64),
                       "played_ms": np.full(m.nnz, -1, np.int64)}
        firsts.append(np.where(t["first_played"] > 0, t["first_played"], np.iinfo(np.int64).max))
        lasts.append(t["last_played"])
        mss.append(t["played_ms"])
        if p.skips is not None:
            s = p.skips.tocoo()
            srows.append(urow[s.row])
            scols.append(scol[s.col])
            svals.append(s.data.astype(np.int64))
    r, c = np.concatenate(rows), np.concatenate(cols)
    key = r * len(S) + c
    uniq, inv = np.unique(key, return_inverse=True)
    counts = np.bincount(inv, weights=np.concatenate(vals).astype(np.float64)).astype(np.int64)
    first = np.full(len(uniq), np.iinfo(np.int64).max, np.int64)
    np.minimum.at(first, inv, np.concatenate(firsts))
    first[first == np.iinfo(np.int64).max] = 0
    last = np.zeros(len(uniq), np.int64)
    np.maximum.at(last, inv, np.concatenate(lasts))
    ms_all = np.concatenate(mss)
    known = np.zeros(len(uniq), bool)
    np.logical_or.at(known, inv, ms_all >= 0)
    ms = np.bincount(inv, weights=np.where(ms_all >= 0, ms_all, 0).astype(np.float64)).astype(np.int64)
    ms[~known] = -1
    rr, cc = uniq // len(S), uniq % len(S)
    matrix = sp.csr_matrix((capped_counts(counts), (rr, cc)), shape=(len(U), len(S)))
    matrix.sort_indices()
    has_time = any(p.time is not None for p in parts)
    time = {"first_played": first, "last_played": last, "played_ms": ms} if has_time else None
    skips = None
    if srows:
        skips = sp.csr_matrix((capped_counts(np.concatenate(svals)), (np.concatenate(srows), np.concatenate(scols))),
                              shape=(len(U), len(S)))
        skips.sum_duplicates()
    return Interactions(matrix, U, S, time=time, skips=skips)

