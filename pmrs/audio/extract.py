"""``pmrs extract``: a folder of audio clips -> ``features.lmdb``.

Clips are named ``<song_id>.<ext>`` or ``<track_id>.<ext>`` (any depth below the folder,
extensions matched case-insensitively); an optional ``mapping.tsv`` in the folder
(``filename<TAB>song_id`` lines, the file name relative to the folder or bare) overrides a name.
Track ids become song ids through the work directory's catalog when it exists. With a catalog, a
name it knows neither as a song nor as a track is skipped (``"unknown-id"``); without one, names
are taken as song ids, except MSD-style track ids (``TR`` + 16 characters), which cannot be mapped
(``"unmapped-track-id"``).

Decoding and features run in a process pool (``workers=1``: in this process), one file per task;
the parent writes each result to the store as it arrives, one transaction per clip, so an
interrupted run keeps every clip written and the next run skips them. One bad file never stops a
run: it is skipped and listed with its reason. A file that kills its worker process (a crashing
decoder) is retried alone in a fresh pool and skipped as ``"crashed"`` when it kills that one too.
Workers end with the parent (:func:`pmrs.processes.exit_with_parent`), even after ``kill -9``;
librosa's numba cache goes to a per-user directory (:mod:`pmrs.usercache`).

Skip reasons: ``unreadable``, ``empty``, ``truncated`` (breaks off before ``min_seconds`` of
audio), ``non-finite``, ``too-short``, ``silent``, ``duplicate`` (a second file for a song: the
first in sorted path order is kept), ``unknown-id``, ``unmapped-track-id``, ``crashed``, ``error``
(any other exception, with its message). A truncated file that still has ``min_seconds`` of audio
is extracted from what decodes and listed under ``partial`` in the report.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import time
from collections import Counter, deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from ..artifacts import write_json
from ..catalog import CATALOG_FILE, Catalog
from ..interactions import INTERACTIONS_DIR, find, played_song_ids
from ..processes import exit_with_parent
from .decode import AudioError, decode_audio
from .features import FeatureConfig, clip_features
from .store import FEATURES_FILE, FeatureStore

log = logging.getLogger(__name__)

REPORT_FILE = "features_report.json"
MAPPING_FILE = "mapping.tsv"
_TRACK_ID = re.compile(r"^TR[A-Z0-9]{16}$")


@dataclass(frozen=True)
class ExtractConfig:
    """Settings of ``pmrs extract`` (``[extract]`` in a TOML config; features are ``[features]``).

    Attributes
    ----------
    workers : int
        Decoding/feature processes; 1 runs everything in this process.
    extensions : tuple of str
        File extensions taken as clips (without the dot, matched case-insensitively).
    tasks_per_worker : int
        Files queued per worker at a time (bounds memory held in finished, unwritten results).
    """

    workers: int = 2
    extensions: tuple[str, ...] = ("wav", "mp3", "ogg", "opus", "flac", "oga")
    tasks_per_worker: int = 4

    def __post_init__(self) -> None:
        if isinstance(self.extensions, str):
            object.__setattr__(self, "extensions", (self.extensions,))
        object.__setattr__(self, "extensions",
                           tuple(e.lower().lstrip(".") for e in self.extensions))
        if self.workers < 1:
            raise ValueError(f"ExtractConfig.workers must be at least 1, got {self.workers}")
        if self.tasks_per_worker < 1:
            raise ValueError("ExtractConfig.tasks_per_worker must be at least 1")


# ------------------------------------------------------------------------------ finding clips


#: Written by ``pmrs ingest --library DIR`` into the work directory: which file of DIR is which song.
LIBRARY_MAPPING_FILE = "library_mapping.tsv"


def library_mapping(workdir: str | os.PathLike, audio_dir: Path) -> Path | None:
    """The work directory's music-folder mapping when it maps ``audio_dir`` (the folder its first
    line names), else ``None``."""
    path = Path(workdir) / LIBRARY_MAPPING_FILE
    if not path.is_file():
        return None
    with path.open(encoding="utf-8") as fh:
        first = fh.readline()
    folder = first.split("music folder ", 1)[1].rsplit(" (", 1)[0] if "music folder " in first else ""
    return path if folder and Path(folder).resolve() == Path(audio_dir).resolve() else None


def audio_folders(workdir: str | os.PathLike, with_reports: bool = False):
    """The audio folders ``pmrs extract`` has read into ``<workdir>``'s store, as absolute paths
    (from ``features_report.json``; a relative path an older PMRS recorded is taken from the work
    directory's parent, where ``make demo`` ran); with ``with_reports``, ``{path: its record}``
    (:func:`folder_record`)."""
    workdir = Path(workdir)
    try:
        report = json.loads((workdir / REPORT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {} if with_reports else []
    found = dict(report.get("folders") or {})
    if not found and report.get("audio_dir"):
        found[report["audio_dir"]] = {k: report.get(k) for k in ("counts", "skipped", "partial")}
    out = {}
    for path, rep in found.items():
        p = Path(path)
        if not p.is_absolute():
            p = (workdir.resolve().parent / p) if not p.is_dir() else p.resolve()
        out[str(p)] = rep
    return out if with_reports else [Path(p) for p in out]



def resolve_audio_dir(path: str | os.PathLike) -> Path:
    """``path`` itself, or ``path/audio`` when ``path`` is a data folder holding ``audio/``."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no audio folder at {path}")
    if (path / "audio").is_dir():
        return path / "audio"
    return path


