"""Default lists: computed by ``indexer build``, equal to the online answers, used by the server
only for the request they answer."""

import shutil
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np
import pytest

from pmrs.indexing import IndexerConfig, build_bundle
from pmrs.serving import default_lists as dl
from pmrs.serving.bundle import Bundle
from pmrs.serving.contract import LIST_KINDS, list_files
import pmrs.recommender as api
from pmrs import Recommender
from pmrs.serving.recommend import MIXED, listed_items, recommend, similar_songs, user_query
from pmrs.v1 import recommender_pb2 as pb

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def built(serving_workdir, tmp_path_factory):
    work = tmp_path_factory.mktemp("lists") / "work"
    shutil.copytree(serving_workdir, work)
    # two sources: the legacy Source enum (masks 1-3) is compared below; tests/test_metadata_source.py
    # holds a three-source bundle's lists to the online answers
    out = build_bundle(work, IndexerConfig(recall_queries=50, metadata=False), show_progress=False)
    b = Bundle.open(out, verify=True)
    yield work, out, b
    b.close()


def _online(b, row, k=10, share=0.2, diversity=0.0):
    q = user_query(b, b.user_ids[row].decode())
    return recommend(b, q, k, {"acoustic": share}, diversity)


def test_every_users_list_is_the_online_answer(built):
    _, out, b = built
    lists = b.lists["recommend"]
    assert (lists.k, lists.shares["acoustic"], lists.diversity) == (10, 0.2, 0.0)
    assert b.manifest["default_lists"]["recommend"]["k"] == 10
    assert {f for kind in LIST_KINDS for f in list_files(kind).values()} <= set(b.manifest["checksums"])
    sources = set()
    for row in range(b.n_users):
        items = listed_items(lists, row)
        assert items == _online(b, row), row
        sources |= {it.sources for it in items}
    assert sources >= {2, 3}   # cold songs (acoustic only) and songs both indexes hold


def test_every_songs_similar_list_is_the_online_answer(built):
    _, _, b = built
    lists = b.lists["similar"]
    assert (lists.k, lists.shares["acoustic"], lists.diversity) == (10, 0.2, 0.0)
    for row in range(b.n_songs):
        assert listed_items(lists, row) == similar_songs(b, row, 10, MIXED, {"acoustic": 0.2}, 0.0), row


def test_worker_processes_and_other_settings_give_the_online_answers(built, monkeypatch):
    _, out, b = built
    monkeypatch.setattr(dl, "CHUNK", 64)   # 200 users, 80 songs: several tasks over two processes
    for kind in LIST_KINDS:
        pooled = dl.compute_default_lists(b, kind, workers=2)
        for part in ("rows", "scores", "sources"):
            assert np.array_equal(pooled[part], getattr(b.lists[kind], part)), (kind, part)
    # MMR re-ranking, another share and k, lists shorter than k where a user has played most songs
    other = dl.compute_default_lists(b, k=60, shares={"acoustic": 0.5}, diversity=0.3, workers=1)
    assert other["rows"].shape == (b.n_users, 60)
    for row in range(0, b.n_users, 7):
        expected = _online(b, row, 60, 0.5, 0.3)
        n = len(expected)
        assert other["rows"][row, :n].tolist() == [it.song_row for it in expected]
        assert other["sources"][row, :n].tolist() == [it.sources for it in expected]
        assert (other["rows"][row, n:] == -1).all()


def test_batched_searches_in_several_faiss_calls_equal_one_query_searches(built, monkeypatch):
    from pmrs.serving import bundle as bundle_mod

    _, _, b = built
    monkeypatch.setattr(bundle_mod, "SEARCH_EACH_BATCH", 7)   # 200 queries: 29 FAISS calls
    for name in b.source_names:
        vectors = np.asarray(b.song_vectors(name, np.arange(b.n_songs))[1], np.float32)
        queries = np.resize(vectors, (200, vectors.shape[1])) * np.linspace(0.5, 1.5, 200, dtype=np.float32)[:, None]
        found = list(b.search_each(name, queries, 15))
        assert len(found) == 200
        for i, (scores, rows) in enumerate(found):
            one_scores, one_rows = b.search(name, queries[i:i + 1], 15)
            assert np.array_equal(rows, one_rows) and np.array_equal(scores, one_scores), (name, i)


