"""A tagged music folder as the catalog: every audio file ``pmrs extract`` reads, its tags read
with mutagen.

The files are those :func:`pmrs.audio.extract.find_clips` finds with the extract settings'
extensions (so ``pmrs extract`` reads the same files), in its order (relative path, sorted). Tags,
by format (the MusicBrainz ids as MusicBrainz Picard writes them):

============== ===================== ========================== ==================================
field          ID3 (MP3, WAV)        Vorbis comments (Ogg,      MP4 (``.m4a``, when the extract
                                     Opus, FLAC)                extensions include it)
============== ===================== ========================== ==================================
title          TIT2                  TITLE                      ©nam
artist         TPE1                  ARTIST                     ©ART
album          TALB                  ALBUM                      ©alb
date -> year   TDRC (TYER), TDOR     DATE, YEAR, ORIGINALDATE   ©day
genre          TCON                  GENRE                      ©gen, gnre
track number   TRCK                  TRACKNUMBER                trkn
recording MBID UFID http://musicbrainz.org, MUSICBRAINZ_TRACKID ----:com.apple.iTunes:MusicBrainz
               else TXXX MusicBrainz                            Track Id
               Track Id
artist MBID    TXXX MusicBrainz      MUSICBRAINZ_ARTISTID       ----:com.apple.iTunes:MusicBrainz
               Artist Id                                        Artist Id
============== ===================== ========================== ==================================

A WAV file's RIFF ``LIST/INFO`` chunk (INAM, IART, IPRD, ICRD, IGNR, ITRK) fills what its ID3 chunk
does not. (In Picard's mapping the recording id is "MusicBrainz Track Id"; the id of the track on a
release is "MusicBrainz Release Track Id", which is not read.) Values: the first non-empty one of a
field, trimmed, except the artist, whose values are joined with ``"; "``; the year is the first four
digits of the date (``"2003-05-01"`` -> 2003); a genre given as an ID3v1 number (``"(17)"``,
``"17"`` in ID3) is its name (``"Rock"``); the duration is mutagen's (seconds).

Missing tags: no title -> the file name without its extension (counted, ``"no title tag"``); no
artist -> ``""`` (counted, ``"no artist tag"``). A file mutagen cannot read or does not recognise
is skipped and listed with the reason, never fatal.

Song ids (:func:`library_song_id`), stable across runs, following :mod:`pmrs.ids`:

1. ``mbid:<recording MBID>`` (lower case) when a valid recording MBID is tagged: the same recording
   has the same id in every library, and a listen carrying its MBID names it directly;
2. else, with both an artist and a title tag, ``lib:`` + the first 16 hex digits of the SHA-1 of
   the normalised (NFKC, case-folded, whitespace collapsed) artist, title, album and track number;
3. else ``lib:`` + 16 hex digits of the SHA-1 of the file's path relative to the folder (NFC), so an
   untagged file keeps its id until it is moved or renamed.

Two files with one id (the same recording twice, or identical tags): the first by path is the
song, the others are listed as duplicates. Retagging a file (or adding an MBID) gives it a new id.

``pmrs extract`` reads the folder with no renaming through the mapping :func:`write_mapping` writes
(``<workdir>/library_mapping.tsv``: extract's ``filename<TAB>song_id`` lines, paths relative to the
folder).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import struct
import time
import unicodedata
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from ..artifacts import write_json
from ..audio.extract import LIBRARY_MAPPING_FILE, ExtractConfig, find_clips
from ..catalog import write_catalog
from ..ids import id_problem
from .errors import IngestError

log = logging.getLogger(__name__)

__all__ = ["LIBRARY_MAPPING_FILE", "LIBRARY_REPORT_FILE", "Library", "LibraryReport", "Tags", "library_song_id",
           "read_library", "read_tags", "write_library_catalog", "write_library_report", "write_mapping"]

#: The mapping ``pmrs extract`` needs to read the folder, in the work directory.

#: The report of the last library read, in the work directory.
LIBRARY_REPORT_FILE = "library_report.json"

NO_ARTIST = "no artist tag"
NO_TITLE = "no title tag"
UNREADABLE = "unreadable"
UNRECOGNISED = "not an audio format mutagen recognises"
UNMAPPABLE = "file name a mapping line cannot hold (tab, line break, or spaces at either end)"
DUPLICATE = "duplicate"

#: The fields counted in the report's ``tags_present``.
TAG_FIELDS = ("title", "artist", "album", "year", "genre", "track_number", "recording_mbid", "artist_mbid",
              "duration")
ARTIST_JOIN = "; "

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_MB_UFID = "http://musicbrainz.org"
_MP4_FREEFORM = "----:com.apple.iTunes:"
_INFO = {b"INAM": "title", b"IART": "artist", b"IPRD": "album", b"ICRD": "date", b"IGNR": "genre",
         b"ITRK": "track"}


@dataclass
class Tags:
    """What a file's tags say (empty or ``None``: not tagged); ``duration`` in seconds."""

    title: str = ""
    artists: list[str] = field(default_factory=list)
    album: str = ""
    date: str = ""
    genre: str = ""
    track: str = ""
    recording_mbid: str = ""
    artist_mbid: str = ""
    duration: float | None = None

    @property
    def artist(self) -> str:
        return ARTIST_JOIN.join(self.artists)

    @property
    def year(self) -> int:
        """The first four digits of the date, or 0."""
        m = re.search(r"\d{4}", self.date)
        return int(m.group()) if m and 1000 <= int(m.group()) <= 2999 else 0

    @property
    def track_number(self) -> int:
        """The track number (``"3/12"`` -> 3), or 0."""
        m = re.match(r"\s*(\d{1,4})", self.track)
        return int(m.group(1)) if m else 0

    def fill(self, other: "Tags") -> None:
        """Take ``other``'s values for the fields this one lacks."""
        for name in ("title", "album", "date", "genre", "track", "recording_mbid", "artist_mbid"):
            if not getattr(self, name):
                setattr(self, name, getattr(other, name))
        if not self.artists:
            self.artists = list(other.artists)
        if self.duration is None:
            self.duration = other.duration


