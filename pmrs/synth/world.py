"""The synthetic world: genres, artists, songs, users and their play counts.

Songs belong to a genre (audible: it decides the clip's sound) and to a hidden *scene* (not
audible), and have a long-tailed popularity. Users have a taste mixture over genres, a preference
over scenes and an activity level. Plays are drawn from taste x scene x popularity, so
collaborative filtering can learn things (the scene) that audio cannot. A share of songs are
*cold*: they have audio and metadata but nobody has played them.

Play generation streams over blocks of users, so the full Taste Profile shape (about a million
users, 48M triplets) is generated in bounded memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from .names import artist_names, titles

#: Taste Profile shape: 48,373,586 triplets over 1,019,318 users, 47.46 songs per user on average;
#: every user there has at least 10 songs.
TASTE_PROFILE_SONGS_PER_USER = 47.46
MIN_SONGS_PER_USER = 10

_ID_ALPHABET = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", dtype=np.uint8)
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


#: How ``pmrs synth`` writes the plays: MSD triplets, or listens with times (``pmrs.synth.listens``).
FORMATS = ("triplets", "events-csv", "events-parquet", "events-jsonl", "spotify", "lastfm", "listenbrainz")


@dataclass(frozen=True)
class SynthConfig:
    """Size and shape of a synthetic world (``[synth]`` in a TOML config)."""

    users: int = 2000
    songs: int = 1000
    genres: int = 8
    scenes: int = 4
    clip_seconds: float = 30.0
    cold_share: float = 0.1
    songs_per_user: float = TASTE_PROFILE_SONGS_PER_USER
    popularity_exponent: float = 0.5
    taste_concentration: float = 0.15  # Dirichlet over genres: lower = fewer favourite genres
    scene_concentration: float = 0.7  # Dirichlet over scenes: higher = scenes matter less
    artist_loyalty: float = 0.0  # share of a user's draws that go to their favourite artists
    favourite_artists: int = 3  # artists each user is loyal to (drawn from their taste)
    min_songs_per_user: int = MIN_SONGS_PER_USER  # activity floor (the Taste Profile's is 10)
    seed: int = 0
    no_audio: bool = False
    audio_workers: int = 2
    lastfm: str = "json"  # Last.fm tags and similars: "json" (the tree), "sqlite", "both" or "none"
    format: str = "triplets"  # the plays: MSD triplets, or listens with times (pmrs.synth.listens.FORMATS)

    def __post_init__(self) -> None:
        if self.users < 1 or self.songs < 2:
            raise ValueError("need at least 1 user and 2 songs")
        if not 1 <= self.genres <= 64:
            raise ValueError("genres must be between 1 and 64")
        if not 0.0 <= self.cold_share < 1.0:
            raise ValueError("cold_share must be in [0, 1)")
        if self.clip_seconds <= 0:
            raise ValueError("clip_seconds must be positive")
        if not 0.0 <= self.artist_loyalty <= 1.0:
            raise ValueError("artist_loyalty must be in [0, 1]")
        if self.favourite_artists < 1 or self.min_songs_per_user < 1:
            raise ValueError("favourite_artists and min_songs_per_user must be at least 1")
        if self.popularity_exponent < 0 or self.songs_per_user <= 0:
            raise ValueError("need popularity_exponent >= 0 and songs_per_user > 0")
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if self.lastfm not in ("json", "sqlite", "both", "none"):
            raise ValueError(f"lastfm must be json, sqlite, both or none, got {self.lastfm!r}")


#: Named worlds for ``pmrs synth --preset``: values over the defaults, under a config file and flags.
#: "harder" is shaped like the world of issue 12 (built outside PMRS): a steeper popularity curve,
#: users loyal to a few artists, fewer songs per user.
SYNTH_PRESETS: dict[str, dict] = {
    "default": {},
    "harder": {"popularity_exponent": 1.0, "artist_loyalty": 0.5, "favourite_artists": 3,
               "songs_per_user": 20.0, "min_songs_per_user": 5},
}


def preset_config(name: str, **overrides) -> SynthConfig:
    """The ``SynthConfig`` of a named preset, with ``overrides`` on top."""
    return SynthConfig(**{**preset_values(name), **overrides})


def preset_values(name: str) -> dict:
    """The settings a named preset changes (a ``ValueError`` naming the known ones if unknown)."""
    if name not in SYNTH_PRESETS:
        raise ValueError(f"unknown synth preset {name!r}; known: {', '.join(SYNTH_PRESETS)}")
    return dict(SYNTH_PRESETS[name])


@dataclass
class Catalog:
    """Every song of the world, with its planted structure. Arrays are ``(n_songs,)``."""

    song_ids: np.ndarray       # S18, e.g. b"SOAKIMP12A8C130995"-shaped
    track_ids: np.ndarray      # S18
    genre: np.ndarray          # int16 genre index
    scene: np.ndarray          # int16 hidden scene index
    popularity: np.ndarray     # float64, sums to 1 over warm songs, 0 for cold songs
    cold: np.ndarray           # bool
    artist: np.ndarray         # int32 index into artist_names
    artist_names: list[str]
    artist_ids: np.ndarray     # S18 ("AR...")
    titles: list[str]
    releases: list[str]
    year: np.ndarray           # int16
    duration_s: np.ndarray     # float32
    genre_names: list[str]


@dataclass
class Users:
    """Every user's planted taste. Arrays are ``(n_users, ...)``."""

    user_ids: np.ndarray       # S40 hex, Taste-Profile-shaped
    taste: np.ndarray          # (n_users, n_genres) float32 mixture
    scene_pref: np.ndarray     # (n_users, n_scenes) float32 mixture
    activity: np.ndarray       # int32 number of song draws


