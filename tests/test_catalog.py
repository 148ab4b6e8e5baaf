"""``catalog.lmdb`` readers: many at once in one process share one LMDB environment (LMDB refuses
to open a file twice in a process; pmrs-web once answered 1 song page in 34 with a 500 under a
burst of page loads)."""

import threading

import pytest

from pmrs.catalog import Catalog, write_catalog


@pytest.fixture()
def catalog(tmp_path):
    path = tmp_path / "catalog.lmdb"
    songs = [(f"SO{i:016d}", {"title": f"t{i}", "artist": "a", "release": "", "year": 2000, "genre": "rock"})
             for i in range(50)]
    write_catalog(path, songs, [], {})
    return path


def test_two_readers_of_one_file_share_it_and_close_independently(catalog):
    a, b = Catalog(catalog), Catalog(catalog)
    assert a.get("SO0000000000000001")["title"] == b.get("SO0000000000000001")["title"] == "t1"
    a.close()
    assert b.get("SO0000000000000002")["title"] == "t2"     # still open for the other reader
    b.close()
    with Catalog(catalog) as c:                               # and opens again after both closed
        assert len(c) == 50


def test_a_burst_of_readers_on_many_threads_never_fails(catalog):
    errors = []

    def reader(i):
        try:
            for j in range(20):
                with Catalog(catalog) as c:
                    assert c.get(f"SO{(i + j) % 50:016d}")["title"] == f"t{(i + j) % 50}"
        except Exception as exc:   # (lmdb.Error "already open in this process" before the fix)
            errors.append(repr(exc))

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
