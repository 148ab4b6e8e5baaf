"""Last.fm ingest: both distributed forms, bad input counted and never fatal, synth round trip."""

import json
import sqlite3
from pathlib import Path

import lmdb
import pytest
from hypothesis import given, settings, strategies as st

from pmrs.catalog import Catalog, write_catalog
from pmrs.cli import main
from pmrs.ingest import IngestError, ingest
from pmrs.ingest import lastfm as L
from pmrs.synth.generate import synthesize
from pmrs.synth.lastfm import scene_tags
from pmrs.synth.world import SynthConfig

KNOWN = {"TRA": "SOA", "TRA2": "SOA", "TRB": "SOB", "TRC": "SOC"}


def _track(tid, tags=(), similars=()):
    return json.dumps({"track_id": tid, "artist": "x", "title": "y", "timestamp": "2011",
                       "tags": [list(t) for t in tags], "similars": [list(s) for s in similars]})


def _tree(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, body in files.items():
        path = root / name[2] / name[3] / name[4] / f"{name}.json" if name.startswith("TR") else root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body if isinstance(body, bytes) else body.encode())
    return root


def _read(paths, mapping=KNOWN):
    report = L.LastfmReport()
    records = list(L.read_lastfm(paths, mapping, report))
    return records, report


def test_json_tree_good_and_bad_files_are_counted(tmp_path):
    root = _tree(tmp_path / "lastfm_train", {
        "TRA00": _track("TRA", [("rock", "100"), ("80s", "40"), ("rock", "20")], [("TRB", 0.9), ("TRZ", 0.5)]),
        "TRA20": _track("TRA2", [("rock", "60"), ("live", "100")], [("TRB", 0.95), ("TRA", 1.0)]),
        "TRB00": _track("TRB", [], [("TRC", 0.3)]),                           # empty tag list
        "TRC00": _track("TRC", [("jazz", "abc"), ("jazz", "150"), [1, "3"], ("ok", 7)],
                        [("TRA", "0.5"), ("", 0.4), ("TRB", -1), ["TRB"]]),   # bad entries dropped
        "TRX00": _track("TRX", [("pop", "90")]),                              # unknown track
        "bad/one.json": b"{not json",
        "bad/two.json": b"\xff\xfe\x00garbage",
        "bad/list.json": b"[1, 2, 3]",
        "bad/noid.json": json.dumps({"tags": [["a", "1"]]}),
        "bad/tagsnotlist.json": json.dumps({"track_id": "TRB", "tags": 5}),
        "notes.txt": b"ignored: not .json",
    })
    records, r = _read([root])
    assert r.json_files == 10 and r.tracks == 5
    assert r.malformed == {L.UNPARSABLE: 2, L.NOT_A_TRACK: 3}
    assert r.bad_values == {L.BAD_TAG: 3, L.BAD_SIMILAR: 3}
    assert r.tracks_unknown == 1 and r.tracks_without_tags == 1
    assert r.similar_targets_unknown == 1     # TRZ
    assert r.songs_with_tags == 2 and r.songs_with_similars == 3
    assert any(e["reason"] == L.UNPARSABLE and "one.json" in e["where"] for e in r.examples)
    by_song = {}
    for song, tags, sims in records:
        by_song.setdefault(song, []).append((tags, sims))
    assert by_song["SOA"] == [({"rock": 100.0, "80s": 40.0}, {"SOB": 0.9}),
                              ({"rock": 60.0, "live": 100.0}, {"SOB": 0.95})]   # TRA2 -> itself dropped
    assert by_song["SOC"] == [({"ok": 7.0}, {"SOA": 0.5})]


def test_records_of_one_song_merge_in_the_catalog(tmp_path):
    root = _tree(tmp_path / "lastfm_subset", {
        "TRA00": _track("TRA", [("rock", "100"), ("80s", "40")], [("TRB", 0.9)]),
        "TRA20": _track("TRA2", [("rock", "60"), ("live", "100")], [("TRB", 0.95), ("TRC", 0.1)])})
    report = L.LastfmReport()
    path = tmp_path / "catalog.lmdb"
    write_catalog(path, [("SOA", {"title": "a"}), ("SOB", {}), ("SOC", {})], sorted(KNOWN.items()), {},
                  L.read_lastfm([root], KNOWN, report))
    with Catalog(path) as c:
        assert c.tags("SOA") == {"rock": 100.0, "80s": 40.0, "live": 100.0}
        assert c.similars("SOA") == {"SOB": 0.95, "SOC": 0.1}
        assert c.tags("SOB") == {} and c.similars("nothing") == {}
        assert [s for s, _ in c.items_tags()] == ["SOA"]
    write_catalog(path, [("SOA", {})], sorted(KNOWN.items()), {}, L.read_lastfm([root], KNOWN, report),
                  max_similars=1)
    with Catalog(path) as c:
        assert c.similars("SOA") == {"SOB": 0.95}   # the highest score, after the merge


