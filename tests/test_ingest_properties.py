"""Property-based attacks on the ingest readers: arbitrary bytes and lines mixed into good files.

The triplet reader is checked against a plain-Python reference of the stated rules (pmrs.ingest.rawtext
and read_triplets' docstring): every good line lands with its count, every bad line is counted under
the reason the reference gives, on both read paths (pyarrow as is, and the line filter).
"""

from __future__ import annotations

from collections import Counter

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from pmrs.ingest import triplets as tr  # noqa: E402
from pmrs.ingest.errors import IngestError  # noqa: E402
from pmrs.ingest.rawtext import (EMPTY_ID, ID_TOO_LONG, MAX_ID_BYTES, MAX_LINE_BYTES, SPACE_AT_END,  # noqa: E402
                                 NOT_UTF8, NUL_IN_ID, TOO_LONG, sniff_encoding)

FAST = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])
_WS = b" \t\n\r\x0b\x0c"
_ID_ORDER = (NUL_IN_ID, ID_TOO_LONG, EMPTY_ID, SPACE_AT_END)  # after "not valid UTF-8", which is per line


def reference(lines: list[bytes]) -> tuple[Counter, Counter, int, dict[int, str]]:
    """``(plays per (user, song), malformed per reason, blank lines, reason per bad line)``."""
    plays: Counter = Counter()
    reasons: Counter = Counter()
    blank = 0
    where: dict[int, str] = {}
    for number, line in enumerate(lines, 1):
        reason = _reason(line)
        if reason == "blank":
            blank += 1
        elif reason is None:
            u, s, c = (f.strip(_WS) for f in line.split(b"\t"))
            plays[(u.decode(), s.decode())] += int(c)
        else:
            reasons[reason] += 1
            where[number] = reason
    return plays, reasons, blank, where


def _reason(line: bytes) -> str | None:
    if len(line) > MAX_LINE_BYTES:
        return TOO_LONG
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return NOT_UTF8
    if line == b"":
        return "blank"
    fields = line.split(b"\t")
    if len(fields) != 3:
        return tr.WRONG_FIELDS
    u, s, c = (f.strip(_WS) for f in fields)
    if not (u or s or c):
        return "blank"
    problems = set()
    for ident in (u, s):
        if not ident:
            problems.add(EMPTY_ID)
        elif b"\x00" in ident:
            problems.add(NUL_IN_ID)
        elif len(ident) > MAX_ID_BYTES:
            problems.add(ID_TOO_LONG)
        elif ident.decode().strip() != ident.decode():   # Unicode whitespace at an end (U+00A0)
            problems.add(SPACE_AT_END)
    for p in _ID_ORDER:
        if p in problems:
            return p
    if not (c.isdigit() and len(c) <= tr.MAX_COUNT_DIGITS and 0 < int(c) <= tr.MAX_COUNT):
        return tr.BAD_COUNT
    return None


ids = st.text(st.characters(blacklist_characters="\t\n\r\x00\x0b\x0c\x1c\x1d\x1e\x1f\x85\u2028\u2029",
                            blacklist_categories=("Cs",)), min_size=1, max_size=12).map(str.strip) \
    .filter(bool)
good_lines = st.builds(lambda u, s, c, pad: f"{pad}{u}\t{s}{pad}\t{pad}{c}".encode(),
                       st.sampled_from(["u1", "u2", "ü3", "b80344d063b5ccb3212f76538f3d9e43d87dca9e"]) | ids,
                       st.sampled_from(["SOA", "SOB", "SO\u00e9"]) | ids,
                       st.integers(1, 5000), st.sampled_from(["", " ", "  "]))
no_eol = st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"").replace(b"\r", b""))
junk_lines = st.one_of(
    no_eol,                                                        # arbitrary bytes
    st.text(max_size=30).map(lambda t: t.replace("\n", "").replace("\r", "").encode()),
    st.builds(lambda a, b, c: b"\t".join([a, b, c]), no_eol, no_eol, no_eol),  # three junk fields
    st.sampled_from([b"u\xe9\tSO1\t1", b"u\xff2\tSO2", b"u1\tSO1\t0x10", b"u1\tSO1\t+5",
                     b"u1\tSO1\t1e3", b"u1\tSO1\t0", b"u1\tSO1\t-3", b"u\x00\tSO1\t1",
                     b"u1\tSO1\x00\t2", b"u1\tSO1\t99999999999", b"u1\tSO1\t\xd9\xa3",
                     b"", b" ", b"\t\t", b"u1\tSO1\t1\t", b"x" * (MAX_ID_BYTES + 1) + b"\tS\t1",
                     b"u\tS\t" + b"1" * MAX_LINE_BYTES, b"y" * (MAX_LINE_BYTES - 4) + b"\tS\t1",
                     b"y" * (MAX_LINE_BYTES - 3) + b"\tS\t1", b"z" * (MAX_LINE_BYTES + 5) + b"\xff"]),
)
files = st.tuples(good_lines, st.lists(st.one_of(good_lines, junk_lines), max_size=25),
                  st.sampled_from([b"\n", b"\r\n"]), st.booleans())


