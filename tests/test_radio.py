"""Radio (pmrs.serving.radio, pmrs.Recommender.radio): no repeats across continuations, artists
kept apart, session steering, cold and live-added starts, tokens that survive a new bundle and
refuse garbage. (The same answers over gRPC and the CLI: tests/test_api.py.)"""

import base64
import json
import zlib

import numpy as np
import pytest
from servers import work_with_bundle

import pmrs
from pmrs.errors import InvalidArgument, NotFound
from pmrs.indexing import IndexerConfig, build_bundle
from pmrs.serving import radio as R


@pytest.fixture(scope="module")
def work(serving_workdir, tmp_path_factory):
    return work_with_bundle(serving_workdir, tmp_path_factory, "radio", metadata=True)


@pytest.fixture(scope="module")
def rec(work):
    with pmrs.Recommender.open(work, live=True) as r:
        yield r


@pytest.fixture(scope="module")
def songs(rec):
    b = rec.bundle
    rows = np.arange(b.n_songs)
    fields = b.songs(rows)
    plays = b.song_vectors("collaborative", rows)[0]
    audio = b.song_vectors("acoustic", rows)[0]
    return {"played": [f["song_id"] for f, p in zip(fields, plays) if p],
            "cold": [f["song_id"] for f, p, a in zip(fields, plays, audio) if a and not p],
            "artist": {f["song_id"]: f["artist"].casefold() for f in fields}}


def _run(rec, first: dict, stretches: int, k: int = 6, **every):
    """``stretches`` answers of one radio: the first with ``first``, then each with the last token."""
    out = [rec.radio(k=k, **first, **every)]
    for _ in range(stretches - 1):
        out.append(rec.radio(k=k, token=out[-1].token, **every))
    return out


def test_a_radio_never_repeats_and_never_plays_its_start_across_continuations(rec, songs):
    start = songs["played"][0]
    got = _run(rec, {"song_id": start}, 5)
    played = [s for r in got for s in r.song_ids]
    assert len(played) == 30 and len(set(played)) == 30 and start not in played
    assert all(r.bundle_version == rec.version and r.token.startswith(R.TOKEN_PREFIX) for r in got)
    assert rec.radio(song_id=start, k=6).song_ids == got[0].song_ids   # a new radio: the same start, the same songs


def test_the_artist_gap_holds_across_stretches(rec, songs):
    for gap in (1, 2, 3):
        got = _run(rec, {"song_id": songs["played"][1]}, 4, k=5, artist_gap=gap)
        artists = [s.artist.casefold() for r in got for s in r.songs]
        assert len(artists) == 20
        assert not any(r.relaxed for r in got)      # (the world has 9 artists: room for the gap)
        for i, a in enumerate(artists):
            assert a not in artists[max(0, i - gap):i], (gap, i, artists)
    with pytest.raises(InvalidArgument):
        rec.radio(song_id=songs["played"][1], artist_gap=R.MAX_ARTIST_GAP + 1)


def test_an_impossible_gap_is_relaxed_and_said_so(rec, songs):
    n_artists = len(set(songs["artist"].values()))
    got = _run(rec, {"song_id": songs["played"][2]}, 3, k=10, artist_gap=min(n_artists + 1, R.MAX_ARTIST_GAP))
    assert any(r.relaxed for r in got) and all(len(r.songs) == 10 for r in got)   # it goes on regardless


def test_a_disliked_song_takes_its_artist_out_of_what_follows(rec, songs):
    first = rec.radio(song_id=songs["played"][3], k=6, artist_gap=0)
    disliked = first.songs[0]
    steered = _run(rec, {"token": first.token, "session": [(disliked.song_id, "dislike")]}, 3, k=8, artist_gap=0)
    after = [s for r in steered for s in r.songs]
    assert after and all(s.artist.casefold() != disliked.artist.casefold() for s in after)
    plain = _run(rec, {"token": first.token}, 3, k=8, artist_gap=0)
    assert any(s.artist.casefold() == disliked.artist.casefold() for r in plain for s in r.songs), \
        "the artist would have come back without the dislike (else this test shows nothing)"


def test_a_skip_changes_what_follows(rec, songs):
    first = rec.radio(song_id=songs["played"][4], k=5, diversity=0.5)
    skipped = first.songs[-1]
    plain = rec.radio(token=first.token, k=10)
    steered = rec.radio(token=first.token, k=10, session=[(skipped.song_id, "skip")])
    assert steered.song_ids != plain.song_ids and skipped.song_id not in steered.song_ids
    # only the skipped song's nearest neighbours sink: most of what follows stays (a skipped song
    # does not push the radio out of the genre that sounds like it)
    state = R.decode_token(steered.token)
    assert skipped.song_id in state.skipped and skipped.song_id not in state.steering()


