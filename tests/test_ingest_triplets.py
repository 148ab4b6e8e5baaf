import numpy as np
import pytest

from pmrs.ingest.triplets import IngestConfig, IngestError, read_triplets


def write(tmp_path, data: bytes, name="triplets.txt"):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def dense(inter):
    """{(user, song): count} from an Interactions, for order-free comparisons."""
    m = inter.matrix.tocoo()
    return {(inter.user_ids[r].decode(), inter.song_ids[c].decode()): int(v)
            for r, c, v in zip(m.row, m.col, m.data)}


def test_clean_file_round_trip(tmp_path):
    rows = [("b80344d063b5ccb3212f76538f3d9e43d87dca9e", "SOAKIMP12A8C130995", 1),
            ("b80344d063b5ccb3212f76538f3d9e43d87dca9e", "SOAPDEY12A81C210A9", 3),
            ("85c1f87fea955d09b4bec2e36aee110927aedf9a", "SOAKIMP12A8C130995", 12)]
    p = write(tmp_path, "".join(f"{u}\t{s}\t{c}\n" for u, s, c in rows).encode())
    inter, rep = read_triplets(p)
    assert dense(inter) == {(u, s): c for u, s, c in rows}
    assert rep.lines == 3 and rep.good_lines == 3 and rep.malformed_lines == 0
    assert list(inter.user_ids) == sorted(inter.user_ids)  # sorted ids: searchsorted lookups work
    assert inter.user_index("85c1f87fea955d09b4bec2e36aee110927aedf9a") == 0
    assert inter.matrix.dtype == np.int32 and rep.total_plays == 16


def test_messy_lines_are_counted_reported_and_good_lines_land(tmp_path):
    lines = [
        "u1\tSOA\t3",          # 1 good
        "u2\tSOB\t1",          # 2 good
        "only-one-field",      # 3 wrong field count
        "",                    # 4 blank: not an error
        "u3\tSOC\tx",          # 5 non-integer count
        "u4\t\t2",             # 6 empty song id
        "u5\tSOD\t1\textra",   # 7 wrong field count
        "u6\tSOE\t-1",         # 8 negative count
        "u7\tSOF\t 4 ",        # 9 good (whitespace around the count)
        "u8\tSOG\t0",          # 10 zero count
        "u9\tSOH\t2.5",        # 11 non-integer count
        "u1\tSOA\t2",          # 12 good: duplicate pair, summed
        "u10\tSOI\t99999999999",  # 13 count out of range
        "\tSOJ\t1",            # 14 empty user id
        "u11\tSOK\t7",         # 15 good
    ]
    p = write(tmp_path, ("\n".join(lines) + "\n").encode())
    inter, rep = read_triplets(p, IngestConfig(max_bad_fraction=0.9))
    assert dense(inter) == {("u1", "SOA"): 5, ("u2", "SOB"): 1, ("u7", "SOF"): 4, ("u11", "SOK"): 7}
    assert rep.lines == 15 and rep.blank_lines == 1 and rep.good_lines == 5
    assert rep.malformed == {"wrong field count": 2, "empty id": 2,
                             "play count not a positive integer": 5}
    assert rep.duplicate_pairs_merged == 1
    by_line = {e["line"]: e["reason"] for e in rep.as_dict()["examples"]}
    assert by_line[3] == by_line[7] == "wrong field count"
    assert by_line[5] == by_line[8] == by_line[10] == by_line[11] == by_line[13] \
        == "play count not a positive integer"
    assert by_line[6] == by_line[14] == "empty id"


def test_crlf_and_bom(tmp_path):
    p = write(tmp_path, b"\xef\xbb\xbfuA\tSO1\t2\r\nuB\tSO2\t5\r\n")
    inter, rep = read_triplets(p)
    assert dense(inter) == {("uA", "SO1"): 2, ("uB", "SO2"): 5}
    assert rep.malformed_lines == 0


def test_ids_with_surrounding_spaces_merge(tmp_path):
    p = write(tmp_path, b"uA\tSO1\t2\nuA \t SO1\t3\n")
    inter, _ = read_triplets(p)
    assert dense(inter) == {("uA", "SO1"): 5}


