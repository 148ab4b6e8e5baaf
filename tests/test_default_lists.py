"""Default lists: computed by ``indexer build``, equal to the online answers, used by the server
only for the request they answer."""

import shutil

import grpc
import numpy as np
import pytest

from indexer.build import IndexerConfig, build_bundle
from pmrs.serving import default_lists as dl
from pmrs.serving.bundle import DEFAULT_LIST_FILES, Bundle
from pmrs.serving.recommend import default_list, recommend_for_vector, user_query
from pmrs.v1 import recommender_pb2 as pb


@pytest.fixture(scope="module")
def built(serving_workdir, tmp_path_factory):
    work = tmp_path_factory.mktemp("lists") / "work"
    shutil.copytree(serving_workdir, work)
    out = build_bundle(work, IndexerConfig(recall_queries=50), show_progress=False)
    b = Bundle.open(out, verify=True)
    yield work, out, b
    b.close()


def _online(b, row, k=10, share=0.2, diversity=0.0):
    q = user_query(b, b.user_ids[row].decode())
    return recommend_for_vector(b, q.vector, k, share, diversity, q.exclude_rows)


def test_every_users_list_is_the_online_answer(built):
    _, out, b = built
    lists = b.default_lists
    assert (lists.k, lists.acoustic_share, lists.diversity) == (10, 0.2, 0.0)
    assert b.manifest["default_lists"]["k"] == 10 and set(DEFAULT_LIST_FILES.values()) <= set(b.manifest["checksums"])
    sources = set()
    for row in range(b.n_users):
        items = default_list(b, row)
        assert items == _online(b, row), row
        sources |= {int(it.source) for it in items}
    assert sources >= {2, 3}   # cold songs (acoustic only) and songs both indexes hold


def test_worker_processes_and_other_settings_give_the_online_answers(built, monkeypatch):
    _, out, b = built
    monkeypatch.setattr(dl, "CHUNK_USERS", 64)   # 200 users: four tasks over two processes
    pooled = dl.compute_default_lists(b, workers=2)
    assert np.array_equal(pooled["rows"], b.default_lists.rows)
    assert np.array_equal(pooled["scores"], b.default_lists.scores)
    assert np.array_equal(pooled["sources"], b.default_lists.sources)
    # MMR re-ranking, another share and k, lists shorter than k where a user has played most songs
    other = dl.compute_default_lists(b, k=60, acoustic_share=0.5, diversity=0.3, workers=1)
    assert other["rows"].shape == (b.n_users, 60)
    for row in range(0, b.n_users, 7):
        expected = _online(b, row, 60, 0.5, 0.3)
        n = len(expected)
        assert other["rows"][row, :n].tolist() == [it.song_row for it in expected]
        assert other["sources"][row, :n].tolist() == [int(it.source) for it in expected]
        assert (other["rows"][row, n:] == -1).all()


def test_build_without_default_lists(serving_workdir, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(serving_workdir, work)
    out = build_bundle(work, IndexerConfig(recall_queries=50, default_lists=False), show_progress=False)
    assert "default_lists" not in Bundle.open(out).manifest
    assert not any((out / name).exists() for name in DEFAULT_LIST_FILES.values())
    with Bundle.open(out) as b:
        assert b.default_lists is None


def test_lists_of_the_wrong_shape_are_refused(built, tmp_path):
    _, out, _ = built
    copy = tmp_path / "b"
    shutil.copytree(out, copy)
    rows = np.load(copy / DEFAULT_LIST_FILES["rows"])
    np.save(copy / DEFAULT_LIST_FILES["rows"], rows[:, :5])
    with pytest.raises(ValueError, match="default lists"):
        Bundle.open(copy)


class _Context:
    def time_remaining(self):
        return None

    def abort(self, code, message):
        raise grpc.RpcError(code, message)


def test_server_answers_only_the_default_request_from_the_lists(built, monkeypatch):
    import server.servicer as sv

    _, _, b = built
    servicer = sv.RecommenderServicer(sv.BundleHolder(b))
    user = b.user_ids[3].decode()
    computed = servicer.Recommend(pb.RecommendRequest(user_id=user, k=10, acoustic_share=0.2), _Context())

    def no_computing(*args, **kwargs):
        raise RuntimeError("computed")

    monkeypatch.setattr(sv, "recommend_for_vector", no_computing)
    for req in (pb.RecommendRequest(user_id=user), pb.RecommendRequest(user_id=user, k=10, diversity=0.0),
                pb.RecommendRequest(user_id=user, acoustic_share=0.2),    # float32: 0.2000000030
                pb.RecommendRequest(user_id=user, acoustic_share=0.24),   # the same quota: 2 of 10
                pb.RecommendRequest(user_id=user, seed_song_ids=[b.song_id(0)])):   # seeds: known user
        resp = servicer.Recommend(req, _Context())
        assert [s.song_id for s in resp.songs] == [s.song_id for s in computed.songs]
        assert [s.score for s in resp.songs] == [s.score for s in computed.songs]
        assert [s.source for s in resp.songs] == [s.source for s in computed.songs]
    genre = b.songs([0])[0]["genre"]
    for req in (pb.RecommendRequest(user_id=user, k=11), pb.RecommendRequest(user_id=user, acoustic_share=0.25),
                pb.RecommendRequest(user_id=user, diversity=0.1),
                pb.RecommendRequest(user_id=user, include_played=True),
                pb.RecommendRequest(user_id=user, filters=pb.Filters(genres=[genre])),
                pb.RecommendRequest(seed_song_ids=[b.song_id(0)])):
        with pytest.raises(grpc.RpcError) as err:
            servicer.Recommend(req, _Context())
        assert err.value.args[0] == grpc.StatusCode.INTERNAL, req
    # a server whose default share differs from the lists' computes unset-share requests
    other = sv.RecommenderServicer(sv.BundleHolder(b), default_acoustic_share=0.5)
    with pytest.raises(grpc.RpcError):
        other.Recommend(pb.RecommendRequest(user_id=user), _Context())