def test_a_skip_sinks_only_the_songs_nearest_it(rec, songs):
    # at diversity 0 the query stays the start's: what a skip changes is the sinking alone
    first = rec.radio(song_id=songs["played"][4], k=5, diversity=0.0, artist_gap=0)
    skipped = first.songs[0].song_id
    plain = rec.radio(token=first.token, k=30).song_ids
    steered = rec.radio(token=first.token, k=30, session=[(skipped, "skip")]).song_ids
    assert plain != steered and skipped not in steered
    moved = [s for s in plain[:10] if s not in steered[:10]]
    assert 0 < len(moved) <= R.SKIP_NEIGHBOURS                           # a few sink, the rest stay
    b = rec.bundle
    emb = b.embedding(b.song_rows(plain))
    cos = dict(zip(plain, (emb @ b.embedding(b.song_rows([skipped]))[0]).tolist()))
    kept = [s for s in plain[:10] if s not in moved]
    assert min(cos[s] for s in moved) >= max(cos[s] for s in kept) - 1e-6  # and those are the nearest


def test_a_like_steers_the_radio(rec, songs):
    first = rec.radio(song_id=songs["played"][5], k=5, diversity=0.0)
    liked = first.songs[2].song_id
    state = R.decode_token(rec.radio(token=first.token, k=5, session=[(liked, "like")]).token)
    assert state.steering() == (liked,)            # at diversity 0 only liked songs pull the radio along
    assert R.decode_token(rec.radio(token=first.token, k=5).token).steering() == ()


def test_diversity_sets_how_far_the_radio_drifts(rec, songs):
    still = _run(rec, {"song_id": songs["played"][6]}, 3, diversity=0.0)
    moving = _run(rec, {"song_id": songs["played"][6]}, 3, diversity=1.0)
    assert R.decode_token(still[-1].token).steering() == ()
    assert len(R.decode_token(moving[-1].token).steering()) == R.DRIFT_WINDOW
    assert [s for r in still for s in r.song_ids] != [s for r in moving for s in r.song_ids]


def test_a_cold_song_starts_a_radio(rec, songs):
    cold = songs["cold"][0]
    assert not rec.song(cold).has_plays
    got = _run(rec, {"song_id": cold}, 2, k=8, explain=True)
    ids = [s for r in got for s in r.song_ids]
    assert len(ids) == 16 and cold not in ids
    for s in got[0].songs:
        assert s.sources and [r.source for r in s.reasons] == list(s.sources)


def test_a_song_added_live_starts_a_radio(rec, work, serving_workdir):
    clip = next((serving_workdir.parent / "data" / "audio").iterdir())
    rec.add_song("RADIO-LIVE-1", title="Live radio", artist="Someone New", audio=clip.read_bytes(),
                 filename=clip.name)
    got = rec.radio(song_id="RADIO-LIVE-1", k=8)
    assert len(got.songs) == 8 and "RADIO-LIVE-1" not in got.song_ids
    assert rec.radio(artist="someone new", k=5).songs     # its artist too (case-insensitive)


def test_an_artist_seeds_and_a_user_start_radios(rec, songs):
    artist = rec.song(songs["played"][0]).artist
    by_artist = _run(rec, {"artist": artist}, 2, k=5)
    assert all(r.songs for r in by_artist)
    assert rec.radio(seed_song_ids=songs["played"][:3], k=5).songs
    user = rec.bundle.user_ids[2].decode()
    mine = rec.radio(user_id=user, k=10)
    top = rec.history(user, limit=1000).songs[:R.START_SONGS]
    assert len(mine.songs) == 10 and not {s.song_id for s in top} & set(mine.song_ids)
    with pytest.raises(NotFound):
        rec.radio(artist="nobody by this name at all")
    with pytest.raises(NotFound):
        rec.radio(user_id="no-such-user")
    with pytest.raises(NotFound):
        rec.radio(song_id="NO-SUCH-SONG")


