"""The bundle reader: ``Bundle.open(path)`` over what ``indexer build`` wrote (docs/SERVING.md).

A bundle up to ``IN_MEMORY_MAX_MB`` is read into memory; a larger one is memory-mapped
(``np.load(mmap_mode="r", allow_pickle=False)``, FAISS's ``IO_FLAG_MMAP_IFC``: the vectors stay in
the page cache, shared between server processes). Id lookups are binary searches on the sorted id
arrays, so nothing is built per user or per song. Every array is validated at open
(:meth:`Bundle.validate`: a damaged bundle is refused, not served); checksums are verified when
asked (``verify=True``; the server asks). Both read every byte once.

Thread safety: every method may be called from many threads at once. FAISS searches on a shared
index are read-only; the search parameters (``nprobe``, ``efSearch``) are set once at open. Each
``search`` call makes FAISS's OpenMP thread count *in the calling thread* ``threads`` (default 1:
a server gets its parallelism from concurrent requests, and nested OpenMP teams on a few cores
only contend), setting it on a thread's first search only; ``threads=None`` leaves OpenMP as the
process configured it. The Gram matrix
``Y^T Y`` that ``fold_in`` needs is computed once, on first use, under a lock.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import faiss
import numpy as np

from ..artifacts import sha256_file
from ..catalog import Catalog
from ..interactions import find, lookup_many
from ..collaborative.wmf import WMFConfig
from . import contract as C
from .foldin import FoldIn

log = logging.getLogger(__name__)

#: Catalog fields ``songs`` returns, with their value when unknown (the proto's conventions).
SONG_FIELDS = {"title": "", "artist": "", "release": "", "year": 0, "genre": ""}
# OpenMP thread count this module last set in each thread: setting it is a FAISS call that
# releases the GIL, which costs a thread hand-off in a busy server, so it is set once per thread
_omp = threading.local()
#: Songs whose catalog entries a bundle keeps in memory (emptied when full).
SONG_CACHE_SIZE = 65_536
#: Queries per FAISS call in ``search_each``. Measured on the full-shape metadata index (many
#: equal vectors; IVF2480, nprobe 104, 300 sampled users of two blocks of 4,096): batches of
#: 128 to 1,536 queries gave every user the one-query answer, batches of 2,048 and 4,096 gave 4
#: and 9 of 300 users a different choice among equal-scored songs.
SEARCH_EACH_BATCH = 1024


def _load(path: Path, mmap: bool) -> np.ndarray:
    # a plain ndarray view of the memory map: np.memmap's subclass hooks cost microseconds on
    # every slice, and a Recommend slices dozens of times (the map lives as long as the view)
    try:
        return np.asarray(np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False))
    except FileNotFoundError:
        raise C.ContractError(f"bundle {path.parent.name}: {path.name} is missing") from None
    except (ValueError, OSError, EOFError) as exc:
        raise C.ContractError(f"bundle {path.parent.name}: {path.name} is not a readable .npy file "
                              f"({exc})") from None


def _read_index(path: Path, mmap: bool) -> faiss.Index:
    if not path.is_file():
        raise C.ContractError(f"bundle {path.parent.name}: {path.name} is missing")
    try:
        if mmap:
            try:
                return faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC)
            except RuntimeError:  # an index type the memory-mapped reader does not cover
                pass
        return faiss.read_index(str(path))
    except RuntimeError as exc:
        raise C.ContractError(f"bundle {path.parent.name}: {path.name} is not a readable FAISS index "
                              f"({str(exc).splitlines()[0][:200]})") from None


#: Bundles whose files add up to at most this many MiB are read into memory; larger ones are
#: memory-mapped (docs/SERVING.md, "Damaged bundles": a memory-mapped file truncated while it is
#: served kills the process with SIGBUS, a copy cannot be damaged).
IN_MEMORY_MAX_MB = 1024


class _VectorIndex:
    """One FAISS index, the vectors it indexes and the song rows of its ids (positions)."""

    def __init__(self, name: str, entry: dict, index: faiss.Index, rows: np.ndarray, vectors: np.ndarray):
        self.name, self.entry, self.index = name, entry, index
        self.rows, self.vectors = rows, vectors
        self.identity = _is_identity(rows)
        self.augmented = entry.get("transform", "none") == "l2_augmented"
        # FAISS's scores are exact inner products only from an uncompressed IP index (Flat,
        # IVF-Flat, no pre-transform); otherwise candidates are re-scored from the stored vectors
        plain = isinstance(faiss.downcast_index(index), (faiss.IndexFlat, faiss.IndexIVFFlat))
        self.rescore = self.augmented or not plain or index.metric_type != faiss.METRIC_INNER_PRODUCT
        if entry.get("transform", "none") not in ("none", "l2_augmented"):
            raise ValueError(f"{name} index: unknown transform {entry.get('transform')!r}")
        d = vectors.shape[1] if vectors.ndim == 2 else 0
        if index.ntotal != len(rows) or len(vectors) != len(rows):
            raise ValueError(f"{name} index: {index.ntotal} vectors in the index, {len(rows)} rows, "
                             f"{len(vectors)} stored vectors")
        if index.d != d + (1 if self.augmented else 0):
            raise ValueError(f"{name} index has dimension {index.d} for {d}-d vectors")
        params = entry.get("search_params") or {}
        if params:
            ps = faiss.ParameterSpace()
            for key, value in params.items():
                ps.set_index_parameter(index, key, value)
        # a kind of query that reached the recall target with a smaller parameter searches with it
        self.params_by_kind = {kind: p for kind, own in (entry.get("search_params_by_queries") or {}).items()
                               if (p := _search_parameters(index, own)) is not None}

    def position(self, song_rows: np.ndarray) -> np.ndarray:
        """Position (FAISS id) of each song row, -1 where the row has no vector here."""
        return _positions(self.rows, song_rows, self.identity)

    def search(self, queries: np.ndarray, top: int, kind: str = C.USER_QUERIES) -> tuple[np.ndarray, np.ndarray]:
        n = len(queries)
        k = min(top, int(self.index.ntotal))
        if k <= 0 or n == 0:
            return np.full((n, top), -np.inf, dtype=np.float32), np.full((n, top), -1, dtype=np.int64)
        q = queries
        if self.augmented:
            q = np.zeros((n, queries.shape[1] + 1), dtype=np.float32)
            q[:, :-1] = queries
        dist, ids = self._searched(q, k, kind)
        if n == 1:
            return self._one(queries[0], dist[0], ids[0], top)
        missing = ids < 0
        if self.rescore:
            # exact inner products from the stored vectors (float32 products of k-d vectors)
            dist = np.matmul(self.vectors[np.where(missing, 0, ids)], queries[:, :, None])[:, :, 0]
            dist[missing] = -np.inf
            order = np.argsort(-dist, axis=1, kind="stable")
            dist, ids = np.take_along_axis(dist, order, 1), np.take_along_axis(ids, order, 1)
            missing = ids < 0
        rows = self.rows[np.where(missing, 0, ids)].astype(np.int64)
        if missing.any():
            rows[missing], dist[missing] = -1, -np.inf
        if k < top:
            pad = ((0, 0), (0, top - k))
            dist = np.pad(dist, pad, constant_values=-np.inf)
            rows = np.pad(rows, pad, constant_values=-1)
        return dist, rows

    def search_each(self, queries: np.ndarray, top: int, kind: str = C.USER_QUERIES
                    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``search(queries[i:i + 1], top)`` for each query in turn, from one batched FAISS call.

        Equal to the one-query calls, not only close: FAISS's batch search runs the same
        per-query kernels once BLAS is kept out of its distance computations (the threshold is
        raised for the call; it is process-wide, so this is for batch jobs, not a server) and
        the batch holds at most ``SEARCH_EACH_BATCH`` queries (above it, FAISS 1.15 broke ties
        among equal vectors differently from a one-query search)."""
        n, k = len(queries), min(top, int(self.index.ntotal))
        if k <= 0:
            for i in range(n):
                yield self.search(queries[i:i + 1], top, kind)
            return
        for lo in range(0, n, SEARCH_EACH_BATCH):
            part = queries[lo:lo + SEARCH_EACH_BATCH]
            q = part
            if self.augmented:
                q = np.zeros((len(part), part.shape[1] + 1), dtype=np.float32)
                q[:, :-1] = part
            saved = faiss.cvar.distance_compute_blas_threshold
            faiss.cvar.distance_compute_blas_threshold = max(saved, len(part) + 1)
            try:
                dist, ids = self._searched(q, k, kind)
            finally:
                faiss.cvar.distance_compute_blas_threshold = saved
            for i in range(len(part)):
                yield self._one(part[i], dist[i], ids[i], top)

    def _searched(self, q: np.ndarray, k: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
        """FAISS's search of ``q`` with ``kind``'s own parameters where the build recorded some.
        A query the probed lists leave short of ``k`` results (a long or widened list needs more
        songs than a few lists hold) is searched again with the index's own parameters, then, for
        an IVF index, with twice the lists each time up to all of them: a search returns ``k``
        songs whenever the index holds them. Row by row, so a batch gives what one-query searches
        give."""
        params = self.params_by_kind.get(kind)
        dist, ids = self.index.search(q, k, params=params)
        short = np.flatnonzero((ids < 0).any(axis=1))
        if not short.size:
            return dist, ids
        ivf = faiss.downcast_index(self.index)
        ivf = ivf if isinstance(ivf, faiss.IndexIVF) else None   # (per-call nprobe: a bare IVF only)
        probes = [None] if params is not None else []
        if ivf is not None:
            n = max(int(ivf.nprobe), 1) * 2
            while n < ivf.nlist:
                probes.append(n)
                n *= 2
            probes.append(int(ivf.nlist))
        for nprobe in probes:
            more = None if nprobe is None else faiss.SearchParametersIVF(nprobe=nprobe)
            dist[short], ids[short] = self.index.search(q[short], k, params=more)
            short = short[(ids[short] < 0).any(axis=1)]
            if not short.size:
                break
        return dist, ids

    def _one(self, query: np.ndarray, dist: np.ndarray, ids: np.ndarray, top: int
             ) -> tuple[np.ndarray, np.ndarray]:
        """``search`` for one query (a Recommend's case), in fewer numpy calls."""
        found = ids >= 0
        if not found.all():
            dist, ids = dist[found], ids[found]
        if self.rescore:
            dist = self.vectors[ids] @ query
            order = np.argsort(-dist, kind="stable")
            dist, ids = dist[order], ids[order]
        if len(ids) == top:  # (the usual case: nothing to pad)
            return dist[None, :], self.rows[ids].astype(np.int64)[None, :]
        scores = np.full((1, top), -np.inf, dtype=np.float32)
        rows = np.full((1, top), -1, dtype=np.int64)
        scores[0, :len(ids)] = dist
        rows[0, :len(ids)] = self.rows[ids]
        return scores, rows


#: Entries per catalog song above which a listener's rows are summed densely (``_NeighbourMatrix``).
DENSE_SUMS = 0.05


def _padded(rows: np.ndarray, scores: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
    """One query's ``(scores (1, top) float32, rows (1, top) int64)``, padded with -inf / -1."""
    out_s = np.full((1, top), -np.inf, dtype=np.float32)
    out_r = np.full((1, top), -1, dtype=np.int64)
    out_s[0, :len(rows)] = scores
    out_r[0, :len(rows)] = rows
    return out_s, out_r


def _search_parameters(index: faiss.Index, params: dict):
    """FAISS's per-call search parameters for ``params`` (``{"nprobe": 8}`` for an IVF index,
    ``{"efSearch": 64}`` for HNSW); ``None`` for other indexes or parameters (the index's own
    settings then apply). Passed with each search, they leave the shared index untouched, so
    concurrent calls may each use their own."""
    inner = faiss.downcast_index(index)
    if isinstance(inner, faiss.IndexIVF) and set(params) == {"nprobe"}:
        return faiss.SearchParametersIVF(nprobe=int(params["nprobe"]))
    if isinstance(inner, faiss.IndexHNSW) and set(params) == {"efSearch"}:
        return faiss.SearchParametersHNSW(efSearch=int(params["efSearch"]))
    return None


def _is_identity(rows: np.ndarray) -> bool:
    """Whether the ascending, unique song ``rows`` of a source are ``0 .. n-1`` (the source holds
    every song of the bundle: each row's position is the row itself)."""
    return bool(len(rows)) and int(rows[0]) == 0 and int(rows[-1]) == len(rows) - 1


def _positions(rows: np.ndarray, song_rows: np.ndarray, identity: bool = False) -> np.ndarray:
    """Position of each of ``song_rows`` in the ascending ``rows``, -1 where it is not there
    (``identity``: ``rows`` is ``0 .. n-1``, :func:`_is_identity`, so no search is needed)."""
    song_rows = np.asarray(song_rows, dtype=np.int64).reshape(-1)
    if identity:
        if not song_rows.size or (song_rows.min() >= 0 and song_rows.max() < len(rows)):
            return song_rows.copy()
        return np.where((song_rows >= 0) & (song_rows < len(rows)), song_rows, -1)
    if not len(rows):
        return np.full(len(song_rows), -1, np.int64)
    # searched in the rows' own dtype (int32): a wider key makes numpy cast all the rows on
    # every call (30 us on 384,546 songs); clipping keeps keys out of range from wrapping
    keys = np.clip(song_rows, -1, np.iinfo(rows.dtype).max).astype(rows.dtype)
    pos = np.minimum(np.searchsorted(rows, keys), len(rows) - 1)
    return np.where(rows[pos] == song_rows, pos, -1).astype(np.int64)


class _NeighbourMatrix:
    """A ``neighbours``-kind source: the CSR arrays of its song x song similarity matrix ``S``
    (``contract.neighbour_files``) and the song rows that have a (non-empty) row in it."""

    def __init__(self, name: str, entry: dict, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray,
                 n_songs: int):
        self.name, self.entry = name, entry
        self.indptr, self.indices, self.data = indptr, indices, data
        if indptr.ndim != 1 or len(indptr) != n_songs + 1 or indices.ndim != 1 or data.shape != indices.shape:
            raise ValueError(f"{name}: a CSR of {len(indptr) - 1} rows with {indices.shape} indices and "
                             f"{data.shape} values for {n_songs} songs")
        lengths = np.diff(indptr)
        self.rows = np.flatnonzero(lengths > 0).astype(np.int32)   # songs with neighbours, ascending
        self.identity = _is_identity(self.rows)
        self.width = int(lengths.max(initial=0))                   # the most neighbours of a song
        self.n_songs = n_songs

    def position(self, song_rows: np.ndarray) -> np.ndarray:
        return _positions(self.rows, song_rows, self.identity)

    def scores(self, song_rows: np.ndarray, top: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(rows int64, scores float32)``: the ``top`` (``None``: all) best songs in the rows
        of ``S`` of ``song_rows`` (unique song rows: a listener's songs, or one song), scored
        with the sum of their similarities there (``pmrs.collaborative.neighbours``'s ``played @ S``, summed
        in float64 in the rows' order), best first; ties: the lower row first.

        A listener with many songs gathers many entries: above ``DENSE_SUMS`` entries per song
        of the catalog they are summed into one catalog-long array instead of sorted first
        (the same additions in the same order, so the same sums), and only the entries that can
        be among the ``top`` are sorted."""
        songs = np.asarray(song_rows, dtype=np.int64).reshape(-1)
        starts = self.indptr[songs].astype(np.int64)
        lengths = self.indptr[songs + 1].astype(np.int64) - starts
        total = int(lengths.sum())
        if total == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        if len(songs) == 1:   # (SimilarSongs: one stored row, already sorted and unique)
            s0 = int(starts[0])
            cols = np.asarray(self.indices[s0:s0 + total], np.int64)
            sums = np.asarray(self.data[s0:s0 + total], np.float32)
        else:
            ends = np.cumsum(lengths)
            entries = np.repeat(starts - ends + lengths, lengths) + np.arange(total)
            if total > DENSE_SUMS * self.n_songs:
                dense = np.bincount(self.indices[entries], weights=self.data[entries], minlength=self.n_songs)
                cols = np.flatnonzero(dense)
                sums = dense[cols].astype(np.float32)
            else:
                cols, inv = np.unique(np.asarray(self.indices[entries]), return_inverse=True)
                sums = np.bincount(inv, weights=self.data[entries], minlength=len(cols)).astype(np.float32)
                cols = cols.astype(np.int64)
        keep = sums != 0
        if not keep.all():
            cols, sums = cols[keep], sums[keep]
        if top is not None and 0 < top < len(sums) // 4:
            # every song scored at least the top-th best score (ties included), in row order
            kth = np.partition(sums, len(sums) - top)[len(sums) - top]
            keep = sums >= kth
            cols, sums = cols[keep], sums[keep]
        order = np.argsort(-sums, kind="stable")   # cols ascending: ties keep the lower row first
        if top is not None:
            order = order[:top]
        return cols[order], sums[order]


@dataclass(frozen=True)
class DefaultLists:
    """Answers to a default request computed at build time (``indexer build``, docs/SERVING.md
    "Default lists"): for ``recommend``, every known user's Recommend with this ``k``, these
    ``shares`` (of the non-primary sources, as ``contract.resolve_shares`` takes them) and
    ``diversity``, no filters and played songs excluded (row ``u``: user ``u``); for ``similar``,
    every song's mixed SimilarSongs with these settings and no filters (row ``r``: song row
    ``r``). Each row is a list, best first, padded with song row -1."""

    k: int
    shares: dict
    diversity: float
    rows: np.ndarray     # int32 song rows
    scores: np.ndarray   # float32
    sources: np.ndarray  # uint8 (int8 in format 1) source masks: bit i is the bundle's i-th source
    quotas: dict         # songs each source contributes to a list (``contract.quotas``)


@dataclass(frozen=True)
class SourceSpec:
    """One source of a bundle as its manifest describes it (docs/DESIGN.md, "Sources")."""

    name: str
    bit: int             # 1 << its position: the source's bit in list entries' masks
    space: str           # "wmf": queried with user factors; else with the mean of played songs' vectors
    covers_cold: bool    # has vectors for songs nobody played
    index: dict          # the index entry: spec, search_params, recall_at_10, ...
    kind: str = C.VECTORS  # contract.SOURCE_KINDS: vectors + FAISS, or sparse neighbours


class Bundle:
    """A read-only, memory-mapped bundle. Open with :meth:`open`; close with :meth:`close` (or a
    ``with`` block). Song rows index ``song_ids``; user rows index ``user_ids``."""

    def __init__(self, path: Path, manifest: dict, threads: int | None, in_memory: bool = False):
        self.path = path
        self.manifest = manifest
        self.threads = threads
        self.in_memory = in_memory
        self._mmap = not in_memory
        self.version: str = manifest["version"]
        self.format_version: int = int(manifest["format_version"])
        self.song_ids: np.ndarray = _load(path / C.SONG_IDS_FILE, self._mmap)
        self.user_ids: np.ndarray = _load(path / C.USER_IDS_FILE, self._mmap)
        self.user_factors: np.ndarray = _load(path / C.USER_FACTORS_FILE, self._mmap)
        self.played_indptr: np.ndarray = _load(path / C.PLAYED_INDPTR_FILE, self._mmap)
        self.played_indices: np.ndarray = _load(path / C.PLAYED_INDICES_FILE, self._mmap)
        self.played_counts: np.ndarray | None = (_load(path / C.PLAYED_COUNTS_FILE, self._mmap)
                                                 if (path / C.PLAYED_COUNTS_FILE).is_file() else None)
        self.genres: list[str] = list(manifest.get("genres") or [])
        self.genre_warning: str = genre_warning(manifest)
        self.acoustic_warning: str = acoustic_warning(manifest)
        self.defaults = C.Defaults.from_manifest(manifest.get("defaults"))
        self.sources: dict[str, SourceSpec] = {}
        self._indexes: dict[str, _VectorIndex] = {}
        self._neighbours: dict[str, _NeighbourMatrix] = {}   # neighbours-kind sources
        self.lists: dict[str, DefaultLists] = {}   # default lists by kind (contract.LIST_KINDS)
        self._embeddings = self._genre_probs = None
        self._extras_source: str | None = None     # the source whose rows the two above follow
        self._catalog: Catalog | None = None
        self._song_cache: dict[int, dict] = {}
        self._fold: FoldIn | None = None
        self._gram_lock = threading.Lock()
        self._wmf = WMFConfig(**{k: v for k, v in manifest["wmf_config"].items()
                                 if k in WMFConfig.__dataclass_fields__})

    # -- opening ----------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike, verify: bool = False, threads: int | None = 1,
             validate: bool = True, in_memory: bool | None = None) -> "Bundle":
        """Open the bundle at ``path``: its arrays, the FAISS indexes, the catalog.

        verify: check every file's sha256 against the manifest first (reads every byte).
        threads: FAISS OpenMP threads per ``search`` call, set in the calling thread; ``None``
            leaves the process's setting alone.
        validate: check what the arrays hold (:meth:`validate`: shapes, dtypes, finite values,
            sorted ids, rows in range; reads every array once).
        in_memory: read the arrays and indexes into memory instead of memory-mapping them;
            ``None``: when the bundle's files add up to at most ``IN_MEMORY_MAX_MB``.
        Raises ``FileNotFoundError`` (no bundle there) or ``ValueError`` (``ContractError``: a
        format version this code does not read, a checksum mismatch, a missing, unreadable or
        inconsistent file), with a message naming the bundle and the file.
        """
        path = Path(path)
        mf = path / C.MANIFEST_FILE
        if not mf.is_file():
            raise FileNotFoundError(f"{path} is not a bundle (no {C.MANIFEST_FILE}); run `indexer build`")
        try:
            raw = json.loads(mf.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise C.ContractError(f"bundle {path}: {C.MANIFEST_FILE} is not valid JSON ({exc})") from None
        manifest = C.upgrade_manifest(raw)
        if verify:
            cls.verify_checksums(path, manifest)
        if in_memory is None:
            size = sum(p.stat().st_size for p in path.iterdir() if p.is_file())
            in_memory = size <= IN_MEMORY_MAX_MB * 2**20
        bundle = cls(path, manifest, threads, in_memory)
        try:
            bundle._open_rest()
            if validate:
                bundle.validate()
        except BaseException:
            bundle.close()
            raise
        return bundle

    def _open_rest(self) -> None:
        path, m = self.path, self.manifest
        n_songs, n_users = len(self.song_ids), len(self.user_ids)
        counts = m.get("counts", {})
        if counts.get("songs", n_songs) != n_songs or counts.get("users", n_users) != n_users:
            raise ValueError(f"bundle {path}: manifest counts disagree with the id arrays")
        if len(self.user_factors) != n_users or len(self.played_indptr) != n_users + 1:
            raise ValueError(f"bundle {path}: user arrays disagree on the number of users")
        for i, (name, src) in enumerate(m["sources"].items()):
            files = src["files"]
            kind = src.get("kind", C.VECTORS)
            if kind == C.SPARSE_NEIGHBOURS:
                self._neighbours[name] = _NeighbourMatrix(
                    name, src, *(_load(path / files[part], self._mmap) for part in ("indptr", "indices", "data")),
                    n_songs=n_songs)
            else:
                self._indexes[name] = _VectorIndex(name, src["index"],
                                                   _read_index(path / files["index"], self._mmap),
                                                   _load(path / files["rows"], self._mmap),
                                                   _load(path / files["vectors"], self._mmap))
            self.sources[name] = SourceSpec(name, 1 << i, str(src.get("space", C.WMF_SPACE)),
                                            bool(src.get("covers_cold")), dict(src.get("index") or {}), kind)
            if src.get("embeddings") and self._embeddings is None:
                self._embeddings = _load(path / src["embeddings"], self._mmap)
                self._extras_source = name
                probs = src.get("genre_probs")
                if probs and (path / probs).is_file():
                    self._genre_probs = _load(path / probs, self._mmap)
        if self._indexes[C.COLLABORATIVE].vectors.shape[1] != self.factors:
            raise ValueError(f"bundle {path}: collaborative vectors and user factors differ in dimension")
        if (path / C.CATALOG_FILE).is_file():
            self._catalog = Catalog(path / C.CATALOG_FILE)
        names = self.source_names
        for kind, entry in (m.get("default_lists") or {}).items():
            if kind not in C.LIST_KINDS:
                continue  # a kind this reader does not use
            arrays = {part: _load(path / name, self._mmap) for part, name in C.list_files(kind).items()}
            n, k = (n_users if kind == "recommend" else n_songs), int(entry["k"])
            if any(a.shape != (n, k) for a in arrays.values()):
                raise ValueError(f"bundle {path}: the default {kind} lists are not ({n}, {k}) arrays")
            shares = C.resolve_shares(names, self.defaults.shares, entry.get("shares") or {})
            self.lists[kind] = DefaultLists(k, shares, float(entry["diversity"]), **arrays,
                                            quotas=C.quotas(names, shares, k))

    def validate(self) -> None:
        """``ContractError`` unless every array holds what the contract says: ids sorted and
        unique, vectors and scores finite, song rows in range and ascending where they must be,
        dtypes and shapes as written. A damaged bundle is refused here, not served (a NaN factor
        gives empty lists, unsorted ids make every lookup miss, a row out of range fails calls)."""
        def bad(what: str) -> C.ContractError:
            return C.ContractError(f"bundle {self.version} is damaged: {what}")

        n_songs = self.n_songs
        for name, ids in (("song_ids", self.song_ids), ("user_ids", self.user_ids)):
            if ids.ndim != 1 or ids.dtype.kind != "S":
                raise bad(f"{name} is not a 1-d array of byte strings ({ids.dtype}, shape {ids.shape})")
            if len(ids) > 1 and not bool((ids[1:] > ids[:-1]).all()):
                raise bad(f"{name} is not sorted and unique")
        if (self.user_factors.dtype != np.float32 or self.user_factors.ndim != 2
                or not np.isfinite(self.user_factors).all()):
            raise bad("user_factors is not a finite float32 matrix")
        ptr, idx = self.played_indptr, self.played_indices
        if (ptr.dtype.kind != "i" or idx.dtype.kind != "i" or ptr[0] != 0 or ptr[-1] != len(idx)
                or (np.diff(ptr) < 0).any()):
            raise bad("played_indptr does not delimit played_indices")
        if len(idx) and (idx.min() < 0 or idx.max() >= n_songs):
            raise bad(f"played song rows out of [0, {n_songs})")
        if len(idx) > 1:
            rising = idx[1:] > idx[:-1]   # (no widened copy: 48M plays at full shape)
            starts = ptr[1:-1][(ptr[1:-1] > 0) & (ptr[1:-1] < len(idx))] - 1  # a user's first entry
            rising[starts] = True
            if not rising.all():
                raise bad("a user's played songs are not ascending")
        cnt = self.played_counts
        if cnt is not None and (cnt.shape != idx.shape or cnt.dtype != np.float32 or not np.isfinite(cnt).all()
                                or (len(cnt) and cnt.min() <= 0)):
            raise bad("played_counts is not one positive finite float32 count per played song")
        for name, ix in self._indexes.items():
            rows, vectors = ix.rows, ix.vectors
            if rows.dtype.kind != "i" or (len(rows) and (rows[0] < 0 or rows[-1] >= n_songs)):
                raise bad(f"{name} rows are out of [0, {n_songs})")
            if len(rows) > 1 and not bool((np.diff(rows) > 0).all()):
                raise bad(f"{name} rows are not ascending")
            if vectors.dtype != np.float32 or not np.isfinite(vectors).all():
                raise bad(f"{name} vectors are not finite float32")
        for name, nm in self._neighbours.items():
            ptr, idx, data = nm.indptr, nm.indices, nm.data
            if (ptr.dtype.kind != "i" or idx.dtype.kind != "i" or ptr[0] != 0 or ptr[-1] != len(idx)
                    or (np.diff(ptr) < 0).any()):
                raise bad(f"{name} indptr does not delimit its indices")
            if len(idx) and (idx.min() < 0 or idx.max() >= n_songs):
                raise bad(f"{name} song rows are out of [0, {n_songs})")
            if len(idx) > 1:
                rising = idx[1:] > idx[:-1]
                starts = ptr[1:-1][(ptr[1:-1] > 0) & (ptr[1:-1] < len(idx))] - 1  # a row's last entry
                rising[starts] = True
                if not rising.all():
                    raise bad(f"{name} song rows are not sorted and unique within a row")
            if data.dtype != np.float32 or not np.isfinite(data).all():
                raise bad(f"{name} similarities are not finite float32")
        for name, extra in (("embeddings", self._embeddings), ("genre probabilities", self._genre_probs)):
            if extra is not None:
                ix = self._indexes[self._extras_source]
                if len(extra) != len(ix.rows) or not np.isfinite(extra).all():
                    raise bad(f"{name} are not finite, one row per {self._extras_source} song")
        masks = 1 << len(self.sources)
        for kind, dl in self.lists.items():
            rows = dl.rows
            if rows.dtype.kind != "i" or rows.min(initial=0) < -1 or rows.max(initial=-1) >= n_songs:
                raise bad(f"default {kind} lists name song rows out of range")
            listed = rows >= 0
            if not np.isfinite(dl.scores[listed]).all():
                raise bad(f"default {kind} lists hold scores that are not finite")
            if (dl.sources[listed] <= 0).any() or (dl.sources[listed] >= masks).any():
                raise bad(f"default {kind} lists name sources the bundle does not have")
            if (listed[:, 1:] & ~listed[:, :-1]).any():
                raise bad(f"default {kind} lists have gaps")

    @staticmethod
    def verify_checksums(path: str | os.PathLike, manifest: dict | None = None) -> None:
        """``ValueError`` unless every file the manifest lists has its recorded sha256."""
        path = Path(path)
        manifest = manifest or json.loads((path / C.MANIFEST_FILE).read_text(encoding="utf-8"))
        sums = manifest.get("checksums") or {}
        if not sums:
            raise ValueError(f"bundle {path} records no checksums")
        bad = [name for name, digest in sums.items()
               if not (path / name).is_file() or sha256_file(path / name) != digest]
        if bad:
            raise C.ContractError(f"bundle {path}: missing or corrupt file(s): {', '.join(sorted(bad))}")

    def close(self) -> None:
        """Release the catalog and the indexes (arrays are unmapped when no longer referenced)."""
        if self._catalog is not None:
            self._catalog.close()
            self._catalog = None
        self._indexes = {}
        self._neighbours = {}

    def __enter__(self) -> "Bundle":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- sizes --------------------------------------------------------------------------------

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_songs(self) -> int:
        return len(self.song_ids)

    @property
    def factors(self) -> int:
        return int(self.user_factors.shape[1])

    @property
    def embedding_dim(self) -> int:
        return 0 if self._embeddings is None else int(self._embeddings.shape[1])

    @property
    def source_names(self) -> list[str]:
        """The bundle's sources in manifest order; the first (``collaborative``) is the primary."""
        return list(self.sources)

    def has_source(self, name: str) -> bool:
        return name in self._indexes or name in self._neighbours

    def source_size(self, name: str) -> int:
        """Vectors in source ``name``, or songs with neighbours in a neighbours source (0 when the
        bundle has no such source)."""
        ix = self._indexes.get(name) or self._neighbours.get(name)
        return 0 if ix is None else len(ix.rows)

    def source_dimension(self, name: str) -> int:
        """The vectors' dimension; for a neighbours source, the most neighbours a song has."""
        if name in self._neighbours:
            return self._neighbours[name].width
        return int(self._indexes[name].vectors.shape[1])

    # -- ids ----------------------------------------------------------------------------------

    def user_row(self, user_id: str | bytes) -> int | None:
        r = find(self.user_ids, user_id)
        return None if r < 0 else r

    def song_row(self, song_id: str | bytes) -> int | None:
        r = find(self.song_ids, song_id)
        return None if r < 0 else r

    def song_rows(self, song_ids: Iterable[str | bytes]) -> np.ndarray:
        """``(n,)`` int64 song rows, -1 where the id is unknown."""
        return lookup_many(self.song_ids, list(song_ids))

    def song_id(self, row: int) -> str:
        return self.song_ids[int(row)].decode()

    # -- vectors ------------------------------------------------------------------------------

    def user_vector(self, row: int) -> np.ndarray:
        """``(k,)`` float32 WMF factors of user ``row``."""
        return np.asarray(self.user_factors[int(row)], dtype=np.float32)

    def played(self, user_row: int) -> np.ndarray:
        """Song rows user ``user_row`` played, ascending (int32)."""
        r = int(user_row)
        return np.asarray(self.played_indices[self.played_indptr[r]:self.played_indptr[r + 1]])

    def play_counts(self, user_row: int) -> np.ndarray:
        """Play counts of ``played(user_row)``'s songs, float32 (ones in a bundle that does not
        record counts)."""
        r = int(user_row)
        lo, hi = int(self.played_indptr[r]), int(self.played_indptr[r + 1])
        if self.played_counts is None:
            return np.ones(hi - lo, np.float32)
        return np.asarray(self.played_counts[lo:hi], np.float32)

    def song_vector(self, name: str, song_row: int) -> np.ndarray | None:
        """``(d,)`` float32 vector of song ``song_row`` in source ``name``, ``None`` when the song
        has none there (or the bundle has no such source)."""
        ix = self._indexes.get(name)
        if ix is None:
            return None
        pos = int(ix.position(np.asarray([song_row]))[0])
        return None if pos < 0 else np.asarray(ix.vectors[pos], dtype=np.float32)

    def song_sources(self, song_row: int) -> list[str]:
        """The sources that have a vector (or neighbours) for song ``song_row``, in bundle order."""
        return [name for name in self.sources if self.covers(name, [song_row])[0]]

    def covers(self, name: str, song_rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """``(n,)`` bool: which of ``song_rows`` source ``name`` can answer for (a vector, or a
        non-empty row of neighbours); ``KeyError`` for a source the bundle lacks."""
        ix = self._indexes.get(name) or self._neighbours.get(name)
        if ix is None:
            raise KeyError(f"bundle {self.version} has no {name!r} source (has: {', '.join(self.sources)})")
        return ix.position(np.asarray(song_rows, dtype=np.int64)) >= 0

    def song_vectors(self, name: str, song_rows: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(have, vectors)``: which of ``song_rows`` have a vector in source ``name`` (bool), and
        those vectors, ``(have.sum(), d)`` float32 (``KeyError`` for a source the bundle lacks)."""
        ix = self._indexes[name]
        pos = ix.position(np.asarray(song_rows, dtype=np.int64))
        have = pos >= 0
        return have, np.asarray(ix.vectors[pos[have]], dtype=np.float32)

    def profile(self, name: str, song_rows: Sequence[int] | np.ndarray) -> np.ndarray | None:
        """The query of a listener of ``song_rows`` in a source outside the WMF space: the mean of
        those songs' vectors there, ``(d,)`` float32; ``None`` when none of them has one."""
        have, vectors = self.song_vectors(name, song_rows)
        if not len(vectors):
            return None
        return vectors.mean(axis=0, dtype=np.float64).astype(np.float32)

    def embedding(self, song_rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """``(n, e)`` float32 L2-normalised embeddings for MMR (the acoustic source's); zeros for
        songs without one (``e`` is 0 in a bundle without embeddings)."""
        rows = np.asarray(song_rows, dtype=np.int64).reshape(-1)
        out = np.zeros((len(rows), self.embedding_dim), dtype=np.float32)
        if self._embeddings is not None and len(rows):
            pos = self._indexes[self._extras_source].position(rows)
            have = pos >= 0
            out[have] = self._embeddings[pos[have]]
        return out

    def genre_probs_many(self, song_rows: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(have, probs)``: which of ``song_rows`` have genre-head probabilities (bool), and
        those, ``(have.sum(), g)`` float32 (no song has any without audio or a genre head)."""
        rows = np.asarray(song_rows, dtype=np.int64).reshape(-1)
        if self._genre_probs is None:
            return np.zeros(len(rows), bool), np.zeros((0, len(self.genres)), np.float32)
        pos = self._indexes[self._extras_source].position(rows)
        have = pos >= 0
        return have, np.asarray(self._genre_probs[pos[have]], dtype=np.float32)

    def genre_probs(self, song_row: int) -> np.ndarray | None:
        """``(g,)`` genre-head probabilities (order: ``genres``), ``None`` without audio or head."""
        if self._genre_probs is None:
            return None
        pos = int(self._indexes[self._extras_source].position(np.asarray([song_row]))[0])
        return None if pos < 0 else np.asarray(self._genre_probs[pos], dtype=np.float32)

    # -- search -------------------------------------------------------------------------------

    def search(self, name: str, queries: np.ndarray, top: int, kind: str = C.USER_QUERIES
               ) -> tuple[np.ndarray, np.ndarray]:
        """The ``top`` largest inner products in index ``name`` for each query.

        queries: ``(n, k)`` (or ``(k,)``) float32. Returns ``(scores (n, top) float32, song_rows
        (n, top) int64)``, best first, padded with ``-inf`` / ``-1`` where the index has fewer
        vectors. ``kind``: what the queries are (``contract.USER_QUERIES`` or ``SONG_QUERIES``),
        for the index's search parameters of that kind where the build recorded some.
        ``KeyError`` for an index the bundle lacks (see ``has_source``).
        """
        ix = self._indexes.get(name)
        if ix is None:
            raise KeyError(f"bundle {self.version} has no {name!r} vector source (has: {', '.join(self._indexes)})")
        q = np.ascontiguousarray(np.atleast_2d(np.asarray(queries, dtype=np.float32)))
        if q.ndim != 2 or q.shape[1] != ix.vectors.shape[1]:
            raise ValueError(f"queries must be (n, {ix.vectors.shape[1]}), got {np.shape(queries)}")
        top = int(top)
        if top < 0:
            raise ValueError("top must be >= 0")
        if self.threads is not None and getattr(_omp, "threads", None) != self.threads:
            faiss.omp_set_num_threads(self.threads)
            _omp.threads = self.threads
        return ix.search(q, top, kind)

    def search_songs(self, name: str, song_rows: Sequence[int] | np.ndarray, top: int
                     ) -> tuple[np.ndarray, np.ndarray]:
        """The ``top`` best songs of neighbours source ``name`` for a listener of ``song_rows``
        (or one song): the sum of their rows of ``S``, as ``search`` returns for one query:
        ``(scores (1, top) float32, song_rows (1, top) int64)``, padded with ``-inf`` / ``-1``.
        The songs themselves are not left out (the caller excludes what it must)."""
        nm = self._neighbours.get(name)
        if nm is None:
            raise KeyError(f"bundle {self.version} has no neighbours source {name!r}")
        rows, vals = nm.scores(np.unique(np.asarray(song_rows, np.int64)), int(top))
        return _padded(rows, vals, int(top))

    def search_each(self, name: str, queries: np.ndarray, top: int, kind: str = C.USER_QUERIES
                    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``search(name, queries[i], top, kind)`` for each row of ``queries`` ``(n, k)``, equal to it,
        from one batched FAISS call (for batch jobs such as the default lists: it changes a
        process-wide FAISS setting for the duration of the call)."""
        ix = self._indexes.get(name)
        if ix is None:
            raise KeyError(f"bundle {self.version} has no {name!r} source (has: {', '.join(self._indexes)})")
        q = np.ascontiguousarray(np.asarray(queries, dtype=np.float32))
        if q.ndim != 2 or q.shape[1] != ix.vectors.shape[1]:
            raise ValueError(f"queries must be (n, {ix.vectors.shape[1]}), got {np.shape(queries)}")
        return ix.search_each(q, int(top), kind)

    # -- fold-in ------------------------------------------------------------------------------

    def fold_in(self, song_rows: Sequence[int] | np.ndarray, counts: Sequence[float] | np.ndarray | None = None,
                extra: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """``(k,)`` float32 factors of a listener of ``song_rows`` (``counts`` times each):
        :class:`pmrs.serving.foldin.FoldIn` over this bundle's WMF-space sources."""
        return self._folder()(song_rows, counts, extra)

    def _folder(self) -> FoldIn:
        """This bundle's :class:`FoldIn`, made on first use."""
        with self._gram_lock:
            if self._fold is None:
                self._fold = FoldIn(self._wmf, self._indexes[C.COLLABORATIVE],
                                    [self._indexes[n] for n in self.stand_in_sources])
        return self._fold

    def fold_in_terms(self, target: np.ndarray, song_rows, counts=None, extra=None) -> tuple[np.ndarray, np.ndarray]:
        """Each of a listener's songs' term in the score of a song whose WMF-space vector is
        ``target``: :meth:`pmrs.serving.foldin.FoldIn.contributions` over this bundle."""
        return self._folder().contributions(target, song_rows, counts, extra)

    def similarity(self, name: str, from_rows, to_rows) -> np.ndarray:
        """``S[j, i]`` of neighbours source ``name`` for each ``i`` of ``to_rows`` and ``j`` of
        ``from_rows``: ``(len(to_rows), len(from_rows))`` float32, 0 where row ``j`` holds no such
        neighbour (or is not a song of the bundle). One pass over the ``from_rows``' stored rows."""
        nm = self._neighbours.get(name)
        if nm is None:
            raise KeyError(f"bundle {self.version} has no neighbours source {name!r}")
        src = np.asarray(from_rows, np.int64).reshape(-1)
        dst = np.asarray(to_rows, np.int64).reshape(-1)
        out = np.zeros((len(dst), len(src)), np.float32)
        if not len(src) or not len(dst):
            return out
        which = None
        if src.min() < 0 or src.max() >= nm.n_songs:    # (rows outside the bundle: no neighbours)
            which = np.flatnonzero((src >= 0) & (src < nm.n_songs))
            src = src[which]
        lo = nm.indptr[src].astype(np.int64, copy=False)
        lengths = nm.indptr[src + 1] - lo
        at = np.repeat(lo - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))
        cols = nm.indices[at]
        order = np.argsort(dst, kind="stable")   # (searched in the stored indices' dtype: no cast of each entry)
        ordered = np.clip(dst[order], -1, np.iinfo(cols.dtype).max).astype(cols.dtype)
        pos = np.minimum(np.searchsorted(ordered, cols), len(dst) - 1)
        entry = np.flatnonzero(ordered[pos] == cols)
        i = order[pos[entry]]
        owner = np.repeat(np.arange(len(src)) if which is None else which, lengths)[entry]
        out[i, owner] = nm.data[at[entry]]
        return out

    @property
    def stand_in_sources(self) -> list[str]:
        """Sources in the WMF space besides the collaborative one: their vectors stand in for the
        WMF factors of songs nobody played (fold-in, a user query of seeds)."""
        return [n for n, s in self.sources.items() if n != C.COLLABORATIVE and s.space == C.WMF_SPACE]

    # -- catalog ------------------------------------------------------------------------------

    def catalog_items(self) -> Iterator[tuple[str, dict]]:
        """Every catalog entry as stored, ``(song_id, fields)`` with all its fields (``mbid`` and
        ``spotify_uri`` too, where the ingest found them); nothing without a catalog."""
        return iter(()) if self._catalog is None else self._catalog.items()

    def catalog_fields(self, song_ids: Sequence[str]) -> list[dict | None]:
        """The stored catalog fields of each song id (all of them); ``None`` where unknown."""
        return self._catalog.get_many(song_ids) if self._catalog is not None else [None] * len(song_ids)

    def songs(self, rows: Sequence[int] | np.ndarray, copy: bool = True) -> list[dict]:
        """Catalog fields per song row: ``{"song_id", "title", "artist", "release", "year",
        "genre"}``, with ``""`` / ``0`` where unknown (also when the bundle has no catalog).

        Entries are cached per bundle (up to ``SONG_CACHE_SIZE`` songs, emptied when full):
        recommended songs follow popularity, so most reads hit the cache instead of LMDB + JSON.
        Each call returns fresh dicts; ``copy=False`` returns the cached ones, which the caller
        must only read."""
        keys = np.asarray(rows, dtype=np.int64).reshape(-1).tolist()
        if keys and (min(keys) < 0 or max(keys) >= self.n_songs):
            raise IndexError(f"song rows must be in [0, {self.n_songs}), got {min(keys)}..{max(keys)}")
        cache = self._song_cache
        found: dict[int, dict] = {}   # read once: another thread may empty the cache meanwhile
        for r in keys:
            d = cache.get(r)
            if d is not None:
                found[r] = d
        missing = [r for r in dict.fromkeys(keys) if r not in found]
        if missing:
            ids = [self.song_ids[r].decode() for r in missing]
            metas = self._catalog.get_many(ids) if self._catalog is not None else [None] * len(ids)
            if len(cache) + len(missing) > SONG_CACHE_SIZE:
                cache.clear()
            for r, sid, meta in zip(missing, ids, metas):
                meta = meta or {}
                d = {"song_id": sid}
                for key, default in SONG_FIELDS.items():
                    value = meta.get(key)
                    d[key] = default if value is None else value
                found[r] = cache[r] = d
        return [dict(found[r]) for r in keys] if copy else [found[r] for r in keys]

    def song_tags(self, song_row: int) -> dict[str, float]:
        """The song's Last.fm tags ``{tag: weight 0-100}`` from the bundle's catalog (empty when it
        has none, or the bundle has no catalog)."""
        if self._catalog is None:
            return {}
        return self._catalog.tags(self.song_id(song_row))

    def __repr__(self) -> str:
        return (f"Bundle({self.version!r}, users={self.n_users}, songs={self.n_songs}, "
                f"sources={self.source_names})")


def genre_warning(manifest: dict) -> str:
    """Why the genre head's confidences should not be trusted (the CNN run's verdict,
    ``pmrs.acoustic.undertrained``, recorded by the indexer), ``""`` when nothing says so."""
    why = _undertrained(manifest, "genre_head")
    return "" if why is None else f"the genre head learned from too little: {why}"


def acoustic_warning(manifest: dict) -> str:
    """Why the acoustic source's vectors (the CNN's predicted factors, cold songs' included) should
    not be trusted: the CNN's factor prediction learned from too little (its verdict,
    ``pmrs.acoustic.undertrained``, recorded by the indexer); ``""`` when nothing says so."""
    why = _undertrained(manifest, "factors")
    return "" if why is None else f"the acoustic model's factor prediction learned from too little: {why}"


def _undertrained(manifest: dict, part: str) -> str | None:
    """The recorded reason ``part`` of the acoustic model is undertrained, ``None`` when it is not."""
    for src in (manifest.get("sources") or {}).values():
        v = ((src.get("settings") or {}).get("undertrained") or {}).get(part)
        if v and v.get("undertrained"):
            return v.get("reason") or "no reason recorded"
    return None
