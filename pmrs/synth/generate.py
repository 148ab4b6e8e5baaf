"""``pmrs synth``: write a complete synthetic world into a data folder."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from ..artifacts import write_json
from .audio import make_styles
from .lastfm import write_lastfm
from .listens import write_listens
from .files import write_audio, write_genres, write_track_metadata, write_triplets, write_unique_tracks
from .world import SynthConfig, iter_plays, make_catalog, make_users

log = logging.getLogger(__name__)

#: Users whose planted taste goes into truth.json (beyond this, only the count is recorded).
TRUTH_MAX_USERS = 50_000


def synthesize(directory: str | Path, cfg: SynthConfig, show_progress: bool | None = None) -> dict:
    """Write a complete synthetic world into ``directory``; returns a summary.

    Files: ``train_triplets.txt``, ``unique_tracks.txt``, ``track_metadata.db``, ``genres.tsv``,
    the Last.fm data (``lastfm_train/`` and ``lastfm_test/`` JSON trees, or ``lastfm_tags.db`` and
    ``lastfm_similars.db``, as ``cfg.lastfm`` says), ``audio/<song_id>.wav`` (unless
    ``cfg.no_audio``) and ``truth.json``. ``show_progress``: bars on stderr for the long
    steps (``None``: on a terminal only).
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rng = np.random.default_rng(cfg.seed)
    styles = make_styles(cfg.genres, seed=cfg.seed)
    genre_names = [s.name for s in styles]
    catalog = make_catalog(cfg, genre_names, rng)
    users = make_users(cfg, rng)
    play_rng = np.random.default_rng([cfg.seed, 1])
    n_listens = 0
    if cfg.format == "triplets":
        n_lines = write_triplets(out / "train_triplets.txt", iter_plays(cfg, catalog, users, play_rng),
                                 users.user_ids, catalog.song_ids, cfg.users, show_progress)
        log.info("wrote %d triplets", n_lines)
    else:   # the same plays as listening events with times, in a format people's data come in
        blocks = list(iter_plays(cfg, catalog, users, play_rng))
        plays = tuple(np.concatenate([b[i] for b in blocks]) if blocks else np.zeros(0, np.int64) for i in range(3))
        n_lines = len(plays[0])
        n_listens = write_listens(out, cfg.format, plays, users.user_ids, catalog, cfg.seed)
        log.info("wrote %d listens (%s) of %d (user, song) pairs", n_listens, cfg.format, n_lines)
    write_unique_tracks(out / "unique_tracks.txt", catalog)
    write_track_metadata(out / "track_metadata.db", catalog, np.random.default_rng([cfg.seed, 2]))
    write_genres(out / "genres.tsv", catalog)
    lastfm = write_lastfm(out, catalog, cfg.scenes, cfg.lastfm, cfg.seed, show_progress)
    n_clips = 0
    if not cfg.no_audio:
        n_clips = write_audio(out / "audio", catalog, styles, cfg.clip_seconds, cfg.seed,
                              workers=cfg.audio_workers, show_progress=show_progress)
    truth = {
        "config": cfg.__dict__,
        "genres": genre_names,
        "scenes": cfg.scenes,
        "songs": {
            sid.decode(): {"genre": genre_names[catalog.genre[i]], "scene": int(catalog.scene[i]),
                           "cold": bool(catalog.cold[i])}
            for i, sid in enumerate(catalog.song_ids)
        },
        "users": {} if cfg.users > TRUTH_MAX_USERS else {
            uid.decode(): {"taste": np.round(users.taste[i], 4).tolist(),
                           "scene_pref": np.round(users.scene_pref[i], 4).tolist()}
            for i, uid in enumerate(users.user_ids)
        },
        "n_triplets": n_lines,
        "lastfm": lastfm,
    }
    write_json(out / "truth.json", truth)
    summary = {"directory": str(out), "users": cfg.users, "songs": cfg.songs,
               "cold_songs": int(catalog.cold.sum()), "triplets": n_lines, "format": cfg.format,
               "listens": n_listens, "clips_written": n_clips,
               "lastfm": lastfm,
               "seconds": round(time.perf_counter() - t0, 2)}
    log.info("synthetic world: %s", summary)
    return summary
