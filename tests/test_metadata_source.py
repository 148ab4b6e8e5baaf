"""The metadata source: song vectors from metadata and tags, a third source in the bundle, served
through pmrs.Recommender, its default lists equal to the online answers."""

import json
import shutil

import numpy as np
import pytest

from pmrs_indexer.cli import main as indexer_main
from pmrs import Recommender
from pmrs.catalog import Catalog, write_catalog
from pmrs.cli import main as pmrs_main
from pmrs.indexing import IndexerConfig, build_bundle
from pmrs.metadata import MetadataConfig, catalog_vectors, metadata_matrix, metadata_vectors
from pmrs.serving.bundle import Bundle
from pmrs.serving.contract import resolve_bundle
from pmrs.synth.lastfm import scene_tags
from pmrs.serving.recommend import MIXED, NotFound, listed_items, recommend, similar_songs, user_query
from pmrs.collaborative.wmf import load_run


def _song(artist="", release="", genre="", year=0):
    return {"artist": artist, "artist_id": "", "release": release, "genre": genre, "year": year}


def test_the_full_vectors_weigh_each_part_as_stated():
    cfg = MetadataConfig()
    songs = [_song("A", "r1", "rock", 1984), _song("A", "r2", "jazz", 1999), _song("B", "r1", "rock", 1981),
             _song("C", "", "", 0), _song()]
    tags = [{"shoegaze": 100, "80s": 50}, {"shoegaze": 100, "80s": 50}, {"dream": 80},
            {"shoegaze": 40, "dream": 40}, {}]
    full, cols = metadata_matrix(songs, tags, cfg)
    g = (full @ full.T).toarray()
    # songs 0 and 1: same tags (cosine 1) and artist; different release, genre, decade
    assert g[0, 1] == pytest.approx(cfg.tags_weight + cfg.artist_weight)
    # songs 0 and 2: same genre and decade; the release "r1" is another artist's (not shared)
    assert g[0, 2] == pytest.approx(cfg.genre_weight + cfg.decade_weight)
    assert g[4].sum() == 0 and set(cols) == {"tags", "artist", "release", "genre", "decade"}
    # a part with weight 0 is left out
    no_artist, cols = metadata_matrix(songs, tags, MetadataConfig(artist_weight=0))
    assert "artist" not in cols and (no_artist @ no_artist.T).toarray()[0, 1] == pytest.approx(1.0)


def test_songs_sharing_tags_or_artist_are_closer_than_random():
    rng = np.random.default_rng(0)
    n = 400
    artist = rng.integers(0, 60, n)
    topic = rng.integers(0, 8, n)          # a hidden topic that only the tags carry
    vocab = [f"t{i}" for i in range(40)]
    songs = [_song(f"artist{a}", f"rel{a}-{rng.integers(3)}", f"g{a % 5}", int(rng.integers(1960, 2010)))
             for a in artist]
    tags = [{vocab[5 * t + j]: int(rng.integers(30, 101)) for j in rng.choice(5, 3, replace=False)}
            for t in topic]
    for reduction in ("svd", "random"):
        v = metadata_vectors(songs, tags, MetadataConfig(dimensions=32, reduction=reduction))
        assert v.shape == (n, 32) and v.dtype == np.float32
        assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
        sim = v @ v.T
        off = ~np.eye(n, dtype=bool)
        same_artist = (artist[:, None] == artist[None, :]) & off
        same_topic = (topic[:, None] == topic[None, :]) & ~same_artist & off
        other = ~same_artist & ~same_topic & off
        assert sim[same_artist].mean() > sim[other].mean() + 0.2, reduction
        assert sim[same_topic].mean() > sim[other].mean() + 0.2, reduction


def test_a_catalog_without_tags_still_gives_every_song_a_vector(tmp_path):
    path = tmp_path / "catalog.lmdb"
    songs = [(f"SO{i:03d}", {**_song(f"a{i % 3}", "", f"g{i % 2}", 1990), "title": "x"}) for i in range(12)]
    write_catalog(path, songs + [("SOZZZ", _song())], [], {})
    mv = catalog_vectors(path, MetadataConfig(dimensions=4))
    assert mv.songs_with_tags == 0 and mv.features["tags"] == 0
    assert mv.song_ids.tolist() == sorted(s.encode() for s, _ in songs) + [b"SOZZZ"]
    assert mv.vectors.shape == (13, 4) and not mv.vectors[-1].any() and np.abs(mv.vectors[:-1]).sum(axis=1).min() > 0


