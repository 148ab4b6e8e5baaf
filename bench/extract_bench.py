"""``pmrs extract`` throughput on synthetic 30 s clips and on full-length recordings.

    python -m bench.extract_bench [--clips 60] [--seconds 30] [--workers 2]
                                  [--long-clips 30] [--long-seconds 240] [--distinct 6]

Renders ``--clips`` genre clips with :mod:`pmrs.synth.audio` at each variant's own sample rate
and writes them as (1) 22,050 Hz mono 16-bit WAV, (2) 44,100 Hz stereo MP3 (FLAC where this
libsndfile cannot write MP3), (3) 48,000 Hz stereo Ogg Opus, (4) 44,100 Hz stereo Ogg Vorbis;
then runs ``extract`` with ``--workers`` processes on each folder into a fresh work directory.
Reports clips/s, the real-time factor (seconds of audio processed per wall-clock second) and
where the time goes (mean decode, resample and feature seconds per clip measured inside the
workers, and the store write in the parent), then extracts the same files again in one process
(``workers=1``) for the per-clip split without contention. librosa's lazy imports (about 2 s,
once per process) are paid before timing.

Full-length recordings (real ones run 3 to 8 minutes): ``--long-clips`` files of
``--long-seconds`` each as Ogg Vorbis and MP3 at 44,100 Hz and Ogg Opus at 48,000 Hz, stereo.
Rendering and encoding a 4-minute file takes several seconds (MP3 most), so ``--distinct``
different recordings are rendered per format and copied to make up the count (each copy is its
own file, decoded on its own). Extraction keeps each file's middle 30 s; for each format the
result says how the decoder got there (``seek``: by seeking, ``decode``: by decoding from the
start), clips/s against the same format's 30 s clips, and the decode time of the kept 30 s by
seeking against decoding the file from its start to it (the decoder's path for a container it
cannot seek, forced here on the distinct files). Writes ``bench/results/extract.json``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

from bench.common import write_result

SONG = "SOBENCH{:011d}"


def _variants() -> list[dict]:
    mp3 = "MP3" in sf.available_formats() and "MPEG_LAYER_III" in sf.available_subtypes("MP3")
    return [
        {"name": "wav-22050-mono", "ext": "wav", "rate": 22050, "channels": 1,
         "write": {"subtype": "PCM_16"}},
        {"name": "mp3-44100-stereo", "ext": "mp3", "rate": 44100, "channels": 2,
         "write": {"format": "MP3", "subtype": "MPEG_LAYER_III"}} if mp3 else
        {"name": "flac-44100-stereo", "ext": "flac", "rate": 44100, "channels": 2,
         "write": {"subtype": "PCM_16"}},
        {"name": "opus-48000-stereo", "ext": "opus", "rate": 48000, "channels": 2,
         "write": {"format": "OGG", "subtype": "OPUS"}},
        {"name": "vorbis-44100-stereo", "ext": "ogg", "rate": 44100, "channels": 2,
         "write": {"format": "OGG", "subtype": "VORBIS"}},
    ]


def _long_variants() -> list[dict]:
    """The full-length formats: the compressed, stereo, 44.1/48 kHz ones of :func:`_variants`."""
    return [v for v in _variants() if v["channels"] == 2 and v["ext"] != "flac"]


def _render(args) -> None:
    from pmrs.synth.audio import make_styles, render_clip

    path, i, seconds, variant = args
    styles = make_styles(6, seed=0)
    y = render_clip(styles[i % len(styles)], song_seed=i, seconds=seconds,
                    sample_rate_hz=variant["rate"])
    if variant["channels"] == 2:  # a second channel that differs a little (no trivial joint stereo)
        y = np.stack([y, 0.9 * np.roll(y, 11)], axis=1)
    # In one-second blocks: libsndfile 1.2.2's Vorbis encoder crashes on one multi-minute write.
    rate = variant["rate"]
    with sf.SoundFile(path, "w", rate, variant["channels"], **variant["write"]) as f:
        for start in range(0, len(y), rate):
            f.write(y[start:start + rate])


def render_folder(folder: Path, variant: dict, n_clips: int, seconds: float, workers: int,
                  distinct: int | None = None) -> int:
    """Write ``n_clips`` files; with ``distinct``, only that many are rendered and the others are
    byte copies of them (under their own names). Returns the bytes written."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{SONG.format(i)}.{variant['ext']}" for i in range(n_clips)]
    n_render = n_clips if distinct is None else min(distinct, n_clips)
    jobs = [(paths[i], i, seconds, variant) for i in range(n_render)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(_render, jobs, chunksize=1 if distinct else 4))
    for i in range(n_render, n_clips):
        shutil.copyfile(paths[i % n_render], paths[i])
    return sum(p.stat().st_size for p in paths)


