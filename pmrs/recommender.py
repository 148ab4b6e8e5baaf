"""``pmrs.Recommender``: the public Python API over a bundle.

One object answers the questions PMRS answers, with the same verbs everywhere (implicit's
``recommend`` / ``similar_items`` in PMRS's terms): :meth:`Recommender.recommend`,
:meth:`Recommender.similar_songs`, :meth:`Recommender.song` and :meth:`Recommender.info`. It
takes song and user ids and returns plain dataclasses with song ids, and it owns the decision to
answer a default request from the bundle's precomputed lists or to compute it. The gRPC server,
the evaluation and the demo call it; the server only translates messages.

    >>> import pmrs
    >>> with pmrs.Recommender.open("pmrs-data") as rec:          # a work directory or a bundle
    ...     for s in rec.recommend("b80344d063b5ccb3212f76538f3d9e43d87dca9e", k=5).songs:
    ...         print(s.song_id, s.artist, s.title, s.sources)
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
from typing import Callable, ContextManager, Iterable, Mapping, Sequence

import numpy as np

from .errors import AlreadyExists, InvalidArgument, LogUnavailable, NotFound, ReadOnly
from .ids import check_id
from .live.feedback import Feedback, sink_skipped
from .live.log import WriteLog
from .live.state import Encoder, LiveState
from .results import (AddedSong, Appended, BundleInfo, GenreList, GenreRecommendations, GenreScore, History,
                      HistorySong, ListInfo, NameCount, RadioSongs, Recommendations, ScoredSong, Song, SourceInfo)
from .serving import contract as C
from .serving.bundle import Bundle
from .serving import radio as R
from .serving.explain import explain as explain_items
from .serving.recommend import (MIXED, NO_FILTERS, Filters, Item, ServingError, check_k, check_shares, check_unit,
                                listed_items, lists_answer, recommend, similar_songs, user_query)
from .text import quote_prefix
from . import songtext

# (the result types and errors are defined in pmrs.results and pmrs.errors; importable from here too)
__all__ = ["AddedSong", "AlreadyExists", "Appended", "BundleInfo", "CallHooks", "Filters", "GenreList",
           "GenreRecommendations", "GenreScore", "InvalidArgument", "ListInfo", "LogUnavailable", "MIXED", "NotFound",
           "RadioSongs", "ReadOnly", "Recommendations", "Recommender", "ScoredSong", "ServingError", "Song", "SourceInfo"]


#: Candidates drawn (per source, before grouping) for the per-genre lists.
GENRE_CANDIDATES = 300


class CallHooks:
    """What a server adds around a call (the base class adds nothing): ``slot()`` is entered
    around computing an answer (not around a lookup in the default lists), ``check(stage)`` is
    called between stages and before each widened search and raises to abandon the call (a
    passed deadline)."""

    def slot(self) -> ContextManager:
        return contextlib.nullcontext()

    def check(self, stage: str) -> None:
        return None


_NO_HOOKS = CallHooks()


class Recommender:
    """Recommendations over one bundle. Open with :meth:`open`; thread-safe; close with
    :meth:`close` or a ``with`` block.

    defaults: what requests that leave a setting unset get; ``None``: the bundle's own (recorded
    by the indexer). With other defaults the precomputed lists still answer the requests they
    hold; the others are computed.
    """

    def __init__(self, bundle: Bundle, defaults: C.Defaults | None = None, live: LiveState | None = None):
        self.bundle = bundle
        self.defaults = defaults or bundle.defaults
        self.live = live
        names = bundle.source_names
        # every source mask a list entry can carry -> the names of its sources (bundle order)
        self._mask_names = {m: tuple(n for i, n in enumerate(names) if m >> i & 1)
                            for m in range(1 << len(names))}
        # (default shares of sources this bundle lacks, e.g. acoustic without a CNN run, are moot)
        self._default_shares = C.resolve_shares(names, self.defaults.shares)
        self._artists: dict[str, list[int]] | None = None   # case-folded artist -> bundle song rows
        self._artists_lock = threading.Lock()

    @classmethod
    def open(cls, path: str | os.PathLike, *, verify: bool = False, threads: int | None = 1,
             defaults: C.Defaults | None = None, live: bool | WriteLog = False,
             encoder: Encoder | None = None, warm_up: bool = False) -> "Recommender":
        """Open the bundle at ``path``: a bundle directory, or a work directory (then the bundle its
        ``bundles/CURRENT`` names). ``verify``: check every file's checksum first. ``threads``:
        FAISS threads per search (``None``: the process's setting).

        live: take writes (:meth:`record_plays`, :meth:`add_song`) and apply the work directory's
        write log (``live/writes.sqlite``) on top of the bundle: ``True`` opens the log of the
        work directory ``path`` is (or holds the bundle of), a :class:`~pmrs.live.log.WriteLog`
        is used as it is. The writes newer than the bundle are replayed now.
        encoder: makes added songs' vectors (default: the bundle's own models, when it carries
        them, :func:`pmrs.live.songs.bundle_encoder`; ``warm_up``: run its audio path once in the
        background now, so that the first added clip does not pay for loading it)."""
        bundle = Bundle.open(C.resolve_bundle(path), verify=verify, threads=threads)
        if not live:
            return cls(bundle, defaults)
        try:
            wlog = live if isinstance(live, WriteLog) else WriteLog.of(C.workdir_of(path))
            if encoder is None:
                from .live.songs import bundle_encoder
                encoder = bundle_encoder(bundle, warm_up=warm_up)
            state = LiveState(bundle, wlog, encoder)
            state.load_feedback()
            state.catch_up()
        except BaseException:
            bundle.close()
            raise
        return cls(bundle, defaults, state)

    @property
    def version(self) -> str:
        return self.bundle.version

    @property
    def sources(self) -> list[str]:
        return self.bundle.source_names

    def close(self) -> None:
        self.bundle.close()

    def __enter__(self) -> "Recommender":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the verbs ------------------------------------------------------------------------------

    def recommend(self, user_id: str | None = None, seed_song_ids: Sequence[str] = (), k: int | None = None,
                  shares: Mapping[str, float] | None = None, diversity: float | None = None,
                  filters: Filters | None = None, include_played: bool = False, explain: bool = False, *,
                  hooks: CallHooks | None = None) -> Recommendations:
        """Songs for a known user (``user_id``) or for a listener described by seed songs.

        k: songs to return (1 to 1000; ``None`` or 0: the default). shares: each named source's
        share of the list (``contract.resolve_shares``; ``None``: the defaults). diversity: MMR
        weight in [0, 1]. filters: restrictions on the songs. include_played: allow songs the
        user played (or sent as seeds). explain: each song carries its reasons, one per source
        that placed it (:mod:`pmrs.serving.explain`; the answer is computed, not looked up).
        Raises :class:`InvalidArgument` or :class:`NotFound`.
        """
        hooks = hooks or _NO_HOOKS
        b = self.bundle
        k = self._k(k)
        share = self._shares(shares)
        div = self.defaults.diversity if diversity is None else check_unit("diversity", diversity)
        filters = filters or NO_FILTERS
        seeds = _strs(seed_song_ids, "seed_song_ids")
        feedback = self.live.feedback_of(user_id) if self.live is not None and user_id else None
        if (user_id and not include_played and not filters.active and len(seeds) <= C.MAX_SEEDS and not explain
                and not (self.live is not None and self.live.has_user(user_id)) and not (feedback and feedback.narrows)
                and lists_answer(b, b.lists.get("recommend"), k, share, div)):
            row = b.user_row(user_id)
            if row is not None:  # the default request of a known user: computed at build time
                return Recommendations(self._scored(listed_items(b.lists["recommend"], row)), b.version,
                                       folded_in=False, precomputed=True)
        view = self._view()
        with hooks.slot():
            query = user_query(view, user_id or "", seeds, include_played)
            if feedback is not None and feedback.narrows:   # dislikes and hidden artists: never
                query, filters = _without_disliked(query, filters, feedback)
            hooks.check("before the search")
            lists: dict | None = {} if explain else None
            items = recommend(view, query, k, share, div, filters,
                              before_widening=_widening(hooks), lists=lists)
            if feedback is not None and feedback.skips:     # skipped songs sink
                items = [items[i] for i in sink_skipped([it.song_row for it in items], feedback.skips)]
            reasons = None
            if explain:
                counts = None if query.folded_in else view.play_counts(view.user_row(user_id))
                reasons = explain_items(view, items, query.profile_rows, counts, lists, share, query.vector)
        hooks.check("before the answer was ready")
        return Recommendations(self._scored(items, view, reasons), b.version, folded_in=query.folded_in)

    def similar_songs(self, song_id: str, k: int | None = None, mode: str = MIXED,
                      shares: Mapping[str, float] | None = None, diversity: float | None = None,
                      filters: Filters | None = None, explain: bool = False, *,
                      hooks: CallHooks | None = None) -> Recommendations:
        """Songs similar to ``song_id`` (never itself). mode: ``"mixed"`` (every source with a
        vector for the song, blended under ``shares``) or one source's name. diversity: MMR weight
        (``None``: the default, no re-ranking unless configured). explain: as :meth:`recommend`'s,
        the evidence being the song itself."""
        hooks = hooks or _NO_HOOKS
        b = self.bundle
        k = self._k(k)
        share = self._shares(shares)
        div = self.defaults.similar_diversity if diversity is None else check_unit("diversity", diversity)
        filters = filters or NO_FILTERS
        view = self._view()
        row = self._song_row(song_id, view)
        lists = b.lists.get("similar")
        if (mode == MIXED and not filters.active and row < b.n_songs and not explain
                and lists_answer(b, lists, k, share, div)):
            items = listed_items(lists, row)
            if items:  # (a song without vectors has none: the computed path says why)
                return Recommendations(self._scored(items), b.version, precomputed=True)
        with hooks.slot():
            hooks.check("before the search")
            found: dict | None = {} if explain else None
            try:
                items = similar_songs(view, row, k, mode, share, div, filters, before_widening=_widening(hooks),
                                      lists=found)
            except NotFound as exc:
                raise NotFound(f"song {quote_prefix(song_id)}: {exc}") from None
            reasons = None
            if explain:
                used = share if mode == MIXED else {name: float(name == mode) for name in b.source_names}
                reasons = explain_items(view, items, np.asarray([row], np.int64), None, found, used)
        hooks.check("before the answer was ready")
        return Recommendations(self._scored(items, view, reasons), b.version)

    def radio(self, song_id: str | None = None, artist: str | None = None, seed_song_ids: Sequence[str] = (),
              user_id: str | None = None, k: int | None = None, token: str | None = None,
              artist_gap: int | None = None, diversity: float | None = None,
              session: Sequence[tuple[str, str]] = (), explain: bool = False, *,
              hooks: CallHooks | None = None) -> RadioSongs:
        """The next ``k`` songs of a radio (:mod:`pmrs.serving.radio`): songs that never repeat,
        keep an artist apart from itself and drift from the start as they go.

        A new radio starts from one of ``song_id``, ``artist`` (the artist's songs) and
        ``seed_song_ids``, or from ``user_id`` alone (the user's most played songs); ``user_id``
        is also the listener: their dislikes and hidden artists stay out, their skips sink. A
        radio goes on with the ``token`` of its last answer (a start given with it must be the
        token's). ``session``: what the listener did since, ``(song_id, action)`` pairs with
        action ``"skip"``, ``"dislike"`` (the song's artist is left out from then on) or
        ``"like"`` (the song steers the radio). ``artist_gap``: songs of other artists between
        two songs of one artist (0 to 50; ``None``: the token's, else
        ``pmrs.serving.radio.ARTIST_GAP``); ``diversity``: how far the radio wanders from its
        start, and the MMR weight (``None``: the token's, else ``pmrs.serving.radio.DIVERSITY``).
        explain: each song carries its reasons (its evidence: the start and the recent songs).
        Raises :class:`InvalidArgument` (no start or two, a token that cannot be read or that
        another start's, a setting out of range) or :class:`NotFound` (an unknown song, artist or
        user)."""
        hooks = hooks or _NO_HOOKS
        k = self._k(k)
        events = R.check_session(session)
        fresh = R.Start(song=song_id or "", artist=(artist or "").strip(),
                        seeds=tuple(_strs(seed_song_ids, "seed_song_ids")), user=user_id or "")
        if token:
            state = R.decode_token(token)
            s = state.start
            if ((fresh.song and fresh.song != s.song) or (fresh.artist and fresh.artist != s.artist)
                    or (fresh.seeds and fresh.seeds != s.seeds) or (fresh.user and fresh.user != s.user)):
                raise InvalidArgument(f"the token continues the radio of {s.describe()}, not the start given; "
                                      "send the token alone, or no token for a new radio")
        else:
            state = R.State(fresh.check())
        if artist_gap is not None:
            state = dataclasses.replace(state, artist_gap=R.check_gap(artist_gap))
        if diversity is not None:
            # (to 6 decimals: a diversity sent as a 32-bit float continues the same radio as the decimal)
            state = dataclasses.replace(state, diversity=round(check_unit("diversity", diversity), 6))
        view = self._view()
        start = state.start
        if events:
            known = view.song_rows([song for song, _ in events])
            if (known < 0).any():
                missing = events[int(np.flatnonzero(known < 0)[0])][0]
                raise NotFound(f"unknown song {quote_prefix(missing)} in the radio's session")
            artists = {song: str(f.get("artist") or "") for (song, _), f in zip(events, view.songs(known))}
            state = state.with_session(events, artists.__getitem__)
        with hooks.slot():
            anchors = self._radio_start(view, start, fresh=not token)
            at_start = set(anchors)
            steering = [s for s in state.steering() if s not in at_start]
            seeds = anchors[:max(C.MAX_SEEDS - len(steering), 1)] + steering[:C.MAX_SEEDS - 1]
            if not seeds:
                raise NotFound(f"the radio's start ({start.describe()}) is not in the served bundle")
            query = user_query(view, "", seeds)
            gone = view.song_rows(list(state.played) + list(state.skipped) + list(state.disliked))
            query = dataclasses.replace(query, exclude_rows=np.union1d(query.exclude_rows, gone[gone >= 0]))
            filters = Filters(exclude_artists=state.avoided)
            feedback = self.live.feedback_of(start.user) if self.live is not None and start.user else None
            if feedback is not None and feedback.narrows:
                query, filters = _without_disliked(query, filters, feedback)
            share = self._default_shares
            skipped = view.song_rows(list(state.skipped))
            wanted = min(C.MAX_K, max(5 * k, 50))
            while True:
                hooks.check("before the search")
                lists: dict = {}
                items = recommend(view, query, wanted, share, state.diversity, filters,
                                  before_widening=_widening(hooks), lists=lists)
                rows = np.asarray([it.song_row for it in items], np.int64)
                order = R.sink_like_skipped(view, rows, skipped[skipped >= 0]).tolist()
                if feedback is not None and feedback.skips:
                    order = [order[i] for i in sink_skipped([int(rows[j]) for j in order], feedback.skips)]
                items = [items[i] for i in order]
                fields = view.songs([it.song_row for it in items], copy=False)
                artists = [str(f.get("artist") or "").strip().casefold() for f in fields]
                taken, relaxed = R.pick_apart([it.song_row for it in items], artists, state.artists,
                                              state.artist_gap, k)
                if not relaxed or wanted >= C.MAX_K or len(items) < wanted:
                    break
                wanted = C.MAX_K    # the gap could not be kept among the first candidates: look further
            picked = [items[i] for i in taken]
            reasons = (explain_items(view, picked, query.profile_rows, None, lists, share, query.vector)
                       if explain else None)
        state = state.after([fields[i]["song_id"] for i in taken], [artists[i] for i in taken])
        hooks.check("before the answer was ready")
        return RadioSongs(self._scored(picked, view, reasons), R.encode_token(state), self.bundle.version, relaxed)

    def _radio_start(self, view, start: R.Start, fresh: bool) -> list[str]:
        """The song ids a radio starts from; :class:`NotFound` for an unknown song, artist or user
        of a new radio (a continued one drops what the served bundle lacks)."""
        if start.song or start.seeds:
            ids = [start.song] if start.song else list(start.seeds)
            rows = view.song_rows(ids)
            if fresh and start.song and rows[0] < 0:
                raise NotFound(f"unknown song {quote_prefix(start.song)}")
            return [i for i, r in zip(ids, rows.tolist()) if r >= 0]
        if start.artist:
            rows = self._artist_rows(view, start.artist)
            if fresh and not rows:
                raise NotFound(f"no song by the artist {quote_prefix(start.artist)}")
            return [view.song_id(r) for r in rows[:R.START_SONGS]]
        row = view.user_row(start.user)
        if row is None or not len(view.played(row)):
            if fresh:
                raise NotFound(f"unknown user {quote_prefix(start.user)} (or one with no plays to start a radio "
                               f"from)")
            return []
        played = np.asarray(view.played(row), np.int64)
        counts = np.asarray(view.play_counts(row), np.float64)
        return [view.song_id(int(r)) for r in played[np.argsort(-counts, kind="stable")[:R.START_SONGS]]]

    def _artist_rows(self, view, artist: str) -> list[int]:
        """The song rows of ``artist`` (case-insensitive): the bundle's, from an index built on
        the first call (from the bundle's search text, ``pmrs.songtext``; in a bundle built
        before it, one pass over the catalog), then the songs added live."""
        with self._artists_lock:
            if self._artists is None:
                ids, names = [], []
                text = self.bundle.path / C.SONG_TEXT_FILE
                found = ((sid, artist.strip()) for sid, artist in songtext.artists(text)) if text.is_file() else \
                    ((sid, str((f or {}).get("artist") or "").strip().casefold()) for sid, f in self.bundle.catalog_items())
                for song_id, name in found:
                    if name:
                        ids.append(song_id)
                        names.append(name)
                index: dict[str, list[int]] = {}
                for name, row in zip(names, self.bundle.song_rows(ids).tolist() if ids else []):
                    if row >= 0:
                        index.setdefault(name, []).append(int(row))
                self._artists = index
        wanted = artist.strip().casefold()
        rows = sorted(self._artists.get(wanted, []))
        n = self.bundle.n_songs
        if view.n_songs > n:   # songs added live
            added = range(n, view.n_songs)
            rows += [r for r, f in zip(added, view.songs(list(added), copy=False))
                     if str(f.get("artist") or "").strip().casefold() == wanted]
        return rows

    def recommend_by_genre(self, user_id: str | None = None, seed_song_ids: Sequence[str] = (),
                           k: int | None = None, genres: Sequence[str] = (), include_played: bool = False,
                           *, hooks: CallHooks | None = None) -> GenreRecommendations:
        """Songs for a user (or seed songs) under each genre, with per-genre confidences.

        The listener's top ``GENRE_CANDIDATES`` recommendations (default shares, no re-ranking)
        are grouped by genre: a song with a catalog genre belongs to it, with confidence 1 (a guess
        never overrules a known genre); a song without one, to the genre its genre head finds
        most likely, with that probability as its confidence, unless the head learned from too
        little (``Song.genre_warning``; its guesses file nothing); any other song is left out. Each genre keeps its ``k``
        best songs (``k``: 1 to 1000, ``None``: the default k). A genre's confidence is its share
        of the candidates' relevance weighted by those confidences, a candidate's relevance being
        its place in the blended list (1 for the first, falling linearly): the sources' raw
        scores are not on one scale.
        ``genres`` keeps only these (case-insensitive). Raises as :meth:`recommend`.
        """
        hooks = hooks or _NO_HOOKS
        b = self._view()
        k = self._k(k)
        wanted = {g.strip().casefold() for g in _strs(genres, "genres") if g.strip()}
        seeds = _strs(seed_song_ids, "seed_song_ids")
        with hooks.slot():
            query = user_query(b, user_id or "", seeds, include_played)
            hooks.check("before the search")
            items = recommend(b, query, GENRE_CANDIDATES, self._default_shares, 0.0,
                              before_widening=_widening(hooks))
        hooks.check("before the answer was ready")
        rows = np.asarray([it.song_row for it in items], np.int64)
        scored = self._scored(items, b)
        have, probs = b.genre_probs_many(rows)
        guesses = not b.genre_warning   # (an undertrained head's guesses file nothing)
        genre_of: list[tuple[str, float] | None] = []
        head = iter(probs)
        for s, audio in zip(scored, have.tolist()):
            p = next(head) if audio else None
            if s.genre:   # a known genre is never overruled by a guess
                genre_of.append((s.genre, 1.0))
            elif guesses and p is not None and len(b.genres) == len(p):
                g = int(np.argmax(p))
                genre_of.append((b.genres[g], float(p[g])))
            else:
                genre_of.append(None)
        rel = 1.0 - np.arange(len(items)) / max(len(items), 1)
        mass: dict[str, float] = {}
        lists: dict[str, tuple[list[ScoredSong], list[float]]] = {}
        for s, found, r in zip(scored, genre_of, rel.tolist()):
            if found is None:
                continue
            g, conf = found
            mass[g] = mass.get(g, 0.0) + r * conf
            songs, confs = lists.setdefault(g, ([], []))
            if len(songs) < k:
                songs.append(s)
                confs.append(conf)
        total = sum(mass.values()) or 1.0
        out = [GenreList(g, mass[g] / total, *lists[g]) for g in sorted(mass, key=lambda g: (-mass[g], g))
               if not wanted or g.casefold() in wanted]
        return GenreRecommendations(out, b.version, folded_in=query.folded_in)

    def song(self, song_id: str) -> Song:
        """The catalog entry of ``song_id``, the sources with a vector for it and its genre
        confidences, with why those or its acoustic vector are unreliable when the acoustic model
        learned from too little (``pmrs.acoustic.undertrained``). :class:`NotFound` for an unknown id."""
        b = self._view()
        row = self._song_row(song_id, b)
        s = b.songs([row])[0]
        probs = b.genre_probs(row)
        scores: tuple = ()
        if probs is not None and len(b.genres) == len(probs):
            order = np.argsort(-np.asarray(probs), kind="stable")
            scores = tuple(GenreScore(b.genres[i], float(probs[i])) for i in order)
        tags = sorted(b.song_tags(row).items(), key=lambda kv: (-kv[1], kv[0]))[:C.MAX_SONG_TAGS]
        sources = tuple(b.song_sources(row))
        return Song(song_id=s["song_id"], title=s["title"], artist=s["artist"], release=s["release"],
                    year=int(s["year"] or 0), genre=s["genre"], sources=sources,
                    genre_scores=scores, tags=tuple((t, float(w)) for t, w in tags),
                    genre_warning=b.genre_warning if scores else "",
                    acoustic_warning=b.acoustic_warning if C.ACOUSTIC in sources else "")

    # -- live writes ------------------------------------------------------------------------------

    def _writable(self) -> LiveState:
        if self.live is None:
            raise ReadOnly("this recommender takes no writes (open it with live=True over a work directory)")
        return self.live

    def record_plays(self, user_id: str, plays: Mapping[str, int] | Sequence[tuple[str, int]],
                     request_id: str | None = None) -> Appended:
        """Record that ``user_id`` played songs (``{song_id: count}`` or ``(song_id, count)``
        pairs): written durably to the write log, then the user's vector is recomputed from their
        whole history, so the next :meth:`recommend` reflects the plays and leaves the songs out.
        A new user id is created. ``request_id``: a retried call with the same id is applied once.
        Raises :class:`NotFound` (an unknown song; nothing is recorded), :class:`InvalidArgument`
        (counts not whole numbers in 1..100,000, too many pairs), :class:`ReadOnly`, or
        ``LogUnavailable`` (the log cannot be written; nothing is recorded)."""
        try:
            pairs = list(plays.items()) if isinstance(plays, Mapping) else [tuple(p) for p in plays]
        except TypeError:
            raise InvalidArgument("plays must be {song_id: count} or (song_id, count) pairs, "
                                  f"got {type(plays).__name__}") from None
        return self._writable().record_plays(user_id, pairs, request_id)

    def history(self, user_id: str, limit: int = 50) -> History:
        """What PMRS knows of ``user_id``: the songs played (the bundle's and live plays; the
        ``limit`` most played), liked, disliked and skipped, the artists hidden, and the top
        artists and genres by plays. Raises :class:`NotFound` for a user with neither plays nor
        feedback, :class:`InvalidArgument` for a ``limit`` outside 1..1000."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= C.MAX_K:
            raise InvalidArgument(f"limit must be a whole number in 1..{C.MAX_K}, got {limit!r}")
        check_id("user_id", user_id)
        view = self._view()
        row = view.user_row(user_id)
        feedback = (self.live.feedback_of(user_id) if self.live is not None else None) or Feedback()
        if row is None and feedback == Feedback():
            raise NotFound(f"unknown user {quote_prefix(user_id)}")
        played = np.asarray(view.played(row), np.int64) if row is not None else np.zeros(0, np.int64)
        counts = np.asarray(view.play_counts(row), np.float64) if row is not None else np.zeros(0)
        fields = dict(zip(played.tolist(), view.songs(played))) if len(played) else {}
        artists: dict[str, float] = {}
        genres: dict[str, float] = {}
        for r, c in zip(played.tolist(), counts.tolist()):
            f = fields[r]
            if f.get("artist"):
                artists[f["artist"]] = artists.get(f["artist"], 0) + c
            if f.get("genre"):
                genres[f["genre"]] = genres.get(f["genre"], 0) + c
        plays = dict(zip(played.tolist(), counts.tolist()))

        def songs(rows) -> tuple[HistorySong, ...]:
            rows = [int(r) for r in rows]
            return tuple(HistorySong(str(f.get("song_id", "")), str(f.get("title") or ""), str(f.get("artist") or ""),
                                     str(f.get("genre") or ""), int(f.get("year") or 0), int(plays.get(r, 0)),
                                     int(feedback.skips.get(r, 0)))
                         for r, f in zip(rows, view.songs(np.asarray(rows, np.int64)) if rows else []))

        def top(d: dict) -> tuple[NameCount, ...]:
            return tuple(NameCount(n, int(c)) for n, c in sorted(d.items(), key=lambda kv: (-kv[1], kv[0]))[:10])

        most = played[np.argsort(-counts, kind="stable")[:limit]]
        return History(user_id, len(played), songs(most), songs(sorted(feedback.liked)), songs(sorted(feedback.disliked)),
                       songs(sorted(feedback.skips)), tuple(sorted(feedback.hidden_artists)), top(artists), top(genres))

    def record_feedback(self, user_id: str, song_id: str, action: str, request_id: str | None = None) -> Appended:
        """Record what ``user_id`` thinks of ``song_id``: ``"like"`` (counts as
        ``pmrs.live.feedback.LIKE_PLAYS`` plays), ``"skip"`` (the song sinks in the user's lists),
        ``"dislike"`` (it never comes back to them) or ``"hide_artist"`` (no song by its artist
        does), or takes one back (``"undo_like"``, ``"undo_dislike"``, ``"undo_hide_artist"``,
        ``"undo_skip"``); written durably to the write log first, applied at once, kept through rebuilds
        (:mod:`pmrs.live.feedback`). ``request_id``: a retried call with the same id is applied
        once. Raises :class:`InvalidArgument`, :class:`NotFound` (an unknown song),
        :class:`ReadOnly` or ``LogUnavailable`` (nothing is recorded)."""
        return self._writable().record_feedback(user_id, song_id, action, request_id)

    def add_song(self, song_id: str, *, title: str = "", artist: str = "", release: str = "", year: int = 0,
                 genre: str = "", tags: Sequence[str] = (), audio: bytes | None = None,
                 filename: str = "clip", request_id: str | None = None) -> AddedSong:
        """Add a song nobody has heard: catalog fields and, optionally, its audio clip (bytes in
        any container ``pmrs extract`` reads; ``filename`` hints the container). Its vectors come
        from the bundle's models (the CNN from the clip, the metadata model from the fields), so
        it is found by :meth:`song`, has neighbours in :meth:`similar_songs` and can be
        recommended at once. Raises ``AlreadyExists`` (a known id), :class:`InvalidArgument`
        (fields out of range; audio that cannot be decoded, silent, too short or too long)."""
        fields = {"title": title, "artist": artist, "release": release, "year": year, "genre": genre,
                  "tags": tags}
        clip = (filename or "clip", bytes(audio)) if audio is not None else None
        done = self._writable().add_song(song_id, fields, clip, request_id)
        return AddedSong(self.song(song_id), done.seq, done.duplicate)

    def refresh(self) -> int:
        """Apply writes other processes logged since the last call; returns how many."""
        return self.live.catch_up() if self.live is not None else 0

    @property
    def live_seq(self) -> int:
        """The last write this recommender reflects (the bundle's own when it takes no writes)."""
        return self.live.seq if self.live is not None else int(self.bundle.manifest.get("live_seq") or 0)

    def info(self) -> BundleInfo:
        """What the bundle holds: counts, sources with their index and recall, default lists."""
        b = self.bundle
        m = b.manifest
        counts = m.get("counts", {})
        sources = []
        for name, spec in b.sources.items():
            ix = spec.index
            sources.append(SourceInfo(name=name, space=spec.space, covers_cold=spec.covers_cold,
                                      spec=str(ix.get("spec", "")), vectors=b.source_size(name),
                                      dimension=b.source_dimension(name),
                                      search_params=dict(ix.get("search_params") or {}),
                                      recall_at_10=float(ix.get("recall_at_10") or 0.0),
                                      default_share=self._default_shares[name]))
        lists = [ListInfo(kind, dl.k, dict(dl.shares), dl.diversity) for kind, dl in sorted(b.lists.items())]
        return BundleInfo(version=b.version, created_at=str(m.get("created_at", "")),
                          format_version=b.format_version, users=int(counts.get("users", b.n_users)),
                          songs=int(counts.get("songs", b.n_songs)),
                          songs_with_plays=int(counts.get("songs_with_plays", 0)),
                          songs_with_audio=int(counts.get("songs_with_audio", 0)), sources=sources,
                          source_runs={str(a): str(v) for a, v in (m.get("source_runs") or {}).items()
                                       if v is not None},
                          default_lists=lists, defaults=self.defaults, live_seq=self.live_seq,
                          accepts_writes=self.live is not None)

    # -- helpers ------------------------------------------------------------------------------

    def _k(self, k: int | None) -> int:
        return self.defaults.k if not k else check_k(k)

    def _shares(self, shares: Mapping[str, float] | None) -> dict[str, float]:
        return check_shares(self.bundle, shares, self.defaults.shares) if shares else self._default_shares

    def _view(self):
        return self.bundle if self.live is None else self.live.view()

    def _song_row(self, song_id: str, view=None) -> int:
        if not song_id:
            raise InvalidArgument("song_id is required")
        row = (view or self.bundle).song_row(song_id)
        if row is None:
            raise NotFound(f"unknown song {quote_prefix(song_id)}")
        return int(row)

    def _scored(self, items: Iterable[Item], view=None, reasons=None) -> list[ScoredSong]:
        items = list(items)
        if not items:
            return []
        names = self._mask_names
        songs = (view or self.bundle).songs([it.song_row for it in items], copy=False)
        reasons = reasons or [()] * len(items)
        return [ScoredSong(s["song_id"], s["title"], s["artist"], s["genre"], int(s["year"] or 0), it.score,
                           names[it.sources], why)
                for it, s, why in zip(items, songs, reasons)]


def _strs(values: Sequence[str], what: str) -> list[str]:
    if isinstance(values, str):  # a bare string would be split into characters
        raise TypeError(f"{what} must be a sequence of strings, not a string")
    return list(values)


def _widening(hooks: CallHooks) -> Callable[[], None] | None:
    if hooks is _NO_HOOKS:
        return None
    return lambda: hooks.check("while the search was widened to find enough songs")


def _without_disliked(query, filters: Filters, feedback: Feedback):
    """``query`` and ``filters`` that also leave out the user's disliked songs and hidden artists."""
    import dataclasses

    rows = np.fromiter(feedback.disliked, np.int64, len(feedback.disliked))
    query = dataclasses.replace(query, exclude_rows=np.union1d(np.asarray(query.exclude_rows, np.int64), rows))
    if feedback.hidden_artists:
        filters = Filters(genres=filters.genres, min_year=filters.min_year, max_year=filters.max_year,
                          exclude_artists=tuple(filters.exclude_artists) + tuple(sorted(feedback.hidden_artists)))
    return query, filters
