"""Recommendation over a bundle: candidates from every source, filters, blending, MMR re-ranking.

Pure functions of (bundle, query, settings), testable without gRPC; ``pmrs.Recommender`` is the
public API over them, and the server only translates messages to its calls. The semantics are
docs/SERVING.md's ("Server semantics"):

1. Candidates: the top ``c = max(4k, 100)`` songs of each source for the query (the user's
   factors in WMF-space sources, the mean vector of the listener's songs in the other vector
   sources; in a neighbours source, the sum of the similarity rows of the listener's songs, or
   the song's own row for SimilarSongs).
   Excluded songs (played, seeds, the song itself) and songs the filters reject are dropped; when
   fewer than ``k`` survive in a source that the blend draws from, that source is searched again
   for 4x as many, up to the whole index.
2. Blend: every non-primary source contributes ``round(share * k)`` (half up) songs, the primary
   (collaborative) source the rest (``contract.quotas``). A song that several candidate lists
   hold is marked with each of their sources, scored with the highest of its scores, and counted
   once. When a source runs out of candidates, the others fill its share.
3. Re-rank by maximal marginal relevance: pick, one at a time,
   ``argmax (1 - diversity) * rel_norm - diversity * max cosine(embedding, picked)``, with
   ``rel_norm`` the min-max normalised score within its source's candidate list and the cosine
   taken between L2-normalised CNN embeddings (a song without audio has a zero embedding, so its
   similarity to everything is 0). The list is in the order of the picks: with
   ``diversity == 0`` that is each source's own score order, the lists interleaved by normalised
   score (raw scores of different sources are not on one scale: predicted factors are shrunk).

Errors are :class:`InvalidArgument` (a setting out of range) and :class:`NotFound` (an unknown
user or song, or a song without the vector a mode needs); the server maps them to gRPC codes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from ..blend import candidate_count, pick
from ..errors import InvalidArgument, NotFound, PMRSError
from ..text import quote_prefix
from .contract import (ACOUSTIC, COLLABORATIVE, MAX_K, MAX_SEEDS, NEIGHBOURS, SONG_QUERIES, SPARSE_NEIGHBOURS,
                       USER_QUERIES, WMF_SPACE, quotas, resolve_shares)

MIXED = "mixed"
#: SimilarSongs modes besides a single source's name: every source that has the song's vector.
MODES = (COLLABORATIVE, ACOUSTIC, NEIGHBOURS, MIXED)

WIDEN_FACTOR = 4


#: The old name of the errors' root (:class:`pmrs.PMRSError`), kept for imports.
ServingError = PMRSError


@dataclass(frozen=True)
class Item:
    """One recommended song: its bundle row, its score (an inner product in the source that
    ranked it highest) and the sources whose candidate lists held it, as a bit mask (bit ``i``:
    the bundle's ``i``-th source; ``Bundle.sources[name].bit``)."""

    song_row: int
    score: float
    sources: int


@dataclass(frozen=True)
class Filters:
    """Restrictions on returned songs; empty fields restrict nothing.

    ``genres``: keep only these catalog genres (case-insensitive). ``min_year`` / ``max_year``:
    inclusive release-year bounds, 0 for none; a song of unknown year is dropped when a bound is
    set. ``exclude_artists``: drop songs by these artists (case-insensitive).
    """

    genres: tuple[str, ...] = ()
    min_year: int = 0
    max_year: int = 0
    exclude_artists: tuple[str, ...] = ()
    _genres: frozenset = field(init=False, repr=False, compare=False)
    _artists: frozenset = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "genres", tuple(self.genres))
        object.__setattr__(self, "exclude_artists", tuple(self.exclude_artists))
        object.__setattr__(self, "_genres", frozenset(g.strip().casefold() for g in self.genres if g.strip()))
        object.__setattr__(self, "_artists",
                           frozenset(a.strip().casefold() for a in self.exclude_artists if a.strip()))
        if self.min_year < 0 or self.max_year < 0:
            raise InvalidArgument(f"years must be >= 0 (0: no bound), got min_year={self.min_year}, "
                                  f"max_year={self.max_year}")
        if self.min_year and self.max_year and self.min_year > self.max_year:
            raise InvalidArgument(f"min_year {self.min_year} is after max_year {self.max_year}")

    @property
    def active(self) -> bool:
        return bool(self._genres or self._artists or self.min_year or self.max_year)

    def keep(self, songs: Sequence[dict | None]) -> np.ndarray:
        """``(len(songs),)`` bool: which catalog entries (``Bundle.songs`` dicts) pass."""
        n = len(songs)
        keep = np.ones(n, bool)
        if not n or not self.active:
            return keep
        if self._genres:
            keep &= np.fromiter((((s or {}).get("genre") or "").casefold() in self._genres for s in songs),
                                bool, n)
        if self._artists:
            keep &= ~np.fromiter((((s or {}).get("artist") or "").casefold() in self._artists
                                  for s in songs), bool, n)
        if self.min_year or self.max_year:
            years = np.fromiter((int((s or {}).get("year") or 0) for s in songs), np.int64, n)
            keep &= years > 0
            if self.min_year:
                keep &= years >= self.min_year
            if self.max_year:
                keep &= years <= self.max_year
        return keep