def _write(tmp_path, first: bytes, rest: list[bytes], eol: bytes, final_eol: bool):
    lines = [first, *rest]
    data = eol.join(lines) + (eol if final_eol else b"")
    if not final_eol and lines[-1] == b"":
        lines.pop()  # "...\n" then nothing: no last line
    path = tmp_path / "triplets.txt"
    path.write_bytes(data)
    return path, lines


def _read(path, force_filter: bool, monkeypatch):
    cfg = tr.IngestConfig(max_bad_fraction=1.0)
    if not force_filter:
        return tr.read_triplets(path, cfg)
    real = tr._parse

    def parse(p, c, threaded, source=None):
        if source is None:
            raise tr._Unreadable("forced for the test")
        return real(p, c, threaded, source)

    with monkeypatch.context() as m:
        m.setattr(tr, "_parse", parse)
        return tr.read_triplets(path, cfg)


def _dense(inter) -> Counter:
    m = inter.matrix.tocoo()
    return Counter({(inter.user_ids[r].decode(), inter.song_ids[c].decode()): int(v)
                    for r, c, v in zip(m.row, m.col, m.data)})


@FAST
@given(files)
def test_every_good_line_lands_and_bad_lines_are_counted(tmp_path_factory, monkeypatch, spec):
    tmp_path = tmp_path_factory.mktemp("prop")
    path, lines = _write(tmp_path, *spec)
    try:
        sniff_encoding(path, path.read_bytes()[:4096])
    except IngestError:
        assume(False)
    plays, reasons, blank, where = reference(lines)
    reports = []
    for force in (False, True):
        inter, rep = _read(path, force, monkeypatch)
        assert _dense(inter) == plays
        assert rep.malformed == dict(reasons)
        assert rep.blank_lines == blank and rep.lines == len(lines)
        assert rep.good_lines == len(lines) - blank - sum(reasons.values())
        for ex in rep.examples:
            assert where.get(ex["line"]) == ex["reason"], ex
        for ids in (inter.user_ids, inter.song_ids):  # ids are UTF-8 text, for the server
            for i in ids:
                i.decode("utf-8")
        d = rep.as_dict()
        reports.append({k: d[k] for k in ("lines", "good_lines", "blank_lines", "malformed",
                                          "malformed_lines", "users", "songs", "total_plays")})
    assert reports[0] == reports[1]


# ---------------------------------------------------------------- metadata readers


def _id_ok(raw: bytes) -> bool:
    """The id rule (pmrs/ids.py) from its description: UTF-8, not empty, no NUL, at most
    MAX_ID_BYTES, no whitespace at either end (any Unicode whitespace, such as U+00A0)."""
    if not raw or b"\x00" in raw or len(raw) > MAX_ID_BYTES:
        return False
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return text == text.strip()


def _as_text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


meta_text = st.text(st.characters(blacklist_characters="\n\r<\t", blacklist_categories=("Cs",)),
                    max_size=10)
meta_ids = ids.map(lambda x: x.replace("<", "").strip()).filter(bool)
good_track_lines = st.builds(lambda t, s, a, ti: f"{t}<SEP>{s}<SEP>{a}<SEP>{ti}".encode(),
                             st.sampled_from(["TRA", "TRB", "TRC"]) | meta_ids,
                             st.sampled_from(["SO1", "SO2"]) | meta_ids, meta_text, meta_text)
track_junk = st.one_of(
    no_eol,
    st.builds(lambda parts: b"<SEP>".join(parts), st.lists(no_eol, min_size=2, max_size=5)),
    st.sampled_from([b"TR\xe9<SEP>SO1<SEP>A<SEP>T", b"TR1<SEP>SO\x00<SEP>A<SEP>T", b"<SEP><SEP><SEP>",
                     b"TRZ<SEP>SOZ<SEP>Bj\xf6rk<SEP>\xff", b"x" * (MAX_LINE_BYTES + 10),
                     b"TRY<SEP>" + b"S" * (MAX_ID_BYTES + 1) + b"<SEP>A<SEP>T"]),
)


def unique_tracks_reference(lines: list[bytes]) -> tuple[dict, dict, int]:
    """``({song: (artist, title)}, {track: song}, malformed lines)``."""
    songs: dict = {}
    tracks: dict = {}
    bad = 0
    for line in lines:
        line = line.removesuffix(b"\r")
        if len(line) > MAX_LINE_BYTES:
            bad += 1
            continue
        if not line.strip():
            continue
        parts = line.split(b"<SEP>")
        if len(parts) != 4 or not all(_id_ok(p.strip()) for p in parts[:2]):
            bad += 1
            continue
        t, s, a, ti = (p.strip() for p in parts)
        t, s = t.decode(), s.decode()
        tracks.setdefault(t, s)
        old = songs.get(s, ("", ""))
        songs[s] = (old[0] or _as_text(a), old[1] or _as_text(ti))
    return songs, tracks, bad


