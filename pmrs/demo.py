"""``make demo``: the whole pipeline on the synthetic default, with real recommendations shown.

synth (small) -> ingest -> evaluate --holdout -> train-wmf -> train-neighbours, then for two users their most played
songs and their top recommendations with title, artist and genre; then the acoustic half:
extract -> train-cnn -> predict -> evaluate --cold-start, and what the CNN recommends to those
users among songs nobody has played yet; then the bundle, the Python API, the server, and the
similarity experiments (``pmrs evaluate --similarity``) with a short summary of each.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .entry import set_thread_policy

# before torch is imported (below): its OpenMP threads read the policy once, when it loads; spinning
# ones made the demo's CNN training take over 25 minutes instead of about one on a busy machine
set_thread_policy()

import numpy as np  # noqa: E402

from . import config as cfgmod  # noqa: E402
from .catalog import CATALOG_FILE, Catalog  # noqa: E402
from .evaluation.holdout import HoldoutConfig, evaluate_holdout  # noqa: E402
from .ingest import IngestConfig, ingest  # noqa: E402
from .interactions import INTERACTIONS_DIR, Interactions  # noqa: E402
from .collaborative.topk import most_played, top_k  # noqa: E402
from .report import format_ingest, markdown_table  # noqa: E402
from .artifacts import read_json  # noqa: E402
from .synth.generate import synthesize  # noqa: E402
from .synth.world import SynthConfig  # noqa: E402
from .collaborative.training import train_neighbours_run, train_wmf_run  # noqa: E402
from .collaborative.selection import SelectConfig  # noqa: E402
from .collaborative.wmf import WMFConfig, load_run  # noqa: E402
from .acoustic.model import CNNConfig  # noqa: E402
from .acoustic.runs import load_predictions  # noqa: E402
from .acoustic.stages import predict_run, train_cnn_run  # noqa: E402
from .audio.extract import ExtractConfig, extract  # noqa: E402
from .audio.features import FeatureConfig  # noqa: E402
from .evaluation.cold_start import ColdStartConfig, evaluate_cold_start  # noqa: E402
from .evaluation.similarity import SimilarityConfig, evaluate_similarity  # noqa: E402
from .evaluation.similarity_report import summary_lines  # noqa: E402
from .metadata import MetadataConfig  # noqa: E402

DEMO_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "demo.toml"


def _step(title: str) -> float:
    print(f"\n=== {title} ===", flush=True)
    return time.perf_counter()


def song_rows(catalog: Catalog, song_ids, values, value_name: str) -> str:
    rows = []
    for sid, v in zip(song_ids, values):
        meta = catalog.get(sid) or {}
        rows.append([meta.get("title", "?"), meta.get("artist", "?"), meta.get("genre", "?"),
                     v if isinstance(v, (int, np.integer)) else round(float(v), 3), sid])
    return markdown_table(["title", "artist", "genre", value_name, "song id"], rows)


def run_demo(directory: Path, config_path: Path = DEMO_CONFIG) -> None:
    t_start = time.perf_counter()
    toml = cfgmod.load_toml(config_path)
    data, work = directory / "data", directory / "work"

    t = _step("1. pmrs synth: a synthetic world in the Million Song Dataset formats")
    if (data / "truth.json").exists():
        print(f"reusing {data}")
    else:
        print(synthesize(data, cfgmod.build(SynthConfig, "synth", toml)))
    print(f"({time.perf_counter() - t:.1f} s)")

    t = _step("2. pmrs ingest")
    from .live.log import LIVE_DIR

    if (work / LIVE_DIR).exists():   # the last demo's live writes (its added song, its plays): not this one's
        shutil.rmtree(work / LIVE_DIR)
        print(f"removed the last demo's write log ({work / LIVE_DIR})")
    print(format_ingest(ingest(data, work, cfgmod.build(IngestConfig, "ingest", toml))))
    print(f"({time.perf_counter() - t:.1f} s)")

    t = _step("3. pmrs evaluate --holdout (PMRS as served beside the reference models, on held-out plays)")
    wmf_cfg = cfgmod.build(WMFConfig, "wmf", toml)
    report_dir = evaluate_holdout(work, wmf_cfg, cfgmod.build(HoldoutConfig, "evaluate", toml),
                                  select=cfgmod.build(SelectConfig, "select", toml),
                                  fixed=cfgmod.given(WMFConfig, "wmf", toml),
                                  metadata_cfg=cfgmod.build(MetadataConfig, "metadata", toml),
                                  show_progress=False)
    metrics = read_json(report_dir / "metrics.json")
    cols = ["recall@10", "recall@50", "map@500", "ndcg@50", "auc", "coverage@50"]
    print(markdown_table(["model"] + cols,
                         [[name] + [m[c] for c in cols] for name, m in metrics["models"].items()]))
    print(f"recall@50: PMRS / popularity = {metrics['lift_over_popularity']['recall@50']}x   (report: {report_dir})")
    print(f"({time.perf_counter() - t:.1f} s)")

    t = _step("4. pmrs train-wmf on all plays, then recommendations")
    run = train_wmf_run(work, wmf_cfg, show_progress=False)
    model, user_ids, song_ids = load_run(run)
    inter = Interactions.load(work / INTERACTIONS_DIR)
    with Catalog(work / CATALOG_FILE) as catalog:
        rng = np.random.default_rng(1)
        active = np.flatnonzero(np.diff(inter.matrix.indptr) >= 20)
        shown_users = rng.choice(active, size=2, replace=False)
        for row in shown_users:
            uid = user_ids[row].decode()
            played, plays = most_played(inter.matrix, row, 8)
            print(f"\nuser {uid}: {inter.matrix.indptr[row + 1] - inter.matrix.indptr[row]} songs played; most played:")
            print(song_rows(catalog, [song_ids[i].decode() for i in played], plays, "plays"))
            exclude = inter.matrix.indices[inter.matrix.indptr[row]:inter.matrix.indptr[row + 1]]
            top, scores = top_k(model.user_factors[row], model.song_factors, 10, exclude=exclude)
            print("top 10 recommendations (not yet played):")
            print(song_rows(catalog, [song_ids[i].decode() for i in top], scores, "score"))
    print(f"({time.perf_counter() - t:.1f} s)")

    t = _step("4b. pmrs train-neighbours: song-to-song similarities, settings and share chosen on validation")
    nrun = train_neighbours_run(work, None, show_progress=False, select=cfgmod.build(SelectConfig, "select", toml),
                                metadata_cfg=cfgmod.build(MetadataConfig, "metadata", toml))
    ncfg = read_json(nrun / "config.json")
    share = ncfg.get("serving_share") or {}
    print(f"{ncfg['similarity']} (alpha {ncfg['alpha']}, locality {ncfg['locality']}), "
          f"{ncfg['neighbours']} neighbours per song; share of the play-based part of a list: "
          f"{share.get('share')} (validation mAP@500 + recall@50 by share: "
          + ", ".join(f"{row['share']:g} {row['score']:.3f}" for row in share.get("table", [])) + ")")
    print(f"({time.perf_counter() - t:.1f} s)")

    t = _step("5. pmrs extract: log-mel spectrograms and MFCCs of every clip")
    report = extract(data, work, cfgmod.build(ExtractConfig, "extract", toml),
                     cfgmod.build(FeatureConfig, "features", toml), show_progress=False)
    c, tm = report["counts"], report["timing"]
    print(f"{c['extracted']} clips extracted, {c['already_stored']} already stored, {c['skipped']} "
          f"skipped; {tm['clips_per_second']} clips/s")
    print(f"({time.perf_counter() - t:.1f} s)")

    t = _step("6. pmrs train-cnn (audio -> WMF factors) and pmrs predict")
    cnn_cfg = cfgmod.build(CNNConfig, "cnn", toml)
    cnn_run = train_cnn_run(work, cnn_cfg, wmf_run=run.name, show_progress=False)
    h = read_json(cnn_run / "history.json")
    print(f"trained on {h['n_train_songs']} songs, best validation loss {h['best_val_loss']:.3f} "
          f"(mean predictor {h['val_loss_mean_predictor']:.3f}) at epoch {h['best_epoch']}")
    pred = load_predictions(predict_run(work, cnn_run.name, show_progress=False))
    print(f"predicted factors for {len(pred['song_ids'])} songs with audio")
    print(f"({time.perf_counter() - t:.1f} s)")

    t = _step("7. cold start: songs nobody has played, recommended from their audio")
    pred_ids = [s.decode() for s in pred["song_ids"]]
    warm = {s.decode() for s in song_ids}
    cold = np.array([sid not in warm for sid in pred_ids])
    print(f"{int(cold.sum())} songs have audio but no plays")
    with Catalog(work / CATALOG_FILE) as catalog:
        for row in shown_users:
            top, scores = top_k(model.user_factors[row], pred["factors"][cold], 5)
            ids = [pred_ids[i] for i in np.flatnonzero(cold)[top]]
            print(f"\nuser {user_ids[row].decode()}: top cold songs by x_u . l'_j")
            print(song_rows(catalog, ids, scores, "score"))
    print(f"({time.perf_counter() - t:.1f} s)")

    t = _step("8. pmrs evaluate --cold-start (songs held out of WMF training)")
    out = evaluate_cold_start(work, wmf_cfg, cnn_cfg, cfgmod.build(ColdStartConfig, "cold_start", toml),
                              show_progress=False)
    print((out / "report.md").read_text().split("## Genre head")[0].split("\n", 2)[2].strip())
    g = read_json(out / "metrics.json")["genre_head"]
    if g:
        print(f"genre head accuracy on held-out songs: {g['accuracy']:.3f} (confusion matrix: "
              f"{out / 'genre_confusion.png'})")
    print(f"({time.perf_counter() - t:.1f} s)")

    t = _step("9. indexer build: FAISS indexes in a versioned bundle")
    from .indexing import IndexerConfig, build_bundle
    from .recommender import Recommender

    build_bundle(work, cfgmod.build(IndexerConfig, "indexer", toml), show_progress=False)
    with Recommender.open(work) as rec:
        info = rec.info()
        for src in info.sources:
            print(f"source {src.name}: {src.vectors:,} vectors, spec {src.spec}, recall@10 "
                  f"{src.recall_at_10:.3f}, default share {src.default_share:.2f}"
                  f"{', covers songs without plays' if src.covers_cold else ''}")
        for dl in info.default_lists:
            who = f"{info.users:,} users" if dl.kind == "recommend" else f"{info.songs:,} songs"
            shares = ", ".join(f"{n} {v:.2f}" for n, v in dl.shares.items())
            print(f"default {dl.kind} lists for all {who} (k {dl.k}, shares {shares}), answered by lookup")
        print(f"bundle {info.version} is CURRENT ({time.perf_counter() - t:.1f} s)")

        t = _step("10. pmrs.Recommender: the Python API over the bundle")
        user = user_ids[shown_users[0]].decode()
        recs = rec.recommend(user, k=10, shares={"acoustic": 0.3})
        print(f"rec.recommend({user!r}, k=10, shares={{'acoustic': 0.3}}):")
        print(_scored_table(recs.songs))
        cold_song = pred_ids[int(np.flatnonzero(cold)[0])] if cold.any() else pred_ids[0]
        song = rec.song(cold_song)
        print(f"\nrec.similar_songs({cold_song!r}, k=8, mode='acoustic'): a song nobody has played yet, "
              f"'{song.title}' by {song.artist} ({song.genre}):")
        print(_scored_table(rec.similar_songs(cold_song, k=8, mode="acoustic").songs))
        by_genre = rec.recommend_by_genre(user, k=3)
        print(f"\nrec.recommend_by_genre({user!r}, k=3): the three genres this listener leans to most")
        for g in by_genre.genres[:3]:
            print(f"\n{g.genre}: confidence {g.confidence:.2f}")
            print(markdown_table(["title", "artist", "genre confidence", "song id"],
                                 [[s.title, s.artist, f"{c:.2f}", s.song_id]
                                  for s, c in zip(g.songs, g.genre_confidences)]))
    print(f"({time.perf_counter() - t:.1f} s)")

    t = _step("11. pmrs-server, the same calls over gRPC with pmrs-client, live writes, and a 10-second load test")
    new_clip = _unheard_clip(directory, cfgmod.build(SynthConfig, "synth", toml))
    serve_and_query(work, user, cold_song, new_clip, [pred_ids[i] for i in np.flatnonzero(cold)[:20]])
    print(f"({time.perf_counter() - t:.1f} s)")
    t = _step("12. pmrs evaluate --similarity: the seed paper's similarity experiments")
    out = evaluate_similarity(work, wmf_cfg, cnn_cfg, cfgmod.build(SimilarityConfig, "similarity", toml),
                              cfgmod.build(HoldoutConfig, "evaluate", toml),
                              cfgmod.build(MetadataConfig, "metadata", toml), show_progress=False)
    print("\n".join(summary_lines(read_json(out / "metrics.json"))))
    print(f"(report: {out}; {time.perf_counter() - t:.1f} s)")
    print(f"\ndemo finished in {time.perf_counter() - t_start:.0f} s; work directory: {work}")


def _scored_table(songs) -> str:
    return markdown_table(["title", "artist", "genre", "score", "sources", "song id"],
                          [[s.title, s.artist, s.genre, f"{s.score:#.4g}", "+".join(s.sources), s.song_id]
                           for s in songs])


def _tool(name: str) -> list[str]:
    """The command of one of PMRS's programs, run with this interpreter."""
    modules = {"pmrs-server": "pmrs_server.main", "pmrs-client": "pmrs_clients.cli", "pmrs-loadtest": "pmrs_clients.loadtest"}
    return [sys.executable, "-m", modules[name]]