NO_FILTERS = Filters()


def check_k(k: int) -> int:
    """``k`` as the number of songs to return, 1 to ``MAX_K``, else :class:`InvalidArgument`
    (a request's "unset" k is resolved by :class:`pmrs.Recommender` to its default first)."""
    k = int(k)
    if not 1 <= k <= MAX_K:
        raise InvalidArgument(f"k must be between 1 and {MAX_K}, got {k}")
    return k


def check_unit(name: str, value: float) -> float:
    """``value`` as a float in [0, 1], else :class:`InvalidArgument` naming ``name``."""
    value = float(value)
    if not (0.0 <= value <= 1.0):  # also rejects NaN
        raise InvalidArgument(f"{name} must be between 0 and 1, got {value}")
    return value


def check_shares(bundle, shares: Mapping[str, float] | None,
                 defaults: Mapping[str, float] | None = None) -> dict[str, float]:
    """Every source's share of a list for a request that names ``shares`` (``None``: the
    defaults), as ``contract.resolve_shares`` defines it, against ``defaults`` (``None``: the
    bundle's); :class:`InvalidArgument` for a share out of range, an unknown source or named
    shares over 1."""
    try:
        return resolve_shares(bundle.source_names, bundle.defaults.shares if defaults is None else defaults,
                              shares)
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None


@dataclass(frozen=True)
class Query:
    """A Recommend query: the user's WMF-space vector ``(f,)`` float32 (``None`` when no seed has
    one), the song rows to leave out, whether the vector was folded in from seed songs, and the
    songs that define the listener for sources outside the WMF space (played songs or seeds)."""

    vector: np.ndarray | None
    exclude_rows: np.ndarray
    folded_in: bool
    profile_rows: np.ndarray


def source_queries(bundle, query: Query) -> dict[str, np.ndarray]:
    """The query of ``query`` in each source of ``bundle`` that can answer it: the WMF vector for
    WMF-space sources, the mean of the profile songs' vectors for the other vector sources, and
    for a neighbours source the profile's song rows that have neighbours there (int64)."""
    out = {}
    for name, src in bundle.sources.items():
        if src.kind == SPARSE_NEIGHBOURS:
            rows = np.asarray(query.profile_rows, np.int64)
            rows = rows[bundle.covers(name, rows)]
            if rows.size:
                out[name] = rows
        elif src.space == WMF_SPACE:
            if query.vector is not None:
                out[name] = query.vector
        else:
            v = bundle.profile(name, query.profile_rows)
            if v is not None:
                out[name] = v
    return out


