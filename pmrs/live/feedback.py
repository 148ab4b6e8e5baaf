"""What a listener says about a song beyond playing it: like, skip, dislike, hide its artist.

Each is one write of the log (kind ``feedback``: ``{"user_id", "song_id", "action"}``), durable
before it is acknowledged, exactly once by request id, like a play. What each does:

- ``like``: counts as :data:`LIKE_PLAYS` plays of the song, at once (the user's vector is
  recomputed) and in the next rebuild's training data (``pmrs ingest`` reads likes as plays).
- ``dislike``: the song leaves that user's lists at once and for good (every later answer,
  before and after rebuilds: a server reads every dislike of the log when it opens a bundle).
- ``hide_artist``: every song by the song's artist leaves that user's lists, as a dislike does.
- ``skip``: the song sinks below the songs the user has not skipped in that user's lists (the more
  skips, the lower), for good, as dislikes are kept.
- ``undo_like``, ``undo_dislike``, ``undo_hide_artist``, ``undo_skip``: take the song's likes
  (all of them, with their plays: at once and in the next rebuild's training data), its dislike,
  its artist's hiding, or its skips back. An undo of nothing changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Mapping

LIKE, SKIP, DISLIKE, HIDE_ARTIST = "like", "skip", "dislike", "hide_artist"
UNDO_SKIP, UNDO_DISLIKE, UNDO_HIDE_ARTIST = "undo_skip", "undo_dislike", "undo_hide_artist"
UNDO_LIKE = "undo_like"
ACTIONS = (LIKE, SKIP, DISLIKE, HIDE_ARTIST, UNDO_SKIP, UNDO_DISLIKE, UNDO_HIDE_ARTIST, UNDO_LIKE)
#: The actions that name the song's artist (the write records it).
ARTIST_ACTIONS = (HIDE_ARTIST, UNDO_HIDE_ARTIST)
#: Plays a like counts as (serving and training).
LIKE_PLAYS = 5


@dataclass(frozen=True)
class Feedback:
    """One user's lasting feedback (immutable; replaced whole by each write): songs disliked
    (rows), artists hidden (case-folded names), times each song was skipped, times each song was
    liked (not yet undone)."""

    disliked: frozenset[int] = frozenset()
    hidden_artists: frozenset[str] = frozenset()
    skips: Mapping[int, int] = field(default_factory=lambda: MappingProxyType({}))
    likes: Mapping[int, int] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def liked(self) -> frozenset[int]:
        return frozenset(self.likes)

    def with_action(self, action: str, row: int, artist: str = "") -> "Feedback":
        if action in (LIKE, UNDO_LIKE):
            return replace(self, likes=_counted(self.likes, row, action == UNDO_LIKE))
        if action in (SKIP, UNDO_SKIP):
            return replace(self, skips=_counted(self.skips, row, action == UNDO_SKIP))
        if action == DISLIKE:
            return replace(self, disliked=self.disliked | {row})
        if action == HIDE_ARTIST:
            return replace(self, hidden_artists=self.hidden_artists | {artist.strip().casefold()})
        if action == UNDO_DISLIKE:
            return replace(self, disliked=self.disliked - {row})
        if action == UNDO_HIDE_ARTIST:
            return replace(self, hidden_artists=self.hidden_artists - {artist.strip().casefold()})
        raise ValueError(f"unknown feedback action {action!r}")

    @property
    def narrows(self) -> bool:
        """Whether it changes what the user's lists may hold or their order."""
        return bool(self.disliked or self.hidden_artists or self.skips)


def _counted(counts: Mapping[int, int], row: int, undo: bool) -> Mapping[int, int]:
    """``counts`` with ``row`` counted once more, or (``undo``) not at all."""
    out = dict(counts)
    if undo:
        out.pop(row, None)
    else:
        out[row] = out.get(row, 0) + 1
    return MappingProxyType(out)


def sink_skipped(rows: list[int], skips: Mapping[int, int]) -> list[int]:
    """Positions of ``rows`` reordered so that skipped songs come after the others, fewer skips
    first, each group in its own order (a stable sort on the skip count)."""
    return sorted(range(len(rows)), key=lambda i: skips.get(rows[i], 0))
