"""Reading a service's table of listening events (``pmrs.ingest.events.read_events``) against
DuckDB reading and grouping the same file.

    python -m bench.events_bench [--events 50000000] [--repeats 1]

Generates ``--events`` listening events (``user_id``, ``track_id``, ``timestamp`` in epoch
seconds, ``ms_played``; users and songs of the Taste Profile's shape, song popularity skewed) as
a plain CSV file (no gzip) and as Parquet, cached in ``bench/data/events-N/``. For each file,
each job in a fresh process (so its peak memory is its own), the best of ``--repeats``:

- ``ingest``: the whole ``pmrs ingest --events FILE`` (read, resolve, aggregate per user and
  song with time, write the interactions and a catalog of the songs the events name);
- ``read_events``: PMRS's reader alone, every column converted and checked into ``Listens``;
- the anchor: DuckDB's own ``SELECT user_id, track_id, count(*) ... GROUP BY`` over the file;
- what the reader was chosen on: the file read whole into an Arrow table of text columns by
  pyarrow (``pyarrow.csv`` / ``pyarrow.parquet``) and by DuckDB (``read_csv`` / ``read_parquet``,
  ``.to_arrow_table()``).

Writes ``bench/results/events.json`` with seconds, rows per second and peak resident memory of
each job, ``ratio_to_anchor``: ``read_events`` seconds over the anchor's, and
``ingest_ratio_to_anchor``: the whole ingest's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import DATA, FULL_SONGS, FULL_USERS, peak_rss_mb, run_job, write_result

_BATCH = 5_000_000
_T0 = 1_300_000_000   # 2011-03-13
_SPAN = 400_000_000   # about 12.7 years


def make_events(n: int, folder: Path | None = None, seed: int = 7) -> dict[str, Path]:
    """``{"csv": path, "parquet": path}`` holding the same ``n`` events (written once, in
    batches of 5M rows, and kept)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    folder = folder or DATA / f"events-{n}"
    out = {"csv": folder / "events.csv", "parquet": folder / "events.parquet"}
    if all(p.exists() for p in out.values()):
        return out
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    users = np.array([f"u{i:07d}" for i in range(FULL_USERS)])
    songs = np.array([f"TR{i:016X}" for i in range(FULL_SONGS)])
    schema = pa.schema([("user_id", pa.string()), ("track_id", pa.string()), ("timestamp", pa.int64()),
                        ("ms_played", pa.int64())])
    tmp = {k: p.with_name(p.name + ".part") for k, p in out.items()}
    with pacsv.CSVWriter(str(tmp["csv"]), schema, write_options=pacsv.WriteOptions(quoting_style="none")) as cw, \
            pq.ParquetWriter(str(tmp["parquet"]), schema) as pw:
        for start in range(0, n, _BATCH):
            m = min(_BATCH, n - start)
            song = (FULL_SONGS * rng.random(m) ** 3).astype(np.int64)  # a few songs played most
            batch = pa.table({"user_id": users[rng.integers(0, FULL_USERS, m)], "track_id": songs[song],
                              "timestamp": rng.integers(_T0, _T0 + _SPAN, m),
                              "ms_played": rng.integers(1, 400_000, m)}, schema=schema)
            cw.write_table(batch)
            pw.write_table(batch)
    for k, p in tmp.items():
        p.replace(out[k])
    return out


# ------------------------------------------------------------------------------ jobs (own process)


def job_read_events(path: str) -> dict:
    from pmrs.ingest.events import read_events

    t0 = time.perf_counter()
    ev = read_events(path)
    return {"seconds": round(time.perf_counter() - t0, 3), "rows": ev.rows, "dropped": ev.dropped.total,
            "peak_rss_mb": round(peak_rss_mb())}


