"""pmrs-server under attack (issue 10): half-sent requests, callers that hold the compute slot,
protocol junk, overlong ids, plaintext off loopback, TLS, and a damaged or vanished
``bundles/CURRENT``. In process (``pmrs_server.main.serve``) on 127.0.0.1, with a tiny bundle."""

import json
import logging
import os
import shutil
import threading
import time
from contextlib import contextmanager

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import pmrs
from half_open import HalfOpenCall
from pmrs.indexing import IndexerConfig, build_bundle
from pmrs.v1 import recommender_pb2 as pb
from pmrs.v1 import recommender_pb2_grpc as pb_grpc
from pmrs_server.main import serve

RECOMMEND = "/pmrs.v1.Recommender/Recommend"
SERVICE = "pmrs.v1.Recommender"


@pytest.fixture(scope="module")
def work(serving_workdir, tmp_path_factory):
    work = tmp_path_factory.mktemp("transport") / "work"
    shutil.copytree(serving_workdir, work)
    return work


@pytest.fixture(scope="module")
def bundle_dir(work):
    return build_bundle(work, IndexerConfig(recall_queries=50), show_progress=False)


@contextmanager
def running(work, **kwargs):
    """``serve(work)`` on a free loopback port; yields (server, channel, stub, health stub)."""
    kwargs.setdefault("poll_seconds", 3600)
    server = serve(work, bind="127.0.0.1:0", **kwargs)
    channel = grpc.insecure_channel(server.address)
    try:
        yield server, channel, pb_grpc.RecommenderStub(channel), health_pb2_grpc.HealthStub(channel)
    finally:
        channel.close()
        server.stop(grace=0)


def a_user(server) -> str:
    with server.holder.use() as served:
        return served.bundle.user_ids[0].decode()


def a_song(server) -> str:
    with server.holder.use() as served:
        return served.bundle.song_ids[0].decode()


def health_status(health, name=""):
    return health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5).status


def no_tracebacks(caplog) -> bool:
    return not [r for r in caplog.records if r.exc_info]


# --- slow and many clients --------------------------------------------------------------------


def test_half_sent_requests_do_not_stall_the_server(work, bundle_dir):
    # The thread-per-call server gave each of these a worker thread to wait in; with 2 workers
    # Ping, Recommend and health then all timed out until the connections closed.
    with running(work, workers=2) as (server, channel, stub, health):
        user = a_user(server)
        slow = [HalfOpenCall(server.address, RECOMMEND).open() for _ in range(3)]
        slow.append(HalfOpenCall(server.address, RECOMMEND, streams=8).open())
        try:
            time.sleep(0.3)  # (let the server take them in)
            for _ in range(3):
                assert stub.Ping(pb.PingRequest(), timeout=2) == pb.PingResponse()
                assert len(stub.Recommend(pb.RecommendRequest(user_id=user), timeout=2).songs) == 10
                assert health_status(health) == health_pb2.HealthCheckResponse.SERVING
                assert stub.GetBundleInfo(pb.GetBundleInfoRequest(), timeout=2).version == bundle_dir.name
            # the slow calls are still open: the server answered others meanwhile, not by dropping them
            assert all(c.alive() and not any(e.is_set() for e in c.ended.values()) for c in slow)
        finally:
            for c in slow:
                c.close()


def test_a_request_not_sent_in_time_is_ended_by_the_server(work, bundle_dir, monkeypatch):
    import pmrs_server.transport as transport

    monkeypatch.setattr(transport, "REQUEST_READ_SECONDS", 0.3)
    with running(work) as (server, channel, stub, health):
        with HalfOpenCall(server.address, RECOMMEND, streams=2) as slow:
            assert all(e.wait(10) for e in slow.ended.values())  # both calls ended by the server
            assert stub.Ping(pb.PingRequest(), timeout=2) == pb.PingResponse()


