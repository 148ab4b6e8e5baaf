"""MSD metadata files into ``catalog.lmdb``.

- ``unique_tracks.txt``: ``track_id<SEP>song_id<SEP>artist<SEP>title``
- ``track_metadata.db``: SQLite, table ``songs`` (track_id, title, song_id, release, artist_id,
  artist_name, duration, year, ...); only the columns present are read
- ``genres.tsv``: ``track_id<TAB>genre`` (tagtraum / MAGD style; ``#`` comment lines, extra
  columns such as a minority genre are ignored)

A song can have several tracks (the MSD has duplicates): its fields come from the first track
that has them, its genre from the most frequent label among its tracks, and every track id maps
to it.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ..catalog import write_catalog

log = logging.getLogger(__name__)

_EXAMPLES = 5


@dataclass
class MetadataReport:
    sources: dict[str, str] = field(default_factory=dict)
    songs: int = 0
    tracks: int = 0
    songs_with_genre: int = 0
    genres: dict[str, int] = field(default_factory=dict)
    malformed: dict[str, int] = field(default_factory=dict)
    examples: list[dict] = field(default_factory=list)

    def bad(self, source: str, line: int, text: str) -> None:
        self.malformed[source] = self.malformed.get(source, 0) + 1
        if len(self.examples) < _EXAMPLES:
            self.examples.append({"file": source, "line": line, "text": text[:200]})


def _lines(path: Path):
    with path.open("r", encoding="utf-8-sig", errors="replace", newline=None) as fh:
        for number, line in enumerate(fh, start=1):
            yield number, line.rstrip("\r\n")


def read_unique_tracks(path: Path, report: MetadataReport) -> list[tuple[str, str, str, str]]:
    rows = []
    for number, line in _lines(path):
        if not line.strip():
            continue
        parts = line.split("<SEP>")
        if len(parts) != 4 or not parts[0].strip() or not parts[1].strip():
            report.bad(path.name, number, line)
            continue
        rows.append(tuple(p.strip() for p in parts))  # type: ignore[arg-type]
    return rows


def read_track_metadata(path: Path, report: MetadataReport) -> list[dict]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        cols = [r[1] for r in con.execute("PRAGMA table_info(songs)")]
        if "track_id" not in cols or "song_id" not in cols:
            raise ValueError(f"{path}: table `songs` with track_id and song_id columns not found")
        wanted = [c for c in ("track_id", "song_id", "title", "release", "artist_id", "artist_name",
                              "duration", "year") if c in cols]
        cur = con.execute(f"SELECT {', '.join(wanted)} FROM songs")
        return [dict(zip(wanted, row)) for row in cur]
    except sqlite3.DatabaseError as exc:
        raise ValueError(f"{path}: not a readable SQLite track metadata file: {exc}") from None
    finally:
        con.close()


def read_genres(path: Path, report: MetadataReport) -> dict[str, str]:
    out: dict[str, str] = {}
    for number, line in _lines(path):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) < 2 or not parts[0].strip() or not parts[1].strip():
            report.bad(path.name, number, line)
            continue
        out.setdefault(parts[0].strip(), parts[1].strip())
    return out


def build_catalog(out_path: Path, *, unique_tracks: Path | None = None,
                  track_metadata: Path | None = None, genres: Path | None = None) -> MetadataReport:
    """Merge whichever metadata files exist into ``out_path`` (``catalog.lmdb``)."""
    report = MetadataReport()
    songs: dict[str, dict] = {}
    track_song: dict[str, str] = {}

    def song(song_id: str) -> dict:
        return songs.setdefault(song_id, {"title": "", "artist": "", "artist_id": "", "release": "",
                                          "year": 0, "duration": 0.0, "genre": "", "track_ids": []})

    if unique_tracks is not None and unique_tracks.exists():
        report.sources["unique_tracks"] = str(unique_tracks)
        for track_id, song_id, artist, title in read_unique_tracks(unique_tracks, report):
            s = song(song_id)
            track_song.setdefault(track_id, song_id)
            if track_id not in s["track_ids"]:
                s["track_ids"].append(track_id)
            s["artist"] = s["artist"] or artist
            s["title"] = s["title"] or title
    if track_metadata is not None and track_metadata.exists():
        report.sources["track_metadata"] = str(track_metadata)
        for row in read_track_metadata(track_metadata, report):
            if not row.get("song_id") or not row.get("track_id"):
                continue
            s = song(row["song_id"])
            track_song.setdefault(row["track_id"], row["song_id"])
            if row["track_id"] not in s["track_ids"]:
                s["track_ids"].append(row["track_id"])
            for key, src in (("title", "title"), ("artist", "artist_name"), ("artist_id", "artist_id"),
                             ("release", "release")):
                if not s[key] and row.get(src):
                    s[key] = str(row[src])
            if not s["year"] and row.get("year"):
                s["year"] = int(row["year"])
            if not s["duration"] and row.get("duration"):
                s["duration"] = round(float(row["duration"]), 3)
    if genres is not None and genres.exists():
        report.sources["genres"] = str(genres)
        by_song: dict[str, Counter] = defaultdict(Counter)
        unknown_tracks = 0
        for track_id, genre in read_genres(genres, report).items():
            song_id = track_song.get(track_id) or (track_id if track_id in songs else None)
            if song_id is None:
                unknown_tracks += 1
                continue
            by_song[song_id][genre] += 1
        for song_id, votes in by_song.items():
            songs[song_id]["genre"] = votes.most_common(1)[0][0]
        if unknown_tracks:
            log.warning("%s: %d genre labels for tracks not in the metadata", genres, unknown_tracks)
    report.songs = len(songs)
    report.tracks = len(track_song)
    genre_counts = Counter(s["genre"] for s in songs.values() if s["genre"])
    report.genres = dict(sorted(genre_counts.items()))
    report.songs_with_genre = sum(genre_counts.values())
    info = {"songs": report.songs, "tracks": report.tracks, "genres": sorted(genre_counts),
            "sources": report.sources}
    write_catalog(out_path, sorted(songs.items()), sorted(track_song.items()), info)
    return report