def job_ingest(path: str) -> dict:
    """The whole of ``pmrs ingest --events FILE`` into a fresh work directory: read, resolve (every
    track id is a song the catalog lacks: each is added), aggregate, write."""
    import shutil
    import tempfile

    from pmrs.ingest import ingest

    DATA.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="events-ingest-", dir=DATA))
    try:
        t0 = time.perf_counter()
        report = ingest(None, work, events=[path], live=False, show_progress=False)
        seconds = time.perf_counter() - t0
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ls = report["listens"]
    return {"seconds": round(seconds, 3), "rows": ls["events"], "users": ls["users"],
            "songs_created": ls["songs_created"], "peak_rss_mb": round(peak_rss_mb())}


def _duckdb_source(path: str) -> str:
    fn = "read_parquet" if path.endswith(".parquet") else "read_csv"
    return f"{fn}('{path}')"


def job_anchor(path: str) -> dict:
    import duckdb

    con = duckdb.connect()
    t0 = time.perf_counter()
    groups = con.sql(f"SELECT user_id, track_id, count(*) AS n FROM {_duckdb_source(path)} "
                     "GROUP BY user_id, track_id").to_arrow_table()
    return {"seconds": round(time.perf_counter() - t0, 3), "groups": groups.num_rows,
            "peak_rss_mb": round(peak_rss_mb())}


def job_pyarrow_read(path: str) -> dict:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    if path.endswith(".parquet"):
        table = pq.read_table(path)
    else:
        names = ["user_id", "track_id", "timestamp", "ms_played"]
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
            column_types={n: pa.string() for n in names}, strings_can_be_null=True, null_values=[""]))
    return {"seconds": round(time.perf_counter() - t0, 3), "rows": table.num_rows,
            "peak_rss_mb": round(peak_rss_mb())}


def job_duckdb_read(path: str) -> dict:
    import duckdb

    con = duckdb.connect()
    src = _duckdb_source(path).replace("')", "', all_varchar=true)") if path.endswith(".csv") else _duckdb_source(path)
    t0 = time.perf_counter()
    table = con.sql(f"SELECT * FROM {src}").to_arrow_table()
    return {"seconds": round(time.perf_counter() - t0, 3), "rows": table.num_rows,
            "peak_rss_mb": round(peak_rss_mb())}


JOBS = {"ingest": job_ingest, "read_events": job_read_events, "anchor": job_anchor, "pyarrow_read": job_pyarrow_read,
        "duckdb_read": job_duckdb_read}


def _best(job: str, path: Path, repeats: int) -> dict:
    runs = [run_job("bench.events_bench", "job", job, str(path)) for _ in range(repeats)]
    best = min(runs, key=lambda r: r["seconds"])
    return {**best, "all_seconds": [r["seconds"] for r in runs],
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs)}


def bench_events(command: str, n: int = 50_000_000, repeats: int = 1) -> dict:
    files = make_events(n)
    payload: dict = {"events": n, "repeats": repeats}
    for fmt, path in files.items():
        res = {"file": str(path), "size_bytes": path.stat().st_size}
        for job in JOBS:
            res[job] = _best(job, path, repeats)
            res[job]["rows_per_second"] = round(n / res[job]["seconds"]) if res[job]["seconds"] else None
            print(f"{fmt} {job}: {res[job]['seconds']} s, peak {res[job]['peak_rss_mb']} MB", flush=True)
        res["ratio_to_anchor"] = round(res["read_events"]["seconds"] / res["anchor"]["seconds"], 3)
        res["ingest_ratio_to_anchor"] = round(res["ingest"]["seconds"] / res["anchor"]["seconds"], 3)
        print(f"{fmt}: read_events / anchor = {res['ratio_to_anchor']}, ingest / anchor = "
              f"{res['ingest_ratio_to_anchor']}", flush=True)
        payload[fmt] = res
    write_result("events", payload, command)
    return payload


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "job":
        print(json.dumps(JOBS[argv[1]](argv[2])))
        return 0
    p = argparse.ArgumentParser(prog="python -m bench.events_bench")
    p.add_argument("--events", type=int, default=50_000_000)
    p.add_argument("--repeats", type=int, default=1)
    args = p.parse_args(argv)
    bench_events("python -m bench.events_bench " + " ".join(argv), args.events, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