@pytest.fixture(scope="module")
def tagged_world(tmp_path_factory):
    """A small world (no audio) ingested with its Last.fm tags."""
    root = tmp_path_factory.mktemp("meta")
    data, work = root / "data", root / "work"
    assert pmrs_main(["synth", str(data), "--users", "300", "--songs", "400", "--genres", "4",
                      "--scenes", "4", "--no-audio", "-q"]) == 0
    assert pmrs_main(["ingest", str(data), "--workdir", str(work), "-q"]) == 0
    return data, work


def test_metadata_neighbours_share_the_inaudible_scene(tagged_world):
    data, work = tagged_world
    truth = json.loads((data / "truth.json").read_text())["songs"]
    words = {w for pair in scene_tags(4) for w in pair}
    mv = catalog_vectors(work / "catalog.lmdb")
    ids = [s.decode() for s in mv.song_ids]
    with Catalog(work / "catalog.lmdb") as c:
        scene_tagged = np.array([bool(words & set(c.tags(s))) for s in ids])
    scene = np.array([truth[s]["scene"] for s in ids])
    genre = np.array([truth[s]["genre"] for s in ids])
    sim = mv.vectors @ mv.vectors.T
    np.fill_diagonal(sim, -np.inf)
    top = np.argsort(-sim, axis=1)[:, :10]
    same_scene = scene[top] == scene[:, None]
    # chance is 0.25 for both; the scene is only in the tags (audio and artists do not know it)
    assert same_scene[scene_tagged].mean() > 0.45 and same_scene[~scene_tagged].mean() < 0.4
    assert (genre[top] == genre[:, None]).mean() > 0.9


@pytest.fixture(scope="module")
def three(serving_workdir, tmp_path_factory):
    work = tmp_path_factory.mktemp("three") / "work"
    shutil.copytree(serving_workdir, work)
    out = build_bundle(work, IndexerConfig(recall_queries=50), show_progress=False)
    b = Bundle.open(out, verify=True)
    yield work, out, b
    b.close()


def test_the_bundle_holds_the_metadata_source(three):
    _, out, b = three
    assert b.source_names == ["collaborative", "acoustic", "metadata"]
    src = b.manifest["sources"]["metadata"]
    assert src["space"] == "metadata" and src["covers_cold"] is True
    assert src["index"]["recall_at_10"] >= 0.95
    assert src["settings"]["dimensions"] == 64 and src["settings"]["songs_with_tags"] > 0
    assert b.source_size("metadata") == b.n_songs
    assert b.defaults.shares == {"acoustic": 0.2, "metadata": 0.1}


def test_recommend_and_similar_songs_by_metadata(three):
    work, _, b = three
    rec = Recommender(b)
    user = b.user_ids[5].decode()
    got = rec.recommend(user, k=10, shares={"metadata": 1.0})
    # the exact top 10 of the mean metadata vector of the user's songs, played songs left out
    vectors = np.load(work / "bundles" / b.version / "metadata_vectors.npy")
    played = b.played_indices[b.played_indptr[5]:b.played_indptr[6]]
    q = vectors[played].mean(axis=0)   # (the metadata rows are the song rows: it covers every song)
    scores = vectors @ q
    scores[played] = -np.inf
    # (songs with the same metadata tie: compare the exact scores of what came back)
    assert np.allclose([scores[b.song_row(s.song_id)] for s in got.songs], np.sort(scores)[::-1][:10], atol=1e-5)
    assert all("metadata" in s.sources for s in got.songs)
    song = b.song_id(int(played[0]))
    sim = rec.similar_songs(song, k=5, mode="metadata")
    scores = vectors @ vectors[played[0]]
    scores[played[0]] = -np.inf
    assert np.allclose([scores[b.song_row(s.song_id)] for s in sim.songs], np.sort(scores)[::-1][:5], atol=1e-5)
    # over gRPC's message types: the proto's METADATA mode and a source name give the same list
    from pmrs.v1 import recommender_pb2 as pb
    from pmrs_server.servicer import BundleHolder, RecommenderServicer

    class Ctx:
        def time_remaining(self):
            return None

    servicer = RecommenderServicer(BundleHolder(rec))
    for req in (pb.SimilarSongsRequest(song_id=song, k=5, mode=pb.SIMILARITY_MODE_METADATA),
                pb.SimilarSongsRequest(song_id=song, k=5, source="metadata")):
        assert [s.song_id for s in servicer.SimilarSongs(req, Ctx()).songs] == sim.song_ids


