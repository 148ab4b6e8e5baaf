"""``pmrs`` command line: parses arguments, calls library functions, prints results.

Every command takes ``--workdir`` (default ``$PMRS_HOME``, else ``./pmrs-data``) and ``--config``
(a TOML file; flags override it).
"""

from __future__ import annotations

import argparse
import json
import sys

from . import config as cfgmod
from .entry import run_cli


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", help="work directory (default: $PMRS_HOME, else ./pmrs-data)")
    p.add_argument("--config", help="TOML config file; flags override it")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")


def _wmf_flags(p: argparse.ArgumentParser, seed_flag: str = "--seed") -> None:
    """WMF's settings as flags; ``seed_flag`` names its seed where another stage of the command
    has a seed too (``evaluate``: ``--wmf-seed`` beside ``--split-seed``)."""
    g = p.add_argument_group("WMF")
    g.add_argument("--factors", type=int)
    g.add_argument("--alpha", type=float, help="confidence scale in 1 + alpha*log(1 + r/eps)")
    g.add_argument("--eps", type=float, help="count scale in 1 + alpha*log(1 + r/eps)")
    g.add_argument("--regularization", type=float)
    g.add_argument("--iterations", type=int)
    g.add_argument(seed_flag, dest="wmf_seed", type=int, help="WMF's random seed")
    g.add_argument("--threads", type=int, help="ALS threads (default: every core)")
    g.add_argument("--exact", dest="use_cg", action="store_false", default=None,
                   help="exact Cholesky solver instead of conjugate gradient")
    g = p.add_argument_group("settings from the data ([select])")
    g.add_argument("--no-select", dest="select", action="store_false", default=None,
                   help="use the given or default settings as they are: no search on a validation split")
    g.add_argument("--select-budget", dest="budget", type=float,
                   help="search cost allowed, in plain 15-iteration fits of the whole matrix (default 1)")