def _tags_db(path: Path, tids, tags, pairs) -> Path:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE tids (tid TEXT)")
    con.execute("CREATE TABLE tags (tag TEXT)")
    con.execute("CREATE TABLE tid_tag (tid INT, tag INT, val FLOAT)")
    con.executemany("INSERT INTO tids VALUES (?)", [(t,) for t in tids])
    con.executemany("INSERT INTO tags VALUES (?)", [(t,) for t in tags])
    con.executemany("INSERT INTO tid_tag VALUES (?, ?, ?)", pairs)
    con.commit()
    con.close()
    return path


def _similars_db(path: Path, rows) -> Path:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE similars_src (tid TEXT, target TEXT)")
    con.executemany("INSERT INTO similars_src VALUES (?, ?)", rows)
    con.commit()
    con.close()
    return path


def test_sqlite_tags_bad_rows_are_counted(tmp_path):
    db = _tags_db(tmp_path / L.TAGS_DB, ["TRA", "TRB", "TRX", "TRC", "TR\x00C"],
                  ["rock", "jazz", b"caf\xe9"],
                  [(1, 1, 100.0), (1, 2, 30), (1, 9, 50),          # tag rowid 9: dangling
                   (7, 1, 10),                                      # tid rowid 7: dangling
                   (2, 2, "x"), (2, 1, -1), (2, 3, 500), (2, 3, 80),  # two bad values, one Latin-1 tag
                   (3, 1, 90),                                      # unknown track
                   (5, 1, 90)])                                     # id with a NUL
    records, r = _read([db])
    assert r.malformed == {L.DANGLING: 2, L.NOT_A_TRACK: 1}
    assert r.bad_values == {L.BAD_TAG: 3}
    assert r.tracks_unknown == 1 and r.tracks_without_tags == 1   # TRC has no tid_tag row
    assert sorted(records) == [("SOA", {"rock": 100.0, "jazz": 30.0}, None), ("SOB", {"café": 80.0}, None)]


def test_sqlite_similars_malformed_targets_are_counted(tmp_path):
    db = _similars_db(tmp_path / L.SIMILARS_DB, [
        ("TRA", "TRB,0.87,TRC,0.45,TRZ,0.1"),
        ("TRB", "TRA,0.5,TRC"),           # odd number of fields
        ("TRC", "TRA,high"),              # score not a number
        ("TRC", ",0.4"),                  # empty id
        ("TRC", "TRA,-0.2"),              # negative score
        ("TRC", b"TR\xff,0.3"),           # not UTF-8
        ("TRC", 42),                      # not text
        ("TRC", None),                    # no similars: not malformed
        ("TRX", "TRA,0.9"),               # unknown track
        ("TRA2", "TRC,0.6, TRB , 0.99 "),  # spaces around fields are fine
    ])
    records, r = _read([db])
    assert r.malformed == {L.BAD_TARGET: 6}
    assert r.tracks_unknown == 1 and r.similar_targets_unknown == 1
    assert records == [("SOA", None, {"SOB": 0.87, "SOC": 0.45}), ("SOA", None, {"SOC": 0.6, "SOB": 0.99})]


def test_files_that_are_not_lastfm_inputs_are_errors(tmp_path):
    (tmp_path / "x.db").write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(IngestError, match="x.db"):
        L.input_kind(tmp_path / "x.db")
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE songs (a)").connection.commit()
    with pytest.raises(IngestError, match="neither a Last.fm tags file"):
        L.input_kind(other)
    with pytest.raises(IngestError, match="not found"):
        L.input_kind(tmp_path / "missing.db")


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.binary(max_size=200),
                 st.recursive(st.none() | st.booleans() | st.floats() | st.text(max_size=8),
                              lambda c: st.lists(c, max_size=4) | st.dictionaries(
                                  st.sampled_from(["track_id", "tags", "similars", "x"]), c, max_size=4),
                              max_leaves=12).map(lambda o: json.dumps(o).encode())))
def test_any_json_file_is_a_track_or_counted(raw):
    r = L.LastfmReport()
    out = L.parse_json_track(raw, "f.json", r)
    assert (out is None) == (sum(r.malformed.values()) == 1)
    if out is not None:
        track_id, tags, sims = out
        assert track_id and all(0 <= w <= 100 for w in tags.values()) and all(s >= 0 for _, s in sims)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["TRA", "0.5", "", " ", "x", "1e3", "nan", "TRB", "-1", "inf"]), max_size=6))
