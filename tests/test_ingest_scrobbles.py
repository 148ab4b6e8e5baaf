"""Last.fm scrobble exports: every CSV layout the common tools write (with and without a header,
column orders, separators, epoch and text dates), the API's pages saved as JSON with a now-playing
entry, broken and mostly-garbage files, Latin-1. Fixtures written here by hand."""

import json
from datetime import datetime, timezone

import pytest

from pmrs.errors import IngestError
from pmrs.ingest import scrobbles as L
from pmrs.ingest.exportfiles import NOW_PLAYING, READ_AS_CP1252
from pmrs.ingest.listens import BAD_TIME, BROKEN_FILE, MALFORMED, NO_SONG, PLACEHOLDER

MBID = "0c22b0c3-a0a3-4b55-a3d3-8bd9d6a2b2e1"
ARTIST_MBID = "a74b1b7f-71a5-4011-9441-d0b5e4122711"


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def write(path, text: str | bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def triples(out):
    return [(r["artist"], r["album"], r["title"], r["ts"]) for r in out.table.to_pylist()]


@pytest.mark.parametrize("text, expected", [
    ("1612096440", 1612096440), ("1612096440123", 1612096440), ("31 Jan 2021 12:34", 1612096440),
    ("31 Jan 2021, 12:34", 1612096440), ("31 January 2021 12:34", 1612096440),
    ("2021-01-31 12:34:00", 1612096440), ("2021-01-31T12:34:00Z", 1612096440),
    ("2021-01-31T13:34:00+01:00", 1612096440), ("2021-01-31 12:34:00 UTC", 1612096440),
    ("2021/01/31 12:34", 1612096440), ("31.01.2021 12:34", 1612096440),
    ("01/31/2021 12:34", None), ("1999", None), ("Paranoid Android", None), ("", None)])
def test_scrobble_times_are_utc(text, expected):
    assert L.parse_time(text) == expected


def test_lastfm_to_csv_without_header_newest_first(tmp_path):
    write(tmp_path / "someuser.csv",
          '"Radiohead","OK Computer","Paranoid Android","15 Jun 2007 22:30"\n'
          '"Muse","Absolution","Hysteria","15 Jun 2007 22:25"\n'
          '"Nick Cave, and the Bad Seeds","","Into My Arms","14 Jun 2007 09:00"\n')
    out = L.read_scrobbles(tmp_path, "ann")
    assert triples(out) == [("Radiohead", "OK Computer", "Paranoid Android", utc(2007, 6, 15, 22, 30)),
                            ("Muse", "Absolution", "Hysteria", utc(2007, 6, 15, 22, 25)),
                            ("Nick Cave, and the Bad Seeds", None, "Into My Arms", utc(2007, 6, 14, 9, 0))]
    assert out.table["user"].to_pylist() == ["ann"] * 3
    assert out.table["count"].to_pylist() == [1] * 3
    assert out.table["ms_played"].null_count == 3 and out.dropped.total == 0


def test_exporter_header_with_uts_and_mbids(tmp_path):
    write(tmp_path / "scrobbles-ann-1612096456.csv",
          "uts,utc_time,artist,artist_mbid,album,album_mbid,track,track_mbid\n"
          f'1612096456,"31 Jan 2021, 12:34",Artist A,{ARTIST_MBID},Album A,,Song A,{MBID.upper()}\n'
          '1612096000,"31 Jan 2021, 12:26",Artist B,,,,Song B,\n')
    out = L.read_scrobbles(tmp_path, "ann")
    t = out.table.to_pylist()
    assert [(r["title"], r["ts"], r["recording_mbid"], r["album"]) for r in t] == [
        ("Song A", utc(2021, 1, 31, 12, 34, 16), MBID, "Album A"),   # uts, to the second, wins
        ("Song B", utc(2021, 1, 31, 12, 26, 40), None, None)]


@pytest.mark.parametrize("text", [
    "Artist,Album,Track,Date\nArtist A,Album A,Song A,31 Jan 2021 12:34\n",
    "Date;Track;Artist;Album\n2021-01-31T12:34:00Z;Song A;Artist A;Album A\n",
    "track\tartist\ttimestamp\talbum\nSong A\tArtist A\t1612096440\tAlbum A\n",
    "Artist|Track Name|Album Name|Played At\nArtist A|Song A|Album A|2021-01-31 12:34:00\n",
])
def test_headers_in_other_orders_and_separators(tmp_path, text):
    write(tmp_path / "export.csv", text)
    out = L.read_scrobbles(tmp_path, "bo")
    assert triples(out) == [("Artist A", "Album A", "Song A", utc(2021, 1, 31, 12, 34))]


def test_no_header_layout_from_content_semicolon_tab_and_epoch_first(tmp_path):
    write(tmp_path / "a.csv", "Artist A;Album A;Song A;31 Jan 2021 12:34\nArtist B;Album B;Song B;30 Jan 2021 08:00\n")
    write(tmp_path / "b.tsv", "1612096440\tArtist C\tSong C\n1612000000\tArtist D\tSong D\n")
    write(tmp_path / "c.txt", f"1612096440,31 Jan 2021 12:34,Artist E,,Album E,,Song E,{MBID}\n"
                              f"1612000000,30 Jan 2021 09:46,Artist F,,Album F,,Song F,{MBID}\n")
    out = L.read_scrobbles(tmp_path, "cy")
    assert [(r["artist"], r["album"], r["title"], r["recording_mbid"]) for r in out.table.to_pylist()] == [
        ("Artist A", "Album A", "Song A", None), ("Artist B", "Album B", "Song B", None),
        ("Artist C", None, "Song C", None), ("Artist D", None, "Song D", None),
        ("Artist E", "Album E", "Song E", MBID), ("Artist F", "Album F", "Song F", MBID)]
    assert out.table["ts"].to_pylist()[2] == utc(2021, 1, 31, 12, 34)


def test_unknown_header_is_skipped_by_content(tmp_path):
    write(tmp_path / "mine.csv", "K\u00fcnstler,Album,Titel,Datum\n"
                                 "Artist A,Album A,Song A,31 Jan 2021 12:34\n"
                                 "Artist B,Album B,Song B,30 Jan 2021 12:34\n")
    out = L.read_scrobbles(tmp_path, "di")
    assert out.table["title"].to_pylist() == ["Song A", "Song B"] and out.dropped.total == 0


def test_bad_rows_are_counted_by_reason(tmp_path):
    write(tmp_path / "x.csv",
          "artist,album,track,date\n"
          "Artist A,Album A,Song A,31 Jan 2021 12:34\n"
          "Artist B,Album B,Song B,31 Jan 2021 12:30\n"
          "Artist C,Album C,Song C,31 Jan 2021 12:20\n"
          "[unknown],Album,Song D,31 Jan 2021 12:10\n"
          ",Album,Song E,31 Jan 2021 12:00\n"
          "Artist F,Album,Song F,01 Jan 1990 12:00\n"
          "Artist G,Album,Song G,sometime\n"
          "only,two\n")
    out = L.read_scrobbles(tmp_path, "ed")
    assert out.table["title"].to_pylist() == ["Song A", "Song B", "Song C"]
    assert out.dropped.counts == {PLACEHOLDER: 1, NO_SONG: 1, BAD_TIME: 1, MALFORMED: 2}
    assert [row for _, row, _ in out.dropped.examples[MALFORMED]] == [8, 9]


def test_a_mostly_garbage_csv_raises_naming_it(tmp_path):
    path = write(tmp_path / "scrobbles.csv", "artist,album,track,date\nArtist A,Album A,Song A,31 Jan 2021 12:34\n"
                                            + "garbage\n" * 3 + "x,y,z,not a date\n")
    with pytest.raises(IngestError, match=r"scrobbles\.csv: 4 of 5 rows are malformed"):
        L.read_scrobbles(path, "fi")


def test_a_csv_named_for_scrobbles_that_holds_none_is_broken_and_other_csvs_are_not_read(tmp_path):
    write(tmp_path / "scrobbles-gi.csv", "name,owner\nMy list,me\n")
    write(tmp_path / "playlist.csv", "name,owner\nMy list,me\n")
    write(tmp_path / "genres.tsv", "TRAAAAW128F429D538\trock\n")
    write(tmp_path / "ok.csv", "Artist A,Album A,Song A,31 Jan 2021 12:34\n")
    out = L.read_scrobbles(tmp_path, "gi")
    assert out.table.num_rows == 1 and out.dropped.counts == {BROKEN_FILE: 1}
    assert sorted(f.rsplit("/", 1)[-1] for f in out.files) == ["ok.csv", "scrobbles-gi.csv"]


def test_latin1_csv(tmp_path):
    write(tmp_path / "old.csv", "Bj\u00f6rk,D\u00e9but,Human Behaviour,31 Jan 2021 12:34\n".encode("cp1252"))
    out = L.read_scrobbles(tmp_path, "hu")
    assert out.table["artist"].to_pylist() == ["Bj\u00f6rk"] and out.table["album"].to_pylist() == ["D\u00e9but"]
    assert out.dropped.counts == {READ_AS_CP1252: 1}


def _track(name, artist, uts=None, album="", mbid="", now=False, extended=False):
    t = {"artist": {"name": artist, "mbid": ""} if extended else {"#text": artist, "mbid": ""}, "name": name,
         "mbid": mbid, "album": {"#text": album, "mbid": ""}, "streamable": "0",
         "url": "https://www.last.fm/music/x/_/y"}
    if now:
        t["@attr"] = {"nowplaying": "true"}
    if uts is not None:
        t["date"] = {"uts": str(uts), "#text": datetime.fromtimestamp(uts, timezone.utc).strftime("%d %b %Y, %H:%M")}
    return t


def _page(tracks, page=1):
    return {"recenttracks": {"track": tracks, "@attr": {"user": "someone", "page": str(page), "perPage": "200",
                                                        "totalPages": "2", "total": "3"}}}


def test_api_pages_saved_as_json_with_a_now_playing_entry(tmp_path):
    write(tmp_path / "page1.json", json.dumps(_page([_track("Now Song", "Artist N", now=True),
                                                     _track("Song A", "Artist A", 1612096440, "Album A", MBID)])))
    write(tmp_path / "pages.json", json.dumps([_page(_track("Song B", "Artist B", 1612000000, extended=True), 2),
                                               _page([_track("Song C", "Artist C", 1611000000)], 3)]))
    out = L.read_scrobbles(tmp_path, "ida")
    assert [(r["artist"], r["title"], r["album"], r["recording_mbid"], r["ts"]) for r in out.table.to_pylist()] == [
        ("Artist A", "Song A", "Album A", MBID, utc(2021, 1, 31, 12, 34)),
        ("Artist B", "Song B", None, None, datetime.fromtimestamp(1612000000, timezone.utc)),
        ("Artist C", "Song C", None, None, datetime.fromtimestamp(1611000000, timezone.utc))]
    assert out.dropped.counts == {NOW_PLAYING: 1}
    assert out.dropped.examples[NOW_PLAYING][0][2] == "Artist N - Now Song"


def test_broken_json_page_is_counted_and_others_read(tmp_path):
    write(tmp_path / "page1.json", json.dumps(_page([_track("Song A", "Artist A", 1612096440)])))
    write(tmp_path / "page2.json", '{"recenttracks": {"track": [{"artist": ')
    out = L.read_scrobbles(tmp_path, "jo")
    assert out.table.num_rows == 1 and out.dropped.counts == {BROKEN_FILE: 1}
