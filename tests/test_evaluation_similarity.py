"""`pmrs evaluate --similarity`: the measures, the report on the tiny serving world (audio and
synthetic Last.fm JSON), and on a world written here without `pmrs synth` whose Last.fm files
(the JSON tree, or both SQLite files) carry its hidden styles."""

import json
import shutil

import numpy as np
import pytest

from pmrs.cli import main
from pmrs.evaluation import similarity as S

from test_ingest_lastfm import _similars_db, _tags_db, _track, _tree
from worlds import independent_world_truth, write_independent_world

FAST = ("[wmf]\nfactors = 8\niterations = 3\n[evaluate]\ntest_users = 0.3\n"
        "[similarity]\nmax_users = 40\nmax_queries = 80\nbootstrap = 200\npairs = 5000\n")


def test_top_neighbours_are_the_exact_ones():
    rng = np.random.default_rng(0)
    v = S.unit_rows(rng.standard_normal((50, 6)))
    q = np.array([0, 7, 49])
    sims, rows = S.top_neighbours(v, q, 5, chunk=2)
    full = v[q] @ v.T
    full[np.arange(3), q] = -np.inf
    assert (rows == np.argsort(-full, axis=1)[:, :5]).all()
    assert np.allclose(sims, np.sort(full, axis=1)[:, ::-1][:, :5])
    i, j = S.random_pairs(50, 2000, rng)
    assert (i != j).all() and i.min() >= 0 and max(i.max(), j.max()) <= 49


def test_neighbour_stats_and_thresholds_on_two_clusters():
    rng = np.random.default_rng(1)
    centres = np.eye(4)[:2]
    v = S.unit_rows(np.repeat(centres, 30, axis=0) + 0.05 * rng.standard_normal((60, 4)))
    v[5] = 0   # a song without a vector is left out
    cfg = S.SimilarityConfig(k=5, pairs=4000)
    thr = S.pair_thresholds(v[np.abs(v).sum(1) > 0], cfg, rng)
    assert thr["very_different"] < 0.2 < 0.9 < thr["very_similar"]
    st = S.neighbour_stats(v, thr, cfg, rng)
    assert st["songs"] == 59 and st["queries"] == 59
    assert st["top_mean"] > 0.95 and st["neighbours_very_similar"] > 0.5
    # the thresholds are the data's own 95th / 5th percentiles: about 5% of random pairs each
    assert abs(st["pairs_very_similar"] - 0.05) < 0.02 and abs(st["pairs_very_different"] - 0.05) < 0.02
    assert abs(st["pairs_mean"] - 0.5) < 0.1


def test_bootstrap_interval_holds_the_sum():
    rng = np.random.default_rng(2)
    values = rng.poisson(0.7, 300)
    lo, hi = S.bootstrap_sum(values, 500, 0.95, rng)
    assert lo <= values.sum() <= hi and hi - lo > 0
    assert S.bootstrap_sum(np.zeros(0), 10, 0.9, rng) == (0.0, 0.0)