def test_a_users_dislikes_and_hidden_artists_stay_out(rec, songs):
    user = rec.bundle.user_ids[4].decode()
    first = rec.radio(song_id=songs["played"][7], user_id=user, k=10, artist_gap=0)
    rec.record_feedback(user, first.songs[1].song_id, "hide_artist")
    hidden = first.songs[1].artist.casefold()
    again = rec.radio(song_id=songs["played"][7], user_id=user, k=10, artist_gap=0)
    assert again.songs and all(s.artist.casefold() != hidden for s in again.songs)
    other = rec.radio(song_id=songs["played"][7], k=10, artist_gap=0)      # another listener: still there
    assert any(s.artist.casefold() == hidden for s in other.songs)


@pytest.mark.parametrize("token", ["", "r1.", "garbage", "r1.!!!!", "r2." + "A" * 20,
                                   "r1." + base64.urlsafe_b64encode(zlib.compress(b'{"v": 1}')).decode(),
                                   "r1." + base64.urlsafe_b64encode(zlib.compress(b"[1, 2]")).decode(),
                                   "r1." + base64.urlsafe_b64encode(zlib.compress(b"x" * 10**6)).decode()])
def test_a_garbage_token_is_an_invalid_argument(rec, songs, token):
    with pytest.raises(InvalidArgument, match="token"):
        rec.radio(token=token or "r1.@", k=3)


def test_a_tampered_token_is_refused_and_a_mismatched_start_too(rec, songs):
    got = rec.radio(song_id=songs["played"][0], k=3)
    body = json.loads(zlib.decompress(base64.urlsafe_b64decode(got.token[3:] + "==")))
    for key, value in (("gap", -1), ("div", 2.0), ("played", "x"), ("n", True), ("start", {"song": 1})):
        bad = dict(body, **{key: value})
        token = "r1." + base64.urlsafe_b64encode(zlib.compress(json.dumps(bad).encode())).decode()
        with pytest.raises(InvalidArgument, match="token"):
            rec.radio(token=token)
    with pytest.raises(InvalidArgument, match="token"):
        rec.radio(token=got.token[:-6], k=3)
    with pytest.raises(InvalidArgument, match="not the start"):
        rec.radio(song_id=songs["played"][1], token=got.token)
    assert rec.radio(song_id=songs["played"][0], token=got.token, k=3).songs     # the same start is fine
    start = songs["played"][0]
    for bad in ({"song_id": start, "artist": "x"}, {}, {"song_id": start, "k": 0.5}, {"song_id": start, "diversity": 1.5},
                {"song_id": start, "session": [(start, "love")]}, {"song_id": start, "session": "skip"}):
        with pytest.raises((InvalidArgument, TypeError)):
            rec.radio(**bad)


def test_the_token_goes_on_over_a_new_bundle(work, songs):
    with pmrs.Recommender.open(work) as rec:
        first = _run(rec, {"song_id": songs["played"][8]}, 2)
        old = rec.version
    build_bundle(work, IndexerConfig(recall_queries=20), show_progress=False)
    with pmrs.Recommender.open(work) as rec:
        assert rec.version != old
        more = rec.radio(token=first[-1].token, k=6)
    played = [s for r in first for s in r.song_ids] + more.song_ids
    assert len(more.songs) == 6 and len(set(played)) == len(played) == 18


def test_the_radio_ends_when_every_song_is_played(rec, songs):
    start = songs["played"][9]
    n = rec._view().n_songs          # (songs added live by the tests above included)
    got = rec.radio(song_id=start, k=1000, artist_gap=0)
    assert len(got.songs) == n - 1 and start not in got.song_ids      # every other song, once
    rest = rec.radio(token=got.token, k=10)
    assert rest.songs == [] and rest.token                            # then it ends
    assert len(R.decode_token(rest.token).played) == min(n - 1, R.MEMORY)


def test_an_artists_songs_come_from_the_bundles_search_text_as_from_its_catalog(work, monkeypatch):
    from pmrs.serving import contract

    with pmrs.Recommender.open(work) as from_text:
        assert (from_text.bundle.path / contract.SONG_TEXT_FILE).is_file()
        artists = sorted({str(f.get("artist") or "") for _, f in from_text.bundle.catalog_items()} - {""})
        view = from_text._view()
        by_text = {a: from_text._artist_rows(view, a) for a in artists[:8] + [a.upper() for a in artists[:2]]}
    monkeypatch.setattr(contract, "SONG_TEXT_FILE", "no-such-file.txt")   # a bundle built before it
    with pmrs.Recommender.open(work) as from_catalog:
        view = from_catalog._view()
        assert by_text == {a: from_catalog._artist_rows(view, a) for a in by_text}
    assert all(by_text.values())
