"""The page's song search over a bundle's search text (``pmrs.songtext``) against the search it
replaces: every catalog song's title and artist, case-folded, scanned in song id order."""

import random

import pytest

from pmrs.catalog import write_catalog
from pmrs.songtext import SongText, write_song_text

WORDS = ["love", "Love", "night", "the", "ß", "STRASSE", "Über", "a", "zz", "so", "SOA", "ǅ"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("songtext")
    rng = random.Random(0)
    songs = []
    for i in range(3000):
        sid = f"SO{rng.randrange(16 ** 6):06X}{i:010d}"
        title = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(0, 4)))
        artist = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(0, 3)))
        songs.append((sid, {"title": title, "artist": artist} if i % 50 else {}))   # some without fields
    songs.sort()
    write_catalog(d / "catalog.lmdb", songs, [], {})
    assert write_song_text(d / "catalog.lmdb", d / "song_text.txt") == len(songs)
    return songs, SongText(d / "song_text.txt")


def _scan(songs, query, limit):
    """The search as the page did it: songs in id order, those where the query starts the title or
    the artist (or is the id) first, stopping once that group is full."""
    q = query.casefold()
    first, rest = [], []
    for sid, f in songs:
        title, artist = str(f.get("title") or "").casefold(), str(f.get("artist") or "").casefold()
        if q in title or q in artist or q == sid.casefold():
            (first if title.startswith(q) or artist.startswith(q) or q == sid.casefold() else rest).append(sid)
            if len(first) >= limit:
                break
    return (first + rest)[:limit]


@pytest.mark.parametrize("limit", [1, 5, 20, 200])
def test_search_finds_what_the_scan_found_in_its_order(world, limit):
    songs, text = world
    queries = ["love", "lo", "the", "ß", "ss", "strasse", "über", "a", "zz", "so", "soa", "ǆ", "e n",
               "night love", "x", songs[5][0], songs[7][0].lower()]
    for query in queries:
        first, rest = text.search(query, limit)
        assert (first + rest)[:limit] == _scan(songs, query, limit), query
        assert len(first) + len(rest) <= limit


def test_an_artists_songs_are_those_whose_artist_folds_the_same(world):
    songs, text = world
    for artist in ("love", "LOVE", "the night", "zz so", "nobody"):
        want = [sid for sid, f in songs if str(f.get("artist") or "").casefold() == artist.casefold()]
        assert text.artist(artist) == want
    assert text.artist("love") and text.artist("") == []