def test_similarity_report_on_the_serving_world(serving_workdir, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(serving_workdir, work, symlinks=True)
    cfg = tmp_path / "s.toml"
    cfg.write_text(FAST + "[cnn]\nmax_epochs = 2\nwindows_per_song_per_epoch = 2\nchannels = [8, 16, 16, 16]\n"
                   "hidden = 32\nembedding_dim = 16\nthreads = 1\n")
    assert main(["evaluate", "--similarity", "--workdir", str(work), "--config", str(cfg), "--run", "s1", "-q"]) == 0
    out = work / "reports" / "s1"
    m = json.loads((out / "metrics.json").read_text())
    for name in ("scaling.png", "agreement.png", "sweep.png"):
        assert (out / name).stat().st_size > 0
    assert m["notes"] == [] and m["data"]["songs_with_tags"] > 0
    # scaling: every source at every size; the neighbours of a larger set are at least as close
    s = m["scaling"]
    assert set(s["songs"]) == {"metadata", "acoustic"} and set(s["users"]) == {"collaborative"}
    for rows in [*s["songs"].values(), *s["users"].values()]:
        assert [r["fraction"] for r in rows] == [0.1, 0.25, 0.5, 1.0]
    acoustic = s["songs"]["acoustic"]
    assert acoustic[-1]["top_mean"] >= acoustic[0]["top_mean"]  # the same vectors, more candidates
    assert [r["features"] for r in s["features"]] == ["artist", "+ genre", "+ tags", "+ year", "+ release"]
    # agreement: the diverse count lies in its interval; thresholds are stated
    a = m["agreement"]
    assert a["available"] and a["diverse_pairs_ci"][0] <= a["diverse_pairs"] <= a["diverse_pairs_ci"][1]
    assert sum(map(sum, a["histogram"]["counts"])) == a["pairs"]
    report = (out / "report.md").read_text()
    assert f"{a['acoustic_close_threshold']:.3f} (the 95th percentile of random pairs)" in report
    # ground truth: every mode, and metadata beats a random ranking
    g = m["ground_truth"]
    assert list(g["modes"]) == ["collaborative", "acoustic", "metadata", "mixed"]
    md = g["modes"]["metadata"]
    assert md["answered_share"] == 1.0 and md["precision@10"] > 2 * md["random_precision@10"]
    assert g["modes"]["collaborative"]["answered_share"] < 1.0   # cold songs have no plays
    # the three-source sweep
    rows = {(r["acoustic_share"], r["metadata_share"]): r for r in m["diversity"]["rows"]}
    assert len(rows) == 15 and rows[(0.0, 0.0)]["cold_share"] == 0.0
    assert rows[(0.0, 1.0)]["cold_share"] > 0 and rows[(1.0, 0.0)]["cold_share"] > 0
    assert not any(p.name.startswith(".diversity-") for p in work.iterdir())  # scratch removed


N_SONGS, N_ARTISTS = 240, 30


@pytest.fixture(scope="module")
def styled(tmp_path_factory):
    """An independent world (tests/worlds.py) with unique_tracks.txt (its artists) and Last.fm
    files in both forms, outside the data folder: tags name a hidden scene drawn per song (so
    neither the artist nor the plays know it) plus noise tags; similars are songs of the same
    scene."""
    root = tmp_path_factory.mktemp("styled")
    data = root / "data"
    write_independent_world(data, users=300, songs=N_SONGS, artists=N_ARTISTS, seed=5)
    artist, _ = independent_world_truth(N_SONGS, N_ARTISTS, seed=5)
    tid = [f"TR{i:016d}" for i in range(N_SONGS)]
    (data / "unique_tracks.txt").write_text("".join(
        f"{tid[i]}<SEP>SO{i:016d}<SEP>Artist {artist[i]}<SEP>Song {i}\n" for i in range(N_SONGS)))
    rng = np.random.default_rng(0)
    scene = rng.integers(0, 4, N_SONGS)
    tags, similars = {}, {}
    for i in range(N_SONGS):
        if rng.random() < 0.1:
            continue   # not in the Last.fm data
        t = {f"scene {scene[i]}": int(rng.integers(50, 101))} if rng.random() < 0.8 else {}
        t.update({w: int(rng.integers(0, 40)) for w in rng.choice(["seen live", "favorites", "cool"], 2)})
        same = np.flatnonzero(scene == scene[i])
        pick = rng.choice(same[same != i], size=15, replace=False)
        tags[i], similars[i] = t, [(tid[j], round(float(rng.uniform(0.1, 1)), 3)) for j in pick]
    lastfm = root / "lastfm"
    _tree(lastfm / "lastfm_train", {tid[i]: _track(tid[i], [(k, str(w)) for k, w in tags[i].items()], similars[i])
                                    for i in tags})
    names = sorted({k for t in tags.values() for k in t})
    songs_in = sorted(tags)
    _tags_db(lastfm / "lastfm_tags.db", [tid[i] for i in songs_in], names,
             [(r + 1, names.index(k) + 1, float(w)) for r, i in enumerate(songs_in) for k, w in tags[i].items()])
    _similars_db(lastfm / "lastfm_similars.db",
                 [(tid[i], ",".join(f"{j},{s}" for j, s in similars[i])) for i in songs_in])
    cfg = root / "s.toml"
    cfg.write_text(FAST)
    reports = {}
    for form, paths in (("json", ["lastfm_train"]), ("sqlite", ["lastfm_tags.db", "lastfm_similars.db"]),
                        ("none", [])):
        work = root / form
        argv = ["ingest", str(data), "--workdir", str(work), "-q"]
        for p in paths:
            argv += ["--lastfm", str(lastfm / p)]
        assert main(argv) == 0
        assert main(["evaluate", "--similarity", "--workdir", str(work), "--config", str(cfg), "--run", "r",
                     "-q"]) == 0
        reports[form] = (json.loads((work / "reports" / "r" / "metrics.json").read_text()),
                         (work / "reports" / "r" / "report.md").read_text())
    return reports


def test_both_lastfm_forms_give_the_same_metadata_results(styled):
    (j, _), (s, _) = styled["json"], styled["sqlite"]
    assert j["data"]["songs_with_tags"] == s["data"]["songs_with_tags"] > 0.6 * N_SONGS
    assert j["feature_importance"] == s["feature_importance"]
    assert j["ground_truth"]["modes"]["metadata"] == s["ground_truth"]["modes"]["metadata"]
    assert j["scaling"]["features"] == s["scaling"]["features"]


def test_metadata_finds_the_similars_and_tags_carry_them(styled):
    m, _ = styled["json"]
    md = m["ground_truth"]["modes"]["metadata"]
    assert md["precision@10"] > 2 * md["random_precision@10"]
    rows = {r["left_out"]: r for r in m["feature_importance"]["rows"]}
    assert set(rows) == {"(none)", "tags", "artist"}   # no release, genre or year in this catalog
    assert [r["features"] for r in m["scaling"]["features"]] == ["artist", "+ tags"]
    # the similars are songs of the same scene, which only the tags name
    assert rows["tags"]["similars_precision@10"] < rows["(none)"]["similars_precision@10"] - 0.05
    assert rows["tags"]["similars_precision@10"] < 1.5 * md["random_precision@10"]
    assert rows["tags"]["features_left_out"] >= 3 and not m["agreement"]["available"]


def test_without_lastfm_the_report_says_so(styled):
    m, report = styled["none"]
    assert m["data"]["songs_with_tags"] == 0 and S.NO_LASTFM_TAGS in m["notes"]
    assert m["ground_truth"] == {"available": False, "note": S.NO_LASTFM_SIMILARS}
    assert S.NO_LASTFM_TAGS in report and "Not measured: " + S.NO_LASTFM_SIMILARS in report
    assert m["feature_importance"]["similars"] is False
    assert all("similars_precision@10" not in r for r in m["feature_importance"]["rows"])
    assert m["diversity"]["rows"] and m["feature_importance"]["rows"][0]["holdout_recall@10"] > 0
