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
- ``undo_dislike``, ``undo_hide_artist``, ``undo_skip``: take the song's dislike, its artist's
  hiding, or its skips back (a like is undone by nothing: its plays are plays).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

LIKE, SKIP, DISLIKE, HIDE_ARTIST = "like", "skip", "dislike", "hide_artist"
UNDO_SKIP, UNDO_DISLIKE, UNDO_HIDE_ARTIST = "undo_skip", "undo_dislike", "undo_hide_artist"
ACTIONS = (LIKE, SKIP, DISLIKE, HIDE_ARTIST, UNDO_SKIP, UNDO_DISLIKE, UNDO_HIDE_ARTIST)
#: The actions that name the song's artist (the write records it).
ARTIST_ACTIONS = (HIDE_ARTIST, UNDO_HIDE_ARTIST)
#: Plays a like counts as (serving and training).
LIKE_PLAYS = 5


@dataclass(frozen=True)
class Feedback:
    """One user's lasting feedback (immutable; replaced whole by each write): songs disliked
    (rows), artists hidden (case-folded names), times each song was skipped, songs liked."""

    disliked: frozenset[int] = frozenset()
    hidden_artists: frozenset[str] = frozenset()
    skips: Mapping[int, int] = field(default_factory=lambda: MappingProxyType({}))
    liked: frozenset[int] = frozenset()

    def with_action(self, action: str, row: int, artist: str = "") -> "Feedback":
        if action == LIKE:
            return Feedback(self.disliked, self.hidden_artists, self.skips, self.liked | {row})
        if action == DISLIKE:
            return Feedback(self.disliked | {row}, self.hidden_artists, self.skips, self.liked)
        if action == HIDE_ARTIST:
            return Feedback(self.disliked, self.hidden_artists | {artist.strip().casefold()}, self.skips, self.liked)
        if action in (SKIP, UNDO_SKIP):
            skips = dict(self.skips)
            skips[row] = skips.get(row, 0) + 1
            if action == UNDO_SKIP:
                del skips[row]
            return Feedback(self.disliked, self.hidden_artists, MappingProxyType(skips), self.liked)
        if action == UNDO_DISLIKE:
            return Feedback(self.disliked - {row}, self.hidden_artists, self.skips, self.liked)
        if action == UNDO_HIDE_ARTIST:
            return Feedback(self.disliked, self.hidden_artists - {artist.strip().casefold()}, self.skips, self.liked)
        raise ValueError(f"unknown feedback action {action!r}")

    @property
    def narrows(self) -> bool:
        """Whether it changes what the user's lists may hold or their order."""
        return bool(self.disliked or self.hidden_artists or self.skips)


def sink_skipped(rows: list[int], skips: Mapping[int, int]) -> list[int]:
    """Positions of ``rows`` reordered so that skipped songs come after the others, fewer skips
    first, each group in its own order (a stable sort on the skip count)."""
    return sorted(range(len(rows)), key=lambda i: skips.get(rows[i], 0))
