"""What the web page reads from the work directory itself, read-only: the served bundle's catalog
snapshot (catalog search), its user ids (id prefixes), its acoustic embeddings (the map), the audio
clips (``pmrs extract``'s audio folder and ``live/audio``) and ``reports/``.

Recommendations, songs and the bundle's description always come from ``pmrs-server`` through the
remote recommender (:func:`pmrs.connect`); this module only serves what the API has no call for. Everything is keyed by the
bundle version ``bundles/CURRENT`` names and rebuilt when it changes. Songs and users added live
after that bundle (the write log's writes after its ``live_seq``) join the catalog search, the
user suggestions and the map at once, read incrementally from the log (``_LiveAdditions``).

File serving never leaves the media folders: a clip is found through an index built by listing
them (a request names a song id, which is a key into that index, never a path), and the file found
must still resolve inside its folder (a symlink pointing out of it is refused). Report files are
looked up under ``reports/`` the same way: resolved, then checked to be inside it.
"""

from __future__ import annotations

import bisect
import json
import logging
import mimetypes
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pmrs.audio.extract import MAPPING_FILE, audio_folders, find_clips, read_mapping
from pmrs.catalog import Catalog
from pmrs.songtext import SongText
from pmrs.evaluation.holdout import REPORTS_DIR
from pmrs.artifacts import tmp_path
from pmrs.live.log import LIVE_DIR, PLAYS, SONG, LogUnavailable, WriteLog, log_path
from pmrs.live.state import unpack_encoding
from pmrs.live.rebuild import LIVE_AUDIO_DIR
from pmrs.serving import contract

log = logging.getLogger(__name__)

#: Longest catalog search or user prefix accepted; longer is refused as absurd (HTTP 400).
MAX_QUERY_CHARS = 200
#: Songs a catalog search returns at most.
SEARCH_LIMIT = 20
#: Points the map draws at most (an even sample of the songs beyond that).
MAP_MAX_POINTS = 4000
#: Clip formats served, with their MIME types (the ones ``pmrs extract`` reads).
AUDIO_TYPES = {".wav": "audio/wav", ".ogg": "audio/ogg", ".oga": "audio/ogg", ".opus": "audio/ogg",
               ".mp3": "audio/mpeg", ".flac": "audio/flac", ".m4a": "audio/mp4", ".aac": "audio/aac",
               ".aif": "audio/aiff", ".aiff": "audio/aiff", ".au": "audio/basic", ".webm": "audio/webm"}
#: Report files served (the lab shows tables and plots).
REPORT_TYPES = {".png": "image/png", ".svg": "image/svg+xml", ".json": "application/json",
                ".md": "text/markdown; charset=utf-8", ".csv": "text/csv; charset=utf-8"}


class BadQuery(ValueError):
    """A search or prefix that is empty or absurd (HTTP 400)."""


def check_query(text: str | None, what: str) -> str:
    """``text`` stripped; :class:`BadQuery` when empty, too long or holding control characters."""
    text = (text or "").strip()
    if not text:
        raise BadQuery(f"type a {what} first")
    if len(text) > MAX_QUERY_CHARS:
        raise BadQuery(f"a {what} of {len(text):,} characters is not something to search for "
                       f"(at most {MAX_QUERY_CHARS})")
    if any(ord(c) < 32 for c in text):
        raise BadQuery(f"a {what} cannot hold control characters")
    return text


def inside(path: Path, root: Path) -> Path | None:
    """``path`` resolved (symlinks followed) when it is a regular file inside ``root`` resolved;
    ``None`` otherwise."""
    try:
        real, base = path.resolve(strict=True), root.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not real.is_relative_to(base) or not real.is_file():
        return None
    return real


@dataclass(frozen=True)
class MapPoint:
    song_id: str
    x: float
    y: float
    genre: str
    cold: bool


def _found(song_id: str, fields: dict) -> dict:
    """A search result: the song's id and the fields the page shows."""
    return {"song_id": song_id, "title": fields.get("title") or "", "artist": fields.get("artist") or "",
            "year": fields.get("year") or 0, "genre": fields.get("genre") or ""}