def test_ids_with_other_unicode_whitespace_at_an_end_are_refused_as_live_writes_are(tmp_path):
    """A no-break space (U+00A0) or an em space at an end cannot be an id (pmrs.ids): a file's
    line with one is counted, as RecordPlays refuses it."""
    from pmrs.ids import SPACE_AT_END, id_problem

    p = write(tmp_path, "uA\tSO1\t2\nuB\u00a0\tSO1\t1\nuC\t\u2003SO2\t1\nuD\tSO2\t4\n".encode())
    inter, report = read_triplets(p)
    assert dense(inter) == {("uA", "SO1"): 2, ("uD", "SO2"): 4}
    assert report.malformed == {SPACE_AT_END: 2}
    assert id_problem("uB\u00a0") == SPACE_AT_END


def test_last_line_without_newline_and_quotes_are_data(tmp_path):
    p = write(tmp_path, b'"u1\tSO"1\t2\nu2\tSO2\t1')
    inter, _ = read_triplets(p)
    assert dense(inter) == {('"u1', 'SO"1'): 2, ("u2", "SO2"): 1}


def test_mostly_garbage_fails_clearly(tmp_path):
    p = write(tmp_path, b"".join(b"user,song,%d\n" % i for i in range(50)) + b"u\tS\t1\n")
    with pytest.raises(IngestError, match="mostly malformed"):
        read_triplets(p)


def test_comma_separated_file_fails_fast(tmp_path):
    # every line has one field for a tab parser: the reader aborts early with a clear message
    p = write(tmp_path, b"".join(b"user%d,song%d,%d\n" % (i, i, i + 1) for i in range(30000)))
    with pytest.raises(IngestError, match="3 tab-separated fields"):
        read_triplets(p)


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(IngestError, match="no valid triplet"):
        read_triplets(write(tmp_path, b"\n\n"))
    with pytest.raises(IngestError, match="empty"):
        read_triplets(write(tmp_path, b"", name="zero.txt"))
    with pytest.raises(IngestError, match="not found"):
        read_triplets(tmp_path / "nope.txt")


def test_min_filters_reach_a_fixed_point(tmp_path):
    # u3 has one song; dropping it leaves SO3 with one user, which must then go too.
    lines = ["u1\tSO1\t1", "u1\tSO2\t1", "u2\tSO1\t1", "u2\tSO2\t1", "u2\tSO3\t1", "u3\tSO3\t1"]
    p = write(tmp_path, ("\n".join(lines) + "\n").encode())
    inter, rep = read_triplets(p, IngestConfig(min_songs_per_user=2, min_users_per_song=2))
    assert dense(inter) == {("u1", "SO1"): 1, ("u1", "SO2"): 1, ("u2", "SO1"): 1, ("u2", "SO2"): 1}
    assert (rep.filtered_users, rep.filtered_songs, rep.filtered_pairs) == (1, 1, 2)


def test_matches_pandas_on_a_generated_file(tmp_path):
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(3)
    n = 5000
    users = [f"{x:040x}" for x in rng.integers(0, 2**62, size=300)]
    songs = [f"SO{x:016X}" for x in rng.integers(0, 2**62, size=200)]
    u = rng.integers(0, 300, n)
    s = rng.integers(0, 200, n)
    c = rng.integers(1, 50, n)
    p = write(tmp_path, "".join(f"{users[a]}\t{songs[b]}\t{k}\n" for a, b, k in zip(u, s, c)).encode())
    inter, rep = read_triplets(p)
    df = pd.read_csv(p, sep="\t", header=None, names=["u", "s", "c"]).groupby(["u", "s"])["c"].sum()
    assert dense(inter) == {k: int(v) for k, v in df.items()}
    assert rep.duplicate_pairs_merged == n - len(df)


def test_non_utf8_ids_are_skipped_and_gzip_input(tmp_path):
    import gzip

    p = tmp_path / "t.txt.gz"
    with gzip.open(p, "wb") as fh:
        fh.write(b"u\xff1\tSO1\t2\nu2\tSO2\t3\nu3\tSO\xe9\t1\n")
    inter, rep = read_triplets(p, IngestConfig(max_bad_fraction=0.9))  # compression by file name
    assert rep.good_lines == 1 and list(inter.user_ids) == [b"u2"]
    assert rep.malformed == {"not valid UTF-8": 2}
    assert [(e["line"], e["text"]) for e in rep.as_dict()["examples"]] == [
        (1, "u\\xff1\tSO1\t2"), (3, "u3\tSO\\xe9\t1")]