def test_songs_without_plays_or_audio_have_metadata_neighbours(serving_workdir, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(serving_workdir, work)
    _, _, wmf_songs = load_run(sorted((work / "models" / "wmf").iterdir())[-1])
    rng = np.random.default_rng(0)
    override = {"song_ids": wmf_songs, "factors": rng.normal(size=(len(wmf_songs), 8)).astype(np.float32)}
    out = build_bundle(work, IndexerConfig(recall_queries=50, default_lists=False), acoustic_override=override,
                       show_progress=False)
    with Recommender.open(out) as rec:
        b = rec.bundle
        lonely = [b.song_id(r) for r in range(b.n_songs) if b.song_sources(r) == ["metadata"]]
        assert len(lonely) == b.n_songs - len(wmf_songs) > 0     # the cold songs: no plays, no audio
        song = lonely[0]
        assert rec.song(song).sources == ("metadata",)
        sim = rec.similar_songs(song, k=8, mode="metadata")
        assert len(sim.songs) == 8 and song not in {s.song_id for s in sim.songs}
        assert rec.similar_songs(song, k=8).songs == sim.songs     # mixed: only metadata has a vector
        with pytest.raises(NotFound):
            rec.similar_songs(song, k=8, mode="acoustic")
        seeds = rec.recommend(seed_song_ids=lonely[:3], k=5, shares={"metadata": 1.0})
        assert len(seeds.songs) == 5


def test_default_lists_of_three_sources_are_the_online_answers(three):
    _, _, b = three
    shares = dict(b.lists["recommend"].shares)
    assert shares == pytest.approx({"collaborative": 0.7, "acoustic": 0.2, "metadata": 0.1})
    assert b.lists["similar"].shares == shares
    seen = set()
    for row in range(b.n_users):
        items = listed_items(b.lists["recommend"], row)
        assert items == recommend(b, user_query(b, b.user_ids[row].decode()), 10, shares, 0.0), row
        seen |= {it.sources for it in items}
        assert any(it.sources & 4 for it in items), row     # round(0.1 * 10) = 1 song from metadata
    for row in range(b.n_songs):
        assert listed_items(b.lists["similar"], row) == similar_songs(b, row, 10, MIXED, shares, 0.0), row
    assert any(m & 2 for m in seen) and any(m & 1 for m in seen)


def test_indexer_flags_and_metadata_settings(serving_workdir, tmp_path, capsys):
    work = tmp_path / "work"
    shutil.copytree(serving_workdir, work)
    cfg = tmp_path / "c.toml"
    cfg.write_text("[indexer]\nrecall_queries = 20\ndefault_lists = false\n"
                   "[metadata]\ndimensions = 8\nartist_weight = 1.0\n")
    assert indexer_main(["build", "--workdir", str(work), "--config", str(cfg), "-q"]) == 0
    assert "metadata:" in capsys.readouterr().out
    with Bundle.open(resolve_bundle(work)) as b:
        assert b.source_dimension("metadata") == 8
        assert b.manifest["sources"]["metadata"]["settings"]["artist_weight"] == 1.0
    assert indexer_main(["build", "--workdir", str(work), "--config", str(cfg), "--no-metadata", "-q"]) == 0
    with Recommender.open(work) as rec:
        assert rec.sources == ["collaborative", "acoustic"]
    cfg.write_text("[metadata]\nreduction = \"pca\"\n")
    assert indexer_main(["build", "--workdir", str(work), "--config", str(cfg), "-q"]) == 2
