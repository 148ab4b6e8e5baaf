"""Default lists: the answers to the default Recommend request of every known user and to the
default SimilarSongs request of every song, computed once per bundle by ``indexer build`` so that
the server answers those requests by lookup.

The default requests are the ones most callers send: ``k``, ``acoustic_share`` and ``diversity``
at their defaults, no filters; for Recommend a known user with played songs excluded, for
SimilarSongs the mixed mode. Their answers depend only on the bundle, which never changes once
built, so they can be computed in the batch job that builds the bundle instead of on every call
(docs/ARCHITECTURE.md, "Serving throughput"). The lists are the online answers, not an
approximation of them: each user (song) goes through
:func:`pmrs.serving.recommend.recommend_for_vector` (:func:`~pmrs.serving.recommend.similar_songs`);
only the first FAISS search of each index is batched (:meth:`Bundle.search_each`, equal to
one-query searches), and a test holds every list equal to the call the server would otherwise
make.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from tqdm import tqdm

from ..blend import candidate_count
from ..processes import exit_with_parent
from .bundle import Bundle
from .contract import SONG_QUERIES, USER_QUERIES, VECTORS
from .view import MEMBERS, Forwarding
from .recommend import (MIXED, check_k, check_shares, check_unit, known_user_query, recommend, similar_songs,
                        source_queries)

#: Users or songs per batched search (and per task of a worker process).
CHUNK = 4096


class _Prefetched(Forwarding):
    """A bundle whose next ``search`` of each index returns a result computed beforehand (one
    row of a batched search); any other search, such as a widened one, goes to the bundle."""

    #: Every member but ``search`` is the bundle's (``tests/test_song_space.py``).
    BUNDLE_OWN = frozenset(MEMBERS) - {"search"}

    def __init__(self, bundle: Bundle):
        super().__init__(bundle)
        self._bundle = bundle
        self.next: dict[str, tuple[tuple[int, str], tuple[np.ndarray, np.ndarray]]] = {}   # ((top, kind), found)

    def search(self, name: str, queries: np.ndarray, top: int, kind: str = USER_QUERIES):
        hit = self.next.pop(name, None)
        if hit is not None and hit[0] == (top, kind):
            return hit[1]
        return self._bundle.search(name, queries, top, kind)


def _empty(n: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.full((n, k), -1, np.int32), np.full((n, k), -np.inf, np.float32), np.zeros((n, k), np.uint8)


def _fill(out: tuple[np.ndarray, np.ndarray, np.ndarray], i: int, items) -> None:
    rows, scores, sources = out
    m = len(items)
    rows[i, :m] = [it.song_row for it in items]
    scores[i, :m] = [it.score for it in items]
    sources[i, :m] = [it.sources for it in items]


def _tops(bundle: Bundle, k: int) -> dict[str, int]:
    """What ``_Candidates`` asks each vector source for first (``recommend._blend``); a neighbours
    source is not batched: its search is a sum of sparse rows, as cheap one listener at a time."""
    return {name: min(candidate_count(k), bundle.source_size(name)) for name in bundle.source_names
            if bundle.sources[name].kind == VECTORS}


def lists_for_users(bundle: Bundle, start: int, stop: int, k: int, shares: dict[str, float],
                    diversity: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Recommend lists of users ``start .. stop - 1``: ``(rows int32, scores float32, sources
    uint8)``, each ``(stop - start, k)``, padded with row -1, score -inf and source 0."""
    n = stop - start
    out = _empty(n, k)
    tops = _tops(bundle, k)
    users = [known_user_query(bundle, u) for u in range(start, stop)]
    per_source = [source_queries(bundle, q) for q in users]
    batches = {}
    for name, t in tops.items():
        if t > 0:
            have = [i for i, qs in enumerate(per_source) if name in qs]
            if have:
                vectors = np.stack([per_source[i][name] for i in have])
                batches[name] = dict(zip(have, bundle.search_each(name, vectors, t)))
    proxy = _Prefetched(bundle)
    for i, query in enumerate(users):
        proxy.next = {name: ((tops[name], USER_QUERIES), found[i]) for name, found in batches.items() if i in found}
        _fill(out, i, recommend(proxy, query, k, shares, diversity, queries=per_source[i]))
    return out


