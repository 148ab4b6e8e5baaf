"""Recommendations under each genre with confidence scores (``pmrs.Recommender.recommend_by_genre``
and the ``RecommendByGenre`` RPC), on the format fixture bundle (3 genres, a genre head)."""

from pathlib import Path

import numpy as np
import pytest

import pmrs
from pmrs.recommender import GENRE_CANDIDATES
from pmrs.serving.recommend import known_user_query, recommend
from pmrs.v1 import recommender_pb2 as pb

V1 = Path(__file__).parent / "fixtures" / "bundle_v1"


@pytest.fixture(scope="module")
def rec():
    with pmrs.Recommender.open(V1) as r:
        yield r


def _catalog_genres_unknown(monkeypatch, b):
    songs = b.songs
    monkeypatch.setattr(b, "songs", lambda rows, copy=True: [{**s, "genre": ""} for s in songs(rows, copy)])


def test_a_known_genre_is_never_overruled_by_the_genre_head(rec):
    b = rec.bundle
    user = b.user_ids[0].decode()
    got = rec.recommend_by_genre(user, k=50)
    contradicted = 0
    for g in got.genres:
        for s, conf in zip(g.songs, g.genre_confidences):
            assert s.genre == g.genre and conf == 1.0       # every fixture song has a catalog genre
            contradicted += b.genres[int(np.argmax(b.genre_probs(b.song_row(s.song_id))))] != s.genre
    assert contradicted > 0                                 # (the head guesses some of them wrong)


def test_an_undertrained_genre_head_files_nothing(rec, monkeypatch):
    b = rec.bundle
    _catalog_genres_unknown(monkeypatch, b)
    monkeypatch.setattr(b, "genre_warning", "the genre head learned from too little: a test")
    user = b.user_ids[0].decode()
    assert rec.recommend_by_genre(user, k=50).genres == []
    song = rec.song(b.song_id(0))
    assert song.genre_scores and song.genre_warning.startswith("the genre head learned from too little")


def test_a_song_without_a_known_genre_lands_under_its_most_likely_genre(rec, monkeypatch):
    b = rec.bundle
    _catalog_genres_unknown(monkeypatch, b)
    assert rec.song(b.song_id(0)).genre_warning == ""
    for u in range(0, b.n_users, 7):
        user = b.user_ids[u].decode()
        got = rec.recommend_by_genre(user, k=50)
        confidences = [g.confidence for g in got.genres]
        assert confidences == sorted(confidences, reverse=True) and sum(confidences) == pytest.approx(1.0)
        candidates = [b.song_id(it.song_row) for it in recommend(b, known_user_query(b, u), GENRE_CANDIDATES)]
        placed = []
        for g in got.genres:
            assert g.genre in b.genres and len(g.songs) == len(g.genre_confidences)
            for s, conf in zip(g.songs, g.genre_confidences):
                probs = b.genre_probs(b.song_row(s.song_id))      # every fixture song has audio
                assert b.genres[int(np.argmax(probs))] == g.genre and conf == pytest.approx(float(probs.max()))
                placed.append(s.song_id)
            order = [candidates.index(s.song_id) for s in g.songs]
            assert order == sorted(order)                         # best first, as recommended
        assert sorted(placed) == sorted(candidates)              # k 50: every candidate, once
        played = {b.song_id(r) for r in b.played(u)}
        assert not played & set(placed)


def test_k_genres_seeds_and_errors(rec):
    b = rec.bundle
    user = b.user_ids[3].decode()
    got = rec.recommend_by_genre(user, k=2, genres=[b.genres[0].upper()])
    assert [g.genre for g in got.genres] in ([b.genres[0]], [])
    assert all(len(g.songs) <= 2 for g in got.genres)
    seeds = rec.recommend_by_genre(seed_song_ids=[b.song_id(1), b.song_id(2)], k=3)
    assert seeds.folded_in and seeds.genres
    with pytest.raises(pmrs.NotFound):
        rec.recommend_by_genre("nobody")
    with pytest.raises(pmrs.InvalidArgument):
        rec.recommend_by_genre(user, k=5000)


def test_the_rpc_gives_what_the_api_gives(rec):
    from pmrs_server.servicer import BundleHolder, RecommenderServicer

    class Ctx:
        def time_remaining(self):
            return None

    servicer = RecommenderServicer(BundleHolder(rec))
    user = rec.bundle.user_ids[9].decode()
    resp = servicer.RecommendByGenre(pb.RecommendByGenreRequest(user_id=user, k=4), Ctx())
    want = rec.recommend_by_genre(user, k=4)
    assert [g.genre for g in resp.genres] == [g.genre for g in want.genres]
    for got, g in zip(resp.genres, want.genres):
        assert [s.song_id for s in got.songs] == [s.song_id for s in g.songs]
        assert np.allclose(got.song_confidences, g.genre_confidences) and got.confidence == pytest.approx(g.confidence)
