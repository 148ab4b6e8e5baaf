"""Personal exports, one folder per person: what a folder holds (recognise) and everyone read at
once (read_personal_exports), three people of three services. Fixtures written here by hand."""

import json
import zipfile
from datetime import datetime, timezone

import pytest

from pmrs.errors import IngestError
from pmrs.ingest import exports as X
from pmrs.ingest.exportfiles import ExportFile, export_files
from pmrs.ingest.listens import BROKEN_FILE, LISTEN_SCHEMA, NO_USER, NOT_A_SONG

IP = "198.51.100.23"
AGENT = "Mozilla/5.0 (PmrsExportsTestAgent)"


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else
                     (data if isinstance(data, str) else json.dumps(data)).encode())
    return path


def spotify_play(ts, track, artist, uri):
    return {"ts": ts, "username": "spotify_login_x", "platform": "iOS 17", "ms_played": 200000,
            "conn_country": "SE", "ip_addr_decrypted": IP, "user_agent_decrypted": AGENT,
            "master_metadata_track_name": track, "master_metadata_album_artist_name": artist,
            "master_metadata_album_album_name": "Album", "spotify_track_uri": uri, "episode_name": None,
            "episode_show_name": None, "spotify_episode_uri": None, "reason_start": "clickrow",
            "reason_end": "trackdone", "shuffle": False, "skipped": False, "offline": False,
            "offline_timestamp": 0, "incognito_mode": False}


def lb_listen(at, artist, track):
    return {"listened_at": at, "track_metadata": {"artist_name": artist, "track_name": track,
                                                  "additional_info": {}}}


@pytest.fixture
def three_people(tmp_path):
    root = tmp_path / "exports"
    with zipfile.ZipFile(write(root / "alice" / "my_spotify_data.zip", b""), "w") as zf:
        plays = [spotify_play("2022-05-01T18:00:00Z", "Song A", "Artist A", "spotify:track:" + "a" * 22),
                 spotify_play("2022-05-01T18:04:00Z", "Song B", "Artist B", "spotify:track:" + "b" * 22)]
        zf.writestr("Spotify Extended Streaming History/Streaming_History_Audio_2022_0.json", json.dumps(plays))
        zf.writestr("Spotify Extended Streaming History/ReadMeFirst_ExtendedStreamingHistory.pdf", b"%PDF-1.4")
    write(root / "alice" / "Spotify Account Data" / "StreamingHistory_podcast_0.json",
          [{"endTime": "2022-05-02 07:00", "podcastName": "Show", "episodeName": "Ep", "msPlayed": 900000}])
    write(root / "alice" / "Spotify Account Data" / "Userdata.json", {"username": "spotify_login_x"})
    write(root / "bob" / "bob.csv", '"Artist C","Album C","Song C","31 Jan 2021 12:34"\n'
                                    '"Artist D","Album D","Song D","30 Jan 2021 08:00"\n')
    with zipfile.ZipFile(write(root / "carol" / "listenbrainz_carol.zip", b""), "w") as zf:
        zf.writestr("user.json", json.dumps({"user_id": 7, "username": "carol_lb"}))
        zf.writestr("listens/2023/1.jsonl", json.dumps(lb_listen(1673000000, "Artist E", "Song E")) + "\n")
    write(root / "loose.csv", "Artist,Album,Song,31 Jan 2021 12:34\n")
    write(root / ".DS_Store", b"\x00\x01")
    return root


def test_recognise_says_what_each_folder_holds(three_people):
    found = X.recognise(three_people / "alice")
    assert [(fmt, [f.basename for f in files]) for fmt, files in found] == [
        ("spotify-basic", ["StreamingHistory_podcast_0.json"]),
        ("spotify-extended", ["Streaming_History_Audio_2022_0.json"])]
    assert all(isinstance(f, ExportFile) for _, files in found for f in files)
    assert str(found[1][1][0]).endswith("my_spotify_data.zip!Spotify Extended Streaming History/"
                                        "Streaming_History_Audio_2022_0.json")
    assert [fmt for fmt, _ in X.recognise(three_people / "bob")] == ["lastfm-csv"]
    assert [fmt for fmt, _ in X.recognise(three_people / "carol")] == ["listenbrainz"]


def test_read_personal_exports_of_three_people_of_three_services(three_people):
    out = X.read_personal_exports(three_people, show_progress=False)
    assert out.table.schema.equals(LISTEN_SCHEMA)
    rows = out.table.to_pylist()
    assert [(r["user"], r["title"]) for r in rows] == [
        ("alice", "Song A"), ("alice", "Song B"), ("bob", "Song C"), ("bob", "Song D"), ("carol", "Song E")]
    by = {r["title"]: r for r in rows}
    assert by["Song A"]["spotify_uri"] == "spotify:track:" + "a" * 22 and by["Song A"]["ms_played"] == 200000
    assert by["Song C"]["ts"] == datetime(2021, 1, 31, 12, 34, tzinfo=timezone.utc)
    assert by["Song E"]["ts"] == datetime.fromtimestamp(1673000000, timezone.utc)
    assert out.dropped.counts == {NOT_A_SONG: 1, NO_USER: 1}
    assert out.dropped.examples[NO_USER][0][0].endswith("loose.csv")
    assert len(out.files) == 4
    everything = repr(rows) + repr(out.dropped.as_dict()) + repr(out.files)
    for secret in (IP, AGENT, "spotify_login_x", "carol_lb", "iOS 17"):
        assert secret not in everything


def test_a_person_of_several_services_and_a_broken_zip(tmp_path):
    root = tmp_path / "r"
    write(root / "dee" / "scrobbles.csv", "uts,utc_time,artist,artist_mbid,album,album_mbid,track,track_mbid\n"
                                          '1612096440,"31 Jan 2021, 12:34",Artist A,,Album A,,Song A,\n')
    write(root / "dee" / "listens.jsonl", json.dumps(lb_listen(1612096440, "Artist A", "Song A")) + "\n")
    write(root / "dee" / "old.zip", b"PK\x03\x04 not really a zip")
    out = X.read_personal_exports(root, show_progress=False)
    assert out.table["user"].to_pylist() == ["dee", "dee"]
    assert out.dropped.counts == {BROKEN_FILE: 1}


def test_a_mostly_garbage_file_stops_the_read_naming_it(tmp_path):
    write(tmp_path / "r" / "eve" / "Streaming_History_Audio_2020.json", [{"ts": "soon"}, {"ts": "later"}])
    with pytest.raises(IngestError, match="Streaming_History_Audio_2020.json"):
        X.read_personal_exports(tmp_path / "r", show_progress=False)


def test_a_root_without_people_is_an_error(tmp_path):
    with pytest.raises(IngestError, match="not a folder"):
        X.read_personal_exports(tmp_path / "missing")
    write(tmp_path / "flat" / "StreamingHistory0.json", [])
    with pytest.raises(IngestError, match="no person's folder"):
        X.read_personal_exports(tmp_path / "flat")


def test_export_files_walks_folders_and_zips_in_natural_order(tmp_path):
    for n in (10, 9, 1):
        write(tmp_path / f"Streaming_History_Audio_{n}.json", [])
    write(tmp_path / "__MACOSX" / "._x.json", b"")
    names = [f.basename for f in export_files(tmp_path)]
    assert names == ["Streaming_History_Audio_1.json", "Streaming_History_Audio_9.json",
                     "Streaming_History_Audio_10.json"]