class _Snapshot:
    """What one bundle version gives the page: its catalog rows, user ids, map points."""

    def __init__(self, path: Path):
        self.path = path
        self.manifest = json.loads((path / contract.MANIFEST_FILE).read_text(encoding="utf-8"))
        self.version = self.manifest.get("version", path.name)
        self._songs: list[tuple[str, str, str, dict]] | None = None   # (id, title key, artist key, fields)
        self._text: SongText | bool | None = None   # (False: the bundle has no search text)
        self._users: np.ndarray | None = None
        self._map: list[MapPoint] | None = None
        self._projection: tuple[np.ndarray, np.ndarray] | None = None   # the map's (mean, 2 axes)
        self._lock = threading.RLock()   # (the map reads the songs under it)

    def _catalog(self) -> Catalog | None:
        p = self.path / contract.CATALOG_FILE
        return Catalog(p) if p.is_file() else None

    def songs(self) -> list[tuple[str, str, str, dict]]:
        with self._lock:
            if self._songs is None:
                cat = self._catalog()
                rows = []
                if cat is not None:
                    with cat:
                        for sid, f in cat.items():
                            rows.append((sid, str(f.get("title") or "").casefold(),
                                         str(f.get("artist") or "").casefold(), f))
                self._songs = rows
            return self._songs

    def fields(self, song_id: str) -> dict:
        cat = self._catalog()
        if cat is None:
            return {}
        with cat:
            return cat.get(song_id) or {}

    def fields_many(self, song_ids: list[str]) -> list[dict]:
        """:meth:`fields` of each song (``{}`` where unknown), in one read."""
        cat = self._catalog()
        if cat is None:
            return [{} for _ in song_ids]
        with cat:
            return [f or {} for f in cat.get_many(song_ids)]

    def song_text(self) -> SongText | None:
        """The catalog's search text (``None`` in a bundle built before it: :meth:`songs` then)."""
        with self._lock:
            if self._text is None:
                p = self.path / contract.SONG_TEXT_FILE
                self._text = SongText(p) if p.is_file() else False
            return self._text or None

    def users(self) -> np.ndarray:
        with self._lock:
            if self._users is None:
                p = self.path / contract.USER_IDS_FILE
                self._users = (np.load(p, mmap_mode="r", allow_pickle=False) if p.is_file()
                               else np.zeros(0, dtype="S1"))
            return self._users

    def _source_arrays(self, name: str, key: str) -> tuple[np.ndarray, np.ndarray]:
        src = self.manifest["sources"][name]
        return (np.load(self.path / src["files"]["rows"], allow_pickle=False),
                np.load(self.path / src[key], allow_pickle=False))

    def map_points(self) -> list[MapPoint]:
        with self._lock:
            if self._map is None:
                self._map = self._compute_map()
            return self._map

    def _compute_map(self) -> list[MapPoint]:
        sources = self.manifest.get("sources") or {}
        name = next((n for n, s in sources.items() if s.get("embeddings")), None)
        if name is None:
            return []
        rows, emb = self._source_arrays(name, "embeddings")
        genres = list(self.manifest.get("genres") or [])
        gp = sources[name].get("genre_probs")
        probs = (np.load(self.path / gp, allow_pickle=False)
                 if genres and gp and (self.path / gp).is_file() else None)
        if len(rows) < 2:
            return []
        if len(rows) > MAP_MAX_POINTS:
            take = np.linspace(0, len(rows) - 1, MAP_MAX_POINTS).astype(np.int64)
            rows, emb = rows[take], emb[take]
            probs = probs[take] if probs is not None else None
        x = np.asarray(emb, dtype=np.float64)
        mean = x.mean(axis=0)
        x = x - mean
        _, _, vt = np.linalg.svd(x, full_matrices=False)   # PCA: the two main directions
        axes = vt[:2] if vt.shape[0] >= 2 else np.r_[vt[:1], np.zeros((1, vt.shape[1]))]
        self._projection = (mean, axes)
        xy = x @ axes.T
        song_ids = np.load(self.path / contract.SONG_IDS_FILE, mmap_mode="r", allow_pickle=False)
        collab = sources.get(contract.COLLABORATIVE, {}).get("files", {}).get("rows")
        played = set(np.load(self.path / collab, allow_pickle=False).tolist()) if collab else set()
        ids = [song_ids[row].decode() for row in rows.tolist()]
        catalog = dict(zip(ids, self.fields_many(ids)))   # (the points' songs only)
        out = []
        for i, row in enumerate(rows.tolist()):
            sid = ids[i]
            genre = str(catalog.get(sid, {}).get("genre") or "")   # the label, else the genre head's guess
            if not genre and probs is not None:
                genre = genres[int(np.argmax(probs[i]))]
            out.append(MapPoint(sid, float(xy[i, 0]), float(xy[i, 1]), genre, row not in played))
        return out

    def project(self, embedding: np.ndarray) -> tuple[float, float] | None:
        """Where a song with ``embedding`` falls on the map (None before the map or without one)."""
        self.map_points()
        if self._projection is None:
            return None
        mean, axes = self._projection
        e = np.asarray(embedding, dtype=np.float64).ravel()
        if e.shape != mean.shape:
            return None
        x, y = (e - mean) @ axes.T
        return float(x), float(y)