# ---------------------------------------------------------------- issue 10, item 3 and 4 cases


def _cli_ingest(tmp_path, capfd, *args) -> tuple[int, str, str]:
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


def test_bad_field_count_line_holding_a_non_utf8_byte_is_skipped_without_a_traceback(tmp_path, capfd):
    p = write(tmp_path, b"u1\tSO1\t1\nu\xff2\tSO2\nu3\tSO3\t2\n")
    rc, out, err = _cli_ingest(tmp_path, capfd, "--triplets", str(p))
    assert rc == 0 and "Traceback" not in err and "UnicodeDecodeError" not in err
    assert "skipped 1 line(s): not valid UTF-8" in out and "line 2" in out
    inter, rep = read_triplets(p)
    assert dense(inter) == {("u1", "SO1"): 1, ("u3", "SO3"): 2}
    assert rep.lines == 3 and rep.malformed == {"not valid UTF-8": 1}


def test_latin1_id_on_a_line_with_a_bad_count_is_counted(tmp_path, capfd):
    p = write(tmp_path, b"u1\tSO1\t1\nu\xe92\tSO2\tx\nu3\tSO3\t2\n")
    rc, out, err = _cli_ingest(tmp_path, capfd, "--triplets", str(p))
    assert rc == 0 and "Traceback" not in err
    _, rep = read_triplets(p)
    assert rep.malformed == {"not valid UTF-8": 1} and rep.good_lines == 2
    assert rep.examples == [{"line": 2, "reason": "not valid UTF-8", "text": "u\\xe92\tSO2\tx"}]


def test_latin1_ids_on_good_lines_never_reach_the_store(tmp_path):
    from pmrs.interactions import Interactions

    p = write(tmp_path, "u1\tSO1\t1\nBj\u00f6rk\tSO2\t2\n".encode() + b"Bj\xf6rk\tSO3\t4\n")
    from pmrs.ingest import ingest

    ingest(None, tmp_path / "w", triplets=p)
    inter = Interactions.load(tmp_path / "w" / "interactions")
    assert [u.decode("utf-8") for u in inter.user_ids] == ["Bj\u00f6rk", "u1"]  # all UTF-8 text
    assert inter.n_songs == 2


def test_a_50_mb_line_does_not_reject_the_file(tmp_path):
    from pmrs.ingest.rawtext import MAX_LINE_BYTES

    p = tmp_path / "t.txt"
    with p.open("wb") as fh:
        fh.write(b"u1\tSO1\t1\n")
        fh.write(b"x" * (50 << 20) + b"\tSO2\t1\n")
        fh.write(b"u2\tSO2\t3\n" + b"y" * (MAX_LINE_BYTES + 1) + b"\tS\t1\r\nu3\tSO3\t4")
    inter, rep = read_triplets(p)
    assert dense(inter) == {("u1", "SO1"): 1, ("u2", "SO2"): 3, ("u3", "SO3"): 4}
    assert rep.lines == 5 and rep.malformed == {"line too long": 2}
    assert [e["line"] for e in rep.as_dict()["examples"]] == [2, 4]


def test_overlong_lines_within_a_parse_block_get_the_same_reason(tmp_path):
    from pmrs.ingest.rawtext import MAX_LINE_BYTES

    long_id = b"y" * (MAX_LINE_BYTES - 4)          # a line of exactly MAX_LINE_BYTES: kept
    p = write(tmp_path, b"u1\tSO1\t1\n" + long_id[:300] + b"\tS\t1\n" + b"z" * MAX_LINE_BYTES
              + b"\tS\t1\n" + b"q\t" + b"w" * MAX_LINE_BYTES + b"\n" + long_id + b"\tS\t1\n")
    inter, rep = read_triplets(p, IngestConfig(max_bad_fraction=0.9))
    assert rep.malformed == {"line too long": 2, "id too long": 2}
    assert {e["line"]: e["reason"] for e in rep.examples} == {
        2: "id too long", 3: "line too long", 4: "line too long", 5: "id too long"}
    assert dense(inter) == {("u1", "SO1"): 1}


