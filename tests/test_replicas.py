"""Replicas: several pmrs-server processes over one work directory, one client balancing over
them round robin; a bundle swap and a kill -9 of one replica cost a retrying client no call."""

import threading
import time

import pytest

from pmrs import connect
from pmrs import PMRSError
from pmrs.channel import channel_target
from pmrs.indexing import IndexerConfig, build_bundle
from pmrs.serving.contract import read_current
from servers import ServerProcess, wait_for, work_with_bundle


@pytest.fixture(scope="module")
def work(serving_workdir, tmp_path_factory):
    return work_with_bundle(serving_workdir, tmp_path_factory, "replicas", default_lists=False)


def test_targets_of_several_replicas():
    assert channel_target("127.0.0.1:1") == ("127.0.0.1:1", [])
    target, opts = channel_target("127.0.0.1:1, localhost:2")
    assert target == "ipv4:127.0.0.1:1,127.0.0.1:2" and ("grpc.lb_policy_name", "round_robin") in opts
    assert channel_target(["[::1]:1", "[::1]:2"])[0] == "ipv6:[::1]:1,[::1]:2"
    assert channel_target("dns:///pmrs.internal:50051")[1] == [("grpc.lb_policy_name", "round_robin")]
    # gRPC's own name for several addresses (the replicas' docs write it so) passes as it is
    assert channel_target("ipv4:127.0.0.1:50051,127.0.0.1:50052") == \
        ("ipv4:127.0.0.1:50051,127.0.0.1:50052", [("grpc.lb_policy_name", "round_robin")])
    assert channel_target("ipv6:[::1]:1,[::1]:2")[0] == "ipv6:[::1]:1,[::1]:2"
    for bad in ("a.example:1,b.example:2", "127.0.0.1:1,[::1]:2", "127.0.0.1,127.0.0.2", ""):
        with pytest.raises(ValueError):
            channel_target(bad)


def test_two_replicas_share_the_load_and_survive_a_swap_and_a_kill(work, tmp_path):
    a = ServerProcess(work, tmp_path / "a.log", "--poll-seconds", "0.2")
    b = ServerProcess(work, tmp_path / "b.log", "--poll-seconds", "0.2")
    try:
        with connect([a.address, b.address], timeout=20, retries=4) as client:
            seen = {client.info().server for _ in range(40)}
            assert len(seen) == 2, seen            # both replicas took calls
            with connect(f"ipv4:{a.address},{b.address}", timeout=20) as named:   # gRPC's own form
                assert len({named.info().server for _ in range(40)}) == 2
            old = client.info().version
            from pmrs.serving.bundle import Bundle
            from pmrs.serving.contract import current_bundle
            with Bundle.open(current_bundle(work)) as bundle:
                user = bundle.user_ids[0].decode()
            calls, failures = [0], []
            stop = threading.Event()

            def load():
                with connect([a.address, b.address], timeout=20, retries=4) as c:
                    while not stop.is_set():
                        try:
                            assert c.recommend(user, k=5).songs
                            c.info()
                            calls[0] += 1
                        except PMRSError as exc:
                            failures.append(exc)

            threads = [threading.Thread(target=load) for _ in range(4)]
            for t in threads:
                t.start()
            time.sleep(1.0)
            assert read_current(work) == old
            build_bundle(work, IndexerConfig(recall_queries=20, metadata=False, default_lists=False),
                         show_progress=False)
            new = read_current(work)
            assert new != old
            assert wait_for(lambda: {client.info().version for _ in range(10)} == {new}, timeout=30)
            before_kill = calls[0]
            b.proc.kill()                           # kill -9 one replica under load
            b.proc.wait()
            time.sleep(2.0)
            stop.set()
            for t in threads:
                t.join()
            assert not failures, failures[:3]
            assert calls[0] > before_kill + 10     # the survivor kept answering
    finally:
        a.stop()
        b.kill()