def user_query(bundle, user_id: str, seed_song_ids: Sequence[str] = (),
               include_played: bool = False) -> Query:
    """The query vector for a Recommend request.

    A known ``user_id`` gives its WMF factors (seeds are ignored) and excludes the user's played
    songs unless ``include_played``. An unknown or empty ``user_id`` with seed songs gives the
    fold-in of the known seeds (one ALS half-step; a seed nobody has played enters with its
    CNN-predicted factors) and excludes the seeds unless
    ``include_played``. Raises :class:`InvalidArgument` for neither user nor seeds or more than
    500 seeds, :class:`NotFound` for an unknown user without seeds or seeds none of which is
    usable.
    """
    seeds = list(seed_song_ids)
    if len(seeds) > MAX_SEEDS:
        raise InvalidArgument(f"at most {MAX_SEEDS} seed songs, got {len(seeds)}")
    if user_id:
        row = bundle.user_row(user_id)
        if row is not None:
            return known_user_query(bundle, row, include_played)
        if not seeds:
            raise NotFound(f"unknown user {quote_prefix(user_id)} (send seed_song_ids to get recommendations "
                           f"for a user the model does not know)")
    elif not seeds:
        raise InvalidArgument("the request names neither a user_id nor seed_song_ids")
    rows = np.asarray(bundle.song_rows(seeds), np.int64)
    known = np.unique(rows[rows >= 0])
    if not known.size:
        who = f"unknown user {quote_prefix(user_id)} and " if user_id else ""
        raise NotFound(f"{who}none of the {len(seeds)} seed songs is known to the bundle")
    # Played seeds fold in by their WMF factors, unplayed ones by a stand-in source's vectors
    # (the acoustic source's CNN-predicted factors); other sources use the seeds' mean vector.
    wmf = [COLLABORATIVE, *bundle.stand_in_sources]
    has = {name: bundle.covers(name, known) if _sparse(bundle, name) else bundle.song_vectors(name, known)[0]
           for name in bundle.source_names}
    in_wmf = np.any([has[name] for name in wmf], axis=0)
    if not np.any([h for h in has.values()], axis=0).any():
        raise NotFound(f"none of the {known.size} known seed songs has a vector or neighbours in any source "
                       f"(fold-in needs WMF or CNN-predicted song factors)")
    vector = (np.asarray(bundle.fold_in(known[in_wmf]), np.float32).reshape(-1) if in_wmf.any()
              else None)
    exclude = np.zeros(0, np.int64) if include_played else known
    return Query(vector, exclude, True, known)


def known_user_query(bundle, user_row: int, include_played: bool = False) -> Query:
    """The query of the known user at ``user_row``: its WMF factors, excluding its played songs
    unless ``include_played``."""
    played = np.asarray(bundle.played(user_row), np.int64)
    exclude = np.zeros(0, np.int64) if include_played else played
    return Query(np.asarray(bundle.user_vector(user_row), np.float32), exclude, False, played)


def recommend(bundle, query: Query, k: int, shares: Mapping[str, float] | None = None,
              diversity: float = 0.0, filters: Filters = NO_FILTERS, *,
              before_widening: Callable[[], None] | None = None,
              queries: dict[str, np.ndarray] | None = None, lists: dict | None = None) -> list[Item]:
    """At most ``k`` songs for ``query`` (:func:`user_query`), best first.

    Every source that can answer the query is searched with its query vector
    (:func:`source_queries`); ``shares`` (as :func:`check_shares` takes them; ``None``: the
    bundle's defaults) set how many songs each contributes; ``diversity`` weighs the MMR
    re-ranking; ``query.exclude_rows`` are never returned. ``before_widening`` is called before
    each repeated, wider search (the server checks the call's deadline there: a rare filter can
    widen to the whole index). ``queries``: :func:`source_queries` of ``query`` when the caller
    has them already (the default lists compute them for a batch). ``k`` (1 to ``MAX_K``) and
    ``diversity`` (in [0, 1]) are checked once, where a request enters: :class:`pmrs.Recommender`
    (or :func:`recommend_for_vector`); shares already resolved (``contract.Shares``) pass as they are.
    """
    queries = source_queries(bundle, query) if queries is None else queries
    return _blend(bundle, queries, k, check_shares(bundle, shares), diversity, query.exclude_rows, filters,
                  before_widening, lists)


def recommend_for_vector(bundle, vector: np.ndarray, k: int, shares: Mapping[str, float] | None = None,
                         diversity: float = 0.0, exclude_rows: Sequence[int] | np.ndarray = (),
                         filters: Filters = NO_FILTERS, *,
                         before_widening: Callable[[], None] | None = None) -> list[Item]:
    """:func:`recommend` for any vector ``(f,)`` in the WMF space (a user's factors, a fold-in, a
    probe), leaving out ``exclude_rows``; sources outside the WMF space are not searched. Checks
    ``k`` and ``diversity`` (:func:`recommend` does not)."""
    k, diversity = check_k(k), check_unit("diversity", diversity)
    exclude = np.asarray(exclude_rows, np.int64).reshape(-1)
    query = Query(np.asarray(vector, np.float32).reshape(-1), exclude, False, np.zeros(0, np.int64))
    return recommend(bundle, query, k, shares, diversity, filters, before_widening=before_widening)


