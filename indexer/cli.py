"""``indexer`` command line: parses arguments, calls :func:`pmrs.indexing.build_bundle`, prints a
summary. Settings: ``[indexer]`` in the ``--config`` TOML file, overridden by flags."""

from __future__ import annotations

import argparse
import sys

from pmrs import config as cfgmod
from pmrs.entry import run_cli
from pmrs.indexing import IndexerConfig, build_bundle
from pmrs.metadata import MetadataConfig
from pmrs.serving import contract
from pmrs.serving.bundle import Bundle


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="indexer", description="PMRS serving bundles")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("build", help="latest WMF + CNN runs -> bundles/<version>, then CURRENT")
    p.add_argument("--workdir", help="work directory (default: $PMRS_HOME, else ./pmrs-data)")
    p.add_argument("--config", help="TOML config file ([indexer]); flags override it")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    p.add_argument("--wmf-run", help="WMF run (default: latest)")
    p.add_argument("--cnn-run", help="CNN run with predictions (default: latest; none: collaborative only)")
    p.add_argument("--collaborative-spec", help="FAISS index_factory string, e.g. IVF2048,Flat or HNSW32")
    p.add_argument("--acoustic-spec", help="FAISS index_factory string for the acoustic index")
    p.add_argument("--exact-threshold", type=int, help="exact (Flat) index up to this many vectors")
    p.add_argument("--target-recall", type=float, help="recall@10 the search parameter is raised to")
    p.add_argument("--keep", type=int, help="bundles kept after the build (default 3)")
    p.add_argument("--no-metadata", dest="metadata", action="store_const", const=False,
                   help="leave out the metadata source (song vectors from the catalog's metadata and "
                        "Last.fm tags; settings in [metadata])")
    p.add_argument("--metadata-share", dest="default_metadata_share", type=float,
                   help="the metadata source's share of a default list (default 0.1)")
    p.add_argument("--no-neighbours", dest="neighbours", action="store_const", const=False,
                   help="leave out the neighbours source (the sparse song similarities of the latest "
                        "`pmrs train-neighbours` run; added whenever the work directory has one)")
    p.add_argument("--neighbours-run", help="neighbourhood run of the neighbours source (default: latest)")
    p.add_argument("--neighbours-share", dest="default_neighbours_share", type=float,
                   help="the neighbours source's share of a default list (default: the share chosen "
                        "on validation by `pmrs train-neighbours`)")
    p.add_argument("--no-default-lists", dest="default_lists", action="store_const", const=False,
                   help="do not precompute the default Recommend and SimilarSongs lists (the server "
                        "then computes every answer)")
    return parser


def summary(bundle_dir) -> str:
    with Bundle.open(bundle_dir) as b:
        m = b.manifest
        c = m["counts"]
        lines = [f"bundle {m['version']} written to {bundle_dir} (now CURRENT)",
                 f"  {c['users']} users, {c['songs']} songs ({c['songs_with_plays']} with plays, "
                 f"{c['songs_with_audio']} with audio), {m['dimensions']['factors']} factors"]
        for name, src in m["sources"].items():
            ix = src["index"]
            if src.get("kind") == contract.SPARSE_NEIGHBOURS:
                lines.append(f"  source {name}: {ix['spec']} of {ix['vectors']} songs ({ix['stored']} similarities; "
                             f"exact sums of rows); {ix['build_seconds']:.1f} s")
                continue
            params = ", ".join(f"{k}={v}" for k, v in ix["search_params"].items()) or "no search parameter"
            transform = "" if ix["transform"] == "none" else f", {ix['transform']}"
            lines.append(f"  source {name}: {ix['spec']} over {ix['vectors']} vectors{transform}; {params}; "
                         f"recall@10 {ix['recall_at_10']:.3f}; {ix['build_seconds']:.1f} s")
        if contract.ACOUSTIC not in m["sources"]:
            lines.append("  acoustic: none (no CNN run)")
        ac = m["sources"].get(contract.ACOUSTIC, {}).get("settings") or {}
        cold = ac.get("cold_start") or {}
        if cold.get("weights"):
            lines.append(f"  acoustic: {cold['cold_songs']} cold songs combined with the catalog ("
                         + ", ".join(f"{p} {w:.3g}" for p, w in cold["weights"].items()) + ")")
        elif cold:
            lines.append(f"  acoustic: cold songs get the CNN's prediction alone ({cold['why']})")
        if ac.get("share_from") == "fixed":
            lines.append(f"  acoustic: default share {b.defaults.shares.get(contract.ACOUSTIC, 0):g}; "
                         + ac["share_why"])
        for part, v in (ac.get("undertrained") or {}).items():
            if v and v["undertrained"]:
                lines.append(f"  UNDERTRAINED acoustic {'genre head' if part == 'genre_head' else 'factor prediction'}"
                             f": {v['reason']}")
        meta = m["sources"].get(contract.METADATA, {}).get("settings")
        if meta:
            lines.append(f"  metadata: {meta['songs_with_tags']} songs with tags; features "
                         + ", ".join(f"{p} {n}" for p, n in meta["features"].items())
                         + f"; {meta['seconds']:.1f} s")
            if not meta["songs_with_tags"]:
                lines.append("  metadata: no Last.fm tags in the catalog (artist, release, genre, "
                             "decade only)")
        nb = m["sources"].get(contract.NEIGHBOURS, {}).get("settings")
        if nb:
            lines.append(f"  neighbours: {nb.get('similarity')} similarity, default share "
                         f"{b.defaults.shares.get(contract.NEIGHBOURS, 0):g} ({nb.get('share_from')}); "
                         "songs without plays have no neighbours")
        for kind, lists in sorted(b.lists.items()):
            who = "user (Recommend)" if kind == "recommend" else "song (SimilarSongs, mixed)"
            shares = ", ".join(f"{n} {v:g}" for n, v in lists.shares.items())
            lines.append(f"  default lists for every {who}: k={lists.k}, shares {shares}, "
                         f"diversity={lists.diversity}; {m['default_lists'][kind]['seconds']:.1f} s")
        lines.append(f"  built in {m['build_seconds']:.1f} s")
    return "\n".join(lines)


def cmd_build(args) -> int:
    toml = cfgmod.load_toml(args.config)
    cfg = cfgmod.build(IndexerConfig, "indexer", toml, vars(args))
    out = build_bundle(cfgmod.resolve_workdir(args.workdir), cfg, wmf_run=args.wmf_run,
                       cnn_run=args.cnn_run, show_progress=False if args.quiet else None,
                       metadata_cfg=cfgmod.build(MetadataConfig, "metadata", toml),
                       neighbours_run=args.neighbours_run)
    print(summary(out))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli("indexer", build_parser(), cmd_build, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
