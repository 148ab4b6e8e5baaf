"""Radio: an endless sequence of songs from a start (a song, an artist, seed songs or a user's
most played songs) that never repeats, keeps an artist apart from itself, drifts with the
diversity setting and follows what the listener does (a skip or a dislike steers what comes next).

A radio is answered a stretch at a time. Each stretch ends with a *token*, which holds the whole
state of the radio, so that any server, replica or restart continues it (nothing is kept between
calls): the start, the settings, the songs already played (the last :data:`MEMORY`, by id) and
the artists of the last ones, and the session's steering (songs skipped, disliked and liked, the
artists of disliked songs). It holds ids, not bundle rows, so a new bundle continues an old
radio (ids it lacks are dropped). A token is ``r1.`` and the base64url of compressed JSON; it is
not signed (it is the listener's own state, and holds nothing another call could not ask for);
one that cannot be read, or reads as something other than a radio's state, is
:class:`~pmrs.errors.InvalidArgument`.

How the next stretch is chosen (:func:`next_songs`), through the one blend (:func:`recommend`
with seed songs, :func:`user_query`):

- The query is the start's songs plus the last ``round(diversity * DRIFT_WINDOW)`` songs played
  that were not skipped or disliked, plus the songs liked in the session: at diversity 0 the radio
  stays with its start, at 1 the recent songs outweigh it. The diversity is also the blend's MMR
  weight.
- Songs played, skipped or disliked never come back; the artists of disliked songs are left out
  for the rest of the radio (``Filters.exclude_artists``).
- The candidates that sound most like a skipped song (its :data:`SKIP_NEIGHBOURS` nearest by
  the CNN embeddings' cosine) sink below the others, so the neighbours of a skipped song come later.
- Artist separation: a song's artist (case-folded; songs without an artist are free) is none of
  the artists of the ``artist_gap`` songs before it, across stretches. When no candidate keeps
  the gap (a catalog of few artists), the song whose artist played longest ago comes next and the
  stretch says so (``relaxed``): the radio never stalls on the rule.

When every song the sources reach has been played, a stretch is short or empty: the radio ends.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from ..errors import InvalidArgument
from .contract import MAX_K, MAX_SEEDS

#: Radio settings a request leaves unset.
ARTIST_GAP = 2
DIVERSITY = 0.3
#: Songs a radio remembers to never repeat (the last ones played; a token holds their ids).
MEMORY = 500
#: Recent songs that steer the radio at diversity 1 (``round(diversity * DRIFT_WINDOW)`` do).
DRIFT_WINDOW = 10
#: The most artists ``artist_gap`` may ask to keep apart.
MAX_ARTIST_GAP = 50
#: The candidates that sound most like a skipped song, which come after the others.
SKIP_NEIGHBOURS = 5
#: Session songs (skipped, disliked, liked) a radio keeps steering by, each.
MAX_STEERING = 100
#: The most start songs a radio from an artist or a user takes (their most played first).
START_SONGS = 50
#: The session actions a radio follows (the feedback vocabulary's, :mod:`pmrs.live.feedback`).
LIKE, SKIP, DISLIKE = "like", "skip", "dislike"
SESSION_ACTIONS = (LIKE, SKIP, DISLIKE)

TOKEN_PREFIX = "r1."
#: The longest token read, and the most its JSON may inflate to (a token is client input).
MAX_TOKEN_CHARS = 64 * 1024
MAX_STATE_BYTES = 256 * 1024
_VERSION = 1


@dataclass(frozen=True)
class Start:
    """Where a radio starts: exactly one of a song, an artist or seed songs, or none of them
    with ``user`` (then the user's most played songs). ``user`` is the listener either way."""

    song: str = ""
    artist: str = ""
    seeds: tuple[str, ...] = ()
    user: str = ""

    def check(self) -> Start:
        given = [name for name, v in (("song_id", self.song), ("artist", self.artist),
                                      ("seed_song_ids", self.seeds)) if v]
        if len(given) > 1:
            raise InvalidArgument(f"a radio starts from one of song_id, artist and seed_song_ids; got {', '.join(given)}")
        if not given and not self.user:
            raise InvalidArgument("a radio needs a start: song_id, artist, seed_song_ids or user_id (or a token)")
        if len(self.seeds) > MAX_SEEDS:
            raise InvalidArgument(f"at most {MAX_SEEDS} seed songs, got {len(self.seeds)}")
        return self

    def describe(self) -> str:
        if self.song:
            return f"song {self.song}"
        if self.artist:
            return f"artist {self.artist}"
        if self.seeds:
            return f"{len(self.seeds)} seed songs"
        return f"user {self.user}"


@dataclass(frozen=True)
class State:
    """A radio's whole state: what a token holds. Lists are oldest first."""

    start: Start
    artist_gap: int = ARTIST_GAP
    diversity: float = DIVERSITY
    played: tuple[str, ...] = ()            # song ids, the last MEMORY
    artists: tuple[str, ...] = ()           # case-folded artists of the last played songs (MAX_ARTIST_GAP)
    skipped: tuple[str, ...] = ()
    disliked: tuple[str, ...] = ()
    liked: tuple[str, ...] = ()
    avoided: tuple[str, ...] = ()           # case-folded artists of disliked songs
    count: int = 0                          # songs played in all

    def with_session(self, events: Sequence[tuple[str, str]], artist_of: Callable[[str], str]) -> State:
        """The state after the listener's ``(song_id, action)`` events (:data:`SESSION_ACTIONS`);
        ``artist_of`` gives a song's artist (a disliked song's artist is avoided from then on)."""
        skipped, disliked, liked, avoided = (list(self.skipped), list(self.disliked), list(self.liked),
                                             list(self.avoided))
        for song, action in events:
            if action == SKIP:
                _add(skipped, song)
            elif action == DISLIKE:
                _add(disliked, song)
                artist = artist_of(song).strip().casefold()
                if artist:
                    _add(avoided, artist)
            elif action == LIKE:
                _add(liked, song)
        cut = lambda xs: tuple(xs[-MAX_STEERING:])
        return replace(self, skipped=cut(skipped), disliked=cut(disliked), liked=cut(liked), avoided=cut(avoided))

    def after(self, song_ids: Sequence[str], artists: Sequence[str]) -> State:
        """The state once ``song_ids`` (with their case-folded ``artists``) have been played."""
        return replace(self, played=(self.played + tuple(song_ids))[-MEMORY:],
                       artists=(self.artists + tuple(artists))[-MAX_ARTIST_GAP:], count=self.count + len(song_ids))

    def steering(self) -> tuple[str, ...]:
        """The recent songs that pull the radio along: the last ``round(diversity *
        DRIFT_WINDOW)`` played that were not skipped or disliked, then the songs liked."""
        n = round(self.diversity * DRIFT_WINDOW)
        refused = set(self.skipped) | set(self.disliked)
        recent = [s for s in self.played if s not in refused][-n:] if n else []
        return tuple(dict.fromkeys(recent + [s for s in self.liked if s not in refused]))


def _add(xs: list, x) -> None:
    if x in xs:
        xs.remove(x)
    xs.append(x)


def check_session(session) -> list[tuple[str, str]]:
    """``session`` as ``(song_id, action)`` pairs with actions of :data:`SESSION_ACTIONS`."""
    if isinstance(session, (str, bytes)):
        raise TypeError("session must be a sequence of (song_id, action) pairs, not a string")
    out = []
    for item in session:
        try:
            song, action = item
        except (TypeError, ValueError):
            raise InvalidArgument(f"a session event is (song_id, action), got {str(item)[:60]!r}") from None
        if action not in SESSION_ACTIONS:
            raise InvalidArgument(f"a radio session's action must be one of {', '.join(SESSION_ACTIONS)}, "
                                  f"got {str(action)[:40]!r}")
        if not isinstance(song, str) or not song:
            raise InvalidArgument("a session event names a song id")
        out.append((song, action))
    if len(out) > MAX_K:
        raise InvalidArgument(f"at most {MAX_K} session events a call, got {len(out)}")
    return out


def check_gap(artist_gap: int) -> int:
    if isinstance(artist_gap, bool) or not isinstance(artist_gap, (int, np.integer)) \
            or not 0 <= int(artist_gap) <= MAX_ARTIST_GAP:
        raise InvalidArgument(f"artist_gap must be a whole number in 0..{MAX_ARTIST_GAP}, got {artist_gap!r}")
    return int(artist_gap)


# -- the token ----------------------------------------------------------------------------------

def encode_token(state: State) -> str:
    """The token that continues the radio in ``state``."""
    s = state.start
    body = {"v": _VERSION, "start": {"song": s.song, "artist": s.artist, "seeds": list(s.seeds), "user": s.user},
            "gap": state.artist_gap, "div": state.diversity, "played": list(state.played),
            "artists": list(state.artists), "skipped": list(state.skipped), "disliked": list(state.disliked),
            "liked": list(state.liked), "avoided": list(state.avoided), "n": state.count}
    raw = zlib.compress(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode(), 9)
    return TOKEN_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> State:
    """The state a token holds; :class:`InvalidArgument` for anything that is not a radio token
    this version wrote (garbage, a cut or altered token, one of another version)."""
    bad = InvalidArgument("the radio token cannot be read (cut short, altered, or not a radio token); "
                          "start a new radio")
    if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX) or len(token) > MAX_TOKEN_CHARS:
        raise bad
    data = token[len(TOKEN_PREFIX):]
    try:
        raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
        inflate = zlib.decompressobj()
        text = inflate.decompress(raw, MAX_STATE_BYTES)
        if inflate.unconsumed_tail or not inflate.eof:
            raise ValueError("too large or truncated")
        body = json.loads(text)
        if not isinstance(body, dict) or body.get("v") != _VERSION:
            raise ValueError("not version 1")
        start = body["start"]
        strs = lambda xs: tuple(_str(x) for x in _list(xs))
        state = State(
            start=Start(song=_str(start["song"]), artist=_str(start["artist"]), seeds=strs(start["seeds"]),
                        user=_str(start["user"])),
            artist_gap=check_gap(body["gap"]), diversity=_unit(body["div"]), played=strs(body["played"])[-MEMORY:],
            artists=strs(body["artists"])[-MAX_ARTIST_GAP:], skipped=strs(body["skipped"])[-MAX_STEERING:],
            disliked=strs(body["disliked"])[-MAX_STEERING:], liked=strs(body["liked"])[-MAX_STEERING:],
            avoided=strs(body["avoided"])[-MAX_STEERING:], count=_count(body["n"]))
        state.start.check()
    except (ValueError, KeyError, TypeError, binascii.Error, zlib.error, InvalidArgument):
        raise bad from None
    return state


