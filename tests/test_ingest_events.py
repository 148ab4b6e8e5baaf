"""A service's table of listening events (pmrs.ingest.events): every file here is written by the
test, by hand."""

from __future__ import annotations

import gzip
import json
import tomllib
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pmrs import IngestError
from pmrs.config import build
from pmrs.ingest.events import UNREADABLE_TIME, EventsConfig, read_events
from pmrs.ingest.listens import (BAD_COUNT, BAD_TIME, LISTEN_SCHEMA, MALFORMED, NO_SONG, NO_USER,
                                 PLACEHOLDER, ZERO_LENGTH)
from pmrs.ingest.triplets import IngestConfig

NOW = 1_800_000_000  # 2027-01-15: "now" for the sane-time check
T1 = 1_600_000_000   # 2020-09-13T12:26:40Z
MBID = "5b11f4ce-a62d-471e-81fc-a69a8278c7da"
URI = "spotify:track:4uLU6hMCjMI75M1A2tKUQC"


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def rows(listens, *cols):
    return [tuple(r[c] for c in cols) for r in listens.table.to_pylist()]


def write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_with_header_reads_every_column(tmp_path):
    p = write(tmp_path / "events.csv",
              "User_ID,Track_ID,Artist_Name,Track_Name,Album,Timestamp,ms_played,skipped,MBID,spotify_uri,device\n"
              f"u1,TRA,Björk,Jóga,Homogenic,{T1},215000,false,{MBID.upper()},{URI},phone\n"
              f"u2,,Air,La femme d'argent,,{T1 + 60},1000,1,,https://open.spotify.com/track/{URI[14:]}?si=x,web\n")
    ev = read_events(p, now_s=NOW)
    assert ev.table.schema.equals(LISTEN_SCHEMA)
    assert ev.format == "csv" and ev.rows == 2 and ev.rows_read == 2 and ev.dropped.total == 0
    first, second = ev.table.to_pylist()
    assert first == {"user": "u1", "song_id": "TRA", "recording_mbid": MBID, "spotify_uri": URI,
                     "artist": "Björk", "title": "Jóga", "album": "Homogenic", "ts": utc(2020, 9, 13, 12, 26, 40),
                     "count": 1, "ms_played": 215000, "skipped": False}
    assert second["song_id"] is None and second["album"] is None and second["skipped"] is True
    assert second["spotify_uri"] == URI  # the URL became the URI
    assert ev.ignored_columns == {str(p): ["device"]}
    assert ev.columns[str(p)]["user"] == "User_ID" and ev.columns[str(p)]["title"] == "Track_Name"


def test_headerless_tsv_names_its_columns_from_the_config_and_reads_milliseconds(tmp_path):
    p = write(tmp_path / "plays.tsv", f"u1\tS1\t{T1 * 1000}\nu2\tS2\t{T1 * 1000 + 1500}\n")
    with pytest.raises(IngestError, match="columns = "):
        read_events(p, now_s=NOW)
    ev = read_events(p, EventsConfig(columns=("user", "song", "listened_at")), now_s=NOW)
    assert rows(ev, "user", "song_id", "ts") == [("u1", "S1", utc(2020, 9, 13, 12, 26, 40)),
                                                 ("u2", "S2", utc(2020, 9, 13, 12, 26, 41))]


def test_semicolons_gzip_and_iso_times_with_and_without_a_zone(tmp_path):
    text = ("listener;song;played_at\n"
            "a;S1;2021-03-04T12:00:00Z\n"
            "a;S2;2021-03-04T12:00:00+01:00\n"
            "b;S3;2021-07-01 12:00:00\n"          # no zone: Berlin summer time, UTC+2
            "b;S4;2021-01-01T12:00:00.750\n"      # no zone: Berlin winter time, UTC+1
            "c;S5;2021-03-04\n"                   # a date: midnight in Berlin
            "c;S6;2021-03-04 12:00:00 UTC\n")
    p = tmp_path / "events.csv.gz"
    p.write_bytes(gzip.compress(text.encode()))
    ev = read_events(p, EventsConfig(timezone="Europe/Berlin"), now_s=NOW)
    assert rows(ev, "song_id", "ts") == [
        ("S1", utc(2021, 3, 4, 12)), ("S2", utc(2021, 3, 4, 11)), ("S3", utc(2021, 7, 1, 10)),
        ("S4", utc(2021, 1, 1, 11)), ("S5", utc(2021, 3, 3, 23)), ("S6", utc(2021, 3, 4, 12))]
    assert ev.dropped.total == 0


