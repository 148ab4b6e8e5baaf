"""Taste Profile triplets (``user_id<TAB>song_id<TAB>play_count``) into a CSR play-count matrix.

pyarrow's CSV reader does the parsing and dictionary-encodes both id columns while it parses, so
the ids are never materialised as 48M Python or Arrow strings; only the distinct ids are. Lines are
then validated column-wise with Arrow compute kernels, ids are ranked in sorted order (so that
``np.searchsorted`` on the stored id arrays maps an id to its row), and scipy sums duplicate
(user, song) pairs while building the CSR matrix.

Bad lines never abort the run: each is counted under a reason and skipped, the first few are kept
with their line numbers for the report, and every good line still lands. A file that is mostly
garbage (by default more than half of its lines) fails with :class:`IngestError` instead.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import scipy.sparse as sp

from ..interactions import Interactions

log = logging.getLogger(__name__)

#: Largest play count accepted (int32 storage); larger values are reported as malformed.
MAX_COUNT = 2**31 - 1
_EXAMPLES = 10
_ABORT_AFTER = 10_000  # field-count errors seen before the "mostly garbage" check may abort the read


class IngestError(ValueError):
    """The input cannot produce a usable model (missing, empty or mostly malformed)."""


@dataclass(frozen=True)
class IngestConfig:
    """Settings for ``pmrs ingest`` (``[ingest]`` in a TOML config)."""

    min_songs_per_user: int = 1
    min_users_per_song: int = 1
    max_bad_fraction: float = 0.5
    block_size_mb: int = 16


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

    Accepts LF or CRLF line endings and a UTF-8 byte-order mark. Rejected lines: a field count other
    than three, an empty user or song id, a play count that is not a positive integer (or exceeds
    ``MAX_COUNT``). Blank lines are counted but are not errors. Duplicate (user, song) pairs are
    summed. Raises :class:`IngestError` when the file is missing, holds no good line, or more than
    ``cfg.max_bad_fraction`` of its lines are malformed.
    """
    cfg = cfg or IngestConfig()
    path = Path(path)
    if not path.is_file():
        raise IngestError(f"triplets file not found: {path}")
    if path.stat().st_size == 0:
        raise IngestError(f"{path}: the file is empty (expected user_id<TAB>song_id<TAB>play_count lines)")
    t0 = time.perf_counter()
    report = TripletReport(path=str(path))
    stages: dict[str, float] = {}
    last = [t0]

    def timer(stage: str) -> None:
        now = time.perf_counter()
        stages[stage] = round(now - last[0], 2)
        last[0] = now

    # 1. Parse: multithreaded first; a file with field-count errors is read again serially,
    # because only the serial reader knows each rejected row's physical line number.
    table, field_errors = _parse(path, cfg, threaded=True)
    if field_errors:
        log.info("%s: %s lines with a wrong field count; re-reading serially for line numbers",
                 path, "many" if len(field_errors) >= _ABORT_AFTER else len(field_errors))
        table, field_errors = _parse(path, cfg, threaded=False)
    n_rows = table.num_rows
    report.lines = n_rows + len(field_errors)
    report.add_bad("wrong field count", len(field_errors), field_errors[:_EXAMPLES])
    timer("parse")
    log.info("parsed %d lines in %.1fs", report.lines, time.perf_counter() - t0)

    # Physical line number of table row i: the (i+1)-th line that was not a field-count error.
    err_lines = np.sort(np.array([n for n, _ in field_errors if n is not None], dtype=np.int64))
    err_adj = err_lines - np.arange(len(err_lines))

    def line_of(rows: np.ndarray) -> np.ndarray:
        return rows + 1 + np.searchsorted(err_adj, rows + 1, side="right")

    table = table.unify_dictionaries()
    u_idx, u_dict = _codes(table.column("user"))
    s_idx, s_dict = _codes(table.column("song"))
    counts_str = table.column("count")
    del table
    timer("unify id dictionaries")

    # 2. Validate column-wise. Ids: surrounding whitespace trimmed on the (small) dictionaries.
    u_keys, u_empty = _clean_dictionary(u_dict)
    s_keys, s_empty = _clean_dictionary(s_dict)
    counts, is_digits, c_empty = _parse_counts(counts_str)
    timer("validate counts")
    user_empty = u_empty[u_idx]
    song_empty = s_empty[s_idx]
    blank = user_empty & song_empty & c_empty
    bad_id = (user_empty | song_empty) & ~blank
    bad_count = ~bad_id & ~blank & ~(is_digits & (counts > 0) & (counts <= MAX_COUNT))
    report.blank_lines = int(blank.sum())

    def examples(mask: np.ndarray) -> list[tuple[int, str]]:
        rows = np.flatnonzero(mask)[:_EXAMPLES]
        lines = line_of(rows)
        return [(int(ln), f"{_entry(u_dict, u_idx[r])}\t{_entry(s_dict, s_idx[r])}\t"
                          f"{counts_str[int(r)].as_py()}")
                for ln, r in zip(lines, rows)]

    report.add_bad("empty id", int(bad_id.sum()), examples(bad_id))
    report.add_bad("play count not a positive integer", int(bad_count.sum()), examples(bad_count))
    good = ~(blank | bad_id | bad_count)
    report.good_lines = int(good.sum())
    nonblank = report.lines - report.blank_lines
    if report.good_lines == 0:
        raise IngestError(f"{path}: no valid triplet in {report.lines} lines "
                          f"({_summary(report)}); expected user_id<TAB>song_id<TAB>play_count")
    if nonblank and report.malformed_lines > cfg.max_bad_fraction * nonblank:
        raise IngestError(f"{path}: mostly malformed: {report.malformed_lines} of {nonblank} lines "
                          f"rejected ({_summary(report)}); expected user_id<TAB>song_id<TAB>play_count")

    # 3. Ids in sorted order; rows and columns renumbered by rank among the ids actually used.
    all_good = bool(good.all())
    u_rank, user_ids = _rank(u_keys, u_idx if all_good else u_idx[good])
    s_rank, song_ids = _rank(s_keys, s_idx if all_good else s_idx[good])
    rows = u_rank[u_idx] if all_good else u_rank[u_idx[good]]
    cols = s_rank[s_idx] if all_good else s_rank[s_idx[good]]
    vals = counts if all_good else counts[good]
    del u_idx, s_idx, counts, good
    timer("validate and rank ids")
    coo = sp.coo_matrix((vals, (rows, cols)), shape=(len(user_ids), len(song_ids)))
    del rows, cols, vals
    matrix = coo.tocsr()
    del coo
    matrix.sum_duplicates()
    report.duplicate_pairs_merged = report.good_lines - matrix.nnz
    matrix.data = np.minimum(matrix.data, MAX_COUNT).astype(np.int32)
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


