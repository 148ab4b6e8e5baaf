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


def _brute_force_tagged(path, tag, limit):
    """A tag's songs as the whole catalog's tags say: heaviest first, ties by song id."""
    with Catalog(path) as c:
        pairs = sorted((-w, sid) for sid, tags in c.items_tags() for t, w in tags.items() if t == tag)
    return [(sid, -w) for w, sid in pairs[:limit]]


def test_a_tags_songs_are_read_from_the_index_heaviest_first(tmp_path):
    path = tmp_path / "catalog.lmdb"
    ids = [f"SO{i:016d}" for i in range(40)]
    songs = [(s, {"title": s, "artist": "a"}) for s in ids]
    tags = ["rock", "indie rock", "rock ", "Rock", "jazz", "ünïcode tag", "x" * 600]
    # each song named by two tracks: the union of their tags, the heavier weight of a tag wins
    lastfm = [(ids[i % 40], {t: float((i * 7 + j * 13) % 101) for j, t in enumerate(tags) if (i + j) % 3},
               None) for i in range(80)]
    write_catalog(path, songs, [], {}, lastfm=lastfm)
    with Catalog(path) as c:
        for tag in tags[:-1]:
            want = _brute_force_tagged(path, tag, 1000)
            assert want and c.tagged(tag, 1000) == want
            assert c.tagged(tag, 5) == want[:5]
        assert c.tagged("x" * 600, 10) == []          # too long a key for LMDB: not indexed, no error
        assert c.tagged("roc", 10) == [] and c.tagged("no such tag", 10) == []   # exact tags only
    # a bundle's copy of the catalog keeps the index
    from pmrs.catalog import snapshot_catalog
    snapshot_catalog(path, tmp_path / "copy.lmdb")
    with Catalog(tmp_path / "copy.lmdb") as c:
        assert c.tagged("jazz", 1000) == _brute_force_tagged(path, "jazz", 1000)


def test_a_catalog_written_before_the_tag_index_says_it_has_none(tmp_path):
    import json

    import lmdb

    path = tmp_path / "old.lmdb"
    env = lmdb.open(str(path), subdir=False, lock=False, max_dbs=5)
    songs, tracks, meta, tags = (env.open_db(n) for n in (b"songs", b"tracks", b"meta", b"tags"))
    with env.begin(write=True) as txn:
        txn.put(b"SO1", json.dumps({"title": "one"}).encode(), db=songs)
        txn.put(b"SO1", json.dumps({"rock": 50}).encode(), db=tags)
        txn.put(b"info", b"{}", db=meta)
    env.close()
    with Catalog(path) as c:
        assert c.tagged("rock", 10) is None and c.tags("SO1") == {"rock": 50}
