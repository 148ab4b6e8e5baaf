"""pmrs-server says how it is doing: Prometheus metrics scraped from a running server (calls and
errors by status code, latency, default-list hits against computed answers, the bundle and its
age, live writes, refused writes by reason, write-log lag), and JSON logs on request."""

import json
import urllib.request

import grpc
import pytest

import pmrs
from pmrs.telemetry import samples
from pmrs.v1 import recommender_pb2 as pb
from pmrs.v1 import recommender_pb2_grpc as pb_grpc
from pmrs_server.auth import Auth
from pmrs_server.main import serve

from servers import ServerProcess, code_of, work_with_bundle, wait_for

TOKEN = "metrics-test-write-token-0123456789"


@pytest.fixture(scope="module")
def work(serving_workdir, tmp_path_factory):
    return work_with_bundle(serving_workdir, tmp_path_factory, "metrics")


def scrape(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.status == 200
        return samples(r.read().decode())


def value(s: dict, name: str, **labels) -> float:
    return s.get((name, tuple(sorted(labels.items()))), 0.0)


def test_a_scrape_counts_what_the_server_did(work):
    running = serve(work, bind="127.0.0.1:0", auth=Auth(write=TOKEN), live_poll_seconds=3600.0)
    try:
        assert running.metrics_url.startswith("http://127.0.0.1:")
        channel = grpc.insecure_channel(running.address)
        stub = pb_grpc.RecommenderStub(channel)
        rec = running.holder.bundle
        user = rec.bundle.user_ids[0].decode()
        song = rec.bundle.song_id(0)
        write = (("authorization", f"Bearer {TOKEN}"),)
        before = scrape(running.metrics_url)
        assert value(before, "pmrs_bundle_loaded") == 1.0
        assert value(before, "pmrs_bundle_info", version=rec.version) == 1.0
        assert 0.0 <= value(before, "pmrs_bundle_age_seconds") < 3600

        assert stub.Recommend(pb.RecommendRequest(user_id=user)).precomputed            # a default list
        assert not stub.Recommend(pb.RecommendRequest(user_id=user, diversity=0.5)).precomputed  # computed
        stub.Recommend(pb.RecommendRequest(user_id=user, k=3))                           # computed
        assert code_of(stub.Recommend, pb.RecommendRequest(user_id="nobody"))[0] == grpc.StatusCode.NOT_FOUND
        assert code_of(stub.Recommend, pb.RecommendRequest(user_id=user, k=5000))[0] == \
            grpc.StatusCode.INVALID_ARGUMENT
        stub.RecordPlays(pb.RecordPlaysRequest(user_id="m-user", plays=[pb.Play(song_id=song, count=2)]),
                         metadata=write)
        assert code_of(stub.RecordPlays, pb.RecordPlaysRequest(user_id="m-user", plays=[pb.Play(song_id=song,
                       count=2)]))[0] == grpc.StatusCode.UNAUTHENTICATED
        assert code_of(stub.RecordPlays, pb.RecordPlaysRequest(user_id="m-user\x00",
                       plays=[pb.Play(song_id=song, count=2)]), metadata=write)[0] == grpc.StatusCode.INVALID_ARGUMENT

        s = scrape(running.metrics_url)
        assert value(s, "pmrs_calls_total", method="Recommend", code="OK") == 3
        assert value(s, "pmrs_calls_total", method="Recommend", code="NOT_FOUND") == 1
        assert value(s, "pmrs_calls_total", method="Recommend", code="INVALID_ARGUMENT") == 1
        assert value(s, "pmrs_answers_total", method="Recommend", answer="precomputed") == 1
        assert value(s, "pmrs_answers_total", method="Recommend", answer="computed") == 2
        assert value(s, "pmrs_call_seconds_count", method="Recommend") == 5
        assert value(s, "pmrs_call_seconds_sum", method="Recommend") > 0
        assert value(s, "pmrs_live_writes_total", kind="plays") == 1
        assert value(s, "pmrs_writes_refused_total", kind="plays", reason="UNAUTHENTICATED") == 1
        assert value(s, "pmrs_writes_refused_total", kind="plays", reason="INVALID_ARGUMENT") == 1
        assert value(s, "pmrs_calls_in_flight") == 0 and value(s, "pmrs_compute_queue_depth") == 0
        seq = value(s, "pmrs_live_sequence")
        assert seq >= 1 and value(s, "pmrs_write_log_lag") == 0

        # another process writes to the log; this server (polling hourly here) trails it by one
        with pmrs.Recommender.open(work, live=True) as other:
            other.record_plays("other-replica-user", {song: 1})
        s = scrape(running.metrics_url)
        assert value(s, "pmrs_write_log_lag") == 1 and value(s, "pmrs_live_sequence") == seq
        channel.close()
    finally:
        running.stop(grace=1.0)
    with pytest.raises(OSError):   # the endpoint closed with the server
        scrape(running.metrics_url)


def test_metrics_stay_on_loopback_unless_asked(work):
    with pytest.raises(ValueError, match="loopback"):
        serve(work, bind="127.0.0.1:0", metrics_bind="0.0.0.0:0")
    running = serve(work, bind="127.0.0.1:0", metrics_bind="")
    try:
        assert running.metrics_url is None
    finally:
        running.stop(grace=0.5)


def test_json_logs_on_request(work, tmp_path):
    s = ServerProcess(work, tmp_path / "server.log", "--log-format", "json", "--metrics-bind", "127.0.0.1:0")
    try:
        assert wait_for(lambda: "metrics on" in s.stderr(), timeout=30)
    finally:
        assert s.stop() == 0
    lines = [json.loads(line) for line in s.log_path.read_text().splitlines() if line.strip()]
    assert lines and all({"time", "level", "logger", "message"} <= set(x) for x in lines)
    assert any("listening on" in x["message"] for x in lines)
