"""The ListenBrainz-compatible API: real clients (liblistenbrainz from PyPI; the requests
mopidy-listenbrainz sends) submit listens and read recommendations; listens resolve to songs as the
ingest resolves them, make new songs, are recorded once through the write log and change the
next recommendations; bad input is refused with ListenBrainz's answers and changes nothing."""

import json
import os
import shutil
import threading
import time
import uuid

import numpy as np
import pytest
import requests
import uvicorn
from servers import work_with_bundle
from starlette.testclient import TestClient

import pmrs
from pmrs.ingest.listens import MIN_LISTEN_TS
from pmrs.ingest.resolve import new_song_id
from pmrs.listenbrainz.app import create_app
from pmrs.listenbrainz.cli import main as lb_main
from pmrs.listenbrainz.payload import MAX_LISTEN_PAYLOAD_SIZE, MAX_LISTENS_PER_REQUEST
from pmrs.listenbrainz.tokens import TOKENS_FILE, TokenStore
from pmrs.live.log import WriteLog
from pmrs.live.rebuild import read_logged
from pmrs.web.cli import listen as listening_socket

USER = "lb-listener"


@pytest.fixture(scope="module")
def work(serving_workdir, tmp_path_factory):
    return work_with_bundle(serving_workdir, tmp_path_factory, "listenbrainz")


@pytest.fixture()
def world(work, tmp_path):
    """A fresh copy of the work directory, a live recommender over it, a token for USER and the
    app under Starlette's test client."""
    w = tmp_path / "w"
    shutil.copytree(work, w)
    rec = pmrs.Recommender.open(w, live=True)
    store = TokenStore(w)
    _, token = store.create(USER)
    app = create_app(rec, store)
    with TestClient(app) as client:
        yield {"work": w, "rec": rec, "store": store, "token": token, "client": client, "app": app}
    rec.close()


def _auth(token):
    return {"Authorization": f"Token {token}"}


def _listen(song, ts=None, **info):
    meta = {"artist_name": song.artist, "track_name": song.title}
    if song.release:
        meta["release_name"] = song.release
    if info:
        meta["additional_info"] = info
    return {"listened_at": int(ts if ts is not None else time.time()), "track_metadata": meta}


def _catalog_songs(rec, n, exclude=()):
    """Bundle songs with collaborative vectors and names, best-known first."""
    out = []
    for s in rec.recommend(rec.bundle.user_ids[0].decode(), k=50).songs:
        song = rec.song(s.song_id)
        if song.title and song.artist and s.song_id not in exclude:
            out.append(song)
        if len(out) == n:
            break
    assert len(out) == n
    return out


def _log_seq(work):
    with WriteLog.of(work) as wlog:
        return wlog.last_seq()


class ServerThread:
    """The app under uvicorn on a free loopback port, in a thread (real HTTP for real clients)."""

    def __init__(self, app, **ssl):
        self.sock = listening_socket("127.0.0.1:0")
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", **ssl))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        end = time.monotonic() + 20
        while not self.server.started and time.monotonic() < end:
            time.sleep(0.02)
        assert self.server.started
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


# -- tokens ------------------------------------------------------------------------------------

def test_tokens_are_stored_hashed_and_can_be_revoked(tmp_path):
    store = TokenStore(tmp_path)
    entry, token = store.create("alice")
    uuid.UUID(token)   # ListenBrainz's shape
    text = (tmp_path / TOKENS_FILE).read_text()
    assert token not in text and entry.sha256 in text
    assert (tmp_path / TOKENS_FILE).stat().st_mode & 0o077 == 0
    assert store.user_of(token) == "alice"
    assert store.user_of(token + "x") is None and store.user_of("") is None
    other = TokenStore(tmp_path)   # another process: a revoke there takes effect here
    other.revoke(entry.token_id)
    assert store.user_of(token) is None
    assert [e.revoked_at > 0 for e in store.entries()] == [True]
    with pytest.raises(LookupError):
        store.revoke("nope")


