"""Spotify's streaming histories: every export year's key set, podcasts, audiobooks, videos, the
basic export, overlap between the two, broken and mostly-garbage files, Latin-1, and personal
fields never kept. Every fixture is written here by hand from Spotify's published field list."""

import json
import zipfile
from datetime import datetime, timezone

import pytest

from pmrs.errors import IngestError
from pmrs.ingest import spotify as S
from pmrs.ingest.exportfiles import READ_AS_CP1252
from pmrs.ingest.listens import (BAD_TIME, BROKEN_FILE, DUPLICATE, MALFORMED, NO_SONG, NOT_A_SONG, PLACEHOLDER,
                                 ZERO_LENGTH)

URI_A = "spotify:track:" + "A" * 22
URI_B = "spotify:track:" + "B" * 22
URI_C = "spotify:track:" + "C" * 22

# Personal fields: none of these strings may appear anywhere in what a reader gives back.
IP = "203.0.113.77"
IP6 = "2001:db8::4242"
AGENT = "Mozilla/5.0 (PmrsTestAgent 9.9)"
LOGIN = "login_name_qx7"
PLATFORM = "Android OS 9 (PmrsTestPhone)"
COUNTRY = "QZ"
PERSONAL = (IP, IP6, AGENT, LOGIN, PLATFORM)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def play_2023(ts, ms, track=None, artist=None, album=None, uri=None, skipped=False, **extra):
    """A row as the 2023-and-later extended history writes it (audiobooks, ``ip_addr``)."""
    row = {"ts": ts, "platform": PLATFORM, "ms_played": ms, "conn_country": COUNTRY, "ip_addr": IP,
           "master_metadata_track_name": track, "master_metadata_album_artist_name": artist,
           "master_metadata_album_album_name": album, "spotify_track_uri": uri, "episode_name": None,
           "episode_show_name": None, "spotify_episode_uri": None, "audiobook_title": None, "audiobook_uri": None,
           "audiobook_chapter_uri": None, "audiobook_chapter_title": None, "reason_start": "trackdone",
           "reason_end": "trackdone", "shuffle": False, "skipped": skipped, "offline": False,
           "offline_timestamp": None, "incognito_mode": False}
    row.update(extra)
    return row


def play_2019(ts, ms, track, artist, album, uri, skipped=None):
    """A row as the earlier extended history (``endsong_*.json``) writes it: decrypted IP and user
    agent, the user name, no audiobooks, ``skipped`` null, ``offline_timestamp`` in ms."""
    return {"conn_country": COUNTRY, "episode_name": None, "episode_show_name": None, "incognito_mode": False,
            "ip_addr_decrypted": IP6, "master_metadata_album_album_name": album,
            "master_metadata_album_artist_name": artist, "master_metadata_track_name": track, "ms_played": ms,
            "offline": False, "offline_timestamp": 1572964071330, "platform": PLATFORM, "reason_end": "endplay",
            "reason_start": "clickrow", "shuffle": True, "skipped": skipped, "spotify_episode_uri": None,
            "spotify_track_uri": uri, "ts": ts, "user_agent_decrypted": AGENT, "username": LOGIN}


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else json.dumps(data, indent=1).encode())
    return path


def everything(listens) -> str:
    return repr(listens.table.to_pylist()) + repr(listens.table) + repr(listens.dropped.as_dict()) + repr(listens.files)


def test_extended_2023_keys_songs_skips_episodes_audiobooks_and_no_song(tmp_path):
    rows = [
        play_2023("2023-03-01T10:00:00Z", 200000, "Song A", "Artist A", "Album A", URI_A, skipped=False),
        play_2023("2023-03-01T10:01:00Z", 5000, "Song B", "Artist B", "Album B", URI_B, skipped=True),
        play_2023("2023-03-01T10:02:00Z", 60000, episode_name="Ep 1", episode_show_name="Show",
                  spotify_episode_uri="spotify:episode:" + "E" * 22),
        play_2023("2023-03-01T10:03:00Z", 60000, audiobook_title="Book", audiobook_uri="spotify:show:x",
                  audiobook_chapter_title="Chapter 1", audiobook_chapter_uri="spotify:episode:y"),
        play_2023("2023-03-01T10:04:00Z", 0, "Song C", "Artist C", "Album C", URI_C),
        play_2023("2023-03-01T10:05:00Z", 1000),
        play_2023("2023-03-01T10:06:00Z", 90000, "Local Song", "Local Artist", None, None, skipped=None),
    ]
    write(tmp_path / "alice" / "Streaming_History_Audio_2023_0.json", rows)
    out = S.read_spotify(tmp_path / "alice", "alice")
    t = out.table.to_pylist()
    assert [r["title"] for r in t] == ["Song A", "Song B", "Local Song"]
    assert t[0] == {"user": "alice", "song_id": None, "recording_mbid": None, "spotify_uri": URI_A,
                    "artist": "Artist A", "title": "Song A", "album": "Album A", "ts": utc(2023, 3, 1, 10, 0),
                    "count": 1, "ms_played": 200000, "skipped": False}
    assert (t[1]["skipped"], t[1]["ms_played"]) == (True, 5000)
    assert (t[2]["spotify_uri"], t[2]["artist"], t[2]["skipped"]) == (None, "Local Artist", None)
    assert out.dropped.counts == {NOT_A_SONG: 2, ZERO_LENGTH: 1, NO_SONG: 1}
    assert [e[1] for e in out.dropped.examples[NOT_A_SONG]] == [3, 4]


