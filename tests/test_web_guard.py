"""pmrs-web writes only for its own pages (issue 22): a cross-site form or fetch, an opaque or
foreign Origin, a request with no same-origin proof, or one naming another host (DNS rebinding)
is refused before anything is written; an oversized upload is refused while it streams; a
plain-HTTP bind off loopback is refused; seeds that name a live song or nothing answer a page."""

import subprocess
import sys

import pytest
from starlette.testclient import TestClient

import pmrs
from pmrs.live.log import WriteLog
from pmrs.web.app import MAX_UPLOAD_BYTES, create_app
from servers import ServerProcess, wait_for
from webworld import PAGE_ORIGIN, TOKEN, WebProcess, make_world, page_client


@pytest.fixture(scope="module")
def world(serving_workdir, tmp_path_factory):
    return make_world(serving_workdir, tmp_path_factory.mktemp("guard"))


@pytest.fixture(scope="module")
def server(world, tmp_path_factory):
    s = ServerProcess(world.work, tmp_path_factory.mktemp("guardlog") / "s.log", env={"PMRS_WRITE_TOKEN": TOKEN})
    yield s
    s.kill()


@pytest.fixture()
def app(world, server):   # (a TestClient's exit closes the app's connections: one app per test)
    return create_app(world.work, server.address, token=TOKEN, hosts=("pmrs.example.org",))


def _last_seq(world) -> int:
    with WriteLog.of(world.work) as wlog:
        return wlog.last_seq()


def _raw(app, **headers):
    """A client that sends only ``headers`` (besides what HTTP needs): no Origin of its own."""
    return TestClient(app, base_url=PAGE_ORIGIN, raise_server_exceptions=False, headers=headers)


CROSS_SITE = [
    {"Origin": "http://evil.example"},                                     # a form on another site
    {"Origin": "null"},                                                    # a sandboxed frame, a data: page
    {"Origin": "http://127.0.0.1:9999"},                                   # another port: another origin
    {"Origin": "https://127.0.0.1:8080"},                                  # another scheme
    {"Sec-Fetch-Site": "cross-site"},                                      # fetch metadata alone
    {"Sec-Fetch-Site": "same-site", "Origin": "http://localhost:8081"},
    {},                                                                    # no proof at all
]


@pytest.mark.parametrize("headers", CROSS_SITE, ids=lambda h: ",".join(f"{k}={v}" for k, v in h.items()) or "none")
def test_a_write_from_anywhere_but_the_page_is_refused_and_writes_nothing(app, world, headers):
    before = _last_seq(world)
    with _raw(app, **headers) as c:
        song = world.clip_song
        for r in (c.post("/api/play", data={"user": world.users[0], "song": song}),
                  c.post("/api/play", content=f"user={world.users[0]}&song={song}",
                         headers={"Content-Type": "text/plain"}),
                  c.post("/upload", data={"song_id": "CSRF-SONG", "title": "t", "artist": "a"},
                         files={"clip": ("x.wav", b"RIFF....WAVE", "audio/wav")})):
            assert r.status_code == 403, (r.status_code, r.text[:200])
            assert "refused" in r.text
    assert _last_seq(world) == before


def test_the_pages_own_writes_go_through(app, world):
    before = _last_seq(world)
    with page_client(app) as c:
        r = c.post("/api/play", data={"user": world.users[0], "song": world.clip_song})
        assert r.status_code == 200
    assert _last_seq(world) == before + 1


@pytest.mark.parametrize("host", ["anything.example", "evil.example:8080", "127.0.0.2:8080", "[::2]:8080"])
def test_a_request_naming_another_host_is_refused(app, world, host):
    before = _last_seq(world)
    with _raw(app, Origin=f"http://{host}", **{"Sec-Fetch-Site": "same-origin"}) as c:
        assert c.get("/", headers={"Host": host}).status_code == 400
        r = c.post("/api/play", data={"user": world.users[0], "song": world.clip_song}, headers={"Host": host})
        assert r.status_code == 400 and "allowed-host" in r.text
    assert _last_seq(world) == before


def test_allowed_hosts_and_loopback_names_are_served(app):
    with _raw(app) as c:
        for host in ("127.0.0.1:8080", "localhost:8080", "[::1]:8080", "pmrs.example.org", "PMRS.example.org:443"):
            assert c.get("/", headers={"Host": host}).status_code == 200, host


def test_an_oversized_upload_is_refused_before_it_is_read(app, world):
    before = _last_seq(world)
    with page_client(app) as c:
        r = c.post("/upload", content=b"x", headers={"Content-Length": str(MAX_UPLOAD_BYTES + 1),
                                                     "Content-Type": "multipart/form-data; boundary=b"})
        assert r.status_code == 413 and "MiB" in r.text
        assert "at most 16 MiB" in c.get("/upload").text     # the form says the limit
    assert _last_seq(world) == before


