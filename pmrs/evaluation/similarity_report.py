"""The report of ``pmrs evaluate --similarity`` (:mod:`pmrs.evaluation.similarity`): report.md,
the PNG plots, and the short summary the demo prints."""

from __future__ import annotations

from pathlib import Path

from ..report import markdown_table

STAT_COLUMNS = ("top_mean", "top_p10", "top_p50", "top_p90", "neighbours_very_similar", "pairs_mean",
                "pairs_very_similar", "pairs_very_different")


def _stat_rows(rows: list[dict], lead: list[str]) -> list[list]:
    return [[r.get(c, "") for c in lead] + [r.get(c, "") for c in STAT_COLUMNS] for r in rows]


def _thresholds(m: dict) -> str:
    cfg = m["config"]["similarity"]
    parts = [f"{name} {t['very_similar']:.3f} / {t['very_different']:.3f}"
             for name, t in m["scaling"]["thresholds"].items()]
    return (f"Thresholds (\"very similar\" / \"very different\": the {cfg['high_percentile']:g}th / "
            f"{cfg['low_percentile']:g}th percentile of {cfg['pairs']:,} random pairs' cosine in the whole "
            f"data, the full feature set for metadata; fixed across sizes): " + "; ".join(parts) + ".")


def render_report(m: dict) -> str:
    k, d, cfg = m["k"], m["data"], m["config"]["similarity"]
    out = ["# Similarity experiments", "",
           f"{d['songs']:,} catalog songs ({d['songs_with_tags']:,} with Last.fm tags, "
           f"{d['songs_with_similars']:,} with Last.fm similars, {d['songs_with_audio']:,} with audio), "
           f"{d['users']:,} users ({d['test_users']:,} test users of the hold-out split). The bundle "
           f"(trained on the split's training plays) has the sources {', '.join(d['sources'])}. "
           "Similarities are cosines (acoustic: of the CNN-predicted factors); see "
           "pmrs/evaluation/similarity.py for the definitions.", ""]
    out += [f"**Note:** {n}." for n in m["notes"]] + ([""] if m["notes"] else [])
    s = m["scaling"]
    lead = ["fraction", "songs"]
    out += ["## 1. Scaling", "", _thresholds(m), "",
            f"Top-{k} neighbours of up to {cfg['query_songs']:,} songs per row; pairs: {cfg['pairs']:,} random pairs.", ""]
    for name, rows in s["songs"].items():
        out += [f"### {name}: as the songs grow", "", markdown_table(lead + list(STAT_COLUMNS), _stat_rows(rows, lead)), ""]
    for name, rows in s["users"].items():
        out += [f"### {name}: as the users grow (WMF refitted on each subset)", "",
                markdown_table(["fraction", "users", "songs"] + list(STAT_COLUMNS),
                               _stat_rows(rows, ["fraction", "users", "songs"])), ""]
    out += ["### metadata: as the features grow", "",
            markdown_table(["features"] + list(STAT_COLUMNS), _stat_rows(s["features"], ["features"])), "",
            "![scaling](scaling.png)", ""]
    a = m["agreement"]
    out += ["## 2. Acoustic against metadata similarity", ""]
    if not a["available"]:
        out += [f"Not measured: {a['note']}.", ""]
    else:
        conf = int(round(cfg["confidence"] * 100))
        out += [f"{a['songs']:,} songs with both vectors; {a['pairs']:,} random pairs: Pearson "
                f"{a['pearson_random_pairs']:.3f}, Spearman {a['spearman_random_pairs']:.3f}; over the "
                f"{a['neighbour_pairs']:,} acoustic top-{k} neighbour pairs of {a['queries']:,} songs: Pearson "
                f"{a['pearson_neighbour_pairs']:.3f}.", "",
                f"Diverse candidates: acoustic neighbours with acoustic cosine >= {a['acoustic_close_threshold']:.3f} "
                f"(the {cfg['high_percentile']:g}th percentile of random pairs) and metadata cosine <= "
                f"{a['metadata_far_threshold']:.3f} (the {cfg['far_percentile']:g}th percentile): "
                f"**{a['diverse_pairs']:,}** neighbour pairs ({conf}% bootstrap CI {a['diverse_pairs_ci'][0]:,.0f}-"
                f"{a['diverse_pairs_ci'][1]:,.0f}, {cfg['bootstrap']:,} resamples of the query songs), "
                f"{a['diverse_share_of_close']:.1%} of the {a['acoustically_close_neighbour_pairs']:,} acoustically "
                f"close ones; {a['diverse_unique_pairs']:,} distinct pairs; {a['songs_with_a_diverse_neighbour']:,} "
                f"songs have one (CI {a['songs_with_a_diverse_neighbour_ci'][0]:,.0f}-"
                f"{a['songs_with_a_diverse_neighbour_ci'][1]:,.0f}); {a['diverse_other_genre_share']:.1%} of the "
                f"distinct pairs cross genres.", ""]
        out += ["The count under other \"far\" thresholds (percentiles of random pairs' metadata cosine; the "
                f"median metadata cosine of the acoustic neighbour pairs is {a['metadata_neighbour_pairs_median']:.3f}):", "",
                markdown_table(["percentile", "metadata cosine <=", "diverse pairs"],
                               [[f"{r['percentile']:g}", r["metadata_far_threshold"], r["diverse_pairs"]]
                                for r in a["diverse_pairs_by_far_percentile"]]), ""]
        if a["examples"]:
            out += [markdown_table(["song", "neighbour", "acoustic", "metadata"],
                                   [[_song(e["song"]), _song(e["neighbour"]), e["acoustic"], e["metadata"]]
                                    for e in a["examples"]]), ""]
        out += ["![agreement](agreement.png)", ""]
    g = m["ground_truth"]
    out += ["## 3. SimilarSongs against the Last.fm similars", ""]
    if not g["available"]:
        out += [f"Not measured: {g['note']}.", ""]
    else:
        cols = [f"precision@{k}", f"recall@{k}", f"random_precision@{k}", f"random_recall@{k}", "lift", "answered_share"]
        out += [f"{g['queries']:,} songs queried (of {g['songs_with_similars']:,} with similars in the bundle; "
                f"{g['mean_similars']:.1f} similars each on average). Random: a uniformly random list's expected "
                "value on the same queries; lift: precision over random; answered: songs that have the mode's vector.",
                "", markdown_table(["mode"] + cols, [[mode] + [r[c] for c in cols] for mode, r in g["modes"].items()]), ""]
    f = m["feature_importance"]
    out += ["## 4. Which metadata features matter (ablation)", "",
            f"Each part left out in turn (weight 0); hold-out recall@{k} of metadata-only recommendations for "
            f"{f['users']:,} test users" + (f", precision@{k} against the similars of {f['similars_queries']:,} songs."
                                            if f["similars"] else f"; {f['note']}."), ""]
    cols = [c for c in f["rows"][0] if c not in ("source", "left_out")] if f["rows"] else []
    out += [markdown_table(["left out"] + cols, [[r["left_out"]] + [r[c] for c in cols] for r in f["rows"]]), ""]
    v = m["diversity"]
    cols = ["recall", "genres_per_list", "intra_list_distance", "long_tail_share", "cold_share", "coverage", "novelty"]
    out += ["## 5. Three sources: accuracy against diversity", "",
            f"{v['users']:,} test users, lists of {k}; recall of held-out songs; intra-list distance: mean pairwise "
            "1 - cosine of the acoustic embeddings; long tail: outside the songs holding 80% of training plays; "
            "cold: no training plays.", "",
            markdown_table(["collaborative", "acoustic", "metadata"] + [c if c != "recall" else f"recall@{k}" for c in cols],
                           [[r["collaborative_share"], r["acoustic_share"], r["metadata_share"]] + [r.get(c, "n/a") for c in cols]
                            for r in v["rows"]]), "", "![sweep](sweep.png)", ""]
    return "\n".join(out)


