"""Live writes over a real port: RecordPlays and AddSong change the next answers, only callers with
the write token may write, bad writes change nothing, an acknowledged write survives kill -9, and
a second server over the same work directory sees every write."""

import json
import wave

import grpc
import numpy as np
import pytest

from pmrs.live.songs import MAX_CLIP_BYTES
from pmrs.serving.bundle import Bundle
from pmrs.v1 import recommender_pb2 as pb
from servers import ServerProcess, code_of, wait_for, work_with_bundle

TOKEN = "write-token-0123456789abcdef"
READ_TOKEN = "read-token-0123456789abcdef"
AUTH = (("authorization", f"Bearer {TOKEN}"),)


@pytest.fixture(scope="module")
def work(serving_workdir, tmp_path_factory):
    return work_with_bundle(serving_workdir, tmp_path_factory, "live")


@pytest.fixture(scope="module")
def audio_dir(serving_workdir):
    return serving_workdir.parent / "data" / "audio"


@pytest.fixture(scope="module")
def catalog(work):
    from pmrs.serving.contract import current_bundle
    with Bundle.open(current_bundle(work)) as b:
        rows = np.arange(b.n_songs)
        songs = b.songs(rows)
        users = [u.decode() for u in b.user_ids[:10]]
        played = {u: {b.song_id(r) for r in b.played(i)} for i, u in enumerate(users)}
        acoustic = set(np.flatnonzero(b.song_vectors("acoustic", rows)[0]).tolist())
    return {"songs": {s["song_id"]: s for s in songs}, "users": users, "played": played,
            "with_audio": [songs[r]["song_id"] for r in sorted(acoustic)]}


@pytest.fixture(scope="module")
def server(work, tmp_path_factory):
    s = ServerProcess(work, tmp_path_factory.mktemp("log") / "a.log", "--workers", "4",
                      env={"PMRS_WRITE_TOKEN": TOKEN})
    yield s
    if s.proc.poll() is None:
        s.kill()


def _recommend(stub, user, k=10, metadata=None):
    return [s.song_id for s in stub.Recommend(pb.RecommendRequest(user_id=user, k=k), timeout=10,
                                              metadata=metadata).songs]


def _plays(user, pairs, request_id=""):
    return pb.RecordPlaysRequest(user_id=user, plays=[pb.Play(song_id=s, count=c) for s, c in pairs],
                                 request_id=request_id)


def test_plays_change_the_next_recommendations(server, catalog):
    user = catalog["users"][0]
    before = _recommend(server.stub, user)
    new = before[:3]
    ack = server.stub.RecordPlays(_plays(user, [(s, 4) for s in new]), metadata=AUTH, timeout=10)
    assert ack.sequence >= 1 and not ack.duplicate
    after = _recommend(server.stub, user)
    assert not set(new) & set(after) and after != before
    # a retried call (same request id) is acknowledged once
    again = server.stub.RecordPlays(_plays(user, [(s, 4) for s in new], "r-1"), metadata=AUTH, timeout=10)
    retry = server.stub.RecordPlays(_plays(user, [(s, 4) for s in new], "r-1"), metadata=AUTH, timeout=10)
    assert retry.duplicate and retry.sequence == again.sequence
    info = server.stub.GetBundleInfo(pb.GetBundleInfoRequest(), timeout=10)
    assert info.accepts_writes and info.live_sequence == again.sequence


def test_a_new_user_exists_after_their_first_plays(server, catalog):
    assert code_of(server.stub.Recommend, pb.RecommendRequest(user_id="live-newcomer"), timeout=10)[0] \
        == grpc.StatusCode.NOT_FOUND
    songs = catalog["with_audio"][:3]
    server.stub.RecordPlays(_plays("live-newcomer", [(s, 1) for s in songs]), metadata=AUTH, timeout=10)
    got = _recommend(server.stub, "live-newcomer", k=5)
    assert len(got) == 5 and not set(songs) & set(got)


def _clip_request(audio_dir, song_id, new_id, genre):
    path = audio_dir / f"{song_id}.wav"
    return pb.AddSongRequest(song_id=new_id, title="Unheard", artist="Live Artist", genre=genre,
                             audio=path.read_bytes(), audio_filename=path.name)


