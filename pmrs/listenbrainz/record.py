"""Checked listens into plays: each listen's song found as the ingest finds it, made when new,
and one play recorded through the write log, once.

- **Which song** (:mod:`pmrs.ingest.resolve`, the ingest's rules): the recording MBID, a Spotify
  track, then the normalised artist and title, against the served catalog plus every song added
  live (this process's and, after a refresh, other processes'). A listen of a song PMRS has never
  seen makes it, with the id the ingest would give it (:func:`~pmrs.ingest.resolve.new_song_id`)
  and its names, through :meth:`pmrs.Recommender.add_song` (no audio; request id
  ``lb-song:<song id>``, so two servers making it at once make it once).
- **Once**: each listen is one play, ``record_plays`` with a request id
  derived from (user, ``listened_at``, song id): a listen sent twice, or an ``import`` that
  overlaps the listens a player sent live, is acknowledged again and applied once (the write
  log's request ids are unique across every process sharing it), and a rebuild takes each in
  exactly once. A submission's plays go in one transaction
  (``LiveState.record_plays_many``): all of them or, when the log cannot be written,
  none.
- ``playing_now`` is checked and acknowledged, and recorded nowhere (it is not a play).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass

import pyarrow as pa

from ..errors import AlreadyExists, NotFound
from ..ingest.resolve import NAMING, CatalogIndex, clean_mbid, resolve
from .payload import Listen

log = logging.getLogger("pmrs.listenbrainz")


@dataclass(frozen=True)
class Recorded:
    """What a submission did: plays written, listens already in the log (duplicates) and the
    songs made."""

    written: int = 0
    duplicates: int = 0
    songs_created: tuple[str, ...] = ()


def request_id(user_id: str, listened_at: int, song_id: str) -> str:
    """The write log request id of a listen: ``lb:`` and 40 hex digits of SHA-256 over (user,
    time, song)."""
    key = "\x1f".join((user_id, str(int(listened_at)), song_id)).encode("utf-8")
    return "lb:" + hashlib.sha256(key).hexdigest()[:40]


class ListenRecorder:
    """Listens into plays over a live :class:`pmrs.Recommender` (module docstring). Thread-safe:
    submissions are applied one at a time."""

    def __init__(self, recommender):
        if recommender.live is None:
            raise ValueError("listens need a recommender that takes writes (Recommender.open(workdir, live=True))")
        self.rec = recommender
        self._lock = threading.Lock()
        self._index: CatalogIndex | None = None
        self._live_indexed = 0

    def warm_up(self) -> None:
        """Build the catalog index now (a large catalog takes a while), not at the first listen."""
        with self._lock:
            self.index()

    def index(self) -> CatalogIndex:
        """The catalog index: the bundle's catalog, then the songs added live, kept up to date."""
        if self._index is None:
            self._index = CatalogIndex(self.rec.bundle.catalog_items())
        songs = self.rec.live.songs   # (replaced whole by writers: this reference stays consistent)
        for i in range(self._live_indexed, len(songs)):
            fields = dict(songs.catalog[i])
            sid = songs.ids[i]
            if sid.startswith("mbid:") and not fields.get("mbid"):
                fields["mbid"] = sid[len("mbid:"):]
            self._index.add(sid, fields)
        self._live_indexed = len(songs)
        return self._index

    def record(self, user_id: str, listen_type: str, listens: list[Listen]) -> Recorded:
        """Record checked ``listens`` of ``user_id`` (``playing_now``: nothing): their plays in
        one write log transaction, all or none. Raises what
        ``LiveState.record_plays_many`` raises (e.g. ``LogUnavailable``: no play was
        written; songs made for the listens stay, and sending the submission again finds them)."""
        if listen_type == "playing_now":
            return Recorded()
        with self._lock:
            self.rec.refresh()
            index = self.index()
            namings = pa.table({
                "song_id": [""] * len(listens),
                "recording_mbid": [x.recording_mbid or "" for x in listens],
                "spotify_uri": [x.spotify_uri or "" for x in listens],
                "artist": [x.artist for x in listens],
                "title": [x.title for x in listens],
                "album": [x.release for x in listens],
            }).select(list(NAMING))
            ids, resolution = resolve(namings, index)
            created = []
            for sid in dict.fromkeys(str(s) for s in ids):
                if self._known(sid):
                    continue
                f = resolution.created.get(sid) or {}
                try:
                    self.rec.add_song(sid, title=f.get("title", ""), artist=f.get("artist", ""),
                                      release=f.get("release", ""), request_id=f"lb-song:{sid}")
                    created.append(sid)
                    log.info("song %s made from a listen (%s - %s)", sid, f.get("artist"), f.get("title"))
                except AlreadyExists:   # another process made it meanwhile
                    pass
            calls = [(user_id, [(str(sid), 1)], request_id(user_id, x.listened_at, str(sid)))
                     for x, sid in zip(listens, ids)]
            done = self.rec.live.record_plays_many(calls)
            duplicates = sum(d.duplicate for d in done)
            return Recorded(len(done) - duplicates, duplicates, tuple(created))

    def _known(self, song_id: str) -> bool:
        try:
            self.rec.song(song_id)
            return True
        except NotFound:
            return False


    def recording_mbids(self, song_ids: list[str]) -> list[str | None]:
        """The recording MBID of each song: its catalog field ``mbid``, else its id
        ``mbid:<uuid>``; ``None`` when neither says."""
        metas = self.rec.bundle.catalog_fields(song_ids)
        return [clean_mbid((meta or {}).get("mbid"))
                or (clean_mbid(sid[len("mbid:"):]) if sid.startswith("mbid:") else None)
                for sid, meta in zip(song_ids, metas)]
