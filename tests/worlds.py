"""Play-count files for the quality tests, in the Taste Profile's format.

``write_independent_world`` is built without ``pmrs.synth``: a different generative story
(users loyal to a few artists, a steep popularity curve, a few users with many songs), so that
no PMRS default can be tuned to the synthetic world's own structure.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


#: Artists form loose clusters (a "style" each); users like one or two styles.
STYLES = 6


def _structure(rng: np.random.Generator, songs: int, artists: int):
    artist_of = rng.integers(0, artists, size=songs)
    song_pop = (rng.permutation(songs) + 1.0) ** -1.1
    style_of = rng.integers(0, STYLES, size=artists)
    return artist_of, song_pop, style_of


def independent_world_truth(songs: int = 600, artists: int = 80, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The hidden structure of ``write_independent_world(songs=, artists=, seed=)``: each song's
    artist and each song's style (song ``i`` is ``SO%016d`` % i)."""
    artist_of, _, style_of = _structure(np.random.default_rng(seed), songs, artists)
    return artist_of, style_of[artist_of]


def write_independent_world(path: Path, users: int = 1500, songs: int = 600, artists: int = 80,
                            seed: int = 0) -> Path:
    """Write ``train_triplets.txt`` (user<TAB>song<TAB>count) under ``path``; returns the file."""
    rng = np.random.default_rng(seed)
    artist_of, song_pop, style_of = _structure(rng, songs, artists)
    artist_pop = np.bincount(artist_of, weights=song_pop, minlength=artists)
    styles = STYLES
    lines = []
    for u in range(users):
        liked = rng.choice(styles, size=rng.integers(1, 3), replace=False)
        w = artist_pop * np.where(np.isin(style_of, liked), 1.0, 0.05)
        favourites = rng.choice(artists, size=3, replace=False, p=w / w.sum())
        n = 5 + int(rng.pareto(1.5) * 8)
        n = min(n, songs // 2)
        own = np.isin(artist_of, favourites)
        p = song_pop * np.where(own, 8.0, 1.0) * np.where(np.isin(style_of[artist_of], liked), 1.0, 0.1)
        chosen = rng.choice(songs, size=n, replace=False, p=p / p.sum())
        counts = 1 + rng.geometric(0.3, size=n) * own[chosen]
        uid = f"{rng.integers(0, 2**63):016x}{u:024x}"
        lines += [f"{uid}\tSO{s:016d}\t{c}" for s, c in zip(chosen, counts)]
    out = Path(path) / "train_triplets.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    return out
