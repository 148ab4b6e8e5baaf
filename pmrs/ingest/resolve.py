"""One song, however it is named: listening events resolved to catalog songs.

Events name songs by an id, a MusicBrainz recording id, a Spotify URI or artist and title. Each
event goes to one catalog song by the first rule that finds one:

1. ``id``: its ``song_id`` is a catalog song's id;
2. ``mbid``: its recording MBID is a catalog song's (``mbid`` field);
3. ``spotify``: its Spotify track URI is a catalog song's (``spotify_uri`` field);
4. ``names``: its normalised artist and title are a catalog song's (:func:`name_key`); when
   several songs share them (two releases of one recording), the one on the event's album, else
   the lowest song id, and the event is counted as ``ambiguous`` (listed);
5. ``created``: none found: a catalog entry is made from the event's own names
   (:func:`new_song_id`), and later events naming it the same way find it.

Normalisation of names (``name_key``), stated once: Unicode NFKC, case folded, whitespace
collapsed; quotes and dashes unified; featured credits dropped from artist and title (``feat.``,
``ft.``, ``featuring``, ``with`` in brackets, and ``&``-joined artists kept as they are); version
suffixes that name the same recording dropped from the title (``- Remastered 2011``, ``(2009
Remaster)``, ``(Radio Edit)``, ``- Single Version``, ``(Mono)``, ``(Stereo)``); a named remix,
live recording or edit (``(Aphex Twin Remix)``, ``- Live``) is another recording and keeps its
suffix.

Ids (``new_song_id``): ``mbid:<recording mbid>`` when the event has one, else ``ev:`` and 16 hex
digits of the SHA-1 of the normalised artist and title: stable across runs and machines, and a
valid id (:mod:`pmrs.ids`).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np
import pyarrow as pa

from ..ids import id_problem

RULES = ("id", "mbid", "spotify", "names", "created")
_MBID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_SPOTIFY = re.compile(r"^spotify:track:[0-9A-Za-z]{22}$")
_FEAT = re.compile(r"\s*[\(\[]\s*(?:feat\.?|ft\.?|featuring|with)\s[^\)\]]*[\)\]]"
                   r"|\s+(?:feat\.?|ft\.?|featuring)\s.*$", re.IGNORECASE)
_VERSION = re.compile(
    r"\s*(?:[-–—]\s*|[\(\[]\s*)(?:(?:\d{4}\s+)?(?:digital(?:ly)?\s+)?remaster(?:ed)?(?:\s+version)?(?:\s+\d{4})?"
    r"|radio\s+edit|single\s+version|album\s+version|mono(?:\s+version)?|stereo(?:\s+version)?)\s*[\)\]]?\s*$",
    re.IGNORECASE)
_QUOTES = str.maketrans({"‘": "'", "’": "'", "`": "'", "´": "'", "“": '"', "”": '"', "–": "-", "—": "-"})


def normalise(name: str | None) -> str:
    """NFKC, quotes and dashes unified, whitespace collapsed, case folded."""
    if not name:
        return ""
    text = unicodedata.normalize("NFKC", str(name)).translate(_QUOTES)
    return " ".join(text.split()).casefold()


def name_key(artist: str | None, title: str | None) -> str:
    """The key songs are matched by when no id says which: normalised artist and title without
    featured credits and without version suffixes that name the same recording (module
    docstring); ``""`` when either is missing."""
    a = normalise(_FEAT.sub("", unicodedata.normalize("NFKC", artist or "")))
    t = unicodedata.normalize("NFKC", title or "")
    for _ in range(3):   # "Song (feat. X) - Remastered 2011": both, in either order
        t = _VERSION.sub("", _FEAT.sub("", t))
    t = normalise(t)
    return f"{a}\x1f{t}" if a and t else ""


def clean_mbid(value: str | None) -> str | None:
    """A recording MBID as lower-case UUID text, ``None`` for anything else."""
    if not value:
        return None
    v = str(value).strip().lower()
    return v if _MBID.match(v) else None


def clean_spotify(value: str | None) -> str | None:
    """A Spotify track URI (``spotify:track:<22>``, also from an open.spotify.com link), else ``None``."""
    if not value:
        return None
    v = str(value).strip()
    if v.startswith("https://open.spotify.com/track/"):
        v = "spotify:track:" + v.rsplit("/", 1)[1].split("?", 1)[0]
    return v if _SPOTIFY.match(v) else None


def new_song_id(mbid: str | None, artist: str | None, title: str | None) -> str:
    """The id of a song created from an event's own names (module docstring)."""
    m = clean_mbid(mbid)
    if m:
        return f"mbid:{m}"
    return "ev:" + hashlib.sha1(name_key(artist, title).encode()).hexdigest()[:16]


#: The columns that name a song in a listens table.
NAMING = ("song_id", "recording_mbid", "spotify_uri", "artist", "title", "album")