def test_all_zoned_and_all_naive_iso_columns_take_the_fast_path(tmp_path):
    zoned = write(tmp_path / "z.csv", "user,song,ts\nu,S1,2021-03-04T12:00:00Z\nu,S2,2021-03-04T13:00:00+01:00\n")
    naive = write(tmp_path / "n.csv", "user,song,ts\nu,S1,2021-03-04T12:00:00\nu,S2,2021-03-04 13:00\n")
    assert rows(read_events(zoned, now_s=NOW), "ts") == [(utc(2021, 3, 4, 12),), (utc(2021, 3, 4, 12),)]
    assert rows(read_events(naive, EventsConfig(timezone="America/New_York"), now_s=NOW), "ts") == [
        (utc(2021, 3, 4, 17),), (utc(2021, 3, 4, 18),)]


def test_time_unit_setting_overrides_the_magnitude_rule(tmp_path):
    p = write(tmp_path / "e.csv", f"user,song,ts\nu,S1,{T1}\n")
    assert rows(read_events(p, EventsConfig(time_unit="s"), now_s=NOW), "ts") == [(utc(2020, 9, 13, 12, 26, 40),)]
    ev = read_events(p, EventsConfig(time_unit="ms", max_bad_fraction=1.0), now_s=NOW)  # 1970: not a sane time
    assert ev.rows == 0 and ev.dropped.counts == {BAD_TIME: 1}
    ev = read_events(p, EventsConfig(time_unit="iso", max_bad_fraction=1.0), now_s=NOW)
    assert ev.dropped.counts == {UNREADABLE_TIME: 1}


def test_a_count_table_has_no_time(tmp_path):
    p = write(tmp_path / "counts.csv", "user_id,song_id,play_count\nu1,S1,3\nu1,S2,1\nu2,S1,12\n")
    ev = read_events(p, now_s=NOW)
    assert rows(ev, "user", "song_id", "count", "ts") == [("u1", "S1", 3, None), ("u1", "S2", 1, None),
                                                          ("u2", "S1", 12, None)]


def test_parquet_with_native_types(tmp_path):
    p = tmp_path / "events.parquet"
    pq.write_table(pa.table({
        "userId": pa.array([101, 102, 103], pa.int64()),
        "item_id": pa.array(["S1", "S2", "S3"]).dictionary_encode(),
        "played_at": pa.array([T1, T1 + 1, T1 + 2], pa.timestamp("s")),  # naive: in the zone set
        "seconds_played": pa.array([30.4, 0.5, None]),
        "skip": pa.array([True, None, False]),
        "plays": pa.array([1, 2, 3], pa.int32()),
    }), p)
    ev = read_events(p, EventsConfig(timezone="Europe/Berlin"), now_s=NOW)
    assert ev.format == "parquet"
    assert rows(ev, "user", "song_id", "ts", "ms_played", "skipped", "count") == [
        ("101", "S1", utc(2020, 9, 13, 10, 26, 40), 30400, True, 1),
        ("102", "S2", utc(2020, 9, 13, 10, 26, 41), 500, None, 2),
        ("103", "S3", utc(2020, 9, 13, 10, 26, 42), None, False, 3)]


def test_parquet_epoch_milliseconds_and_zoned_timestamps(tmp_path):
    p = tmp_path / "e.parquet"
    pq.write_table(pa.table({"user": ["u", "u"], "song": ["S1", "S2"],
                             "ts": pa.array([T1 * 1000, T1], pa.int64())}), p)
    assert rows(read_events(p, now_s=NOW), "ts") == [(utc(2020, 9, 13, 12, 26, 40),)] * 2
    q = tmp_path / "z.parquet"
    pq.write_table(pa.table({"user": ["u"], "song": ["S1"],
                             "ts": pa.array([T1 * 1000], pa.timestamp("ms", tz="Asia/Tokyo"))}), q)
    assert rows(read_events(q, EventsConfig(timezone="Europe/Berlin"), now_s=NOW), "ts") == [
        (utc(2020, 9, 13, 12, 26, 40),)]


def test_json_lines_nested_fields_are_flattened(tmp_path):
    recs = [{"user_name": "alice", "listened_at": T1, "track_metadata": {"artist_name": "Air",
             "track_name": "Playground Love", "release_name": "The Virgin Suicides",
             "additional_info": {"recording_mbid": MBID}}},
            {"user_name": "bob", "listened_at": T1 + 5, "track_metadata": {"artist_name": "Sigur Rós",
             "track_name": "Hoppípolla"}}]
    p = write(tmp_path / "listens.jsonl", "".join(json.dumps(r) + "\n" for r in recs))
    cfg = EventsConfig(artist=("track_metadata.artist_name",), title=("track_metadata.track_name",),
                       album=("track_metadata.release_name",),
                       recording_mbid=("track_metadata.additional_info.recording_mbid",))
    ev = read_events(p, cfg, now_s=NOW)
    assert ev.format == "jsonl"
    assert rows(ev, "user", "artist", "title", "album", "recording_mbid", "ts") == [
        ("alice", "Air", "Playground Love", "The Virgin Suicides", MBID, utc(2020, 9, 13, 12, 26, 40)),
        ("bob", "Sigur Rós", "Hoppípolla", None, None, utc(2020, 9, 13, 12, 26, 45))]