def test_extended_earlier_years_without_skipped_or_audiobooks(tmp_path):
    old = [play_2019("2019-11-05T14:28:00Z", 8778, "Andromeda", "Band", "Record", URI_A),
           play_2019("2019-11-05T14:31:30Z", 180000, "Other", "Band", "Record", URI_B, skipped=True)]
    oldest = [{k: v for k, v in play_2019("2015-06-01T08:00:00Z", 120000, "First", "Band", "Record", URI_C).items()
               if k != "skipped"}]
    write(tmp_path / "endsong_0.json", old)
    write(tmp_path / "endsong_1.json", oldest)
    out = S.read_spotify(tmp_path, "bob")
    t = out.table.to_pylist()
    assert [(r["title"], r["ts"], r["skipped"], r["ms_played"]) for r in t] == [
        ("Andromeda", utc(2019, 11, 5, 14, 28), None, 8778),
        ("Other", utc(2019, 11, 5, 14, 31, 30), True, 180000),
        ("First", utc(2015, 6, 1, 8, 0), None, 120000)]
    assert out.dropped.total == 0
    assert out.format == "spotify"


def test_video_file_only_rows_with_a_track_uri_are_songs(tmp_path):
    rows = [play_2023("2023-05-01T20:00:00Z", 200000, "Clip Song", "Artist", "Album", URI_A),
            play_2023("2023-05-01T20:10:00Z", 300000, episode_name="Video ep", episode_show_name="Vodcast",
                      spotify_episode_uri="spotify:episode:" + "V" * 22),
            play_2023("2023-05-01T20:20:00Z", 300000, "Named but no uri", "Artist", None, None)]
    write(tmp_path / "Streaming_History_Video_2023.json", rows)
    out = S.read_spotify(tmp_path, "v")
    assert out.table["spotify_uri"].to_pylist() == [URI_A]
    assert out.dropped.counts == {NOT_A_SONG: 2}


def test_basic_history_times_are_utc_minutes_and_podcast_files_are_not_songs(tmp_path):
    write(tmp_path / "StreamingHistory0.json", [
        {"endTime": "2019-01-01 12:34", "artistName": "Artist A", "trackName": "Song A", "msPlayed": 215000},
        {"endTime": "2019-01-01 12:40", "artistName": "Unknown Artist", "trackName": "Unknown Track",
         "msPlayed": 1000},
        {"endTime": "2019-01-01 12:41", "artistName": "Artist B", "trackName": "Song B", "msPlayed": 0}])
    write(tmp_path / "StreamingHistory_music_1.json", [
        {"endTime": "2024-02-29 23:59", "artistName": "Artist C", "trackName": "Song C", "msPlayed": 1234}])
    write(tmp_path / "StreamingHistory_podcast_0.json", [
        {"endTime": "2024-03-01 07:00", "podcastName": "Show", "episodeName": "Ep", "msPlayed": 1800000},
        {"endTime": "2024-03-01 08:00", "artistName": "Show", "trackName": "Ep 2", "msPlayed": 1800000}])
    out = S.read_spotify(tmp_path, "carol")
    t = out.table.to_pylist()
    assert [(r["artist"], r["title"], r["ts"], r["ms_played"], r["skipped"]) for r in t] == [
        ("Artist A", "Song A", utc(2019, 1, 1, 12, 34), 215000, None),
        ("Artist C", "Song C", utc(2024, 2, 29, 23, 59), 1234, None)]
    assert int(t[0]["ts"].timestamp()) == 1546346040
    assert out.dropped.counts == {PLACEHOLDER: 1, ZERO_LENGTH: 1, NOT_A_SONG: 2}


