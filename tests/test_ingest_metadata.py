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