def test_json_lines_with_a_broken_line_and_a_type_that_changes(tmp_path):
    lines = [json.dumps({"user": "u1", "song": "S1", "ts": T1}),
             "{not json",
             json.dumps({"user": "u2", "song": "S2", "ts": "2021-03-04T12:00:00Z"}),
             "",
             json.dumps({"user": 7, "song": "S3", "ts": T1, "count": 2})]
    p = write(tmp_path / "e.jsonl", "\n".join(lines) + "\n")
    ev = read_events(p, now_s=NOW)
    assert rows(ev, "user", "song_id", "ts", "count") == [
        ("u1", "S1", utc(2020, 9, 13, 12, 26, 40), 1), ("u2", "S2", utc(2021, 3, 4, 12), 1),
        ("7", "S3", utc(2020, 9, 13, 12, 26, 40), 2)]
    assert ev.dropped.counts == {MALFORMED: 1}
    assert ev.dropped.examples[MALFORMED][0][1] == 2  # its line number
    assert ev.rows_read == 4


def test_bad_rows_are_counted_by_reason_with_their_rows(tmp_path):
    lines = [
        "user,song_id,artist,title,ts,count,ms_played,comment",
        f"u1,S1,,,{T1},1,1000,ok",                       # 2 good
        f",S2,,,{T1},1,1000,",                           # 3 no user
        f"u3,,,,{T1},1,1000,",                           # 4 no song
        f"u4,,Air,,{T1},1,1000,",                        # 5 no song (artist without title)
        f"u5,S5,,,{T1},0,1000,",                         # 6 count 0
        f"u6,S6,,,{T1},x,1000,",                         # 7 count not a number
        f"u7,S7,,,{T1},2.5,1000,",                       # 8 count not whole
        "u8,S8,,,631152000,1,1000,",                     # 9 1990: before the sane range
        f"u9,S9,,,{NOW + 10 * 86400},1,1000,",           # 10 in the future
        "u10,S10,,,yesterday,1,1000,",                   # 11 time not understood
        f"u11,,Unknown Artist,Song,{T1},1,1000,",        # 12 placeholder artist
        f"u12,,Someone,  untitled ,{T1},1,1000,",        # 13 placeholder title
        f"u13,S13,,,{T1},1,0,",                          # 14 zero-length play
        f"u14,S14,Unknown Artist,Song,{T1},3.0,,",       # 15 good: an id makes the names moot; 3.0 is 3
        f"{'x' * 300},S15,,,{T1},1,1000,",               # 16 user id too long
        f"u16,S16,,,{T1},1,1000,too,many",               # 17 malformed: a field too many
        "u17,,Air,Alone in Kyoto,2021-02-30T00:00:00Z,1,1000,",  # 18 no such day
        "u18,,Air,Alone in Kyoto,,1,-5,",               # 19 good: no time; a negative length is null
    ]
    p = write(tmp_path / "messy.csv", "\n".join(lines) + "\n")
    ev = read_events(p, EventsConfig(max_bad_fraction=0.9), now_s=NOW)
    assert rows(ev, "user", "count", "ms_played") == [("u1", 1, 1000), ("u14", 3, None), ("u18", 1, None)]
    assert ev.dropped.counts == {NO_USER: 1, NO_SONG: 2, BAD_COUNT: 3, BAD_TIME: 2, UNREADABLE_TIME: 2,
                                 PLACEHOLDER: 2, ZERO_LENGTH: 1, "id too long": 1, MALFORMED: 1}
    row_of = {r: sorted(row for _, row, _ in ex) for r, ex in ev.dropped.examples.items()}
    assert row_of == {NO_USER: [3], NO_SONG: [4, 5], BAD_COUNT: [6, 7, 8], BAD_TIME: [9, 10],
                      UNREADABLE_TIME: [11, 18], PLACEHOLDER: [12, 13], ZERO_LENGTH: [14],
                      "id too long": [16], MALFORMED: [17]}
    assert all(f == str(p) for ex in ev.dropped.examples.values() for f, _, _ in ex)
    assert "yesterday" in ev.dropped.examples[UNREADABLE_TIME][0][2]
    assert ev.rows_read == 18 and ev.nulled == {"ms_played": 1}
    assert ev.ignored_columns == {str(p): ["comment"]}
    assert ev.report()["dropped"]["total"] == 15