def test_token_command_creates_lists_and_revokes(tmp_path, capsys):
    assert lb_main(["--workdir", str(tmp_path), "token", "create", "bob"]) == 0
    out = capsys.readouterr().out.splitlines()
    token_id, token = out[0].split()[1], out[1]
    assert TokenStore(tmp_path).user_of(token) == "bob"
    assert lb_main(["--workdir", str(tmp_path), "token", "list"]) == 0
    listed = capsys.readouterr().out
    assert token_id in listed and "active" in listed and token not in listed
    assert lb_main(["--workdir", str(tmp_path), "token", "revoke", token_id]) == 0
    assert TokenStore(tmp_path).user_of(token) is None
    assert lb_main(["--workdir", str(tmp_path), "token", "revoke", "missing"]) != 0


def test_serve_command_answers_and_stops(world):
    import signal
    import subprocess
    import sys

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "pmrs.listenbrainz.cli", "--workdir", str(world["work"]), "-q",
                             "serve", "--bind", "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith("pmrs-listenbrainz listening on http://127.0.0.1:"), (line, proc.stderr.read())
        url = line.split()[-1]
        r = requests.get(f"{url}/1/validate-token", headers=_auth(world["token"]))
        assert r.json()["user_name"] == USER
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


def test_the_listening_socket_sends_without_delay():
    import socket

    sock = listening_socket("127.0.0.1:0")
    try:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        sock.close()


def test_serve_refuses_plain_http_off_loopback(tmp_path, capsys):
    assert lb_main(["--workdir", str(tmp_path), "serve", "--bind", "0.0.0.0:0"]) != 0
    assert "insecure" in capsys.readouterr().err
    cfg = tmp_path / "c.toml"
    cfg.write_text('[listenbrainz]\nbind = "0.0.0.0:0"\n')
    assert lb_main(["--workdir", str(tmp_path), "--config", str(cfg), "serve"]) != 0
    assert "insecure" in capsys.readouterr().err
    cfg.write_text('[listenbrainz]\nbindd = "0.0.0.0:0"\n')
    assert lb_main(["--workdir", str(tmp_path), "--config", str(cfg), "serve"]) != 0
    assert "bindd" in capsys.readouterr().err


# -- validate-token ----------------------------------------------------------------------------

def test_validate_token_answers_as_listenbrainz(world):
    c = world["client"]
    r = c.get("/1/validate-token", headers=_auth(world["token"]))
    assert r.status_code == 200
    assert r.json() == {"code": 200, "message": "Token valid.", "valid": True, "user_name": USER}
    r = c.get("/1/validate-token", headers=_auth(str(uuid.uuid4())))
    assert r.status_code == 200 and r.json() == {"code": 200, "message": "Token invalid.", "valid": False}
    assert c.get("/1/validate-token", params={"token": world["token"]}).json()["valid"] is True
    r = c.get("/1/validate-token")
    assert r.status_code == 400 and r.json()["code"] == 400 and "token" in r.json()["error"]


# -- real clients ------------------------------------------------------------------------------

