"""``catalog.lmdb``: song metadata keyed by song id, and the track-id -> song-id mapping.

One LMDB file (``subdir=False``) with these named databases:

- ``songs``: song_id -> JSON ``{title, artist, artist_id, release, year, duration, genre, track_ids}``
- ``tracks``: track_id -> song_id
- ``meta``: ``info`` -> JSON summary (counts, genre names, source files)
- ``tags``: song_id -> JSON ``{tag: weight}`` (Last.fm tags, weight 0-100), songs that have any
- ``similars``: song_id -> JSON ``{song_id: score}`` (Last.fm similar songs, score in [0, 1])
- ``tagged``: the ``tags`` inverted, one empty-valued key per (tag, song) pair,
  ``tag NUL inverted weight NUL song_id`` (:func:`_tagged_key`), so a tag's songs, the most
  strongly tagged first, are one range of keys (a tag page reads ``limit`` keys, not the catalog)

``tags``, ``similars`` and ``tagged`` came later: a catalog written before them reads as one
without tags or similars (and :meth:`Catalog.tagged` says it has no index). The file is written once under a temporary name and renamed into place, then only
read, so readers open it without a lock file.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Callable, Iterable, Iterator

import lmdb

from .artifacts import tmp_path

CATALOG_FILE = "catalog.lmdb"
_DBS = (b"songs", b"tracks", b"meta", b"tags", b"similars", b"tagged")
#: Tag weights are stored in ``tagged`` keys as ``WEIGHT_TOP - round(weight * 1000)``, fixed width.
_WEIGHT_TOP, _WEIGHT_DIGITS = 999_999_999, 9
#: What a Last.fm record adds to a song: ``(song_id, tags or None, similars or None)``; a song
#: named twice (several of its tracks) gets the union, the highest weight or score winning.
LastfmRecord = tuple[str, dict | None, dict | None]


def _merge(txn, db, key: bytes, new: dict, limit: int | None = None) -> None:
    old = txn.get(key, db=db)
    if old is not None:
        merged = json.loads(old)
        for name, value in new.items():
            if value > merged.get(name, -1.0):
                merged[name] = value
        new = merged
    if limit is not None and len(new) > limit:
        new = dict(sorted(new.items(), key=lambda kv: (-kv[1], kv[0]))[:limit])
    txn.put(key, json.dumps(new, ensure_ascii=False, separators=(",", ":")).encode(), db=db)


def write_catalog(path: str | os.PathLike, songs: Iterable[tuple[str, dict]],
                  tracks: Iterable[tuple[str, str]], info: dict | Callable[[], dict],
                  lastfm: Iterable[LastfmRecord] = (), max_similars: int | None = None) -> None:
    """Write a catalog atomically: ``songs`` yields (song_id, fields), ``tracks`` (track_id, song_id),
    ``lastfm`` :data:`LastfmRecord` s (streamed into the file, not held in memory; a song keeps
    its ``max_similars`` most similar songs, all when ``None``). ``info`` may
    be a function, called once everything else is written (so it can count what ``lastfm``
    yielded)."""
    path = Path(path)
    tmp = tmp_path(path)
    tmp.unlink()
    env = lmdb.open(str(tmp), subdir=False, lock=False, map_size=1 << 36, max_dbs=len(_DBS),
                    sync=False, metasync=False)
    try:
        songs_db, tracks_db, meta_db, tags_db, similars_db, tagged_db = (env.open_db(name) for name in _DBS)
        with env.begin(write=True) as txn:
            for song_id, fields in songs:
                txn.put(song_id.encode(), json.dumps(fields, ensure_ascii=False).encode(), db=songs_db)
            for track_id, song_id in tracks:
                txn.put(track_id.encode(), song_id.encode(), db=tracks_db)
            for song_id, tags, similars in lastfm:
                key = song_id.encode()
                if tags:
                    _merge(txn, tags_db, key, tags)
                if similars:
                    _merge(txn, similars_db, key, similars, max_similars)
            longest = env.max_key_size()
            for key, raw in txn.cursor(db=tags_db):   # (the merged tags: each pair once)
                for tag, weight in json.loads(raw).items():
                    k = _tagged_key(tag, weight, key)
                    if k is not None and len(k) <= longest:   # (a tag of ~500 bytes: not indexed)
                        txn.put(k, b"", db=tagged_db)
            txn.put(b"info", json.dumps(info() if callable(info) else info).encode(), db=meta_db)
        env.sync(True)
    except BaseException:
        env.close()
        tmp.unlink(missing_ok=True)
        raise
    env.close()
    os.replace(tmp, path)


def _tagged_key(tag: str, weight: float, song_id: bytes) -> bytes | None:
    """The ``tagged`` key of one (tag, song) pair: keys sort by tag, then weight, heaviest first,
    then song id (``None`` for a tag holding NUL, which would blur where a tag ends)."""
    if "\0" in tag:
        return None
    inverted = min(max(_WEIGHT_TOP - round(float(weight) * 1000), 0), _WEIGHT_TOP)
    return b"%s\0%0*d\0%s" % (tag.encode(), _WEIGHT_DIGITS, inverted, song_id)


def add_songs(path: str | os.PathLike, songs: Iterable[dict]) -> int:
    """Add songs (``{"song_id", ...fields}``) the catalog at ``path`` does not have yet, in one
    write transaction (a song it has keeps its fields); returns how many were added."""
    songs = list(songs)
    if not songs:
        return 0
    env = lmdb.open(str(path), subdir=False, lock=False, map_size=1 << 36, max_dbs=len(_DBS))
    added = 0
    try:
        db = env.open_db(_DBS[0])
        with env.begin(write=True) as txn:
            for s in songs:
                fields = {k: v for k, v in s.items() if k != "song_id"}
                added += txn.put(s["song_id"].encode(), json.dumps(fields, ensure_ascii=False).encode(), db=db,
                                 overwrite=False)
        env.sync(True)
    finally:
        env.close()
    return added


def snapshot_catalog(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """A serving bundle's copy of the catalog at ``src``, written atomically to ``dst``: songs,
    tracks, tags and the info, without the Last.fm similars (ingest keeps them for the metadata
    source; nothing serves them, and at the real dataset's size they would add about 2.4 GB to
    every bundle)."""
    with Catalog(src) as cat:
        write_catalog(dst, cat.items(), cat.tracks(), cat.info(),
                      ((song_id, tags, None) for song_id, tags in cat.items_tags()))


class _Shared:
    """One LMDB environment of a catalog file, shared by every :class:`Catalog` of this process
    that reads it (LMDB refuses to open one file twice in a process: two readers of one bundle,
    such as two recommenders or a burst of page loads, must share it)."""

    def __init__(self, path: Path):
        self.env = lmdb.open(str(path), subdir=False, readonly=True, lock=False, max_dbs=len(_DBS),
                             readahead=False)
        self.dbs = [self.env.open_db(n, create=False) for n in _DBS[:3]] + [self._optional_db(n) for n in _DBS[3:]]
        self.users = 0

    def _optional_db(self, name: bytes):
        """A named database of a newer catalog; ``None`` in one written before it existed."""
        with self.env.begin() as txn:
            if txn.get(name) is None:  # named databases are keys of the unnamed one
                return None
        return self.env.open_db(name, create=False)


#: Open catalog files by (device, inode): what LMDB itself tells apart.
_OPEN: dict[tuple[int, int], _Shared] = {}
_OPEN_LOCK = threading.Lock()


class Catalog:
    """Read-only access to ``catalog.lmdb``; thread-safe. Catalogs of one file share one LMDB
    environment (closed with the last of them)."""

    def __init__(self, path: str | os.PathLike):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no catalog at {path}; run `pmrs ingest DATA_DIR` first")
        self.path = path
        st = path.stat()
        self._key = (st.st_dev, st.st_ino)
        with _OPEN_LOCK:
            shared = _OPEN.get(self._key)
            if shared is None:
                shared = _OPEN[self._key] = _Shared(path)
            shared.users += 1
        self._shared = shared
        self._env = shared.env
        self._songs, self._tracks, self._meta, self._tags, self._similars, self._tagged = shared.dbs

    def close(self) -> None:
        shared, self._shared = self._shared, None
        if shared is None:
            return
        with _OPEN_LOCK:
            shared.users -= 1
            if shared.users == 0:
                _OPEN.pop(self._key, None)
                shared.env.close()

    def __enter__(self) -> "Catalog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        with self._env.begin() as txn:
            return txn.stat(self._songs)["entries"]

    def get(self, song_id: str) -> dict | None:
        """The song's fields, or ``None`` when the catalog does not know it."""
        with self._env.begin() as txn:
            raw = txn.get(song_id.encode(), db=self._songs)
        return None if raw is None else json.loads(raw)

    def get_many(self, song_ids: Iterable[str]) -> list[dict | None]:
        with self._env.begin() as txn:
            return [None if (raw := txn.get(s.encode(), db=self._songs)) is None else json.loads(raw)
                    for s in song_ids]

    def song_for_track(self, track_id: str) -> str | None:
        with self._env.begin() as txn:
            raw = txn.get(track_id.encode(), db=self._tracks)
        return None if raw is None else raw.decode()

    def info(self) -> dict:
        with self._env.begin() as txn:
            raw = txn.get(b"info", db=self._meta)
        return json.loads(raw) if raw else {}

    def items(self) -> Iterator[tuple[str, dict]]:
        with self._env.begin() as txn:
            for key, raw in txn.cursor(db=self._songs):
                yield key.decode(), json.loads(raw)

    def tracks(self) -> Iterator[tuple[str, str]]:
        with self._env.begin() as txn:
            for key, raw in txn.cursor(db=self._tracks):
                yield key.decode(), raw.decode()

    def tags(self, song_id: str) -> dict[str, float]:
        """The song's Last.fm tags ``{tag: weight 0-100}``; empty when it has none."""
        return self._json(self._tags, song_id)

    def similars(self, song_id: str) -> dict[str, float]:
        """The song's Last.fm similar songs ``{song_id: score}``; empty when it has none."""
        return self._json(self._similars, song_id)

    def items_tags(self) -> Iterator[tuple[str, dict[str, float]]]:
        """``(song_id, tags)`` for every song with tags, in song id order."""
        yield from self._cursor(self._tags)

    def tagged(self, tag: str, limit: int) -> list[tuple[str, float]] | None:
        """The ``limit`` songs most strongly tagged ``tag`` (exactly), ``(song_id, weight)``,
        heaviest first (ties: song id order); ``None`` for a catalog written before the index
        (:meth:`items_tags` then has every song's tags)."""
        if self._tagged is None:
            return None
        prefix = tag.encode() + b"\0"
        out: list[tuple[str, float]] = []
        if "\0" in tag or limit <= 0:
            return out
        with self._env.begin() as txn:
            cursor = txn.cursor(db=self._tagged)
            if not cursor.set_range(prefix):
                return out
            for key in cursor.iternext(keys=True, values=False):
                if not key.startswith(prefix) or len(out) >= limit:
                    break
                inverted, song_id = key[len(prefix):].split(b"\0", 1)
                out.append((song_id.decode(), (_WEIGHT_TOP - int(inverted)) / 1000))
        return out

    def items_similars(self) -> Iterator[tuple[str, dict[str, float]]]:
        """``(song_id, similars)`` for every song with Last.fm similars, in song id order."""
        yield from self._cursor(self._similars)

    def _json(self, db, song_id: str) -> dict:
        if db is None:
            return {}
        with self._env.begin() as txn:
            raw = txn.get(song_id.encode(), db=db)
        return {} if raw is None else json.loads(raw)

    def _cursor(self, db) -> Iterator[tuple[str, dict]]:
        if db is None:
            return
        with self._env.begin() as txn:
            for key, raw in txn.cursor(db=db):
                yield key.decode(), json.loads(raw)
