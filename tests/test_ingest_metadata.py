import json
import sqlite3

import pytest

from pmrs.catalog import Catalog
from pmrs.ingest.metadata import build_catalog


def make_files(tmp_path):
    (tmp_path / "unique_tracks.txt").write_text(
        "TRA\u00b9<SEP>SO1<SEP>Björk<SEP>Jóga\n"       # non-ASCII text survives
        "TRB<SEP>SO1<SEP>Björk<SEP>Jóga (dup)\n"        # a second track of the same song
        "TRC<SEP>SO2<SEP>Artist Two<SEP>Title Two\n"
        "broken line without separators\n", encoding="utf-8")
    con = sqlite3.connect(tmp_path / "track_metadata.db")
    con.execute("CREATE TABLE songs (track_id text, title text, song_id text, release text, "
                "artist_id text, artist_mbid text, artist_name text, duration real, year int)")
    con.execute("INSERT INTO songs VALUES ('TRC', 'Title Two', 'SO2', 'Album', 'AR2', '', "
                "'Artist Two', 201.5, 1999)")
    con.execute("INSERT INTO songs VALUES ('TRD', 'Only In Db', 'SO3', 'R3', 'AR3', '', 'Three', 99, 0)")
    con.commit()
    con.close()
    (tmp_path / "genres.tsv").write_text(
        "# comment header\nTRA\u00b9\tElectronic\nTRB\tElectronic\nTRC\tRock\tPop\nTRX\tJazz\nbad\n",
        encoding="utf-8")


def test_catalog_merges_sources_and_maps_tracks(tmp_path):
    make_files(tmp_path)
    report = build_catalog(tmp_path / "catalog.lmdb", unique_tracks=tmp_path / "unique_tracks.txt",
                           track_metadata=tmp_path / "track_metadata.db", genres=tmp_path / "genres.tsv")
    assert report.songs == 3 and report.tracks == 4
    assert report.malformed == {"unique_tracks.txt": 1, "genres.tsv": 1}
    with Catalog(tmp_path / "catalog.lmdb") as cat:
        s1 = cat.get("SO1")
        assert (s1["title"], s1["artist"], s1["genre"]) == ("Jóga", "Björk", "Electronic")
        assert s1["track_ids"] == ["TRA\u00b9", "TRB"]
        s2 = cat.get("SO2")
        assert (s2["release"], s2["year"], s2["duration"], s2["genre"]) == ("Album", 1999, 201.5, "Rock")
        assert cat.get("SO3")["title"] == "Only In Db" and cat.get("SO3")["genre"] == ""
        assert cat.get("SO-missing") is None
        assert cat.song_for_track("TRB") == "SO1" and cat.song_for_track("TRD") == "SO3"
        assert len(cat) == 3 and cat.info()["genres"] == ["Electronic", "Rock"]


def test_missing_catalog_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="pmrs ingest"):
        Catalog(tmp_path / "catalog.lmdb")


def test_not_sqlite_is_a_clear_error(tmp_path):
    (tmp_path / "track_metadata.db").write_text("not a database")
    with pytest.raises(ValueError, match="SQLite"):
        build_catalog(tmp_path / "catalog.lmdb", track_metadata=tmp_path / "track_metadata.db")


# ---------------------------------------------------------------- issue 10, item 4 cases

from pmrs.ingest.errors import IngestError  # noqa: E402
from pmrs.ingest.metadata import MetadataReport, read_track_metadata  # noqa: E402


def _cli(tmp_path, capfd, *args) -> tuple[int, str, str]:
    """``pmrs ingest ARGS`` in this process: (exit code, stdout, stderr)."""
    import logging

    from pmrs.cli import main

    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers[:] = []  # let the CLI's logging set-up write to this test's stderr
    try:
        rc = main(["ingest", "-q", "--workdir", str(tmp_path / "work"), *args])
    finally:
        root.handlers[:] = saved
    out, err = capfd.readouterr()
    return rc, out, err


def _triplets(tmp_path):
    p = tmp_path / "train_triplets.txt"
    p.write_text("u1\tSO1\t2\nu2\tSO2\t1\n")
    return p