def test_counts_are_decimal_digits_only(tmp_path):
    p = write(tmp_path, "u1\tSO1\t0x10\nu1\tSO2\t+5\nu1\tSO3\t1e3\nu1\tSO4\t\u0661\u0662\n"
              "u1\tSO5\t 12 \nu1\tSO6\t0012\nu1\tSO7\t00000000012\nu1\tSO8\t0X1f\n".encode())
    inter, rep = read_triplets(p, IngestConfig(max_bad_fraction=0.9))
    assert dense(inter) == {("u1", "SO5"): 12, ("u1", "SO6"): 12}
    assert rep.malformed == {"play count not a positive integer": 6}
    p = write(tmp_path, b"u1\tSO1\t0x10\nu1\tSO2\t2\nu1\tSO3\t3\n", name="t2.txt")
    inter, rep = read_triplets(p)  # the one-kernel path for a column without whitespace
    assert dense(inter) == {("u1", "SO2"): 2, ("u1", "SO3"): 3}
    assert rep.examples[0]["line"] == 1


def test_nul_in_an_id_is_malformed_and_ids_differing_by_nul_are_not_merged(tmp_path):
    p = write(tmp_path, b"u1\tSO1\t1\nu1\x00\tSO1\t5\nu1\tSO1\x00\t7\nu1\tS\x00O1\t9\nu2\tSO1\t2\n")
    inter, rep = read_triplets(p, IngestConfig(max_bad_fraction=0.9))
    assert dense(inter) == {("u1", "SO1"): 1, ("u2", "SO1"): 2}
    assert rep.malformed == {"NUL byte in an id": 3}
    assert sorted(e["line"] for e in rep.examples) == [2, 3, 4]


@pytest.mark.parametrize("encoding, bom", [("utf-16", True), ("utf-16-be", False),
                                           ("utf-16-le", False), ("utf-32", True)])
def test_utf16_and_utf32_files_get_an_error_naming_file_and_encoding(tmp_path, encoding, bom):
    text = "".join(f"user{i}\tSO{i}\t{i + 1}\n" for i in range(20))
    p = write(tmp_path, text.encode(encoding), name="t16.txt")
    with pytest.raises(IngestError, match=r"t16\.txt.*UTF-(16|32)") as e:
        read_triplets(p)
    assert ("byte-order mark" in str(e.value)) == bom and "iconv" in str(e.value)


def test_a_directory_or_unreadable_file_is_a_clear_error(tmp_path, capfd):
    (tmp_path / "dir").mkdir()
    rc, _, err = _cli_ingest(tmp_path, capfd, "--triplets", str(tmp_path / "dir"))
    assert rc == 2 and "is a directory" in err and str(tmp_path / "dir") in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_id_lookups_agree_and_reject_keys_wider_than_the_ids():
    from pmrs.interactions import find, lookup, lookup_many

    ids = np.array(sorted([b"a", b"abc", b"b", b"zz"]), dtype="S3")
    keys = ["a", "abc", "b", "zz", "ab", "abcd", "zzz", b"b", "0"]
    many = lookup_many(ids, keys).tolist()
    assert many == [0, 1, 2, 3, -1, -1, -1, 2, -1]
    assert [find(ids, k) for k in keys] == many
    assert lookup(ids, "zz") == 3
    with pytest.raises(KeyError):
        lookup(ids, "abcd")                       # wider than the ids: absent, not a cast
    assert find(np.array([], dtype="S3"), "a") == -1


@pytest.mark.parametrize("bad_line", [b"", b"u\xff\tSO\n"])  # fast path / line-filter path
def test_a_truncated_gzip_file_is_a_clear_error(tmp_path, bad_line):
    import gzip
    import random

    rng = random.Random(1)
    good = b"".join(b"u%d\tS%d\t%d\n" % (rng.randrange(10**9), rng.randrange(10**9), rng.randrange(1, 9))
                    for _ in range(50_000))
    data = gzip.compress(good[:len(good) // 2] + bad_line + good[len(good) // 2:])
    p = write(tmp_path, data[:int(len(data) * 0.8)], name="t.txt.gz")
    with pytest.raises(IngestError, match=r"t\.txt\.gz: cannot read: .*[Tt]runcated"):
        read_triplets(p)
