"""Measurements behind the metadata source's choices (docs/ARCHITECTURE.md, "The metadata source").

``python -m bench.metadata_bench vectors --songs 20000``: how well each reduction keeps a song's
neighbours in the full sparse metadata space (recall@10 of the reduced vectors' exact top 10
against the full vectors' exact top 10, for 500 sampled songs, ties in the full space counted
as hits), how often the neighbours share the hidden scene, and the time; the catalog and its
tags are the synthetic world's, made in memory (no files).

``python -m bench.metadata_bench time --songs 384546``: time and peak memory of the default
vectors at the full Taste Profile's song count.

``python -m bench.metadata_bench full`` (``make bench``, ``python -m bench.run --only metadata``): the
metadata source at the full Taste Profile's song count through the real files and commands: a
synthetic world of 384,546 songs with Last.fm tags and similars in the SQLite form (``pmrs synth
--lastfm sqlite``; 20,000 users, since users do not enter the metadata source), ``pmrs ingest``,
a small WMF run, then in a child process of its own the metadata vectors of every catalog song
(``pmrs.metadata.catalog_vectors``) and their index (the indexer's automatic choice and recall
measurement), timed with the process's peak memory; then ``indexer build`` (no default lists)
and ``pmrs-server``, loaded with SimilarSongs in metadata mode, mixed SimilarSongs and the no-op
Ping at concurrency 1, 8 and 32. Writes ``bench/results/metadata_full.json``.

``python -m bench.metadata_bench share --worlds 3``: the metadata source's share of Recommend on
hold-out splits of several synthetic worlds (no audio: collaborative + metadata bundles): recall
of the held-out songs at k 10 and 50 for each share.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _world(n_songs: int, seed: int):
    from pmrs.synth.audio import make_styles
    from pmrs.synth.lastfm import make_lastfm
    from pmrs.synth.world import SynthConfig, make_catalog

    cfg = SynthConfig(users=10, songs=n_songs, genres=12, scenes=8, seed=seed)
    rng = np.random.default_rng(seed)
    cat = make_catalog(cfg, [s.name for s in make_styles(cfg.genres, seed=seed)], rng)
    lf = make_lastfm(cat, cfg.scenes, np.random.default_rng([seed, 3]))
    songs = [{"artist": cat.artist_names[cat.artist[i]], "artist_id": cat.artist_ids[cat.artist[i]].decode(),
              "release": cat.releases[i], "genre": cat.genre_names[cat.genre[i]], "year": int(cat.year[i])}
             for i in range(n_songs)]
    tags = [dict(t) if t else {} for t in lf.tags]
    return cat, songs, tags


def _top(vectors, queries, k):
    sims = vectors[queries] @ vectors.T
    sims[np.arange(len(queries)), queries] = -np.inf
    part = np.argpartition(-sims, k, axis=1)[:, :k]
    return part, sims


def bench_vectors(n_songs: int, seed: int = 0) -> list[dict]:
    from pmrs.metadata import MetadataConfig, metadata_matrix, reduce_vectors

    t0 = time.perf_counter()
    cat, songs, tags = _world(n_songs, seed)
    print(f"world of {n_songs} songs in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    full, cols = metadata_matrix(songs, tags, MetadataConfig())
    print(f"full vectors {full.shape} nnz {full.nnz} ({ {p: c.stop - c.start for p, c in cols.items()} }) "
          f"in {time.perf_counter() - t0:.1f} s")
    rng = np.random.default_rng(1)
    q = np.sort(rng.choice(n_songs, 500, replace=False))
    exact = (full[q] @ full.T).toarray()
    exact[np.arange(len(q)), q] = -np.inf
    kth = -np.sort(-exact, axis=1)[:, 9]            # the 10th best exact score
    full_top = np.argsort(-exact, axis=1, kind="stable")[:, :10]
    out = [{"reduction": "none (full sparse)", "dims": full.shape[1], "recall_at_10_vs_full": 1.0,
            "same_scene_at_10": round(float((cat.scene[full_top] == cat.scene[q][:, None]).mean()), 3)}]
    print(out[0])
    for reduction, dims in (("svd", 16), ("svd", 32), ("svd", 48), ("svd", 64), ("svd", 128),
                            ("random", 48), ("random", 256)):
        cfg = MetadataConfig(dimensions=dims, reduction=reduction)
        t0, c0 = time.perf_counter(), time.process_time()
        v = reduce_vectors(full, cfg)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        top, _ = _top(v, q, 10)
        hits = (np.take_along_axis(exact, top, 1) >= kth[:, None] - 1e-6).mean()
        scene = (cat.scene[top] == cat.scene[q][:, None]).mean()
        row = {"reduction": reduction, "dims": dims, "recall_at_10_vs_full": round(float(hits), 3),
               "same_scene_at_10": round(float(scene), 3), "seconds": round(seconds, 2),
               "cpu_seconds": round(cpu, 2)}
        print(row)
        out.append(row)
    return out


def bench_time(n_songs: int, seed: int = 0) -> list[dict]:
    """Time and peak memory of the default metadata vectors for ``n_songs`` songs."""
    import resource

    from pmrs.metadata import MetadataConfig, metadata_matrix, reduce_vectors

    _, songs, tags = _world(n_songs, seed)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cfg = MetadataConfig()
    t0, c0 = time.perf_counter(), time.process_time()
    full, cols = metadata_matrix(songs, tags, cfg)
    t1, c1 = time.perf_counter(), time.process_time()
    v = reduce_vectors(full, cfg)
    t2, c2 = time.perf_counter(), time.process_time()
    row = {"songs": n_songs, "features": {p: c.stop - c.start for p, c in cols.items()}, "nnz": int(full.nnz),
           "dims": int(v.shape[1]), "matrix_seconds": round(t1 - t0, 1), "matrix_cpu_seconds": round(c1 - c0, 1),
           "svd_seconds": round(t2 - t1, 1), "svd_cpu_seconds": round(c2 - c1, 1),
           "peak_rss_mb_before": round(rss0), "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    print(row)
    return [row]


def bench_share(worlds: int, shares: list[float], users: int, songs: int) -> list[dict]:
    from pmrs.cli import main as pmrs_main
    from pmrs.evaluation.diversity import _scratch_workdir
    from pmrs.evaluation.split import HoldoutConfig, make_split
    from pmrs.indexing import IndexerConfig, build_bundle
    from pmrs.interactions import INTERACTIONS_DIR, Interactions
    from pmrs.recommender import Recommender
    from pmrs.collaborative.training import train_wmf_run
    from pmrs.collaborative.wmf import WMFConfig

    rows = []
    for seed in range(worlds):
        root = Path(tempfile.mkdtemp(prefix="pmrs-share-"))
        try:
            data, work = root / "data", root / "work"
            assert pmrs_main(["synth", str(data), "--users", str(users), "--songs", str(songs), "--no-audio",
                              "--seed", str(100 + seed), "-q"]) == 0
            assert pmrs_main(["ingest", str(data), "--workdir", str(work), "-q"]) == 0
            inter = Interactions.load(work / INTERACTIONS_DIR)
            split = make_split(inter.matrix, HoldoutConfig(seed=seed))
            scratch = _scratch_workdir(work, inter, split.train)
            train_wmf_run(scratch, WMFConfig(iterations=10), run="split", show_progress=False)
            out = build_bundle(scratch, IndexerConfig(keep=1, default_lists=False), show_progress=False)
            test = split.test.tocsr()
            us = np.asarray(split.test_users)
            us = us[np.diff(test.indptr)[us] > 0][:1000]
            with Recommender.open(out) as rec:
                ids = inter.song_ids
                for share in shares:
                    r10 = r50 = 0.0
                    for u in us:
                        relevant = {ids[j].decode() for j in test.indices[test.indptr[u]:test.indptr[u + 1]]}
                        user = inter.user_ids[u].decode()
                        for k in (10, 50):   # (a list of 10 is not the head of a list of 50: quotas)
                            got = {s.song_id for s in rec.recommend(user, k=k, shares={"metadata": share}).songs}
                            hit = len(relevant & got) / min(len(relevant), k)
                            r10, r50 = (r10 + hit, r50) if k == 10 else (r10, r50 + hit)
                    row = {"world": seed, "share": share, "users": len(us),
                           "recall@10": round(r10 / len(us), 4), "recall@50": round(r50 / len(us), 4)}
                    print(row)
                    rows.append(row)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    return rows


FULL_USERS_FOR_METADATA = 20_000
#: What the server is loaded with: (result name, rpc, SimilarSongs source; "" mixed).
FULL_LOADS = (("ping", "ping", ""), ("similar_metadata", "similar", "metadata"), ("similar_mixed", "similar", ""))


def job_vectors(workdir: str) -> dict:
    """The metadata vectors of every catalog song and their index, in this process: time and peak
    memory (run by :func:`bench_full` as a child process, so the peak is the job's own)."""
    import os

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from bench.common import peak_rss_mb
    from pmrs.indexing import IndexerConfig
    from pmrs.indexing.specs import build_chosen_index
    from pmrs.metadata import catalog_vectors

    rss0 = peak_rss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    mv = catalog_vectors(Path(workdir) / "catalog.lmdb")
    t1, c1 = time.perf_counter(), time.process_time()
    rss_vectors = peak_rss_mb()
    cfg = IndexerConfig()
    rng = np.random.default_rng(0)
    have = np.flatnonzero(np.abs(mv.vectors).sum(axis=1) > 0)
    queries = mv.vectors[np.sort(rng.choice(have, size=min(cfg.recall_queries, len(have)), replace=False))]
    index, entry = build_chosen_index(mv.vectors, None, {"songs": queries}, cfg)
    t2, c2 = time.perf_counter(), time.process_time()
    return {"songs": int(len(mv.song_ids)), "songs_with_tags": mv.songs_with_tags, "features": mv.features,
            "dims": int(mv.vectors.shape[1]),
            "vectors_seconds": round(t1 - t0, 1), "vectors_cpu_seconds": round(c1 - c0, 1),
            "index_seconds": round(t2 - t1, 1), "index_cpu_seconds": round(c2 - c1, 1),
            "index": {k: entry.get(k) for k in ("spec", "search_params", "recall_at_10", "transform",
                                               "build_seconds", "fallback_from") if k in entry},
            "peak_rss_mb_at_start": round(rss0), "peak_rss_mb_after_vectors": round(rss_vectors),
            "peak_rss_mb": round(peak_rss_mb())}


def bench_full(command: str, users: int = FULL_USERS_FOR_METADATA, duration_s: float = 8.0,
               songs: int | None = None) -> dict:
    """The metadata source at the full song count (module docstring); returns the payload."""
    import subprocess

    from bench.common import DATA, FULL_SONGS, run_job, write_result
    from bench.serving_bench import CONCURRENCY, _rss_mb, load_point, over_ping, served

    songs = songs or FULL_SONGS
    world = DATA / f"world-metadata-{users}x{songs}"
    work = DATA / f"work-metadata-{users}x{songs}"
    py = [sys.executable, "-m", "pmrs.cli"]
    steps: dict = {}
    if not (world / "truth.json").exists():
        t0 = time.perf_counter()
        subprocess.run(py + ["synth", str(world), "--users", str(users), "--songs", str(songs), "--no-audio",
                             "--lastfm", "sqlite", "--seed", "7", "-q"], check=True, stdout=subprocess.DEVNULL)
        steps["synth_seconds"] = round(time.perf_counter() - t0, 1)
    if not (work / "models" / "wmf").is_dir():
        shutil.rmtree(work, ignore_errors=True)
        t0 = time.perf_counter()
        subprocess.run(py + ["ingest", str(world), "--workdir", str(work), "-q"], check=True,
                       stdout=subprocess.DEVNULL)
        steps["ingest_seconds_with_lastfm_sqlite"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        subprocess.run(py + ["train-wmf", "--workdir", str(work), "--no-select", "--factors", "32",
                             "--iterations", "5", "--run", "bench", "-q"], check=True, stdout=subprocess.DEVNULL)
        steps["train_wmf_seconds"] = round(time.perf_counter() - t0, 1)
    vectors = run_job("bench.metadata_bench", "job-vectors", str(work))
    print(f"metadata vectors: {vectors['songs']:,} songs ({vectors['songs_with_tags']:,} with tags) in "
          f"{vectors['vectors_seconds']} s; index {vectors['index']['spec']} {vectors['index']['search_params']} "
          f"recall@10 {vectors['index']['recall_at_10']} in {vectors['index_seconds']} s; "
          f"peak {vectors['peak_rss_mb']} MB", flush=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pmrs_indexer.cli", "build", "--workdir", str(work), "--keep", "1",
                    "--no-default-lists", "-q"], check=True, stdout=subprocess.DEVNULL)
    build_s = round(time.perf_counter() - t0, 1)
    from pmrs.serving.contract import current_bundle

    bundle = current_bundle(work)
    manifest = json.loads((bundle / "manifest.json").read_text())
    payload = {"world": {"users": users, "songs": songs, "lastfm": "sqlite (generated tags and similars)",
                         **steps},
               "vectors_and_index_job": vectors, "indexer_build_seconds": build_s,
               "bundle_sources": {n: {k: s["index"].get(k) for k in ("spec", "search_params", "recall_at_10",
                                                                    "build_seconds", "vectors")}
                                  for n, s in manifest["sources"].items()}}
    from pmrs_clients.loadtest import load_ids

    results: dict = {}
    with served(work) as (target, proc):
        user_ids, song_ids = load_ids(bundle)
        for name, rpc, source in FULL_LOADS:
            for conc in CONCURRENCY:
                results.setdefault(name, {})[str(conc)] = load_point(target, name, rpc, conc, duration_s, user_ids,
                                                                     song_ids, similar_source=source)
        payload["server_rss_mb_after_load"] = _rss_mb(proc.pid)
    payload["results"] = results
    payload["qps_over_ping_qps"] = over_ping(results, [name for name, _, _ in FULL_LOADS[1:]])
    payload["duration_s_per_point"] = duration_s
    payload["note"] = ("client (pmrs-loadtest) and server share the machine's cores; every SimilarSongs "
                       "here is computed (no default lists)")
    write_result("metadata_full", payload, command)
    return payload


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.metadata_bench")
    sub = p.add_subparsers(dest="what", required=True)
    v = sub.add_parser("vectors")
    v.add_argument("--songs", type=int, default=20000)
    t = sub.add_parser("time")
    t.add_argument("--songs", type=int, default=384_546)
    s = sub.add_parser("share")
    s.add_argument("--worlds", type=int, default=3)
    s.add_argument("--users", type=int, default=3000)
    s.add_argument("--songs", type=int, default=1500)
    s.add_argument("--shares", default="0,0.05,0.1,0.2,0.3,0.5")
    f = sub.add_parser("full")
    f.add_argument("--users", type=int, default=FULL_USERS_FOR_METADATA)
    f.add_argument("--songs", type=int, help="songs (default: the full shape's 384,546)")
    f.add_argument("--duration", type=float, default=8.0, help="seconds per load point")
    sub.add_parser("job-vectors").add_argument("workdir")
    p.add_argument("--out", help="write the rows as JSON here")
    args = p.parse_args(argv)
    if args.what == "job-vectors":   # a child process of bench_full: one JSON line
        print(json.dumps(job_vectors(args.workdir), default=float))
        return 0
    if args.what == "full":
        bench_full("python -m bench.metadata_bench full " + " ".join(argv if argv is not None else sys.argv[2:]),
                   args.users, args.duration, args.songs)
        return 0
    if args.what == "vectors":
        rows = bench_vectors(args.songs)
    elif args.what == "time":
        rows = bench_time(args.songs)
    else:
        rows = bench_share(args.worlds, [float(x) for x in args.shares.split(",")], args.users, args.songs)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