# ------------------------------------------------------------------------------ tags by format


def _clean(value) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return " ".join(str(value).replace("\x00", " ").split())


def _first(values) -> str:
    for v in values or ():
        text = _clean(v)
        if text:
            return text
    return ""


def _all(values) -> list[str]:
    out = []
    for v in values or ():
        text = _clean(v)
        if text and text not in out:
            out.append(text)
    return out


def _mbid(text: str) -> str:
    """The first UUID in ``text``, lower-cased, or ``""``."""
    m = _UUID.search(text.lower())
    return m.group() if m else ""


def _genre(raw: str, id3: bool) -> str:
    """A genre name; an ID3v1 genre number (``"(17)"``; in ID3 also ``"17"``) becomes its name."""
    from mutagen.id3 import TCON

    if raw and (id3 or re.match(r"^\(\d+\)", raw)):
        names = TCON(encoding=3, text=[raw]).genres
        return _first(names)
    return raw


def _id3_tags(tags) -> Tags:
    def text(frame_id: str) -> list[str]:
        return [str(t) for f in tags.getall(frame_id) for t in getattr(f, "text", [])]

    def txxx(desc: str) -> str:
        for f in tags.getall("TXXX"):
            if f.desc.casefold() == desc.casefold():
                return _first(f.text)
        return ""

    mbid = ""
    for f in tags.getall("UFID"):
        if f.owner == _MB_UFID:
            mbid = _mbid(f.data.decode("ascii", "replace"))
    genres = [g for f in tags.getall("TCON") for g in f.genres]
    return Tags(title=_first(text("TIT2")), artists=_all(text("TPE1")), album=_first(text("TALB")),
                date=_first(text("TDRC") or text("TYER") or text("TDOR")), genre=_first(genres),
                track=_first(text("TRCK")), recording_mbid=mbid or _mbid(txxx("MusicBrainz Track Id")),
                artist_mbid=_mbid(txxx("MusicBrainz Artist Id")))


