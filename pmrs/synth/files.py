"""Writing the synthetic world in the real Million Song Dataset file formats."""

from __future__ import annotations

import logging
import os
import sqlite3
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from tqdm import tqdm

from ..artifacts import tmp_path as _tmp_path
from .world import Catalog

log = logging.getLogger(__name__)

#: Column order of the MSD ``track_metadata.db`` ``songs`` table.
SONGS_COLUMNS = ("track_id", "title", "song_id", "release", "artist_id", "artist_mbid",
                 "artist_name", "duration", "artist_familiarity", "artist_hotttnesss", "year",
                 "track_7digitalid", "shs_perf", "shs_work")


def write_triplets(path: Path, blocks: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]],
                   user_ids: np.ndarray, song_ids: np.ndarray, total_users: int,
                   show_progress: bool | None = None) -> int:
    """Write ``user<TAB>song<TAB>count`` lines, no header; returns the number of lines.
    ``show_progress``: a bar on stderr (``None``: on a terminal only)."""
    users_pa = pa.array(list(map(bytes.decode, user_ids)))
    songs_pa = pa.array(list(map(bytes.decode, song_ids)))
    tmp = _tmp_path(path)
    n_lines = 0
    opts = pacsv.WriteOptions(include_header=False, delimiter="\t", quoting_style="none",
                              batch_size=65536)
    schema = pa.schema([("user", pa.string()), ("song", pa.string()), ("count", pa.int32())])
    try:
        with pacsv.CSVWriter(str(tmp), schema, write_options=opts) as writer, \
                tqdm(total=total_users, unit="user", desc="triplets", leave=False,
                     disable=None if show_progress is None else not show_progress) as bar:
            for uu, ss, cc in blocks:
                table = pa.table([users_pa.take(pa.array(uu)), songs_pa.take(pa.array(ss)),
                                  pa.array(cc)], schema=schema)
                writer.write_table(table)
                n_lines += len(uu)
                if len(uu):
                    bar.update(int(uu[-1]) + 1 - bar.n)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return n_lines


def write_unique_tracks(path: Path, cat: Catalog) -> None:
    """``track_id<SEP>song_id<SEP>artist<SEP>title``, one line per track."""
    tmp = _tmp_path(path)
    with tmp.open("w", encoding="utf-8") as fh:
        for i in range(len(cat.song_ids)):
            fh.write(f"{cat.track_ids[i].decode()}<SEP>{cat.song_ids[i].decode()}<SEP>"
                     f"{cat.artist_names[cat.artist[i]]}<SEP>{cat.titles[i]}\n")
    os.replace(tmp, path)


def write_track_metadata(path: Path, cat: Catalog, rng: np.random.Generator) -> None:
    """SQLite with the MSD ``songs`` table."""
    tmp = _tmp_path(path)
    tmp.unlink()
    n = len(cat.song_ids)
    familiarity = rng.uniform(0.2, 0.9, size=len(cat.artist_names))
    con = sqlite3.connect(tmp)
    try:
        con.execute("CREATE TABLE songs (track_id text PRIMARY KEY, title text, song_id text, "
                    "release text, artist_id text, artist_mbid text, artist_name text, "
                    "duration real, artist_familiarity real, artist_hotttnesss real, year int, "
                    "track_7digitalid int, shs_perf int, shs_work int)")
        rows = ((cat.track_ids[i].decode(), cat.titles[i], cat.song_ids[i].decode(), cat.releases[i],
                 cat.artist_ids[cat.artist[i]].decode(), "", cat.artist_names[cat.artist[i]],
                 float(cat.duration_s[i]), float(familiarity[cat.artist[i]]),
                 float(familiarity[cat.artist[i]] * 0.8), int(cat.year[i]), 0, -1, 0)
                for i in range(n))
        con.executemany(f"INSERT INTO songs VALUES ({','.join('?' * len(SONGS_COLUMNS))})", rows)
        con.commit()
    finally:
        con.close()
    os.replace(tmp, path)


def write_genres(path: Path, cat: Catalog) -> None:
    """tagtraum-style ``track_id<TAB>genre`` with its comment header."""
    tmp = _tmp_path(path)
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write("# PMRS synthetic genre annotations (tagtraum CD2-style: track_id<TAB>genre)\n")
        for i in range(len(cat.song_ids)):
            fh.write(f"{cat.track_ids[i].decode()}\t{cat.genre_names[cat.genre[i]]}\n")
    os.replace(tmp, path)


def _render_one(args) -> None:
    from .audio import render_clip
    import soundfile as sf
    path, style, song_seed, seconds = args
    clip = render_clip(style, song_seed, seconds=seconds)
    tmp = Path(str(path) + ".tmp.wav")
    sf.write(tmp, clip, 22050, subtype="PCM_16")
    os.replace(tmp, path)


def write_audio(directory: Path, cat: Catalog, styles: list, seconds: float, seed: int,
                workers: int = 2, show_progress: bool | None = None) -> int:
    """One ``<song_id>.wav`` per song (22,050 Hz mono 16-bit); resumable (existing files kept)."""
    directory.mkdir(parents=True, exist_ok=True)
    jobs = []
    for i, sid in enumerate(cat.song_ids):
        path = directory / f"{sid.decode()}.wav"
        if not path.exists():
            jobs.append((path, styles[cat.genre[i]], seed * 1_000_003 + i, seconds))
    if not jobs:
        return 0
    bar = tqdm(total=len(jobs), unit="clip", desc="audio", leave=False,
               disable=None if show_progress is None else not show_progress)
    if workers > 1 and len(jobs) > 8:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for _ in pool.map(_render_one, jobs, chunksize=8):
                bar.update()
    else:
        for job in jobs:
            _render_one(job)
            bar.update()
    bar.close()
    return len(jobs)