def test_cheap_methods_do_not_wait_behind_computing_calls(work, bundle_dir):
    # Four computed Recommends hold the one compute slot and both worker threads (each search
    # made to take 1 s); Ping, GetBundleInfo, GetSong, health, and the default Recommend and
    # SimilarSongs (lookups in the default lists, answered on the event loop) answer meanwhile.
    with running(work, workers=2) as (server, channel, stub, health):
        user, song = a_user(server), a_song(server)
        with server.holder.use() as served:
            bundle = served.bundle
            search, entered = bundle.search, threading.Event()

            def slow_search(*args, **kwargs):
                entered.set()
                time.sleep(1.0)
                return search(*args, **kwargs)

            bundle.search = slow_search
        heavy = pb.RecommendRequest(user_id=user, k=50, diversity=1.0)   # not a default list: computed
        results: list = []
        callers = [threading.Thread(target=lambda: results.append(len(stub.Recommend(heavy, timeout=60).songs)))
                   for _ in range(4)]
        try:
            for t in callers:
                t.start()
            assert entered.wait(10)
            for _ in range(5):
                assert stub.Ping(pb.PingRequest(), timeout=0.5) == pb.PingResponse()
                assert stub.GetBundleInfo(pb.GetBundleInfoRequest(), timeout=0.5).version == bundle_dir.name
                assert stub.GetSong(pb.GetSongRequest(song_id=song), timeout=0.5).song.song_id == song
                assert health_status(health) == health_pb2.HealthCheckResponse.SERVING
                assert len(stub.Recommend(pb.RecommendRequest(user_id=user), timeout=0.5).songs) == 10
                assert len(stub.SimilarSongs(pb.SimilarSongsRequest(song_id=song), timeout=0.5).songs) == 10
        finally:
            for t in callers:
                t.join()
            bundle.search = search
        assert len(results) == 4 and all(n > 0 for n in results)


# --- protocol junk ---------------------------------------------------------------------------


def _raw(channel, method):
    """A unary call that sends and receives raw bytes (no (de)serialisation on the client)."""
    return channel.unary_unary(f"/{SERVICE}/{method}", request_serializer=None, response_deserializer=None)


@pytest.mark.parametrize("method,payload", [
    ("Recommend", b"\xff\xff\xff\xff"),                                                 # bad wire format
    ("Recommend", pb.RecommendRequest(user_id="ab").SerializeToString().replace(b"ab", b"\xff\xfe")),  # bad UTF-8
    ("SimilarSongs", b"\x0a\x05ab"),                                                    # truncated field
    ("GetSong", pb.GetSongRequest(song_id="ab").SerializeToString().replace(b"ab", b"\xc3\x28")),
    ("GetBundleInfo", b"\x08"),
    ("Ping", b"\xff"),
])
def test_protocol_junk_is_invalid_argument_without_a_traceback(work, bundle_dir, caplog, method, payload):
    caplog.set_level(logging.DEBUG)
    with running(work) as (server, channel, stub, health):
        for _ in range(3):
            with pytest.raises(grpc.RpcError) as err:
                _raw(channel, method)(payload, timeout=5)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "malformed request" in err.value.details()
        assert stub.Ping(pb.PingRequest(), timeout=2) == pb.PingResponse()  # and it serves on
    assert no_tracebacks(caplog), [r.getMessage() for r in caplog.records if r.exc_info]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "malformed" in r.getMessage()]


def test_well_formed_raw_bytes_are_answered(work, bundle_dir):
    with running(work) as (server, channel, stub, health):
        raw = _raw(channel, "GetSong")(pb.GetSongRequest(song_id=a_song(server)).SerializeToString(), timeout=5)
        assert pb.GetSongResponse.FromString(raw).song.song_id == a_song(server)


def test_an_overlong_unknown_id_is_not_found_with_a_short_message(work, bundle_dir):
    from pmrs_server.transport import MAX_DETAILS_CHARS

    long_id = "x" * 10_000 + "END"
    with running(work) as (server, channel, stub, health):
        for call, request in ((stub.GetSong, pb.GetSongRequest(song_id=long_id)),
                              (stub.SimilarSongs, pb.SimilarSongsRequest(song_id=long_id)),
                              (stub.Recommend, pb.RecommendRequest(user_id=long_id))):
            with pytest.raises(grpc.RpcError) as err:
                call(request, timeout=5)
            assert err.value.code() == grpc.StatusCode.NOT_FOUND, err.value.details()
            assert len(err.value.details()) <= MAX_DETAILS_CHARS + 1 and "END" not in err.value.details()
        with pytest.raises(grpc.RpcError) as err:   # the song methods quote a short prefix
            stub.GetSong(pb.GetSongRequest(song_id=long_id), timeout=5)
        assert len(err.value.details()) < 200 and "characters)" in err.value.details()