def test_liblistenbrainz_submits_and_reads_recommendations(world):
    import liblistenbrainz

    rec = world["rec"]
    with ServerThread(world["app"]) as srv:
        client = liblistenbrainz.ListenBrainz(api_base_url=f"http://127.0.0.1:{srv.port}")
        client.set_auth_token(world["token"])   # checks it with GET /1/validate-token
        with pytest.raises(liblistenbrainz.errors.ListenBrainzAPIException) as err:
            client.get_user_recommendation_recordings(USER)
        assert err.value.status_code == 404   # nobody PMRS knows yet
        songs = _catalog_songs(rec, 3)
        t0 = int(time.time()) - 600
        listens = [liblistenbrainz.Listen(track_name=s.title, artist_name=s.artist, release_name=s.release or None,
                                          listened_at=t0 + 60 * i) for i, s in enumerate(songs)]
        assert client.submit_single_listen(listens[0]) == {"status": "ok"}
        first = client.get_user_recommendation_recordings(USER, count=10)["payload"]
        assert first["user_name"] == USER and first["count"] == 10 and first["offset"] == 0
        assert first["total_mbid_count"] >= 10 and isinstance(first["last_updated"], int)
        ids = [m["song_id"] for m in first["mbids"]]
        assert songs[0].song_id not in ids
        assert all(set(m) >= {"recording_mbid", "score"} for m in first["mbids"])
        assert client.submit_multiple_listens(listens[1:]) == {"status": "ok"}
        assert client.submit_playing_now(liblistenbrainz.Listen(track_name=songs[0].title,
                                                                artist_name=songs[0].artist)) == {"status": "ok"}
        after = client.get_user_recommendation_recordings(USER, count=10)["payload"]
        assert [m["song_id"] for m in after["mbids"]] != ids, "the listens must change the next recommendations"
        assert not {s.song_id for s in songs} & {m["song_id"] for m in after["mbids"]}
        page2 = client.get_user_recommendation_recordings(USER, count=5, offset=5)["payload"]
        assert [m["song_id"] for m in page2["mbids"]] == [m["song_id"] for m in after["mbids"]][5:10]
    # three plays recorded (playing_now is not a play), for the user the token belongs to
    user = rec.live.users[USER]
    assert sorted(rec.bundle.song_id(r) for r in user.played) == sorted(s.song_id for s in songs)
    assert _log_seq(world["work"]) == 3


def test_mopidy_listenbrainz_requests_are_taken(world, tls_files):
    """The requests mopidy-listenbrainz (Mopidy_Listenbrainz/listenbrainz.py) makes: GET
    https://{url}/1/validate-token and POST https://{url}/1/submit-listens with
    ``json={"listen_type", "payload": [listen]}``, ``Authorization: Token``, its user agent; a
    ``track_mbid`` in additional_info when the track has a MusicBrainz id; playing_now without
    ``listened_at``."""
    rec = world["rec"]
    song = _catalog_songs(rec, 1)[0]
    mbid = str(uuid.uuid4())   # a recording MBID the catalog does not know
    with ServerThread(world["app"], ssl_certfile=str(tls_files["cert"]), ssl_keyfile=str(tls_files["key"])) as srv:
        url = f"localhost:{srv.port}"   # mopidy's `url` setting: host[:port], https implied
        session = requests.Session()
        session.verify = str(tls_files["ca"])
        session.trust_env = False   # (else $REQUESTS_CA_BUNDLE would override verify)
        session.headers.update({"user-agent": "Mopidy-Listenbrainz/3.1.0 Mopidy/3.4.2 CPython/3.11.2"})
        headers = {"Authorization": f"Token {world['token']}"}
        r = session.get(url=f"https://{url}/1/validate-token", headers=headers)
        assert r.status_code == 200 and r.json().get("valid") is True and r.json().get("user_name") == USER

        def submit(track, artist, release, musicbrainz_id, now_playing):
            listen = {"track_metadata": {"track_name": track, "artist_name": artist, "release_name": release,
                                         "additional_info": {"media_player": "Mopidy",
                                                             "submission_client": "Mopidy-Listenbrainz",
                                                             "submission_client_version": "3.1.0"}}}
            if not now_playing:
                listen["listened_at"] = int(time.time())
            if musicbrainz_id:
                listen["track_metadata"]["additional_info"]["track_mbid"] = musicbrainz_id
            return session.post(url=f"https://{url}/1/submit-listens",
                                json={"listen_type": "single" if not now_playing else "playing_now",
                                      "payload": [listen]}, headers=headers)

        assert submit(song.title, song.artist, song.release, "", True).status_code == 200
        assert _log_seq(world["work"]) == 0, "playing_now is not a play"
        r = submit(song.title, song.artist, song.release, "", False)
        assert r.status_code == 200 and r.json() == {"status": "ok"}
        r = submit("Never Heard Before", "Nobody Yet", "", mbid, False)
        assert r.status_code == 200
    assert rec.song(f"mbid:{mbid}").title == "Never Heard Before"
    played = {rec.live.view().song_id(r) for r in rec.live.users[USER].played}
    assert played == {song.song_id, f"mbid:{mbid}"}


