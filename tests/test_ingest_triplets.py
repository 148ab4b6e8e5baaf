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


def test_non_utf8_ids_and_gzip_input(tmp_path):
    import gzip

    p = tmp_path / "t.txt.gz"
    with gzip.open(p, "wb") as fh:
        fh.write(b"u\xff1\tSO1\t2\nu2\tSO2\t3\n")
    inter, rep = read_triplets(p)  # compression follows the file name, bytes pass through
    assert rep.good_lines == 2 and inter.n_users == 2
    assert list(inter.user_ids) == [b"u2", b"u\xff1"]


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
