"""docs/BENCHMARKS.md from bench/results/*.json: every measured figure, where and how it was taken.

Each result file becomes a section (related files share a heading): its figures in tables, the
date and machine it was measured on ("not recorded" where the file lacks them) and the command
that produced it. Files of a kind this module knows get tables laid out for them; any other file
gets its top-level figures listed, so a new benchmark shows up without a change here. The last
section scales the measured figures to 100M users, 10M songs and 5B plays (docs/SCALING.md says
which engine takes each stage over there).

The output depends only on the result files (no clock, no paths), so a test holds the committed
docs/BENCHMARKS.md equal to what this renders; ``make bench`` (``bench.run``) regenerates it.

    python -m bench.report [--results DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import json
import logging
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterable

from bench.common import RESULTS

log = logging.getLogger(__name__)

OUT = RESULTS.parent.parent / "docs" / "BENCHMARKS.md"
#: Keys every result file carries (bench.common.write_result); shown as provenance, not figures.
PROVENANCE = ("benchmark", "command", "date", "machine", "note", "date_local")
NOT_RECORDED = "not recorded"
#: The service docs/SCALING.md sizes for.
TARGET_USERS, TARGET_SONGS, TARGET_PLAYS = 100_000_000, 10_000_000, 5_000_000_000

Doc = dict | list
Lines = list[str]


# -- formatting -----------------------------------------------------------------------------------


def fmt(v) -> str:
    """A figure for a table: thousands separated, about three significant digits for fractions."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        a = abs(v)
        if a == 0:
            return "0"
        if a >= 1000:
            return f"{v:,.0f}"
        if a >= 100:
            s = f"{v:.1f}"
        elif a >= 1:
            s = f"{v:.2f}"
        else:
            return f"{v:.3g}"
        return s.rstrip("0").rstrip(".")
    if isinstance(v, (list, tuple)):
        return " / ".join(fmt(x) for x in v)
    if isinstance(v, dict):
        return ", ".join(f"{k} {fmt(x)}" for k, x in v.items())
    return str(v)


def cell(v) -> str:
    return fmt(v).replace("|", "\\|").replace("\n", " ")


def table(header: Iterable[str], rows: Iterable[Iterable]) -> Lines:
    header = list(header)
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return out + [""]


def get(d, *path, default=None):
    """``d[path[0]][path[1]]...``, or ``default`` where a step is missing."""
    for key in path:
        if isinstance(d, dict) and key in d:
            d = d[key]
        else:
            return default
    return d


def scalars(d: dict, skip: Iterable[str] = PROVENANCE) -> list[tuple[str, object]]:
    """The top-level (key, value) pairs of ``d`` whose value is a number, a string or a bool."""
    skip = set(skip)
    return [(k, v) for k, v in d.items() if k not in skip and (v is None or isinstance(v, (int, float, str, bool)))]