def _vorbis_tags(tags) -> Tags:
    def get(*keys: str) -> list[str]:
        for key in keys:
            values = tags.get(key)
            if values and _first(values):
                return values
        return []

    return Tags(title=_first(get("title")), artists=_all(get("artist")), album=_first(get("album")),
                date=_first(get("date", "year", "originaldate")), genre=_genre(_first(get("genre")), id3=False),
                track=_first(get("tracknumber")), recording_mbid=_mbid(_first(get("musicbrainz_trackid"))),
                artist_mbid=_mbid(_first(get("musicbrainz_artistid"))))


def _mp4_tags(tags) -> Tags:
    from mutagen.id3 import TCON

    def get(key: str) -> list:
        return list(tags.get(key) or [])

    genre = _first(get("\xa9gen"))
    if not genre and get("gnre"):
        n = int(get("gnre")[0])
        genre = TCON.GENRES[n - 1] if 0 < n <= len(TCON.GENRES) else ""
    trkn = get("trkn")
    return Tags(title=_first(get("\xa9nam")), artists=_all(get("\xa9ART")), album=_first(get("\xa9alb")),
                date=_first(get("\xa9day")), genre=_genre(genre, id3=False),
                track=str(trkn[0][0]) if trkn and trkn[0] and trkn[0][0] else "",
                recording_mbid=_mbid(_first(get(_MP4_FREEFORM + "MusicBrainz Track Id"))),
                artist_mbid=_mbid(_first(get(_MP4_FREEFORM + "MusicBrainz Artist Id"))))


def _riff_info(path: Path) -> Tags:
    """A WAV file's ``LIST/INFO`` chunk (mutagen reads only its ID3 chunk)."""
    found: dict[str, str] = {}
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return Tags()
        while True:
            chunk = fh.read(8)
            if len(chunk) < 8:
                break
            cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"LIST" and size >= 4 and size <= 1 << 20:
                body = fh.read(size + (size & 1))
                if body[:4] == b"INFO":
                    pos = 4
                    while pos + 8 <= len(body):
                        sid, n = body[pos:pos + 4], struct.unpack("<I", body[pos + 4:pos + 8])[0]
                        raw = body[pos + 8:pos + 8 + n].split(b"\x00", 1)[0]
                        if sid in _INFO and _INFO[sid] not in found:
                            try:
                                found[_INFO[sid]] = _clean(raw.decode("utf-8"))
                            except UnicodeDecodeError:
                                found[_INFO[sid]] = _clean(raw.decode("latin-1"))
                        pos += 8 + n + (n & 1)
            else:
                fh.seek(size + (size & 1), os.SEEK_CUR)
    return Tags(title=found.get("title", ""), artists=[found["artist"]] if found.get("artist") else [],
                album=found.get("album", ""), date=found.get("date", ""),
                genre=_genre(found.get("genre", ""), id3=False), track=found.get("track", ""))


def read_tags(path: str | os.PathLike) -> Tags:
    """The tags of one audio file (see the module's table).

    Raises
    ------
    mutagen.MutagenError
        mutagen cannot read the file.
    IngestError
        mutagen does not recognise the file as audio.
    """
    import mutagen
    from mutagen.id3 import ID3
    from mutagen.mp4 import MP4Tags

    path = Path(path)
    audio = mutagen.File(path)
    if audio is None:
        raise IngestError(UNRECOGNISED)
    tags = audio.tags
    if isinstance(tags, ID3):
        out = _id3_tags(tags)
    elif isinstance(tags, MP4Tags):
        out = _mp4_tags(tags)
    elif tags is not None and hasattr(tags, "get"):
        out = _vorbis_tags(tags)
    else:
        out = Tags()
    if path.suffix.lower() == ".wav":
        out.fill(_riff_info(path))
    length = getattr(audio.info, "length", None)
    out.duration = float(length) if length else None
    return out