def _song(s: dict) -> str:
    return f"{s['title']} - {s['artist']} ({s['genre'] or '?'})"


def summary_lines(m: dict) -> list[str]:
    """A few lines per experiment with its headline figures (the demo prints these)."""
    k = m["k"]
    lines = [f"notes: {'; '.join(m['notes'])}"] if m["notes"] else []
    s = m["scaling"]
    for name, rows in s["songs"].items():
        lines.append(f"1. scaling, {name}: mean top-{k} cosine " + ", ".join(
            f"{r['top_mean']:.3f} at {r['fraction']:.0%}" for r in rows if "top_mean" in r) + " of the songs")
    for name, rows in s["users"].items():
        lines.append(f"1. scaling, {name}: mean top-{k} cosine " + ", ".join(
            f"{r['top_mean']:.3f} at {r['users']:,} users" for r in rows if "top_mean" in r))
    lines.append(f"1. scaling, metadata features: share of top-{k} neighbours 'very similar' " + ", ".join(
        f"{r['features']} {r['neighbours_very_similar']:.2f}" for r in s["features"] if "top_mean" in r))
    a = m["agreement"]
    if a["available"]:
        lines.append(f"2. agreement: acoustic vs metadata cosine, Pearson {a['pearson_random_pairs']:.3f} (random "
                     f"pairs), {a['pearson_neighbour_pairs']:.3f} (acoustic neighbours)")
        lines.append(f"2. diverse candidates (acoustic >= {a['acoustic_close_threshold']:.3f}, metadata <= "
                     f"{a['metadata_far_threshold']:.3f}): {a['diverse_pairs']:,} neighbour pairs, CI "
                     f"{a['diverse_pairs_ci'][0]:,.0f}-{a['diverse_pairs_ci'][1]:,.0f}; {a['songs_with_a_diverse_neighbour']:,} "
                     f"songs of {a['queries']:,}; at the 75th / 90th percentile: " + " / ".join(
                         f"{r['diverse_pairs']:,}" for r in a["diverse_pairs_by_far_percentile"] if r["percentile"] in (75, 90))
                     + " pairs")
    else:
        lines.append(f"2. agreement: not measured ({a['note']})")
    g = m["ground_truth"]
    if g["available"]:
        lines.append(f"3. against Last.fm similars ({g['queries']:,} songs), precision@{k}: " + ", ".join(
            f"{mode} {r[f'precision@{k}']:.3f}" for mode, r in g["modes"].items())
            + f" (random {next(iter(g['modes'].values()))[f'random_precision@{k}']:.3f})")
    else:
        lines.append(f"3. ground truth: {g['note']}")
    f = m["feature_importance"]
    lines.append(f"4. ablation, hold-out recall@{k} of metadata-only lists: " + ", ".join(
        f"{'all' if r['left_out'] == '(none)' else 'no ' + r['left_out']} {r[f'holdout_recall@{k}']:.3f}"
        for r in f["rows"]))
    if f["similars"]:
        lines.append(f"4. ablation, precision@{k} against the similars: " + ", ".join(
            f"{'all' if r['left_out'] == '(none)' else 'no ' + r['left_out']} {r[f'similars_precision@{k}']:.3f}"
            for r in f["rows"]))
    rows = m["diversity"]["rows"]
    if len(rows) > 6:   # the corners (one source alone) and the most diverse mixes
        corners = [r for r in rows if max(r["collaborative_share"], r["acoustic_share"], r["metadata_share"]) == 1]
        rows = list({id(r): r for r in corners + [max(rows, key=lambda r: r["genres_per_list"]),
                                                  max(rows, key=lambda r: r["cold_share"])]}.values())
    for r in rows:
        ild = f"{r['intra_list_distance']:.3f}" if "intra_list_distance" in r else "n/a (no audio)"
        lines.append(f"5. shares c/a/m {r['collaborative_share']:.2f}/{r['acoustic_share']:.2f}/{r['metadata_share']:.2f}: "
                     f"recall@{k} {r['recall']:.3f}, genres/list {r['genres_per_list']:.2f}, intra-list distance "
                     f"{ild}, long tail {r['long_tail_share']:.2f}, cold {r['cold_share']:.2f}")
    return lines