@dataclass
class Resolution:
    """How the events were resolved: events matched by each rule (:data:`RULES`), events that
    name no song, the songs created ``{id: fields}`` and the ambiguous names ``[(artist, title,
    candidates, chosen)]``."""

    by_rule: dict[str, int] = field(default_factory=lambda: {r: 0 for r in RULES})
    unresolved: int = 0
    created: dict[str, dict] = field(default_factory=dict)
    ambiguous: list[tuple[str, str, list[str], str]] = field(default_factory=list)

    def as_dict(self, examples: int = 20) -> dict:
        return {"events_by_rule": dict(self.by_rule), "events_naming_no_song": self.unresolved,
                "songs_created": len(self.created), "ambiguous": len(self.ambiguous),
                "ambiguous_examples": [{"artist": a, "title": t, "candidates": c, "chosen": ch}
                                       for a, t, c, ch in self.ambiguous[:examples]]}


class CatalogIndex:
    """The catalog's songs by id, MBID, Spotify URI and name key (built once per ingest)."""

    def __init__(self, songs: Iterable[tuple[str, Mapping]]):
        self.ids: set[str] = set()
        self.by_mbid: dict[str, str] = {}
        self.by_spotify: dict[str, str] = {}
        self.by_name: dict[str, list[tuple[str, str]]] = {}   # key -> [(song id, normalised album)]
        for sid, f in songs:
            self.add(sid, f)

    def add(self, sid: str, f: Mapping) -> None:
        self.ids.add(sid)
        m = clean_mbid(f.get("mbid"))
        if m:
            self.by_mbid.setdefault(m, sid)
        s = clean_spotify(f.get("spotify_uri"))
        if s:
            self.by_spotify.setdefault(s, sid)
        key = name_key(f.get("artist"), f.get("title"))
        if key:
            self.by_name.setdefault(key, []).append((sid, normalise(f.get("release"))))


def resolve(namings: pa.Table, index: CatalogIndex, events: np.ndarray | None = None,
            out: Resolution | None = None) -> tuple[np.ndarray, Resolution]:
    """The song id of each distinct naming (a table of the :data:`NAMING` columns, ``""`` or null
    for absent values; one row per distinct naming, so a person's thousands of listens of one
    song are resolved once) by the module's rules, and the :class:`Resolution` (``events``: how
    many events each naming stands for, for its counts). ``None`` for a naming of no song."""
    out = out or Resolution()
    rows = namings.select(list(NAMING)).to_pylist()
    events = np.ones(len(rows), np.int64) if events is None else np.asarray(events, np.int64)
    ids = np.empty(len(rows), dtype=object)
    for i, row in enumerate(rows):
        sid, rule = _one({k: (v or None) for k, v in row.items()}, index, out)
        ids[i] = sid
        if rule >= 0:
            out.by_rule[RULES[rule]] += int(events[i])
        else:
            out.unresolved += int(events[i])
    return ids, out


def _one(row: dict, index: CatalogIndex, out: Resolution) -> tuple[str | None, int]:
    sid = row["song_id"]
    if sid and id_problem(sid) is not None:
        sid = None   # (an id that cannot be stored: matched by the rest of the naming, if anything)
    if sid and sid in index.ids:
        return sid, 0
    m = clean_mbid(row["recording_mbid"])
    if m and m in index.by_mbid:
        return index.by_mbid[m], 1
    s = clean_spotify(row["spotify_uri"])
    if s and s in index.by_spotify:
        return index.by_spotify[s], 2
    key = name_key(row["artist"], row["title"])
    found = index.by_name.get(key) if key else None
    if found:
        if len({f[0] for f in found}) == 1:
            return found[0][0], 3
        album = normalise(row["album"])
        on_album = sorted(f[0] for f in found if album and f[1] == album)
        chosen = on_album[0] if on_album else min(f[0] for f in found)
        out.ambiguous.append((row["artist"] or "", row["title"] or "", sorted({f[0] for f in found}), chosen))
        return chosen, 3
    if sid and not key and not m and not s:   # an id the catalog does not know, and nothing else
        new = sid
        fields = {"title": "", "artist": "", "release": "", "year": 0, "genre": ""}
    elif key or m:
        new = new_song_id(m, row["artist"], row["title"])
        fields = {"title": row["title"] or "", "artist": row["artist"] or "", "release": row["album"] or "",
                  "year": 0, "genre": ""}
        if m:
            fields["mbid"] = m
        if s:
            fields["spotify_uri"] = s
    elif s:
        new = "spotify:" + s.rsplit(":", 1)[1]
        fields = {"title": "", "artist": "", "release": "", "year": 0, "genre": "", "spotify_uri": s}
    else:
        return None, -1
    if new not in out.created and new not in index.ids:
        out.created[new] = fields
        index.add(new, fields)
    return new, 4