def test_an_added_clip_is_found_and_has_acoustic_neighbours_of_its_own_genre(server, catalog, audio_dir):
    songs = catalog["songs"]
    share_same, base = [], []
    for original in catalog["with_audio"][:4]:
        genre = songs[original]["genre"]
        new_id = f"LIVE-{original}"
        added = server.stub.AddSong(_clip_request(audio_dir, original, new_id, genre), metadata=AUTH, timeout=30)
        assert added.song.has_audio and "acoustic" in added.song.sources and not added.song.has_plays
        assert added.song.genre_scores   # the genre head's confidences
        got = server.stub.GetSong(pb.GetSongRequest(song_id=new_id), timeout=10).song
        assert got.title == "Unheard" and got.genre == genre
        near = [s.song_id for s in server.stub.SimilarSongs(
            pb.SimilarSongsRequest(song_id=new_id, k=5, mode=pb.SIMILARITY_MODE_ACOUSTIC), timeout=10).songs]
        orig_near = [s.song_id for s in server.stub.SimilarSongs(
            pb.SimilarSongsRequest(song_id=original, k=5, mode=pb.SIMILARITY_MODE_ACOUSTIC), timeout=10).songs]
        # the same clip through the server's decode + CNN lands where `pmrs predict` put the original
        assert set(near) - {original} <= set(orig_near) | {s for s in near if s.startswith("LIVE-")}
        share_same.append(np.mean([songs.get(s, {}).get("genre") == genre for s in near]))
        base.append(np.mean([s["genre"] == genre for s in songs.values()]))
    assert np.mean(share_same) > np.mean(base)
    # and it can be recommended: a listener of the original gets it through the acoustic source
    seeds = server.stub.Recommend(pb.RecommendRequest(seed_song_ids=[catalog["with_audio"][0]], k=20,
                                                      shares={"acoustic": 1.0}), timeout=10)
    assert any(s.song_id.startswith("LIVE-") for s in seeds.songs)


def test_only_the_write_token_may_write(server, catalog):
    req = _plays(catalog["users"][1], [(catalog["with_audio"][0], 1)])
    assert code_of(server.stub.RecordPlays, req, timeout=10)[0] == grpc.StatusCode.UNAUTHENTICATED
    for bad in ("Bearer not-the-token-at-all-000", "Basic dXNlcjpwYXNz", "Bearer"):
        code, _ = code_of(server.stub.RecordPlays, req, metadata=(("authorization", bad),), timeout=10)
        assert code == grpc.StatusCode.PERMISSION_DENIED, bad
    add = pb.AddSongRequest(song_id="NOPE-1", title="x")
    assert code_of(server.stub.AddSong, add, timeout=10)[0] == grpc.StatusCode.UNAUTHENTICATED
    assert code_of(server.stub.GetSong, pb.GetSongRequest(song_id="NOPE-1"), timeout=10)[0] \
        == grpc.StatusCode.NOT_FOUND   # nothing was added; reads are open
    server.stub.Ping(pb.PingRequest(), timeout=10)


def _silent_wav(path, seconds, rate=22050):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\0\0" * int(seconds * rate))
    return path.read_bytes()


