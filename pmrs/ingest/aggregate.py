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
    and how they were resolved.

    Strings are handled once per distinct value: each naming column is dictionary-encoded, the
    codes of a row are folded into one naming number, each distinct naming is resolved once (its
    first row's values), and the rows are then reduced per (user, song) by an Arrow group-by on
    integer codes. Memory stays a few integer columns per listen."""
    n = table.num_rows
    one = pc.fill_null(table["count"], 1)
    short = pc.and_(pc.is_valid(table["ms_played"]), pc.less(table["ms_played"], int(min_play_seconds * 1000)))
    skipped = _np(pc.or_(pc.fill_null(table["skipped"], False), pc.fill_null(short, False)), bool)
    counts = _np(one, np.int64)
    naming = _naming_numbers([table[c] for c in NAMING], n)
    distinct, first_row, inverse = np.unique(naming, return_index=True, return_inverse=True)
    namings = table.select(list(NAMING)).take(pa.array(first_row))
    events = np.bincount(inverse, weights=counts.astype(np.float64), minlength=len(distinct)).astype(np.int64)
    ids, resolution = resolve(namings, index, events)
    del naming, distinct, first_row
    known = np.asarray([i is not None for i in ids], bool)
    songs = np.sort(np.unique(np.asarray([i for i in ids if i is not None], dtype=object).astype(str))) \
        if known.any() else np.zeros(0, str)
    song_of_naming = np.full(len(ids), -1, np.int64)
    if known.any():
        song_of_naming[known] = np.searchsorted(songs, np.asarray(ids[known], dtype=object).astype(str))
    song = song_of_naming[inverse]
    del inverse
    user_codes = pc.dictionary_encode(table["user"]).combine_chunks()
    users_dict = user_codes.dictionary.to_numpy(zero_copy_only=False).astype(str)
    user_order = np.argsort(users_dict)
    user_rank = np.empty_like(user_order)
    user_rank[user_order] = np.arange(len(user_order))
    user = user_rank[_np(user_codes.indices, np.int64)]
    keep = song >= 0
    ts = _np(pc.fill_null(pc.cast(table["ts"], pa.timestamp("s", tz="UTC")).cast(pa.int64()), 0), np.int64)
    ms_valid = _np(pc.is_valid(table["ms_played"]), bool)
    ms = _np(pc.fill_null(table["ms_played"], 0), np.int64)
    # the time and duration of plays only (a skip says nothing of when the song was heard)
    ts = np.where(skipped, 0, ts)
    ms_valid &= ~skipped
    plays = np.where(skipped, 0, counts)
    skips = np.where(skipped, counts, 0)
    users = users_dict[user_order]
    n_songs = max(len(songs), 1)
    key = (user * n_songs + song)[keep]
    order = np.argsort(key, kind="stable")
    key = key[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else np.zeros(0, np.int64)
    rows, cols_ = key[starts] // n_songs, key[starts] % n_songs   # sorted by (user, song): CSR order

    def reduce(values, op):
        return op.reduceat(values[keep][order], starts) if len(starts) else np.zeros(0, values.dtype)

    plays, skips = reduce(plays, np.add), reduce(skips, np.add)
    big = np.iinfo(np.int64).max
    first = reduce(np.where(ts > 0, ts, big), np.minimum)
    first[first == big] = 0
    last = reduce(ts, np.maximum)
    played_ms = reduce(ms * ms_valid, np.add)
    played_ms[~reduce(ms_valid, np.logical_or)] = -1
    shape = (len(users), len(songs))
    has = plays > 0
    matrix = sp.csr_matrix((capped_counts(plays[has]), (rows[has], cols_[has])), shape=shape)
    time = {"first_played": first[has], "last_played": last[has], "played_ms": played_ms[has]}
    sk = skips > 0
    skip_matrix = sp.csr_matrix((capped_counts(skips[sk]), (rows[sk], cols_[sk])), shape=shape)
    return Interactions(matrix, _ids(users), _ids(songs), time=time, skips=skip_matrix), resolution


def _np(col, dtype) -> np.ndarray:
    """An Arrow column (no nulls) as a numpy array of ``dtype``."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    return col.to_numpy(zero_copy_only=False).astype(dtype, copy=False)


def _naming_numbers(columns: list, n: int) -> np.ndarray:
    """One int64 per row that is equal for two rows exactly when all their ``columns`` (strings,
    nulls allowed) are: each column's dictionary codes folded in, re-numbered densely whenever the
    next fold could overflow."""
    key = np.zeros(n, np.int64)
    span = 1
    for col in columns:
        if col.null_count == len(col):   # (an absent column: every row the same)
            continue
        enc = pc.dictionary_encode(col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col)
        codes = _np(pc.fill_null(enc.indices, -1), np.int64) + 1
        width = len(enc.dictionary) + 1
        if span * width >= 2 ** 62:
            _, key = np.unique(key, return_inverse=True)
            span = int(key.max()) + 1 if n else 1
        key = key * width + codes
        span *= width
    return key


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

