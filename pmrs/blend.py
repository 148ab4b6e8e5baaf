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
    return [r for r, _ in pick(lists, share_quotas(shares[:len(lists)], k), k)]


def share_quotas(shares: Sequence[float], k: int) -> list[int]:
    """Songs each list contributes to a list of ``k`` under ``shares`` (one per list, in bundle
    order), as a request's shares are turned into quotas (``contract.quotas``)."""
    names = [str(i) for i in range(len(shares))]
    q = quotas(names, {n: float(v) for n, v in zip(names, shares)}, k)
    return [q[n] for n in names]


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


class Interleaver:
    """:func:`pick` with ``diversity`` 0 for many users' candidate lists at once, for as many
    quota settings as asked (the share search scores ~40 settings on the same lists): the lists
    are merged once, and each setting's picks are array passes over all users together, exactly
    :func:`pick`'s.

    Why it is exact. An entry of list ``j`` is picked in the quota pass when its song was not
    picked earlier in the merged order (from another list) and fewer than ``quota[j]`` free
    entries of ``j`` come before it. Its status depends only on earlier entries, so the fixed
    point of "picked given which entries are blocked, blocked given which are picked" is the
    sequential answer, and iterating reaches it (after at most one round per entry; a few in
    practice, since only songs in several lists interact). Only list ``j``'s first ``k`` entries
    can be picked in that pass (at most ``k - quota[j]`` of them are blocked by other lists'
    picks), so lists are cut there. The fill pass (quotas not all met) takes the first entries of
    songs not taken, in merged order, until the list has ``k``; the cut loses none of them: a list
    longer than ``k`` holds at least as many songs not taken as are missing among its first ``k``,
    so the fill is over before any list's ``k``-th entry.
    """

    def __init__(self, lists_per_user: Sequence[Lists], k: int):
        self.k = k = int(k)
        #: lists each user has (``n_lists``: the most any has)
        self.lists_of = np.asarray([len(lists) for lists in lists_per_user], np.int64)
        n = len(lists_per_user)
        L = self.n_lists = int(self.lists_of.max(initial=0))
        width = L * k                                 # entry (u, j, i) of list j at u * width + j * k + i
        rel = np.full((n, width), -np.inf)
        rows = np.full((n, width), -1, np.int64)
        for u, lists in enumerate(lists_per_user):
            for j, (r, s) in enumerate(lists):
                if not len(s):
                    continue
                sc = np.asarray(s, np.float32).astype(np.float64)   # rel as _ranked computes it
                span = sc[0] - sc[-1]
                m = min(k, sc.size)
                rel[u, j * k:j * k + m] = ((sc - sc[-1]) / span)[:m] if span > 0 else 1.0
                rows[u, j * k:j * k + m] = np.asarray(r[:m], np.int64)
        self.valid = rows >= 0
        self.rows = rows
        # merged order: by rel, ties in list order, then each list's order (a stable sort)
        merged = np.lexsort((np.repeat(np.arange(L), k)[None, :].repeat(n, 0), -rel), axis=-1)
        self.merged = merged                          # merged position -> entry (per user)
        # entries of one song, in merged order: an entry is blocked by any earlier one picked
        song = np.take_along_axis(rows, merged, -1)
        pos = np.broadcast_to(np.arange(width), (n, width))
        by_song = np.lexsort((pos, song), axis=-1)    # merged positions grouped by song
        s_sorted = np.take_along_axis(song, by_song, -1)
        entry = np.take_along_axis(merged, by_song, -1) + np.arange(n)[:, None] * width
        targets, sources = [], []
        for d in range(1, L):
            same = (s_sorted[:, d:] == s_sorted[:, :-d]) & (s_sorted[:, d:] >= 0)
            targets.append(entry[:, d:][same])
            sources.append(entry[:, :-d][same])
        self.targets = np.concatenate(targets) if targets else np.zeros(0, np.int64)
        self.sources = np.concatenate(sources) if sources else np.zeros(0, np.int64)

    def pick(self, quota: np.ndarray) -> np.ndarray:
        """The blended song rows ``(n_users, k)`` int64, ``-1`` past a short list, under
        ``quota`` ``(n_users, n_lists)`` (a user with fewer lists: 0 for the missing ones)."""
        n, k, L = len(self.lists_of), self.k, self.n_lists
        quota = np.asarray(quota, np.int64).reshape(n, L)
        limit = quota[:, :, None]
        valid = self.valid.reshape(n, L, k)
        blocked = np.zeros(n * L * k, bool)
        blocked[self.targets] = True                  # start: every later entry of a song blocked
        picked = None
        for _ in range(L * k + 1):
            free = valid & ~blocked.reshape(n, L, k)
            now = free & (np.cumsum(free, axis=2, dtype=np.int32) <= limit)
            if picked is not None and np.array_equal(now, picked):
                break
            picked = now
            blocked[:] = False
            blocked[self.targets[picked.reshape(-1)[self.sources]]] = True
        out = np.full((n, k), -1, np.int64)
        if picked is None:
            return out
        flat = picked.reshape(-1)
        taken = flat.copy()                           # entries whose song the quota pass took
        taken[self.targets[flat[self.sources]]] = True
        taken[self.sources[flat[self.targets]]] = True
        fill = self.valid.reshape(-1) & ~taken
        fill[self.targets] = False                    # a song's first entry stands for it
        first = np.take_along_axis(picked.reshape(n, L * k), self.merged, -1)
        rank = np.cumsum(first, axis=1)
        first &= rank <= k                            # (quotas above k: the pass stops at k)
        got = np.minimum(rank[:, -1], k)
        then = np.take_along_axis(fill.reshape(n, L * k), self.merged, -1)
        more = np.cumsum(then, axis=1)
        then &= more <= (k - got)[:, None]
        u, at = np.nonzero(first)
        out[u, rank[u, at] - 1] = self.rows[u, self.merged[u, at]]
        u, at = np.nonzero(then)
        out[u, got[u] + more[u, at] - 1] = self.rows[u, self.merged[u, at]]
        return out