def random_ids(rng: np.random.Generator, n: int, prefix: bytes, length: int = 18) -> np.ndarray:
    """``n`` distinct ids of ``prefix`` + uppercase alphanumerics, ``length`` bytes each."""
    body = length - len(prefix)
    out = np.empty(0, dtype=f"S{length}")
    while len(out) < n:
        codes = _ID_ALPHABET[rng.integers(0, len(_ID_ALPHABET), size=(n - len(out), body))]
        raw = np.concatenate([np.frombuffer(prefix * (n - len(out)), np.uint8).reshape(-1, len(prefix)),
                              codes], axis=1)
        fresh = np.ascontiguousarray(raw).view(f"S{length}").ravel()
        out = np.unique(np.concatenate([out, fresh]))  # collisions are astronomically rare
    return rng.permutation(out)[:n]


def random_hex_ids(rng: np.random.Generator, n: int, length: int = 40) -> np.ndarray:
    codes = _HEX[rng.integers(0, 16, size=(n, length))]
    ids = np.ascontiguousarray(codes).view(f"S{length}").ravel()
    if len(np.unique(ids)) != n:  # pragma: no cover - 160 random bits
        raise RuntimeError("user id collision")
    return ids


def make_catalog(cfg: SynthConfig, genre_names: list[str], rng: np.random.Generator) -> Catalog:
    n = cfg.songs
    song_ids = random_ids(rng, n, b"SO")
    track_ids = random_ids(rng, n, b"TR")
    genre = rng.integers(0, cfg.genres, size=n).astype(np.int16)
    scene = rng.integers(0, cfg.scenes, size=n).astype(np.int16)
    # Long tail: Zipf-like weights over a random order of the songs.
    rank = rng.permutation(n) + 1
    weight = rank.astype(np.float64) ** -cfg.popularity_exponent
    cold = np.zeros(n, dtype=bool)
    n_cold = int(round(cfg.cold_share * n))
    if n_cold:
        cold[rng.choice(n, size=n_cold, replace=False)] = True
    weight[cold] = 0.0
    popularity = weight / weight.sum()
    # Artists: each plays one genre, 1..~20 songs each.
    n_artists = max(cfg.genres, n // 8)
    artist_genre = np.arange(n_artists) % cfg.genres
    by_genre = [np.flatnonzero(artist_genre == g) for g in range(cfg.genres)]
    artist = np.array([by_genre[g][rng.integers(len(by_genre[g]))] for g in genre], dtype=np.int32)
    genre_year = 1965 + rng.integers(0, 40, size=cfg.genres)
    year = np.clip(genre_year[genre] + rng.normal(0, 6, size=n), 1950, 2011).astype(np.int16)
    year[rng.random(n) < 0.1] = 0  # MSD uses 0 for unknown years
    n_releases = max(1, n // 6)
    release_titles = titles(n_releases, rng)
    releases = [release_titles[i] for i in rng.integers(0, n_releases, size=n)]
    return Catalog(
        song_ids=song_ids, track_ids=track_ids, genre=genre, scene=scene,
        popularity=popularity, cold=cold, artist=artist,
        artist_names=artist_names(n_artists, rng),
        artist_ids=random_ids(rng, n_artists, b"AR"),
        titles=titles(n, rng), releases=releases, year=year,
        duration_s=np.full(n, cfg.clip_seconds, dtype=np.float32) + rng.uniform(90, 240, n).astype(np.float32),
        genre_names=genre_names,
    )


def make_users(cfg: SynthConfig, rng: np.random.Generator) -> Users:
    n = cfg.users
    # Sparse tastes: most users love one to three genres.
    taste = rng.dirichlet(np.full(cfg.genres, cfg.taste_concentration), size=n).astype(np.float32)
    scene_pref = rng.dirichlet(np.full(cfg.scenes, cfg.scene_concentration), size=n).astype(np.float32)
    # At full shape repeated draws of a song are rare (0.3%), so the mean number of draws is the
    # Taste Profile's 47.5 songs per user; small catalogs merge more repeats.
    extra_mean = max(cfg.songs_per_user - cfg.min_songs_per_user, 1.0)
    # Lognormal activity above the floor (the Taste Profile's is 10 songs); sigma 1: a long tail.
    sigma = 1.0
    extra = rng.lognormal(np.log(extra_mean) - sigma**2 / 2, sigma, size=n)
    activity = (cfg.min_songs_per_user + extra).astype(np.int32)
    return Users(user_ids=random_hex_ids(rng, n), taste=taste, scene_pref=scene_pref,
                 activity=activity)


def iter_plays(cfg: SynthConfig, catalog: Catalog, users: Users, rng: np.random.Generator,
               block_users: int = 50_000) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield ``(user_index, song_index, play_count)`` blocks (int32), grouped by user.

    Each user draws ``activity`` songs: a (genre, scene) group from taste x scene preference, then
    a song in the group by popularity. With ``artist_loyalty`` > 0, each user first draws
    ``favourite_artists`` songs that way and keeps their artists; that share of the draws then
    picks one of those artists instead, and a song of theirs by popularity. Repeated draws of a
    song add up; each distinct song gets a play count that grows with the user's affinity for its
    group (geometric, heavy-tailed).
    """
    G, S = cfg.genres, cfg.scenes
    group = catalog.genre.astype(np.int64) * S + catalog.scene
    warm = ~catalog.cold
    order = np.flatnonzero(warm)[np.argsort(group[warm], kind="stable")]
    g_sorted = group[order]
    p = catalog.popularity[order]
    n_groups = G * S
    group_mass = np.bincount(g_sorted, weights=p, minlength=n_groups)
    # Global cdf: group k occupies [k, k+1); within it songs stack by popularity.
    within = np.cumsum(p) - np.repeat(np.cumsum(group_mass) - group_mass, np.bincount(g_sorted, minlength=n_groups))
    cdf = g_sorted + within / np.maximum(group_mass[g_sorted], 1e-300)
    has_songs = group_mass > 0
    loyal = cfg.artist_loyalty > 0
    if loyal:  # the same stacked cdf, by artist
        a_order = np.flatnonzero(warm)[np.argsort(catalog.artist[warm], kind="stable")]
        a_sorted = catalog.artist[a_order].astype(np.int64)
        pa = catalog.popularity[a_order]
        n_artists = len(catalog.artist_names)
        a_mass = np.bincount(a_sorted, weights=pa, minlength=n_artists)
        a_within = np.cumsum(pa) - np.repeat(np.cumsum(a_mass) - a_mass,
                                             np.bincount(a_sorted, minlength=n_artists))
        a_cdf = a_sorted + a_within / np.maximum(a_mass[a_sorted], 1e-300)

    def draw(wcum: np.ndarray, u_local: np.ndarray) -> np.ndarray:
        """One song per entry of ``u_local``: a group by the user's weights, then by popularity."""
        r = rng.random(len(u_local))
        grp = np.empty(len(u_local), dtype=np.int64)
        for lo in range(0, len(u_local), 2_000_000):  # bounded (draws x groups) temporaries
            sl = slice(lo, lo + 2_000_000)
            grp[sl] = (wcum[u_local[sl]] < r[sl, None]).sum(axis=1)
        pos = np.searchsorted(cdf, grp + rng.random(len(u_local)) * (1 - 1e-12), side="right")
        return order[np.minimum(pos, len(order) - 1)]

    for start in range(0, cfg.users, block_users):
        stop = min(start + block_users, cfg.users)
        n_draw = users.activity[start:stop]
        u_local = np.repeat(np.arange(stop - start), n_draw)
        # Group weights per user: outer(taste, scene) restricted to groups that have songs.
        w = (users.taste[start:stop, :, None] * users.scene_pref[start:stop, None, :]).reshape(-1, n_groups)
        w = w * has_songs
        w /= w.sum(axis=1, keepdims=True)
        wcum = np.cumsum(w, axis=1)
        wcum[:, -1] = 1.0
        song = draw(wcum, u_local)
        if loyal:
            n_fav = cfg.favourite_artists
            fav = catalog.artist[draw(wcum, np.repeat(np.arange(stop - start), n_fav))].reshape(-1, n_fav)
            to_fav = np.flatnonzero(rng.random(len(u_local)) < cfg.artist_loyalty)
            artist = fav[u_local[to_fav], rng.integers(0, n_fav, size=to_fav.size)].astype(np.int64)
            pos = np.searchsorted(a_cdf, artist + rng.random(to_fav.size) * (1 - 1e-12), side="right")
            song[to_fav] = a_order[np.minimum(pos, len(a_order) - 1)]
        key = u_local.astype(np.int64) * cfg.songs + song
        uniq, draws = np.unique(key, return_counts=True)
        uu = (uniq // cfg.songs).astype(np.int32)
        ss = (uniq % cfg.songs).astype(np.int32)
        affinity = w[uu, group[ss]] * n_groups          # 1.0 = average group
        mean_extra = 1.2 * np.sqrt(affinity) + 0.8 * (draws - 1)
        counts = rng.geometric(1.0 / (1.0 + mean_extra))  # mean 1 + mean_extra
        yield uu + start, ss, counts.astype(np.int32)
