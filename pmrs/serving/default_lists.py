"""Default lists: every known user's answer to the default Recommend request, computed once per
bundle by ``indexer build`` so that the server answers that request by lookup.

The default request is the one most callers send: a known user, ``k`` and ``acoustic_share`` and
``diversity`` at their defaults, no filters, played songs excluded. Its answer depends only on the
bundle, which never changes once built, so it can be computed in the batch job that builds the
bundle instead of on every call (docs/ARCHITECTURE.md, "Serving throughput"). The lists are the
online answers, not an approximation of them: each user goes through
:func:`pmrs.serving.recommend.recommend_for_vector`, only the first FAISS search of each index is
batched over many users (:meth:`Bundle.search_each`, equal to one-query searches), and a test holds
every list equal to the call the server would otherwise make.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from tqdm import tqdm

from .bundle import Bundle
from .recommend import candidate_count, check_unit, known_user_query, recommend_for_vector, resolve_k

#: Users per batched search (and per task of a worker process).
CHUNK_USERS = 4096


class _Prefetched:
    """A bundle whose next ``search`` of each index returns a result computed beforehand (one
    row of a batched search); any other search, such as a widened one, goes to the bundle."""

    def __init__(self, bundle: Bundle):
        self._bundle = bundle
        self.next: dict[str, tuple[int, tuple[np.ndarray, np.ndarray]]] = {}

    def __getattr__(self, name):
        return getattr(self._bundle, name)

    def search(self, name: str, queries: np.ndarray, top: int):
        hit = self.next.pop(name, None)
        if hit is not None and hit[0] == top:
            return hit[1]
        return self._bundle.search(name, queries, top)


def lists_for_users(bundle: Bundle, start: int, stop: int, k: int, acoustic_share: float,
                    diversity: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The default lists of users ``start .. stop - 1``: ``(rows int32, scores float32, sources
    int8)``, each ``(stop - start, k)``, padded with row -1, score -inf and source 0."""
    n = stop - start
    rows = np.full((n, k), -1, np.int32)
    scores = np.full((n, k), -np.inf, np.float32)
    sources = np.zeros((n, k), np.int8)
    top = candidate_count(k)
    tops = {name: min(top, bundle.index_size(name)) for name in bundle.index_names}
    queries = np.asarray(bundle.user_factors[start:stop], np.float32)
    batches = {name: bundle.search_each(name, queries, t) for name, t in tops.items() if t > 0}
    proxy = _Prefetched(bundle)
    for i in range(n):
        query = known_user_query(bundle, start + i)
        proxy.next = {name: (tops[name], next(found)) for name, found in batches.items()}
        items = recommend_for_vector(proxy, query.vector, k, acoustic_share, diversity, query.exclude_rows)
        m = len(items)
        rows[i, :m] = [it.song_row for it in items]
        scores[i, :m] = [it.score for it in items]
        sources[i, :m] = [int(it.source) for it in items]
    return rows, scores, sources


_worker_bundle: Bundle | None = None


def _init_worker(path: str) -> None:
    global _worker_bundle
    import faiss
    faiss.omp_set_num_threads(1)  # the pool's processes are the parallelism
    _worker_bundle = Bundle.open(path, threads=None)


def _worker_lists(args: tuple[int, int, int, float, float]):
    return args[0], lists_for_users(_worker_bundle, *args)


def compute_default_lists(bundle: Bundle | str | os.PathLike, k: int = 10, acoustic_share: float = 0.2,
                          diversity: float = 0.0, workers: int | None = None,
                          show_progress: bool = False) -> dict[str, np.ndarray]:
    """Every user's default list for ``bundle`` (an open bundle or its directory, whose manifest
    may lack checksums: the build calls this before writing them).

    workers: processes; ``None``: up to 2, one per core (a bundle of fewer than two chunks of
    users is done in this process). Returns ``{"rows", "scores", "sources"}``, each
    ``(n_users, k)`` (see :class:`pmrs.serving.bundle.DefaultLists`).
    """
    k = resolve_k(k)
    share, diversity = check_unit("acoustic_share", acoustic_share), check_unit("diversity", diversity)
    with contextlib.ExitStack() as stack:
        if not isinstance(bundle, Bundle):
            bundle = stack.enter_context(Bundle.open(bundle, threads=None))
        n_users = bundle.n_users
        out = {"rows": np.full((n_users, k), -1, np.int32),
               "scores": np.full((n_users, k), -np.inf, np.float32),
               "sources": np.zeros((n_users, k), np.int8)}
        tasks = [(s, min(s + CHUNK_USERS, n_users), k, share, diversity)
                 for s in range(0, n_users, CHUNK_USERS)]
        workers = min(2, os.cpu_count() or 1) if workers is None else max(1, int(workers))
        with tqdm(total=n_users, desc="default lists", unit="user", disable=not show_progress) as bar:
            if workers == 1 or len(tasks) < 2:
                _collect(((t[0], lists_for_users(bundle, *t)) for t in tasks), out, bar)
            else:
                ctx = multiprocessing.get_context("spawn")  # FAISS's OpenMP does not survive fork
                with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                         initargs=(str(bundle.path),)) as pool:
                    _collect(pool.map(_worker_lists, tasks), out, bar)
    return out


def _collect(results, out: dict[str, np.ndarray], bar) -> None:
    for start, (rows, scores, sources) in results:
        stop = start + len(rows)
        out["rows"][start:stop], out["scores"][start:stop], out["sources"][start:stop] = rows, scores, sources
        bar.update(len(rows))
