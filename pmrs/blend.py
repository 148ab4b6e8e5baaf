"""The blend: how PMRS turns its sources' candidate lists into one list.

One module, used by everything that ranks the way PMRS serves: the server's answers
(``pmrs.serving.recommend``), the choice of a source's share on validation
(``pmrs.collaborative.share``) and the hold-out report's ``pmrs`` row (which asks a served
``pmrs.Recommender``, so it goes through here too). Its inputs are arrays, not bundles:

- ``lists``: one candidate list per source, in bundle order (the first is the primary,
  collaborative source), each ``(rows, scores)``: distinct song rows ``(n,) int64`` best first,
  with their scores ``(n,) float32`` on that source's own scale;
- ``quota``: how many songs each list contributes to a list of ``k`` (``contract.quotas``: every
  non-primary source ``round(share * k)`` half up, the primary the rest).

The picks are maximal marginal relevance under the quotas: one at a time,
``argmax (1 - diversity) * rel - diversity * max cosine(embedding, picked)``, ``rel`` being the
score min-max normalised within its list (raw scores of different sources are not on one scale).
With ``diversity == 0`` that is an interleave of the lists by normalised score. A list that runs
out of candidates leaves its quota to the others.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .serving.contract import quotas

#: Candidates first fetched from each source for a list of ``k``: ``max(4k, 100)``.
MIN_CANDIDATES = 100
CANDIDATES_PER_ITEM = 4

Lists = Sequence[tuple[np.ndarray, np.ndarray]]


def candidate_count(k: int) -> int:
    """Candidates first fetched from each source for a list of ``k``: ``max(4k, 100)``."""
    return max(CANDIDATES_PER_ITEM * k, MIN_CANDIDATES)


def pick(lists: Lists, quota: Sequence[int], k: int, diversity: float = 0.0,
         embedding: Callable[[np.ndarray], np.ndarray] | None = None) -> list[tuple[int, int]]:
    """The blended list: at most ``k`` ``(song row, list index)`` in pick order.

    lists: ``(rows, scores)`` per source, each best first with distinct rows (empty lists are
    allowed). quota: songs per list (aligned with ``lists``). diversity: MMR weight in [0, 1].
    embedding: song rows ``(n,)`` -> L2-normalised embeddings ``(n, e)`` float32 (a zero row for
    a song without one); needed when ``diversity > 0``.
    """
    kept = [(i, np.asarray(r, np.int64), np.asarray(s, np.float32)) for i, (r, s) in enumerate(lists) if len(r)]
    if not kept or k <= 0:
        return []
    left = [int(quota[i]) for i, _, _ in kept]
    if diversity > 0:
        if embedding is None:
            raise ValueError("diversity > 0 needs an embedding")
        rows = np.concatenate([r for _, r, _ in kept])
        src = np.concatenate([np.full(r.size, j) for j, (_, r, _) in enumerate(kept)])
        rel = np.concatenate([min_max(s) for _, _, s in kept])
        picks = _mmr_picks(embedding, rows, src, rel, left, k, diversity)
    else:
        picks = _quota_picks([(r, s) for _, r, s in kept], left, k)
    return [(row, kept[j][0]) for row, j in picks]


def interleave(lists: Lists, shares: Sequence[float], k: int) -> list[int]:
    """The song rows of :func:`pick` with ``diversity`` 0 under ``shares`` (one per list, in
    bundle order, turned into quotas as a request's shares are): what a Recommend over these
    candidate lists returns."""
    names = [str(i) for i in range(len(lists))]
    q = quotas(names, {n: float(v) for n, v in zip(names, shares)}, k)
    return [r for r, _ in pick(lists, [q[n] for n in names], k)]


def min_max(scores: np.ndarray) -> np.ndarray:
    """Scores rescaled to [0, 1] within one candidate list (all 1 when they are all equal)."""
    s = np.asarray(scores, np.float64)
    if not s.size:
        return s
    lo, hi = s.min(), s.max()
    if hi - lo <= 0:
        return np.ones_like(s)
    return (s - lo) / (hi - lo)


def _ranked(lists: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[list[int], list[int]]:
    """Every candidate entry as ``(list indexes, song rows)``, best normalised score first, ties in
    list order (then in each list's own order): the merge of the lists (each sorted best first)
    by ``rel`` as :func:`min_max` computes it, as one stable sort."""
    rels, srcs = [], []
    for j, (rows, scores) in enumerate(lists):
        sc = np.asarray(scores, np.float64)
        if not sc.size:
            continue
        span = sc[0] - sc[-1]
        rels.append((sc - sc[-1]) / span if span > 0 else np.ones(sc.size))
        srcs.append(np.full(sc.size, j, np.int64))
    if not srcs:
        return [], []
    src = np.concatenate(srcs)
    rows = np.concatenate([np.asarray(r, np.int64) for r, s in lists if len(s)])
    order = np.lexsort((src, -np.concatenate(rels)))    # stable: equal keys keep each list's order
    return src[order].tolist(), rows[order].tolist()


def _quota_picks(lists: Sequence[tuple[np.ndarray, np.ndarray]], left: list[int], k: int
                 ) -> list[tuple[int, int]]:
    """MMR with ``diversity == 0``: the objective is fixed, so the greedy picks are one pass over
    the entries in descending normalised score (ties: the earlier list first, as ``argmax`` over
    the concatenated lists), taking an entry when its song is not taken and its list has quota
    left; when the quotas cannot be met, a second pass fills the rest from whatever is left.
    Returns ``(song row, list index)`` in pick order."""
    taken: set[int] = set()
    picks: list[tuple[int, int]] = []
    srcs, rows = _ranked(lists)
    add, append, need = taken.add, picks.append, k   # (locals: the share search runs this loop
    for s, r in zip(srcs, rows):                     # for every validation user and setting)
        if left[s] > 0 and r not in taken:
            add(r)
            left[s] -= 1
            append((r, s))
            need -= 1
            if not need:
                return picks
    for s, r in zip(srcs, rows):  # a list ran out of candidates: the others fill its share
        if r not in taken:
            add(r)
            append((r, s))
            need -= 1
            if not need:
                break
    return picks


def _mmr_picks(embedding: Callable[[np.ndarray], np.ndarray], rows: np.ndarray, src: np.ndarray,
               rel: np.ndarray, left_l: list[int], k: int, diversity: float) -> list[tuple[int, int]]:
    """Greedy MMR: ``argmax (1 - diversity) * rel - diversity * max cosine to the picks`` under
    the quotas. Returns ``(song row, list index)`` in pick order."""
    uniq, inv = np.unique(rows, return_inverse=True)
    left = np.asarray(left_l, np.int64)
    n = min(k, uniq.size)
    taken = np.zeros(uniq.size, bool)
    picks: list[tuple[int, int]] = []
    emb = np.asarray(embedding(uniq), np.float32)
    base = (1.0 - diversity) * rel
    max_sim = None
    for _ in range(n):
        avail = ~taken[inv]
        eligible = avail & (left[src] > 0)
        if not eligible.any():
            # A list ran out of candidates: the others fill its share.
            left[:] = n - len(picks)
            eligible = avail
        obj = base if max_sim is None else base - diversity * max_sim[inv]
        j = int(np.argmax(np.where(eligible, obj, -np.inf)))
        u = int(inv[j])
        taken[u] = True
        left[src[j]] -= 1
        picks.append((int(uniq[u]), int(src[j])))
        sim = emb @ emb[u]
        max_sim = sim if max_sim is None else np.maximum(max_sim, sim)
    return picks