# -- songs and duplicates -----------------------------------------------------------------------

def test_listens_resolve_like_the_ingest_and_make_new_songs(world):
    c, rec, auth = world["client"], world["rec"], _auth(world["token"])
    song = _catalog_songs(rec, 1)[0]
    t = int(time.time()) - 1000
    # names as players send them: other case, a version suffix, a featured credit
    odd = {"artist_name": song.artist.upper(), "track_name": f"{song.title} - Remastered 2011 (feat. Someone)"}
    new = {"artist_name": "Brand New Band", "track_name": "First Single", "release_name": "Debut"}
    r = c.post("/1/submit-listens", headers=auth, json={"listen_type": "import", "payload": [
        {"listened_at": t, "track_metadata": odd},
        {"listened_at": t + 1, "track_metadata": new},
        {"listened_at": t + 2, "track_metadata": {**new, "track_name": "first  single"}}]})
    assert r.status_code == 200, r.text
    made = new_song_id(None, "Brand New Band", "First Single")
    assert rec.song(made).artist == "Brand New Band" and rec.song(made).release == "Debut"
    user = rec.live.users[USER]
    view = rec.live.view()
    counts = {view.song_id(r): c for r, c in zip(user.played, user.counts)}
    assert counts == {song.song_id: 1, made: 2}
    assert [x["song_id"] for x in read_logged(world["work"]).songs] == [made]   # the rebuild's catalog takes it in
    # a second server over the same work directory sees the song and the plays
    with pmrs.Recommender.open(world["work"], live=True) as other:
        assert other.song(made).title == "First Single"
        assert other.live.users[USER].counts.sum() == 3


def test_the_same_listen_is_applied_once(world):
    c, rec, auth = world["client"], world["rec"], _auth(world["token"])
    a, b = _catalog_songs(rec, 2)
    t = int(time.time()) - 5000
    live = [_listen(a, t), _listen(b, t + 200)]
    for listen in live:
        assert c.post("/1/submit-listens", headers=auth,
                      json={"listen_type": "single", "payload": [listen]}).status_code == 200
    seq = _log_seq(world["work"])
    # sent again, and an import that overlaps them (and names one by other case), with one new listen
    assert c.post("/1/submit-listens", headers=auth,
                  json={"listen_type": "single", "payload": [live[0]]}).status_code == 200
    overlap = [live[0], {**live[1], "track_metadata": {**live[1]["track_metadata"],
                                                       "artist_name": b.artist.lower()}}, _listen(a, t + 400)]
    assert c.post("/1/submit-listens", headers=auth, json={"listen_type": "import", "payload": overlap}).status_code == 200
    assert _log_seq(world["work"]) == seq + 1
    user = rec.live.users[USER]
    counts = {rec.bundle.song_id(r): c for r, c in zip(user.played, user.counts)}
    assert counts == {a.song_id: 2, b.song_id: 1}
    # what the next rebuild (pmrs ingest) takes in: each listen once
    logged = read_logged(world["work"])
    assert sorted((u, s, c) for u, s, c, _ in logged.plays) == sorted(
        [(USER, a.song_id, 1), (USER, a.song_id, 1), (USER, b.song_id, 1)])


# -- bad input -----------------------------------------------------------------------------------