def _songs_db(path, rows, types=("text", "text", "int")):
    con = sqlite3.connect(path)
    con.execute(f"CREATE TABLE songs (track_id {types[0]}, song_id {types[1]}, title text, "
                f"artist_name text, duration real, year {types[2]})")
    con.executemany("INSERT INTO songs VALUES (?, ?, ?, ?, ?, ?)", rows)
    con.commit()
    con.close()
    return path


@pytest.mark.parametrize("flag", ["--unique-tracks", "--track-metadata", "--genres"])
def test_a_directory_given_as_a_metadata_file_is_a_one_line_error(tmp_path, capfd, flag):
    (tmp_path / "d").mkdir()
    rc, _, err = _cli(tmp_path, capfd, "--triplets", str(_triplets(tmp_path)), flag, str(tmp_path / "d"))
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert f"{tmp_path / 'd'} is a directory" in err
    assert "IsADirectoryError" not in err and "disk I/O" not in err


def test_integer_ids_in_track_metadata_are_skipped_rows_named_by_file_and_row(tmp_path):
    db = _songs_db(tmp_path / "track_metadata.db",
                   [(123, "SO1", "T1", "A1", 1.0, 1999), ("TR2", "SO2", "T2", "A2", 2.0, 2000),
                    ("TR3", 7.5, "T3", "A3", 3.0, 2001), (None, "SO4", "T4", "A4", 4.0, 2002)],
                   types=("", "", "int"))
    report = MetadataReport()
    rows = read_track_metadata(db, report)
    assert [r["track_id"] for r in rows] == ["TR2"]
    assert report.malformed == {"track_metadata.db": 3}
    assert [(e["row"], e["reason"], e["text"]) for e in report.examples] == [
        (1, "track_id is an integer, not text", "123"), (3, "song_id is a real, not text", "7.5"),
        (4, "track_id is NULL, not text", "None")]
    only_ints = _songs_db(tmp_path / "ints.db", [(1, 2, "T", "A", 1.0, 1999)], types=("", "", ""))
    with pytest.raises(IngestError, match=r"ints\.db: not one usable row.*row 1: track_id is an "
                                          r"integer, not text: 1"):
        build_catalog(tmp_path / "catalog.lmdb", track_metadata=only_ints)


def test_a_text_year_is_dropped_and_reported_with_file_row_and_value(tmp_path, capfd):
    db = _songs_db(tmp_path / "track_metadata.db",
                   [("TR1", "SO1", "T1", "A1", "n/a", "unknown"),
                    ("TR2", "SO2", "T2", "A2", "201.5", "1999")],
                   types=("text", "text", ""))
    rc, out, err = _cli(tmp_path, capfd, "--triplets", str(_triplets(tmp_path)), "--track-metadata", str(db))
    assert rc == 0, err
    assert "dropped 2 value(s) of the wrong type in track_metadata.db" in out
    assert "track_metadata.db row 1: year is text, not an integer year: 'unknown'" in out
    with Catalog(tmp_path / "work" / "catalog.lmdb") as cat:
        assert (cat.get("SO1")["year"], cat.get("SO1")["duration"]) == (0, 0.0)
        assert cat.song_for_track("TR1") == "SO1"  # the row still maps its track
        assert (cat.get("SO2")["year"], cat.get("SO2")["duration"]) == (1999, 201.5)


def test_garbage_unique_tracks_never_replaces_a_good_catalog(tmp_path, capfd):
    make_files(tmp_path)
    trip = _triplets(tmp_path)
    rc, _, err = _cli(tmp_path, capfd, "--triplets", str(trip), "--unique-tracks",
                      str(tmp_path / "unique_tracks.txt"))
    assert rc == 0, err
    catalog = tmp_path / "work" / "catalog.lmdb"
    before = catalog.read_bytes()
    report_before = (tmp_path / "work" / "interactions" / "ingest_report.json").read_bytes()
    garbage = tmp_path / "garbage.txt"
    garbage.write_bytes(b"".join(b"garbage %d \xff no separators\n" % i for i in range(50)))
    rc, out, err = _cli(tmp_path, capfd, "--triplets", str(trip), "--unique-tracks", str(garbage))
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "garbage.txt: not one usable line in 50" in err and "catalog is unchanged" in err
    assert catalog.read_bytes() == before
    assert (tmp_path / "work" / "interactions" / "ingest_report.json").read_bytes() == report_before