def test_build_without_default_lists(serving_workdir, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(serving_workdir, work)
    out = build_bundle(work, IndexerConfig(recall_queries=50, default_lists=False), show_progress=False)
    assert not any((out / f).exists() for kind in LIST_KINDS for f in list_files(kind).values())
    with Bundle.open(out) as b:
        assert "default_lists" not in b.manifest and b.lists == {}


def test_lists_of_the_wrong_shape_are_refused(built, tmp_path):
    _, out, _ = built
    copy = tmp_path / "b"
    shutil.copytree(out, copy)
    rows = np.load(copy / list_files("similar")["rows"])
    np.save(copy / list_files("similar")["rows"], rows[:, :5])
    with pytest.raises(ValueError, match="default similar lists are not"):
        Bundle.open(copy)


def _same(b, resp, items) -> None:
    assert [s.song_id for s in resp.songs] == [b.song_id(it.song_row) for it in items]
    assert [s.source for s in resp.songs] == [it.sources for it in items]   # (masks 1-3 = the enum)
    assert np.allclose([s.score for s in resp.songs], [it.score for it in items], rtol=1e-6, atol=0)


class _Context:
    def time_remaining(self):
        return None

    def abort(self, code, message):
        raise grpc.RpcError(code, message)


def test_server_answers_only_the_default_request_from_the_lists(built, monkeypatch):
    import pmrs_server.servicer as sv

    _, _, b = built
    servicer = sv.RecommenderServicer(sv.BundleHolder(Recommender(b)))
    user = b.user_ids[3].decode()
    expected = _online(b, 3)

    def no_computing(*args, **kwargs):
        raise RuntimeError("computed")

    monkeypatch.setattr(api, "recommend", no_computing)
    for req in (pb.RecommendRequest(user_id=user), pb.RecommendRequest(user_id=user, k=10, diversity=0.0),
                pb.RecommendRequest(user_id=user, acoustic_share=0.2),    # float32: 0.2000000030
                pb.RecommendRequest(user_id=user, acoustic_share=0.24),   # the same quota: 2 of 10
                pb.RecommendRequest(user_id=user, seed_song_ids=[b.song_id(0)])):   # seeds: known user
        _same(b, servicer.Recommend(req, _Context()), expected)
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
    other = sv.RecommenderServicer(sv.BundleHolder(Recommender(b, b.defaults.replace(shares={"acoustic": 0.5}))))
    with pytest.raises(grpc.RpcError):
        other.Recommend(pb.RecommendRequest(user_id=user), _Context())


def test_server_answers_only_the_default_similar_songs_request_from_the_lists(built, monkeypatch):
    import pmrs_server.servicer as sv

    _, _, b = built
    servicer = sv.RecommenderServicer(sv.BundleHolder(Recommender(b)))
    song = b.song_id(5)
    expected = similar_songs(b, 5, 10, MIXED, {"acoustic": 0.2}, 0.0)

    def no_computing(*args, **kwargs):
        raise RuntimeError("computed")

    monkeypatch.setattr(api, "similar_songs", no_computing)
    for req in (pb.SimilarSongsRequest(song_id=song), pb.SimilarSongsRequest(song_id=song, k=10, diversity=0.0),
                pb.SimilarSongsRequest(song_id=song, mode=pb.SIMILARITY_MODE_MIXED, acoustic_share=0.2)):
        _same(b, servicer.SimilarSongs(req, _Context()), expected)
    genre = b.songs([0])[0]["genre"]
    for req in (pb.SimilarSongsRequest(song_id=song, k=11),
                pb.SimilarSongsRequest(song_id=song, mode=pb.SIMILARITY_MODE_ACOUSTIC),
                pb.SimilarSongsRequest(song_id=song, diversity=0.2),
                pb.SimilarSongsRequest(song_id=song, acoustic_share=0.5),
                pb.SimilarSongsRequest(song_id=song, filters=pb.Filters(genres=[genre]))):
        with pytest.raises(grpc.RpcError) as err:
            servicer.SimilarSongs(req, _Context())
        assert err.value.args[0] == grpc.StatusCode.INTERNAL, req
    with pytest.raises(grpc.RpcError) as err:   # an unknown song is NOT_FOUND before any lookup
        servicer.SimilarSongs(pb.SimilarSongsRequest(song_id="SOnope"), _Context())
    assert err.value.args[0] == grpc.StatusCode.NOT_FOUND


def _children(pid: int) -> set[int]:
    kids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                kids.add(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            pass
    return kids


def _is_worker(pid: int) -> bool:
    try:
        return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for an init that does not reap has exited)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_worker_processes_exit_when_the_build_is_killed(built):
    _, out, _ = built
    code = ("import sys; from pmrs.serving import default_lists as dl; dl.CHUNK = 1\n"
            "while True: dl.compute_default_lists(sys.argv[1], workers=2)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(out)], cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        workers: set[int] = set()
        while len(workers) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            workers = {p for p in _children(proc.pid) if _is_worker(p)}
        assert len(workers) == 2, "the pool's workers never started"
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in workers if _alive(p)]