def test_quote_prefix():
    from pmrs.text import quote_prefix

    assert quote_prefix("abc") == "'abc'"
    long = quote_prefix("x" * 1_000_000)
    assert len(long) < 100 and "1000000" in long


# --- who may connect: plaintext on loopback only, TLS --------------------------------------------


def test_plaintext_off_loopback_is_refused_unless_insecure(work, capsys, caplog):
    from pmrs_server.main import is_loopback, main, server_credentials

    for host in ("127.0.0.1", "127.3.4.5", "localhost", "[::1]", "::1"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "[::]", "::", "192.168.1.20", "10.0.0.1", "example.org"):
        assert not is_loopback(host), host
    for bind in ("0.0.0.0:50051", "[::]:50051", "192.168.1.20:50051"):
        with pytest.raises(ValueError, match="refusing to serve plaintext"):
            server_credentials(None, None, bind, insecure=False)
    # the command refuses before it listens: exit 2, the reason on stderr
    assert main(["--workdir", str(work), "--bind", "0.0.0.0:0", "-q"]) == 2
    err = capsys.readouterr().err
    assert "refusing to serve plaintext on 0.0.0.0:0" in err and "--insecure" in err
    assert main(["--workdir", str(work), "--bind", "127.0.0.1:0", "--tls-cert", "c.pem", "-q"]) == 2
    assert "go together" in capsys.readouterr().err
    # --insecure: allowed, with a warning (checked without listening on a public address)
    with caplog.at_level(logging.WARNING, logger="pmrs.server"):
        assert server_credentials(None, None, "0.0.0.0:50051", insecure=True) is None
    assert any("PLAINTEXT" in r.getMessage() for r in caplog.records)


def test_tls(work, bundle_dir, tls_files):
    from pmrs_server.main import server_credentials

    cert, key = tls_files["cert"], tls_files["key"]
    assert server_credentials(cert, key, "0.0.0.0:50051", insecure=False) is not None  # TLS: any address
    server = serve(work, bind="127.0.0.1:0", poll_seconds=3600, tls_cert=cert, tls_key=key)
    try:
        creds = grpc.ssl_channel_credentials(root_certificates=tls_files["ca"].read_bytes())
        with grpc.secure_channel(server.address, creds) as channel:
            stub = pb_grpc.RecommenderStub(channel)
            assert stub.Ping(pb.PingRequest(), timeout=10) == pb.PingResponse()
            assert stub.GetBundleInfo(pb.GetBundleInfoRequest(), timeout=10).version == bundle_dir.name
        with grpc.insecure_channel(server.address) as plain:   # plaintext is not answered
            with pytest.raises(grpc.RpcError) as err:
                pb_grpc.RecommenderStub(plain).Ping(pb.PingRequest(), timeout=3)
            assert err.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    finally:
        server.stop(grace=0)


