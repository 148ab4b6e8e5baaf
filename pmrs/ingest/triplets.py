"""Taste Profile triplets (``user_id<TAB>song_id<TAB>play_count``) into a CSR play-count matrix.

pyarrow's CSV reader does the parsing and dictionary-encodes both id columns while it parses, so
the ids are never materialised as 48M Python or Arrow strings; only the distinct ids are. Lines are
then validated column-wise with Arrow compute kernels, ids are ranked in sorted order (so that
``np.searchsorted`` on the stored id arrays maps an id to its row), and scipy sums duplicate
(user, song) pairs while building the CSR matrix.

Bad lines never abort the run: each is counted under a reason and skipped, the first few are kept
with their line numbers for the report, and every good line still lands. A file that is mostly
garbage (by default more than half of its lines) fails with :class:`IngestError` instead. The
rules for lines and ids (length limits, UTF-8, no NUL) are those of :mod:`pmrs.ingest.rawtext`.

Two paths. The fast path hands the file to pyarrow as it is; ids and counts are then checked on
the (small) id dictionaries and with Arrow kernels. Only when pyarrow itself reports an error (a
line longer than a parse block, a wrong field count on a line that is not UTF-8) is the file read
again through :class:`~pmrs.ingest.rawtext.CleanLines`, which drops the lines that are too long
or not UTF-8 before pyarrow sees them. Both paths give the same report.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import scipy.sparse as sp

from ..interactions import MAX_COUNT, Interactions, capped_counts
from .aggregate import MIN_PLAY_SECONDS
from .errors import IngestError
from .rawtext import (EMPTY_ID, ID_TOO_LONG, MAX_ID_BYTES, MAX_LINE_BYTES, NOT_UTF8, NUL_IN_ID, SPACE_AT_END,
                      TOO_LONG, CleanLines, check_input_file, open_stream, quote, read_head,
                      sniff_encoding)

log = logging.getLogger(__name__)

_EXAMPLES = 10
_ABORT_AFTER = 10_000  # field-count errors seen before the "mostly garbage" check may abort the read


__all__ = ["IngestConfig", "IngestError", "TripletReport", "read_triplets", "MAX_COUNT"]

WRONG_FIELDS = "wrong field count"
BAD_COUNT = "play count not a positive integer"
#: Longest play count accepted, in characters (ASCII digits only: no sign, no ``0x``, no ``1e3``).
MAX_COUNT_DIGITS = 10
_EXPECTED = "expected user_id<TAB>song_id<TAB>play_count"

# Why a parsed row is rejected, most important first (a row gets the first that applies, in the
# order the line filter would find them, so both read paths give the same reasons).
_R_TOO_LONG, _R_UTF8, _R_NUL, _R_ID_LONG, _R_BLANK, _R_EMPTY, _R_SPACE, _R_COUNT, _R_OK = range(9)
_REASON = {_R_TOO_LONG: TOO_LONG, _R_UTF8: NOT_UTF8, _R_NUL: NUL_IN_ID, _R_ID_LONG: ID_TOO_LONG,
           _R_EMPTY: EMPTY_ID, _R_SPACE: SPACE_AT_END, _R_COUNT: BAD_COUNT}


@dataclass(frozen=True)
class IngestConfig:
    """Settings for ``pmrs ingest`` (``[ingest]`` in a TOML config).

    lastfm_max_similars: Last.fm similar songs kept per song, the highest scores (real lists run
    to about 100 tracks; values over about 2 KB take a whole 4 KB LMDB page each, and the catalog
    is copied into every bundle).
    """

    min_songs_per_user: int = 1
    min_users_per_song: int = 1
    max_bad_fraction: float = 0.5
    block_size_mb: int = 16
    lastfm_max_similars: int = 50
    min_play_seconds: float = MIN_PLAY_SECONDS   # a listen shorter than this is a skip, not a play

    def __post_init__(self) -> None:
        if self.lastfm_max_similars < 1:
            raise ValueError("lastfm_max_similars must be at least 1")
        if self.min_play_seconds < 0:
            raise ValueError("min_play_seconds must be >= 0")


@dataclass
class TripletReport:
    """What happened to every line of the triplets file."""

    path: str
    lines: int = 0
    good_lines: int = 0
    blank_lines: int = 0
    malformed: dict[str, int] = field(default_factory=dict)
    examples: list[dict] = field(default_factory=list)
    duplicate_pairs_merged: int = 0
    users: int = 0
    songs: int = 0
    nonzeros: int = 0
    total_plays: int = 0
    filtered_users: int = 0
    filtered_songs: int = 0
    filtered_pairs: int = 0
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def malformed_lines(self) -> int:
        return sum(self.malformed.values())

    def add_bad(self, reason: str, count: int, examples: list[tuple[int, str]]) -> None:
        if count <= 0:
            return
        self.malformed[reason] = self.malformed.get(reason, 0) + count
        for line, text in examples:
            if len(self.examples) < _EXAMPLES:
                self.examples.append({"line": int(line), "reason": reason, "text": text[:200]})

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["malformed_lines"] = self.malformed_lines
        d["examples"] = sorted(self.examples, key=lambda e: e["line"])
        return d


def read_triplets(path: str | os.PathLike, cfg: IngestConfig | None = None) -> tuple[Interactions, TripletReport]:
    """Parse a triplets file into :class:`Interactions` and a :class:`TripletReport`.

    Accepts LF or CRLF line endings, a UTF-8 byte-order mark, and compressed files (by name:
    ``.gz``, ``.bz2``, ...). Rejected lines, each counted under its reason with line numbers: a
    line over ``MAX_LINE_BYTES``, a line that is not UTF-8, a field count other than three, an id
    holding a NUL byte or over ``MAX_ID_BYTES``, an empty user or song id, a play count that is
    not ASCII digits (at most ``MAX_COUNT_DIGITS``, surrounding whitespace allowed) for a
    positive integer up to ``MAX_COUNT``. Blank lines are counted but are not errors. Duplicate
    (user, song) pairs are summed; ids that differ only in surrounding ASCII whitespace are one id.
    Raises :class:`IngestError` when the file is missing or not a file, empty, UTF-16/32, holds no
    good line, or more than ``cfg.max_bad_fraction`` of its lines are malformed.
    """
    cfg = cfg or IngestConfig()
    path = check_input_file(path, "triplets", "user_id<TAB>song_id<TAB>play_count lines")
    if path.stat().st_size == 0:
        raise IngestError(f"{path}: the file is empty ({_EXPECTED} lines)")
    sniff_encoding(path, read_head(path))
    t0 = time.perf_counter()
    report = TripletReport(path=str(path))
    stages: dict[str, float] = {}
    last = [t0]

    def timer(stage: str) -> None:
        now = time.perf_counter()
        stages[stage] = round(now - last[0], 2)
        last[0] = now

    # 1. Parse: multithreaded first; a file with field-count errors is read again serially,
    # because only the serial reader knows each rejected row's physical line number. A file
    # pyarrow cannot read as it is goes through the line filter (serially).
    filtered: CleanLines | None = None
    try:
        table, field_errors = _parse(path, cfg, threaded=True)
        if field_errors:
            log.info("%s: %s lines with a wrong field count; re-reading serially for line numbers",
                     path, "many" if len(field_errors) >= _ABORT_AFTER else len(field_errors))
            table, field_errors = _parse(path, cfg, threaded=False)
    except _Unreadable as exc:
        log.info("%s: pyarrow cannot read the file as it is (%s); reading it again without its "
                 "lines that are too long or not UTF-8", path, exc)
        stream = open_stream(path)
        try:
            filtered = CleanLines(stream, max_examples=_EXAMPLES)
            table, field_errors = _parse(path, cfg, threaded=False, source=filtered)
        except _Unreadable as exc2:
            raise IngestError(f"{path}: cannot parse: {str(exc2)[:200]}") from None
        finally:
            stream.close()
    timer("parse")

    # Physical line numbers of the lines that are not table rows; table row i is on the (i+1)-th
    # line that is not among them.
    removed = np.zeros(0, np.int64)
    if filtered is not None:
        removed = np.frombuffer(filtered.removed, dtype=np.int64).copy()
        for reason, n in filtered.reasons.items():
            report.add_bad(reason, n, [(ln, text) for ln, r, text in filtered.examples if r == reason])
        # the parser numbered the lines of the filtered stream
        physical = _physical(np.array([n for n, _, _ in field_errors], np.int64), removed)
        field_errors = [(int(ln), text, r) for ln, (_, text, r) in zip(physical, field_errors)]
    for reason in (TOO_LONG, WRONG_FIELDS):
        errs = [(ln, text) for ln, text, r in field_errors if r == reason]
        report.add_bad(reason, len(errs), [(ln, quote(text)) for ln, text in errs[:_EXAMPLES]])
    field_lines = np.array([n for n, _, _ in field_errors if n is not None], dtype=np.int64)
    n_rows = table.num_rows
    report.lines = n_rows + len(field_errors) + len(removed)
    log.info("parsed %d lines in %.1fs", report.lines, time.perf_counter() - t0)
    missing = np.sort(np.concatenate([field_lines, removed]))
    missing_adj = missing - np.arange(len(missing))

    def line_of(rows: np.ndarray) -> np.ndarray:
        return rows + 1 + np.searchsorted(missing_adj, rows + 1, side="right")

    table = table.unify_dictionaries()
    u_idx, u_dict = _codes(table.column("user"))
    s_idx, s_dict = _codes(table.column("song"))
    counts_str = table.column("count")
    del table
    timer("unify id dictionaries")

    # 2. Validate. Ids on the (small) dictionaries: surrounding whitespace trimmed, then UTF-8, NUL,
    # length and emptiness; counts column-wise.
    u_keys, u_rank, u_len = _clean_dictionary(u_dict)
    s_keys, s_rank, s_len = _clean_dictionary(s_dict)
    parsed_counts = _parse_counts(counts_str)
    timer("validate counts")
    rank = _classify(u_idx, u_rank, u_len, s_idx, s_rank, s_len, counts_str, parsed_counts)
    counts = parsed_counts.values
    del parsed_counts

    def examples(mask: np.ndarray) -> list[tuple[int, str]]:
        rows = np.flatnonzero(mask)[:_EXAMPLES]
        return [(int(ln), _line_text(u_dict, u_idx[r], s_dict, s_idx[r], counts_str, r))
                for ln, r in zip(line_of(rows), rows)]

    if rank is None:
        good = None
        report.good_lines = len(u_idx)
    else:
        by_rank = np.bincount(rank, minlength=_R_OK + 1)
        report.blank_lines = int(by_rank[_R_BLANK])
        for r, reason in _REASON.items():
            if by_rank[r]:
                report.add_bad(reason, int(by_rank[r]), examples(rank == r))
        good = rank == _R_OK
        report.good_lines = int(by_rank[_R_OK])
        del rank
    nonblank = report.lines - report.blank_lines
    if report.good_lines == 0:
        raise IngestError(f"{path}: no valid triplet in {report.lines} lines "
                          f"({_summary(report)}); {_EXPECTED}")
    if nonblank and report.malformed_lines > cfg.max_bad_fraction * nonblank:
        raise IngestError(f"{path}: mostly malformed: {report.malformed_lines} of {nonblank} lines "
                          f"rejected ({_summary(report)}); {_EXPECTED}")

    # 3. Ids in sorted order; rows and columns renumbered by rank among the ids actually used.
    all_good = good is None
    u_rank_of, user_ids = _rank(u_keys, u_idx if all_good else u_idx[good])
    s_rank_of, song_ids = _rank(s_keys, s_idx if all_good else s_idx[good])
    rows = u_rank_of[u_idx] if all_good else u_rank_of[u_idx[good]]
    cols = s_rank_of[s_idx] if all_good else s_rank_of[s_idx[good]]
    vals = counts if all_good else counts[good]
    del u_idx, s_idx, counts, good
    timer("validate and rank ids")
    coo = sp.coo_matrix((vals, (rows, cols)), shape=(len(user_ids), len(song_ids)))
    del rows, cols, vals
    matrix = coo.tocsr()
    del coo
    matrix.sum_duplicates()
    report.duplicate_pairs_merged = report.good_lines - matrix.nnz
    matrix.data = capped_counts(matrix.data)
    matrix.indices = matrix.indices.astype(np.int32, copy=False)
    timer("build CSR")

    inter = Interactions(matrix=matrix, user_ids=user_ids, song_ids=song_ids)
    inter = _apply_filters(inter, cfg, report)
    report.users, report.songs = inter.n_users, inter.n_songs
    report.nonzeros = int(inter.matrix.nnz)
    report.total_plays = int(inter.matrix.data.sum(dtype=np.int64))
    report.seconds = round(time.perf_counter() - t0, 2)
    report.stage_seconds = stages
    if report.malformed_lines:
        log.warning("%s: skipped %d malformed line(s): %s", path, report.malformed_lines, _summary(report))
    return inter, report


class _Unreadable(Exception):
    """pyarrow reported an error reading the file as it is."""


def _physical(filtered_lines: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """Physical line numbers of lines numbered in a stream from which the (sorted, physical)
    line numbers ``removed`` were taken out."""
    adj = removed - np.arange(len(removed))
    return filtered_lines + np.searchsorted(adj, filtered_lines, side="right")


def _parse(path: Path, cfg: IngestConfig, threaded: bool,
           source: CleanLines | None = None) -> tuple[pa.Table, list[tuple[int | None, str, str]]]:
    """Read the three columns of ``path`` (or of ``source``, its filtered bytes), ids
    dictionary-encoded; return the table and the rows with a wrong field count as
    ``(line_number, text prefix, reason)`` (line numbers are ``None`` when threaded).

    Raises :class:`_Unreadable` when pyarrow reports an error it cannot skip (a line longer than a
    parse block; a row with a wrong field count that is not UTF-8, whose text pyarrow cannot hand
    to the row handler: its ``UnicodeDecodeError`` is kept out of the log here).
    """
    field_errors: list[tuple[int | None, str, str]] = []
    aborted: list[int] = []

    def on_invalid(row) -> str:
        text = row.text
        long = len(text) > MAX_LINE_BYTES and len(text.encode("utf-8", "surrogatepass")) > MAX_LINE_BYTES
        field_errors.append((row.number, text[:200], TOO_LONG if long else WRONG_FIELDS))
        n = len(field_errors)
        if n >= _ABORT_AFTER:
            if threaded:  # no line numbers here: stop, the serial pass decides
                aborted.append(-1)
                return "error"
            if row.number and n > cfg.max_bad_fraction * row.number:
                aborted.append(row.number)
                return "error"
        return "skip"

    undecodable: list[int] = []
    hook = sys.unraisablehook

    def quiet(unraisable) -> None:
        if unraisable.exc_type is not None and issubclass(unraisable.exc_type, UnicodeDecodeError):
            undecodable.append(1)  # pyarrow decoding a bad row's text for on_invalid
        else:
            hook(unraisable)

    dict_str = pa.dictionary(pa.int32(), pa.string())
    sys.unraisablehook = quiet
    try:
        table = pacsv.read_csv(
            path if source is None else source,
            read_options=pacsv.ReadOptions(column_names=["user", "song", "count"], use_threads=threaded,
                                           block_size=cfg.block_size_mb << 20),
            parse_options=pacsv.ParseOptions(delimiter="\t", quote_char=False, double_quote=False,
                                             ignore_empty_lines=False, invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(column_types={"user": dict_str, "song": dict_str,
                                                               "count": pa.string()},
                                                 check_utf8=False, strings_can_be_null=False),
        )
    except OSError as exc:  # the bytes cannot be read (a truncated .gz, an I/O error)
        raise IngestError(f"{path}: cannot read: {str(exc)[:200]}") from None
    except pa.ArrowException as exc:
        if aborted and aborted[0] == -1:
            return pa.table({"user": pa.array([], dict_str)}), field_errors
        if aborted:
            first = field_errors[0]
            raise IngestError(
                f"{path}: mostly malformed: {len(field_errors)} of the first {aborted[0]} lines do "
                f"not have 3 tab-separated fields (user_id<TAB>song_id<TAB>play_count); line "
                f"{first[0]} reads {first[1][:120]!r}") from None
        if undecodable:
            raise _Unreadable("a line with a wrong field count is not UTF-8") from None
        if "straddl" in str(exc):
            raise _Unreadable(f"a line is longer than the {cfg.block_size_mb} MiB parse block") from None
        raise _Unreadable(str(exc)[:200]) from None
    finally:
        sys.unraisablehook = hook
    return table, field_errors


@dataclass
class _Counts:
    """The count column, parsed."""

    values: np.ndarray               # int64; 0 where not digits
    is_digits: np.ndarray | None     # ASCII digits (trimmed, at most MAX_COUNT_DIGITS); None: all
    is_empty: np.ndarray | None      # empty after trimming; None: none
    raw_length: pa.ChunkedArray      # bytes, untrimmed
    max_length: int


def _parse_counts(counts_str: pa.ChunkedArray) -> _Counts:
    """Parse the count column: ASCII digits only (``0x10``, ``+5``, ``1e3`` are not counts).

    Fast path: a clean column (every value digits, none longer than ``MAX_COUNT_DIGITS``) casts in
    one kernel. Otherwise each value is trimmed and checked for digits, and only those are cast.
    """
    n = len(counts_str)
    raw_length = pc.binary_length(counts_str)
    max_length = int(pc.max(raw_length).as_py() or 0) if n else 0
    if n and max_length <= MAX_COUNT_DIGITS and pc.all(pc.ascii_is_decimal(counts_str)).as_py():
        values = pc.cast(counts_str, pa.int64()).to_numpy(zero_copy_only=False)
        return _Counts(values, None, None, raw_length, max_length)
    trimmed = pc.ascii_trim_whitespace(counts_str)
    length = pc.binary_length(trimmed).to_numpy(zero_copy_only=False)
    is_digits = pc.ascii_is_decimal(trimmed).to_numpy(zero_copy_only=False) & (length <= MAX_COUNT_DIGITS)
    values = np.zeros(n, dtype=np.int64)
    if is_digits.any():
        digits = pc.filter(trimmed, pa.array(is_digits))
        values[is_digits] = pc.cast(digits, pa.int64()).to_numpy(zero_copy_only=False)
    return _Counts(values, is_digits, length == 0, raw_length, max_length)


def _classify(u_idx: np.ndarray, u_rank: np.ndarray, u_len: np.ndarray, s_idx: np.ndarray,
              s_rank: np.ndarray, s_len: np.ndarray, counts_str: pa.ChunkedArray,
              counts: _Counts) -> np.ndarray | None:
    """Each row's ``_R_*`` code (int8), or ``None`` when every row is good: the common case
    costs a few checks on the dictionaries and no per-row pass."""
    n = len(u_idx)
    ids_ok = bool((u_rank == _R_OK).all() and (s_rank == _R_OK).all())
    v = counts.values
    counts_ok = counts.is_digits is None and (n == 0 or (v.min() > 0 and v.max() <= MAX_COUNT))
    longest = int(u_len.max(initial=0)) + int(s_len.max(initial=0)) + counts.max_length + 2
    if ids_ok and counts_ok and longest <= MAX_LINE_BYTES:
        return None
    rank = np.minimum(u_rank[u_idx], s_rank[s_idx]) if not ids_ok else np.full(n, _R_OK, np.int8)
    digits = np.ones(n, bool) if counts.is_digits is None else counts.is_digits
    count_bad = ~(digits & (v > 0) & (v <= MAX_COUNT))
    # a count that is not UTF-8 makes its line "not valid UTF-8", as the line filter would say
    maybe = np.flatnonzero(count_bad & (rank > _R_UTF8))
    if len(maybe):
        raw = pc.take(counts_str.cast(pa.binary()), pa.array(maybe)).to_pylist()
        rank[maybe[[not _is_utf8(b) for b in raw]]] = _R_UTF8
    rank[count_bad & (rank == _R_OK)] = _R_COUNT
    if counts.is_empty is not None and (u_rank == _R_EMPTY).any() and (s_rank == _R_EMPTY).any():
        blank = (u_rank == _R_EMPTY)[u_idx] & (s_rank == _R_EMPTY)[s_idx] & counts.is_empty
        rank[blank] = _R_BLANK
    if longest > MAX_LINE_BYTES:
        c_len = counts.raw_length.to_numpy(zero_copy_only=False)
        rank[u_len[u_idx] + s_len[s_idx] + c_len + 2 > MAX_LINE_BYTES] = _R_TOO_LONG
    return rank


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _summary(report: TripletReport) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in report.malformed.items()) or "no malformed lines"


def _codes(col: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """Dictionary indices (int32 numpy) and the shared dictionary of a unified column."""
    if col.num_chunks == 0:
        return np.zeros(0, np.int32), pa.array([], pa.string())
    dictionary = col.chunk(0).dictionary
    idx = np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in col.chunks])
    return idx.astype(np.int32, copy=False), dictionary


def _clean_dictionary(dictionary: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(keys, rank, raw_length)`` for an id dictionary: the ids with surrounding ASCII whitespace
    trimmed as an ``S`` array (as wide as the longest good id), each entry's ``_R_*`` code
    (``_R_OK``, or why it cannot be an id) and its untrimmed length in bytes."""
    n = len(dictionary)
    raw_length = pc.binary_length(dictionary).to_numpy(zero_copy_only=False).astype(np.int64)
    trimmed = pc.ascii_trim_whitespace(dictionary)
    binary = trimmed.cast(pa.binary())
    length = pc.binary_length(binary).to_numpy(zero_copy_only=False).astype(np.int64)
    rank = np.full(n, _R_OK, np.int8)
    rank[length > MAX_ID_BYTES] = _R_ID_LONG
    if n:
        rank[pc.match_substring(binary, "\x00").to_numpy(zero_copy_only=False)] = _R_NUL
    as_bytes = binary.to_pylist()
    try:
        trimmed.validate(full=True)  # UTF-8 of the whole dictionary, in C++
    except pa.ArrowInvalid:
        rank[[not _is_utf8(b) for b in as_bytes]] = _R_UTF8
    rank[length == 0] = _R_EMPTY
    ok = np.flatnonzero(rank == _R_OK)
    if len(ok):   # whitespace ASCII trimming leaves (U+00A0, U+2003, ...): no id, as pmrs.ids says
        rest = pc.utf8_trim_whitespace(pc.take(trimmed, pa.array(ok))).cast(pa.binary())
        rank[ok[pc.binary_length(rest).to_numpy(zero_copy_only=False) != length[ok]]] = _R_SPACE
    good = rank == _R_OK
    width = max(1, int(length[good].max(initial=1)))
    keys = np.array(as_bytes, dtype=f"S{width}")  # bad entries are cut short: they are never used
    return keys, rank, raw_length