# ------------------------------------------------------------------------------ ids


def _norm(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _sha16(*parts: str) -> str:
    return hashlib.sha1("\x1f".join(parts).encode("utf-8")).hexdigest()[:16]


def library_song_id(tags: Tags, rel_path: str) -> tuple[str, str]:
    """``(song_id, kind)`` of a file: kind ``"mbid"``, ``"tags"`` or ``"path"`` (the module's
    rules). ``rel_path``: the file's path relative to the folder, ``/``-separated."""
    if tags.recording_mbid:
        return f"mbid:{tags.recording_mbid}", "mbid"
    if tags.artists and tags.title:
        return "lib:" + _sha16("tags", _norm(tags.artist), _norm(tags.title), _norm(tags.album),
                               str(tags.track_number or "")), "tags"
    return "lib:" + _sha16("path", unicodedata.normalize("NFC", rel_path)), "path"


# ------------------------------------------------------------------------------ the folder


@dataclass
class LibraryReport:
    """What happened to every audio file of the folder."""

    folder: str
    files_found: int = 0
    files_read: int = 0
    songs: int = 0
    tags_present: dict[str, int] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)
    ids_by_kind: dict[str, int] = field(default_factory=dict)
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    skipped: list[dict] = field(default_factory=list)
    duplicates: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Library:
    """A music folder read as a catalog: ``songs`` (song_id -> catalog fields, in path order),
    ``files`` (song_id -> the file's path relative to ``folder``, ``/``-separated) and the
    :class:`LibraryReport`."""

    folder: Path
    songs: dict[str, dict]
    files: dict[str, str]
    report: LibraryReport


def _fields(tags: Tags, rel: str) -> dict:
    """A song's catalog fields (those :mod:`pmrs.catalog` documents, and the library's own)."""
    return {"title": tags.title or Path(rel).stem, "artist": tags.artist, "artist_id": tags.artist_mbid,
            "release": tags.album, "year": tags.year, "duration": round(tags.duration or 0.0, 3),
            "genre": tags.genre, "track_ids": [], "track_number": tags.track_number,
            "recording_mbid": tags.recording_mbid, "artist_mbid": tags.artist_mbid, "file": rel}


