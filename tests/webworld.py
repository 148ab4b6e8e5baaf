"""A served world for the web page's tests: a copy of the serving work directory whose catalog
holds hostile text (markup, ampersands, quotes, non-Latin scripts), a bundle built from it, and
what the tests need to know about it."""

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pmrs.catalog import CATALOG_FILE, Catalog, write_catalog
from pmrs.indexing import IndexerConfig, build_bundle
from pmrs.serving.bundle import Bundle
from pmrs.serving.contract import current_bundle
from pmrs.web.showcase import WebApp

TOKEN = "web-write-token-0123456789abcdef"
#: A title no page may show unescaped.
HOSTILE = '<script>alert("x")</script> & <b>Ünïcödé</b> 東京 \'q\''


@dataclass
class World:
    work: Path
    audio_dir: Path
    users: list[str]
    hostile_song: str       # its title is HOSTILE
    clip_song: str          # a song with a clip and plays
    cold_song: str          # a song nobody played, with a clip
    genres: list[str]


def _confident_genre_head(work: Path, catalog: dict) -> None:
    """Make the tiny CNN's genre head (two epochs: it finds one genre most likely for every song)
    lean to each song's catalog genre, so the per-genre lists have several genres."""
    import json
    pred = work / "models" / "cnn" / "c1" / "predictions"
    genres = json.loads((pred.parent / "history.json").read_text())["genres"]
    ids = np.load(pred / "song_ids.npy", allow_pickle=False)
    probs = np.load(pred / "genre_probs.npy", allow_pickle=False)
    for i, sid in enumerate(ids):
        g = catalog.get(sid.decode() if isinstance(sid, bytes) else str(sid), {}).get("genre")
        if g in genres:
            probs[i] = 0.5 * probs[i]
            probs[i, genres.index(g)] += 0.5
    np.save(pred / "genre_probs.npy", probs.astype(np.float32))


def make_world(serving_workdir: Path, root: Path) -> World:
    work = root / "work"
    shutil.copytree(serving_workdir, work)
    with Catalog(work / CATALOG_FILE) as cat:
        items, tracks, info = list(cat.items()), list(cat.tracks()), cat.info()
        tags = list(cat.items_tags())
    hostile = items[0][0]
    items[0] = (hostile, {**items[0][1], "title": HOSTILE, "artist": "Ärtist & <i>Co</i>"})
    write_catalog(work / CATALOG_FILE, items, tracks, info, ((s, t, None) for s, t in tags))
    _confident_genre_head(work, dict(items))
    build_bundle(work, IndexerConfig(recall_queries=20), show_progress=False)
    audio_dir = serving_workdir.parent / "data" / "audio"
    with Bundle.open(current_bundle(work)) as b:
        rows = np.arange(b.n_songs)
        have_audio, _ = b.song_vectors("acoustic", rows)
        have_plays, _ = b.song_vectors("collaborative", rows)
        ids = [b.song_id(r) for r in rows]
        users = [u.decode() for u in b.user_ids[:20]]
        genres = list(b.genres)
    clips = {p.stem for p in audio_dir.iterdir()}
    clip_song = next(s for s, a, p in zip(ids, have_audio, have_plays) if a and p and s in clips)
    cold_song = next(s for s, a, p in zip(ids, have_audio, have_plays) if a and not p and s in clips)
    return World(work, audio_dir, users, hostile, clip_song, cold_song, genres)


class WebProcess(WebApp):
    """``pmrs-web`` as a process (:class:`pmrs.web.showcase.WebApp`), its log in ``log_path``."""

    def __init__(self, workdir, target: str, log_path, env=None):
        self.log = open(log_path, "w")
        super().__init__(workdir, target, token=(env or {}).get("PMRS_WRITE_TOKEN"), stderr=self.log)

    def raw_get(self, path: str) -> tuple[int, bytes]:
        """GET with ``path`` sent exactly as given (no client-side normalisation of ``..``)."""
        import http.client
        from urllib.parse import urlsplit

        u = urlsplit(self.url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        try:
            conn.putrequest("GET", path, skip_accept_encoding=True)
            conn.endheaders()
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def stop(self) -> int | None:
        code = super().stop()
        self.log.close()
        return code


#: What a same-origin request from the page itself carries, as a browser sends it.
PAGE_ORIGIN = "http://127.0.0.1:8080"


def page_client(app, **kwargs):
    """Starlette's TestClient as the page's own browser: ``Host`` 127.0.0.1:8080, and on every
    request the ``Origin`` and ``Sec-Fetch-Site`` a browser sends from the page itself (the page
    refuses writes without them, :mod:`pmrs.web.guard`)."""
    from starlette.testclient import TestClient

    return TestClient(app, base_url=PAGE_ORIGIN, raise_server_exceptions=False,
                      headers={"Origin": PAGE_ORIGIN, "Sec-Fetch-Site": "same-origin"}, **kwargs)
