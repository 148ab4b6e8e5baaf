"""``pmrs ingest``: people's listening data and the Million Song Dataset's files into the work
directory.

What a data folder holds is recognised by file names and contents; explicit paths override:

- the MSD files by their standard names (``train_triplets.txt``, ``unique_tracks.txt``,
  ``track_metadata.db``, ``sid_mismatches.txt``, a genre file: ``genres.tsv`` or tagtraum's
  ``msd_tagtraum_cd2c.cls``, ``msd_tagtraum_cd2.cls``, ``msd_tagtraum_cd1.cls``, the first found
  in that order, :data:`pmrs.ingest.metadata.GENRE_FILES`; and the Last.fm inputs named in
  :mod:`pmrs.ingest.lastfm`);
- personal listening exports, one folder per person (``DIR/<person>/...``: Spotify, Last.fm,
  ListenBrainz, :mod:`pmrs.ingest.exports`), the folder's name the user id;
- a service's table of listening events (``DIR/events/``, or ``--events PATH``:
  :mod:`pmrs.ingest.events`).

Listens (exports, event tables, the write log's plays) are resolved to catalog songs
(:mod:`pmrs.ingest.resolve`) and aggregated with their times (:mod:`pmrs.ingest.aggregate`);
songs they name that the catalog lacks are added to it from their names.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

from ..artifacts import replace_dir, write_json
from ..catalog import CATALOG_FILE, add_songs, write_catalog
from ..interactions import INGEST_REPORT_FILE, INTERACTIONS_DIR
from ..live.rebuild import LIVE_FILE, merge_plays, read_logged, write_clips
from .metadata import GENRE_CHOICE, GENRE_FILES, build_catalog, find_genre_file
from .rawtext import check_input_file
from .errors import IngestError
from .lastfm import find_lastfm, input_kind
from .triplets import IngestConfig, read_triplets

log = logging.getLogger(__name__)

__all__ = ["IngestConfig", "IngestError", "ingest", "STANDARD_FILES"]

STANDARD_FILES = {
    "triplets": "train_triplets.txt",
    "unique_tracks": "unique_tracks.txt",
    "track_metadata": "track_metadata.db",
    "genres": "genres.tsv",
    "sid_mismatches": "sid_mismatches.txt",
}


def ingest(data_dir: str | Path | None, workdir: str | Path, cfg: IngestConfig | None = None,
           lastfm: Sequence[str | Path] | None = None, show_progress: bool | None = None,
           live: bool = True, events: Sequence[str | Path] | None = None, exports: str | Path | None = None,
           events_cfg=None, library: str | Path | None = None, **paths: str | Path | None) -> dict:
    """Ingest triplets and metadata; returns the report also written to ``ingest_report.json``.

    ``paths`` may name ``triplets``, ``unique_tracks``, ``track_metadata``, ``genres`` explicitly;
    the rest are looked up by their standard names in ``data_dir``. The triplets file is required.
    ``lastfm``: Last.fm inputs (JSON folders, ``lastfm_tags.db``, ``lastfm_similars.db``), which
    replace the ones found in ``data_dir`` under their standard names; their tags and similars go
    into the catalog, and what was wrong with them into the report (never fatal).
    ``live``: take in the work directory's write log (``pmrs.live.rebuild``): logged plays are
    added to the triplets' counts, logged songs to the catalog (their clips to ``live/audio/``),
    and the last write taken in is recorded for the bundle.
    ``events``: event tables (files or folders; default: ``DIR/events/`` when there is one),
    read with ``events_cfg`` (:class:`pmrs.ingest.events.EventsConfig`). ``exports``: a folder of
    people's exports (default: the person folders of ``DIR`` itself). Their listens are resolved
    to songs and added to the triplets' plays (either may be absent, not both). ``library``: a
    music folder whose files' tags are catalog songs (:mod:`pmrs.ingest.library`); listens are
    matched against them, and ``<workdir>/library_mapping.tsv`` tells ``pmrs extract`` which
    file is which song.
    Outputs replace the previous ones only once each is complete; bad input (a path that is not
    a readable file, a file in UTF-16, a file with no usable line, a file that is mostly garbage)
    raises :class:`IngestError` before anything is replaced.
    """
    cfg = cfg or IngestConfig()
    workdir = Path(workdir)
    files: dict[str, Path | None] = {}
    for key, name in STANDARD_FILES.items():
        given = paths.get(key)
        if given:
            files[key] = check_input_file(given, key, name)
        elif key == "genres":
            found, not_read = find_genre_file(data_dir)
            files[key] = check_input_file(found, key, name) if found is not None else None
            if not_read:
                log.info("genre file: reading %s, not %s: %s", found.name,
                         ", ".join(p.name for p in not_read), GENRE_CHOICE)
        elif data_dir is not None and (Path(data_dir) / name).exists():
            files[key] = check_input_file(Path(data_dir) / name, key, name)
        else:
            files[key] = None
    lastfm_paths = [Path(p) for p in lastfm] if lastfm else find_lastfm(data_dir)
    for p in lastfm_paths:
        input_kind(p)  # a path that is not a Last.fm input is an error before anything is read
    listened = _read_listens(data_dir, events, exports, events_cfg, show_progress)
    shelf = None
    if library is not None:
        from .library import read_library

        shelf = read_library(library, show_progress=show_progress)
        log.info("music folder %s: %d songs", shelf.folder, len(shelf.songs))
    if files["triplets"] is None and listened is None:
        where = f"in {data_dir}" if data_dir else "(no data folder given)"
        raise IngestError(f"no plays {where}: expected {STANDARD_FILES['triplets']} (or --triplets PATH), "
                          "a service's events (events/ or --events PATH) or people's exports "
                          "(DIR/<person>/..., or --exports DIR)")

    workdir.mkdir(parents=True, exist_ok=True)
    inter, trip_report = read_triplets(files["triplets"], cfg) if files["triplets"] is not None else (None, None)
    if inter is not None:
        log.info("triplets: %d users x %d songs, %d plays", inter.n_users, inter.n_songs, inter.matrix.nnz)
    logged = read_logged(workdir) if live else None

    meta_report = None
    logged_songs = (logged.songs if logged is not None else []) + \
        ([{"song_id": sid, **fields} for sid, fields in shelf.songs.items()] if shelf is not None else [])
    if any(files[k] for k in ("unique_tracks", "track_metadata", "genres")):
        meta_report = build_catalog(workdir / CATALOG_FILE, unique_tracks=files["unique_tracks"],
                                    track_metadata=files["track_metadata"], genres=files["genres"],
                                    sid_mismatches=files["sid_mismatches"],
                                    lastfm=lastfm_paths, max_similars=cfg.lastfm_max_similars,
                                    show_progress=show_progress, extra_songs=logged_songs)
    elif listened is None and shelf is None:
        log.warning("no metadata files found; catalog.lmdb not written%s",
                    "; the Last.fm input needs a catalog to map its tracks, and was skipped"
                    if lastfm_paths else "")
    resolution = None
    if listened is None and shelf is not None and meta_report is None:   # the folder is the catalog
        write_catalog(workdir / CATALOG_FILE, ((s["song_id"], _fields(s)) for s in logged_songs), [],
                      {"sources": {"library": str(shelf.folder)}, "songs": len(logged_songs)})
    if listened is not None:   # resolved against the catalog; the songs they name that it lacks join it
        from .aggregate import combine, to_interactions
        from .resolve import CatalogIndex

        known = list(_catalog_items(workdir / CATALOG_FILE)) if meta_report is not None else []
        known += [(s["song_id"], s) for s in logged_songs]
        index = CatalogIndex(known)
        if inter is not None:   # the triplets' song ids are songs too
            index.ids.update(inter.song_ids.astype(str).tolist())
        heard, resolution = to_interactions(listened.table, index, cfg.min_play_seconds)
        log.info("listens: %d events, %d users x %d songs; by rule %s, %d songs created", listened.rows,
                 heard.n_users, heard.n_songs, resolution.by_rule, len(resolution.created))
        inter = combine([inter, heard]) if inter is not None else heard
        new_songs = [{"song_id": sid, **fields} for sid, fields in resolution.created.items()]
        if meta_report is not None:
            add_songs(workdir / CATALOG_FILE, new_songs)
        else:
            write_catalog(workdir / CATALOG_FILE, ((s["song_id"], _fields(s)) for s in [*logged_songs, *new_songs]),
                          [], {"sources": {"listens": listened.format}, "songs": len(logged_songs) + len(new_songs)})
    if logged is not None:
        inter = merge_plays(inter, logged.plays)
        log.info("write log: %d logged plays and %d songs taken in (writes 1..%d)", len(logged.plays),
                 len(logged.songs), logged.upto)
    if not lastfm_paths:
        log.info("no Last.fm input: the metadata source will have no tags")
    genre_search = _genre_search(data_dir, paths.get("genres"), files["genres"])
    if files["genres"] is None and meta_report is not None:
        log.warning("no genre file: looked for %s in %s (or --genres PATH); songs get no genre",
                    ", ".join(GENRE_FILES), data_dir if data_dir is not None else "no data folder")

    report = {
        "config": asdict(cfg),
        "files": {k: (str(Path(v).absolute()) if v else None) for k, v in files.items()},
        "lastfm_files": [str(p) for p in lastfm_paths],
        "genre_search": genre_search,
        "triplets": trip_report.as_dict() if trip_report is not None else None,
        "library": None if shelf is None else {"folder": str(shelf.folder), **asdict(shelf.report)},
        "listens": None if listened is None else {
            "format": listened.format, "files": len(listened.files), "events": listened.rows,
            "dropped": listened.dropped.as_dict(), **resolution.as_dict(),
            "users": int(inter.n_users), "min_play_seconds": cfg.min_play_seconds},
        "catalog": None if meta_report is None else asdict(meta_report),
        "live": None if logged is None else {"live_seq": logged.upto, "plays": len(logged.plays),
                                             "songs": len(logged.songs), "clips": len(logged.clips)},
    }
    if logged is not None and logged.songs and meta_report is None and listened is None:
        log.warning("no metadata files: the %d logged songs get no catalog row", len(logged.songs))
    staging = Path(tempfile.mkdtemp(prefix=f".{INTERACTIONS_DIR}.", dir=workdir))
    try:
        inter.save(staging)
        write_json(staging / INGEST_REPORT_FILE, report)
        if logged is not None:
            write_clips(workdir, logged)
            write_json(staging / LIVE_FILE, report["live"])
        replace_dir(staging, workdir / INTERACTIONS_DIR)
        if shelf is not None:
            from .library import write_mapping

            write_mapping(shelf, workdir)
    except BaseException:
        import shutil
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return report


#: Folders of a data folder that are never a person's exports.
RESERVED_FOLDERS = frozenset({"audio", "events", "lastfm_train", "lastfm_test", "lastfm_subset", "__MACOSX"})


def _read_listens(data_dir, events, exports, events_cfg, show_progress):
    """Every listen of the inputs: event tables and people's exports (``None`` when there are none)."""
    from .exports import read_person, read_personal_exports, recognise
    from .listens import concat

    parts = []
    event_paths = [Path(p) for p in events] if events else (
        [Path(data_dir) / "events"] if data_dir is not None and (Path(data_dir) / "events").is_dir() else [])
    if event_paths:
        from .events import EventsConfig, read_events

        parts += [read_events(p, events_cfg or EventsConfig()) for p in event_paths]
    if exports is not None:
        parts.append(read_personal_exports(exports, show_progress=show_progress))
    elif data_dir is not None and Path(data_dir).is_dir():
        people = [p for p in sorted(Path(data_dir).iterdir())
                  if p.is_dir() and not p.name.startswith(".") and p.name not in RESERVED_FOLDERS and recognise(p)]
        parts += [read_person(p) for p in people]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else concat(parts, "+".join(sorted({p.format for p in parts})))


def _genre_search(data_dir, given, used: Path | None) -> dict:
    """How the genre file was chosen: the names looked for, the files found, the one read, why."""
    if given:
        return {"looked_for": [], "found": [str(used)], "used": str(used), "why": "--genres PATH"}
    found = [] if data_dir is None else \
        [str(Path(data_dir) / n) for n in GENRE_FILES if (Path(data_dir) / n).exists()]
    return {"looked_for": list(GENRE_FILES), "found": found, "used": str(used) if used else None,
            "why": GENRE_CHOICE}


def _catalog_items(path: Path):
    from ..catalog import Catalog

    with Catalog(path) as cat:
        yield from cat.items()


def _fields(song: dict) -> dict:
    return {k: song.get(k, "" if k != "year" else 0) for k in ("title", "artist", "release", "year", "genre")} | \
        {k: song[k] for k in ("mbid", "spotify_uri", "duration", "track_number", "artist_id") if song.get(k)}