def test_a_file_mostly_garbage_is_refused_naming_it(tmp_path):
    lines = ["user,song,ts"] + [f"u{i},S{i},not a time" for i in range(6)] + [f"u,S,{T1}"] * 4
    p = write(tmp_path / "garbage.csv", "\n".join(lines) + "\n")
    with pytest.raises(IngestError, match=r"garbage\.csv.*6 of 10 rows"):
        read_events(p, now_s=NOW)
    assert read_events(p, EventsConfig(max_bad_fraction=0.7), now_s=NOW).rows == 4


def test_placeholder_names_alone_do_not_make_a_file_garbage(tmp_path):
    lines = ["user,artist,title"] + ["u,Unknown Artist,Intro"] * 8 + ["u,Air,Alone in Kyoto"]
    ev = read_events(write(tmp_path / "e.csv", "\n".join(lines) + "\n"), now_s=NOW)
    assert ev.rows == 1 and ev.dropped.counts == {PLACEHOLDER: 8}


def test_files_that_name_no_user_or_no_song_are_refused(tmp_path):
    with pytest.raises(IngestError, match=r"no column names the user.*user = "):
        read_events(write(tmp_path / "a.csv", "song,ts\nS1,1\n"), now_s=NOW)
    with pytest.raises(IngestError, match=r"no column names the song"):
        read_events(write(tmp_path / "b.csv", "user,artist,ts\nu,Air,1\n"), now_s=NOW)
    with pytest.raises(IngestError, match="empty"):
        read_events(write(tmp_path / "c.csv", ""), now_s=NOW)


def test_invalid_utf8_lines_are_dropped_and_the_rest_read(tmp_path):
    data = f"user,song,ts\nu1,S1,{T1}\nu2,S\xe92,{T1}\nu3,S3,{T1}\n".encode("latin-1")
    p = tmp_path / "e.csv"
    p.write_bytes(data)
    ev = read_events(p, now_s=NOW)
    assert rows(ev, "user") == [("u1",), ("u3",)]
    assert ev.dropped.counts == {"not valid UTF-8": 1}
    assert ev.dropped.examples["not valid UTF-8"][0][1] == 3


def test_a_folder_of_files_is_read_and_concatenated(tmp_path):
    folder = tmp_path / "events"
    folder.mkdir()
    (folder / "a.csv.gz").write_bytes(gzip.compress(f"user,song,ts\nu1,S1,{T1}\n".encode()))
    pq.write_table(pa.table({"user": ["u2"], "song": ["S2"], "ts": [T1]}), folder / "b.parquet")
    write(folder / "c.jsonl", json.dumps({"user": "u3", "song": "S3", "ts": T1}) + "\n")
    write(folder / "notes.md", "not an event file")
    (folder / ".hidden.csv").write_text("garbage")
    ev = read_events(folder, now_s=NOW)
    assert rows(ev, "user", "song_id") == [("u1", "S1"), ("u2", "S2"), ("u3", "S3")]
    assert ev.format == "mixed" and [p.rsplit("/", 1)[1] for p in ev.files] == ["a.csv.gz", "b.parquet", "c.jsonl"]
    assert ev.table.schema.equals(LISTEN_SCHEMA)
    (tmp_path / "empty").mkdir()
    with pytest.raises(IngestError, match="no event files"):
        read_events(tmp_path / "empty", now_s=NOW)


def test_quoted_fields_and_a_file_without_a_known_extension(tmp_path):
    p = write(tmp_path / "export", 'user|artist|title|ts\n"u 1"|"Crosby, Stills & Nash"|"Suite: Judy Blue Eyes"|'
              f'{T1}\n')
    ev = read_events(p, now_s=NOW)
    assert rows(ev, "user", "artist", "title") == [("u 1", "Crosby, Stills & Nash", "Suite: Judy Blue Eyes")]


def test_settings_come_from_the_ingest_events_table(tmp_path):
    toml = tomllib.loads('[ingest]\nmin_songs_per_user = 2\n\n[ingest.events]\nuser = "uid"\n'
                         'timezone = "Europe/Paris"\nheader = false\ndelimiter = "tab"\n'
                         'columns = ["uid", "song", "ts"]\n')
    cfg = build(EventsConfig, "ingest.events", toml)
    assert cfg.user == ("uid",) and cfg.header == "no" and cfg.delimiter == "\t"
    assert build(IngestConfig, "ingest", toml).min_songs_per_user == 2  # the sub-table is not a typo
    p = write(tmp_path / "e.txt", "x\tS1\t2021-03-04T12:00:00\n")
    assert rows(read_events(p, cfg, now_s=NOW), "user", "ts") == [("x", utc(2021, 3, 4, 11))]
    with pytest.raises(ValueError, match="unknown setting"):
        build(EventsConfig, "ingest.events", {"ingest": {"events": {"usr": "x"}}})
    with pytest.raises(ValueError, match="IANA"):
        EventsConfig(timezone="Mars/Olympus")
    with pytest.raises(ValueError, match="time_unit"):
        EventsConfig(time_unit="minutes")