def _parse(path: Path, cfg: IngestConfig, threaded: bool) -> tuple[pa.Table, list[tuple[int, str]]]:
    """Read the three columns, ids dictionary-encoded; return the table and the rows with a
    wrong field count as ``(line_number, text)`` (line numbers are ``None`` when threaded)."""
    field_errors: list[tuple[int, str]] = []
    aborted: list[int] = []

    def on_invalid(row) -> str:
        field_errors.append((row.number, row.text))
        n = len(field_errors)
        if n >= _ABORT_AFTER:
            if threaded:  # no line numbers here: stop, the serial pass decides
                aborted.append(-1)
                return "error"
            if row.number and n > cfg.max_bad_fraction * row.number:
                aborted.append(row.number)
                return "error"
        return "skip"

    dict_str = pa.dictionary(pa.int32(), pa.string())
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=["user", "song", "count"], use_threads=threaded,
                                           block_size=cfg.block_size_mb << 20),
            parse_options=pacsv.ParseOptions(delimiter="\t", quote_char=False, double_quote=False,
                                             ignore_empty_lines=False, invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(column_types={"user": dict_str, "song": dict_str,
                                                               "count": pa.string()},
                                                 check_utf8=False, strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, pa.ArrowException) as exc:
        if aborted and aborted[0] == -1:
            return pa.table({"user": pa.array([], dict_str)}), field_errors
        if aborted:
            first = field_errors[0]
            raise IngestError(
                f"{path}: mostly malformed: {len(field_errors)} of the first {aborted[0]} lines do "
                f"not have 3 tab-separated fields (user_id<TAB>song_id<TAB>play_count); line "
                f"{first[0]} reads {first[1][:120]!r}") from None
        raise IngestError(f"{path}: cannot parse: {exc}") from None
    return table, field_errors


def _parse_counts(counts_str: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(counts int64, is_integer_text, is_empty)`` for the count column.

    Fast path: a clean column casts to integers in one kernel. Otherwise each value is trimmed and
    checked for digits (at most 10, so the cast cannot overflow) and only those are cast.
    """
    n = len(counts_str)
    try:
        counts = pc.cast(counts_str, pa.int64()).to_numpy(zero_copy_only=False)
        if counts.dtype == np.int64:  # no nulls
            return counts, np.ones(n, dtype=bool), np.zeros(n, dtype=bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    trimmed = pc.ascii_trim_whitespace(counts_str)
    length = pc.binary_length(trimmed).to_numpy(zero_copy_only=False)
    is_digits = pc.ascii_is_decimal(trimmed).to_numpy(zero_copy_only=False) & (length <= 10)
    counts = np.zeros(n, dtype=np.int64)
    if is_digits.any():
        digits = pc.filter(trimmed, pa.array(is_digits))
        counts[is_digits] = pc.cast(digits, pa.int64()).to_numpy(zero_copy_only=False)
    return counts, is_digits, length == 0


def _summary(report: TripletReport) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in report.malformed.items()) or "no malformed lines"


def _codes(col: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """Dictionary indices (int32 numpy) and the shared dictionary of a unified column."""
    if col.num_chunks == 0:
        return np.zeros(0, np.int32), pa.array([], pa.string())
    dictionary = col.chunk(0).dictionary
    idx = np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in col.chunks])
    return idx.astype(np.int32, copy=False), dictionary


def _clean_dictionary(dictionary: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Trimmed ids as bytes (object-free ``S`` array) and a mask of empty ones."""
    trimmed = pc.ascii_trim_whitespace(dictionary)
    as_bytes = [b"" if v is None else v for v in pc.cast(trimmed, pa.binary()).to_pylist()]
    keys = np.array(as_bytes, dtype=f"S{max(1, max((len(b) for b in as_bytes), default=1))}")
    return keys, np.char.str_len(keys) == 0 if len(keys) else np.zeros(0, bool)


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


def _entry(dictionary: pa.Array, code) -> str:
    v = dictionary[int(code)].as_py()
    return "" if v is None else v


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