def _extract_row(name: str, folder: Path, size: int, render_s: float, seconds: float, workers: int,
                 fcfg) -> dict:
    """Extract ``folder/audio`` with ``workers`` processes, then again in one process."""
    from threadpoolctl import threadpool_limits

    from pmrs.audio.extract import ExtractConfig, extract

    report = extract(folder / "audio", folder / "work", ExtractConfig(workers=workers), fcfg,
                     show_progress=False)
    t, c = report["timing"], report["counts"]
    per = t["per_clip_seconds"]
    # The same files in one process: the per-clip split without two workers and the parent
    # sharing two cores.
    with threadpool_limits(limits=1):
        solo = extract(folder / "audio", folder / "work-1", ExtractConfig(workers=1), fcfg,
                       show_progress=False)["timing"]
    row = {
        "format": name, "clips": c["extracted"], "skipped": c["skipped"],
        "clip_seconds": seconds, "input_bytes": size,
        "store_bytes": (folder / "work" / "features.lmdb").stat().st_size,
        "render_seconds": round(render_s, 2),
        "total_seconds": t["total_seconds"], "clips_per_second": t["clips_per_second"],
        "realtime_factor": t["realtime_factor"], "workers": t["workers"],
        "per_clip_ms": {k: round(v * 1000, 2) for k, v in per.items()},
        "decode_and_resample_share_of_worker_time": round(
            (per["decode"] + per["resample"]) / (per["decode"] + per["resample"] + per["features"]), 3),
        "worker_utilisation": t["worker_utilisation"],
        "worker_cpu_ms_per_clip": round(1000 * t["worker_cpu_seconds_per_clip"], 1),
        "seek": t["seek"], "decoded_to_skip_by_format": t["decoded_to_skip_by_format"],
        "one_process": {"clips_per_second": solo["clips_per_second"],
                        "realtime_factor": solo["realtime_factor"],
                        "worker_cpu_ms_per_clip": round(1000 * solo["worker_cpu_seconds_per_clip"], 1),
                        "per_clip_ms": {k: round(v * 1000, 2)
                                        for k, v in solo["per_clip_seconds"].items()}},
    }
    print(f"{name} ({seconds:g} s): {row['clips_per_second']} clips/s, "
          f"{row['realtime_factor']}x real time; per clip: decode {row['per_clip_ms']['decode']} ms, "
          f"resample {row['per_clip_ms']['resample']} ms, features {row['per_clip_ms']['features']} ms, "
          f"write {row['per_clip_ms']['write']} ms; CPU {row['worker_cpu_ms_per_clip']} ms; "
          f"seek {row['seek']}; one process: "
          f"{row['one_process']['clips_per_second']} clips/s, "
          f"{row['one_process']['per_clip_ms']}", flush=True)
    return row


def seek_against_decode(files: list[Path], keep_seconds: float, sample_rate_hz: int) -> dict:
    """Mean CPU milliseconds to decode (and resample) each file's kept middle by seeking, and by
    decoding from the start to it (what the decoder does for a container it cannot seek: forced
    here); the samples are checked equal."""
    from unittest import mock

    from pmrs.audio.decode import decode_audio

    times = {"seek": [], "decode": []}
    for path in files:
        c0 = time.process_time()
        sought = decode_audio(path, sample_rate_hz, keep_seconds)
        c1 = time.process_time()
        with mock.patch.object(sf.SoundFile, "seekable", lambda self: False):
            through = decode_audio(path, sample_rate_hz, keep_seconds)
        c2 = time.process_time()
        if (sought.seek, through.seek) != ("seek", "decode") or \
                not np.allclose(sought.samples, through.samples, atol=1e-5):
            raise AssertionError(f"{path}: seeking gave other samples than decoding through")
        times["seek"].append(c1 - c0)
        times["decode"].append(c2 - c1)
    seek_ms, decode_ms = (1000 * float(np.mean(times[k])) for k in ("seek", "decode"))
    return {"files": len(files), "seek_cpu_ms": round(seek_ms, 1),
            "decode_from_start_cpu_ms": round(decode_ms, 1), "speed_up": round(decode_ms / seek_ms, 2)}