def test_bad_writes_are_refused_and_change_nothing(server, catalog, tmp_path):
    user, song = catalog["users"][2], catalog["with_audio"][1]
    seq = server.stub.GetBundleInfo(pb.GetBundleInfoRequest(), timeout=10).live_sequence
    code, msg = code_of(server.stub.RecordPlays, _plays(user, [(song, 1), ("SONOSUCHSONG", 2)]),
                        metadata=AUTH, timeout=10)
    assert code == grpc.StatusCode.NOT_FOUND and "SONOSUCHSONG" in msg
    for pairs in ([(song, 0)], [(song, -1)], [(song, 1_000_000)], []):
        assert code_of(server.stub.RecordPlays, _plays(user, pairs), metadata=AUTH, timeout=10)[0] \
            == grpc.StatusCode.INVALID_ARGUMENT, pairs
    assert code_of(server.stub.RecordPlays, _plays("", [(song, 1)]), metadata=AUTH, timeout=10)[0] \
        == grpc.StatusCode.INVALID_ARGUMENT
    bad_clips = {"garbage.mp3": b"this is not audio at all" * 100,
                 "silent.wav": _silent_wav(tmp_path / "s.wav", 5.0),
                 "short.wav": _silent_wav(tmp_path / "t.wav", 0.05)}
    for i, (name, data) in enumerate(bad_clips.items()):
        req = pb.AddSongRequest(song_id=f"BAD-{i}", title="bad", audio=data, audio_filename=name)
        code, msg = code_of(server.stub.AddSong, req, metadata=AUTH, timeout=30)
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (name, code, msg)
    # no bytes: a song by its fields alone, which is allowed (and written)
    fields_only = server.stub.AddSong(pb.AddSongRequest(song_id="FIELDS-ONLY", title="words", audio_filename="x.wav"),
                                      metadata=AUTH, timeout=10)
    assert not fields_only.song.sources and fields_only.song.title == "words"
    big = pb.AddSongRequest(song_id="BIG", audio=b"\0" * (MAX_CLIP_BYTES + 1), audio_filename="big.wav")
    assert code_of(server.stub.AddSong, big, metadata=AUTH, timeout=30)[0] == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert code_of(server.stub.AddSong, pb.AddSongRequest(song_id=song, title="dup"), metadata=AUTH,
                   timeout=10)[0] == grpc.StatusCode.ALREADY_EXISTS
    for i in range(3):
        assert code_of(server.stub.GetSong, pb.GetSongRequest(song_id=f"BAD-{i}"), timeout=10)[0] \
            == grpc.StatusCode.NOT_FOUND
    # only the fields-only song (the empty clip) was written
    assert server.stub.GetBundleInfo(pb.GetBundleInfoRequest(), timeout=10).live_sequence == seq + 1


def test_pmrs_client_writes(server, catalog, audio_dir, tmp_path, monkeypatch, capsys):
    # (the Python API's writes, in process and over gRPC: tests/test_api.py)
    from pmrs_clients.cli import main as client_main

    songs = catalog["with_audio"]
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    assert client_main(["--target", server.address, "--timeout", "60", "--token-file", str(token_file), "play", "cli-user",
                        f"{songs[9]}=3", songs[10]]) == 0
    assert "recorded as write" in capsys.readouterr().out
    monkeypatch.setenv("PMRS_TOKEN", TOKEN)
    assert client_main(["--target", server.address, "--timeout", "60", "add-song", "CLI-NEW", "--title", "From the CLI",
                        "--genre", "rock", "--tag", "live", "cli"]) == 0
    assert "From the CLI" in capsys.readouterr().out
    clip = sorted(audio_dir.glob("*.wav"))[5]
    assert client_main(["--target", server.address, "--timeout", "60", "--json", "add-song", "CLI-CLIP", "--audio",
                        str(clip), "--title", "A clip"]) == 0
    added = json.loads(capsys.readouterr().out)
    assert added["seq"] > 0 and "acoustic" in added["song"]["sources"]
    assert client_main(["--target", server.address, "play", "cli-user", "SONOSUCH=1"]) == 1
    assert "NOT_FOUND" in capsys.readouterr().err


