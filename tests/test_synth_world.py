import json
import sqlite3

import numpy as np
import pytest

from pmrs.synth.generate import synthesize
from pmrs.synth.world import SynthConfig, iter_plays, make_catalog, make_users


def plays(cfg):
    rng = np.random.default_rng(cfg.seed)
    cat = make_catalog(cfg, [f"g{i}" for i in range(cfg.genres)], rng)
    users = make_users(cfg, rng)
    blocks = list(iter_plays(cfg, cat, users, np.random.default_rng(1), block_users=97))
    u, s, c = (np.concatenate([b[i] for b in blocks]) for i in range(3))
    return cat, users, u, s, c


def test_plays_follow_taste_popularity_and_spare_cold_songs():
    cfg = SynthConfig(users=800, songs=600, genres=6, cold_share=0.2)
    cat, users, u, s, c = plays(cfg)
    assert not cat.cold[s].any()                              # cold songs: nobody played them
    assert len(np.unique(u.astype(np.int64) * cfg.songs + s)) == len(u)  # one line per pair
    assert (c >= 1).all()
    per_user = np.bincount(u, minlength=cfg.users)
    assert per_user.min() >= 5
    # taste: users play their favourite genres far more than a uniform share
    assert users.taste[u, cat.genre[s]].mean() > 2.0 / cfg.genres
    # long tail: the top 10% of songs take over twice their uniform share, the head dwarfs the median
    song_plays = np.bincount(s, minlength=cfg.songs)[~cat.cold]
    top = np.sort(song_plays)[::-1]
    assert top[: len(top) // 10].sum() > 0.2 * top.sum()
    assert top[0] > 3 * np.median(top)


def test_world_is_deterministic_by_seed():
    cfg = SynthConfig(users=200, songs=150)
    a, b = plays(cfg)[2:], plays(cfg)[2:]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    other = plays(SynthConfig(users=200, songs=150, seed=1))[2:]
    assert not np.array_equal(a[1], other[1])


def test_synth_writes_the_real_formats(tmp_path):
    cfg = SynthConfig(users=60, songs=40, genres=3, clip_seconds=1.0, cold_share=0.25, audio_workers=1)
    summary = synthesize(tmp_path, cfg)
    lines = (tmp_path / "train_triplets.txt").read_text().splitlines()
    assert len(lines) == summary["triplets"] > 0
    user, song, count = lines[0].split("\t")
    assert len(user) == 40 and int(user, 16) >= 0 and song.startswith("SO") and len(song) == 18
    assert int(count) >= 1
    tracks = (tmp_path / "unique_tracks.txt").read_text().splitlines()
    assert len(tracks) == 40 and all(len(t.split("<SEP>")) == 4 for t in tracks)
    con = sqlite3.connect(tmp_path / "track_metadata.db")
    cols = [r[1] for r in con.execute("PRAGMA table_info(songs)")]
    assert {"track_id", "title", "song_id", "release", "artist_name", "year", "duration"} <= set(cols)
    assert con.execute("SELECT COUNT(*) FROM songs").fetchone()[0] == 40
    genres = [line for line in (tmp_path / "genres.tsv").read_text().splitlines() if not line.startswith("#")]
    assert len(genres) == 40 and all(g.split("\t")[0].startswith("TR") for g in genres)
    truth = json.loads((tmp_path / "truth.json").read_text())
    assert sum(s["cold"] for s in truth["songs"].values()) == summary["cold_songs"] == 10
    clips = sorted(p.stem for p in (tmp_path / "audio").glob("*.wav"))
    assert clips == sorted(truth["songs"])  # every song, cold ones included, has audio
    played = {line.split("\t")[1] for line in lines}
    assert not played & {sid for sid, s in truth["songs"].items() if s["cold"]}


def test_bad_sizes_are_rejected():
    with pytest.raises(ValueError):
        SynthConfig(users=0)
    with pytest.raises(ValueError):
        SynthConfig(cold_share=1.0)