def test_any_target_parses_or_is_refused(fields):
    out = L.parse_target(",".join(fields))
    if out is not None:
        assert all(t and s >= 0 and s != float("inf") for t, s in out)
        assert len(out) * 2 == len(fields) or (out == [] and not ",".join(fields).strip())


def test_a_catalog_written_before_tags_reads_without_them(tmp_path):
    path = tmp_path / "old.lmdb"
    env = lmdb.open(str(path), subdir=False, max_dbs=3)
    songs, tracks, meta = (env.open_db(n) for n in (b"songs", b"tracks", b"meta"))
    with env.begin(write=True) as txn:
        txn.put(b"SOA", b'{"title": "a"}', db=songs)
        txn.put(b"info", b"{}", db=meta)
    env.close()
    with Catalog(path) as c:
        assert c.get("SOA") == {"title": "a"}
        assert c.tags("SOA") == {} and c.similars("SOA") == {} and list(c.items_tags()) == []


@pytest.fixture(scope="module")
def both_forms(tmp_path_factory):
    data = tmp_path_factory.mktemp("lastfm") / "data"
    synthesize(data, SynthConfig(users=60, songs=120, genres=4, scenes=3, no_audio=True, lastfm="both"))
    return data


def test_synth_output_round_trips_through_ingest_in_both_forms(both_forms, tmp_path):
    data = both_forms
    assert main(["ingest", str(data), "--workdir", str(tmp_path / "auto"), "-q"]) == 0
    forms = {"json": [data / "lastfm_train", data / "lastfm_test"],
             "sqlite": [data / L.TAGS_DB, data / L.SIMILARS_DB]}
    truth = json.loads((data / "truth.json").read_text())
    catalogs = {}
    for form, paths in forms.items():
        work = tmp_path / form
        argv = ["ingest", str(data), "--workdir", str(work), "-q"]
        for p in paths:
            argv += ["--lastfm", str(p)]
        assert main(argv) == 0
        report = json.loads((work / "interactions" / "ingest_report.json").read_text())
        lf = report["catalog"]["lastfm"]
        assert lf["malformed"] == {} and lf["bad_values"] == {} and lf["tracks_unknown"] == 0
        if form == "json":
            assert lf["json_files"] == lf["tracks"] == truth["lastfm"]["tracks"]
        with Catalog(work / "catalog.lmdb") as c:
            catalogs[form] = (dict(c.items_tags()), dict(c.items_similars()))
            assert c.info()["lastfm"]["songs_with_tags"] == len(catalogs[form][0])
    assert catalogs["json"] == catalogs["sqlite"]
    tags, sims = catalogs["json"]
    # the JSON files say the same as the catalog, song by song
    with Catalog(tmp_path / "json" / "catalog.lmdb") as c:
        n_files = 0
        for path in sorted((data / "lastfm_train").rglob("*.json"))[:20]:
            obj = json.loads(path.read_text())
            song = c.song_for_track(obj["track_id"])
            assert tags.get(song, {}) == {t: float(w) for t, w in obj["tags"]}
            assert sims.get(song, {}) == {c.song_for_track(t): s for t, s in obj["similars"]}
            n_files += 1
        assert n_files == 20
    assert truth["lastfm"]["tracks_with_tags"] == len(tags)
    # tags know the hidden scene: two songs sharing a scene tag share the scene
    scene_words = [set(w) for w in scene_tags(3)]
    for song, t in tags.items():
        scenes = {i for i, words in enumerate(scene_words) if words & set(t)}
        assert scenes <= {truth["songs"][song]["scene"]}


def test_ingest_without_lastfm_says_so(both_forms, tmp_path, capsys):
    data = tmp_path / "plain"
    data.mkdir()
    for name in ("train_triplets.txt", "unique_tracks.txt", "genres.tsv"):
        (data / name).write_bytes((both_forms / name).read_bytes())
    assert main(["ingest", str(data), "--workdir", str(tmp_path / "w")]) == 0
    assert "Last.fm: no input found" in capsys.readouterr().out
    with Catalog(tmp_path / "w" / "catalog.lmdb") as c:
        assert list(c.items_tags()) == [] and "lastfm" not in c.info()


def test_a_bad_lastfm_path_fails_before_anything_is_written(both_forms, tmp_path):
    bogus = tmp_path / "bogus.db"
    bogus.write_text("hello")
    with pytest.raises(IngestError, match="bogus.db"):
        ingest(both_forms, tmp_path / "w", lastfm=[bogus])
    assert not (tmp_path / "w" / "catalog.lmdb").exists()
    assert main(["ingest", str(both_forms), "--workdir", str(tmp_path / "w"), "--lastfm", str(bogus),
                 "-q"]) == 2
