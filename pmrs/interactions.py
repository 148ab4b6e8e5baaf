"""The users x songs play-count matrix and its id lists, as stored in the work directory.

On disk (``<workdir>/interactions/``): ``indptr.npy``, ``indices.npy``, ``counts.npy`` (the CSR
arrays), ``user_ids.npy`` and ``song_ids.npy`` (fixed-width UTF-8 bytes, sorted, so an id maps to
its row by binary search on a memory-mapped array with no dictionary to build), and
``ingest_report.json``. Where the input had time (listening events, live plays), ``time.npz``
holds, aligned with ``counts.npy`` (one value per stored pair): ``first_played`` and
``last_played`` (epoch seconds, UTC; 0 when unknown) and ``played_ms`` (total time played, -1
when unknown); and ``skips.npz`` a users x songs CSR of skips (plays shorter than the skip
threshold or flagged skipped: they are not plays, and a pair may have skips and no plays).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .artifacts import load_npy, save_npy, save_npz

SONG_IDS_FILE = "song_ids.npy"
TIME_FILE = "time.npz"
SKIPS_FILE = "skips.npz"
#: What ``time.npz`` holds per stored pair.
TIME_FIELDS = ("first_played", "last_played", "played_ms")
INTERACTIONS_DIR = "interactions"
#: What ingest read and found, in the interactions directory (the files read, the counts).
INGEST_REPORT_FILE = "ingest_report.json"
#: Largest stored play count of a (user, song) pair (int32 storage). Wherever counts are added
#: (duplicate lines, logged live plays) they are summed in int64 and capped here: a sum never wraps.
MAX_COUNT = 2**31 - 1


def capped_counts(values) -> np.ndarray:
    """Play counts summed in a wider type, as stored: int32, capped at :data:`MAX_COUNT`."""
    return np.minimum(np.asarray(values, np.int64), MAX_COUNT).astype(np.int32)


@dataclass
class Interactions:
    """Play counts and the ids of their rows and columns.

    matrix: ``(n_users, n_songs)`` CSR, int32 play counts, sorted indices, no duplicates.
    user_ids, song_ids: sorted ``S`` (bytes) arrays naming the rows and columns.
    """

    matrix: sp.csr_matrix
    user_ids: np.ndarray
    song_ids: np.ndarray
    #: per stored pair (aligned with ``matrix.data``): first and last play (epoch s, 0 unknown),
    #: total ms played (-1 unknown); ``None`` when the input had no time
    time: dict[str, np.ndarray] | None = field(default=None, repr=False)
    #: skips per (user, song), same shape as ``matrix``; ``None`` when the input says nothing of skips
    skips: sp.csr_matrix | None = field(default=None, repr=False)

    @property
    def has_time(self) -> bool:
        return self.time is not None and bool(np.any(self.time["last_played"] > 0))

    @property
    def n_users(self) -> int:
        return self.matrix.shape[0]

    @property
    def n_songs(self) -> int:
        return self.matrix.shape[1]

    def user_index(self, user_id: str) -> int:
        """Row of ``user_id``; ``KeyError`` when unknown."""
        return lookup(self.user_ids, user_id)

    def song_index(self, song_id: str) -> int:
        """Column of ``song_id``; ``KeyError`` when unknown."""
        return lookup(self.song_ids, song_id)

    def save(self, directory: str | os.PathLike) -> None:
        d = Path(directory)
        m = self.matrix
        save_npy(d / "indptr.npy", m.indptr.astype(np.int64, copy=False))
        save_npy(d / "indices.npy", m.indices.astype(np.int32, copy=False))
        save_npy(d / "counts.npy", m.data.astype(np.int32, copy=False))
        save_npy(d / "user_ids.npy", self.user_ids)
        save_npy(d / SONG_IDS_FILE, self.song_ids)
        for name in (TIME_FILE, SKIPS_FILE):
            (d / name).unlink(missing_ok=True)
        if self.time is not None:
            save_npz(d / TIME_FILE, {k: np.asarray(self.time[k], np.int64) for k in TIME_FIELDS})
        if self.skips is not None and self.skips.nnz:
            s = sp.csr_matrix(self.skips)
            save_npz(d / SKIPS_FILE, {"indptr": s.indptr.astype(np.int64), "indices": s.indices.astype(np.int32),
                                      "counts": s.data.astype(np.int32)})

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "Interactions":
        d = Path(directory)
        if not (d / "indptr.npy").exists():
            raise FileNotFoundError(f"no interactions in {d}; run `pmrs ingest DATA_DIR` first")
        user_ids = load_npy(d / "user_ids.npy")
        song_ids = load_npy(d / SONG_IDS_FILE)
        matrix = sp.csr_matrix(
            (load_npy(d / "counts.npy"), load_npy(d / "indices.npy"), load_npy(d / "indptr.npy")),
            shape=(len(user_ids), len(song_ids)),
        )
        time = skips = None
        if (d / TIME_FILE).is_file():
            with np.load(d / TIME_FILE, allow_pickle=False) as z:
                time = {k: z[k] for k in TIME_FIELDS}
        if (d / SKIPS_FILE).is_file():
            with np.load(d / SKIPS_FILE, allow_pickle=False) as z:
                skips = sp.csr_matrix((z["counts"], z["indices"], z["indptr"]), shape=matrix.shape)
        return cls(matrix=matrix, user_ids=user_ids, song_ids=song_ids, time=time, skips=skips)


def played_song_ids(directory: str | os.PathLike) -> np.ndarray | None:
    """The sorted song ids of the interactions in ``directory`` (memory-mapped, no matrix loaded):
    every song somebody played, whether or not the catalog has a row for it. ``None`` when the
    directory holds no interactions."""
    path = Path(directory) / SONG_IDS_FILE
    return np.load(path, mmap_mode="r", allow_pickle=False) if path.is_file() else None


def find(sorted_ids: np.ndarray, key: str | bytes) -> int:
    """Index of ``key`` in a sorted bytes id array, -1 when absent (one id: a few microseconds)."""
    k = key.encode() if isinstance(key, str) else bytes(key)
    # a key longer than the array's width cannot be present, and searching for it would make
    # numpy cast the whole array to the wider type (130 ms for a million ids)
    if not len(sorted_ids) or len(k) > sorted_ids.dtype.itemsize:
        return -1
    i = int(sorted_ids.searchsorted(np.asarray(k, dtype=sorted_ids.dtype)))
    return i if i < len(sorted_ids) and sorted_ids[i] == k else -1


def lookup(sorted_ids: np.ndarray, key: str | bytes) -> int:
    """Index of ``key`` in a sorted bytes id array; ``KeyError`` when absent."""
    i = find(sorted_ids, key)
    if i < 0:
        raise KeyError(key if isinstance(key, str) else bytes(key).decode(errors="replace"))
    return i


def lookup_many(sorted_ids: np.ndarray, keys) -> np.ndarray:
    """Indices of many ids at once, -1 where absent."""
    raw = [x.encode() if isinstance(x, str) else bytes(x) for x in keys]
    out = np.full(len(raw), -1, dtype=np.int64)
    if not len(sorted_ids) or not raw:
        return out
    width = sorted_ids.dtype.itemsize
    fits = np.array([len(x) <= width for x in raw])  # longer keys cannot be present
    k = np.asarray(raw, dtype=sorted_ids.dtype)
    i = np.minimum(np.searchsorted(sorted_ids, k), len(sorted_ids) - 1)
    found = fits & (sorted_ids[i] == k)
    out[found] = i[found]
    return out


def decode_ids(ids: np.ndarray) -> list[str]:
    return [x.decode() for x in ids]