def test_basic_rows_the_extended_history_already_has_are_duplicates(tmp_path):
    write(tmp_path / "Spotify Extended Streaming History" / "Streaming_History_Audio_2019.json",
          [play_2023("2019-01-01T12:34:56Z", 215000, "Song A", "Artist A", "Album A", URI_A)])
    write(tmp_path / "Spotify Account Data" / "StreamingHistory0.json", [
        {"endTime": "2019-01-01 12:34", "artistName": "Artist A", "trackName": "Song A", "msPlayed": 215000},
        {"endTime": "2019-01-02 09:00", "artistName": "Artist A", "trackName": "Song A", "msPlayed": 215000}])
    out = S.read_spotify(tmp_path, "dan")
    assert out.table["ts"].to_pylist() == [utc(2019, 1, 1, 12, 34, 56), utc(2019, 1, 2, 9, 0)]
    assert out.table["spotify_uri"].to_pylist() == [URI_A, None]
    assert out.dropped.counts == {DUPLICATE: 1}


def test_extended_history_inside_its_zip_and_two_copies_of_it(tmp_path):
    rows = [play_2023("2020-04-11T00:27:53Z", 174674, "Song A", "Artist A", "Album A", URI_A)]
    with zipfile.ZipFile(tmp_path / "my_spotify_data.zip", "w") as zf:
        zf.writestr("Spotify Extended Streaming History/Streaming_History_Audio_2020.json", json.dumps(rows))
        zf.writestr("Spotify Extended Streaming History/ReadMeFirst_ExtendedStreamingHistory.pdf", b"%PDF-1.4")
    write(tmp_path / "again" / "Streaming_History_Audio_2020.json", rows)
    out = S.read_spotify(tmp_path, "erin")
    assert out.table["title"].to_pylist() == ["Song A"]
    assert out.dropped.counts == {DUPLICATE: 1}
    assert any("my_spotify_data.zip!Spotify Extended Streaming History/" in f for f in out.files)


def test_a_broken_file_is_counted_and_the_others_still_read(tmp_path):
    write(tmp_path / "Streaming_History_Audio_2021_0.json", [
        play_2023("2021-01-01T00:00:00Z", 1000, "Song A", "Artist A", None, URI_A)])
    write(tmp_path / "Streaming_History_Audio_2021_1.json", b'[{"ts": "2021-02-01T00:00:00Z", "ms_pla')
    out = S.read_spotify(tmp_path, "fay")
    assert out.table.num_rows == 1
    assert out.dropped.counts == {BROKEN_FILE: 1}
    assert out.dropped.examples[BROKEN_FILE][0][0].endswith("Streaming_History_Audio_2021_1.json")


def test_a_mostly_malformed_file_raises_naming_it(tmp_path):
    path = write(tmp_path / "Streaming_History_Audio_2022.json", [
        play_2023("2022-01-01T00:00:00Z", 1000, "Song A", "Artist A", None, URI_A),
        play_2023("yesterday", 1000, "Song B", "Artist B", None, URI_B),
        play_2023("2022-01-01T00:05:00Z", "lots", "Song C", "Artist C", None, URI_C),
        "not a play"])
    with pytest.raises(IngestError, match="Streaming_History_Audio_2022.json: 3 of 4 rows are malformed"):
        S.read_spotify(path, "gus")


def test_some_malformed_rows_are_counted_and_never_quote_the_row(tmp_path):
    write(tmp_path / "Streaming_History_Audio_2022.json", [
        play_2023("2022-01-01T00:00:00Z", 1000, "Song A", "Artist A", None, URI_A),
        play_2023("2022-01-01T00:01:00Z", 1000, "Song B", "Artist B", None, URI_B),
        play_2023("not a time", 1000, "Song C", "Artist C", None, URI_C, ip_addr_decrypted=IP6,
                  user_agent_decrypted=AGENT, username=LOGIN)])
    out = S.read_spotify(tmp_path, "hal")
    assert out.dropped.counts == {MALFORMED: 1}
    assert "ts is not an ISO 8601 time" in out.dropped.examples[MALFORMED][0][2]
    text = everything(out)
    for secret in PERSONAL:
        assert secret not in text


