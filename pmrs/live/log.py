"""The write log: every accepted live write, durable before it is acknowledged.

One SQLite database per work directory (``live/writes.sqlite``) in WAL mode with
``synchronous=FULL``: a commit returns only after the WAL is fsynced, so a write acknowledged to a
caller survives ``kill -9`` of the server and a power cut. Every write gets a sequence number
(``seq``, the table's ``INTEGER PRIMARY KEY AUTOINCREMENT``: increasing, never reused). Several
processes on one machine append and read it at once (SQLite's locking; WAL lets readers go on
while one writes), so server replicas share it: each polls ``last_seq()`` and applies what is new.

A write is a kind and a JSON body (``plays``: ``{"user_id", "plays": [[song_id, count], ...]}``;
``song``: ``{"song_id", "title", ...}``; ``feedback``: ``{"user_id", "song_id", "action"}``,
:mod:`pmrs.live.feedback`), an optional client request id (unique: a retried call
finds its first write instead of writing twice) and, for a song, the audio clip as sent (a
separate table, so that reading plays never reads clips). Bundles record the last ``seq`` they
include (``manifest["live_seq"]``); a server replays only the writes after it.

Errors that mean the log cannot take a write (a full disk, a read-only file, a lock held too
long) are raised as :class:`LogUnavailable`; nothing is half written (one transaction per write).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..errors import AlreadyExists, LogUnavailable
from ..results import Appended
from ..text import quote_prefix

LIVE_DIR = "live"
LOG_FILE = "writes.sqlite"
#: Seconds a writer waits for another process's write lock before giving up (UNAVAILABLE).
BUSY_TIMEOUT_SECONDS = 5.0
PLAYS = "plays"
SONG = "song"
FEEDBACK = "feedback"
KINDS = (PLAYS, SONG, FEEDBACK)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS writes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    request_id TEXT UNIQUE,
    written_at REAL NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS clips (
    seq INTEGER PRIMARY KEY REFERENCES writes(seq),
    name TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS song_writes ON writes(json_extract(body, '$.song_id')) WHERE kind = 'song';
CREATE TABLE IF NOT EXISTS encoded (
    seq INTEGER NOT NULL REFERENCES writes(seq),
    bundle TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (seq, bundle)
);
"""


@dataclass(frozen=True)
class Write:
    seq: int
    kind: str
    body: dict
    request_id: str | None = None
    written_at: float = 0.0


def log_path(workdir: str | os.PathLike) -> Path:
    return Path(workdir) / LIVE_DIR / LOG_FILE