def _unheard_clip(directory: Path, synth_cfg: SynthConfig) -> tuple[Path, str]:
    """A clip nobody has heard (a new song of the world's first genre, rendered now) as a WAV
    file, and its genre."""
    import soundfile as sf

    from .synth.audio import make_styles, render_clip

    style = make_styles(synth_cfg.genres, seed=synth_cfg.seed)[0]
    path = directory / "unheard.wav"
    sf.write(path, render_clip(style, song_seed=987_654_321, seconds=synth_cfg.clip_seconds), 22050)
    return path, style.name


def radio_from_cold(pc, client, user: str, cold_songs: list[str]) -> None:
    """A radio from a song nobody has played (the first of ``cold_songs`` the server agrees has no
    plays), for ``user``, with pmrs-client; then continued once with its token after a skip."""
    start = next((s for s in cold_songs if not pc.song(s).has_plays), None)
    if start is None:
        print("(no song without plays to start a radio from)\n")
        return
    song = pc.song(start)
    print(f"A radio from a song nobody has played, '{song.title}' by {song.artist} ({song.genre}): its audio and "
          f"metadata place it (sources {', '.join(song.sources)}); artists kept 2 songs apart:")
    client("radio", "--song", start, "--user", user, "-k", "8", "--explain")
    first = pc.radio(song_id=start, user_id=user, k=8)      # (the same answer: the token to go on with)
    skipped = first.songs[-1]
    print(f"The listener skips '{skipped.title}': the radio goes on from the token, steered away from it")
    client("radio", "--token", first.token, "--skip", skipped.song_id, "-k", "5")
    after = pc.radio(token=first.token, session=[(skipped.song_id, "skip")], k=5)
    heard = first.song_ids + after.song_ids
    print(f"{len(heard)} songs, none twice ({len(set(heard)) == len(heard)}), the skipped song not again "
          f"({skipped.song_id not in after.song_ids})\n")