def find_clips(audio_dir: str | os.PathLike, extensions: tuple[str, ...]) -> list[Path]:
    """Audio files under ``audio_dir`` (recursively; hidden files and folders skipped), as paths
    relative to it, sorted."""
    root = Path(audio_dir)
    exts = {e.lower().lstrip(".") for e in extensions}
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.startswith(".") or "." not in name:
                continue
            if name.rsplit(".", 1)[1].lower() in exts:
                found.append((Path(dirpath) / name).relative_to(root))
    return sorted(found, key=lambda p: p.as_posix())


def read_mapping(path: str | os.PathLike) -> dict[str, str]:
    """``filename<TAB>song_id`` lines -> {filename: song_id} (blank and ``#`` lines ignored)."""
    mapping: dict[str, str] = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.rstrip("\r\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            parts = line.split("\t")
            if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
                log.warning("%s:%d: expected filename<TAB>song_id, got %r", path, lineno, line)
                continue
            mapping[Path(parts[0].strip()).as_posix().removeprefix("./")] = parts[1].strip()
    return mapping


class _Resolver:
    """File name -> song id, through the mapping file and the catalog; a song id somebody played
    is a song even without a catalog row (about one played song in nine, in real data)."""

    def __init__(self, mapping: dict[str, str], catalog: Catalog | None, played: np.ndarray | None = None):
        self.mapping, self.catalog, self.played = mapping, catalog, played

    def __call__(self, rel: Path) -> tuple[str | None, str, str]:
        """(song_id, "", "") or (None, reason, detail)."""
        key = self.mapping.get(rel.as_posix()) or self.mapping.get(rel.name) or \
            rel.name.rsplit(".", 1)[0]
        if self.catalog is None:
            if _TRACK_ID.match(key):
                return None, "unmapped-track-id", (f"{key} looks like a track id and there is no "
                                                   "catalog; run `pmrs ingest` first or add "
                                                   f"{MAPPING_FILE}")
            return key, "", ""
        if self.catalog.get(key) is not None:
            return key, "", ""
        song = self.catalog.song_for_track(key)
        if song is not None:
            return song, "", ""
        if self.played is not None and find(self.played, key) >= 0:
            return key, "", ""
        return None, "unknown-id", f"the catalog knows no song or track {key!r}, and nobody played it"


# ------------------------------------------------------------------------------ the work


def _worker_init(parent: int) -> None:
    # Per-clip matrix products are small; threaded BLAS would only contend with the other workers.
    threadpool_limits(limits=1)
    exit_with_parent(parent)  # `kill -9` of the run must not leave its workers behind


def _new_pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=workers, initializer=_worker_init,
                               initargs=(os.getpid(),))


def _warm_up(cfg: FeatureConfig) -> None:
    """Run the feature code once here: librosa imports its submodules (scipy.signal, numba, ...)
    lazily on first use, about 2 s, which forked workers then inherit instead of each paying it
    inside their first clip's timing."""
    clip_features(np.zeros(cfg.n_fft * 4, np.float32), cfg)


