"""``pmrs extract`` throughput on synthetic 30 s clips in three real-world encodings.

    python -m bench.extract_bench [--clips 60] [--seconds 30] [--workers 2]

Renders ``--clips`` genre clips with :mod:`pmrs.synth.audio` at each variant's own sample rate
and writes them as (1) 22,050 Hz mono 16-bit WAV, (2) 44,100 Hz stereo MP3 (FLAC where this
libsndfile cannot write MP3), (3) 48,000 Hz stereo Ogg Opus; then runs ``extract`` with
``--workers`` processes on each folder into a fresh work directory. Reports clips/s, the real-time
factor (seconds of audio processed per wall-clock second) and where the time goes (mean decode,
resample and feature seconds per clip measured inside the workers, and the store write in the
parent), then extracts the same files again in one process (``workers=1``) for the per-clip split
without contention. librosa's lazy imports (about 2 s, once per process) are paid before timing. Writes
``bench/results/extract.json``.
"""

from __future__ import annotations

import argparse
import os
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
    ]


def _render(args) -> None:
    from pmrs.synth.audio import make_styles, render_clip

    path, i, seconds, variant = args
    styles = make_styles(6, seed=0)
    y = render_clip(styles[i % len(styles)], song_seed=i, seconds=seconds,
                    sample_rate_hz=variant["rate"])
    if variant["channels"] == 2:  # a second channel that differs a little (no trivial joint stereo)
        y = np.stack([y, 0.9 * np.roll(y, 11)], axis=1)
    sf.write(path, y, variant["rate"], **variant["write"])


def render_folder(folder: Path, variant: dict, n_clips: int, seconds: float, workers: int) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(folder / f"{SONG.format(i)}.{variant['ext']}", i, seconds, variant) for i in range(n_clips)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(_render, jobs, chunksize=4))
    return sum(p.stat().st_size for p, *_ in jobs)


def bench_extract(command: str, n_clips: int = 60, seconds: float = 30.0, workers: int = 2) -> dict:
    """Render, extract and time each variant; write ``bench/results/extract.json``; return it."""
    from threadpoolctl import threadpool_limits

    from pmrs.audio.extract import ExtractConfig, _warm_up, extract
    from pmrs.audio.features import FeatureConfig

    load_at_start = os.getloadavg()[0]
    fcfg = FeatureConfig()
    with threadpool_limits(limits=1):
        _warm_up(fcfg)
    results = {}
    with tempfile.TemporaryDirectory(prefix="pmrs-extract-bench-") as tmp:
        for variant in _variants():
            folder = Path(tmp) / variant["name"]
            t0 = time.perf_counter()
            size = render_folder(folder / "audio", variant, n_clips, seconds, workers)
            render_s = time.perf_counter() - t0
            report = extract(folder / "audio", folder / "work", ExtractConfig(workers=workers), fcfg,
                             show_progress=False)
            t, c = report["timing"], report["counts"]
            per = t["per_clip_seconds"]
            # The same files in one process: the per-clip split without two workers and the
            # parent sharing two cores.
            with threadpool_limits(limits=1):
                solo = extract(folder / "audio", folder / "work-1", ExtractConfig(workers=1), fcfg,
                               show_progress=False)["timing"]
            row = {
                "format": variant["name"], "clips": c["extracted"], "skipped": c["skipped"],
                "clip_seconds": seconds, "input_bytes": size,
                "store_bytes": (folder / "work" / "features.lmdb").stat().st_size,
                "render_seconds": round(render_s, 2),
                "total_seconds": t["total_seconds"], "clips_per_second": t["clips_per_second"],
                "realtime_factor": t["realtime_factor"], "workers": t["workers"],
                "per_clip_ms": {k: round(v * 1000, 2) for k, v in per.items()},
                "decode_and_resample_share_of_worker_time": round(
                    (per["decode"] + per["resample"])
                    / (per["decode"] + per["resample"] + per["features"]), 3),
                "worker_utilisation": t["worker_utilisation"],
                "one_process": {"clips_per_second": solo["clips_per_second"],
                                "realtime_factor": solo["realtime_factor"],
                                "per_clip_ms": {k: round(v * 1000, 2)
                                                for k, v in solo["per_clip_seconds"].items()}},
            }
            results[variant["name"]] = row
            print(f"{variant['name']}: {row['clips_per_second']} clips/s, "
                  f"{row['realtime_factor']}x real time; per clip: decode {row['per_clip_ms']['decode']} ms, "
                  f"resample {row['per_clip_ms']['resample']} ms, features {row['per_clip_ms']['features']} ms, "
                  f"write {row['per_clip_ms']['write']} ms; one process: "
                  f"{row['one_process']['clips_per_second']} clips/s, "
                  f"{row['one_process']['per_clip_ms']}", flush=True)
    payload = {"clips": n_clips, "clip_seconds": seconds, "workers": workers,
               "load_average_1min_at_start": round(load_at_start, 2),
               "feature_config": {"sample_rate_hz": fcfg.sample_rate_hz, "n_fft": fcfg.n_fft,
                                  "hop_length": fcfg.hop_length, "n_mels": fcfg.n_mels},
               "note": "per-clip times are wall seconds inside the worker processes; total and "
                       "clips/s are wall time of the whole extract() call (discovery, pool, writes)",
               "variants": results}
    write_result("extract", payload, command)
    return payload


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.extract_bench")
    p.add_argument("--clips", type=int, default=60)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    command = "python -m bench.extract_bench " + " ".join(argv if argv is not None else sys.argv[1:])
    bench_extract(command.strip(), args.clips, args.seconds, args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