def serve_and_query(work: Path, user: str, cold_song: str, new_clip: tuple[Path, str],
                    cold_songs: Sequence[str] = ()) -> None:
    """Start pmrs-server on a free port, call it with pmrs-client as a user would (reads, then
    writes: plays that change the list, a clip nobody has heard), load-test it with pmrs-loadtest,
    stop it: each program as its own process, as a user runs them."""
    import os
    import secrets
    import signal
    import subprocess

    from .remote import connect

    token = secrets.token_urlsafe(24)   # the server and the client get it from the environment
    env = {**os.environ, "PMRS_WRITE_TOKEN": token, "PMRS_TOKEN": token}
    proc = subprocess.Popen(_tool("pmrs-server") + ["--workdir", str(work), "--bind", "127.0.0.1:0", "-q"],
                            stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        if "listening on" not in line:
            raise RuntimeError(f"pmrs-server did not start: {line!r}")
        target = line.strip().rsplit(" ", 1)[-1]
        print(f"pmrs-server listening on {target}\n")
        for args in (["recommend", user, "-k", "10", "--acoustic-share", "0.3"],
                     ["similar", cold_song, "-k", "8", "--mode", "acoustic"]):
            print(f"$ pmrs-client --target {target} {' '.join(args)}", flush=True)
            subprocess.run(_tool("pmrs-client") + ["--target", target] + args, check=True)
            print(flush=True)

        def client(*args: str) -> None:
            shown = [a if len(a) <= 60 else f"{a[:24]}...{a[-8:]}" for a in args]   # (a radio token is long)
            print(f"$ pmrs-client --target {target} {' '.join(shown)}", flush=True)
            subprocess.run(_tool("pmrs-client") + ["--target", target, *args], check=True, env=env)
            print(flush=True)

        print("Live writes (the token comes from $PMRS_WRITE_TOKEN / $PMRS_TOKEN, never the command line):")
        with connect(target, token=token) as pc:
            before = pc.recommend(user, k=10).songs
            played = [s.song_id for s in before[:3]]
            client("play", user, *[f"{s}=5" for s in played])
            after = pc.recommend(user, k=10).songs
            client("recommend", user, "-k", "10")
            kept = len({s.song_id for s in after} & {s.song_id for s in before})
            print(f"after the plays: the 3 songs just played are gone ({not set(played) & {s.song_id for s in after}}), "
                  f"{10 - kept} of the 10 songs are new\n")
            print("Why each song is there, source by source:")
            client("recommend", user, "-k", "5", "--explain")
            disliked = after[0]
            client("feedback", user, disliked.song_id, "dislike")
            gone = disliked.song_id not in pc.recommend(user, k=10).song_ids
            print(f"after the dislike: {disliked.title!r} is out of the list ({gone}), and stays out after rebuilds\n")
            radio_from_cold(pc, client, user, [s for s in cold_songs if s not in played])
            clip, genre = new_clip
            client("add-song", "DEMO-UNHEARD-1", "--audio", str(clip), "--title", "A song nobody has heard",
                   "--artist", "Demo Artist", "--genre", genre)
            client("similar", "DEMO-UNHEARD-1", "-k", "8", "--mode", "acoustic")
            near = pc.similar_songs("DEMO-UNHEARD-1", k=8, mode="acoustic").songs
            same = sum(s.genre == genre for s in near)
            print(f"the new clip ({genre}): {same} of its 8 acoustic neighbours are {genre}\n")
        print(f"$ pmrs-loadtest --target {target} --ids-from {work} --concurrency 4 --duration 10", flush=True)
        subprocess.run(_tool("pmrs-loadtest") + ["--target", target, "--ids-from", str(work), "--concurrency",
                                                 "4", "--duration", "10", "--mix", "recommend=0.7,similar=0.3", "-q"],
                       check=True)
        print("\n$ pmrs-web --target " + target, flush=True)   # the web page beside the server
        from .web.showcase import serve_beside
        serve_beside(work, target, token, user, cold_song)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
            print(f"pmrs-server stopped (exit code {code})")
        except subprocess.TimeoutExpired:
            proc.kill()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pmrs.demo", description=__doc__)
    p.add_argument("--dir", default="demo-data", help="folder for the demo's data and work directory")
    p.add_argument("--config", default=str(DEMO_CONFIG))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname).1s %(name)s: %(message)s")
    run_demo(Path(args.dir), Path(args.config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
