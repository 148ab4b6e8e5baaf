"""The catalog's titles and artists as one text, for the page's song search (``contract.SONG_TEXT_FILE``
in a bundle, written by ``indexer build`` beside its catalog).

Searching a catalog for a substring song by song in Python costs a read of every entry (at the
Taste Profile's 384,546 songs: 8 s and 800 MB the first time, 0.2 s a query after); here the
titles and artists are one string searched by ``str.find`` (C's substring search), and the file
is read in a fraction of a second.

The file: UTF-8, one line per catalog song in song id order, ``title TAB artist TAB song_id``,
title and artist case-folded (``str.casefold``) with tabs and line breaks turned into spaces.
"""

from __future__ import annotations

import os
from bisect import bisect_right
from collections.abc import Iterator
from pathlib import Path

from .artifacts import tmp_path
from .catalog import Catalog


def fold(text: str) -> str:
    """How titles, artists and queries are compared: case-folded, tabs and line breaks as spaces."""
    return str(text or "").casefold().replace("\t", " ").replace("\n", " ").replace("\r", " ")


def write_song_text(catalog: str | os.PathLike, path: str | os.PathLike) -> int:
    """Write the search text of the catalog at ``catalog`` to ``path`` atomically; returns the
    songs written."""
    path = Path(path)
    tmp = tmp_path(path)
    n = 0
    try:
        with Catalog(catalog) as cat, open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            for song_id, f in cat.items():
                fh.write(f"{fold(f.get('title'))}\t{fold(f.get('artist'))}\t{song_id}\n")
                n += 1
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return n


def artists(path: str | os.PathLike) -> Iterator[tuple[str, str]]:
    """``(song_id, artist folded)`` of every line of the search text at ``path``, streamed."""
    with open(path, encoding="utf-8", newline="\n") as fh:
        for line in fh:
            _, artist, song_id = line.rstrip("\n").split("\t")
            yield song_id, artist


class SongText:
    """A bundle's search text, read once: substring search over titles and artists."""

    def __init__(self, path: str | os.PathLike):
        lines = Path(path).read_text(encoding="utf-8").split("\n")
        if lines and not lines[-1]:
            lines.pop()
        self.ids: list[str] = []
        texts: list[str] = []
        for line in lines:
            text, _, song_id = line.rpartition("\t")
            texts.append(text)
            self.ids.append(song_id)
        # "\n" + title TAB artist per song: line i starts at starts[i] (just past its "\n")
        self.blob = "\n" + "\n".join(texts) + "\n"
        self.starts: list[int] = []
        at = 1
        for t in texts:
            self.starts.append(at)
            at += len(t) + 1
        self._row = {song_id.casefold(): i for i, song_id in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def search(self, query: str, limit: int) -> tuple[list[str], list[str]]:
        """Song ids whose title or artist holds ``query`` (as :func:`fold` compares), or whose id
        it is: ``(first, rest)``, first those where it starts the title or the artist (or is the
        id), each in song id order, at most ``limit`` in all."""
        q = fold(query)
        if not q or limit <= 0:
            return [], []
        first = set(self._lines("\n" + q, limit)) | set(self._lines("\t" + q, limit))
        exact = self._row.get(q)
        if exact is not None:
            first.add(exact)
        first_rows = sorted(first)[:limit]
        rest: list[int] = []
        if len(first_rows) < limit:
            for i in self._lines(q, limit + len(first_rows)):
                if i not in first:
                    rest.append(i)
                    if len(first_rows) + len(rest) >= limit:
                        break
        return [self.ids[i] for i in first_rows], [self.ids[i] for i in rest]

    def artist(self, artist: str) -> list[str]:
        """Song ids whose artist, folded, is ``artist`` folded (every one, in song id order)."""
        a = fold(artist)
        return [self.ids[i] for i in self._lines("\t" + a + "\n", len(self.ids))] if a else []

    def _lines(self, needle: str, limit: int) -> list[int]:
        """Lines holding ``needle``, in order, at most ``limit`` (a needle starting with "\\n"
        matches at a line's start, one starting with "\\t" at its artist's)."""
        blob, find, starts = self.blob, self.blob.find, self.starts
        out: list[int] = []
        at = find(needle)
        while at >= 0 and len(out) < limit:
            line = bisect_right(starts, at + (needle[0] == "\n")) - 1
            if not out or out[-1] != line:
                out.append(line)
            nxt = blob.find("\n", at + len(needle) - (needle[-1] == "\n"))   # on to the next line
            at = find(needle, nxt) if nxt >= 0 else -1
        return out