class _LiveAdditions:
    """The songs and users the write log added after one bundle (writes after its ``live_seq``),
    read incrementally: each call reads only the writes since the previous one. A song's map
    point comes from the encoding the server cached in the log for this bundle version (its
    acoustic embedding), so the web app never runs the CNN itself."""

    def __init__(self, log_file: Path, snap: _Snapshot):
        self.log_file = log_file
        self.snap = snap
        self.seq = int(snap.manifest.get("live_seq") or 0)
        self.songs: list[tuple[str, str, str, dict]] = []   # as _Snapshot.songs(): (id, title key, artist key, fields)
        self.song_seq: dict[str, int] = {}
        self.fields: dict[str, dict] = {}                   # song id -> catalog fields
        self.users: list[str] = []                          # sorted
        self._user_set: set[str] = set()
        self._points: dict[str, MapPoint | None] = {}       # None: encoded, but no map point
        self._lock = threading.Lock()
        self._wlog: WriteLog | None = None

    def close(self) -> None:
        with self._lock:
            if self._wlog is not None:
                self._wlog.close()
                self._wlog = None

    def refresh(self) -> "_LiveAdditions":
        if not self.log_file.is_file():
            return self
        with self._lock:
            try:
                if self._wlog is None:
                    self._wlog = WriteLog(self.log_file, readonly=True)
                new_users = False
                for w in self._wlog.since(self.seq):
                    if w.kind == SONG and isinstance(w.body.get("song_id"), str):
                        f = {k: w.body.get(k) for k in ("title", "artist", "genre", "year", "release")}
                        sid = w.body["song_id"]
                        self.songs.append((sid, str(f["title"] or "").casefold(),
                                           str(f["artist"] or "").casefold(), f))
                        self.fields[sid] = f
                        self.song_seq[sid] = w.seq
                    elif w.kind == PLAYS and isinstance(w.body.get("user_id"), str):
                        if w.body["user_id"] not in self._user_set:
                            self._user_set.add(w.body["user_id"])
                            new_users = True
                    self.seq = w.seq
                if new_users:
                    self.users = sorted(self._user_set)
            except LogUnavailable as exc:   # the page goes on with what it has read
                log.warning("cannot read the write log: %s", exc)
        return self

    def clip(self, song_id: str) -> tuple[int, tuple[str, bytes]] | None:
        """``(seq, (file name, bytes))`` of the clip logged with song ``song_id``: one added since
        the bundle, else an older one the bundle took in (read from the log, songs only)."""
        with self._lock:
            if self._wlog is None:
                return None
            seq = self.song_seq.get(song_id)
            if seq is None:
                seq = next((w.seq for w in self._wlog.since(0, upto=int(self.snap.manifest.get("live_seq") or 0),
                                                             kinds=(SONG,))
                            if w.body.get("song_id") == song_id), None)
            found = self._wlog.clip(seq) if seq is not None else None
        return None if found is None else (seq, found)

    def _add_points(self, wlog: WriteLog) -> None:
        genres = list(self.snap.manifest.get("genres") or [])
        for sid, _, _, fields in self.songs:
            if sid in self._points:
                continue
            raw = wlog.encoded(self.song_seq[sid], str(self.snap.version))
            if raw is None:
                continue   # not encoded for this bundle yet: the next call looks again
            try:
                enc = unpack_encoding(raw)
                xy = self.snap.project(enc.embedding) if enc.embedding is not None else None
            except (ValueError, KeyError, OSError):
                xy = None
            if xy is None:   # damaged, or no embedding (a bundle without the CNN)
                self._points[sid] = None
                continue
            genre = str(fields.get("genre") or "")
            if not genre and enc.genre_probs is not None and len(genres) == len(enc.genre_probs):
                genre = genres[int(np.argmax(enc.genre_probs))]
            self._points[sid] = MapPoint(sid, xy[0], xy[1], genre, True)

    def points(self) -> list[MapPoint]:
        """Map points of the songs added since the bundle (placed when the map is asked for:
        projecting computes the map's axes)."""
        with self._lock:
            if self._wlog is not None:
                try:
                    self._add_points(self._wlog)
                except LogUnavailable as exc:
                    log.warning("cannot read the write log: %s", exc)
            return [p for p in self._points.values() if p is not None]


