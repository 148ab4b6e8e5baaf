"""A damaged bundle is never served (issue 10): the server refuses it with one log line and keeps
the bundle it has, and a bundle it read into memory survives its files being truncated."""

import json
import logging
import shutil

import grpc
import numpy as np
import pytest

from pmrs.indexing import IndexerConfig, build_bundle
from pmrs.serving import contract
from pmrs.v1 import recommender_pb2 as pb
from pmrs.v1 import recommender_pb2_grpc as pb_grpc
from pmrs_server.main import serve


@pytest.fixture
def work(serving_workdir, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(serving_workdir, work)
    build_bundle(work, IndexerConfig(recall_queries=50), show_progress=False)
    return work


def _damaged_copy(work, name, damage) -> str:
    """A copy of the current bundle under a new version name, damaged by ``damage(path)``."""
    src = contract.current_bundle(work)
    dst = contract.bundles_dir(work) / name
    shutil.copytree(src, dst)
    m = json.loads((dst / contract.MANIFEST_FILE).read_text())
    m["version"] = name
    (dst / contract.MANIFEST_FILE).write_text(json.dumps(m))
    damage(dst)
    return name


def _nan_factors(path):
    a = np.load(path / contract.USER_FACTORS_FILE)
    a[0, 0] = np.nan
    np.save(path / contract.USER_FACTORS_FILE, a)


def _scribbled_index(path):
    f = path / "collaborative.faiss"
    data = bytearray(f.read_bytes())
    data[-16:] = b"\x7f" * 16
    f.write_bytes(bytes(data))


def _unsorted_users(path):
    a = np.load(path / contract.USER_IDS_FILE)
    np.save(path / contract.USER_IDS_FILE, a[::-1])


def _lists_out_of_range(path):
    a = np.load(path / "recommend_rows.npy")
    a[2, 3] = 1 << 30
    np.save(path / "recommend_rows.npy", a)


@pytest.mark.parametrize("damage", [_nan_factors, _scribbled_index, _unsorted_users, _lists_out_of_range],
                         ids=lambda f: f.__name__.strip("_"))
def test_a_damaged_bundle_is_refused_once_and_the_old_one_keeps_serving(work, damage, caplog):
    good = contract.current_bundle(work).name
    server = serve(work, bind="127.0.0.1:0", poll_seconds=3600)
    channel = grpc.insecure_channel(server.address)
    stub = pb_grpc.RecommenderStub(channel)
    try:
        with server.holder.use() as served:
            user = served.bundle.user_ids[5].decode()
        before = stub.Recommend(pb.RecommendRequest(user_id=user, k=8), timeout=5)
        bad = _damaged_copy(work, "20990101-000000-dead", damage)
        contract.switch_current(work, bad)
        with caplog.at_level(logging.INFO, logger="pmrs.server"):
            for _ in range(3):
                server.watcher.check()      # (a retry of the same damage is not logged again)
        refused = [r for r in caplog.records if "cannot open bundle" in r.getMessage()]
        assert len(refused) == 1 and bad in refused[0].getMessage() and not refused[0].exc_info
        assert stub.GetBundleInfo(pb.GetBundleInfoRequest(), timeout=5).version == good
        after = stub.Recommend(pb.RecommendRequest(user_id=user, k=8), timeout=5)
        assert [s.song_id for s in after.songs] == [s.song_id for s in before.songs]
        assert all(np.isfinite(s.score) for s in after.songs)
    finally:
        channel.close()
        server.stop(grace=0)


def test_a_bundle_read_into_memory_survives_truncated_files(work):
    server = serve(work, bind="127.0.0.1:0", poll_seconds=3600)
    channel = grpc.insecure_channel(server.address)
    stub = pb_grpc.RecommenderStub(channel)
    try:
        with server.holder.use() as served:
            assert served.bundle.in_memory
            user, path = served.bundle.user_ids[7].decode(), served.bundle.path
        expected = [stub.Recommend(pb.RecommendRequest(user_id=user, k=k), timeout=5).songs for k in (10, 30)]
        for f in path.iterdir():
            if f.suffix in (".npy", ".faiss"):
                with open(f, "r+b") as fh:
                    fh.truncate(16)
        for k, want in zip((10, 30), expected):    # a lookup and a computed answer, as before
            got = stub.Recommend(pb.RecommendRequest(user_id=user, k=k), timeout=5).songs
            assert [s.song_id for s in got] == [s.song_id for s in want]
        assert len(stub.SimilarSongs(pb.SimilarSongsRequest(song_id=want[0].song_id, k=20), timeout=5).songs) == 20
    finally:
        channel.close()
        server.stop(grace=0)
