"""One song however it is named (pmrs.ingest.resolve), and listens as interactions with time
(pmrs.ingest.aggregate): events written by hand."""

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from pmrs.ingest.aggregate import MIN_PLAY_SECONDS, combine, to_interactions
from pmrs.ingest.listens import LISTEN_SCHEMA
from pmrs.ingest.resolve import CatalogIndex, name_key, new_song_id
from pmrs.ids import id_problem


def ts(text):
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc)


def listen(user, **kw):
    row = {k: None for k in LISTEN_SCHEMA.names}
    row.update(user=user, count=1)
    row.update(kw)
    return row


CATALOG = [("SOLETITBE00000001", {"title": "Let It Be", "artist": "The Beatles", "release": "Let It Be"}),
           ("SOLETITBE00000002", {"title": "Let It Be", "artist": "The Beatles", "release": "Past Masters"}),
           ("SOCRAZY0000000001", {"title": "Crazy in Love", "artist": "Beyoncé", "mbid": "8f3471b5-7e6a-48da-86a9-c1c07a0f47ae"}),
           ("SOONEMORE00000001", {"title": "One More Time", "artist": "Daft Punk",
                                  "spotify_uri": "spotify:track:0DiWol3AO6WpXZgp0goxAV"})]


@pytest.mark.parametrize("a,b", [
    (("The Beatles", "Let It Be - Remastered 2009"), ("the  beatles", "Let It Be (2009 Remaster)")),
    (("Beyoncé feat. Jay-Z", "Crazy In Love (feat. Jay-Z)"), ("BEYONCÉ", "crazy in love")),
    (("Daft Punk", "One More Time (Radio Edit)"), ("Daft Punk", "One More Time")),
    (("Ｂｊöｒｋ", "Jóga"), ("Björk", "JÓGA")),                      # NFKC and case
    (("A", "Don’t Stop"), ("A", "Don't Stop")),                      # quotes unified
])
def test_names_that_mean_one_recording_have_one_key(a, b):
    assert name_key(*a) == name_key(*b) != ""


@pytest.mark.parametrize("a,b", [
    (("Daft Punk", "One More Time"), ("Daft Punk", "One More Time (Romanthony's Unplugged Remix)")),
    (("A", "Song"), ("A", "Song - Live")),
    (("A", "Song"), ("B", "Song")),
])
def test_a_remix_a_live_recording_or_another_artist_is_another_song(a, b):
    assert name_key(*a) != name_key(*b)


def test_each_rule_in_order_and_songs_created_from_names():
    rows = [listen("u1", song_id="SOCRAZY0000000001", artist="x", title="y"),            # id
            listen("u1", recording_mbid="8F3471B5-7E6A-48DA-86A9-C1C07A0F47AE"),          # mbid (case)
            listen("u1", spotify_uri="spotify:track:0DiWol3AO6WpXZgp0goxAV"),            # uri
            listen("u2", artist="Daft Punk", title="One More Time (Radio Edit)"),        # names
            listen("u2", artist="The Beatles", title="Let It Be", album="Past Masters"),  # ambiguous: album
            listen("u2", artist="The Beatles", title="Let It Be"),                       # ambiguous: lowest id
            listen("u3", artist="Nobody Known", title="First Song"),                     # created
            listen("u3", artist="nobody known", title="First Song (Remastered)"),        # ... found again
            listen("u3", artist=None, title=None)]                                       # names no song
    table = pa.Table.from_pylist(rows, schema=LISTEN_SCHEMA)
    inter, res = to_interactions(table, CatalogIndex(CATALOG))
    # the second naming of the new song finds the song the first created: by its names
    assert res.by_rule == {"id": 1, "mbid": 1, "spotify": 1, "names": 4, "created": 1}
    assert res.unresolved == 1
    created = new_song_id(None, "Nobody Known", "First Song")
    assert list(res.created) == [created] and id_problem(created) is None
    assert res.created[created]["artist"] == "Nobody Known"
    # two catalog songs share the names: the one on the event's album, else the lowest id; listed
    assert sorted((c, ch) for _, _, c, ch in res.ambiguous) == [
        (["SOLETITBE00000001", "SOLETITBE00000002"], "SOLETITBE00000001"),
        (["SOLETITBE00000001", "SOLETITBE00000002"], "SOLETITBE00000002")]
    m = dict(zip(zip(*[x.astype(str) for x in (inter.user_ids[inter.matrix.tocoo().row],
                                               inter.song_ids[inter.matrix.tocoo().col])]),
                 inter.matrix.tocoo().data))
    assert m[("u1", "SOCRAZY0000000001")] == 2 and m[("u1", "SOONEMORE00000001")] == 1
    assert m[("u2", "SOLETITBE00000002")] == 1 and m[("u2", "SOLETITBE00000001")] == 1
    assert m[("u3", created)] == 2


def test_short_or_skipped_listens_are_skips_and_time_is_kept():
    s = "SOCRAZY0000000001"
    rows = [listen("u", song_id=s, ts=ts("2020-01-01T10:00:00"), ms_played=200_000),
            listen("u", song_id=s, ts=ts("2021-06-01T10:00:00"), ms_played=int(MIN_PLAY_SECONDS * 1000) - 1),
            listen("u", song_id=s, ts=ts("2022-01-01T10:00:00"), ms_played=100_000, skipped=True),
            listen("u", song_id=s, ts=ts("2021-01-01T10:00:00"), ms_played=180_000, skipped=False),
            listen("v", song_id=s, ts=ts("2021-01-01T00:00:00"), ms_played=1_000),        # only a skip
            listen("w", song_id=s, count=7)]                                             # a count, no time
    inter, _ = to_interactions(pa.Table.from_pylist(rows, schema=LISTEN_SCHEMA), CatalogIndex(CATALOG))
    users = inter.user_ids.astype(str).tolist()
    assert users == ["u", "v", "w"]
    assert inter.matrix.toarray()[:, 0].tolist() == [2, 0, 7]      # v's only listen was a skip
    assert inter.skips.toarray()[:, 0].tolist() == [2, 1, 0]
    assert inter.time["first_played"].tolist() == [int(ts("2020-01-01T10:00:00").timestamp()), 0]
    assert inter.time["last_played"].tolist() == [int(ts("2021-01-01T10:00:00").timestamp()), 0]
    assert inter.time["played_ms"].tolist() == [380_000, -1]


def test_combined_inputs_add_counts_and_keep_the_earliest_and_latest_times():
    s = "SOCRAZY0000000001"
    a, _ = to_interactions(pa.Table.from_pylist([listen("u", song_id=s, ts=ts("2020-01-01"), ms_played=60_000)],
                                                schema=LISTEN_SCHEMA), CatalogIndex(CATALOG))
    b, _ = to_interactions(pa.Table.from_pylist([listen("u", song_id=s, ts=ts("2022-01-01"), ms_played=60_000),
                                                 listen("x", song_id="SOONEMORE00000001", count=3)],
                                                schema=LISTEN_SCHEMA), CatalogIndex(CATALOG))
    c = combine([a, b])
    assert c.user_ids.astype(str).tolist() == ["u", "x"] and c.matrix.toarray().tolist() == [[2, 0], [0, 3]]
    assert c.time["first_played"][0] == int(ts("2020-01-01").timestamp())
    assert c.time["last_played"][0] == int(ts("2022-01-01").timestamp()) and c.time["played_ms"][0] == 120_000