def _bad_cases(song, now):
    ok = {"listened_at": now - 10, "track_metadata": {"artist_name": song.artist, "track_name": song.title}}
    many = [dict(ok, listened_at=now - 10 - i) for i in range(MAX_LISTENS_PER_REQUEST + 1)]
    return {
        "not json": (b"{nope", "Cannot parse JSON document"),
        "not an object": (b"[1, 2]", "Top level of JSON document should be a json object"),
        "no payload": ({"listen_type": "single"}, "Invalid JSON document submitted."),
        "payload not a list": ({"listen_type": "single", "payload": ok}, "should be a list of listens"),
        "empty payload": ({"listen_type": "import", "payload": []}, "does not contain any listens"),
        "bad listen_type": ({"listen_type": "bulk", "payload": [ok]}, "valid listen_type"),
        "two singles": ({"listen_type": "single", "payload": [ok, ok]}, "should contain only one"),
        "too many": ({"listen_type": "import", "payload": many}, "Too many listens"),
        "no listened_at": ({"listen_type": "single", "payload": [{"track_metadata": ok["track_metadata"]}]},
                           "must contain the key listened_at"),
        "listened_at text": ({"listen_type": "single", "payload": [dict(ok, listened_at="soon")]},
                             "int value for listened_at"),
        "before 2002": ({"listen_type": "import", "payload": [ok, dict(ok, listened_at=MIN_LISTEN_TS - 1)]},
                        "listened_at is too low"),
        "far future": ({"listen_type": "single", "payload": [dict(ok, listened_at=now + 10 * 86400)]},
                       "listened_at is too high"),
        "extra key": ({"listen_type": "single", "payload": [dict(ok, rating=5)]}, "may only contain"),
        "no track name": ({"listen_type": "single", "payload": [
            dict(ok, track_metadata={"artist_name": song.artist})]}, "track_metadata.track_name"),
        "artist list": ({"listen_type": "single", "payload": [
            dict(ok, track_metadata={"artist_name": ["a", "b"], "track_name": "x"})]}, "single string"),
        "bad mbid": ({"listen_type": "single", "payload": [
            dict(ok, track_metadata={**ok["track_metadata"], "additional_info": {"recording_mbid": "nope"}})]},
            "recording_mbid MBID format invalid"),
        "playing_now with time": ({"listen_type": "playing_now", "payload": [ok]}, "must not contain listened_at"),
        "oversized": (b"{" + b" " * (MAX_LISTEN_PAYLOAD_SIZE + 1) + b"}", "Payload too large"),
    }


def test_bad_submissions_are_refused_whole_with_listenbrainz_answers(world):
    c, rec, auth = world["client"], world["rec"], _auth(world["token"])
    song = _catalog_songs(rec, 1)[0]
    for name, (body, message) in _bad_cases(song, int(time.time())).items():
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        r = c.post("/1/submit-listens", headers=auth, content=raw)
        assert r.status_code == 400, (name, r.text)
        assert r.json()["code"] == 400 and message in r.json()["error"], (name, r.json())
    assert _log_seq(world["work"]) == 0 and USER not in rec.live.users, "nothing may be half-applied"
    assert len(rec.live.songs) == 0


def test_unknown_revoked_and_missing_tokens_are_401(world):
    c, rec, store = world["client"], world["rec"], world["store"]
    song = _catalog_songs(rec, 1)[0]
    body = {"listen_type": "single", "payload": [_listen(song)]}
    r = c.post("/1/submit-listens", json=body)
    assert r.status_code == 401 and r.json() == {"code": 401, "error": "You need to provide an Authorization header."}
    r = c.post("/1/submit-listens", json=body, headers=_auth(str(uuid.uuid4())))
    assert r.status_code == 401 and r.json() == {"code": 401, "error": "Invalid authorization token."}
    assert c.post("/1/submit-listens", json=body, headers={"Authorization": "Bearer x"}).status_code == 401
    entry, token = store.create("someone-else")
    assert c.post("/1/submit-listens", json=body, headers=_auth(token)).status_code == 200
    store.revoke(entry.token_id)
    r = c.post("/1/submit-listens", json=body, headers=_auth(token))
    assert r.status_code == 401
    assert c.get("/1/validate-token", headers=_auth(token)).json()["valid"] is False
    assert _log_seq(world["work"]) == 1 and set(rec.live.users) == {"someone-else"}


def test_browser_requests_from_other_sites_cannot_submit(world):
    c, rec, auth = world["client"], world["rec"], _auth(world["token"])
    song = _catalog_songs(rec, 1)[0]
    body = {"listen_type": "single", "payload": [_listen(song)]}
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}):
        r = c.post("/1/submit-listens", json=body, headers={**auth, **headers})
        assert r.status_code == 403 and r.json()["code"] == 403, headers
    assert _log_seq(world["work"]) == 0
    assert c.post("/1/submit-listens", json=body, headers=auth).status_code == 200