def similar_songs(bundle, song_row: int, k: int, mode: str = MIXED,
                  shares: Mapping[str, float] | None = None, diversity: float = 0.0,
                  filters: Filters = NO_FILTERS, *,
                  before_widening: Callable[[], None] | None = None, lists: dict | None = None) -> list[Item]:
    """At most ``k`` songs similar to the song at ``song_row`` (never the song itself), best first.

    ``mode``: a source's name queries that source with the song's own vector there; ``"mixed"``
    queries every source that has a vector for the song, blended under ``shares`` (a song
    with only some kinds of vector gets those sources' neighbours). Raises :class:`NotFound` when
    the song lacks the vector the mode needs. ``before_widening``, ``k``, ``diversity``: as in
    :func:`recommend`.
    """
    if mode != MIXED and not bundle.has_source(mode):
        raise InvalidArgument(f"mode must be {MIXED!r} or one of the bundle's sources "
                              f"({', '.join(bundle.source_names)}), got {mode!r}")
    if mode == MIXED:
        resolved = check_shares(bundle, shares)
        names = bundle.source_names
    else:
        resolved = {name: float(name == mode) for name in bundle.source_names}
        names = [mode]
    queries: dict[str, np.ndarray] = {}
    for name in names:
        if _sparse(bundle, name):  # the song's own row of neighbours
            if bundle.covers(name, [int(song_row)])[0]:
                queries[name] = np.asarray([int(song_row)], np.int64)
            continue
        v = bundle.song_vector(name, int(song_row))
        if v is not None:
            queries[name] = v
    if not queries:
        if mode == MIXED:
            raise NotFound("the song has no vector in any source, so it has no neighbours")
        raise NotFound(f"{_WHY_MISSING.get(mode, f'the song has no {mode} vector')}; ask for another "
                       f"source or mixed similarity")
    return _blend(bundle, queries, k, resolved, diversity,
                  np.asarray([int(song_row)], np.int64), filters, before_widening, lists, SONG_QUERIES)


_WHY_MISSING = {COLLABORATIVE: "the song has no plays, hence no collaborative vector",
                ACOUSTIC: "the song has no audio, hence no acoustic vector",
                NEIGHBOURS: "the song has no plays shared with another song, hence no neighbours"}


def lists_answer(bundle, lists, k: int, shares: Mapping[str, float], diversity: float) -> bool:
    """Whether default lists (a ``Bundle.lists`` entry; ``None``: none) hold the answer to a
    request with these settings (``shares`` resolved, :func:`check_shares`) and no filters
    (Recommend: of a known user, played songs excluded; SimilarSongs: mixed mode). Shares act only
    through the sources' quotas, so any shares with the lists' quotas match (an explicit 0.2
    arrives as the float32 0.2000000030)."""
    if lists is None or k != lists.k or diversity != lists.diversity:
        return False
    return quotas(bundle.source_names, shares, k) == lists.quotas


def listed_items(lists, row: int) -> list[Item]:
    """Row ``row`` of default lists (a user row for Recommend's, a song row for SimilarSongs'),
    which the caller has checked with :func:`lists_answer`."""
    rows = lists.rows[row].tolist()
    n = rows.index(-1) if -1 in rows else len(rows)
    return [Item(r, s, c) for r, s, c in
            zip(rows[:n], lists.scores[row, :n].tolist(), lists.sources[row, :n].tolist())]


def _sparse(bundle, name: str) -> bool:
    """Whether source ``name`` is a neighbours source (searched with song rows, not a vector)."""
    return bundle.sources[name].kind == SPARSE_NEIGHBOURS


def _index_size(bundle, name: str) -> int:
    """Vectors in the bundle's source ``name`` (0 when the bundle has no such source)."""
    return int(bundle.source_size(name))