def test_personal_fields_never_appear_in_table_report_or_files(tmp_path):
    write(tmp_path / "Streaming_History_Audio_2023.json",
          [play_2023("2023-01-01T00:00:00Z", 1000, "Song A", "Artist A", None, URI_A, user_agent_decrypted=AGENT,
                     username=LOGIN, ip_addr_decrypted=IP6),
           play_2023("2023-01-01T00:00:00Z", 0, "Song B", "Artist B", None, URI_B)])
    write(tmp_path / "endsong_0.json", [play_2019("2019-11-05T14:28:00Z", 8778, "Song C", "Band", "R", URI_C)])
    out = S.read_spotify(tmp_path, "ivy")
    assert out.table.num_rows == 2
    text = everything(out)
    for secret in (*PERSONAL, f"'{COUNTRY}'"):
        assert secret not in text
    assert set(out.table.column_names) == {"user", "song_id", "recording_mbid", "spotify_uri", "artist", "title",
                                           "album", "ts", "count", "ms_played", "skipped"}


def test_times_outside_the_sane_range_are_dropped(tmp_path):
    write(tmp_path / "Streaming_History_Audio_x.json", [
        play_2023("1999-01-01T00:00:00Z", 1000, "Old", "Artist", None, URI_A),
        play_2023("2100-01-01T00:00:00Z", 1000, "Future", "Artist", None, URI_B),
        play_2023("2023-01-01T00:00:00+02:00", 1000, "Now", "Artist", None, URI_C)])
    out = S.read_spotify(tmp_path, "jo")
    assert out.table["ts"].to_pylist() == [utc(2022, 12, 31, 22, 0)]
    assert out.dropped.counts == {BAD_TIME: 2}
    assert out.dropped.examples[BAD_TIME][0][2] == "1999-01-01T00:00:00Z"


def test_latin1_file_is_read_as_windows_1252_and_counted(tmp_path):
    text = '[{"endTime": "2019-01-01 12:34", "artistName": "Beyonc\u00e9", "trackName": "D\u00e9j\u00e0 Vu", ' \
           '"msPlayed": 240000}]'
    write(tmp_path / "StreamingHistory0.json", text.encode("latin-1"))
    write(tmp_path / "StreamingHistory1.json", b"\xef\xbb\xbf" + text.replace("12:34", "13:34").encode("utf-8"))
    out = S.read_spotify(tmp_path, "kim")
    assert out.table["artist"].to_pylist() == ["Beyonc\u00e9", "Beyonc\u00e9"]
    assert out.table["title"].to_pylist() == ["D\u00e9j\u00e0 Vu", "D\u00e9j\u00e0 Vu"]
    assert out.dropped.counts == {READ_AS_CP1252: 1}
    assert out.dropped.examples[READ_AS_CP1252][0][0].endswith("StreamingHistory0.json")


def test_a_renamed_file_is_known_by_its_keys_and_other_account_files_are_not_read(tmp_path):
    write(tmp_path / "my plays.json", [play_2023("2023-01-01T00:00:00Z", 1000, "Song A", "Artist A", None, URI_A)])
    write(tmp_path / "Userdata.json", {"username": LOGIN, "email": "x@example.org", "country": COUNTRY})
    write(tmp_path / "SearchQueries.json", [{"platform": PLATFORM, "searchTime": "2023-01-01T00:00:00Z"}])
    out = S.read_spotify(tmp_path, "lee")
    assert out.table["title"].to_pylist() == ["Song A"]
    assert [f.rsplit("/", 1)[-1] for f in out.files] == ["my plays.json"]
    assert S.sniff_name("StreamingHistory_podcast_0.json") == S.BASIC
    assert S.sniff_name("Streaming_History_Audio_2014-2016_0.json") == S.EXTENDED
    assert S.sniff_name("Userdata.json") is None


def test_read_basic_and_extended_alone(tmp_path):
    write(tmp_path / "Streaming_History_Audio_2019.json",
          [play_2023("2019-01-01T12:34:56Z", 215000, "Song A", "Artist A", "Album A", URI_A)])
    write(tmp_path / "StreamingHistory0.json",
          [{"endTime": "2019-01-03 12:34", "artistName": "Artist B", "trackName": "Song B", "msPlayed": 5}])
    assert S.read_extended_history(tmp_path, "m").table["title"].to_pylist() == ["Song A"]
    assert S.read_streaming_history(tmp_path, "m").table["title"].to_pylist() == ["Song B"]
