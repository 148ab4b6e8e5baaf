"""The public API's tests, written once and run against both implementations: ``pmrs.Recommender``
in process and the remote recommender ``pmrs.connect`` gives, to a ``pmrs-server`` over the same
work directory (the way implicit runs one test mixin over every model). Both are opened live on
one work directory, so a write through either is seen by both, and their answers are compared
field by field."""

from __future__ import annotations

import dataclasses
import inspect
import json
import subprocess
import sys

import numpy as np
import pytest

import pmrs
from servers import ROOT, ServerProcess, wait_for, work_with_bundle

TOKEN = "api-write-token-0123456789"
VERBS = ("recommend", "similar_songs", "recommend_by_genre", "radio", "song", "info", "record_plays", "add_song",
         "refresh", "close")
PROPERTIES = ("version", "sources", "live_seq", "defaults")


@pytest.fixture(scope="module")
def work(serving_workdir, tmp_path_factory):
    return work_with_bundle(serving_workdir, tmp_path_factory, "api")


@pytest.fixture(scope="module")
def catalog(local, serving_workdir):
    b = local.bundle   # (LMDB refuses a second open of the catalog in one process)
    rows = np.arange(b.n_songs)
    songs = b.songs(rows)
    plays = b.song_vectors("collaborative", rows)[0]
    audio = b.song_vectors("acoustic", rows)[0]
    users = [u.decode() for u in b.user_ids[:6]]
    ids = [s["song_id"] for s in songs]
    return {"users": users, "songs": ids, "genres": sorted({s["genre"] for s in songs if s["genre"]}),
            "played": [i for i, p in zip(ids, plays) if p],
            "cold": [i for i, p, a in zip(ids, plays, audio) if a and not p],
            "audio": serving_workdir.parent / "data" / "audio"}


@pytest.fixture(scope="module")
def server(work, tmp_path_factory):
    s = ServerProcess(work, tmp_path_factory.mktemp("api-log") / "server.log", env={"PMRS_WRITE_TOKEN": TOKEN})
    yield s
    s.stop()


@pytest.fixture(scope="module")
def local(work):
    with pmrs.Recommender.open(work, live=True) as rec:
        yield rec


@pytest.fixture(scope="module")
def remote(server):
    with pmrs.connect(server.address, token=TOKEN, timeout=60) as rec:
        yield rec


@pytest.fixture(params=["in-process", "remote"])
def rec(request):
    """Each test that takes ``rec`` runs once in process and once over gRPC."""
    return request.getfixturevalue("local" if request.param == "in-process" else "remote")


def synced(local, remote):
    """Both on the same write-log position: the in-process recommender applies what the server
    wrote, the server (polling every 50 ms) what the in-process one wrote."""
    local.refresh()
    assert wait_for(lambda: remote.live_seq == local.live_seq, timeout=20), (remote.live_seq, local.live_seq)
    return local, remote


def same(a, b, where="answer"):
    """``a`` and ``b`` equal field by field: the same types all the way down; floats to float32
    precision (the proto's ``float``)."""
    assert type(a) is type(b), (where, type(a), type(b))
    if dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, float):
        assert b == pytest.approx(a, rel=2e-7, abs=1e-7), where
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), (where, a, b)
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{where}[{i}]")
    elif isinstance(a, dict):
        assert sorted(a) == sorted(b), where
        for key in a:
            same(a[key], b[key], f"{where}[{key!r}]")
    else:
        assert a == b, where


# -- one interface ----------------------------------------------------------------------------

def test_the_remote_recommender_has_the_verbs_and_signatures_of_the_in_process_one():
    for name in VERBS:
        here = inspect.signature(getattr(pmrs.Recommender, name))
        there = inspect.signature(getattr(pmrs.RemoteRecommender, name))
        params = [p for p in here.parameters.values() if p.name != "hooks"]  # (what a server adds around a call)
        assert list(there.parameters.values()) == params, name
        assert there.return_annotation == here.return_annotation, name
    for name in PROPERTIES:
        assert isinstance(inspect.getattr_static(pmrs.RemoteRecommender, name), property), name
    public = {n for n in dir(pmrs.Recommender) if not n.startswith("_")} - {"open"}
    assert public <= {n for n in dir(pmrs.RemoteRecommender) if not n.startswith("_")}