# -- PMRS's own reading --------------------------------------------------------------------------

def test_pmrs_recommendations_name_songs_sources_and_scores(world):
    c, rec = world["client"], world["rec"]
    user = rec.bundle.user_ids[1].decode()
    r = c.get(f"/pmrs/v1/recommendations/{user}", params={"k": 7})
    assert r.status_code == 200
    data = r.json()
    expect = rec.recommend(user, k=7)
    assert [s["song_id"] for s in data["songs"]] == expect.song_ids
    first = data["songs"][0]
    assert set(first) >= {"title", "artist", "genre", "year", "score", "sources", "recording_mbid"}
    assert first["sources"] and data["bundle_version"] == rec.version
    assert c.get("/pmrs/v1/recommendations/nobody-here").status_code == 404
    assert c.get(f"/pmrs/v1/recommendations/{user}", params={"k": "x"}).status_code == 400
    lb = c.get(f"/1/cf/recommendation/user/{user}/recording", params={"count": 7}).json()["payload"]
    assert [m["song_id"] for m in lb["mbids"]] == expect.song_ids
    # each song says why, source by source, as pmrs.Recommender explains it; explain=0 leaves it out
    why = rec.recommend(user, k=7, explain=True)
    for got, want in zip(data["songs"], why.songs):
        assert [r["text"] for r in got["reasons"]] == [r.text for r in want.reasons] != []
        assert [r["source"] for r in got["reasons"]] == list(want.sources)
    plain = c.get(f"/pmrs/v1/recommendations/{user}", params={"k": 7, "explain": "0"}).json()
    assert [s["song_id"] for s in plain["songs"]] == expect.song_ids and all(s["reasons"] == [] for s in plain["songs"])
    assert c.get(f"/pmrs/v1/recommendations/{user}", params={"explain": "maybe"}).status_code == 400


def test_a_submission_is_written_whole_or_not_at_all(world, monkeypatch):
    """The plays of one submission go in one write log transaction: when the log cannot take
    them (a full disk), none is written or applied, the answer is 503, and sending it again once
    the log can be written records each listen once."""
    c, rec, auth = world["client"], world["rec"], _auth(world["token"])
    songs = _catalog_songs(rec, 5)
    t = int(time.time()) - 20000
    payload = [_listen(songs[i % 5], t + i) for i in range(400)]
    wlog = rec.live.log
    append_many = wlog.append_many

    def on_a_full_disk(entries):   # (in the thread that writes: connections are per thread)
        conn = wlog._conn()
        conn.execute(f"PRAGMA max_page_count={conn.execute('PRAGMA page_count').fetchone()[0]}")
        try:
            return append_many(entries)
        finally:
            conn.execute("PRAGMA max_page_count=1073741823")

    monkeypatch.setattr(wlog, "append_many", on_a_full_disk)
    r = c.post("/1/submit-listens", headers=auth, json={"listen_type": "import", "payload": payload})
    assert r.status_code == 503 and r.json()["code"] == 503
    assert _log_seq(world["work"]) == 0 and USER not in rec.live.users
    monkeypatch.undo()
    r = c.post("/1/submit-listens", headers=auth, json={"listen_type": "import", "payload": payload})
    assert r.status_code == 200
    assert _log_seq(world["work"]) == 400 and rec.live.users[USER].counts.sum() == 400