@FAST
@given(good_track_lines, st.lists(st.one_of(good_track_lines, track_junk), max_size=20))
def test_unique_tracks_every_good_line_lands(tmp_path_factory, first, rest):
    from pmrs.catalog import Catalog
    from pmrs.ingest.metadata import build_catalog

    tmp_path = tmp_path_factory.mktemp("ut")
    path = tmp_path / "unique_tracks.txt"
    data = b"\n".join([first, *rest]) + b"\n"
    path.write_bytes(data)
    try:
        sniff_encoding(path, data[:4096])
    except IngestError:
        assume(False)
    songs, tracks, bad = unique_tracks_reference([first, *rest])
    report = build_catalog(tmp_path / "catalog.lmdb", unique_tracks=path)
    assert report.malformed.get("unique_tracks.txt", 0) == bad
    with Catalog(tmp_path / "catalog.lmdb") as cat:
        assert dict(cat.tracks()) == tracks
        assert {s: (f["artist"], f["title"]) for s, f in cat.items()} == songs


sql_values = st.one_of(st.none(), st.integers(-2**63, 2**63 - 1), st.floats(), st.text(max_size=8),
                       st.binary(max_size=8), st.sampled_from(["1999", "unknown", " 7 ", "1e3", "-1"]))
good_rows = st.tuples(st.sampled_from(["TRA", "TRB", "TRC"]), st.sampled_from(["SO1", "SO2"]),
                      meta_text, st.integers(0, 2100), st.floats(0, 1000))
any_rows = st.tuples(sql_values, sql_values, sql_values, sql_values, sql_values)


@FAST
@given(good_rows, st.lists(st.one_of(good_rows, any_rows), max_size=15))
def test_track_metadata_never_crashes_and_good_rows_land(tmp_path_factory, first, rest):
    import math
    import sqlite3

    from pmrs.catalog import Catalog
    from pmrs.ingest.metadata import build_catalog

    tmp_path = tmp_path_factory.mktemp("tm")
    db = tmp_path / "track_metadata.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE songs (track_id, song_id, title, year, duration)")  # no type affinity
    con.executemany("INSERT INTO songs VALUES (?, ?, ?, ?, ?)", [first, *rest])
    con.commit()
    con.close()

    def id_of(v):
        if isinstance(v, str):
            v = v.encode("utf-8", "surrogatepass")
        return v.strip().decode() if isinstance(v, bytes) and _id_ok(v.strip()) else None

    tracks: dict = {}
    bad = 0
    for row in [first, *rest]:
        t, s = id_of(row[0]), id_of(row[1])
        if t is None or s is None:
            bad += 1
            continue
        tracks.setdefault(t, s)
    report = build_catalog(tmp_path / "catalog.lmdb", track_metadata=db)
    assert report.malformed.get("track_metadata.db", 0) == bad
    with Catalog(tmp_path / "catalog.lmdb") as cat:
        assert dict(cat.tracks()) == tracks
        for _, fields in cat.items():
            assert isinstance(fields["year"], int) and fields["year"] >= 0
            assert isinstance(fields["duration"], float) and math.isfinite(fields["duration"])
            assert isinstance(fields["title"], str)


@FAST
@given(st.lists(st.one_of(no_eol, st.sampled_from([b"ok\r", b"\xff", b"a" * (MAX_LINE_BYTES + 1),
                                                   b"b" * MAX_LINE_BYTES + b"\r",
                                                   b"c" * 3 * MAX_LINE_BYTES])), max_size=12),
       st.booleans(), st.integers(1, 3 * MAX_LINE_BYTES))
def test_clean_lines_at_any_block_size(lines, final_eol, block):
    """The line filter's output and its record of removed lines do not depend on where its read
    blocks fall."""
    import io

    from pmrs.ingest.rawtext import CleanLines

    ends = [b"\n"] * len(lines)
    if lines and not final_eol:
        ends[-1] = b""
        if lines[-1] == b"":  # "...\n" then nothing: no last line
            lines, ends = lines[:-1], ends[:-1]
    data = b"".join(line + end for line, end in zip(lines, ends))
    expected, removed = b"", []
    for number, (line, end) in enumerate(zip(lines, ends), 1):
        body = line.removesuffix(b"\r")
        reason = TOO_LONG if len(body) > MAX_LINE_BYTES else None
        if reason is None:
            try:
                body.decode("utf-8")
            except UnicodeDecodeError:
                reason = NOT_UTF8
        if reason:
            removed.append((number, reason))
        else:
            expected += line + end
    stream = CleanLines(io.BytesIO(data), block_bytes=block, max_examples=100)
    assert stream.read() == expected
    assert list(stream.removed) == [n for n, _ in removed]
    assert [(n, r) for n, r, _ in stream.examples] == removed