def _str(x) -> str:
    if not isinstance(x, str) or len(x) > 1024:
        raise TypeError("not a short string")
    return x


def _list(x) -> list:
    if not isinstance(x, list):
        raise TypeError("not a list")
    return x


def _unit(x) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not 0.0 <= float(x) <= 1.0:
        raise ValueError("not in [0, 1]")
    return float(x)


def _count(x) -> int:
    if isinstance(x, bool) or not isinstance(x, int) or x < 0:
        raise ValueError("not a count")
    return x


# -- the next stretch -----------------------------------------------------------------------------

def pick_apart(rows: Sequence[int], artists: Sequence[str], recent: Sequence[str], gap: int, k: int
               ) -> tuple[list[int], bool]:
    """Positions of ``rows`` (candidates in order) for the next ``k`` songs, so that no song's
    artist (case-folded, ``""``: none) is among the artists of the ``gap`` songs before it
    (``recent``: those before this stretch, oldest first). When no candidate left keeps the gap,
    the one whose artist played longest ago is taken (and ``relaxed`` is true)."""
    history = list(recent)
    taken: list[int] = []
    left = list(range(len(rows)))
    relaxed = False
    while left and len(taken) < k:
        near = {a for a in history[-gap:] if a} if gap else set()
        choice = next((i for i in left if not artists[i] or artists[i] not in near), None)
        if choice is None:
            relaxed = True
            last = {a: n for n, a in enumerate(history)}
            choice = min(left, key=lambda i: last.get(artists[i], -1))   # (stable: the earliest of equals)
        left.remove(choice)
        taken.append(choice)
        history.append(artists[choice])
    return taken, relaxed


def sink_like_skipped(view, rows: np.ndarray, skipped_rows: np.ndarray) -> np.ndarray:
    """Positions of candidate ``rows`` (best first) reordered so that the songs that sound most
    like a skipped song come after the others: for each skipped song its :data:`SKIP_NEIGHBOURS`
    nearest candidates (cosine of the CNN embeddings, above 0; songs without audio are never
    moved), each group in its own order. Only the nearest: in a world where a genre sounds alike,
    pushing away everything similar would push away the genre the listener asked for."""
    if not len(rows) or not len(skipped_rows):
        return np.arange(len(rows))
    emb = np.asarray(view.embedding(np.asarray(rows, np.int64)), np.float32)
    away = np.asarray(view.embedding(np.asarray(skipped_rows, np.int64)), np.float32)
    cos = away @ emb.T                                   # (skipped, candidates)
    sink = np.zeros(len(rows), bool)
    n = min(SKIP_NEIGHBOURS, len(rows))
    for sims in cos:
        near = np.argpartition(-sims, n - 1)[:n]
        sink[near[sims[near] > 0]] = True
    return np.concatenate([np.flatnonzero(~sink), np.flatnonzero(sink)])