class _Candidates:
    """Searches one index for a query, dropping excluded and filtered rows, and widens on demand."""

    def __init__(self, bundle, name: str, query: np.ndarray, exclude: np.ndarray, filters: Filters,
                 catalog: dict[int, dict | None], top: int, kind: str = USER_QUERIES):
        # a vector source is searched with a query vector; a neighbours source with song rows
        self.sparse = _sparse(bundle, name)
        self.bundle, self.name, self.query = bundle, name, query if self.sparse else query[None, :]
        self.exclude, self.filters, self.catalog, self.kind = exclude, filters, catalog, kind
        self.size = _index_size(bundle, name)
        self.top = min(top, self.size)
        self.rows = np.zeros(0, np.int64)
        self.scores = np.zeros(0, np.float32)
        if self.top > 0:
            self._fetch()

    @property
    def exhausted(self) -> bool:
        return self.top >= self.size

    def widen(self) -> None:
        self.top = min(self.top * WIDEN_FACTOR, self.size)
        self._fetch()

    def _fetch(self) -> None:
        if self.sparse:
            scores, rows = self.bundle.search_songs(self.name, self.query, self.top)  # best first
        else:
            scores, rows = self.bundle.search(self.name, self.query, self.top, self.kind)
        scores, rows = scores[0], rows[0]
        keep = rows >= 0
        if self.exclude.size:  # sorted, unique
            pos = np.minimum(np.searchsorted(self.exclude, rows), self.exclude.size - 1)
            keep &= self.exclude[pos] != rows
        rows, scores = rows[keep], scores[keep]
        if self.filters.active and rows.size:
            missing = [int(r) for r in rows if int(r) not in self.catalog]
            if missing:
                self.catalog.update(zip(missing, self.bundle.songs(missing)))
            keep = self.filters.keep([self.catalog[int(r)] for r in rows])
            rows, scores = rows[keep], scores[keep]
        self.rows, self.scores = rows, scores


def _blend(bundle, queries: dict[str, np.ndarray], k: int, shares: Mapping[str, float], diversity: float,
           exclude_rows, filters: Filters, before_widening: Callable[[], None] | None = None,
           lists: dict | None = None, kind: str = USER_QUERIES) -> list[Item]:
    exclude = np.asarray(list(exclude_rows) if not isinstance(exclude_rows, np.ndarray) else exclude_rows,
                         np.int64)
    if exclude.size > 1 and not (exclude[1:] > exclude[:-1]).all():  # (played songs come sorted)
        exclude = np.unique(exclude)
    quota = quotas(bundle.source_names, shares, k)
    catalog: dict[int, dict | None] = {}
    top = candidate_count(k)
    cands = [_Candidates(bundle, name, q, exclude, filters, catalog, top, kind)
             for name, q in queries.items() if _index_size(bundle, name) > 0]
    while True:
        # An index the blend draws from needs k survivors (then its share survives whatever the
        # other index takes); all together need k distinct songs.
        short = not any(c.rows.size >= k for c in cands) and np.unique(
            np.concatenate([c.rows for c in cands] or [np.zeros(0, np.int64)])).size < k
        widen = [c for c in cands if not c.exhausted
                 and (short or (quota[c.name] > 0 and c.rows.size < k))]
        if not widen:
            break
        if before_widening is not None:
            before_widening()
        for c in widen:
            c.widen()
    if lists is not None:   # each source's candidates, best first (an explanation's ranks)
        lists.update({c.name: c.rows for c in cands})
    return _select(bundle, cands, quota, k, diversity)


def _select(bundle, cands: list["_Candidates"], quota: dict[str, int], k: int,
            diversity: float) -> list[Item]:
    """The blend (:func:`pmrs.blend.pick`) of the candidate lists; a song several lists hold is
    scored with the highest of its scores and marked with each of their sources."""
    picks = pick([(c.rows, c.scores) for c in cands], [quota[c.name] for c in cands], k, diversity,
                       embedding=bundle.embedding)
    if not picks:
        return []
    by_list = [dict(zip(c.rows.tolist(), c.scores.tolist())) for c in cands]
    bits = [bundle.sources[c.name].bit for c in cands]
    lists = list(zip(by_list, bits))
    items = []
    for r, _ in picks:
        best, mask = None, 0
        for d, bit in lists:
            v = d.get(r)
            if v is not None:
                mask |= bit
                if best is None or v > best:
                    best = v
        items.append(Item(r, best, mask))
    return items
