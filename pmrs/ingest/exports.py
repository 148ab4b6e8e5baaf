"""Personal listening exports, one folder per person: what each folder holds, and all of it read.

People's own exports carry no user id, so they come as ``DIR/<person>/...``: the folder's name is
the user id (an id by :mod:`pmrs.ids`), and everything under it (sub-folders and zips included)
is that person's. One ``DIR`` may hold people of different services, and one person several.

A file is recognised by its content first (the start of its text: the keys of a Spotify play or a
ListenBrainz listen, a Last.fm ``recenttracks`` page, a CSV with artist, track and time columns),
then by its name (``StreamingHistory*.json``, ``Streaming_History_Audio_*.json``,
``endsong_*.json``, ``listens.jsonl``, ``*.csv``), so a renamed file is still read and a file that
is named like an export but broken is reported rather than skipped. Files that are neither (an
export's other files: ``Userdata.json``, ``Playlist1.json``, ``user.json``, a PDF) are not read.

Formats (:data:`FORMATS`) and their readers:

- ``spotify-basic``, ``spotify-extended``: :mod:`pmrs.ingest.spotify` (``ts``: END of the listen);
- ``lastfm-csv``, ``lastfm-json``: :mod:`pmrs.ingest.scrobbles` (``ts``: START);
- ``listenbrainz``: :mod:`pmrs.ingest.listenbrainz` (``ts``: START).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Sequence

from tqdm.auto import tqdm

from ..errors import IngestError
from ..ids import id_problem
from . import listenbrainz, scrobbles, spotify
from .exportfiles import ExportFile, export_files, head_text
from .listens import NO_USER, Dropped, Listens, concat

log = logging.getLogger(__name__)

__all__ = ["FORMATS", "read_person", "read_personal_exports", "recognise", "recognise_file"]

_SERVICES = (spotify, listenbrainz, scrobbles)   # content is asked in this order, then names
_READERS: tuple[tuple[tuple[str, ...], Callable[[Sequence[ExportFile], str], Listens]], ...] = (
    (spotify.FORMATS, spotify.read_spotify_files),
    (scrobbles.FORMATS, scrobbles.read_scrobble_files),
    (listenbrainz.FORMATS, listenbrainz.read_listenbrainz_files),
)
#: Every format :func:`recognise` names, in the order it lists them.
FORMATS = tuple(fmt for formats, _ in _READERS for fmt in formats)


def recognise_file(f: ExportFile) -> str | None:
    """The format of one file (:data:`FORMATS`), or ``None`` when it is no listening export."""
    head = head_text(f)
    for service in _SERVICES:
        fmt = service.sniff_content(head)
        if fmt:
            return fmt
    for service in _SERVICES:
        fmt = service.sniff_name(f.basename)
        if fmt:
            return fmt
    return None


def recognise(folder: str | Path, dropped: Dropped | None = None) -> list[tuple[str, list[ExportFile]]]:
    """What a person's folder (or a zip, or one file) holds: ``(format, files)`` for each format
    found, in :data:`FORMATS` order; files of no format are left out (logged at debug level).
    ``str(file)`` names a file for a report (``archive.zip!member`` inside a zip). A zip that
    cannot be opened is counted in ``dropped`` as a broken file."""
    groups: dict[str, list[ExportFile]] = {}
    for f in export_files(folder, dropped):
        fmt = recognise_file(f)
        if fmt is None:
            log.debug("%s: not a listening export", f)
        else:
            groups.setdefault(fmt, []).append(f)
    return [(fmt, groups[fmt]) for fmt in FORMATS if fmt in groups]


def read_person(folder: str | Path, user: str | None = None) -> Listens:
    """Every listening export in one person's folder, as listens of ``user`` (the folder's name
    by default)."""
    folder = Path(folder)
    user = folder.name if user is None else user
    dropped = Dropped()
    groups = dict(recognise(folder, dropped))
    parts = []
    for formats, reader in _READERS:
        files = [f for fmt in formats for f in groups.get(fmt, [])]
        if files:
            parts.append(reader(files, user))
    if not parts:
        log.warning("%s: no listening export recognised in it", folder)
    out = concat(parts, "personal-exports")
    out.dropped.merge(dropped)
    log.info("%s: %d listens from %d files (%s); %d rows dropped", user, out.rows, len(out.files),
             ", ".join(groups) or "nothing", out.dropped.total)
    return out


def read_personal_exports(root: str | Path, show_progress: bool | None = None) -> Listens:
    """All people's exports under ``root`` (``root/<person>/...``, the folder's name the user id)
    as one table. An export file directly in ``root`` (other files there are not exports, e.g.
    the MSD files of a data folder), or a folder whose name cannot be an id, is counted under
    :data:`~pmrs.ingest.listens.NO_USER` and not read. :class:`pmrs.IngestError` when
    ``root`` is not a folder or holds no person's folder, or when a file is mostly malformed."""
    root = Path(root)
    if not root.is_dir():
        raise IngestError(f"personal exports: {root} is not a folder (expected DIR/<person>/<export files>)")
    entries = sorted(p for p in root.iterdir() if not p.name.startswith(".") and p.name != "__MACOSX")
    dropped = Dropped()
    people = []
    for p in entries:
        why = id_problem(p.name)
        if not p.is_dir():
            if any(recognise_file(f) for f in export_files(p)):
                log.warning("%s: an export outside a person's folder is not read (whose is it?)", p)
                dropped.add(NO_USER, str(p), None, "an export outside a person's folder: put it in DIR/<person>/")
        elif why is not None:
            dropped.add(NO_USER, str(p), None, f"the folder's name cannot be a user id: {why}")
        else:
            people.append(p)
    if not people:
        raise IngestError(f"personal exports: no person's folder in {root} "
                          "(expected DIR/<person>/<export files>, the folder's name the user id)")
    parts = [read_person(p) for p in tqdm(people, desc="personal exports", unit="person", leave=False,
                                          disable=None if show_progress is None else not show_progress)]
    out = concat(parts, "personal-exports")
    out.dropped.merge(dropped)
    return out
