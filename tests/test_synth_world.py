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


def _top_artist_share(cat, u, s, n_users, top=3):
    """Mean share of a user's songs by their `top` most played artists."""
    key = u.astype(np.int64) * len(cat.artist_names) + cat.artist[s]
    per = np.bincount(key, minlength=n_users * len(cat.artist_names)).reshape(n_users, -1)
    per.sort(axis=1)
    return float((per[:, -top:].sum(axis=1) / np.maximum(per.sum(axis=1), 1)).mean())


def test_harder_preset_is_steeper_more_loyal_and_sparser():
    from pmrs.synth.world import preset_config

    base = SynthConfig(users=600, songs=500)
    hard = preset_config("harder", users=600, songs=500)
    assert hard.popularity_exponent > base.popularity_exponent and hard.artist_loyalty > 0
    cat_b, _, u_b, s_b, _ = plays(base)
    cat_h, _, u_h, s_h, _ = plays(hard)
    # fewer songs per user
    assert len(u_h) / hard.users < 0.6 * len(u_b) / base.users
    assert np.bincount(u_h, minlength=hard.users).min() >= 1
    # steeper popularity: the top 10% of songs take a larger share of the pairs
    def head(cat, s):
        c = np.sort(np.bincount(s, minlength=len(cat.cold))[~cat.cold])[::-1]
        return c[: len(c) // 10].sum() / c.sum()
    assert head(cat_h, s_h) > head(cat_b, s_b) + 0.1
    # loyalty: a user's three favourite artists hold far more of their songs
    assert _top_artist_share(cat_h, u_h, s_h, hard.users) > _top_artist_share(cat_b, u_b, s_b, base.users) + 0.15


def test_artist_loyalty_alone_concentrates_plays_on_few_artists():
    loyal = SynthConfig(users=400, songs=400, artist_loyalty=0.8, favourite_artists=2)
    plain = SynthConfig(users=400, songs=400)
    cat_l, _, u_l, s_l, _ = plays(loyal)
    cat_p, _, u_p, s_p, _ = plays(plain)
    assert _top_artist_share(cat_l, u_l, s_l, 400, top=2) > _top_artist_share(cat_p, u_p, s_p, 400, top=2) + 0.2


def test_synth_preset_flag_sits_under_flags(tmp_path, capsys):
    from pmrs.cli import main

    assert main(["synth", str(tmp_path / "w"), "--preset", "harder", "--songs-per-user", "15",
                 "--users", "50", "--songs", "40", "--no-audio", "-q"]) == 0
    cfg = json.loads((tmp_path / "w" / "truth.json").read_text())["config"]
    assert cfg["popularity_exponent"] == 1.0 and cfg["artist_loyalty"] == 0.5 and cfg["songs_per_user"] == 15
    assert main(["synth", str(tmp_path / "x"), "--preset", "hardest", "-q"]) == 2
    assert "unknown synth preset 'hardest'" in capsys.readouterr().err
    with pytest.raises(ValueError):
        SynthConfig(artist_loyalty=1.5)
