"""``LiveView``: a bundle with the live writes on top, for the blend to read.

It answers every question ``pmrs.serving.recommend`` asks of a bundle (rows, vectors, searches,
catalog fields, fold-in), merging the bundle's answer with the live tables: changed and new
users get rows after the bundle's (``n_users + i``) with their recomputed vectors and whole
histories; added songs get rows after the bundle's songs, and each source's search is the
bundle's FAISS search merged with an exact search over the added songs' vectors there (a few
thousand at most between rebuilds: one small matrix product). Anything else is the bundle's.
A view is taken per call: the song table it reads is the one current when it was made.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from ..serving.bundle import SONG_FIELDS
from ..serving.contract import USER_QUERIES
from ..serving.view import Forwarding


class LiveView(Forwarding):
    """A :class:`~pmrs.serving.view.SongSpace`: the bundle's, with live users and songs."""

    #: The members live writes do not change: the bundle's own (``tests/test_song_space.py``
    #: holds every other member of ``SongSpace`` to an answer of this class).
    BUNDLE_OWN = frozenset({"version", "sources", "source_names", "defaults", "genres", "genre_warning",
                            "acoustic_warning",
                            "stand_in_sources",
                            "has_source", "search_each",
                            "search_songs", "similarity"})   # (a neighbours source learns no live songs
                                                              # before a rebuild)

    def __init__(self, bundle, state):
        super().__init__(bundle)
        self._b = bundle
        self._state = state
        self._songs = state.songs
        self._users = state.users
        self._user_list = state.user_list

    # -- users --------------------------------------------------------------------------------

    @property
    def n_users(self) -> int:
        return self._b.n_users + len(self._user_list)

    def user_row(self, user_id: str | bytes) -> int | None:
        uid = user_id.decode() if isinstance(user_id, bytes) else user_id
        u = self._users.get(uid)
        if u is not None:
            return u.row
        return self._b.user_row(user_id)

    def _live_user(self, row: int):
        n = self._b.n_users
        return self._user_list[int(row) - n] if int(row) >= n else None

    def user_vector(self, row: int) -> np.ndarray:
        u = self._live_user(row)
        return u.vector if u is not None else self._b.user_vector(row)

    def played(self, user_row: int) -> np.ndarray:
        u = self._live_user(user_row)
        return u.played if u is not None else self._b.played(user_row)

    def play_counts(self, user_row: int) -> np.ndarray:
        u = self._live_user(user_row)
        return u.counts.astype(np.float32) if u is not None else self._b.play_counts(user_row)

    # -- songs --------------------------------------------------------------------------------

    @property
    def n_songs(self) -> int:
        return self._b.n_songs + len(self._songs)

    def song_row(self, song_id: str | bytes) -> int | None:
        r = self._b.song_row(song_id)
        if r is not None:
            return r
        return self._songs.row(song_id.decode() if isinstance(song_id, bytes) else song_id)

    def song_rows(self, song_ids: Iterable[str | bytes]) -> np.ndarray:
        ids = list(song_ids)
        rows = np.asarray(self._b.song_rows(ids), np.int64)
        for i in np.flatnonzero(rows < 0):
            r = self.song_row(ids[i])
            rows[i] = -1 if r is None else r
        return rows

    def song_id(self, row: int) -> str:
        n = self._b.n_songs
        return self._b.song_id(row) if int(row) < n else self._songs.ids[int(row) - n]

    def songs(self, rows: Sequence[int] | np.ndarray, copy: bool = True) -> list[dict]:
        keys = np.asarray(rows, np.int64).reshape(-1)
        n = self._b.n_songs
        if keys.size and keys.max() < n:
            return self._b.songs(keys, copy)
        old = keys[keys < n]
        found = dict(zip(old.tolist(), self._b.songs(old, copy))) if old.size else {}
        out = []
        for r in keys.tolist():
            if r < n:
                out.append(found[r])
            else:
                if r - n >= len(self._songs):
                    raise IndexError(f"song rows must be in [0, {self.n_songs}), got {r}")
                d = self._songs.catalog[r - n]
                out.append({"song_id": d["song_id"], **{f: d.get(f, v) for f, v in SONG_FIELDS.items()}})
        return out

    def tags(self, row: int) -> list[str]:
        n = self._b.n_songs
        return list(self._songs.catalog[int(row) - n].get("tags") or []) if int(row) >= n else []

    def song_tags(self, song_row: int) -> dict[str, float]:
        """The bundle's catalog tags of a bundle song; an added song's own tags, each at full
        weight (100), as ingest will store them."""
        if int(song_row) < self._b.n_songs:
            return self._b.song_tags(song_row)
        return {t: 100.0 for t in self.tags(song_row)}

    # -- vectors ------------------------------------------------------------------------------

    def source_size(self, name: str) -> int:
        live = self._songs.vectors.get(name)
        return int(self._b.source_size(name)) + (len(live[0]) if live else 0)

    def _live_pos(self, name: str, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        live = self._songs.vectors.get(name)
        if not live or not len(live[0]):
            return np.full(len(rows), -1, np.int64), None
        lrows, mat = live
        pos = np.minimum(np.searchsorted(lrows, rows), len(lrows) - 1)
        return np.where(lrows[pos] == rows, pos, -1), mat

    def covers(self, name: str, song_rows) -> np.ndarray:
        rows = np.asarray(song_rows, np.int64).reshape(-1)
        old = rows < self._b.n_songs
        out = np.zeros(len(rows), bool)
        if old.any():
            out[old] = self._b.covers(name, rows[old])
        if (~old).any():   # an added song: a vector of its own (never a row of neighbours)
            out[~old] = self._live_pos(name, rows[~old])[0] >= 0
        return out

    def song_vector(self, name: str, song_row: int) -> np.ndarray | None:
        if int(song_row) < self._b.n_songs:
            return self._b.song_vector(name, song_row)
        pos, mat = self._live_pos(name, np.asarray([int(song_row)], np.int64))
        return None if pos[0] < 0 else mat[pos[0]].copy()

    def song_sources(self, song_row: int) -> list[str]:
        if int(song_row) < self._b.n_songs:
            return self._b.song_sources(song_row)
        return [n for n in self._b.source_names if self.song_vector(n, song_row) is not None]

    def song_vectors(self, name: str, song_rows) -> tuple[np.ndarray, np.ndarray]:
        rows = np.asarray(song_rows, np.int64).reshape(-1)
        n = self._b.n_songs
        old = rows < n
        if old.all():
            return self._b.song_vectors(name, rows)
        have = np.zeros(len(rows), bool)
        bh, bv = self._b.song_vectors(name, rows[old])
        have[np.flatnonzero(old)[bh]] = True
        lpos, mat = self._live_pos(name, rows[~old])
        have[np.flatnonzero(~old)[lpos >= 0]] = True
        d = bv.shape[1] if bv.ndim == 2 and bv.shape[1] else (mat.shape[1] if mat is not None else 0)
        out = np.zeros((int(have.sum()), d), np.float32)
        # vectors in the order of the rows that have one
        order_old = np.flatnonzero(old)[bh]
        order_new = np.flatnonzero(~old)[lpos >= 0]
        where = {int(i): j for j, i in enumerate(np.flatnonzero(have))}
        for i, v in zip(order_old.tolist(), bv):
            out[where[i]] = v
        if mat is not None:
            for i, p in zip(order_new.tolist(), lpos[lpos >= 0].tolist()):
                out[where[i]] = mat[p]
        return have, out

    def profile(self, name: str, song_rows) -> np.ndarray | None:
        have, vectors = self.song_vectors(name, song_rows)
        if not len(vectors):
            return None
        return vectors.mean(axis=0, dtype=np.float64).astype(np.float32)

    def embedding(self, song_rows) -> np.ndarray:
        rows = np.asarray(song_rows, np.int64).reshape(-1)
        n = self._b.n_songs
        old = rows < n
        out = np.zeros((len(rows), self._b.embedding_dim), np.float32)
        if old.any():
            out[old] = self._b.embedding(rows[old])
        if (~old).any() and self._songs.embeddings is not None:
            out[~old] = self._songs.embeddings[rows[~old] - n]
        return out

    def genre_probs(self, song_row: int) -> np.ndarray | None:
        n = self._b.n_songs
        if int(song_row) < n:
            return self._b.genre_probs(song_row)
        return self._songs.genre_probs[int(song_row) - n]

    def genre_probs_many(self, song_rows) -> tuple[np.ndarray, np.ndarray]:
        rows = np.asarray(song_rows, np.int64).reshape(-1)
        n = self._b.n_songs
        if not (rows >= n).any():
            return self._b.genre_probs_many(rows)
        probs = [self.genre_probs(r) for r in rows.tolist()]
        have = np.asarray([p is not None for p in probs], bool)
        g = len(self._b.genres)
        mat = np.asarray([p for p in probs if p is not None], np.float32).reshape(-1, g)
        return have, mat

    # -- search and fold-in ----------------------------------------------------------------------

    def search(self, name: str, queries: np.ndarray, top: int, kind: str = USER_QUERIES
               ) -> tuple[np.ndarray, np.ndarray]:
        live = self._songs.vectors.get(name)
        has = self._b.has_source(name)
        if not live or not len(live[0]):
            return self._b.search(name, queries, top, kind)
        q = np.atleast_2d(np.asarray(queries, np.float32))
        top = int(top)
        lrows, mat = live
        ls = q @ mat.T
        if has and self._b.source_size(name) > 0:
            bs, br = self._b.search(name, q, min(top, self._b.source_size(name)), kind)
            scores = np.concatenate([bs, ls], axis=1)
            rows = np.concatenate([br, np.broadcast_to(lrows, ls.shape)], axis=1)
        else:
            scores, rows = ls, np.broadcast_to(lrows, ls.shape).copy()
        scores = np.where(rows >= 0, scores, -np.inf)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :top]
        s = np.take_along_axis(scores, order, axis=1).astype(np.float32)
        r = np.take_along_axis(rows, order, axis=1).astype(np.int64)
        if r.shape[1] < top:
            pad = top - r.shape[1]
            s = np.pad(s, ((0, 0), (0, pad)), constant_values=-np.inf)
            r = np.pad(r, ((0, 0), (0, pad)), constant_values=-1)
        r[~np.isfinite(s)] = -1
        return s, r

    def fold_in_terms(self, target, song_rows, counts=None, extra=None):
        if extra is None:
            extra = self._songs.stand_ins(self._b.stand_in_sources)
        return self._b.fold_in_terms(target, song_rows, counts, extra=extra)

    def fold_in(self, song_rows, counts=None, extra=None) -> np.ndarray:
        if extra is None:
            extra = self._songs.stand_ins(self._b.stand_in_sources)
        return self._b.fold_in(song_rows, counts, extra=extra)