def test_mutual_tls_and_a_read_token_for_every_client(work, bundle_dir, tls_files, tmp_path, capsys):
    """A server that wants a client certificate its CA signed and a read token: the Python
    client, pmrs-client and pmrs-loadtest (both engines) get through with both and are refused
    without either."""
    from pmrs_clients.cli import main as client_main
    from pmrs_clients.loadtest import main as loadtest_main
    from pmrs_clients.loadtest import run_loadtest
    from pmrs_server.auth import Auth

    read = "r" * 24
    server = serve(work, bind="127.0.0.1:0", poll_seconds=3600, tls_cert=tls_files["cert"],
                   tls_key=tls_files["key"], tls_client_ca=tls_files["ca"], auth=Auth(write=None, read=read))
    mine = {"ca_file": tls_files["ca"], "cert_file": tls_files["client_cert"], "key_file": tls_files["client_key"]}
    try:
        with pmrs.connect(server.address, retries=0, token=read, **mine) as client:
            assert client.info().version == bundle_dir.name
        with pmrs.connect(server.address, retries=0, token="w" * 24, **mine) as client:
            with pytest.raises(pmrs.PermissionDenied):
                client.ping()
        for files in ({"ca_file": tls_files["ca"]},                                   # no certificate
                      {**mine, "ca_file": tls_files["other_ca"]}):                    # server not trusted
            with pmrs.connect(server.address, retries=0, timeout=3, token=read, **files) as client:
                with pytest.raises(pmrs.Unavailable):
                    client.ping()

        token_file = tmp_path / "read.token"
        token_file.write_text(read + "\n")
        flags = ["--target", server.address, "--ca-file", str(tls_files["ca"]),
                 "--cert-file", str(tls_files["client_cert"]), "--key-file", str(tls_files["client_key"]),
                 "--token-file", str(token_file)]
        assert client_main([*flags, "--json", "info"]) == 0
        assert json.loads(capsys.readouterr().out)["version"] == bundle_dir.name
        for engine in ("aio", "threads"):
            report = run_loadtest(server.address, 2, 0.5, {"ping": 1.0}, engine=engine, token=read,
                                  ca_file=str(tls_files["ca"]), cert_file=str(tls_files["client_cert"]),
                                  key_file=str(tls_files["client_key"]))
            assert report["overall"]["calls"] > 0 and report["overall"]["errors"] == {}
            bare = run_loadtest(server.address, 2, 0.5, {"ping": 1.0}, engine=engine, token="",
                                **{k: str(v) for k, v in mine.items()})
            assert bare["overall"]["ok"] == 0 and set(bare["overall"]["errors"]) == {"UNAUTHENTICATED"}
        from pmrs.web.app import create_app
        from webworld import page_client

        for conn, status in ((mine, 200), ({"tls": True, "ca_file": tls_files["ca"]}, 503)):
            app = create_app(work, server.address, token=read, retries=0, timeout_s=3,
                             **{k: str(v) if k != "tls" else v for k, v in conn.items()})
            with page_client(app) as web:
                page = web.get("/lab")   # the bundle's description, from the server
            assert page.status_code == status, page.text[:300]
            assert (bundle_dir.name in page.text) == (status == 200)
        out = tmp_path / "load.json"
        assert loadtest_main([*flags, "--rpc", "ping", "--duration", "0.5", "--warmup", "0",
                              "--json", str(out), "-q"]) == 0
        saved = json.loads(out.read_text())
        assert saved["overall"]["ok"] == saved["overall"]["calls"] > 0
    finally:
        server.stop(grace=0)


# --- bundles/CURRENT -------------------------------------------------------------------------


def _current(work):
    return work / "bundles" / "CURRENT"


@pytest.mark.parametrize("content,expect", [
    (b"", "is empty"),
    (b"  \n", "is empty"),
    (b"\xff\xfe2026\x00", "not UTF-8"),
    (b"../../etc\n", "does not hold a bundle name"),
    (b".20261125-120501-ab12.partial\n", "does not hold a bundle name"),
    (b"a\nb\n", "does not hold a bundle name"),
    (b"v" * 300, "does not hold a bundle name"),
])
def test_read_current_names_what_is_wrong(tmp_path, content, expect):
    from pmrs.serving.contract import ContractError as CurrentUnreadable
    from pmrs.serving.contract import read_current

    assert read_current(tmp_path) is None                       # no bundles/ at all
    (tmp_path / "bundles").mkdir()
    assert read_current(tmp_path) is None                       # no CURRENT
    _current(tmp_path).write_bytes(b"20261125-120501-ab12\n")
    assert read_current(tmp_path) == "20261125-120501-ab12"
    _current(tmp_path).write_bytes(content)
    with pytest.raises(CurrentUnreadable, match=expect) as err:
        read_current(tmp_path)
    assert len(str(err.value)) < len(str(tmp_path)) + 200      # quotes a prefix at most