def extract_one(path: str, cfg: FeatureConfig) -> dict:
    """Decode and featurise one file; never raises (problems come back as a skip reason).

    Returns
    -------
    dict
        ``{"ok": True, "features": ClipFeatures, "decode_s", "resample_s", "feature_s", "cpu_s",
        "truncated", "detail", "seek", "source_format", "source_sample_rate_hz", "source_channels"}``
        or ``{"ok": False, "reason", "detail"}``. Times are wall seconds in the worker, except
        ``cpu_s``: the worker's CPU seconds for the whole clip (steady when the machine is shared).
    """
    try:
        c0 = time.process_time()
        dec = decode_audio(path, cfg.sample_rate_hz, cfg.max_seconds)
        t0 = time.perf_counter()
        y = dec.samples
        if dec.seconds < cfg.min_seconds:
            reason = "truncated" if dec.truncated else "too-short"
            more = f"; {dec.detail}" if dec.truncated else ""
            raise AudioError(reason, f"{dec.seconds:.2f} s < min_seconds {cfg.min_seconds:g}{more}")
        rms = float(np.sqrt(np.dot(y, y) / len(y)))
        if rms < cfg.silence_rms:
            raise AudioError("silent", f"RMS {rms:.2e} < silence_rms {cfg.silence_rms:g}")
        feats = clip_features(y, cfg)
        return {"ok": True, "features": feats, "decode_s": dec.decode_seconds,
                "resample_s": dec.resample_seconds, "feature_s": time.perf_counter() - t0,
                "cpu_s": time.process_time() - c0,
                "truncated": dec.truncated, "detail": dec.detail, "seek": dec.seek,
                "source_format": dec.source_format,
                "source_sample_rate_hz": dec.source_sample_rate_hz,
                "source_channels": dec.source_channels}
    except AudioError as exc:
        return {"ok": False, "reason": exc.reason, "detail": exc.detail}
    except Exception as exc:  # noqa: BLE001 - one bad file never stops a run
        return {"ok": False, "reason": "error", "detail": f"{type(exc).__name__}: {exc}"}


_CRASHED = {"ok": False, "reason": "crashed",
            "detail": "the worker process died decoding this file (twice, the second time alone)"}


def _run_serial(jobs: list[tuple[int, str]], cfg: FeatureConfig) -> Iterator[tuple[int, dict]]:
    with threadpool_limits(limits=1):
        for i, path in jobs:
            yield i, extract_one(path, cfg)


def _run_pool(jobs: list[tuple[int, str]], cfg: FeatureConfig, workers: int,
              depth: int) -> Iterator[tuple[int, dict]]:
    """Results as they complete. When a worker dies, the files that were in flight are retried
    one at a time in a fresh pool; a file that kills that one too is reported as crashed."""
    pending = deque(jobs)
    suspects: deque[tuple[int, str]] = deque()
    in_flight: dict = {}
    alone = None  # the suspect now running by itself
    pool = _new_pool(workers)
    try:
        while pending or suspects or in_flight:
            if suspects:
                if not in_flight:
                    alone = suspects.popleft()
                    in_flight[pool.submit(extract_one, alone[1], cfg)] = alone
            else:
                alone = None
                while pending and len(in_flight) < workers * depth:
                    job = pending.popleft()
                    in_flight[pool.submit(extract_one, job[1], cfg)] = job
            done, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
            broken = False
            for fut in done:
                job = in_flight.pop(fut)
                try:
                    result = fut.result()
                except BrokenProcessPool:
                    broken = True
                    if job == alone:
                        log.warning("%s crashed its worker twice; skipped", job[1])
                        yield job[0], dict(_CRASHED)
                    else:
                        suspects.append(job)
                    continue
                except Exception as exc:  # noqa: BLE001 - e.g. a result that would not pickle
                    result = {"ok": False, "reason": "error", "detail": f"{type(exc).__name__}: {exc}"}
                yield job[0], result
            if broken:
                log.warning("a worker process died; retrying its %d in-flight file(s) one at a time",
                            len(in_flight) + len(suspects))
                suspects.extend(in_flight.values())
                in_flight.clear()
                pool.shutdown(wait=True, cancel_futures=True)
                pool = _new_pool(workers)
    except BaseException:  # interrupted, or the consumer stopped early
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


# ------------------------------------------------------------------------------ the stage


def folder_record(run: dict, before: dict | None, stored_files: set[str]) -> dict:
    """A folder's standing record after a run over it: what is known of its files, whatever
    the run itself had left to do.

    ``run`` is the run's report, ``before`` the folder's record before it (``None``: first run),
    ``stored_files`` the found files (relative paths) whose songs the store held when the run
    began. Every run tries each file not yet stored, so the run's ``skipped`` is the folder's:
    a file that decodes now has left it. ``partial`` keeps the earlier runs' entries of files
    still stored from then (their features are still those of what decoded) beside the run's
    own. ``counts`` are the run's, except ``extracted``: the folder's files with stored
    features, extracted by this run or before it, and ``partial``; ``last_run`` holds the run's
    own counts.
    """
    kept = [p for p in (before or {}).get("partial") or [] if p.get("file") in stored_files]
    partial = sorted(kept + run["partial"], key=lambda p: p["file"])
    counts = dict(run["counts"], extracted=run["counts"]["extracted"] + len(stored_files),
                  partial=len(partial))
    return {"counts": counts, "skipped": run["skipped"], "partial": partial,
            "last_run": run["counts"]}


