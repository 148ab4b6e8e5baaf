"""ListenBrainz listens: the user export (zip of JSON lines, older JSON array), API answers and
submissions, duplicates, now-playing, broken and mostly-garbage files. Fixtures written here by
hand from ListenBrainz's JSON documentation."""

import json
import zipfile
from datetime import datetime, timezone

import pytest

from pmrs.errors import IngestError
from pmrs.ingest import listenbrainz as B
from pmrs.ingest.exportfiles import NOW_PLAYING
from pmrs.ingest.listens import BROKEN_FILE, DUPLICATE, MALFORMED

MAPPED = "98255a8c-017a-4bc7-8dd6-1fa36124572b"
SUBMITTED = "e225fb84-dc9a-419e-adcd-9890f59ec432"
MSID_A = "3ad5b1d0-f09d-420b-b9fa-28aa3f454401"
MSID_B = "4bd5b1d0-f09d-420b-b9fa-28aa3f454402"


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def listen(at, artist, track, release=None, info=None, mapping=None, msid=None, **extra):
    meta = {"artist_name": artist, "track_name": track, "additional_info": info or {}}
    if release is not None:
        meta["release_name"] = release
    if mapping is not None:
        meta["mbid_mapping"] = mapping
    out = {"track_metadata": meta, "inserted_at": 1700000000, **extra}
    if at is not None:
        out["listened_at"] = at
    if msid is not None:
        out["recording_msid"] = msid
    return out


A = listen(1443521965, "Rick Astley", "Never Gonna Give You Up", "Whenever you need somebody",
           info={"recording_mbid": SUBMITTED, "spotify_id": "https://open.spotify.com/track/" + "4" * 22,
                 "duration_ms": 213000, "submission_client": "test"},
           mapping={"recording_mbid": MAPPED, "artist_mbids": ["db92a151-1ac2-438b-bc43-b82e149ddd50"]},
           msid=MSID_A)
B_ = listen(1443522200, "Artist B", "Song B", info={"recording_mbid": SUBMITTED, "recording_msid": MSID_B})
C = listen(1443523000, "Artist C", "Song C")


def jsonl(*objs) -> str:
    return "".join(json.dumps(o) + "\n" for o in objs)


def test_user_export_zip_of_json_lines(tmp_path):
    with zipfile.ZipFile(tmp_path / "listenbrainz_someone_1700000000.zip", "w") as zf:
        zf.writestr("user.json", json.dumps({"user_id": 1, "username": "someone"}))
        zf.writestr("listens/2015/9.jsonl", jsonl(A, B_))
        zf.writestr("listens/2015/10.jsonl", jsonl(C, A))          # A again: a duplicate
        zf.writestr("feedback.jsonl", jsonl({"recording_msid": MSID_A, "score": 1, "created": 1700000000}))
    out = B.read_listenbrainz(tmp_path, "kai")
    t = out.table.to_pylist()
    assert [(r["artist"], r["title"], r["ts"]) for r in t] == [
        ("Rick Astley", "Never Gonna Give You Up", utc(2015, 9, 29, 10, 19, 25)),
        ("Artist B", "Song B", datetime.fromtimestamp(1443522200, timezone.utc)),
        ("Artist C", "Song C", datetime.fromtimestamp(1443523000, timezone.utc))]
    assert t[0]["recording_mbid"] == MAPPED                         # mbid_mapping wins
    assert t[1]["recording_mbid"] == SUBMITTED                      # else additional_info's
    assert t[0]["spotify_uri"] == "spotify:track:" + "4" * 22
    assert t[0]["album"] == "Whenever you need somebody" and t[2]["album"] is None
    assert [r["ms_played"] for r in t] == [None] * 3                # duration_ms is the track's length
    assert out.dropped.counts == {DUPLICATE: 1}
    assert len(out.files) == 2 and all("!listens/2015/" in f for f in out.files)