class WriteLog:
    """The write log of a work directory (created on first open). Thread-safe: one connection
    per thread. ``readonly``: open an existing log for reading only (``mode=ro``: nothing is
    created and every write raises :class:`LogUnavailable`), as a reader without write access to
    ``live/`` needs (``pmrs-web``)."""

    def __init__(self, path: str | os.PathLike, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        if readonly:
            if not self.path.is_file():
                raise LogUnavailable(f"no write log at {self.path}")
            with self._guard():
                self._conn()
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._guard():
            conn = self._conn()
            conn.executescript(_SCHEMA)

    @classmethod
    def of(cls, workdir: str | os.PathLike) -> "WriteLog":
        return cls(log_path(workdir))

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self.readonly:
                conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True,
                                       timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None,
                                       check_same_thread=False)
            else:
                conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None,
                                       check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")   # fsync the WAL at every commit
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    class _Guard:
        def __enter__(self):
            return self

        def __exit__(self, etype, exc, tb):
            if isinstance(exc, sqlite3.DatabaseError):
                raise LogUnavailable(f"the write log cannot be written or read: {exc}") from exc
            return False

    def _guard(self) -> "_Guard":
        return self._Guard()

    def append(self, kind: str, body: dict, request_id: str | None = None,
               clip: tuple[str, bytes] | None = None) -> Appended:
        """Write one entry durably and return its ``seq``; a ``request_id`` already in the log
        returns the first write's ``seq`` with ``duplicate=True`` and writes nothing. A song whose
        id a logged song write already has raises :class:`~pmrs.errors.AlreadyExists` and writes
        nothing: the check and the write are one transaction, so of two processes adding one new
        song id at once, exactly one succeeds."""
        if kind not in KINDS:
            raise ValueError(f"unknown write kind {kind!r}")
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        with self._guard():
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                if request_id:
                    row = conn.execute("SELECT seq FROM writes WHERE request_id = ?", (request_id,)).fetchone()
                    if row is not None:
                        conn.execute("ROLLBACK")
                        return Appended(int(row[0]), duplicate=True)
                if kind == SONG:
                    row = conn.execute("SELECT seq FROM writes WHERE kind = 'song' AND "
                                       "json_extract(body, '$.song_id') = ?", (body["song_id"],)).fetchone()
                    if row is not None:
                        conn.execute("ROLLBACK")
                        raise AlreadyExists(f"song {quote_prefix(body['song_id'])} was added already "
                                            f"(write {int(row[0])})")
                cur = conn.execute("INSERT INTO writes(kind, request_id, written_at, body) VALUES (?, ?, ?, ?)",
                                   (kind, request_id or None, time.time(), text))
                seq = int(cur.lastrowid)
                if clip is not None:
                    conn.execute("INSERT INTO clips(seq, name, data) VALUES (?, ?, ?)",
                                 (seq, clip[0], sqlite3.Binary(clip[1])))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return Appended(seq)

    def append_many(self, entries: list[tuple[str, dict, str | None]]) -> list[Appended]:
        """Write several entries ``(kind, body, request_id)`` in one transaction (one fsync: group
        commit); each as :meth:`append` would, a request id already in the log (or earlier in
        ``entries``) giving a duplicate. Their sequence numbers are consecutive, in order."""
        out: list[Appended] = []
        with self._guard():
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                seen: dict[str, int] = {}
                for kind, body, request_id in entries:
                    if kind not in KINDS:
                        raise ValueError(f"unknown write kind {kind!r}")
                    if request_id:
                        if request_id in seen:
                            out.append(Appended(seen[request_id], duplicate=True))
                            continue
                        row = conn.execute("SELECT seq FROM writes WHERE request_id = ?",
                                           (request_id,)).fetchone()
                        if row is not None:
                            out.append(Appended(int(row[0]), duplicate=True))
                            continue
                    cur = conn.execute(
                        "INSERT INTO writes(kind, request_id, written_at, body) VALUES (?, ?, ?, ?)",
                        (kind, request_id or None, time.time(),
                         json.dumps(body, ensure_ascii=False, separators=(",", ":"))))
                    out.append(Appended(int(cur.lastrowid)))
                    if request_id:
                        seen[request_id] = int(cur.lastrowid)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return out

    def find(self, request_id: str) -> int | None:
        """The ``seq`` of the write made with ``request_id``, ``None`` when there is none."""
        with self._guard():
            row = self._conn().execute("SELECT seq FROM writes WHERE request_id = ?", (request_id,)).fetchone()
        return None if row is None else int(row[0])

    def last_seq(self) -> int:
        """The newest write's ``seq`` (0 for an empty log)."""
        with self._guard():
            row = self._conn().execute("SELECT MAX(seq) FROM writes").fetchone()
        return int(row[0] or 0)

    def since(self, seq: int, upto: int | None = None, kinds: tuple[str, ...] = KINDS) -> Iterator[Write]:
        """Writes with ``seq`` after ``seq`` (and at most ``upto``), oldest first."""
        sql = "SELECT seq, kind, body, request_id, written_at FROM writes WHERE seq > ?"
        args: list = [int(seq)]
        if upto is not None:
            sql += " AND seq <= ?"
            args.append(int(upto))
        if set(kinds) != set(KINDS):   # (the other kinds' bodies are never read)
            sql += f" AND kind IN ({', '.join('?' * len(kinds))})"
            args.extend(kinds)
        sql += " ORDER BY seq"
        with self._guard():
            rows = self._conn().execute(sql, args).fetchall()
        for s, kind, body, rid, at in rows:
            yield Write(int(s), kind, json.loads(body), rid, float(at))

    def encoded(self, seq: int, bundle: str) -> bytes | None:
        """What write ``seq``'s song was encoded to by bundle ``bundle``'s models (a cache: a
        replay need not decode and predict again), ``None`` when not cached."""
        with self._guard():
            row = self._conn().execute("SELECT data FROM encoded WHERE seq = ? AND bundle = ?",
                                       (int(seq), bundle)).fetchone()
        return None if row is None else bytes(row[0])

    def cache_encoded(self, seq: int, bundle: str, data: bytes) -> None:
        """Remember :meth:`encoded` (not durable on its own: a lost entry is encoded again)."""
        with self._guard():
            conn = self._conn()
            conn.execute("INSERT OR REPLACE INTO encoded(seq, bundle, data) VALUES (?, ?, ?)",
                         (int(seq), bundle, sqlite3.Binary(data)))

    def clip(self, seq: int) -> tuple[str, bytes] | None:
        """The audio clip sent with write ``seq`` (its file name and bytes), ``None`` without one."""
        with self._guard():
            row = self._conn().execute("SELECT name, data FROM clips WHERE seq = ?", (int(seq),)).fetchone()
        return None if row is None else (str(row[0]), bytes(row[1]))

    def close(self) -> None:
        with self._conns_lock:
            for conn in self._conns:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            self._conns.clear()
        self._local = threading.local()

    def __enter__(self) -> "WriteLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