def test_live_record_plays_many_checks_all_then_writes_all_once(world):
    rec = world["rec"]
    a, b = _catalog_songs(rec, 2)
    live = rec.live
    with pytest.raises(LookupError):   # one unknown song: nothing of the calls is written
        live.record_plays_many([("u1", [(a.song_id, 1)], "r1"), ("u2", [("no-such-song", 1)], "r2")])
    assert _log_seq(world["work"]) == 0
    done = live.record_plays_many([("u1", [(a.song_id, 1)], "r1"), ("u2", [(b.song_id, 2)], "r2"),
                                   ("u1", [(a.song_id, 1)], "r1")])
    assert [d.duplicate for d in done] == [False, False, True] and done[2].seq == done[0].seq
    assert live.record_plays_many([("u1", [(a.song_id, 1)], "r1")])[0].duplicate
    assert rec.live.users["u1"].counts.sum() == 1 and rec.live.users["u2"].counts.sum() == 2
    # several writes of one user in one batch: applied together (one fold-in), as one after another
    live.record_plays_many([("u3", [(a.song_id, 1)], "r3"), ("u3", [(b.song_id, 2)], "r4"),
                            ("u3", [(a.song_id, 3)], "r5")])
    u3 = rec.live.users["u3"]
    rows = [rec.bundle.song_row(a.song_id), rec.bundle.song_row(b.song_id)]
    assert dict(zip(u3.played.tolist(), u3.counts.tolist())) == {rows[0]: 4.0, rows[1]: 2.0}
    np.testing.assert_allclose(u3.vector, rec.bundle.fold_in(np.asarray(rows), np.asarray([4.0, 2.0])), rtol=1e-5)
    assert rec.live.seq == _log_seq(world["work"])


def test_a_pmrs_server_over_the_work_directory_serves_the_listens(world, tmp_path):
    """pmrs-server replicas share the write log: a listen taken here (a new song among them) is
    in their next answer for the user, within their poll interval."""
    import grpc
    from servers import ServerProcess, wait_for

    from pmrs.v1 import recommender_pb2 as pb

    c, rec, auth = world["client"], world["rec"], _auth(world["token"])
    server = ServerProcess(world["work"], tmp_path / "server.log")
    try:
        songs = _catalog_songs(rec, 2)
        payload = [_listen(s, int(time.time()) - 100 + i) for i, s in enumerate(songs)]
        payload.append({"listened_at": int(time.time()) - 50,
                        "track_metadata": {"artist_name": "Server Side Band", "track_name": "Replica Song"}})
        assert c.post("/1/submit-listens", headers=auth,
                      json={"listen_type": "import", "payload": payload}).status_code == 200
        made = new_song_id(None, "Server Side Band", "Replica Song")
        here = rec.recommend(USER, k=10).song_ids

        def served():
            try:
                got = server.stub.Recommend(pb.RecommendRequest(user_id=USER, k=10), timeout=10)
                song = server.stub.GetSong(pb.GetSongRequest(song_id=made), timeout=10)
            except grpc.RpcError:   # (the new song not polled yet)
                return False
            return [s.song_id for s in got.songs] == here and song.song.title == "Replica Song"

        assert wait_for(served, timeout=20), server.stderr()
    finally:
        server.stop()


def test_the_endpoint_follows_a_rebuild_and_keeps_its_bundle_when_the_new_one_is_broken(world, caplog):
    from pmrs.indexing import IndexerConfig, build_bundle
    from pmrs.serving.contract import CURRENT_FILE, bundles_dir

    w, rec = world["work"], world["rec"]
    app = create_app(rec, world["store"], w)
    app.state.served.poll_seconds = 0
    with TestClient(app) as c:
        songs = _catalog_songs(rec, 3)
        payload = [_listen(s, int(time.time()) - 100 + i) for i, s in enumerate(songs)]
        assert c.post("/1/submit-listens", headers=_auth(world["token"]),
                      json={"listen_type": "import", "payload": payload}).status_code == 200
        assert c.get(f"/pmrs/v1/recommendations/{USER}").json()["bundle_version"] == rec.version
        build_bundle(w, IndexerConfig(recall_queries=20), show_progress=False)     # a rebuild switches CURRENT
        got = c.get(f"/pmrs/v1/recommendations/{USER}", params={"explain": "0"}).json()
        assert got["bundle_version"] != rec.version
        with pmrs.Recommender.open(w, live=True) as fresh:     # the listens replayed over the new bundle
            assert got["bundle_version"] == fresh.version
            assert [s["song_id"] for s in got["songs"]] == fresh.recommend(USER).song_ids
        # a CURRENT naming a bundle that cannot be opened: logged, and the bundle served stays
        (bundles_dir(w) / CURRENT_FILE).write_text("no-such-bundle\n")
        with caplog.at_level("WARNING", logger="pmrs.listenbrainz"):
            again = c.get(f"/pmrs/v1/recommendations/{USER}", params={"explain": "0"})
        assert again.status_code == 200 and again.json()["bundle_version"] == got["bundle_version"]
        assert "no-such-bundle" in caplog.text and "still serving" in caplog.text


