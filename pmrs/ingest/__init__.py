"""``pmrs ingest``: raw Million Song Dataset files into the work directory.

Finds the standard file names in a data folder (``train_triplets.txt``, ``unique_tracks.txt``,
``track_metadata.db``, ``genres.tsv``, and the Last.fm inputs named in :mod:`pmrs.ingest.lastfm`);
explicit paths override each.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

from ..artifacts import replace_dir, write_json
from ..catalog import CATALOG_FILE
from ..interactions import INTERACTIONS_DIR
from ..live.rebuild import LIVE_FILE, merge_plays, read_logged, write_clips
from .metadata import build_catalog
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
           live: bool = True, **paths: str | Path | None) -> dict:
    """Ingest triplets and metadata; returns the report also written to ``ingest_report.json``.

    ``paths`` may name ``triplets``, ``unique_tracks``, ``track_metadata``, ``genres`` explicitly;
    the rest are looked up by their standard names in ``data_dir``. The triplets file is required.
    ``lastfm``: Last.fm inputs (JSON folders, ``lastfm_tags.db``, ``lastfm_similars.db``), which
    replace the ones found in ``data_dir`` under their standard names; their tags and similars go
    into the catalog, and what was wrong with them into the report (never fatal).
    ``live``: take in the work directory's write log (``pmrs.live.rebuild``): logged plays are
    added to the triplets' counts, logged songs to the catalog (their clips to ``live/audio/``),
    and the last write taken in is recorded for the bundle.
    Outputs replace the previous ones only once each is complete; bad input (a path that is not
    a readable file, a file in UTF-16, a file with no usable line) raises :class:`IngestError`
    before anything is replaced.
    """
    cfg = cfg or IngestConfig()
    workdir = Path(workdir)
    files: dict[str, Path | None] = {}
    for key, name in STANDARD_FILES.items():
        given = paths.get(key)
        if given:
            files[key] = check_input_file(given, key, name)
        elif data_dir is not None and (Path(data_dir) / name).exists():
            files[key] = check_input_file(Path(data_dir) / name, key, name)
        else:
            files[key] = None
    lastfm_paths = [Path(p) for p in lastfm] if lastfm else find_lastfm(data_dir)
    for p in lastfm_paths:
        input_kind(p)  # a path that is not a Last.fm input is an error before anything is read
    if files["triplets"] is None:
        where = f"in {data_dir}" if data_dir else "(no data folder given)"
        raise IngestError(f"no triplets file {where}: expected {STANDARD_FILES['triplets']} "
                          "or --triplets PATH")

    workdir.mkdir(parents=True, exist_ok=True)
    inter, trip_report = read_triplets(files["triplets"], cfg)
    log.info("triplets: %d users x %d songs, %d plays", inter.n_users, inter.n_songs, inter.matrix.nnz)
    logged = read_logged(workdir) if live else None
    if logged is not None:
        inter = merge_plays(inter, logged.plays)
        log.info("write log: %d logged plays and %d songs taken in (writes 1..%d)", len(logged.plays),
                 len(logged.songs), logged.upto)

    meta_report = None
    if any(files[k] for k in ("unique_tracks", "track_metadata", "genres")):
        meta_report = build_catalog(workdir / CATALOG_FILE, unique_tracks=files["unique_tracks"],
                                    track_metadata=files["track_metadata"], genres=files["genres"],
                                    sid_mismatches=files["sid_mismatches"],
                                    lastfm=lastfm_paths, max_similars=cfg.lastfm_max_similars,
                                    show_progress=show_progress,
                                    extra_songs=logged.songs if logged is not None else ())
    else:
        log.warning("no metadata files found; catalog.lmdb not written%s",
                    "; the Last.fm input needs a catalog to map its tracks, and was skipped"
                    if lastfm_paths else "")
    if not lastfm_paths:
        log.info("no Last.fm input: the metadata source will have no tags")

    report = {
        "config": asdict(cfg),
        "files": {k: (str(v) if v else None) for k, v in files.items()},
        "lastfm_files": [str(p) for p in lastfm_paths],
        "triplets": trip_report.as_dict(),
        "catalog": None if meta_report is None else asdict(meta_report),
        "live": None if logged is None else {"live_seq": logged.upto, "plays": len(logged.plays),
                                             "songs": len(logged.songs), "clips": len(logged.clips)},
    }
    if logged is not None and logged.songs and meta_report is None:
        log.warning("no metadata files: the %d logged songs get no catalog row", len(logged.songs))
    staging = Path(tempfile.mkdtemp(prefix=f".{INTERACTIONS_DIR}.", dir=workdir))
    try:
        inter.save(staging)
        write_json(staging / "ingest_report.json", report)
        if logged is not None:
            write_clips(workdir, logged)
            write_json(staging / LIVE_FILE, report["live"])
        replace_dir(staging, workdir / INTERACTIONS_DIR)
    except BaseException:
        import shutil
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return report