def test_a_remote_client_loads_neither_faiss_nor_torch():
    code = ("import sys, pmrs, pmrs.remote, pmrs.results, pmrs.errors; rec = pmrs.connect('127.0.0.1:1'); rec.close(); "
            "heavy = sorted({'faiss', 'torch', 'lmdb', 'librosa'} & set(sys.modules)); assert not heavy, heavy")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    done = subprocess.run([sys.executable, "-c", "import sys, pmrs.results; assert 'grpc' not in sys.modules"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr


# -- the same answers -------------------------------------------------------------------------

def test_recommend_gives_the_same_answers(local, remote, catalog):
    local, remote = synced(local, remote)
    users, played, genres = catalog["users"], catalog["played"], catalog["genres"]
    requests = [dict(user_id=users[0]), dict(user_id=users[1], k=5), dict(user_id=users[2], k=20, diversity=0.5),
                dict(user_id=users[3], shares={"acoustic": 0.5}), dict(user_id=users[4], include_played=True, k=15),
                dict(user_id=users[5], filters=pmrs.Filters(genres=(genres[0],), exclude_artists=("nobody",))),
                dict(seed_song_ids=played[:3], k=7), dict(seed_song_ids=played[3:5], shares={"collaborative": 1.0})]
    for kwargs in requests:
        here, there = local.recommend(**kwargs), remote.recommend(**kwargs)
        assert here.songs, kwargs
        same(here, there, f"recommend({kwargs})")
    assert local.recommend(users[0]).precomputed and remote.recommend(users[0]).precomputed
    assert local.recommend(seed_song_ids=played[:2]).folded_in


def test_similar_songs_gives_the_same_answers(local, remote, catalog):
    local, remote = synced(local, remote)
    played, cold = catalog["played"], catalog["cold"]
    requests = [dict(song_id=played[0]), dict(song_id=played[1], k=4, mode="collaborative"),
                dict(song_id=played[2], mode="acoustic", diversity=0.25), dict(song_id=cold[0], k=6),
                dict(song_id=cold[1], mode="acoustic", filters=pmrs.Filters(min_year=1900)),
                dict(song_id=played[3], shares={"acoustic": 0.5})]
    for kwargs in requests:
        here, there = local.similar_songs(**kwargs), remote.similar_songs(**kwargs)
        assert here.songs and kwargs["song_id"] not in here.song_ids, kwargs
        same(here, there, f"similar_songs({kwargs})")
    assert remote.similar_songs(played[0]).precomputed


def test_radio_gives_the_same_answers_and_goes_on_from_either(local, remote, catalog):
    local, remote = synced(local, remote)
    played, cold = catalog["played"], catalog["cold"]
    artist = local.song(played[0]).artist
    requests = [dict(song_id=played[0]), dict(song_id=cold[0], k=6, explain=True),
                dict(artist=artist.upper(), k=5, artist_gap=1), dict(seed_song_ids=played[1:4], k=7, diversity=0.8),
                dict(user_id=catalog["users"][0], k=8), dict(song_id=played[2], user_id=catalog["users"][1], k=5)]
    for kwargs in requests:
        here, there = local.radio(**kwargs), remote.radio(**kwargs)
        assert here.songs and isinstance(here, pmrs.RadioSongs), kwargs
        same(here, there, f"radio({kwargs})")
        # either continues the other's token, steered by the same session
        session = [(here.songs[0].song_id, "skip"), (here.songs[-1].song_id, "dislike")]
        same(local.radio(token=there.token, session=session, k=6), remote.radio(token=here.token, session=session, k=6),
             f"radio({kwargs}) continued")


def test_pmrs_client_radio_prints_the_songs_and_a_token_that_goes_on(server, local, remote, catalog, capsys):
    from pmrs_clients import cli

    local, remote = synced(local, remote)
    start = catalog["cold"][1]
    want = local.radio(song_id=start, k=5)
    assert cli.main(["--target", server.address, "radio", "--song", start, "-k", "5"]) == 0
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert [line.split()[-1] for line in lines[1:6]] == want.song_ids     # the table's song id column
    assert lines[-1] == f"token: {want.token}"
    skipped = want.song_ids[0]
    assert cli.main(["--target", server.address, "--json", "radio", "--token", want.token, "--skip", skipped,
                     "-k", "4"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert [s["song_id"] for s in got["songs"]] == local.radio(token=want.token, session=[(skipped, "skip")], k=4).song_ids
    assert cli.main(["--target", server.address, "radio", "--token", "garbage"]) == 1
    assert "INVALID_ARGUMENT" in capsys.readouterr().err


def test_recommend_by_genre_song_and_info_give_the_same_answers(local, remote, catalog):
    local, remote = synced(local, remote)
    named = [g.genre.upper() for g in local.recommend_by_genre(catalog["users"][1]).genres[:2]]
    for kwargs in (dict(user_id=catalog["users"][0]), dict(seed_song_ids=catalog["played"][:3], k=3),
                   dict(user_id=catalog["users"][1], genres=named)):
        here = local.recommend_by_genre(**kwargs)
        assert here.genres, kwargs
        same(here, remote.recommend_by_genre(**kwargs), f"recommend_by_genre({kwargs})")
    for song_id in catalog["played"][:3] + catalog["cold"][:3]:
        same(local.song(song_id), remote.song(song_id), f"song({song_id})")
    here, there = local.info(), remote.info()
    assert there.server and not here.server   # which server answered: only a server has an address
    same(here, dataclasses.replace(there, server="", metrics_url=""), "info()")
    assert here.accepts_writes and there.live_seq == here.live_seq
    assert (local.version, local.sources) == (remote.version, remote.sources)
    assert local.defaults == remote.defaults


def test_a_song_comes_with_its_heaviest_last_fm_tags_on_both(local, remote, catalog):
    local, remote = synced(local, remote)
    b = local.bundle
    tagged = [sid for sid in catalog["songs"] if b.song_tags(b.song_row(sid))]
    assert tagged, "the synthetic world's catalog has Last.fm tags"
    for song_id in tagged[:5]:
        stored = b.song_tags(b.song_row(song_id))
        here, there = local.song(song_id), remote.song(song_id)
        assert here.tags == there.tags and here.tags
        assert len(here.tags) == min(len(stored), 20)
        assert list(here.tags) == sorted(stored.items(), key=lambda kv: (-kv[1], kv[0]))[:20]
        assert all(isinstance(t, str) and isinstance(w, float) for t, w in there.tags)
    untagged = [sid for sid in catalog["songs"] if not b.song_tags(b.song_row(sid))]
    if untagged:
        assert local.song(untagged[0]).tags == remote.song(untagged[0]).tags == ()


# -- errors -----------------------------------------------------------------------------------

def test_unknown_ids_are_not_found_with_the_same_message(local, remote):
    for call in (lambda r: r.recommend("no-such-user"), lambda r: r.song("NO-SUCH-SONG"),
                 lambda r: r.radio(song_id="NO-SUCH-SONG"), lambda r: r.radio(artist="No Such Artist"),
                 lambda r: r.similar_songs("NO-SUCH-SONG"), lambda r: r.recommend(seed_song_ids=["NO-SUCH-SONG"])):
        messages = []
        for r in (local, remote):
            with pytest.raises(pmrs.NotFound) as err:
                call(r)
            assert isinstance(err.value, (LookupError, pmrs.PMRSError)) and err.value.code == "NOT_FOUND"
            messages.append(str(err.value))
        assert messages[0] == messages[1]


@pytest.mark.parametrize("call", [
    lambda r, c: r.recommend(c["users"][0], k=1001), lambda r, c: r.recommend(c["users"][0], k=-1),
    lambda r, c: r.recommend(c["users"][0], diversity=2.0),
    lambda r, c: r.recommend(c["users"][0], shares={"lyrics": 0.5}),
    lambda r, c: r.recommend(), lambda r, c: r.similar_songs(c["played"][0], mode="lyrics"),
    lambda r, c: r.similar_songs(c["played"][0], k=5000), lambda r, c: r.recommend_by_genre(c["users"][0], k=1001),
    lambda r, c: r.record_plays("someone", {c["played"][0]: 0}), lambda r, c: r.record_plays("someone", {}),
    lambda r, c: r.record_plays("someone", {c["played"][0]: 2.5}), lambda r, c: r.add_song("", title="x"),
    lambda r, c: r.radio(), lambda r, c: r.radio(song_id=c["played"][0], artist="x"),
    lambda r, c: r.radio(token="not-a-radio-token"), lambda r, c: r.radio(song_id=c["played"][0], artist_gap=51),
    lambda r, c: r.radio(song_id=c["played"][0], diversity=-0.1),
    lambda r, c: r.radio(song_id=c["played"][0], session=[(c["played"][1], "hide_artist")]),
    lambda r, c: r.radio(token=r.radio(song_id=c["played"][0], k=2).token, song_id=c["played"][1]),
], ids=["k-over", "k-negative", "diversity", "unknown-share", "no-listener", "unknown-mode", "similar-k", "genre-k",
        "zero-count", "no-plays", "fractional-count", "no-song-id", "radio-no-start", "radio-two-starts",
        "radio-garbage-token", "radio-gap", "radio-diversity", "radio-action", "radio-other-start"])
def test_bad_arguments_are_invalid_arguments(rec, catalog, call):
    with pytest.raises(pmrs.InvalidArgument) as err:
        call(rec, catalog)
    assert isinstance(err.value, ValueError) and err.value.code == "INVALID_ARGUMENT"


def test_a_bare_string_is_not_a_list_of_ids(rec):
    with pytest.raises(TypeError):
        rec.recommend(seed_song_ids="SOAAA")


def test_adding_a_known_song_already_exists(rec, catalog):
    with pytest.raises(pmrs.AlreadyExists) as err:
        rec.add_song(catalog["played"][0], title="again")
    assert err.value.code == "ALREADY_EXISTS"


def test_writes_to_a_read_only_recommender_are_refused(work, local, tmp_path, catalog):
    song = catalog["played"][0]
    # (Recommender.open(work) without live=True: here over the bundle already open, which LMDB
    # cannot open twice in one process)
    here = pmrs.Recommender(local.bundle)
    for call in (lambda r: r.record_plays("reader", {song: 1}), lambda r: r.add_song("READ-ONLY", title="x")):
        with pytest.raises(pmrs.ReadOnly) as err:
            call(here)
        assert err.value.code == "FAILED_PRECONDITION"
    assert not here.info().accepts_writes
    # a server serving without its write log (with a write token: the token is not what refuses)
    s = ServerProcess(work, tmp_path / "ro.log", "--no-live", env={"PMRS_WRITE_TOKEN": TOKEN})
    try:
        with pmrs.connect(s.address, token=TOKEN) as there:
            for call in (lambda r: r.record_plays("reader", {song: 1}), lambda r: r.add_song("READ-ONLY", title="x")):
                with pytest.raises(pmrs.ReadOnly) as err:
                    call(there)
                assert err.value.code == "FAILED_PRECONDITION"
            assert not there.info().accepts_writes
    finally:
        s.stop()


def test_tokens_are_checked_over_the_wire(server, catalog):
    song = catalog["played"][0]
    with pmrs.connect(server.address, token="") as anonymous:
        with pytest.raises(pmrs.Unauthenticated):
            anonymous.record_plays("intruder", {song: 1})
        assert anonymous.song(song).song_id == song   # reads are open on this server
    with pmrs.connect(server.address, token="not-the-write-token-xxxx") as wrong:
        with pytest.raises(pmrs.PermissionDenied) as err:
            wrong.add_song("INTRUDER", title="x")
        assert "not valid" in str(err.value)


def test_an_unreachable_server_is_unavailable():
    with pmrs.connect("127.0.0.1:1", timeout=2, retries=0) as rec:
        with pytest.raises(pmrs.Unavailable):
            rec.info()


# -- writes, through both -----------------------------------------------------------------------

def test_recorded_plays_change_the_next_answers_on_both(rec, local, remote, catalog, request):
    kind = request.node.callspec.params["rec"]
    user, songs = f"api-listener-{kind}", catalog["played"][10:13]
    with pytest.raises(pmrs.NotFound):
        rec.recommend(user)
    done = rec.record_plays(user, {s: 3 for s in songs})
    assert isinstance(done, pmrs.Appended) and done.seq > 0 and not done.duplicate
    got = rec.recommend(user, k=20)
    assert got.songs and not set(songs) & set(got.song_ids) and not got.precomputed
    first = rec.record_plays(user, [(catalog["played"][14], 1)], request_id=f"retry-{kind}")
    again = rec.record_plays(user, [(catalog["played"][14], 1)], request_id=f"retry-{kind}")
    assert again == pmrs.Appended(first.seq, duplicate=True) and not first.duplicate
    local, remote = synced(local, remote)
    same(local.recommend(user, k=20), remote.recommend(user, k=20), "after the plays")


def test_an_added_song_is_found_by_both(rec, local, remote, catalog, request):
    kind = request.node.callspec.params["rec"]
    original = catalog["cold"][2]
    clip = catalog["audio"] / f"{original}.wav"
    new_id = f"API-{kind}-{original}"
    added = rec.add_song(new_id, title="Unheard", artist="API Artist", genre="rock", tags=["api", kind],
                         audio=clip.read_bytes(), filename=clip.name, request_id=f"add-{kind}")
    assert isinstance(added, pmrs.AddedSong) and added.seq > 0 and not added.duplicate
    assert isinstance(added.song, pmrs.Song) and added.song.has_audio and not added.song.has_plays
    assert added.song.genre_scores and isinstance(added.song.genre_scores[0], pmrs.GenreScore)
    # the tiny world's CNN predicts factors no better than the mean song's: its vector says so
    assert added.song.acoustic_warning == local.bundle.acoustic_warning
    assert added.song.acoustic_warning.startswith("the acoustic model's factor prediction learned from too little")
    retried = rec.add_song(new_id, title="Unheard", audio=clip.read_bytes(), filename=clip.name,
                           request_id=f"add-{kind}")
    assert retried.duplicate and retried.seq == added.seq
    near = rec.similar_songs(new_id, k=5, mode="acoustic")
    assert len(near.songs) == 5 and new_id not in near.song_ids
    local, remote = synced(local, remote)
    same(local.song(new_id), remote.song(new_id), "the added song")
    assert local.song(new_id).tags == tuple(sorted([("api", 100.0), (kind, 100.0)]))
    same(local.similar_songs(new_id, k=5), remote.similar_songs(new_id, k=5), "its neighbours")
    fields_only = rec.add_song(f"API-{kind}-WORDS", title="words only", genre="jazz")
    assert fields_only.song.title == "words only" and "acoustic" not in fields_only.song.sources
    assert fields_only.song.acoustic_warning == ""   # (no acoustic vector to distrust)


def test_answers_are_still_the_same_after_the_writes(local, remote, catalog):
    local, remote = synced(local, remote)
    for user in catalog["users"][:3]:
        kwargs = dict(k=15, shares={"acoustic": 0.5})
        same(local.recommend(user, **kwargs), remote.recommend(user, **kwargs))
    same(local.similar_songs(catalog["cold"][2], k=10), remote.similar_songs(catalog["cold"][2], k=10))
    same(local.info(), dataclasses.replace(remote.info(), server="", metrics_url=""))