def flat(d: dict, prefix: str = "") -> dict:
    """A record with nested dicts flattened to dotted keys (``features.tags``)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def records(rows: list) -> Lines:
    """A list of flat-ish records as one table, columns in first-seen order."""
    rows = [flat(r) for r in rows if isinstance(r, dict)]
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    return table(cols, ([r.get(c) for c in cols] for r in rows))


def scalar_table(pairs: list[tuple[str, object]]) -> Lines:
    return table(["figure", "value"], pairs) if pairs else []


# -- provenance -----------------------------------------------------------------------------------


def when(doc: Doc) -> str:
    date = get(doc, "date")
    if not isinstance(date, str) or not date:
        return NOT_RECORDED
    return date.replace("T", " ")[:16] + " UTC" if date.endswith("Z") else date


def machine(doc: Doc) -> str:
    m = get(doc, "machine")
    if not isinstance(m, dict):
        return NOT_RECORDED if m is None else str(m)
    parts = []
    if "cores" in m:
        parts.append(f"{m['cores']} cores")
    if "memory_gb" in m:
        parts.append(f"{fmt(m['memory_gb'])} GB")
    if "platform" in m:
        parts.append(str(m["platform"]))
    if "python" in m:
        parts.append(f"Python {m['python']}")
    return ", ".join(parts) or NOT_RECORDED


def load_average(doc: Doc) -> str | None:
    if not isinstance(doc, dict):
        return None
    for key, v in doc.items():
        if key.startswith("load_average"):
            return f"{fmt(v)} ({key.replace('_', ' ')})"
    return None


def provenance(doc: Doc, writer: str | None) -> Lines:
    command = get(doc, "command")
    if isinstance(command, str) and command.strip():
        how = f"`{command.strip()}`"
    else:
        how = NOT_RECORDED + (f" (written by `{writer}`)" if writer else "")
    lines = [f"- measured: {when(doc)}", f"- machine: {machine(doc)}", f"- command: {how}"]
    load = load_average(doc)
    if load:
        lines.append(f"- load average: {load}")
    note = get(doc, "note")
    if isinstance(note, str):
        lines.append(f"- note: {note}")
    return lines + [""]


# -- shared layouts -------------------------------------------------------------------------------


def load_points(results: dict, over_ping: dict | None = None, column: str = "concurrency") -> Lines:
    """``{rpc: {concurrency: {qps, p50_ms, p99_ms, errors}}}`` (pmrs-loadtest points) as a table."""
    rows = []
    for rpc, points in results.items():
        for conc, p in points.items():
            if not isinstance(p, dict):
                continue
            errors = sum((p.get("errors") or {}).values()) if isinstance(p.get("errors"), dict) else p.get("errors")
            rows.append([rpc, conc, p.get("qps"), p.get("p50_ms"), p.get("p99_ms"), errors,
                         get(over_ping or {}, rpc, conc)])
    header = ["call", column, "qps", "p50 ms", "p99 ms", "errors"]
    if over_ping:
        return table(header + ["qps / Ping qps"], rows)
    return table(header, [r[:-1] for r in rows])


def latency_rows(d: dict) -> Lines:
    """``{name: {calls, mean_ms, p50_ms, p99_ms}}`` as a table."""
    rows = [[k, v.get("calls"), v.get("mean_ms"), v.get("p50_ms"), v.get("p99_ms")]
            for k, v in d.items() if isinstance(v, dict) and "p50_ms" in v]
    return table(["call", "calls", "mean ms", "p50 ms", "p99 ms"], rows)


def share_table(entry: dict) -> Lines:
    """A neighbours-share choice: the validation table by share, and what was chosen."""
    rows = [[r.get("share"), r.get("map@500"), r.get("recall@50"), r.get("score")] for r in entry.get("table", [])]
    out = table(["neighbours share", "mAP@500", "recall@50", "mAP@500 + recall@50"], rows)
    nb = entry.get("neighbours") or {}
    facts = [("chosen share", entry.get("share")), ("validation users", entry.get("validation_users")),
             ("users (sampled / all)", [entry.get("sampled_users"), entry.get("users")]),
             ("songs (sampled / all)", [entry.get("sampled_songs"), entry.get("songs")]),
             ("neighbourhood settings", {k: nb[k] for k in ("similarity", "alpha", "locality", "neighbours") if k in nb}),
             ("WMF factors", get(entry, "wmf", "factors")), ("seconds", entry.get("seconds")),
             ("peak MB", entry.get("peak_rss_mb"))]
    return out + scalar_table([(k, v) for k, v in facts if v not in (None, {}, [None, None])])


# -- one renderer per kind of result file ---------------------------------------------------------


def r_ingest(d: dict) -> Lines:
    ours, pandas = d.get("pmrs_ingest", {}), d.get("pandas_read_csv", {})
    out = table(["reader", "seconds", "peak MB", "rows"],
                [["pmrs ingest", ours.get("seconds"), ours.get("peak_rss_mb"), ours.get("lines")],
                 ["pandas.read_csv (parse only)", pandas.get("seconds"), pandas.get("peak_rss_mb"), pandas.get("rows")]])
    return out + scalar_table([("file size GB", (d.get("size_bytes") or 0) / 1e9 or None),
                               ("users", ours.get("users")), ("songs", ours.get("songs")),
                               ("limits", d.get("limits")), ("within limits", d.get("within_limits"))])


def r_events(d: dict) -> Lines:
    jobs = (("ingest", "the whole pmrs ingest --events (read, resolve, aggregate, write)"),
            ("read_events", "pmrs read_events (every column checked)"),
            ("anchor", "DuckDB read + GROUP BY user, song (anchor)"),
            ("pyarrow_read", "pyarrow read into Arrow"), ("duckdb_read", "DuckDB read into Arrow"))
    rows = [[fmt, label, j.get("seconds"), j.get("rows_per_second"), j.get("peak_rss_mb")]
            for fmt in ("csv", "parquet") for job, label in jobs
            for j in [(d.get(fmt) or {}).get(job) or {}]]
    out = table(["file", "job", "seconds", "rows / s", "peak MB"], rows)
    return out + scalar_table([("events", d.get("events")), ("repeats (best kept)", d.get("repeats")),
                               ("CSV: read_events / anchor", (d.get("csv") or {}).get("ratio_to_anchor")),
                               ("Parquet: read_events / anchor", (d.get("parquet") or {}).get("ratio_to_anchor")),
                               ("CSV: whole ingest / anchor", (d.get("csv") or {}).get("ingest_ratio_to_anchor")),
                               ("Parquet: whole ingest / anchor",
                                (d.get("parquet") or {}).get("ingest_ratio_to_anchor"))])


def r_wmf(d: dict) -> Lines:
    ours, bare = d.get("pmrs_train_wmf", {}), d.get("bare_implicit", {})
    out = table(["run", "mean s / iteration", "total s", "peak MB"],
                [["pmrs train-wmf", ours.get("mean_seconds_per_iteration"), ours.get("total_seconds"),
                  ours.get("peak_rss_mb")],
                 ["bare implicit", bare.get("mean_seconds_per_iteration"), bare.get("wall_seconds"),
                  bare.get("peak_rss_mb")]])
    return out + scalar_table([("factors", d.get("factors")), ("iterations", d.get("iterations")),
                               ("per-iteration ratio", d.get("per_iteration_ratio")), ("limits", d.get("limits")),
                               ("within limits", d.get("within_limits"))])


def r_spark(d: dict) -> Lines:
    rows = []
    for name in ("implicit", "spark"):
        e = d.get(name) or {}
        rows.append([f"{name} ({e.get('master', 'in process')})", e.get("mean_seconds_per_iteration"),
                     e.get("total_seconds"), e.get("peak_tree_rss_mb"), e.get("peak_python_rss_mb")])
    out = table(["engine", "mean s / iteration", "total s", "peak MB (process tree)", "peak MB (Python)"], rows)
    return out + scalar_table([("shape", d.get("shape")), ("factors", d.get("factors")),
                               ("iterations", d.get("iterations")),
                               ("Spark phases (s)", get(d, "spark", "spark_seconds")),
                               ("Spark / implicit per iteration", d.get("spark_over_implicit_per_iteration"))])


def r_spark_translation(d: dict) -> Lines:
    rules = ("implicit", "mean_ridge", "mean_user", "untranslated")
    header = ["seed", "lambda"] + [f"{r}: recall@50 / mAP@500" for r in rules]
    rows = [[r.get("seed"), r.get("lambda")] + [[get(r, k, "recall@50"), get(r, k, "map@500")] for k in rules]
            for r in d.get("rows", [])]
    out = table(header, rows)
    gaps = d.get("largest_gap_to_implicit") or {}
    out += table(["rule", "largest gap to implicit: recall@50", "mAP@500"],
                 [[k, v.get("recall@50"), v.get("map@500")] for k, v in gaps.items()])
    return out + scalar_table([("world", {k: v for k, v in (d.get("world") or {}).items() if k != "seeds"}),
                               ("factors", d.get("factors")), ("iterations", d.get("iterations"))])


def r_select(d: dict) -> Lines:
    rows = []
    for kind in ("plain", "selected"):
        e = d.get(kind)
        if isinstance(e, dict):
            rows.append([kind, e.get("seconds"), e.get("cpu_seconds"), e.get("peak_rss_mb"),
                         get(e, "split_seconds", "select"), get(e, "split_seconds", "fit")])
    out = table(["train-wmf", "wall s", "CPU s", "peak MB", "search s", "final fit s"], rows)
    sel = d.get("selected") or {}
    chosen = sel.get("chosen") or {}
    facts = [("shape", d.get("shape")),
             ("selected / plain, wall", d.get("selected_over_plain")),
             ("selected / plain, CPU", d.get("selected_over_plain_cpu")),
             ("limit (wall)", d.get("limit_selected_over_plain")), ("within limit", d.get("within_limit")),
             ("search sample (users, songs)", [sel.get("sampled_users"), sel.get("sampled_songs")]),
             ("validation users", sel.get("validation_users")),
             ("search spent / budget (plain fits)", [sel.get("spent_in_plain_fits"), sel.get("budget_in_plain_fits")]),
             ("trials", sel.get("trials")),
             ("chosen", {k: chosen[k] for k in ("factors", "alpha", "eps", "regularization", "iterations") if k in chosen}),
             ("load average (1 min) at start and end: plain; selected",
              "; ".join(" to ".join(fmt(x) for x in la) for la in (get(d, "plain", "load_average_1min"),
                                                                  sel.get("load_average_1min"))
                        if isinstance(la, list)) or None)]
    return out + scalar_table([(k, v) for k, v in facts if v not in (None, {}, [None, None])])


def r_neighbours_share(d: dict) -> Lines:
    if isinstance(d.get("worlds"), dict):
        out = []
        for world, entry in d["worlds"].items():
            out += [f"World `{world}` ({fmt(d.get('users'))} users x {fmt(d.get('songs'))} songs):", ""]
            out += share_table(entry)
        return out
    return share_table(d)


def r_neighbours_serving(d: dict) -> Lines:
    b = d.get("bundle_build") or {}
    out = load_points(d.get("results") or {}, d.get("qps_over_ping_qps"))
    return out + scalar_table([("bundle build s", b.get("build_seconds")), ("build peak MB", b.get("peak_rss_mb")),
                               ("neighbours files MB", (b.get("neighbours_bytes") or 0) / 2**20 or None),
                               ("bundle defaults", get(b, "defaults", "shares")),
                               ("server start to first answer s", d.get("startup_seconds")),
                               ("server MB after the load", d.get("server_rss_mb_after_load")),
                               ("seconds per point", d.get("duration_s_per_point"))])


def r_neighbours_calls(d: dict) -> Lines:
    return latency_rows(d) + scalar_table([("mean played songs per user", d.get("mean_played_songs"))])


def r_index(d: dict) -> Lines:
    b, s = d.get("build") or {}, d.get("serve") or {}
    out = scalar_table([("build s", b.get("build_seconds")), ("build peak MB", b.get("peak_rss_mb")),
                        ("bundle GB", (b.get("bundle_bytes") or 0) / 1e9 or None), ("counts", b.get("counts")),
                        ("acoustic vectors", d.get("acoustic_vectors"))])
    rows = [[name, i.get("spec"), i.get("transform"), i.get("search_params"), get(i, "recall_at_10_by_queries", "users"),
             get(i, "recall_at_10_by_queries", "songs"), i.get("build_seconds")]
            for name, i in (b.get("indexes") or {}).items()]
    out += table(["source", "spec", "transform", "search", "recall@10 users", "recall@10 songs", "build s"], rows)
    out += table(["default lists", "k", "shares", "seconds"],
                 [[k, v.get("k"), v.get("shares"), v.get("seconds")] for k, v in (b.get("default_lists") or {}).items()])
    rows = []
    for name, i in (s.get("indexes") or {}).items():
        one = i.get("single_query_one_thread") or {}
        batched = i.get("batched_queries_per_second_two_threads") or {}
        rows.append([name, [get(one, "exact_flat", "p50_ms"), get(one, "exact_flat", "p99_ms")],
                     [get(one, "bundle_index", "p50_ms"), get(one, "bundle_index", "p99_ms")],
                     [batched.get("exact_flat"), batched.get("bundle_index")], i.get("recall_at_10_user_queries")])
    out += table(["source", "exact p50 / p99 ms", "index p50 / p99 ms", "batched qps exact / index",
                  "recall@10 (other users)"], rows)
    return out + scalar_table([("open s", s.get("open_seconds")), ("MB after open", s.get("rss_mb_after_open")),
                               ("user lookup us", s.get("user_lookup_us")), ("fold-in ms", s.get("fold_in_ms")),
                               ("default lists against online answers", s.get("default_lists_against_online"))])


def r_serving(d: dict) -> Lines:
    out = load_points(d.get("results") or {}, d.get("qps_over_ping_qps"))
    out += table(["source", "spec", "search", "recall@10"],
                 [[i.get("name"), i.get("spec"), i.get("search_params"), i.get("recall_at_10")]
                  for i in d.get("indexes", []) if isinstance(i, dict)])
    return out + scalar_table([("users", d.get("users")), ("songs", d.get("songs")),
                               ("start to first answer s", d.get("startup_to_first_answer_seconds")),
                               ("server MB (after start, after load)", d.get("server_rss_mb")),
                               ("default lists s", {k: v.get("seconds") for k, v in (d.get("default_lists") or {}).items()}),
                               ("seconds per point", d.get("duration_s_per_point"))])


def r_explain(d: dict) -> Lines:
    rows = [[name, get(r, "explain_off", "mean_ms"), get(r, "explain_on", "mean_ms"), get(r, "explain_off", "p99_ms"),
             get(r, "explain_on", "p99_ms"), f"+{r.get('cost_of_explain', 0) * 100:.0f}%"]
            for name, r in (d.get("results") or {}).items()]
    out = table(["call", "mean ms, off", "mean ms, on", "p99 ms, off", "p99 ms, on", "cost of explain"], rows)
    return out + scalar_table([("users x songs", [d.get("users"), d.get("songs")]), ("sources", d.get("sources")),
                               ("shares set", d.get("shares")), ("k", d.get("k")), ("goal", d.get("goal")),
                               ("full shape", d.get("full_shape"))])


def r_listenbrainz(d: dict) -> Lines:
    rates = d.get("rates") or {}
    out = table(["path", "rate"], [["`single` listens, one per request", f"{fmt(rates.get('single_listens_per_s'))} listens/s"],
                                   [f"`import` of {d.get('import_size')} listens", f"{fmt(rates.get('import_listens_per_s'))} listens/s"],
                                   ["gRPC RecordPlays, one play per call", f"{fmt(rates.get('grpc_record_plays_calls_per_s'))} calls/s"]])
    rows = [[name.replace("_", " "), get(v, "p50_ms"), get(v, "p99_ms"), get(v, "samples"),
             get(v, "not_seen_within_s", "count")] for name, v in (d.get("time_to_changed_recommendations") or {}).items()]
    out += table(["write, then the answer read", "p50 ms", "p99 ms", "samples", "not seen"], rows)
    return out + scalar_table([("users x songs", [d.get("users"), d.get("songs")]),
                               ("load average at end", d.get("load_average_at_end"))])


def r_live(d: dict) -> Lines:
    full = d.get("record_plays_full_shape") or {}
    out = table(["writers", "plays / call", "calls/s", "plays/s", "ack p50 ms", "ack p99 ms", "errors"],
                [[r.get("threads"), r.get("plays_per_call"), r.get("calls_per_s"), r.get("plays_per_s"),
                  get(r, "ack", "p50_ms"), get(r, "ack", "p99_ms"), r.get("errors")]
                 for r in full.get("record_plays", [])])
    vis = full.get("visibility") or {}
    out += table(["a write is visible", "p50 ms", "p99 ms", "max ms"],
                 [[k.replace("_", " "), v.get("p50_ms"), v.get("p99_ms"), v.get("max_ms")]
                  for k, v in vis.items() if isinstance(v, dict)])
    reads = full.get("reads_while_writing_c8") or {}
    out += table(["reads at 8 connections", "qps without writes", "qps with writes", "plays/s written meanwhile"],
                 [[k, v.get("qps_without_writes"), v.get("qps_with_writes"), v.get("writes_meanwhile_plays_per_s")]
                  for k, v in reads.items()])
    a = d.get("add_song") or {}
    out += table(["AddSong", "p50 ms", "p99 ms", "max ms"],
                 [[k.replace("_", " "), v.get("p50_ms"), v.get("p99_ms"), v.get("max_ms")]
                  for k, v in a.items() if isinstance(v, dict)])
    return out + scalar_table([("AddSong world", a.get("world")), ("clip", a.get("clip")),
                               ("first AddSong after start ms", a.get("first_add_song_ms"))])


def r_replicas(d: dict) -> Lines:
    out = load_points(d.get("results") or {}, column="servers")
    return out + scalar_table([("two servers / one", d.get("two_over_one")), ("connections", d.get("concurrency")),
                               ("seconds per point", d.get("duration_s"))])


def r_scale(d: dict) -> Lines:
    rows = []
    for p in (d.get("baseline_taste_profile_songs"), d.get("point")):
        if isinstance(p, dict):
            rows.append([p.get("songs"), p.get("spec"), p.get("search_params"), p.get("build_seconds"),
                         p.get("peak_rss_mb"), p.get("recall_at_10_fresh_queries"),
                         get(p, "latency_ms_one_thread", "p50"), get(p, "latency_ms_one_thread", "p99")])
    return table(["songs", "spec (automatic)", "search for recall@10 >= 0.95", "build s", "peak MB",
                  "recall@10 (fresh queries)", "search p50 ms", "p99 ms"], rows)


def r_metadata_full(d: dict) -> Lines:
    job = d.get("vectors_and_index_job") or {}
    out = scalar_table([("world", d.get("world")), ("songs with tags", job.get("songs_with_tags")),
                        ("features", job.get("features")), ("vectors s (CPU s)", [job.get("vectors_seconds"),
                                                                                  job.get("vectors_cpu_seconds")]),
                        ("index s (CPU s)", [job.get("index_seconds"), job.get("index_cpu_seconds")]),
                        ("index", {k: v for k, v in (job.get("index") or {}).items() if k != "build_seconds"}),
                        ("peak MB", job.get("peak_rss_mb")), ("indexer build s", d.get("indexer_build_seconds")),
                        ("server MB after the load", d.get("server_rss_mb_after_load"))])
    out += table(["bundle source", "spec", "search", "recall@10", "vectors"],
                 [[k, v.get("spec"), v.get("search_params"), v.get("recall_at_10"), v.get("vectors")]
                  for k, v in (d.get("bundle_sources") or {}).items()])
    return out + load_points(d.get("results") or {}, d.get("qps_over_ping_qps"))


def r_extract(d: dict) -> Lines:
    rows = []
    for name, v in (d.get("variants") or {}).items():
        ms = v.get("per_clip_ms") or {}
        rows.append([name, v.get("clips_per_second"), v.get("worker_cpu_ms_per_clip"), ms.get("decode"),
                     ms.get("resample"), ms.get("features"), ms.get("write"), get(v, "one_process", "clips_per_second")])
    out = [f"{fmt(d.get('clips'))} clips of {fmt(d.get('clip_seconds'))} s, {fmt(d.get('workers'))} workers:", ""]
    out += table(["format", "clips/s", "worker CPU ms / clip", "decode ms", "resample ms", "features ms", "write ms",
                  "clips/s, one process"], rows)
    fl = d.get("full_length") or {}
    rows = []
    for name, v in (fl.get("variants") or {}).items():
        s = v.get("seek_against_decode_from_start") or {}
        rows.append([name, v.get("clips_per_second"), v.get("worker_cpu_ms_per_clip"), v.get("cpu_ms_against_30s_clips"),
                     v.get("seek"), s.get("seek_cpu_ms"), s.get("decode_from_start_cpu_ms"), s.get("speed_up")])
    if rows:
        out += [f"Full-length recordings ({fmt(fl.get('clips'))} files of {fmt(fl.get('clip_seconds'))} s):", ""]
        out += table(["format", "clips/s", "worker CPU ms / clip", "CPU against a 30 s clip", "how the middle was reached",
                      "seek CPU ms", "decode-from-start CPU ms", "speed-up"], rows)
    return out


def r_cnn(d: dict) -> Lines:
    t, p = d.get("train") or {}, d.get("predict") or {}
    return scalar_table([("songs", d.get("songs")), ("clip s", d.get("clip_seconds")), ("device", d.get("device")),
                         ("torch threads", d.get("torch_threads")), ("training windows/s", t.get("windows_per_second")),
                         ("training s (epochs)", [t.get("seconds"), t.get("epochs")]),
                         ("best validation loss (mean predictor)", [t.get("best_val_loss"),
                                                                    t.get("val_loss_mean_predictor")]),
                         ("prediction clips/s", p.get("clips_per_second")),
                         ("prediction audio s / s", p.get("audio_seconds_per_second"))])


def r_web(d: dict) -> Lines:
    rows = []
    for name, v in (d.get("views") or {}).items():
        load, srv = v.get("load") or {}, v.get("server") or {}
        rows.append([name, load.get("median_ms"), load.get("p90_ms"), load.get("max_ms"),
                     srv.get("median_ms"), srv.get("p90_ms"), load.get("loads")])
    out = table(["view", "page load median ms", "p90 ms", "max ms", "app's part median ms", "p90 ms", "loads"], rows)
    return out + scalar_table([("world", f"{fmt(d.get('users'))} users, {fmt(d.get('songs'))} songs, sources "
                                         f"{', '.join(d.get('sources') or [])}"),
                               ("aim ms", d.get("aim_ms")), ("worst p90 ms", d.get("worst_p90_ms")),
                               ("within aim", d.get("within_aim"))])


def r_generic(doc: Doc) -> Lines:
    """Any result file: its top-level figures (a list of records: one table)."""
    if isinstance(doc, list):
        return records(doc)
    if not isinstance(doc, dict):
        return [f"`{fmt(doc)}`", ""]
    out = scalar_table(scalars(doc))
    nested = [k for k, v in doc.items() if k not in PROVENANCE and isinstance(v, (dict, list))]
    if nested:
        out += [f"Also in the file: {', '.join(f'`{k}`' for k in nested)}.", ""]
    return out


#: Sections in order: (title, what it measures, [(file stem pattern, renderer, writer)]). ``writer``
#: names the command for files that do not record theirs.
SECTIONS: list[tuple[str, str, list[tuple[str, Callable[[Doc], Lines], str | None]]]] = [
    ("Ingest", "`pmrs ingest` of a Taste-Profile-shaped triplets file, against pandas parsing the same file.",
     [("ingest", r_ingest, None)]),
    ("Listening events", "`pmrs ingest --events` and its reader `pmrs.ingest.events.read_events` of a service's "
                         "event table (CSV and Parquet), against DuckDB reading and grouping the same file.",
     [("events", r_events, None)]),
    ("WMF training", "`pmrs train-wmf` (implicit's ALS) at the full shape, against bare implicit.",
     [("wmf", r_wmf, None)]),
    ("WMF on Spark", "MLlib's ALS against implicit, and the regularization translation that keeps PMRS's model.",
     [("spark", r_spark, None), ("spark_translation", r_spark_translation, None)]),
    ("Settings from the data", "`train-wmf` with settings chosen on validation against a plain 15-iteration fit.",
     [("select*", r_select, None)]),
    ("Neighbourhood model", "Build cost, the neighbours source's share chosen on validation, and its serving cost.",
     [("neighbours_build", r_generic, None), ("neighbours_share*", r_neighbours_share, None),
      ("neighbours_serving", r_neighbours_serving, None), ("neighbours_calls", r_neighbours_calls, None)]),
    ("Index", "`indexer build` of a full-shape bundle: index specs, recall, search latency, open time.",
     [("index", r_index, None)]),
    ("Serving", "`pmrs-server` under `pmrs-loadtest` at concurrency 1 / 8 / 32, against the no-op Ping.",
     [("serving", r_serving, None)]),
    ("Explanations", "Computed Recommend and SimilarSongs with `explain` off and on, in process as the server runs.",
     [("explain", r_explain, None)]),
    ("Live writes", "RecordPlays through the write log (two servers over one log), AddSong of a clip.",
     [("live", r_live, None)]),
    ("ListenBrainz endpoint", ("Listens through `pmrs-listenbrainz` and the time to changed recommendations, "
                               "beside RecordPlays over gRPC."),
     [("listenbrainz", r_listenbrainz, None)]),
    ("Replicas", "One and two servers over one bundle under one round-robin load test.",
     [("replicas", r_replicas, None)]),
    ("Past the Taste Profile", "One source of ten times the Taste Profile's songs, indexed as `indexer build` does.",
     [("scale", r_scale, None)]),
    ("Metadata source", "Reduction of the metadata vectors, their cost at full shape, the default share, and the "
                        "source served at 384,546 songs.",
     [("metadata_vectors", r_generic, "python -m bench.metadata_bench vectors --songs 20000 --out FILE"),
      ("metadata_time", r_generic, "python -m bench.metadata_bench time --out FILE"),
      ("metadata_share", r_generic, "python -m bench.metadata_bench share --worlds 3 --out FILE"),
      ("metadata_full", r_metadata_full, None), ("metadata_*", r_generic, None)]),
    ("Audio extraction", "`pmrs extract` of 30 s clips per format, and of full-length recordings.",
     [("extract", r_extract, None)]),
    ("CNN", "Training and prediction throughput of the latent-factor CNN on 30 s clips.",
     [("cnn", r_cnn, None)]),
    ("Web page", "`pmrs-web` page loads in headless Chromium on the demo world.",
     [("web", r_web, None)]),
]


def classify(stem: str) -> tuple[int, Callable[[Doc], Lines], str | None]:
    for i, (_, _, patterns) in enumerate(SECTIONS):
        for pattern, renderer, writer in patterns:
            if fnmatch.fnmatchcase(stem, pattern):
                return i, renderer, writer
    return len(SECTIONS), r_generic, None


def render_file(name: str, doc: Doc, renderer: Callable[[Doc], Lines], writer: str | None) -> Lines:
    out = [f"### `{name}`", ""] + provenance(doc, writer)
    try:
        out += renderer(doc)
    except (AttributeError, KeyError, TypeError, ValueError) as e:   # a changed layout: still show it
        log.warning("%s: %s (%s); listing its top-level figures", name, type(e).__name__, e)
        out += r_generic(doc)
    return out


# -- scaled estimates -----------------------------------------------------------------------------


def estimates(docs: dict[str, Doc]) -> Lines:
    """The measured figures scaled to TARGET_USERS / TARGET_SONGS / TARGET_PLAYS, each by a stated
    rule; a row appears when its result file does."""
    rows: list[list] = []

    def hours(seconds: float) -> str:
        if seconds >= 2 * 86400:
            return f"{seconds / 86400:,.1f} days"
        return f"{seconds / 3600:,.1f} h" if seconds >= 3600 else f"{seconds / 60:,.0f} min"

    ingest = get(docs, "ingest", "pmrs_ingest")
    if isinstance(ingest, dict) and ingest.get("nonzeros"):
        f = TARGET_PLAYS / ingest["nonzeros"]
        rows.append(["ingest", "linear in plays", f"{hours(ingest['seconds'] * f)}, {ingest['peak_rss_mb'] * f / 1024:,.0f} GB peak",
                     "ingest.json"])
    wmf = docs.get("wmf")
    shape = ingest if isinstance(ingest, dict) else {}
    if (isinstance(wmf, dict) and get(wmf, "pmrs_train_wmf", "mean_seconds_per_iteration")
            and all(shape.get(k) for k in ("nonzeros", "users", "songs"))):
        k = wmf.get("factors", 64)
        now = shape["nonzeros"] * k**2 + (shape["users"] + shape["songs"]) * k**3
        then = TARGET_PLAYS * k**2 + (TARGET_USERS + TARGET_SONGS) * k**3
        t = wmf["pmrs_train_wmf"]["mean_seconds_per_iteration"] * then / now
        rows.append(["WMF, one iteration", "plays x k^2 + (users + songs) x k^3", f"{hours(t)} on the same cores",
                     "wmf.json, ingest.json"])
        rows.append(["WMF factors", f"(users + songs) x {k} float32", f"{(TARGET_USERS + TARGET_SONGS) * k * 4 / 1e9:,.0f} GB",
                     "(arithmetic)"])
        rows.append(["play matrix and its transpose", "plays x (int32 + float32) x 2",
                     f"{TARGET_PLAYS * 8 * 2 / 1e9:,.0f} GB", "(arithmetic)"])
    ext = get(docs, "extract", "variants") or {}
    for name, v in ext.items():
        ms = v.get("worker_cpu_ms_per_clip") if isinstance(v, dict) else None
        if ms:
            cpu = TARGET_SONGS * ms / 1000
            rows.append([f"extraction, {name}", "CPU per clip x songs / cores",
                         f"{hours(cpu / 2)} on 2 cores, {hours(cpu / 128)} on 128", "extract.json"])
    cps = get(docs, "cnn", "predict", "clips_per_second")
    if cps:
        rows.append(["CNN prediction", "linear in songs", f"{hours(TARGET_SONGS / cps)} on the same cores", "cnn.json"])
    point = get(docs, "scale", "point")
    if isinstance(point, dict) and point.get("songs"):
        f = TARGET_SONGS / point["songs"]
        rows.append(["index build, one source", "linear in songs (measured: 10x songs cost about 10x)",
                     f"{hours(point['build_seconds'] * f)}, {point['peak_rss_mb'] * f / 1024:,.0f} GB peak", "scale.json"])
    if rows:
        rows.append(["serving: user factors", "users x 64 float32", f"{TARGET_USERS * 64 * 4 / 1e9:,.0f} GB", "(arithmetic)"])
        rows.append(["serving: played lists", "plays x int32", f"{TARGET_PLAYS * 4 / 1e9:,.0f} GB", "(arithmetic)"])
    if not rows:
        return []
    return ([f"## Scaled to {TARGET_USERS // 10**6}M users, {TARGET_SONGS // 10**6}M songs, "
             f"{TARGET_PLAYS // 10**9}B plays (estimated)", "",
             "Each figure is a measurement above scaled by the rule beside it, not a run; docs/SCALING.md says "
             "which engine takes each stage over where one machine stops being enough.", ""]
            + table(["stage", "scaled by", "estimate", "from"], rows))


# -- the document ---------------------------------------------------------------------------------


def read_results(results: Path) -> dict[str, Doc]:
    docs = {}
    for path in sorted(results.glob("*.json")):
        try:
            docs[path.stem] = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            log.warning("%s: not readable (%s); left out", path.name, e)
    return docs


def render(results: Path = RESULTS) -> str:
    """docs/BENCHMARKS.md's text for the result files in ``results``."""
    docs = read_results(results)
    groups: dict[int, list[tuple[str, Doc, Callable, str | None]]] = {}
    for stem, doc in docs.items():
        i, renderer, writer = classify(stem)
        groups.setdefault(i, []).append((stem, doc, renderer, writer))
    out = ["# Benchmarks", "",
           "Generated by `python -m bench.report` from `bench/results/*.json` (`make bench` runs it after the "
           "benchmarks); do not edit by hand. Each result file is listed with the date and machine it was "
           "measured on and the command that produced it; figures from different dates or loads are not "
           "comparable. Why each measurement mattered is docs/ARCHITECTURE.md's business; how the costs grow "
           "past one machine, docs/SCALING.md's.", ""]
    out += [f"- {SECTIONS[i][0] if i < len(SECTIONS) else 'Other results'}: "
            + ", ".join(f"`{stem}.json`" for stem, *_ in groups[i]) for i in sorted(groups)] + [""]
    for i in sorted(groups):
        title, what = SECTIONS[i][:2] if i < len(SECTIONS) else ("Other results", "Result files of other kinds.")
        out += [f"## {title}", "", what, ""]
        for stem, doc, renderer, writer in groups[i]:
            out += render_file(f"{stem}.json", doc, renderer, writer)
    out += estimates(docs)
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out) + "\n"


def write(results: Path = RESULTS, out: Path = OUT) -> Path:
    """Render and write ``out`` atomically (a temporary file in its folder, then a rename)."""
    text = render(results)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.splitlines()[0])
    p.add_argument("--results", type=Path, default=RESULTS, help="folder of result files (default: bench/results)")
    p.add_argument("--out", type=Path, default=OUT, help="file to write (default: docs/BENCHMARKS.md)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname).1s %(name)s: %(message)s")
    print(f"wrote {write(args.results, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
