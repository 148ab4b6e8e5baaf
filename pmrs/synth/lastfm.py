"""Synthetic Last.fm data: tags and similar tracks in both of the dataset's distributed forms.

Tags come from what a listener would say about a song: its genre (audible), its hidden *scene*
(not audible: tags know things audio does not), its era and its mood, with noise tags
("seen live") and songs without tags. Similars are songs of the same genre and scene, weighted
by popularity, with some noise. The file names are :mod:`pmrs.ingest.lastfm`'s.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..artifacts import tmp_path
from ..ingest.lastfm import JSON_DIRS, SIMILARS_DB, TAGS_DB
from .world import Catalog

#: How the Last.fm data is written (``SynthConfig.lastfm``).
LASTFM_FORMATS = ("json", "sqlite", "both", "none")

_SCENE_WORDS = ("underground", "bedroom", "festival", "coffeehouse", "warehouse", "college radio",
                "basement", "rooftop", "late night", "road trip", "sunday morning", "after hours",
                "dive bar", "art school", "seaside", "small town")
_MOODS = ("happy", "sad", "chill", "energetic", "dark", "romantic", "melancholic", "uplifting",
          "angry", "dreamy", "groovy", "calm")
_NOISE = ("favorites", "seen live", "awesome", "love", "beautiful", "check out", "my favourite",
          "cool", "amazing", "good", "catchy", "best")
#: Probability that a song (in the Last.fm set) carries each kind of tag.
P_GENRE, P_SCENE, P_ERA, P_MOOD = 0.85, 0.6, 0.5, 0.5
#: Share of songs absent from the Last.fm data, and of present songs with an empty tag list.
P_ABSENT, P_NO_TAGS = 0.1, 0.15
#: Share of tracks in the "test" folder of the JSON form (the rest in "train").
TEST_SHARE = 0.2


def scene_tags(n_scenes: int) -> list[list[str]]:
    """Two tags per scene (numbered when the scenes outnumber the words)."""
    out = []
    for s in range(n_scenes):
        words = [_SCENE_WORDS[(2 * s + j) % len(_SCENE_WORDS)] for j in range(2)]
        lap = (2 * s) // len(_SCENE_WORDS)
        out.append([w if lap == 0 else f"{w} {lap + 1}" for w in words])
    return out


@dataclass
class LastfmTracks:
    """The synthetic Last.fm data, per song index of the catalog (``None``: absent)."""

    tags: list[list[tuple[str, int]] | None]
    similars: list[list[tuple[int, float]] | None]


def make_lastfm(cat: Catalog, n_scenes: int, rng: np.random.Generator) -> LastfmTracks:
    """Tags and similars for every song of ``cat`` (some absent, some with no tags)."""
    n = len(cat.song_ids)
    scenes = scene_tags(n_scenes)
    n_genres = len(cat.genre_names)
    present = rng.random(n) >= P_ABSENT
    group = cat.genre.astype(np.int64) * n_scenes + cat.scene
    members = {int(g): np.flatnonzero(group == g) for g in np.unique(group)}
    by_genre = {g: np.flatnonzero(cat.genre == g) for g in range(n_genres)}
    weight = cat.popularity + 1.0 / n  # cold songs can be similar too
    tags: list = [None] * n
    sims: list = [None] * n
    for i in range(n):
        if not present[i]:
            continue
        t: dict[str, int] = {}
        if rng.random() >= P_NO_TAGS:
            g = int(cat.genre[i])
            if rng.random() < P_GENRE:
                t[cat.genre_names[g].lower()] = int(rng.integers(60, 101))
            for word in scenes[int(cat.scene[i])]:
                if rng.random() < P_SCENE:
                    t[word] = int(rng.integers(20, 101))
            if cat.year[i] and rng.random() < P_ERA:
                t[f"{(int(cat.year[i]) // 10) % 10}0s"] = int(rng.integers(10, 71))
            if rng.random() < P_MOOD:
                t[_MOODS[(3 * g + int(rng.integers(0, 3))) % len(_MOODS)]] = int(rng.integers(10, 61))
            for j in rng.choice(len(_NOISE), size=min(rng.poisson(1.0), len(_NOISE)), replace=False):
                t.setdefault(_NOISE[j], int(rng.integers(0, 41)))
        tags[i] = sorted(t.items(), key=lambda kv: -kv[1])
        # similars: mostly the same genre and scene (by popularity), some the same genre, a few any
        same = members[int(group[i])]
        same = same[same != i]
        m = min(len(same), int(rng.integers(5, 31)))
        picked = list(rng.choice(same, size=m, replace=False, p=weight[same] / weight[same].sum())) if m else []
        extra = by_genre[int(cat.genre[i])]
        picked += list(rng.choice(extra, size=min(len(extra), m // 4 + 1), replace=False))
        picked += list(rng.integers(0, n, size=int(rng.integers(0, 3))))
        order = list(dict.fromkeys(int(j) for j in picked if j != i))
        scores = np.sort(rng.uniform(0.05, 1.0, len(order)))[::-1]
        if len(scores):
            scores = scores / scores[0]
        sims[i] = [(j, round(float(s), 6)) for j, s in zip(order, scores)]
    return LastfmTracks(tags, sims)


def json_path(root: Path, track_id: str) -> Path:
    """Where the dataset keeps a track's file: ``A/B/C/TRABCxxx.json`` (the 3rd-5th letters)."""
    return root / track_id[2] / track_id[3] / track_id[4] / f"{track_id}.json"


