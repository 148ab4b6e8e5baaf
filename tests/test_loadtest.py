"""pmrs_clients.loadtest (run_loadtest, pmrs-loadtest) against a fake server on a real port."""

from __future__ import annotations

import json
import socket
import threading
from collections import Counter

import grpc
import numpy as np
import pytest
from conftest import running_fake

from pmrs_clients import loadtest
from pmrs_clients.loadtest import format_report, load_ids, parse_mix, run_loadtest
from pmrs.v1 import recommender_pb2 as pb
from pmrs.v1 import recommender_pb2_grpc as pb_grpc

SONG = pb.ScoredSong(song_id="SOAAA", title="t", artist="a", score=1.0,
                     source=pb.SOURCE_COLLABORATIVE)


class CountingRecommender(pb_grpc.RecommenderServicer):
    """Counts calls (and errors) per method; ids starting with ``bad`` -> NOT_FOUND, ``busy``
    -> UNAVAILABLE."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: Counter = Counter()
        self.errors: Counter = Counter()  # (method, code name)
        self.ids: set[str] = set()
        self.shares: set = set()   # acoustic_share of Recommend/SimilarSongs (None: unset)

    def _enter(self, method: str, key: str, context) -> None:
        code = (grpc.StatusCode.NOT_FOUND if key.startswith("bad") else
                grpc.StatusCode.UNAVAILABLE if key.startswith("busy") else None)
        with self.lock:
            self.calls[method] += 1
            self.ids.add(key)
            if code is not None:
                self.errors[(method, code.name)] += 1
        if code is not None:
            context.abort(code, f"fake {code.name} for {key}")

    def _share(self, request) -> None:
        with self.lock:
            self.shares.add(request.acoustic_share if request.HasField("acoustic_share") else None)

    def Recommend(self, request, context):
        self._share(request)
        self._enter("Recommend", request.user_id, context)
        return pb.RecommendResponse(songs=[SONG] * request.k, bundle_version="v")

    def SimilarSongs(self, request, context):
        self._share(request)
        self._enter("SimilarSongs", request.song_id, context)
        return pb.SimilarSongsResponse(songs=[SONG] * request.k, bundle_version="v")

    def GetSong(self, request, context):
        self._enter("GetSong", request.song_id, context)
        return pb.GetSongResponse(song=pb.Song(song_id=request.song_id))

    def Ping(self, request, context):
        self._enter("Ping", "", context)
        return pb.PingResponse()


@pytest.fixture
def fake():
    with running_fake(CountingRecommender()) as servicer:
        yield servicer


def check_stats(s: dict) -> None:
    assert s["ok"] + sum(s["errors"].values()) == s["calls"]
    lat = s["latency_ms"]
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    assert lat["mean"] <= lat["max"]


@pytest.mark.parametrize("engine, duration_s", [("threads", 1.0), ("aio", 0.5)])
def test_counts_match_the_server(fake, engine, duration_s):
    report = run_loadtest(fake.target, 2, duration_s, {"recommend": 0.7, "similar": 0.3},
                          ["u1", "u2"], ["s1", "s2"], k=5, engine=engine)
    overall, rpcs = report["overall"], report["rpcs"]
    assert overall["calls"] == sum(fake.calls.values()) > 10
    assert rpcs["recommend"]["calls"] == fake.calls["Recommend"]
    assert rpcs["similar"]["calls"] == fake.calls["SimilarSongs"]
    assert fake.calls["Recommend"] > fake.calls["SimilarSongs"] > 0  # 70/30
    assert overall["errors"] == {} and overall["ok"] == overall["calls"]
    for s in (overall, *rpcs.values()):
        check_stats(s)
    assert report["elapsed_s"] >= duration_s
    assert overall["qps"] == pytest.approx(overall["calls"] / report["elapsed_s"])
    assert report["mix"] == {"recommend": 0.7, "similar": 0.3}
    assert report["engine"] == engine and report["concurrency"] == 2
    assert fake.ids == {"u1", "u2", "s1", "s2"}


@pytest.mark.parametrize("engine", ["threads", "aio"])
def test_errors_counted_by_code(fake, engine):
    report = run_loadtest(fake.target, 2, 0.4, "recommend=1,similar=1", ["u1", "bad-user"],
                          ["s1", "busy-song"], engine=engine)
    rpcs = report["rpcs"]
    assert rpcs["recommend"]["errors"] == {"NOT_FOUND": fake.errors[("Recommend", "NOT_FOUND")]}
    # UNAVAILABLE is counted, not retried: one server call per recorded call
    assert rpcs["similar"]["errors"] == {
        "UNAVAILABLE": fake.errors[("SimilarSongs", "UNAVAILABLE")]}
    assert rpcs["similar"]["calls"] == fake.calls["SimilarSongs"]
    assert report["overall"]["errors"] == {
        "NOT_FOUND": rpcs["recommend"]["errors"]["NOT_FOUND"],
        "UNAVAILABLE": rpcs["similar"]["errors"]["UNAVAILABLE"]}
    assert 0 < report["overall"]["ok"] < report["overall"]["calls"]
    check_stats(report["overall"])
    text = format_report(report)
    assert "NOT_FOUND" in text and "UNAVAILABLE" in text


def test_warmup_calls_are_not_recorded(fake):
    report = run_loadtest(fake.target, 1, 0.2, {"ping": 1}, warmup_s=0.2, engine="threads")
    assert 0 < report["overall"]["calls"] < fake.calls["Ping"]


def test_ids_from_a_bundle(fake, tmp_path):
    bundle = tmp_path / "bundles" / "20260101-000000-ab12"
    bundle.mkdir(parents=True)
    np.save(bundle / "user_ids.npy", np.array([b"uA", b"uB", b"uC"]))
    np.save(bundle / "song_ids.npy", np.array([b"SOX", b"SOY"]))
    (tmp_path / "bundles" / "CURRENT").write_text(bundle.name + "\n")
    for where in (bundle, tmp_path / "bundles", tmp_path):
        users, songs = load_ids(where)
        assert users.tolist() == [b"uA", b"uB", b"uC"] and songs.tolist() == [b"SOX", b"SOY"]
    report = run_loadtest(fake.target, 2, 0.3, "recommend=0.5,song=0.5", users, songs)
    assert report["overall"]["calls"] == sum(fake.calls.values())
    assert fake.ids <= {"uA", "uB", "uC", "SOX", "SOY"} and "uA" in fake.ids
    with pytest.raises(FileNotFoundError):
        load_ids(tmp_path / "nowhere")


def test_cli_prints_table_and_writes_json(fake, tmp_path, capsys):
    out_file = tmp_path / "reports" / "load.json"
    code = loadtest.main(["--target", fake.target, "--rpc", "ping", "--concurrency", "2",
                          "--duration", "0.3", "--warmup", "0", "--json", str(out_file)])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.splitlines()
    assert any(line.split()[:1] == ["ping"] for line in lines)
    assert any(line.split()[:1] == ["all"] for line in lines)
    report = json.loads(out_file.read_text())
    assert report["target"] == fake.target and report["concurrency"] == 2
    assert report["duration_s"] == 0.3 and report["mix"] == {"ping": 1.0} and report["date"]
    assert report["overall"]["calls"] == fake.calls["Ping"]
    assert list(out_file.parent.iterdir()) == [out_file]  # no temp file left


def test_acoustic_share_is_sent_only_when_given(fake):
    mix = {"recommend": 0.5, "similar": 0.5}
    run_loadtest(fake.target, 2, 0.2, mix, ["u1"], ["s1"])
    assert fake.shares == {None}
    fake.shares.clear()
    report = run_loadtest(fake.target, 2, 0.2, mix, ["u1"], ["s1"], acoustic_share=0.25)
    assert fake.shares == {0.25} and report["acoustic_share"] == 0.25
    assert fake.calls["Recommend"] and fake.calls["SimilarSongs"]
    with pytest.raises(ValueError, match="acoustic_share"):
        run_loadtest(fake.target, 1, 0.1, mix, ["u1"], ["s1"], acoustic_share=1.5)


def test_cli_failures(fake, capsys):
    assert loadtest.main(["--target", fake.target, "--mix", "recommend=1", "--duration",
                          "0.1"]) == 2  # no ids: bad arguments
    assert "no user ids" in capsys.readouterr().err
    assert loadtest.main(["--mix", "recommend=1", "--rpc", "ping"]) == 2
    assert loadtest.main(["--rpc", "teleport"]) == 2


def test_unreachable_target():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for engine in ("threads", "aio"):
        with pytest.raises(ConnectionError, match="cannot reach"):
            run_loadtest(f"127.0.0.1:{port}", 1, 0.1, {"ping": 1}, engine=engine,
                         connect_timeout_s=0.2)


def test_parse_mix():
    assert parse_mix("recommend=0.7,similar=0.3") == {"recommend": 0.7, "similar": 0.3}
    assert parse_mix("recommend=3, similar=1, ping=0") == {"recommend": 0.75, "similar": 0.25}
    for bad in ("recommend", "teleport=1", "ping=-1", "ping=0", "ping=x"):
        with pytest.raises(ValueError):
            parse_mix(bad)