class WorkdirData:
    """Read-only access to what the page needs from ``workdir`` beyond the API (module docstring)."""

    def __init__(self, workdir: str | os.PathLike):
        self.workdir = Path(workdir)
        self._snap: _Snapshot | None = None
        self._live: _LiveAdditions | None = None
        self._clips: dict[Path, dict[str, Path]] = {}
        self._lock = threading.Lock()
        self._cache: Path | None = None    # clips of songs added live, copied out of the write log

    def close(self) -> None:
        """Close the write log; remove the private copies of live clips."""
        if self._live is not None:
            self._live.close()
        if self._cache is not None:
            shutil.rmtree(self._cache, ignore_errors=True)
            self._cache = None

    # -- the served bundle ---------------------------------------------------------------------

    def snapshot(self) -> _Snapshot | None:
        """The current bundle's snapshot, ``None`` when there is none (or CURRENT is unreadable)."""
        try:
            path = contract.current_bundle(self.workdir)
        except (FileNotFoundError, ValueError):
            return None
        with self._lock:
            if self._snap is None or self._snap.path != path:
                try:
                    self._snap = _Snapshot(path)
                except (OSError, ValueError) as exc:
                    log.warning("cannot read bundle %s: %s", path, exc)
                    return None
            return self._snap

    def live(self, snap: _Snapshot) -> _LiveAdditions:
        """What the write log added after ``snap``'s bundle, read up to now."""
        with self._lock:
            if self._live is None or self._live.snap is not snap:
                if self._live is not None:
                    self._live.close()
                self._live = _LiveAdditions(log_path(self.workdir), snap)
            live = self._live
        return live.refresh()

    def search(self, query: str, limit: int = SEARCH_LIMIT) -> list[dict]:
        """Catalog songs whose title or artist holds ``query`` (case-insensitive), those where it
        starts the title or artist first. :class:`BadQuery` for an empty or absurd query."""
        q = check_query(query, "title or artist").casefold()
        snap = self.snapshot()
        if snap is None:
            return []
        text = snap.song_text()
        songs = self.live(snap).songs if text is not None else (*self.live(snap).songs, *snap.songs())
        first, rest = [], []
        for sid, title, artist, fields in songs:
            if q in title or q in artist or q == sid.casefold():
                (first if title.startswith(q) or artist.startswith(q) or q == sid.casefold()
                 else rest).append(_found(sid, fields))
                if len(first) >= limit:
                    break
        if text is not None and len(first) < limit:   # the catalog's, after the songs added live
            cat_first, cat_rest = text.search(q, limit)
            ids = cat_first + cat_rest
            found = [_found(sid, f) for sid, f in zip(ids, snap.fields_many(ids))]
            first += found[:len(cat_first)]
            rest += found[len(cat_first):]
        return (first + rest)[:limit]

    def users(self, prefix: str, limit: int = 10) -> list[str]:
        """Known user ids starting with ``prefix`` (sorted; at most ``limit``)."""
        p = check_query(prefix, "user id").encode()
        snap = self.snapshot()
        if snap is None:
            return []
        ids = snap.users()
        lo = int(np.searchsorted(ids, p, side="left"))
        out = []
        for raw in ids[lo:lo + limit]:
            if not bytes(raw).startswith(p):
                break
            out.append(bytes(raw).decode())
        live = self.live(snap).users   # users whose first plays came after the bundle
        at = bisect.bisect_left(live, p.decode())
        out += [u for u in live[at:at + limit] if u.startswith(p.decode())]
        return sorted(set(out))[:limit]

    def genres(self) -> list[str]:
        snap = self.snapshot()
        return list(snap.manifest.get("genres") or []) if snap else []

    def song_fields(self, song_id: str) -> dict:
        """``{"song_id", "title", "artist", "genre", "year"}`` of a catalog song or one added live
        ("" and 0 where unknown, also for an id nobody knows)."""
        snap = self.snapshot()
        found = (snap.fields(song_id) or self.live(snap).fields.get(song_id) or {}) if snap else {}
        return {"song_id": song_id, "title": found.get("title") or "", "artist": found.get("artist") or "",
                "genre": found.get("genre") or "", "year": found.get("year") or 0}

    def artist_songs(self, artist: str) -> list[dict]:
        """The catalog's songs (and those added live) whose artist is exactly ``artist``, as
        :meth:`song_fields`, by title."""
        snap = self.snapshot()
        if snap is None or not artist:
            return []
        text = snap.song_text()
        if text is None:
            known = snap.songs()
        else:   # (the songs whose artist folds the same, then the exact ones)
            ids = text.artist(artist)
            known = [(sid, "", "", f) for sid, f in zip(ids, snap.fields_many(ids))]
        rows = [(sid, f) for sid, _, _, f in (*self.live(snap).songs, *known) if f.get("artist") == artist]
        songs = [{"song_id": sid, "title": f.get("title") or "", "artist": artist, "genre": f.get("genre") or "",
                  "year": f.get("year") or 0} for sid, f in rows]
        return sorted(songs, key=lambda s: (s["title"].casefold(), s["song_id"]))

    def tag_songs(self, tag: str, limit: int = 200) -> list[dict]:
        """The catalog's songs tagged ``tag``, as :meth:`song_fields`, the most strongly tagged first."""
        snap = self.snapshot()
        cat = snap._catalog() if snap else None
        if cat is None or not tag:
            return []
        with cat:
            found = cat.tagged(tag, limit)
            if found is None:   # (a catalog written before its tag index: every song's tags)
                found = [(sid, -w) for w, sid in sorted((-w, sid) for sid, tags in cat.items_tags()
                                                        for t, w in tags.items() if t == tag)][:limit]
        return [self.song_fields(sid) for sid, _ in found]

    def map_points(self) -> list[MapPoint]:
        snap = self.snapshot()
        return [*snap.map_points(), *self.live(snap).points()] if snap else []

    # -- media --------------------------------------------------------------------------------

    def media_roots(self) -> list[Path]:
        """The folders clips are served from: every audio folder ``pmrs extract`` read (its
        ``features_report.json``, :func:`pmrs.audio.extract.audio_folders`) and
        ``<workdir>/live/audio``."""
        roots = [*audio_folders(self.workdir), (self.workdir / LIVE_DIR / LIVE_AUDIO_DIR).resolve()]
        return [r for r in dict.fromkeys(roots) if r.is_dir()]

    def _index(self, root: Path, refresh: bool = False) -> dict[str, Path]:
        with self._lock:
            if refresh or root not in self._clips:
                found: dict[str, Path] = {}
                for rel in find_clips(root, tuple(AUDIO_TYPES)):
                    found.setdefault(rel.name.rsplit(".", 1)[0], root / rel)
                if (root / MAPPING_FILE).is_file():
                    for fname, sid in read_mapping(root / MAPPING_FILE).items():
                        if (root / fname).suffix.lower() in AUDIO_TYPES:
                            found.setdefault(sid, root / fname)
                self._clips[root] = found
            return self._clips[root]

    def clip(self, song_id: str) -> tuple[Path, str] | None:
        """``(file, MIME type)`` of the song's clip, ``None`` when there is none to serve."""
        snap = self.snapshot()
        names = [song_id] + list((snap.fields(song_id).get("track_ids") or []) if snap else [])
        for root in self.media_roots():
            for refresh in (False, True):   # a live song's clip may have arrived since
                index = self._index(root, refresh)
                for name in names:
                    path = index.get(name)
                    if path is not None and (real := inside(path, root)) is not None:
                        mime = AUDIO_TYPES.get(real.suffix.lower()) or mimetypes.guess_type(real.name)[0]
                        return real, mime or "application/octet-stream"
                if refresh or root.name != LIVE_AUDIO_DIR:
                    break
        return self._logged_clip(song_id)

    def _logged_clip(self, song_id: str) -> tuple[Path, str] | None:
        """A song added live (``AddSong``) before a rebuild wrote its clip to ``live/audio``: the
        clip the write log holds, copied once into this process's private folder (served from
        there, with ranges, like any clip)."""
        snap = self.snapshot()
        if snap is None:
            return None
        try:
            logged = self.live(snap).clip(song_id)
        except LogUnavailable as exc:
            log.warning("cannot read the write log: %s", exc)
            return None
        if logged is None or (ext := Path(logged[1][0]).suffix.lower()) not in AUDIO_TYPES:
            return None
        seq, found = logged
        with self._lock:
            if self._cache is None:
                self._cache = Path(tempfile.mkdtemp(prefix="pmrs-web-clips-"))
            target = self._cache / f"{seq}{ext}"
            if not target.is_file():
                tmp = tmp_path(target)
                tmp.write_bytes(found[1])
                os.replace(tmp, target)
        return target, AUDIO_TYPES[ext]

    # -- reports ------------------------------------------------------------------------------

    @property
    def reports_dir(self) -> Path:
        return self.workdir / REPORTS_DIR

    def reports(self) -> list[dict]:
        """Each report run: its name, ``report.md`` text, ``metrics.json`` (flattened to rows) and
        plot file names, newest first."""
        root = self.reports_dir
        if not root.is_dir():
            return []
        out = []
        for run in sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                          key=lambda p: p.stat().st_mtime, reverse=True):
            md = run / "report.md"
            out.append({"name": run.name,
                        "markdown": md.read_text(encoding="utf-8", errors="replace") if md.is_file() else "",
                        "plots": sorted(p.name for p in run.iterdir()
                                        if p.suffix.lower() in (".png", ".svg") and inside(p, root))})
        return out

    def report_file(self, rel: str) -> tuple[Path, str] | None:
        """``(file, MIME type)`` of ``reports/<rel>`` when it is a report file inside ``reports/``."""
        if not rel or "\x00" in rel or Path(rel).is_absolute():
            return None
        path = self.reports_dir / rel
        mime = REPORT_TYPES.get(path.suffix.lower())
        real = inside(path, self.reports_dir) if mime else None
        return (real, mime) if real is not None else None