def bench_extract(command: str, n_clips: int = 60, seconds: float = 30.0, workers: int = 2,
                  long_clips: int = 30, long_seconds: float = 240.0, distinct: int = 6) -> dict:
    """Render, extract and time each variant, 30 s clips then full-length files; write
    ``bench/results/extract.json``; return it."""
    from threadpoolctl import threadpool_limits

    from pmrs.audio.extract import _warm_up
    from pmrs.audio.features import FeatureConfig

    load_at_start = os.getloadavg()[0]
    fcfg = FeatureConfig()
    with threadpool_limits(limits=1):
        _warm_up(fcfg)
    results, long_results = {}, {}
    with tempfile.TemporaryDirectory(prefix="pmrs-extract-bench-") as tmp:
        for variant in _variants():
            folder = Path(tmp) / variant["name"]
            t0 = time.perf_counter()
            size = render_folder(folder / "audio", variant, n_clips, seconds, workers)
            results[variant["name"]] = _extract_row(variant["name"], folder, size,
                                                    time.perf_counter() - t0, seconds, workers, fcfg)
            shutil.rmtree(folder)
        for variant in _long_variants() if long_clips else []:
            folder = Path(tmp) / f"long-{variant['name']}"
            t0 = time.perf_counter()
            size = render_folder(folder / "audio", variant, long_clips, long_seconds, workers, distinct)
            row = _extract_row(variant["name"], folder, size, time.perf_counter() - t0, long_seconds,
                               workers, fcfg)
            short = results.get(variant["name"])
            if short:
                row["clips_per_second_against_30s_clips"] = round(
                    row["clips_per_second"] / short["clips_per_second"], 3)
                row["decode_ms_against_30s_clips"] = round(
                    row["per_clip_ms"]["decode"] / short["per_clip_ms"]["decode"], 2)
                row["cpu_ms_against_30s_clips"] = round(
                    row["worker_cpu_ms_per_clip"] / short["worker_cpu_ms_per_clip"], 2)
            files = sorted((folder / "audio").iterdir())[:distinct]
            with threadpool_limits(limits=1):
                row["seek_against_decode_from_start"] = seek_against_decode(
                    files, fcfg.max_seconds, fcfg.sample_rate_hz)
            print(f"  {variant['name']} ({long_seconds:g} s): kept {fcfg.max_seconds:g} s decoded in "
                  f"{row['seek_against_decode_from_start']['seek_cpu_ms']} CPU ms by seeking (with resampling), "
                  f"{row['seek_against_decode_from_start']['decode_from_start_cpu_ms']} from the start",
                  flush=True)
            long_results[variant["name"]] = row
            shutil.rmtree(folder)
    payload = {"clips": n_clips, "clip_seconds": seconds, "workers": workers,
               "load_average_1min_at_start": round(load_at_start, 2),
               "load_average_1min_at_end": round(os.getloadavg()[0], 2),
               "feature_config": {"sample_rate_hz": fcfg.sample_rate_hz, "n_fft": fcfg.n_fft,
                                  "hop_length": fcfg.hop_length, "n_mels": fcfg.n_mels,
                                  "max_seconds": fcfg.max_seconds},
               "note": "per-clip times are wall seconds inside the worker processes; total and "
                       "clips/s are wall time of the whole extract() call (discovery, pool, writes); "
                       "worker_cpu_ms_per_clip is the workers' CPU time per clip, the figure to "
                       "compare when the machine is shared",
               "variants": results,
               "full_length": {"clips": long_clips, "clip_seconds": long_seconds,
                               "distinct_recordings": distinct,
                               "note": "each format's files are `distinct` rendered recordings and "
                                       "byte copies of them; `seek` counts how each file's kept "
                                       "middle was reached; `seek_against_decode_from_start` times "
                                       "the kept 30 s decoded after a seek against decoded from "
                                       "the file's start, on the distinct files, one process",
                               "variants": long_results}}
    write_result("extract", payload, command)
    return payload


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.extract_bench")
    p.add_argument("--clips", type=int, default=60)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--long-clips", type=int, default=30, help="full-length files per format (0: none)")
    p.add_argument("--long-seconds", type=float, default=240.0)
    p.add_argument("--distinct", type=int, default=6, help="full-length recordings rendered per format")
    args = p.parse_args(argv)
    command = "python -m bench.extract_bench " + " ".join(argv if argv is not None else sys.argv[1:])
    bench_extract(command.strip(), args.clips, args.seconds, args.workers, args.long_clips,
                  args.long_seconds, args.distinct)
    return 0


if __name__ == "__main__":
    sys.exit(main())