def build_parser() -> argparse.ArgumentParser:
    from .synth.world import FORMATS as SYNTH_FORMATS

    parser = argparse.ArgumentParser(prog="pmrs", description="PMRS: hybrid music recommendation")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("synth", help="write a synthetic world in the Million Song Dataset formats")
    _common(p)
    p.add_argument("dir", help="output data folder")
    p.add_argument("--users", type=int)
    p.add_argument("--songs", type=int)
    p.add_argument("--genres", type=int)
    p.add_argument("--scenes", type=int, help="hidden (inaudible) taste communities")
    p.add_argument("--clip-seconds", type=float)
    p.add_argument("--cold-share", type=float, help="share of songs nobody has played")
    p.add_argument("--seed", type=int)
    p.add_argument("--no-audio", action="store_true", default=None)
    p.add_argument("--audio-workers", type=int)
    p.add_argument("--format", choices=SYNTH_FORMATS,
                   help="the plays as MSD triplets (default), or as listens with times: a service's event "
                        "table (events/), or one folder per person of Spotify, Last.fm or ListenBrainz exports")
    p.add_argument("--lastfm", choices=("json", "sqlite", "both", "none"),
                   help="Last.fm tags and similars as the JSON tree, the SQLite files, both, or none")
    g = p.add_argument_group("shape of the world")
    g.add_argument("--preset", help="named world whose settings sit under the config and flags: "
                   "default, harder (steep popularity, artist loyalty, fewer songs per user)")
    g.add_argument("--popularity-exponent", type=float, help="Zipf exponent of song popularity")
    g.add_argument("--taste-concentration", type=float, help="Dirichlet over genres (lower: fewer)")
    g.add_argument("--scene-concentration", type=float, help="Dirichlet over scenes (lower: fewer)")
    g.add_argument("--songs-per-user", type=float, help="mean songs drawn per user")
    g.add_argument("--min-songs-per-user", type=int, help="activity floor")
    g.add_argument("--artist-loyalty", type=float, help="share of draws from favourite artists")
    g.add_argument("--favourite-artists", type=int, help="artists each user is loyal to")

    p = sub.add_parser("ingest", help="triplets + metadata into the work directory")
    _common(p)
    p.add_argument("dir", nargs="?", help="data folder: the MSD files by their standard names, people's exports (one folder per person), events/")
    p.add_argument("--triplets", help="train_triplets.txt path (overrides DIR)")
    p.add_argument("--unique-tracks", help="unique_tracks.txt path")
    p.add_argument("--track-metadata", help="track_metadata.db path")
    p.add_argument("--genres", help="genre labels (track_id<TAB>genre[<TAB>minority genre]); default: the "
                   "data folder's genres.tsv, else msd_tagtraum_cd2c.cls, cd2, cd1")
    p.add_argument("--sid-mismatches", help="the MSD's sid_mismatches.txt: wrong song/track links to drop")
    p.add_argument("--library", metavar="DIR",
                   help="a music folder: its files' tags (ID3, Vorbis comments, FLAC, MP4) are catalog songs; "
                        "`pmrs extract` then reads the same folder")
    p.add_argument("--events", action="append", metavar="PATH",
                   help="a service's table of listening events (CSV/TSV, gzip, Parquet or JSON Lines; a file or a "
                        "folder of them; repeatable; default: DIR/events/); columns by name, or [ingest.events]")
    p.add_argument("--column", action="append", metavar="ROLE=NAME", dest="event_columns",
                   help="events: the column holding ROLE (user, song_id, artist, title, album, timestamp, count, "
                        "ms_played, seconds_played, skipped, recording_mbid, spotify_uri); repeatable; over "
                        "[ingest.events]")
    p.add_argument("--timezone", help="events: the zone of times written without one (default UTC)")
    p.add_argument("--exports", metavar="DIR",
                   help="people's listening exports, one folder per person (DIR/<person>/...: Spotify, Last.fm, "
                        "ListenBrainz); default: the person folders of the data folder itself")
    p.add_argument("--min-play-seconds", type=float,
                   help="a listen shorter than this is a skip, not a play (default 30)")
    p.add_argument("--lastfm", action="append", metavar="PATH",
                   help="Last.fm input: a JSON folder (lastfm_train/ ...), lastfm_tags.db or "
                        "lastfm_similars.db; repeat for several (replaces those found in DIR)")
    p.add_argument("--min-songs-per-user", type=int)
    p.add_argument("--min-users-per-song", type=int)
    p.add_argument("--max-bad-fraction", type=float,
                   help="fail when more than this share of lines is malformed (default 0.5)")
    p.add_argument("--no-live", dest="live", action="store_false",
                   help="leave the write log (live/writes.sqlite) out; by default its plays and songs "
                        "are taken in and the bundle built next records the last write it includes")

    p = sub.add_parser("train-wmf", help="weighted matrix factorization of the play counts")
    _common(p)
    _wmf_flags(p)
    g = p.add_argument_group("engine")
    g.add_argument("--engine", choices=cfgmod.WMF_ENGINES, default=cfgmod.WMF_ENGINES[0],
                   help="implicit in this process (default) or Apache Spark MLlib's ALS")
    g.add_argument("--spark-master", dest="master",
                   help="Spark master URL (default local[*]; [spark] in the config for more)")
    p.add_argument("--run", help="run name (default: a timestamp)")

    p = sub.add_parser("train-neighbours", help="item-to-item neighbourhood model of the play counts")
    _common(p)
    p.add_argument("--similarity", help="asymmetric-cosine, bm25 or ease")
    p.add_argument("--alpha", type=float, help="asymmetric cosine: exponent of the candidate's user count")
    p.add_argument("--ease-lambda", type=float, help="ease: the regularization lambda (default 500, Steck's on the MSD)")
    p.add_argument("--locality", type=float, help="similarities raised to this power")
    p.add_argument("--neighbours", type=int, help="neighbours kept per song")
    p.add_argument("--no-select", dest="select", action="store_false", default=None,
                   help="default settings as they are: no search on a validation split")
    p.add_argument("--run", help="run name (default: a timestamp)")

    p = sub.add_parser("evaluate", help="offline evaluation; writes reports/<run>/")
    _common(p)
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--holdout", action="store_true", help="hold-out recall/mAP vs popularity")
    mode.add_argument("--cold-start", action="store_true",
                      help="songs held out of WMF: CNN vs MFCC ridge vs random vs upper bound")
    mode.add_argument("--diversity", action="store_true",
                      help="accuracy against diversity as acoustic_share goes from 0 to 1")
    mode.add_argument("--similarity", action="store_true",
                      help="the paper's similarity experiments: scaling, acoustic vs metadata agreement, "
                           "Last.fm similars, metadata ablation, three-source diversity sweep")
    mode.add_argument("--protocol", choices=("liang", "msd-challenge"),
                      help="a published protocol, the published figures beside PMRS's: liang (Liang et al. 2018's "
                           "MSD split: Recall@20/50, NDCG@100) or msd-challenge (Kaggle 2012's files: mAP@500)")
    _wmf_flags(p, seed_flag="--wmf-seed")
    p.add_argument("--split-seed", type=int, help="seed of the test users and held-out songs drawn")
    p.add_argument("--split", choices=("random", "time"),
                   help="hold-out: random songs of each test user (default), or their latest songs (time: "
                        "needs plays with times; reported beside the random split)")
    p.add_argument("--cutoff", help="time split: an ISO date; songs first played from then on are held out")
    p.add_argument("--test-users", type=float, help="count (>= 1) or share (< 1) of eligible users")
    p.add_argument("--holdout-fraction", type=float, help="share of each test user's songs removed")
    p.add_argument("--held-out-share", type=float, help="cold start: share of songs held out")
    g = p.add_argument_group("published protocols (--protocol)")
    g.add_argument("--challenge-dir", help="msd-challenge: the folder of kaggle_visible_evaluation_triplets.txt, "
                                           "kaggle_users.txt, kaggle_songs.txt and the hidden halves when present")
    g.add_argument("--heldout-users", type=int, help="liang: validation and test users each (default 50,000, at "
                                                     "most a quarter of the users each)")
    g.add_argument("--min-song-users", type=int, help="liang: songs with fewer users are removed (default 200)")
    g.add_argument("--min-user-songs", type=int, help="liang: users with fewer songs are removed (default 20)")
    g.add_argument("--triplets", help="liang: the triplets file the work directory was ingested from (default: the "
                                      "one ingest recorded), whose line order decides the held-out songs, as in vae_cf")
    p.add_argument("--keep-bundle", action="store_true",
                   help="hold-out: keep the bundle the pmrs row was served from (reports/<run>/served)")
    p.add_argument("--run", help="report name (default: a timestamp)")

    p = sub.add_parser("tune", help="hyperparameter search on a validation split")
    _common(p)
    p.add_argument("--trials", type=int, help="random-search trials beyond the default config")
    p.add_argument("--iterations", type=int, help="ALS iterations per trial")
    p.add_argument("--seed", type=int)
    p.add_argument("--metric", help="metric to maximise, e.g. map@500 or recall@50")
    p.add_argument("--run", help="tuning run name")

    p = sub.add_parser("train-cnn", help="CNN from log-mel windows to WMF song factors")
    _common(p)
    p.add_argument("--wmf-run", help="WMF run whose song factors are the targets (default: latest)")
    p.add_argument("--max-epochs", type=int)
    p.add_argument("--window-frames", type=int, help="window length in frames (130 = about 3 s)")
    p.add_argument("--device", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--seed", type=int)
    p.add_argument("--run", help="run name (default: a timestamp)")

    p = sub.add_parser("predict", help="predicted factors + embeddings for every song with audio")
    _common(p)
    p.add_argument("--cnn-run", help="CNN run (default: latest)")

    p = sub.add_parser("extract", help="audio clips -> features.lmdb (log-mel, MFCC summary)")
    _common(p)
    p.add_argument("dir", nargs="?", help="audio folder, or a data folder holding audio/")
    p.add_argument("--live", action="store_true",
                   help="also extract the clips of songs added live (written to live/audio/ by `pmrs ingest`)")
    p.add_argument("--workers", type=int, help="decoding processes (1: in this process)")
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_cli("pmrs", build_parser(), lambda args: COMMANDS[args.command](args), argv)


def _toml(args) -> dict:
    return cfgmod.load_toml(args.config)


def cmd_synth(args) -> int:
    from .synth.generate import synthesize
    from .synth.world import SynthConfig, preset_values

    toml = _toml(args)
    if args.preset is not None:  # defaults < preset < config file < flags
        toml = {**toml, "synth": {**preset_values(args.preset), **toml.get("synth", {})}}
    cfg = cfgmod.build(SynthConfig, "synth", toml, vars(args))
    summary = synthesize(args.dir, cfg, show_progress=False if args.quiet else None)
    print(json.dumps(summary, indent=2))
    return 0


def cmd_ingest(args) -> int:
    from .ingest import IngestConfig, ingest
    from .report import format_ingest

    cfg = cfgmod.build(IngestConfig, "ingest", _toml(args), vars(args))
    from .ingest.events import EventsConfig

    toml = _toml(args)
    report = ingest(args.dir, cfgmod.resolve_workdir(args.workdir), cfg, triplets=args.triplets,
                    unique_tracks=args.unique_tracks, track_metadata=args.track_metadata,
                    genres=args.genres, sid_mismatches=args.sid_mismatches, lastfm=args.lastfm,
                    show_progress=False if args.quiet else None, live=args.live, events=args.events,
                    exports=args.exports, events_cfg=cfgmod.build(EventsConfig, "ingest.events", toml,
                                                                  _event_columns(args)),
                    library=args.library)
    print(format_ingest(report))
    return 0


def _wmf_flags_given(args) -> dict:
    """The flags as WMF settings (its seed flag is ``wmf_seed``)."""
    return {**vars(args), "seed": getattr(args, "wmf_seed", None)}


def _split_flags_given(args) -> dict:
    """The flags as evaluation-split settings (``--split-seed``)."""
    return {**vars(args), "seed": getattr(args, "split_seed", None)}


def _wmf_config(args, toml: dict):
    from .collaborative.wmf import WMFConfig

    return cfgmod.build(WMFConfig, "wmf", toml, _wmf_flags_given(args))


def _select_config(args, toml: dict):
    """``[select]`` with the flags: a disabled one when ``--no-select`` is given."""
    from .collaborative.selection import SelectConfig

    overrides = {"budget": getattr(args, "budget", None)}
    if getattr(args, "select", None) is False:
        overrides["enabled"] = False
    return cfgmod.build(SelectConfig, "select", toml, overrides)


def _spark_config(args, toml: dict):
    """``[spark]`` with ``--spark-master``; checked whatever the engine, so a typo is never silent."""
    from .collaborative.spark import SparkConfig

    return cfgmod.build(SparkConfig, "spark", toml, {"master": getattr(args, "master", None)})


def cmd_train_wmf(args) -> int:
    from .collaborative.training import train_wmf_run
    from .collaborative.wmf import WMFConfig

    toml = _toml(args)
    workdir = cfgmod.resolve_workdir(args.workdir)
    run_dir = train_wmf_run(workdir, _wmf_config(args, toml), run=args.run,
                            show_progress=False if args.quiet else None,
                            select=_select_config(args, toml),
                            fixed=cfgmod.given(WMFConfig, "wmf", toml, _wmf_flags_given(args)),
                            engine=args.engine, spark_cfg=_spark_config(args, toml))
    print(f"WMF run written to {run_dir}")
    return 0


def cmd_train_neighbours(args) -> int:
    from .collaborative.neighbours import NeighboursConfig
    from .collaborative.training import train_neighbours_run

    toml = _toml(args)
    given = cfgmod.given(NeighboursConfig, "neighbours", toml, vars(args))
    cfg = cfgmod.build(NeighboursConfig, "neighbours", toml, vars(args)) if given else None
    from .metadata import MetadataConfig

    run_dir = train_neighbours_run(cfgmod.resolve_workdir(args.workdir), cfg, run=args.run,
                                   show_progress=False if args.quiet else None,
                                   select=_select_config(args, toml),
                                   metadata_cfg=cfgmod.build(MetadataConfig, "metadata", toml))
    print(f"neighbourhood run written to {run_dir}")
    return 0


def _cnn_config(args, toml: dict):
    from .acoustic.model import CNNConfig

    return cfgmod.build(CNNConfig, "cnn", toml, vars(args))


def cmd_train_cnn(args) -> int:
    from .acoustic.stages import train_cnn_run

    out = train_cnn_run(cfgmod.resolve_workdir(args.workdir), _cnn_config(args, _toml(args)),
                        wmf_run=args.wmf_run, run=args.run, show_progress=False if args.quiet else None)
    from .artifacts import read_json
    h = read_json(out / "history.json")
    if h["best_val_loss"] is None:
        print(f"CNN trained on {h['n_train_songs']} songs, no validation; {h['seconds']:.0f} s on {h['device']}")
    else:
        print(f"CNN trained on {h['n_train_songs']} songs ({h['n_val_songs']} for validation): best "
              f"validation loss {h['best_val_loss']:.4f} at epoch {h['best_epoch']} (mean predictor "
              f"{h['val_loss_mean_predictor']:.4f}); {h['seconds']:.0f} s on {h['device']}")
    for part, v in (h.get("undertrained") or {}).items():
        if v and v["undertrained"]:
            print(f"UNDERTRAINED {'genre head' if part == 'genre_head' else 'factor prediction'}: {v['reason']}")
    cold = h.get("cold_start") or {}
    if cold.get("weights"):
        print("cold songs' vectors: " + ", ".join(f"{p} {w:.3g}" for p, w in cold["weights"].items())
              + f" (chosen on {cold['songs']} validation songs)")
    elif cold:
        print(f"cold songs' vectors: the CNN's prediction alone ({cold['why']})")
    print(f"CNN run written to {out}")
    return 0


def cmd_predict(args) -> int:
    from .acoustic.stages import predict_run

    out = predict_run(cfgmod.resolve_workdir(args.workdir), args.cnn_run,
                      show_progress=False if args.quiet else None)
    print(f"predictions written to {out}")
    return 0


def cmd_evaluate(args) -> int:
    from .evaluation.holdout import HoldoutConfig, evaluate_holdout

    toml = _toml(args)
    workdir = cfgmod.resolve_workdir(args.workdir)
    if args.diversity:
        from .evaluation.diversity import DiversityConfig, evaluate_diversity

        out = evaluate_diversity(workdir, _wmf_config(args, toml), _cnn_config(argparse.Namespace(), toml),
                                 cfgmod.build(DiversityConfig, "diversity", toml),
                                 cfgmod.build(HoldoutConfig, "evaluate", toml, _split_flags_given(args)), run=args.run,
                                 show_progress=False if args.quiet else None)
        print((out / "report.md").read_text())
        print(f"report written to {out}")
        return 0
    if args.similarity:
        from .evaluation.similarity import SimilarityConfig, evaluate_similarity
        from .metadata import MetadataConfig

        out = evaluate_similarity(workdir, _wmf_config(args, toml), _cnn_config(argparse.Namespace(), toml),
                                  cfgmod.build(SimilarityConfig, "similarity", toml),
                                  cfgmod.build(HoldoutConfig, "evaluate", toml, _split_flags_given(args)),
                                  cfgmod.build(MetadataConfig, "metadata", toml), run=args.run,
                                  show_progress=False if args.quiet else None)
        print((out / "report.md").read_text())
        print(f"report written to {out}")
        return 0
    if args.cold_start:
        from .evaluation.cold_start import ColdStartConfig, evaluate_cold_start

        ccfg = cfgmod.build(ColdStartConfig, "cold_start", toml, _split_flags_given(args))
        out = evaluate_cold_start(workdir, _wmf_config(args, toml), _cnn_config(argparse.Namespace(), toml),
                                  ccfg, run=args.run, show_progress=False if args.quiet else None)
        print((out / "report.md").read_text())
        print(f"report written to {out}")
        return 0
    from .collaborative.neighbours import NeighboursConfig
    from .collaborative.wmf import WMFConfig
    from .indexing.config import IndexerConfig
    from .metadata import MetadataConfig

    ncfg = cfgmod.build(NeighboursConfig, "neighbours", toml) if "neighbours" in toml else None
    common = dict(show_progress=False if args.quiet else None, select=_select_config(args, toml),
                  fixed=cfgmod.given(WMFConfig, "wmf", toml, _wmf_flags_given(args)), neighbours_cfg=ncfg,
                  indexer_cfg=cfgmod.build(IndexerConfig, "indexer", toml),
                  metadata_cfg=cfgmod.build(MetadataConfig, "metadata", toml))
    if args.protocol == "liang":
        from .evaluation.liang import LiangConfig, evaluate_liang

        out = evaluate_liang(workdir, _wmf_config(args, toml), cfgmod.build(LiangConfig, "liang", toml, vars(args)),
                             run=args.run, triplets=args.triplets, **common)
        print((out / "report.md").read_text())
        print(f"report written to {out}")
        return 0
    if args.protocol == "msd-challenge":
        from .errors import InvalidArgument
        from .evaluation.msd_challenge import evaluate_msd_challenge

        if not args.challenge_dir:
            raise InvalidArgument("--protocol msd-challenge needs --challenge-dir (the folder of the challenge's files)")
        out = evaluate_msd_challenge(workdir, args.challenge_dir, _wmf_config(args, toml), run=args.run, **common)
        print((out / "report.md").read_text())
        print(f"report written to {out}")
        return 0
    ecfg = cfgmod.build(HoldoutConfig, "evaluate", toml, _split_flags_given(args))
    out = evaluate_holdout(workdir, _wmf_config(args, toml), ecfg, run=args.run, keep_bundle=args.keep_bundle,
                           **common)
    print((out / "report.md").read_text())
    print(f"report written to {out}")
    return 0


def cmd_tune(args) -> int:
    from .collaborative.selection import TuneConfig, tune

    toml = _toml(args)
    workdir = cfgmod.resolve_workdir(args.workdir)
    tcfg = cfgmod.build(TuneConfig, "tune", toml, vars(args))
    out = tune(workdir, tcfg, base=_wmf_config(argparse.Namespace(), toml), run=args.run,
               show_progress=False if args.quiet else None)
    print((out / "tune.md").read_text())
    print(f"best config written to {out / 'best.toml'}")
    return 0


def cmd_extract(args) -> int:
    from .audio.extract import ExtractConfig, extract
    from .audio.features import FeatureConfig

    toml = _toml(args)
    cfg = cfgmod.build(ExtractConfig, "extract", toml, vars(args))
    fcfg = cfgmod.build(FeatureConfig, "features", toml)
    workdir = cfgmod.resolve_workdir(args.workdir)
    dirs = [args.dir] if args.dir else []
    if not dirs and not args.live:   # the music folder `pmrs ingest --library` read, if any
        from .interactions import INGEST_REPORT_FILE, INTERACTIONS_DIR

        report = workdir / INTERACTIONS_DIR / INGEST_REPORT_FILE
        folder = (json.loads(report.read_text()).get("library") or {}).get("folder") if report.is_file() else None
        if folder:
            dirs.append(folder)
    if args.live:
        from .live.log import LIVE_DIR
        from .live.rebuild import LIVE_AUDIO_DIR
        live_audio = workdir / LIVE_DIR / LIVE_AUDIO_DIR
        if live_audio.is_dir():
            dirs.append(live_audio)
        else:
            print(f"no clips of songs added live in {live_audio} (`pmrs ingest` writes them there)")
    if not dirs:
        raise ValueError("give an audio folder, or --live for the clips of songs added live (a music folder "
                         "`pmrs ingest --library` read is the default)")
    for d in dirs:
        _extract_one_dir(extract, d, workdir, cfg, fcfg, args.quiet)
    return 0


def _event_columns(args) -> dict:
    """``--column ROLE=NAME`` flags (and ``--timezone``) as ``EventsConfig`` overrides."""
    from .ingest.events import EventsConfig

    roles = {f for f in EventsConfig.__dataclass_fields__ if f not in
             ("timezone", "time_unit", "header", "delimiter", "format", "columns", "max_bad_fraction")}
    out: dict = {"timezone": args.timezone}
    for item in args.event_columns or ():
        role, sep, name = item.partition("=")
        if not sep or role.strip() not in roles or not name.strip():
            raise ValueError(f"--column takes ROLE=NAME with ROLE one of {', '.join(sorted(roles))}, got {item!r}")
        out[role.strip()] = (name.strip(),)
    return out


def _extract_one_dir(extract, audio_dir, workdir, cfg, fcfg, quiet) -> None:
    report = extract(audio_dir, workdir, cfg, fcfg, show_progress=False if quiet else None)
    c, t = report["counts"], report["timing"]
    print(f"found {c['found']} clips: {c['extracted']} extracted, {c['already_stored']} already "
          f"stored, {c['skipped']} skipped; {c['stored_total']} songs in {report['store']}")
    for reason, n in c["skipped_by_reason"].items():
        print(f"  skipped {reason}: {n}")
    if c["partial"]:
        print(f"  truncated files extracted from what decodes: {c['partial']}")
    standing = report["folders"][report["audio_dir"]]["counts"]
    if c["already_stored"]:
        print(f"the folder so far: {standing['extracted']} extracted ({standing['partial']} truncated), "
              f"{standing['skipped']} skipped")
    print(f"{t['clips_per_second']} clips/s, {t['realtime_factor']}x real time "
          f"({t['total_seconds']} s, {t['workers']} workers)")
    print(f"report written to {workdir / 'features_report.json'}")


COMMANDS = {"synth": cmd_synth, "ingest": cmd_ingest, "train-wmf": cmd_train_wmf,
            "train-neighbours": cmd_train_neighbours,
            "evaluate": cmd_evaluate, "tune": cmd_tune, "extract": cmd_extract,
            "train-cnn": cmd_train_cnn, "predict": cmd_predict}

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