def test_a_log_that_cannot_take_writes_answers_unavailable_and_reads_go_on(work, catalog, monkeypatch):
    import sqlite3

    from pmrs.live import log as logmod
    from pmrs.v1 import recommender_pb2_grpc as pb_grpc
    from pmrs_server.auth import Auth
    from pmrs_server.main import serve

    real = logmod.WriteLog._conn

    class FullDisk:   # every INSERT fails as SQLite fails on a full disk
        def __init__(self, conn):
            self.conn = conn

        def execute(self, sql, *args):
            if sql.lstrip().upper().startswith("INSERT"):
                raise sqlite3.OperationalError("database or disk is full")
            return self.conn.execute(sql, *args)

        def __getattr__(self, name):
            return getattr(self.conn, name)

    monkeypatch.setattr(logmod.WriteLog, "_conn", lambda self: FullDisk(real(self)))
    running = serve(work, bind="127.0.0.1:0", auth=Auth(write=TOKEN))
    try:
        with grpc.insecure_channel(running.address) as channel:
            stub = pb_grpc.RecommenderStub(channel)
            before = stub.GetBundleInfo(pb.GetBundleInfoRequest(), timeout=10).live_sequence
            code, msg = code_of(stub.RecordPlays, _plays("full-disk-user", [(catalog["with_audio"][0], 1)]),
                                metadata=AUTH, timeout=10)
            assert code == grpc.StatusCode.UNAVAILABLE and "full" in msg
            code, _ = code_of(stub.AddSong, pb.AddSongRequest(song_id="FULL-DISK", title="x"), metadata=AUTH,
                              timeout=10)
            assert code == grpc.StatusCode.UNAVAILABLE
            assert _recommend(stub, catalog["users"][5])          # reads go on
            assert code_of(stub.Recommend, pb.RecommendRequest(user_id="full-disk-user"), timeout=10)[0] \
                == grpc.StatusCode.NOT_FOUND                     # nothing was applied
            assert stub.GetBundleInfo(pb.GetBundleInfoRequest(), timeout=10).live_sequence == before
    finally:
        running.stop(0)


def test_a_second_server_sees_every_write_and_kill_9_loses_none(server, work, catalog, tmp_path):
    # (kills the module's server: keep this test after every other test that uses it)
    other = ServerProcess(work, tmp_path / "b.log", env={"PMRS_WRITE_TOKEN": TOKEN})
    try:
        user = "shared-listener"
        songs = catalog["with_audio"][2:5]
        server.stub.RecordPlays(_plays(user, [(s, 2) for s in songs]), metadata=AUTH, timeout=10)
        assert wait_for(lambda: not code_of_ok(other, user), timeout=10), other.stderr()
        assert _recommend(other.stub, user) == _recommend(server.stub, user)
        # a write on the second is seen by the first, and survives kill -9 of both
        other.stub.RecordPlays(_plays(user, [(catalog["with_audio"][6], 9)]), metadata=AUTH, timeout=10)
        other.proc.kill()
        other.proc.wait()
        assert wait_for(lambda: catalog["with_audio"][6] not in _recommend(server.stub, user, k=50), timeout=10)
        expected = _recommend(server.stub, user)
        server.proc.kill()
        server.proc.wait()
    finally:
        other.kill()
    again = ServerProcess(work, tmp_path / "c.log")
    try:
        assert _recommend(again.stub, user) == expected
        # without a write token this server takes no writes
        code, msg = code_of(again.stub.RecordPlays, _plays(user, [(songs[0], 1)]), metadata=AUTH, timeout=10)
        assert code == grpc.StatusCode.PERMISSION_DENIED and "no write token" in msg
    finally:
        again.stop()


def code_of_ok(proc, user):
    """True while ``user`` is unknown to the server ``proc``."""
    try:
        proc.stub.Recommend(pb.RecommendRequest(user_id=user), timeout=10)
        return False
    except grpc.RpcError as err:
        return err.code() == grpc.StatusCode.NOT_FOUND


def test_reads_need_the_read_token_when_one_is_set(work, tmp_path, catalog):
    s = ServerProcess(work, tmp_path / "r.log", env={"PMRS_WRITE_TOKEN": TOKEN, "PMRS_READ_TOKEN": READ_TOKEN})
    try:
        req = pb.RecommendRequest(user_id=catalog["users"][3])
        assert code_of(s.stub.Recommend, req, timeout=10)[0] == grpc.StatusCode.UNAUTHENTICATED
        assert code_of(s.stub.Recommend, req, metadata=(("authorization", "Bearer wrong-token-xxxxxxxxx"),),
                       timeout=10)[0] == grpc.StatusCode.PERMISSION_DENIED
        for token in (READ_TOKEN, TOKEN):   # the read token, or the write token, reads
            assert s.stub.Recommend(req, metadata=(("authorization", f"Bearer {token}"),), timeout=10).songs
        code = code_of(s.stub.RecordPlays, _plays("x", [(catalog["with_audio"][0], 1)]),
                       metadata=(("authorization", f"Bearer {READ_TOKEN}"),), timeout=10)[0]
        assert code == grpc.StatusCode.PERMISSION_DENIED   # the read token does not write
    finally:
        s.stop()