def extract(audio_dir: str | os.PathLike, workdir: str | os.PathLike,
            cfg: ExtractConfig = ExtractConfig(), feature_cfg: FeatureConfig = FeatureConfig(),
            catalog_path: str | os.PathLike | None = None,
            show_progress: bool | None = None) -> dict:
    """Extract features of every clip under ``audio_dir`` into ``<workdir>/features.lmdb``.

    Parameters
    ----------
    audio_dir : str or path-like
        The clip folder, or a data folder holding ``audio/``.
    workdir : str or path-like
        Work directory; gets ``features.lmdb`` and ``features_report.json``.
    cfg : ExtractConfig
    feature_cfg : FeatureConfig
        Must match the settings of an existing store (``ValueError`` otherwise).
    catalog_path : str or path-like or None
        Catalog mapping track ids to song ids (default: ``<workdir>/catalog.lmdb`` if present).
    show_progress : bool or None
        tqdm progress bar: None shows it on a terminal only.

    Returns
    -------
    dict
        The report also written to ``<workdir>/features_report.json``: ``audio_dir``, ``store``,
        ``catalog``, ``counts`` (``found``, ``extracted``, ``already_stored``, ``skipped``,
        ``skipped_by_reason``, ``partial``, ``stored_total``), ``skipped`` (list of ``{file,
        reason, detail}``), ``partial`` (list of ``{file, song_id, seconds, detail}``: truncated
        files extracted from what decodes), ``timing`` (``total_seconds``, ``clips_per_second``,
        ``audio_seconds``, ``realtime_factor``, ``workers``, ``per_clip_seconds`` means
        ``{decode, resample, features, write}``, ``worker_seconds`` totals,
        ``worker_cpu_seconds_per_clip``, ``worker_utilisation``, ``seek``: extracted files by how the part before their kept middle
        was skipped (:data:`~pmrs.audio.decode.SEEK_MODES`) and ``decoded_to_skip_by_format``: the
        source formats that could not seek), ``feature_config`` and ``extract_config``: this
        run's; and ``folders``: every audio folder extracted into this store so far (absolute
        paths) with its standing record (:func:`folder_record`: ``counts``, ``skipped``,
        ``partial`` of the folder as it stands, ``last_run``: its last run's counts). A run over
        another folder, such as ``pmrs extract --live``, keeps the others' records; a run over
        the same folder updates its record.
    """
    t_start = time.perf_counter()
    workdir = Path(workdir)
    audio_dir = resolve_audio_dir(audio_dir).resolve()   # recorded: it must mean the same from anywhere
    rels = find_clips(audio_dir, cfg.extensions)
    log.info("found %d audio files under %s", len(rels), audio_dir)

    mapping_path = audio_dir / MAPPING_FILE
    if not mapping_path.is_file():   # a music folder `pmrs ingest --library` read: its files' songs
        mapping_path = library_mapping(workdir, audio_dir) or mapping_path
    mapping = read_mapping(mapping_path) if mapping_path.is_file() else {}
    if catalog_path is not None and not Path(catalog_path).is_file():
        raise FileNotFoundError(f"no catalog at {catalog_path}")
    cat_path = Path(catalog_path) if catalog_path is not None else workdir / CATALOG_FILE
    catalog = Catalog(cat_path) if cat_path.is_file() else None
    if catalog is None:
        log.info("no catalog at %s: file names are taken as song ids", cat_path)

    skipped: list[dict] = []
    partial: list[dict] = []
    store_path = workdir / FEATURES_FILE
    try:
        with FeatureStore(store_path, config=feature_cfg) as store:
            resolve = _Resolver(mapping, catalog, played_song_ids(workdir / INTERACTIONS_DIR))
            first_file: dict[str, str] = {}
            todo: list[tuple[str, str]] = []  # (relative file, song id)
            stored_files: set[str] = set()     # found files whose song the store already holds
            for rel in rels:
                song, reason, detail = resolve(rel)
                if song is None:
                    skipped.append({"file": rel.as_posix(), "reason": reason, "detail": detail})
                elif song in first_file:
                    skipped.append({"file": rel.as_posix(), "reason": "duplicate",
                                    "detail": f"song {song} already comes from {first_file[song]}"})
                else:
                    first_file[song] = rel.as_posix()
                    if song in store:
                        stored_files.add(rel.as_posix())
                    else:
                        todo.append((rel.as_posix(), song))
            already = len(stored_files)
            if already:
                log.info("%d songs already in %s; %d to extract", already, store_path, len(todo))

            jobs = [(i, str(audio_dir / rel)) for i, (rel, _) in enumerate(todo)]
            if jobs:
                _warm_up(feature_cfg)
            runner = (_run_serial(jobs, feature_cfg) if cfg.workers == 1 or len(jobs) <= 1
                      else _run_pool(jobs, feature_cfg, cfg.workers, cfg.tasks_per_worker))
            sums = Counter()
            seeks: Counter = Counter()      # how each file's skipped part was skipped
            unseekable: Counter = Counter()  # source formats decoded from the start to skip it
            extracted = 0
            t_work = time.perf_counter()
            bar = tqdm(total=len(jobs), unit="clip", desc="extract", leave=False,
                       disable=None if show_progress is None else not show_progress)
            with bar:
                for i, result in runner:
                    rel, song = todo[i]
                    if result["ok"]:
                        t0 = time.perf_counter()
                        store.put(song, result["features"])
                        sums["write"] += time.perf_counter() - t0
                        sums["decode"] += result["decode_s"]
                        sums["resample"] += result["resample_s"]
                        sums["features"] += result["feature_s"]
                        sums["cpu"] += result["cpu_s"]
                        sums["audio"] += result["features"].seconds
                        extracted += 1
                        seeks[result["seek"]] += 1
                        if result["seek"] == "decode":
                            unseekable[result["source_format"]] += 1
                        if result["truncated"]:
                            partial.append({"file": rel, "song_id": song,
                                            "seconds": round(result["features"].seconds, 3),
                                            "detail": result["detail"]})
                    else:
                        skipped.append({"file": rel, "reason": result["reason"],
                                        "detail": result["detail"]})
                    bar.update()
            work_seconds = time.perf_counter() - t_work
            stored_total = len(store)
    finally:
        if catalog is not None:
            catalog.close()

    total = time.perf_counter() - t_start
    by_reason = dict(sorted(Counter(s["reason"] for s in skipped).items()))
    worker_total = sums["decode"] + sums["resample"] + sums["features"]
    n_workers = 1 if cfg.workers == 1 or len(todo) <= 1 else cfg.workers
    report = {
        "audio_dir": str(audio_dir),
        "store": str(store_path),
        "catalog": str(cat_path) if catalog is not None else None,
        "mapping_file": str(mapping_path) if mapping else None,
        "counts": {"found": len(rels), "extracted": extracted, "already_stored": already,
                   "skipped": len(skipped), "skipped_by_reason": by_reason,
                   "partial": len(partial), "stored_total": stored_total},
        "skipped": skipped,
        "partial": partial,
        "timing": {
            "total_seconds": round(total, 3),
            "clips_per_second": round(extracted / total, 3) if total > 0 else 0.0,
            "audio_seconds": round(sums["audio"], 3),
            "realtime_factor": round(sums["audio"] / total, 2) if total > 0 else 0.0,
            "workers": n_workers,
            "per_clip_seconds": {k: round(sums[k] / extracted, 5) if extracted else None
                                 for k in ("decode", "resample", "features", "write")},
            "worker_seconds": {k: round(sums[k], 3) for k in ("decode", "resample", "features")},
            "worker_cpu_seconds_per_clip": round(sums["cpu"] / extracted, 5) if extracted else None,
            "worker_utilisation": (round(worker_total / (n_workers * work_seconds), 3)
                                   if work_seconds > 0 and extracted else None),
            "seek": dict(sorted(seeks.items())),
            "decoded_to_skip_by_format": dict(sorted(unseekable.items())),
        },
        "feature_config": dataclasses.asdict(feature_cfg),
        "extract_config": dict(dataclasses.asdict(cfg), extensions=list(cfg.extensions)),
    }
    folders = audio_folders(workdir, with_reports=True)
    folders[str(audio_dir)] = folder_record(report, folders.get(str(audio_dir)), stored_files)
    report["folders"] = dict(sorted(folders.items()))
    write_json(workdir / REPORT_FILE, report)
    if unseekable:
        log.warning("%d files could not seek to their middle %g s and were decoded from the start "
                    "(by format: %s)", sum(unseekable.values()), feature_cfg.max_seconds,
                    dict(unseekable))
    log.info("extracted %d clips (%d already stored, %d skipped) in %.1f s",
             extracted, already, len(skipped), total)
    return report