def plot_all(m: dict, directory: Path) -> None:
    """scaling.png, agreement.png (when measured) and sweep.png into ``directory``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = m["k"]
    s = m["scaling"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), dpi=110)
    for ax, what in zip(axes, ("songs", "users")):
        for name, rows in s[what].items():
            rows = [r for r in rows if "top_mean" in r]
            ax.plot([r[what] for r in rows], [r["top_mean"] for r in rows], marker="o", label=name)
        ax.set_xscale("log")
        ax.set_xlabel(what)
        ax.set_title(f"mean top-{k} cosine as {what} grow")
    feats = [r for r in s["features"] if "top_mean" in r]
    x = range(len(feats))
    axes[2].plot(x, [r["top_mean"] for r in feats], marker="o", label=f"mean top-{k} cosine")
    axes[2].plot(x, [r["neighbours_very_similar"] for r in feats], marker="^", label="neighbours very similar")
    axes[2].set_xticks(list(x), [r["features"] for r in feats], fontsize=8)
    axes[2].set_title("metadata as features grow")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    _save(fig, directory / "scaling.png", plt)
    a = m["agreement"]
    if a["available"]:
        import numpy as np

        h = a["histogram"]
        fig, ax = plt.subplots(figsize=(5.2, 4.4), dpi=110)
        ae, me = h["acoustic_edges"], h["metadata_edges"]
        im = ax.imshow(np.log1p(np.asarray(h["counts"]).T), origin="lower", aspect="auto",
                       extent=(ae[0], ae[-1], me[0], me[-1]), cmap="viridis")
        ax.axvline(a["acoustic_close_threshold"], color="w", ls="--", lw=1)
        ax.axhline(a["metadata_far_threshold"], color="w", ls="--", lw=1)
        ax.set_xlabel("acoustic cosine")
        ax.set_ylabel("metadata cosine")
        ax.set_title(f"random pairs (Pearson {a['pearson_random_pairs']:.2f})")
        fig.colorbar(im, ax=ax, label="log(1 + pairs)")
        _save(fig, directory / "agreement.png", plt)
    rows = m["diversity"]["rows"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), dpi=110)
    for ax, col in zip(axes, ("genres_per_list", "cold_share")):
        sc = ax.scatter([r[col] for r in rows], [r["recall"] for r in rows], c=[r["metadata_share"] for r in rows],
                        s=[20 + 80 * r["acoustic_share"] for r in rows], cmap="plasma")
        ax.set_xlabel(col.replace("_", " "))
        ax.set_ylabel(f"recall@{k}")
        ax.grid(alpha=0.3)
    fig.colorbar(sc, ax=axes[1], label="metadata share (size: acoustic share)")
    axes[0].set_title("three-source sweep")
    _save(fig, directory / "sweep.png", plt)


def _save(fig, path: Path, plt) -> None:
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