def test_watcher_logs_each_bad_current_once_and_keeps_serving(work, bundle_dir, caplog):
    from pmrs_server.main import BundleWatcher
    from pmrs_server.servicer import BundleHolder

    current = _current(work)
    good = current.read_bytes()
    holder = BundleHolder()
    watcher = BundleWatcher(work, holder, poll_seconds=3600)
    caplog.set_level(logging.INFO, logger="pmrs.server")
    try:
        assert watcher.check() and holder.version == bundle_dir.name
        states = [("emptied", lambda: current.write_bytes(b""), "is empty"),
                  ("deleted", current.unlink, "is missing"),
                  ("not UTF-8", lambda: current.write_bytes(b"\xff\xfe\xfd"), "not UTF-8"),
                  ("garbage", lambda: current.write_bytes(b"\x00\x01garbage/../x"), "does not hold a bundle name"),
                  ("names nothing", lambda: current.write_text("20991231-000000-none\n"), "cannot open bundle")]
        if os.geteuid() != 0:   # (root reads any file)
            states.append(("unreadable", lambda: (current.write_bytes(good), current.chmod(0)), "cannot read"))
        for name, damage, message in states:
            caplog.clear()
            damage()
            for _ in range(4):               # four polls (and SIGHUP-style retries): one log line
                watcher.check_now()
                assert not watcher.check()
            lines = [r for r in caplog.records if r.name == "pmrs.server"]
            assert len(lines) == 1 and message in lines[0].getMessage(), (name, [r.getMessage() for r in lines])
            assert lines[0].levelno == logging.ERROR and "still serving " + bundle_dir.name in lines[0].getMessage()
            assert holder.version == bundle_dir.name, name
            if current.exists():
                current.chmod(0o644)
        caplog.clear()
        current.write_bytes(good)           # repaired: said once, nothing reloaded
        assert not watcher.check() and not watcher.check()
        lines = [r.getMessage() for r in caplog.records if r.name == "pmrs.server"]
        assert len(lines) == 1 and "again" in lines[0]
        assert no_tracebacks(caplog)
    finally:
        current.write_bytes(good)
        holder.close()


@pytest.mark.parametrize("content", [None, b"", b"\xff\xfe\xfd", b"../x"])
def test_a_server_started_on_a_bad_current_answers_unavailable(work, bundle_dir, tmp_path, caplog, content):
    empty = tmp_path / "work"
    (empty / "bundles").mkdir(parents=True)
    if content is not None:
        (empty / "bundles" / "CURRENT").write_bytes(content)
    with running(empty) as (server, channel, stub, health):
        with pytest.raises(grpc.RpcError) as err:
            stub.Recommend(pb.RecommendRequest(user_id="u"), timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert stub.Ping(pb.PingRequest(), timeout=5) == pb.PingResponse()
        for name in ("", SERVICE):
            assert health_status(health, name) == health_pb2.HealthCheckResponse.NOT_SERVING
        # repaired: a reload serves it
        shutil.copytree(bundle_dir, empty / "bundles" / bundle_dir.name)
        (empty / "bundles" / "CURRENT").write_text(bundle_dir.name + "\n")
        server.reload()
        end = time.monotonic() + 20
        while health_status(health) != health_pb2.HealthCheckResponse.SERVING and time.monotonic() < end:
            time.sleep(0.05)
        assert stub.GetBundleInfo(pb.GetBundleInfoRequest(), timeout=5).version == bundle_dir.name
    assert no_tracebacks(caplog)


# --- idle, dead and silent connections are closed (limits shortened for the test) ---------------


@pytest.mark.parametrize("limit,value,connection", [
    ("MAX_CONNECTION_IDLE_MS", 300, dict(streams=0)),                          # no call in flight
    ("PING_TIMEOUT_MS", 300, dict(streams=1, answer_pings=False)),             # a call open, pings unanswered
    ("HANDSHAKE_TIMEOUT_MS", 300, dict(preface=False)),                        # never says a word
])
def test_idle_dead_and_silent_connections_are_closed(work, bundle_dir, monkeypatch, limit, value, connection):
    import pmrs_server.transport as transport

    monkeypatch.setattr(transport, limit, value)
    monkeypatch.setattr(transport, "REQUEST_READ_SECONDS", 60.0)   # (not what ends these)
    with running(work) as (server, channel, stub, health):
        with HalfOpenCall(server.address, RECOMMEND, **connection) as conn:
            assert conn.closed_by_server.wait(20) or conn.goaway.wait(1), limit
            assert stub.Ping(pb.PingRequest(), timeout=5) == pb.PingResponse()