def _rank(keys: np.ndarray, used_codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map dictionary codes to ranks among the distinct used ids, sorted; return (code->rank, ids).

    Codes whose trimmed ids coincide (``"a"`` and ``"a "``) get the same rank.
    """
    used = np.bincount(used_codes, minlength=len(keys)) > 0
    ids, inverse = np.unique(keys[used], return_inverse=True)
    code_to_rank = np.full(len(keys), -1, dtype=np.int32)
    code_to_rank[used] = inverse.astype(np.int32)
    width = max(1, int(np.char.str_len(ids).max())) if len(ids) else 1
    return code_to_rank, ids.astype(f"S{width}")


def _line_text(u_dict: pa.Array, u_code, s_dict: pa.Array, s_code, counts_str: pa.ChunkedArray,
               row) -> str:
    """A row as its line read, quoted (bytes that are not UTF-8 as ``\\xNN``)."""
    parts = [u_dict.cast(pa.binary())[int(u_code)].as_py(), s_dict.cast(pa.binary())[int(s_code)].as_py(),
             counts_str[int(row)].cast(pa.binary()).as_py()]
    return quote(b"\t".join(b"" if p is None else p for p in parts))


def _apply_filters(inter: Interactions, cfg: IngestConfig, report: TripletReport) -> Interactions:
    """Drop users with fewer than ``min_songs_per_user`` songs and songs with fewer than
    ``min_users_per_song`` users, repeating until both hold (a k-core, as in the literature)."""
    if cfg.min_songs_per_user <= 1 and cfg.min_users_per_song <= 1:
        return inter
    m, users, songs = inter.matrix, inter.user_ids, inter.song_ids
    before = (m.shape[0], m.shape[1], m.nnz)
    while True:
        keep_u = np.diff(m.indptr) >= cfg.min_songs_per_user
        keep_s = np.bincount(m.indices, minlength=m.shape[1]) >= cfg.min_users_per_song
        if keep_u.all() and keep_s.all():
            break
        m = m[keep_u][:, keep_s].tocsr()
        users, songs = users[keep_u], songs[keep_s]
    if m.nnz == 0:
        raise IngestError(f"filters (min {cfg.min_songs_per_user} songs per user, min "
                          f"{cfg.min_users_per_song} users per song) removed every play")
    report.filtered_users = before[0] - m.shape[0]
    report.filtered_songs = before[1] - m.shape[1]
    report.filtered_pairs = before[2] - m.nnz
    m.sort_indices()
    return Interactions(matrix=m, user_ids=users, song_ids=songs)
