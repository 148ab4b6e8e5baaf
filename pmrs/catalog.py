"""``catalog.lmdb``: song metadata keyed by song id, and the track-id -> song-id mapping.

One LMDB file (``subdir=False``) with three named databases:

- ``songs``: song_id -> JSON ``{title, artist, artist_id, release, year, duration, genre, track_ids}``
- ``tracks``: track_id -> song_id
- ``meta``: ``info`` -> JSON summary (counts, genre names, source files)

The file is written once under a temporary name and renamed into place, then only read, so
readers open it without a lock file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Iterator

import lmdb

from .artifacts import tmp_path

CATALOG_FILE = "catalog.lmdb"
_DBS = (b"songs", b"tracks", b"meta")


def write_catalog(path: str | os.PathLike, songs: Iterable[tuple[str, dict]],
                  tracks: Iterable[tuple[str, str]], info: dict) -> None:
    """Write a catalog atomically: ``songs`` yields (song_id, fields), ``tracks`` (track_id, song_id)."""
    path = Path(path)
    tmp = tmp_path(path)
    tmp.unlink()
    env = lmdb.open(str(tmp), subdir=False, lock=False, map_size=1 << 36, max_dbs=len(_DBS),
                    sync=False, metasync=False)
    try:
        songs_db, tracks_db, meta_db = (env.open_db(name) for name in _DBS)
        with env.begin(write=True) as txn:
            for song_id, fields in songs:
                txn.put(song_id.encode(), json.dumps(fields, ensure_ascii=False).encode(), db=songs_db)
            for track_id, song_id in tracks:
                txn.put(track_id.encode(), song_id.encode(), db=tracks_db)
            txn.put(b"info", json.dumps(info).encode(), db=meta_db)
        env.sync(True)
    except BaseException:
        env.close()
        tmp.unlink(missing_ok=True)
        raise
    env.close()
    os.replace(tmp, path)


class Catalog:
    """Read-only access to ``catalog.lmdb``."""

    def __init__(self, path: str | os.PathLike):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no catalog at {path}; run `pmrs ingest DATA_DIR` first")
        self.path = path
        self._env = lmdb.open(str(path), subdir=False, readonly=True, lock=False,
                              max_dbs=len(_DBS), readahead=False)
        self._songs, self._tracks, self._meta = (self._env.open_db(n, create=False) for n in _DBS)

    def close(self) -> None:
        self._env.close()

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
