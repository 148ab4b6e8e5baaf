"""Listening events: the one table every reader of people's data produces.

Every input that is not the Taste Profile (a service's event table, a Spotify, Last.fm or
ListenBrainz export, the write log's live plays) is read into this shape first, so that song
resolution (:mod:`pmrs.ingest.resolve`), the aggregation into interactions with time and the
report's counts are written once. One row is one listen (``count`` 1) or, for tables that carry
counts, one (user, song, count) aggregate.

Columns (:data:`LISTEN_SCHEMA`; every column but ``user`` may be null):

- ``user``: the listener (a service's user id; for a personal export, its folder's name);
- ``song_id``: an id the catalog may know (an MSD song id, a music folder's song id);
- ``recording_mbid``: a MusicBrainz recording id (lower-case UUID text);
- ``spotify_uri``: ``spotify:track:<22 chars>``;
- ``artist``, ``title``, ``album``: names as the source wrote them;
- ``ts``: when the listen happened, UTC, seconds (a reader says whether its source stamps the start
  or the end of a listen);
- ``count``: plays the row stands for (1 for a single listen);
- ``ms_played``: how long it was played, milliseconds;
- ``skipped``: the source says the listener skipped it.

A reader returns :class:`Listens`: the table, where each row came from (``source`` file names and
``row`` numbers, for reports) and :class:`Dropped`: rows it could not use, counted by reason with
the first few examples (file, row, why), never fatal unless most of a file is unusable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

LISTEN_SCHEMA = pa.schema([
    pa.field("user", pa.string(), nullable=False),
    pa.field("song_id", pa.string()),
    pa.field("recording_mbid", pa.string()),
    pa.field("spotify_uri", pa.string()),
    pa.field("artist", pa.string()),
    pa.field("title", pa.string()),
    pa.field("album", pa.string()),
    pa.field("ts", pa.timestamp("s", tz="UTC")),
    pa.field("count", pa.int64()),
    pa.field("ms_played", pa.int64()),
    pa.field("skipped", pa.bool_()),
])

#: Examples of dropped rows kept per reason (the counts are exact).
EXAMPLES_PER_REASON = 10

# Reasons a row is dropped, shared by every reader (a reader may add its own).
MALFORMED = "malformed row"
NO_USER = "no user"
NO_SONG = "names no song (no id, MBID, URI or artist and title)"
NOT_A_SONG = "not a song (podcast episode, audiobook chapter)"
PLACEHOLDER = "placeholder names (Unknown Artist, ...)"
ZERO_LENGTH = "zero-length play"
BAD_TIME = "time outside a sane range"
BAD_COUNT = "count not a positive whole number"
DUPLICATE = "duplicate listen"
BROKEN_FILE = "file that does not parse"


@dataclass
class Dropped:
    """Rows not used, by reason: exact counts and the first examples ``(file, row, detail)``."""

    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[tuple[str, int | None, str]]] = field(default_factory=dict)

    def add(self, reason: str, file: str, row: int | None = None, detail: str = "", n: int = 1) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + n
        ex = self.examples.setdefault(reason, [])
        if len(ex) < EXAMPLES_PER_REASON:
            ex.append((file, row, detail[:200]))

    def merge(self, other: "Dropped") -> None:
        for reason, n in other.counts.items():
            self.counts[reason] = self.counts.get(reason, 0) + n
            ex = self.examples.setdefault(reason, [])
            ex.extend(other.examples.get(reason, [])[:max(0, EXAMPLES_PER_REASON - len(ex))])

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict:
        return {"total": self.total, "by_reason": dict(sorted(self.counts.items())),
                "examples": {r: [{"file": f, "row": row, "detail": d} for f, row, d in ex]
                             for r, ex in sorted(self.examples.items())}}


@dataclass
class Listens:
    """What a reader read: ``table`` (:data:`LISTEN_SCHEMA`), the format it recognised, the files
    it read, and the rows it dropped."""

    table: pa.Table
    format: str
    files: list[str] = field(default_factory=list)
    dropped: Dropped = field(default_factory=Dropped)

    def __post_init__(self) -> None:
        if not self.table.schema.equals(LISTEN_SCHEMA):
            self.table = self.table.select(LISTEN_SCHEMA.names).cast(LISTEN_SCHEMA)

    @property
    def rows(self) -> int:
        return self.table.num_rows


def empty_listens() -> pa.Table:
    return LISTEN_SCHEMA.empty_table()


def concat(parts: list[Listens], fmt: str = "mixed") -> Listens:
    """Several readers' listens as one (their dropped rows added up)."""
    dropped = Dropped()
    for p in parts:
        dropped.merge(p.dropped)
    table = pa.concat_tables([p.table for p in parts]) if parts else empty_listens()
    return Listens(table, fmt, [f for p in parts for f in p.files], dropped)


#: The earliest listen time taken (2002-10-01, the start of Audioscrobbler: ListenBrainz refuses
#: listens before it too); later than now plus :data:`FUTURE_SLACK_S` is also refused.
MIN_LISTEN_TS = 1033430400
FUTURE_SLACK_S = 24 * 3600

#: Names that say "not known" (compared case-insensitively, after trimming): a row whose artist or
#: title is one of these names no song.
PLACEHOLDER_NAMES = frozenset({"", "unknown", "unknown artist", "unknown title", "[unknown]", "<unknown>",
                               "various artists", "untitled", "track", "n/a", "null", "none"})


def sane_times(ts: pa.Array | pa.ChunkedArray, now_s: float) -> pa.Array:
    """Bool per row: the time is null (unknown: kept) or within [:data:`MIN_LISTEN_TS`, now +
    :data:`FUTURE_SLACK_S`]."""
    import pyarrow.compute as pc

    secs = pc.cast(ts, pa.timestamp("s", tz="UTC")).cast(pa.int64())
    ok = pc.and_(pc.greater_equal(secs, MIN_LISTEN_TS), pc.less_equal(secs, int(now_s) + FUTURE_SLACK_S))
    return pc.fill_null(ok, True)


def is_placeholder(name: str | None) -> bool:
    """Whether an artist or title name says "unknown" (:data:`PLACEHOLDER_NAMES`)."""
    return name is None or " ".join(str(name).split()).casefold() in PLACEHOLDER_NAMES