def read_library(folder: str | os.PathLike, extensions: tuple[str, ...] | None = None,
                 show_progress: bool | None = None) -> Library:
    """Read every audio file under ``folder`` into catalog records (see the module's description).

    Parameters
    ----------
    folder : str or path-like
        The music folder.
    extensions : tuple of str or None
        The file extensions taken as audio (default: ``pmrs extract``'s, :class:`ExtractConfig`).
    show_progress : bool or None
        tqdm progress bar: None shows it on a terminal only.

    Raises
    ------
    IngestError
        ``folder`` is not a folder, or holds no audio file.
    """
    t0 = time.perf_counter()
    root = Path(folder)
    if not root.is_dir():
        raise IngestError(f"library: {root} is not a folder")
    exts = tuple(extensions) if extensions is not None else ExtractConfig().extensions
    rels = find_clips(root, exts)
    report = LibraryReport(folder=str(root.resolve()), files_found=len(rels))
    if not rels:
        raise IngestError(f"library: no audio files under {root} (extensions {', '.join(exts)})")
    present: Counter = Counter()
    missing: Counter = Counter()
    kinds: Counter = Counter()
    songs: dict[str, dict] = {}
    files: dict[str, str] = {}

    def skip(rel: str, reason: str, detail: str = "") -> None:
        report.skipped.append({"file": rel, "reason": reason, "detail": detail[:200]})

    for rel_path in tqdm(rels, unit="file", desc="library", leave=False,
                         disable=None if show_progress is None else not show_progress):
        rel = rel_path.as_posix()
        if any(c in rel for c in "\t\r\n") or rel != rel.strip():
            skip(rel, UNMAPPABLE)
            continue
        try:
            tags = read_tags(root / rel_path)
        except IngestError as exc:
            skip(rel, str(exc))
            continue
        except Exception as exc:  # noqa: BLE001 -- mutagen's errors, OSError: one bad file never stops a run
            skip(rel, UNREADABLE, f"{type(exc).__name__}: {exc}")
            continue
        report.files_read += 1
        song_id, kind = library_song_id(tags, rel)
        if id_problem(song_id) is not None:  # cannot happen with these forms; kept as a guard
            skip(rel, UNREADABLE, f"song id {song_id!r}: {id_problem(song_id)}")
            continue
        if song_id in songs:
            report.duplicates.append({"file": rel, "song_id": song_id, "first": files[song_id]})
            continue
        fields = _fields(tags, rel)
        songs[song_id] = fields
        files[song_id] = rel
        kinds[kind] += 1
        for name in TAG_FIELDS:
            if getattr(tags, name):
                present[name] += 1
        if not tags.title:
            missing[NO_TITLE] += 1
        if not tags.artists:
            missing[NO_ARTIST] += 1
    report.songs = len(songs)
    report.tags_present = {name: present[name] for name in TAG_FIELDS}
    report.missing = {NO_TITLE: missing[NO_TITLE], NO_ARTIST: missing[NO_ARTIST]}
    report.ids_by_kind = {k: kinds[k] for k in ("mbid", "tags", "path")}
    reasons = Counter(s["reason"] for s in report.skipped)
    if report.duplicates:
        reasons[DUPLICATE] = len(report.duplicates)
    report.skipped_by_reason = dict(sorted(reasons.items()))
    report.seconds = round(time.perf_counter() - t0, 3)
    if reasons:
        log.warning("library %s: skipped %d of %d files (%s)", root, sum(reasons.values()), len(rels),
                    ", ".join(f"{n} {r}" for r, n in report.skipped_by_reason.items()))
    log.info("library %s: %d songs from %d files (ids: %d MBID, %d tags, %d path; %d without an artist tag)",
             root, len(songs), len(rels), kinds["mbid"], kinds["tags"], kinds["path"], missing[NO_ARTIST])
    return Library(root, songs, files, report)


def write_mapping(library: Library, path: str | os.PathLike) -> Path:
    """Write ``pmrs extract``'s mapping of the library's files (``filename<TAB>song_id`` lines,
    file names relative to the library folder) to ``path`` (a directory: ``path /
    library_mapping.tsv``), atomically."""
    path = Path(path)
    if path.is_dir():
        path = path / LIBRARY_MAPPING_FILE
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(f"# pmrs extract's mapping of the music folder {library.folder} (filename<TAB>song_id)\n")
        for song_id, rel in library.files.items():
            # extract's reader skips lines starting with "#" and drops a leading "./"
            fh.write(f"{'./' if rel.startswith('#') else ''}{rel}\t{song_id}\n")
    tmp.replace(path)
    return path


def write_library_catalog(library: Library, path: str | os.PathLike) -> None:
    """Write the library's songs as a catalog (:func:`pmrs.catalog.write_catalog`; no tracks)."""
    info = {"songs": len(library.songs), "tracks": 0,
            "genres": sorted({s["genre"] for s in library.songs.values() if s["genre"]}),
            "sources": {"library": str(library.folder)}}
    write_catalog(path, sorted(library.songs.items()), (), info)


def write_library_report(library: Library, workdir: str | os.PathLike) -> Path:
    """The library's report as ``<workdir>/library_report.json``."""
    out = Path(workdir) / LIBRARY_REPORT_FILE
    write_json(out, library.report.as_dict())
    return out