def test_utf16_unique_tracks_is_an_error_naming_file_and_encoding(tmp_path):
    p = tmp_path / "unique_tracks.txt"
    p.write_text("TRA<SEP>SO1<SEP>Artist<SEP>Title\n" * 5, encoding="utf-16")
    with pytest.raises(IngestError, match=r"unique_tracks\.txt: the file is UTF-16-LE"):
        build_catalog(tmp_path / "catalog.lmdb", unique_tracks=p)
    assert not (tmp_path / "catalog.lmdb").exists()


def test_latin1_text_is_read_as_latin1_and_bad_ids_are_counted(tmp_path):
    p = tmp_path / "unique_tracks.txt"
    p.write_bytes(b"TR1<SEP>SO1<SEP>Bj\xf6rk<SEP>J\xf3ga\n"      # Latin-1 text: read as Latin-1
                  b"TR\xe92<SEP>SO2<SEP>A<SEP>T\n"              # Latin-1 id: skipped
                  b"TR3<SEP>SO3\x00<SEP>A<SEP>T\n"              # NUL in an id: skipped
                  b"TR4<SEP>" + b"S" * 300 + b"<SEP>A<SEP>T\n"  # id too long: skipped
                  + b"TR5<SEP>SO5<SEP>" + b"x" * (70 << 10) + b"<SEP>T\n"  # line too long
                  + "TR6<SEP>SO6<SEP>Sigur Rós<SEP>Hoppípolla\n".encode())
    db = _songs_db(tmp_path / "track_metadata.db", [("TR7", "SO7", b"Caf\xe9", "X", 1.0, 2000)])
    report = build_catalog(tmp_path / "catalog.lmdb", unique_tracks=p, track_metadata=db)
    assert report.malformed == {"unique_tracks.txt": 4}
    assert [e["reason"] for e in report.examples][:4] == ["not valid UTF-8", "NUL byte in an id",
                                                          "id too long", "line too long"]
    assert report.latin1_values == {"unique_tracks.txt": 2, "track_metadata.db": 1}
    with Catalog(tmp_path / "catalog.lmdb") as cat:
        assert (cat.get("SO1")["artist"], cat.get("SO1")["title"]) == ("Björk", "Jóga")
        assert cat.get("SO6")["title"] == "Hoppípolla" and cat.get("SO7")["title"] == "Café"
        assert sorted(s for s, _ in cat.items()) == ["SO1", "SO6", "SO7"]


def test_sid_mismatches_remove_the_wrong_track_links_and_are_reported(tmp_path, capfd):
    from pmrs.cli import main

    make_files(tmp_path)
    (tmp_path / "train_triplets.txt").write_text("u1\tSO1\t3\nu1\tSO2\t1\n")
    (tmp_path / "sid_mismatches.txt").write_text(
        "ERROR: <SO1 TRB> Björk  -  Jóga (dup)  !=  Someone Else  -  Another Song\n"
        "ERROR: <SO2 TRD> not a link the catalog has (TRD is SO3's): left alone\n"
        "a line that is not a mismatch\n", encoding="utf-8")
    assert main(["ingest", str(tmp_path), "--workdir", str(tmp_path / "work")]) == 0
    out = capfd.readouterr().out
    assert "removed 1 wrong track -> song link(s) listed in" in out
    assert "skipped 1 malformed line(s) or row(s) in sid_mismatches.txt" in out
    with Catalog(tmp_path / "work" / "catalog.lmdb") as cat:
        assert cat.song_for_track("TRB") is None and cat.song_for_track("TRA\u00b9") == "SO1"
        assert cat.song_for_track("TRD") == "SO3"
        assert cat.get("SO1")["track_ids"] == ["TRA\u00b9"]
        assert cat.get("SO1")["genre"] == "Electronic"      # (still voted by its right track)