def test_an_oversized_upload_without_a_length_is_refused_while_it_streams(world, server, tmp_path):
    # a real pmrs-web process and a raw socket: the answer comes while the body is still being sent
    import select
    import socket
    from urllib.parse import urlsplit

    before = _last_seq(world)
    web = WebProcess(world.work, server.address, tmp_path / "w.log", env={"PMRS_WRITE_TOKEN": TOKEN})
    try:
        u = urlsplit(web.url)
        sock = socket.create_connection((u.hostname, u.port), timeout=30)
        origin = f"http://{u.hostname}:{u.port}"
        sock.sendall((f"POST /upload HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nOrigin: {origin}\r\n"
                      "Content-Type: multipart/form-data; boundary=b\r\nTransfer-Encoding: chunked\r\n\r\n").encode())
        part = (b'--b\r\nContent-Disposition: form-data; name="clip"; filename="big.wav"\r\n'
                b"Content-Type: audio/wav\r\n\r\n")
        sock.sendall(b"%x\r\n" % len(part) + part + b"\r\n")   # a file part that never ends
        chunk = b"\0" * (1 << 20)
        sent, answer = 0, b""
        try:
            while sent < 4 * MAX_UPLOAD_BYTES:
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                sent += len(chunk)
                if select.select([sock], [], [], 0)[0]:
                    break
            answer = sock.recv(65536)
        except (BrokenPipeError, ConnectionResetError):
            answer = answer or sock.recv(65536)
        finally:
            sock.close()
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert sent < MAX_UPLOAD_BYTES + 16 * len(chunk)     # stopped near the limit, not at the end
    finally:
        web.stop()
    assert _last_seq(world) == before


def test_seeds_naming_a_live_song_or_nothing_answer_a_page(app, world, server):
    with pmrs.Recommender.open(world.work, live=True) as rec:
        rec.add_song("GUARD-LIVE-SONG", title="Heard live", artist="Live Act",
                     audio=(world.audio_dir / f"{world.clip_song}.wav").read_bytes(), filename="x.wav")

    def served() -> bool:   # the server process applies the log's writes within its poll
        with pmrs.connect(server.address) as remote:
            try:
                return remote.song("GUARD-LIVE-SONG").title == "Heard live"
            except pmrs.NotFound:
                return False

    assert wait_for(served, timeout=30)
    with page_client(app) as c:
        r = c.get("/", params={"seeds": "GUARD-LIVE-SONG"})
        assert r.status_code == 200 and "Heard live" in r.text
        r = c.get("/", params={"seeds": "NO-SUCH"})
        assert r.status_code == 404 and 'role="alert"' in r.text


@pytest.mark.parametrize("bind", ["0.0.0.0:0", "[::]:0"])
def test_plain_http_off_loopback_is_refused_unless_asked(world, bind, tmp_path):
    cmd = [sys.executable, "-m", "pmrs.web", "--workdir", str(world.work), "--target", "127.0.0.1:1",
           "--bind", bind, "-q"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env={"PMRS_WRITE_TOKEN": TOKEN,
                                                                                "PATH": "/usr/bin:/bin"})
    assert done.returncode == 2 and "--insecure" in done.stderr and "HTTPS" in done.stderr


# -- the page says how it is doing ---------------------------------------------------------------


def test_the_lab_shows_the_servers_and_the_pages_figures(app, world, server):
    with page_client(app) as c:
        assert c.get("/", params={"user": world.users[0]}).status_code == 200
        assert c.post("/api/play", data={"user": world.users[1], "song": world.clip_song}).status_code == 200
        with _raw(app, Origin="http://evil.example") as evil:
            assert evil.post("/api/play", data={"user": world.users[1], "song": world.clip_song}).status_code == 403
        data = c.get("/lab/figures.json").json()
        page = c.get("/lab").text
    assert 'id="live-figures"' in page
    web = data["web"]
    by_route = {r["name"]: r for r in web["calls"]}
    assert by_route["/"]["ok"] == 1 and by_route["/api/play"]["ok"] == 1
    assert by_route["/api/play"]["errors"] == {"403": 1.0}
    assert by_route["/"]["p50_ms"] is not None
    assert web["counters"]["pmrs_web_writes_total"] == {"play": 1.0}
    assert web["counters"]["pmrs_web_writes_refused_total"] == {"play,403": 1.0}
    # the server's own figures, scraped from the address it gives in GetBundleInfo
    srv = data["server"]
    assert data["server_url"].startswith("http://127.0.0.1:")
    calls = {r["name"]: r for r in srv["calls"]}
    assert calls["Recommend"]["ok"] >= 1 and calls["RecordPlays"]["ok"] >= 1
    assert srv["gauges"]["pmrs_bundle_loaded"] == 1.0
    assert any(k.startswith("pmrs_bundle_info{") for k in srv["gauges"])


def test_a_burst_of_page_loads_from_many_clients_never_fails(world, server, tmp_path):
    # 200 song pages from 20 clients at once (once, 1 in 34 answered 500: the catalog opened per call)
    import http.client
    import threading
    from urllib.parse import urlsplit

    web = WebProcess(world.work, server.address, tmp_path / "w.log", env={"PMRS_WRITE_TOKEN": TOKEN})
    statuses: list[int] = []
    lock = threading.Lock()
    try:
        u = urlsplit(web.url)
        songs = [world.clip_song, world.cold_song, world.hostile_song]

        def client(i):
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
            try:
                for j in range(10):
                    conn.request("GET", f"/songs/{songs[(i + j) % len(songs)]}")
                    r = conn.getresponse()
                    r.read()
                    with lock:
                        statuses.append(r.status)
            finally:
                conn.close()

        threads = [threading.Thread(target=client, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        web.stop()
    assert len(statuses) == 200 and set(statuses) == {200}, sorted(set(statuses))