def test_old_json_array_export_and_api_answers_with_duplicates_across_files(tmp_path):
    (tmp_path / "someone_lb-2019-10-31.json").write_text(json.dumps([A, C]))
    (tmp_path / "api_page.json").write_text(json.dumps(
        {"payload": {"count": 2, "user_id": "someone", "latest_listen_ts": 1443530000,
                     "listens": [listen(1443530000, "Artist D", "Song D", user_name="someone"), C]}}))
    (tmp_path / "submit.json").write_text(json.dumps({"listen_type": "import", "payload": [
        listen("2015-09-29T12:00:00Z", "Artist E", "Song E"), listen("1443530000", "Artist D", "Song D")]}))
    out = B.read_listenbrainz(tmp_path, "lu")
    assert sorted(out.table["title"].to_pylist()) == [
        "Never Gonna Give You Up", "Song C", "Song D", "Song E"]
    assert utc(2015, 9, 29, 12) in out.table["ts"].to_pylist()
    assert out.dropped.counts == {DUPLICATE: 2}
    assert "someone" not in repr(out.table.to_pylist())


def test_duplicates_go_by_mbid_then_msid_then_names(tmp_path):
    at = 1600000000
    (tmp_path / "listens.jsonl").write_text(jsonl(
        listen(at, "X", "One", mapping={"recording_mbid": MAPPED}),
        listen(at, "Y", "Other name, same recording", mapping={"recording_mbid": MAPPED}),
        listen(at, "X", "One", msid=MSID_A),
        listen(at, "X", "One", info={"recording_msid": MSID_A}),
        listen(at, "X", "One"),
        listen(at, "x", "ONE"),
        listen(at + 1, "X", "One")))
    out = B.read_listenbrainz(tmp_path / "listens.jsonl", "mo")
    assert out.table.num_rows == 4 and out.dropped.counts == {DUPLICATE: 3}


def test_playing_now_has_no_time_and_is_dropped_as_such(tmp_path):
    (tmp_path / "now.json").write_text(json.dumps({"listen_type": "playing_now",
                                                   "payload": [listen(None, "Artist N", "Now Song")]}))
    (tmp_path / "api_now.json").write_text(json.dumps(
        {"payload": {"count": 1, "playing_now": True, "listens": [listen(None, "Artist N", "Now Song",
                                                                         playing_now=True)]}}))
    (tmp_path / "listens.jsonl").write_text(jsonl(A, B_, listen(None, "Artist Q", "No Time")))
    out = B.read_listenbrainz(tmp_path, "ned")
    assert out.table.num_rows == 2
    assert out.dropped.counts == {NOW_PLAYING: 2, MALFORMED: 1}


def test_a_broken_file_is_counted_and_bad_lines_are_malformed_rows(tmp_path):
    (tmp_path / "api_page.json").write_text('{"payload": {"listens": [{"listened_at": 1443521965, '
                                            '"track_metadata": {"artist_name": "Art')
    (tmp_path / "listens.jsonl").write_text(jsonl(A, B_, C) + '{"listened_at": 14435\n')
    out = B.read_listenbrainz(tmp_path, "oz")
    assert out.table.num_rows == 3
    assert out.dropped.counts == {BROKEN_FILE: 1, MALFORMED: 1}
    assert out.dropped.examples[MALFORMED][0][1] == 4


def test_a_mostly_garbage_jsonl_raises_naming_it(tmp_path):
    (tmp_path / "listens.jsonl").write_text(jsonl(A) + "{not json\n" * 2 + jsonl({"listened_at": 1}))
    with pytest.raises(IngestError, match=r"listens\.jsonl: 3 of 4 rows are malformed"):
        B.read_listenbrainz(tmp_path, "pa")


def test_recognised_by_content_not_by_name():
    assert B.sniff_content(jsonl(A)) == B.FORMAT
    assert B.sniff_content(json.dumps({"listen_type": "single", "payload": [A]})) == B.FORMAT
    assert B.sniff_content(jsonl({"recording_msid": MSID_A, "score": 1})) is None      # feedback
    assert B.sniff_content('{"user_id": 1, "username": "x"}') is None