def write_json_tree(directory: Path, cat: Catalog, data: LastfmTracks, rng: np.random.Generator,
                    show_progress: bool | None = None) -> int:
    """``lastfm_train/`` and ``lastfm_test/`` under ``directory`` (replaced whole); returns the
    number of files."""
    train, test = (directory / name for name in JSON_DIRS[:2])
    in_test = rng.random(len(cat.song_ids)) < TEST_SHARE
    directory.mkdir(parents=True, exist_ok=True)
    staging = {root: Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=directory)) for root in (train, test)}
    n = 0
    for i in tqdm(range(len(cat.song_ids)), desc="Last.fm JSON", unit="track", leave=False,
                  disable=None if show_progress is None else not show_progress):
        if data.tags[i] is None:
            continue
        tid = cat.track_ids[i].decode()
        obj = {"artist": cat.artist_names[cat.artist[i]], "timestamp": "2011-08-15 18:07:54.961962",
               "similars": [[cat.track_ids[j].decode(), s] for j, s in data.similars[i]],
               "tags": [[tag, str(w)] for tag, w in data.tags[i]], "track_id": tid, "title": cat.titles[i]}
        path = json_path(staging[test if in_test[i] else train], tid)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")
        n += 1
    for final, tmp in staging.items():
        os.chmod(tmp, 0o755)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    return n


def write_sqlite(directory: Path, cat: Catalog, data: LastfmTracks) -> None:
    """``lastfm_tags.db`` and ``lastfm_similars.db`` with the dataset's tables."""
    tags_path, sims_path = directory / TAGS_DB, directory / SIMILARS_DB
    tmp = tmp_path(tags_path)
    tmp.unlink()
    con = sqlite3.connect(tmp)
    try:
        con.execute("CREATE TABLE tids (tid TEXT)")
        con.execute("CREATE TABLE tags (tag TEXT)")
        con.execute("CREATE TABLE tid_tag (tid INT, tag INT, val FLOAT)")
        tag_row: dict[str, int] = {}
        tid_rows, pairs = [], []
        for i in range(len(cat.song_ids)):
            if data.tags[i] is None:
                continue
            tid_rows.append((cat.track_ids[i].decode(),))
            for tag, w in data.tags[i]:
                pairs.append((len(tid_rows), tag_row.setdefault(tag, len(tag_row) + 1), float(w)))
        con.executemany("INSERT INTO tids VALUES (?)", tid_rows)
        con.executemany("INSERT INTO tags VALUES (?)", [(t,) for t in tag_row])
        con.executemany("INSERT INTO tid_tag VALUES (?, ?, ?)", pairs)
        con.execute("CREATE INDEX idx_tid_tag_tid ON tid_tag(tid)")
        con.commit()
    finally:
        con.close()
    os.replace(tmp, tags_path)
    tmp = tmp_path(sims_path)
    tmp.unlink()
    con = sqlite3.connect(tmp)
    try:
        con.execute("CREATE TABLE similars_src (tid TEXT, target TEXT)")
        con.executemany("INSERT INTO similars_src VALUES (?, ?)", [
            (cat.track_ids[i].decode(), ",".join(f"{cat.track_ids[j].decode()},{s}" for j, s in data.similars[i]))
            for i in range(len(cat.song_ids)) if data.similars[i]])
        con.commit()
    finally:
        con.close()
    os.replace(tmp, sims_path)


def write_lastfm(directory: Path, cat: Catalog, n_scenes: int, fmt: str, seed: int,
                 show_progress: bool | None = None) -> dict:
    """Write the synthetic Last.fm data in ``fmt`` (:data:`LASTFM_FORMATS`); returns counts."""
    if fmt not in LASTFM_FORMATS:
        raise ValueError(f"lastfm must be one of {', '.join(LASTFM_FORMATS)}, got {fmt!r}")
    if fmt == "none":
        return {"format": fmt}
    rng = np.random.default_rng([seed, 3])
    data = make_lastfm(cat, n_scenes, rng)
    out = {"format": fmt, "tracks": sum(t is not None for t in data.tags),
           "tracks_with_tags": sum(bool(t) for t in data.tags)}
    if fmt in ("json", "both"):
        out["json_files"] = write_json_tree(directory, cat, data, rng, show_progress)
    if fmt in ("sqlite", "both"):
        write_sqlite(directory, cat, data)
    return out