def lists_for_songs(bundle: Bundle, start: int, stop: int, k: int, shares: dict[str, float],
                    diversity: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The mixed SimilarSongs lists of song rows ``start .. stop - 1``, as
    :func:`lists_for_users`; a song with no vector gets an empty list."""
    n = stop - start
    out = _empty(n, k)
    tops = _tops(bundle, k)
    song_rows = np.arange(start, stop)
    found: dict[str, dict[int, tuple]] = {}   # source -> song row -> its first search
    for name, t in tops.items():
        have, vectors = bundle.song_vectors(name, song_rows)
        if t > 0 and len(vectors):
            found[name] = dict(zip(song_rows[have].tolist(), bundle.search_each(name, vectors, t, SONG_QUERIES)))
    proxy = _Prefetched(bundle)
    for i, row in enumerate(song_rows.tolist()):
        proxy.next = {name: ((tops[name], SONG_QUERIES), hits[row]) for name, hits in found.items() if row in hits}
        if proxy.next:
            _fill(out, i, similar_songs(proxy, row, k, MIXED, shares, diversity))
    return out


_KINDS = {"recommend": lists_for_users, "similar": lists_for_songs}
_worker_bundle: Bundle | None = None


def _init_worker(path: str, parent: int) -> None:
    global _worker_bundle
    import faiss
    faiss.omp_set_num_threads(1)  # the pool's processes are the parallelism
    exit_with_parent(parent)  # a killed build must not leave its workers behind
    _worker_bundle = Bundle.open(path, threads=None)


def _worker_lists(args: tuple[str, int, int, int, dict, float]):
    return args[1], _KINDS[args[0]](_worker_bundle, *args[1:])


def compute_default_lists(bundle: Bundle | str | os.PathLike, kind: str = "recommend", k: int = 10,
                          shares: dict[str, float] | None = None, diversity: float = 0.0,
                          workers: int | None = None, show_progress: bool = False) -> dict[str, np.ndarray]:
    """Default lists for ``bundle`` (an open bundle or its directory, whose manifest may lack
    checksums: the build calls this before writing them).

    kind: ``"recommend"``: every user's Recommend answer (known user, no filters, played songs
        excluded); ``"similar"``: every song's mixed SimilarSongs answer (no filters).
    shares: as ``recommend.check_shares`` takes them (``None``: the bundle's default shares).
    workers: processes; ``None``: up to 2, one per core (fewer than two chunks are done in this
        process). Returns ``{"rows", "scores", "sources"}``, each ``(n, k)`` for the bundle's
        ``n`` users or songs (see :class:`pmrs.serving.bundle.DefaultLists`).
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {', '.join(_KINDS)}, got {kind!r}")
    k = check_k(k)
    diversity = check_unit("diversity", diversity)
    with contextlib.ExitStack() as stack:
        if not isinstance(bundle, Bundle):
            bundle = stack.enter_context(Bundle.open(bundle, threads=None))
        share = check_shares(bundle, shares)
        n, unit = (bundle.n_users, "user") if kind == "recommend" else (bundle.n_songs, "song")
        out = dict(zip(("rows", "scores", "sources"), _empty(n, k)))
        tasks = [(kind, s, min(s + CHUNK, n), k, share, diversity) for s in range(0, n, CHUNK)]
        workers = min(2, os.cpu_count() or 1) if workers is None else max(1, int(workers))
        with tqdm(total=n, desc=f"default {kind} lists", unit=unit,
                  disable=not show_progress) as bar:
            if workers == 1 or len(tasks) < 2:
                _collect(((t[1], _KINDS[kind](bundle, *t[1:])) for t in tasks), out, bar)
            else:
                ctx = multiprocessing.get_context("spawn")  # FAISS's OpenMP does not survive fork
                with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                         initargs=(str(bundle.path), os.getpid())) as pool:
                    _collect(pool.map(_worker_lists, tasks), out, bar)
    return out


def _collect(results, out: dict[str, np.ndarray], bar) -> None:
    for start, (rows, scores, sources) in results:
        stop = start + len(rows)
        out["rows"][start:stop], out["scores"][start:stop], out["sources"][start:stop] = rows, scores, sources
        bar.update(len(rows))