def test_every_answer_carries_listenbrainz_rate_limit_headers_and_a_client_past_it_gets_429(work, tmp_path, monkeypatch):
    from pmrs.listenbrainz.ratelimit import RateLimits

    w = tmp_path / "w"
    shutil.copytree(work, w)
    now = [1000.0]
    limits = RateLimits(window=10, with_token=5, without_token=3)
    with pmrs.Recommender.open(w, live=True) as rec:
        store = TokenStore(w)
        _, token = store.create(USER)
        _, other = store.create(USER)          # the same user's second token shares the budget
        _, stranger = store.create("someone-else")
        with TestClient(create_app(rec, store, limits=limits, clock=lambda: now[0])) as client:
            def get(token=None):
                return client.get("/1/validate-token", params={} if token else {"token": "x"},
                                  headers=_auth(token) if token else {})

            answers = [get(token) for _ in range(3)] + [get(other) for _ in range(2)]
            assert [r.status_code for r in answers] == [200] * 5
            assert [int(r.headers["X-RateLimit-Remaining"]) for r in answers] == [4, 3, 2, 1, 0]
            assert all(r.headers["X-RateLimit-Limit"] == "5" and r.headers["X-RateLimit-Reset-In"] == "10"
                       for r in answers)
            assert abs(int(answers[0].headers["X-RateLimit-Reset"]) - (time.time() + 10)) <= 2
            over = get(token)
            assert over.status_code == 429 and over.json()["code"] == 429 and "try again in 10 s" in over.json()["error"]
            assert over.headers["X-RateLimit-Remaining"] == "0"
            assert get(stranger).status_code == 200                 # another user: a budget of their own
            anonymous = [get() for _ in range(4)]                   # no token: the address's, lower
            assert [r.status_code for r in anonymous] == [200, 200, 200, 429]
            assert anonymous[0].headers["X-RateLimit-Limit"] == "3"
            bad = client.get("/1/validate-token", headers=_auth("not-a-token"))   # counted as anonymous
            assert bad.status_code == 429
            now[0] += 6
            assert get(token).headers["X-RateLimit-Reset-In"] == "4" and get(token).status_code == 429
            now[0] += 4                                             # the window is over
            again = get(token)
            assert again.status_code == 200 and again.headers["X-RateLimit-Remaining"] == "4"
            lookups, real = [], store.user_of
            monkeypatch.setattr(store, "user_of", lambda t: lookups.append(t) or real(t))
            assert client.post("/1/submit-listens", headers=_auth(token), json={}).headers["X-RateLimit-Remaining"] == "3"
            assert lookups == [token]        # one token lookup for the limiter and the route together


def test_rate_limits_refuse_nonsense_and_forget_ended_windows_when_full():
    from pmrs.listenbrainz.ratelimit import RateLimiter, RateLimits

    with pytest.raises(ValueError):
        RateLimits(window=0)
    now = [0.0]
    limiter = RateLimiter(None, RateLimits(window=1, without_token=1, max_keys=3), lambda t: None, lambda: now[0])
    for i in range(3):
        limiter._count(("address", str(i)), now[0])
    now[0] = 0.5
    limiter._count(("address", "new"), now[0])               # full of live windows: the oldest goes
    assert set(limiter._windows) == {("address", "1"), ("address", "2"), ("address", "new")}
    now[0] = 2.0
    limiter._count(("address", "later"), now[0])             # the ended ones are dropped first
    assert set(limiter._windows) == {("address", "later")}