# ---------------------------------------------------------------- issue 25: real MSD files

_TAGTRAUM_HEAD = "# MSD tagtraum genre annotations\n# TRACK_ID\tMAJORITY_GENRE\tMINORITY_GENRE\n"


def _msd_folder(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train_triplets.txt").write_text("u1\tSO1\t3\nu1\tSO2\t1\nu2\tSO3\t2\n")
    (data / "unique_tracks.txt").write_text(
        "TRA<SEP>SO1<SEP>Artist One<SEP>Title One\nTRB<SEP>SO2<SEP>Artist Two<SEP>Title Two\n"
        "TRC<SEP>SO3<SEP>Artist Three<SEP>Title Three\n", encoding="utf-8")
    return data


def _ingest_dir(tmp_path, capfd, data) -> tuple[int, str, str]:
    import logging

    from pmrs.cli import main

    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers[:] = []
    try:
        rc = main(["ingest", str(data), "--workdir", str(tmp_path / "work")])
    finally:
        root.handlers[:] = saved
    out, err = capfd.readouterr()
    return rc, out, err


@pytest.mark.parametrize("name", ["msd_tagtraum_cd1.cls", "msd_tagtraum_cd2.cls", "msd_tagtraum_cd2c.cls"])
def test_a_tagtraum_file_under_its_own_name_gives_majority_genres(tmp_path, capfd, name):
    data = _msd_folder(tmp_path)
    (data / name).write_text(_TAGTRAUM_HEAD + "TRA\tRock\tPop\nTRB\tJazz\nTRX\tBlues\n", encoding="utf-8")
    rc, out, err = _ingest_dir(tmp_path, capfd, data)
    assert rc == 0, err
    assert "2 with a genre" in out
    assert f"genres: 3 labels read from {data / name}, 2 of their tracks in the catalog" in out
    with Catalog(tmp_path / "work" / "catalog.lmdb") as cat:
        assert [cat.get(s)["genre"] for s in ("SO1", "SO2", "SO3")] == ["Rock", "Jazz", ""]


def test_with_several_tagtraum_files_cd2c_is_read_and_the_others_named(tmp_path, capfd):
    data = _msd_folder(tmp_path)
    for name, genre in (("msd_tagtraum_cd1.cls", "Vocal"), ("msd_tagtraum_cd2.cls", "Pop"),
                        ("msd_tagtraum_cd2c.cls", "Metal")):
        (data / name).write_text(_TAGTRAUM_HEAD + f"TRA\t{genre}\n", encoding="utf-8")
    rc, out, err = _ingest_dir(tmp_path, capfd, data)
    assert rc == 0, err
    assert f"labels read from {data / 'msd_tagtraum_cd2c.cls'}" in out
    assert f"not read: {data / 'msd_tagtraum_cd2.cls'}, {data / 'msd_tagtraum_cd1.cls'}" in out
    assert "reading msd_tagtraum_cd2c.cls, not msd_tagtraum_cd2.cls, msd_tagtraum_cd1.cls" in err
    with Catalog(tmp_path / "work" / "catalog.lmdb") as cat:
        assert cat.get("SO1")["genre"] == "Metal"
    report = json.loads((tmp_path / "work" / "interactions" / "ingest_report.json").read_text())
    assert report["genre_search"]["used"] == str(data / "msd_tagtraum_cd2c.cls")
    assert report["catalog"]["genre_file"] == {"file": str(data / "msd_tagtraum_cd2c.cls"), "labels": 1,
                                               "tracks_matched": 1}


def test_no_genre_file_says_which_names_were_looked_for(tmp_path, capfd):
    data = _msd_folder(tmp_path)
    rc, out, err = _ingest_dir(tmp_path, capfd, data)
    assert rc == 0, err
    assert "0 with a genre" in out
    assert ("genres: no genre file found (looked for genres.tsv, msd_tagtraum_cd2c.cls, "
            "msd_tagtraum_cd2.cls, msd_tagtraum_cd1.cls; or give --genres PATH)") in out
    assert "no genre file: looked for genres.tsv, msd_tagtraum_cd2c.cls" in err


def test_the_datasets_unknown_codes_are_counted_as_unknown_not_as_wrong_types(tmp_path, capfd):
    db = _songs_db(tmp_path / "track_metadata.db",
                   [("TR1", "SO1", "T1", "A1", -1.0, 0), ("TR2", "SO2", "T2", "A2", 201.5, -1),
                    ("TR3", "SO3", "T3", "A3", -1.0, 1999), ("TR4", "SO4", "T4", "A4", -7.0, 2001)])
    rc, out, err = _cli(tmp_path, capfd, "--triplets", str(_triplets(tmp_path)), "--track-metadata", str(db))
    assert rc == 0, err
    assert "unknown values (the dataset's -1, or year 0), kept as unknown: duration 2, year 2" in out
    assert "dropped 1 value(s) of the wrong type in track_metadata.db" in out   # -7.0 only
    assert "-1.0" not in out
    report = json.loads((tmp_path / "work" / "interactions" / "ingest_report.json").read_text())
    assert report["catalog"]["unknown_values"] == {"duration": 2, "year": 2}
    assert report["catalog"]["bad_values"] == {"track_metadata.db": 1}
    with Catalog(tmp_path / "work" / "catalog.lmdb") as cat:
        assert (cat.get("SO1")["year"], cat.get("SO1")["duration"]) == (0, 0.0)
        assert (cat.get("SO2")["year"], cat.get("SO2")["duration"]) == (0, 201.5)
        assert (cat.get("SO3")["year"], cat.get("SO3")["duration"]) == (1999, 0.0)


def test_a_mismatched_track_keeps_its_songs_title_and_artist_but_not_its_genre_or_tags(tmp_path, capfd):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train_triplets.txt").write_text("u1\tSOUMNSI12AB0182807\t3\nu1\tSOB\t1\n")
    (data / "unique_tracks.txt").write_text(
        "TRMMGKQ128F9325E10<SEP>SOUMNSI12AB0182807<SEP>Digital Underground<SEP>The Way We Swing\n"
        "TRBXYZ128F93<SEP>SOB<SEP>Artist B<SEP>Title B\n", encoding="utf-8")
    (data / "genres.tsv").write_text("TRMMGKQ128F9325E10\tRap\nTRBXYZ128F93\tRock\n", encoding="utf-8")
    (data / "sid_mismatches.txt").write_text(   # the MSD's own line shape: two spaces around the dashes
        "ERROR: <SOUMNSI12AB0182807 TRMMGKQ128F9325E10> Digital Underground  -  The Way We Swing  !=  "
        "Linkwood  -  Whats up with the Underground\n", encoding="utf-8")
    for tid, tag in (("TRMMGKQ128F9325E10", "hip hop"), ("TRBXYZ128F93", "rock")):
        leaf = data / "lastfm_train" / tid[2] / tid[3] / tid[4]
        leaf.mkdir(parents=True, exist_ok=True)
        (leaf / f"{tid}.json").write_text(json.dumps(
            {"track_id": tid, "artist": "", "title": "", "timestamp": "", "tags": [[tag, "100"]],
             "similars": []}), encoding="utf-8")
    rc, out, err = _ingest_dir(tmp_path, capfd, data)
    assert rc == 0, err
    assert "removed 1 wrong track -> song link(s)" in out
    with Catalog(tmp_path / "work" / "catalog.lmdb") as cat:
        song = cat.get("SOUMNSI12AB0182807")
        assert (song["title"], song["artist"]) == ("The Way We Swing", "Digital Underground")
        assert song["genre"] == "" and cat.tags("SOUMNSI12AB0182807") == {}
        assert cat.song_for_track("TRMMGKQ128F9325E10") is None
        assert (cat.get("SOB")["genre"], cat.tags("SOB")) == ("Rock", {"rock": 100.0})
