"""Live state over one bundle: the users and songs that changed since it was built.

``LiveState`` applies writes (from this process or, through the shared write log, from others)
to what the bundle knows:

- **plays**: the user's whole history (the bundle's played songs with their counts, plus every
  logged play) and its vector, recomputed at once against the fixed song factors
  (``Bundle.fold_in`` with counts: implicit's ``recalculate_user``). A user the bundle does not
  know is created by their first plays.
- **songs**: catalog fields and, where the song's encoder could make them, vectors in the
  sources (acoustic: CNN-predicted factors; metadata: the metadata model's vector), the CNN
  embedding and genre probabilities. A new song gets the row after the bundle's last, then the next.

Readers call :meth:`LiveState.view`, a bundle-like object (:class:`pmrs.live.view.LiveView`) that
the blend (``pmrs.serving.recommend``) takes in place of the bundle. Writers hold a lock; readers
never wait: every table a reader sees is replaced whole, never changed in place.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from ..errors import AlreadyExists, InvalidArgument, NotFound
from ..ids import check_id
from ..text import quote_prefix
from .feedback import ACTIONS, ARTIST_ACTIONS, LIKE, LIKE_PLAYS, UNDO_LIKE, Feedback
from .log import FEEDBACK, PLAYS, SONG, Appended, LogUnavailable, Write, WriteLog

log = logging.getLogger(__name__)

#: Pairs in one RecordPlays call, and the largest play count one pair may carry.
MAX_PLAYS_PER_CALL = 10_000
MAX_PLAY_COUNT = 100_000
#: Longest id (user, song or request) a write may carry, characters.
#: Catalog text fields of an added song and their longest value, characters.
SONG_TEXT_FIELDS = ("title", "artist", "release", "genre")
MAX_FIELD_CHARS = 1024
MAX_TAGS = 100


@dataclass(frozen=True)
class LiveUser:
    """A user whose history changed: ``row`` is their row in views (after the bundle's users),
    ``played`` their songs (ascending rows) with ``counts``, ``vector`` their WMF factors."""

    user_id: str
    row: int
    bundle_row: int | None
    played: np.ndarray
    counts: np.ndarray
    vector: np.ndarray


@dataclass(frozen=True)
class EncodedSong:
    """What an encoder made of a song: a vector per source it has one in, the CNN embedding
    (L2-normalised) and the genre head's probabilities (both ``None`` without audio)."""

    vectors: Mapping[str, np.ndarray] = field(default_factory=dict)
    embedding: np.ndarray | None = None
    genre_probs: np.ndarray | None = None


#: Turns (catalog fields, audio clip or None) into an EncodedSong; raises InvalidArgument for bad audio.
Encoder = Callable[[dict, "tuple[str, bytes] | None"], EncodedSong]


def no_encoder(fields: dict, clip) -> EncodedSong:
    return EncodedSong()


@dataclass(frozen=True)
class SongTable:
    """The songs added since the bundle (immutable; replaced whole by each added song)."""

    first_row: int
    ids: tuple[str, ...] = ()
    index: Mapping[str, int] = field(default_factory=dict)
    catalog: tuple[dict, ...] = ()
    # per source: (ascending song rows int64, vectors (m, d) float32)
    vectors: Mapping[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    embeddings: np.ndarray | None = None      # (n, e) float32, zeros for songs without audio
    genre_probs: tuple = ()                    # per song: (g,) float32 or None

    def __len__(self) -> int:
        return len(self.ids)

    def row(self, song_id: str) -> int | None:
        return self.index.get(song_id)

    def stand_ins(self, sources: Sequence[str]) -> tuple[np.ndarray, np.ndarray] | None:
        """``(rows, vectors)`` of the added songs in the first of ``sources`` (the bundle's WMF-space
        stand-in sources) that has any: what ``Bundle.fold_in`` takes as ``extra``."""
        for name in sources:
            if name in self.vectors:
                return self.vectors[name]
        return None

    def added(self, song_id: str, fields: dict, enc: EncodedSong, embedding_dim: int) -> "SongTable":
        row = self.first_row + len(self.ids)
        vectors = dict(self.vectors)
        for name, v in enc.vectors.items():
            rows, mat = vectors.get(name, (np.zeros(0, np.int64), None))
            v = np.asarray(v, np.float32).reshape(1, -1)
            vectors[name] = (np.append(rows, row), v if mat is None else np.vstack([mat, v]))
        emb = np.zeros((1, embedding_dim), np.float32)
        if enc.embedding is not None and embedding_dim:
            emb[0] = np.asarray(enc.embedding, np.float32).reshape(-1)[:embedding_dim]
        embeddings = emb if self.embeddings is None else np.vstack([self.embeddings, emb])
        return SongTable(self.first_row, self.ids + (song_id,), {**self.index, song_id: row},
                         self.catalog + (dict(fields, song_id=song_id),), vectors, embeddings,
                         self.genre_probs + (None if enc.genre_probs is None
                                             else np.asarray(enc.genre_probs, np.float32),))


class LiveState:
    """Writes applied over ``bundle``. ``log``: the work directory's write log (``None``: writes
    live in this process only, for tests and notebooks). ``encoder`` makes an added song's
    vectors (:mod:`pmrs.live.songs`). Thread-safe."""

    def __init__(self, bundle, log_: WriteLog | None = None, encoder: Encoder = no_encoder):
        self.bundle = bundle
        self.log = log_
        self.encoder = encoder
        self._lock = threading.RLock()
        self.seq = int(bundle.manifest.get("live_seq") or 0)   # the last write applied
        self.users: dict[str, LiveUser] = {}
        self.user_list: list[LiveUser] = []
        self.songs = SongTable(first_row=bundle.n_songs)
        self.feedback: dict[str, Feedback] = {}   # each user's lasting feedback (pmrs.live.feedback)
        self.skipped: list[str] = []   # writes a replay could not apply (and why)
        self._queue: list[_Pending] = []   # RecordPlays calls waiting for the next group commit
        self._queue_lock = threading.Lock()

    # -- reading ----------------------------------------------------------------------------

    @property
    def changed(self) -> bool:
        return bool(self.users) or bool(len(self.songs))

    def view(self):
        """The bundle as of the last applied write: the bundle itself while nothing changed."""
        from .view import LiveView
        return LiveView(self.bundle, self) if self.changed else self.bundle

    def has_user(self, user_id: str) -> bool:
        return user_id in self.users

    def feedback_of(self, user_id: str) -> Feedback | None:
        return self.feedback.get(user_id)

    # -- catching up ---------------------------------------------------------------------------

    def load_feedback(self) -> None:
        """The lasting part of the feedback the bundle already took in (writes up to its
        ``live_seq``): dislikes, hidden artists, skips (likes are in its plays already)."""
        if self.log is None or not self.seq:
            return
        with self._lock:
            for w in self.log.since(0, upto=self.seq, kinds=(FEEDBACK,)):
                self._apply(w, lasting_only=True)

    def catch_up(self) -> int:
        """Apply the log's writes newer than the last applied one; returns how many."""
        if self.log is None:
            return 0
        with self._lock:
            n = 0
            for w in self.log.since(self.seq):
                self._apply(w)
                n += 1
            return n

    def _apply(self, w: Write, lasting_only: bool = False) -> None:
        try:
            if w.kind == PLAYS:
                self._apply_plays(w.body["user_id"], self._resolve_plays(w.body["plays"]))
            elif w.kind == SONG:
                self._apply_song(w.body, self._replayed_song(w))
            elif w.kind == FEEDBACK:
                (row, _), = self._resolve_plays([(w.body["song_id"], 1)])
                self._apply_feedback(w.body["user_id"], row, w.body["action"], w.body.get("artist", ""),
                                     lasting_only)
        except (InvalidArgument, NotFound, KeyError, TypeError, ValueError) as exc:
            # e.g. a song added by a newer bundle's writes that this bundle cannot encode
            why = f"write {w.seq} ({w.kind}) not applied: {exc}"
            log.warning("%s", why)
            self.skipped.append(why)
        if not lasting_only:
            self.seq = w.seq

    # -- feedback ---------------------------------------------------------------------------

    def record_feedback(self, user_id: str, song_id: str, action: str, request_id: str | None = None) -> Appended:
        """Log one feedback durably, then apply it (:mod:`pmrs.live.feedback`).
        :class:`InvalidArgument` for a bad id or action (or hiding the artist of a song without
        one), :class:`NotFound` for an unknown song, ``LogUnavailable`` when the log cannot take
        it (nothing is recorded then)."""
        check_id("user_id", user_id)
        check_id("song_id", song_id)
        if request_id:
            check_id("request_id", request_id)
        if action not in ACTIONS:
            raise InvalidArgument(f"action must be one of {', '.join(ACTIONS)}, got {str(action)[:40]!r}")
        with self._lock:
            self.catch_up()
            (row, _), = self._resolve_plays([(song_id, 1)])
            body = {"user_id": user_id, "song_id": song_id, "action": action}
            if action in ARTIST_ACTIONS:
                artist = str(self._fields(row).get("artist") or "").strip()
                if not artist:
                    raise InvalidArgument(f"song {quote_prefix(song_id)} has no artist to hide")
                body["artist"] = artist
            if self.log is None:
                result = Appended(self.seq + 1)
            else:
                result = self.log.append(FEEDBACK, body, request_id)
                if result.duplicate:
                    return result
                self.catch_up_to(result.seq - 1)
            self._apply_feedback(user_id, row, action, body.get("artist", ""))
            self.seq = max(self.seq, result.seq)
            return result

    def _fields(self, row: int) -> dict:
        if row < self.bundle.n_songs:
            return self.bundle.songs([row])[0]
        return dict(self.songs.catalog[row - self.songs.first_row])

    def _apply_feedback(self, user_id: str, row: int, action: str, artist: str = "",
                        lasting_only: bool = False) -> None:
        feedback = self.feedback.get(user_id, Feedback())
        if action == LIKE and not lasting_only:
            self._apply_plays(user_id, [(row, float(LIKE_PLAYS))])
        if action == UNDO_LIKE and not lasting_only and feedback.likes.get(row):
            self._apply_plays(user_id, [(row, -float(LIKE_PLAYS * feedback.likes[row]))])
        self.feedback = {**self.feedback, user_id: feedback.with_action(action, row, artist)}

    # -- plays ------------------------------------------------------------------------------

    def check_plays(self, user_id: str, plays: Sequence[tuple[str, float]]) -> list[tuple[int, float]]:
        """``plays`` as (song row, count) pairs; :class:`InvalidArgument` for a bad id or count,
        :class:`NotFound` naming the first unknown song (nothing is applied then)."""
        check_id("user_id", user_id)
        if not plays:
            raise InvalidArgument("plays is empty: send at least one (song_id, count) pair")
        if len(plays) > MAX_PLAYS_PER_CALL:
            raise InvalidArgument(f"at most {MAX_PLAYS_PER_CALL} plays per call, got {len(plays)}")
        out = []
        for pair in plays:
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise InvalidArgument(f"plays are (song_id, count) pairs, got {pair!r:.60}")
            song_id, count = pair
            check_id("song_id", song_id)
            out.append((song_id, float(_play_count(song_id, count))))
        return self._resolve_plays(out)

    def _resolve_plays(self, plays) -> list[tuple[int, float]]:
        rows = []
        for song_id, count in plays:
            row = self._song_row(song_id)
            if row is None:
                raise NotFound(f"unknown song {quote_prefix(song_id)}; nothing of this call was recorded")
            rows.append((row, float(count)))
        return rows

    def _song_row(self, song_id: str) -> int | None:
        row = self.bundle.song_row(song_id)
        return int(row) if row is not None else self.songs.row(song_id)

    def record_plays(self, user_id: str, plays: Sequence[tuple[str, float]],
                     request_id: str | None = None) -> Appended:
        """Log the plays durably, then apply them. See :meth:`check_plays` for what is refused;
        :class:`~pmrs.live.log.LogUnavailable` when the log cannot take them.

        Group commit: calls that arrive while another commits wait for the write lock, and the
        first to get it writes every waiting call in one transaction (one fsync), applies them
        in order and hands each its result."""
        return self.record_plays_many([(user_id, plays, request_id)])[0]

    def record_plays_many(self, calls: Sequence[tuple[str, Sequence[tuple[str, float]], str | None]]) -> list[Appended]:
        """Several :meth:`record_plays` calls ``(user_id, plays, request_id)`` written in one
        transaction (one fsync): every call is checked first (nothing is written when one is
        refused), then all are logged or none; each request id already in the log, or earlier in
        ``calls``, is a duplicate, applied once."""
        pending = []
        for user_id, plays, request_id in calls:
            if request_id:
                check_id("request_id", request_id)
            try:
                rows = self.check_plays(user_id, plays)
            except NotFound:
                self.catch_up()   # a song another process added, not polled yet?
                rows = self.check_plays(user_id, plays)
            body = {"user_id": user_id, "plays": [[s, _play_count(s, c)] for s, c in plays]}
            pending.append(_Pending(user_id, rows, body, request_id))
        if not pending:
            return []
        with self._queue_lock:   # (queued together: whoever commits next takes all of them)
            self._queue.extend(pending)
        with self._lock:
            if not pending[0].done:
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                self._commit(batch)
        if pending[0].error is not None:
            raise pending[0].error
        return [p.result for p in pending]

    def _commit(self, batch: list["_Pending"]) -> None:
        """Write ``batch`` in one transaction and apply it (holding the write lock)."""
        try:
            self.catch_up()
            if self.log is None:
                results = []
                for _ in batch:
                    self.seq += 1
                    results.append(Appended(self.seq))
            else:
                results = self.log.append_many([(PLAYS, p.body, p.request_id) for p in batch])
                new = [r.seq for r in results if not r.duplicate]
                if new:
                    self.catch_up_to(min(new) - 1)
        except BaseException as exc:
            for p in batch:
                p.error, p.done = exc, True
            return
        by_user: dict[str, tuple[list, list[int]]] = {}   # (one fold-in per user, however many writes)
        for p, r in zip(batch, results):
            if not r.duplicate:
                rows, seqs = by_user.setdefault(p.user_id, ([], []))
                rows.extend(p.rows)
                seqs.append(r.seq)
        for user_id, (rows, seqs) in by_user.items():
            try:
                self._apply_plays(user_id, rows)
            except Exception as exc:   # (durable already: the next replay applies it)
                log.exception("applying writes %s failed", seqs)
                self.skipped.extend(f"write {seq} not applied: {exc}" for seq in seqs)
        for p, r in zip(batch, results):
            if not r.duplicate:
                self.seq = max(self.seq, r.seq)
            p.result, p.done = r, True

    def catch_up_to(self, seq: int) -> None:
        """Apply the log's writes up to ``seq`` (those other processes made before ours)."""
        if self.log is not None and seq > self.seq:
            for w in self.log.since(self.seq, upto=seq):
                self._apply(w)

    def _apply_plays(self, user_id: str, rows: list[tuple[int, float]]) -> None:
        b = self.bundle
        old = self.users.get(user_id)
        if old is not None:
            played, counts, brow = old.played, old.counts, old.bundle_row
        else:
            brow = b.user_row(user_id)
            if brow is not None:
                played = np.asarray(b.played(brow), np.int64)
                counts = np.asarray(b.play_counts(brow), np.float64)
            else:
                played, counts = np.zeros(0, np.int64), np.zeros(0)
        new_rows = np.asarray([r for r, _ in rows], np.int64)
        new_counts = np.asarray([c for _, c in rows], np.float64)
        allr = np.concatenate([played, new_rows])
        allc = np.concatenate([counts, new_counts])
        uniq, inv = np.unique(allr, return_inverse=True)
        summed = np.bincount(inv, weights=allc, minlength=len(uniq))
        kept = summed > 0                     # (an undone like's plays leave; nothing goes below 0)
        uniq, summed = uniq[kept], summed[kept]
        vector = b.fold_in(uniq, summed, extra=self.songs.stand_ins(b.stand_in_sources))
        row = old.row if old is not None else b.n_users + len(self.user_list)
        user = LiveUser(user_id, row, brow, uniq, summed, vector)
        if old is None:
            self.user_list.append(user)
        else:
            self.user_list[row - b.n_users] = user
        self.users[user_id] = user

    # -- songs -------------------------------------------------------------------------------

    def check_song(self, song_id: str, fields: Mapping) -> dict:
        """The catalog fields of a song to add, checked; ``AlreadyExists`` for a known id."""
        check_id("song_id", song_id)
        if self._song_row(song_id) is not None:
            raise AlreadyExists(f"song {quote_prefix(song_id)} is already in the catalog")
        out: dict = {}
        for name in SONG_TEXT_FIELDS:
            v = fields.get(name) or ""
            if not isinstance(v, str):
                raise InvalidArgument(f"{name} must be a string, got {type(v).__name__}")
            if len(v) > MAX_FIELD_CHARS:
                raise InvalidArgument(f"{name} is longer than {MAX_FIELD_CHARS} characters")
            _utf8(name, v)
            out[name] = v
        try:
            year = int(fields.get("year") or 0)
        except (TypeError, ValueError, OverflowError):
            raise InvalidArgument(f"year must be a whole number in 0..9999, got {fields.get('year')!r:.40}") from None
        if not 0 <= year <= 9999:
            raise InvalidArgument(f"year must be in 0..9999 (0: unknown), got {year}")
        out["year"] = year
        raw_tags = fields.get("tags") or ()
        if isinstance(raw_tags, (str, bytes)) or not isinstance(raw_tags, (list, tuple, set, frozenset)):
            raise InvalidArgument(f"tags must be a list of strings, got {type(raw_tags).__name__}")
        if not all(isinstance(t, str) for t in raw_tags):
            raise InvalidArgument("tags must be a list of strings")
        tags = [_utf8("tag", t) for t in raw_tags if t.strip()]
        if len(tags) > MAX_TAGS or any(len(t) > MAX_FIELD_CHARS for t in tags):
            raise InvalidArgument(f"at most {MAX_TAGS} tags of at most {MAX_FIELD_CHARS} characters")
        out["tags"] = tags
        return out

    def add_song(self, song_id: str, fields: Mapping, clip: tuple[str, bytes] | None = None,
                 request_id: str | None = None) -> Appended:
        """Encode the song (decode and predict from ``clip`` when given), log it durably, then
        add it. Nothing is logged when the clip cannot be used (:class:`InvalidArgument`)."""
        if request_id:
            check_id("request_id", request_id)
            if self.log is not None:
                seq = self.log.find(request_id)
                if seq is not None:   # a retry of a call that was written: not an error
                    self.catch_up()
                    return Appended(seq, duplicate=True)
        body = {"song_id": song_id, **self.check_song(song_id, fields)}
        enc = self.encoder(body, clip)   # (outside the lock: other writes go on meanwhile) raises
        with self._lock:                 # before anything is written
            self.catch_up()
            if request_id and self.log is not None and self.log.find(request_id) is not None:
                return Appended(self.log.find(request_id), duplicate=True)
            self.check_song(song_id, fields)   # (another process may have added it meanwhile)
            if self.log is None:
                self.seq += 1
                done = Appended(self.seq)
            else:
                done = self.log.append(SONG, body, request_id, clip=clip)
                if done.duplicate:
                    return done
                self.catch_up_to(done.seq - 1)
                self.seq = done.seq
                self._cache(done.seq, enc)
            self._apply_song(body, enc)
            return done

    def _replayed_song(self, w: Write) -> EncodedSong:
        """The encoding of logged song ``w`` for this bundle: cached in the log by an earlier
        replay or the process that added it, else encoded from its clip again (and cached)."""
        version = str(self.bundle.version)
        if self.log is not None:
            raw = self.log.encoded(w.seq, version)
            if raw is not None:
                try:
                    return unpack_encoding(raw)
                except (ValueError, KeyError, OSError):
                    pass   # a damaged cache entry: encode again
        clip = self.log.clip(w.seq) if self.log is not None else None
        enc = self.encoder(w.body, clip)
        self._cache(w.seq, enc)
        return enc

    def _cache(self, seq: int, enc: EncodedSong) -> None:
        if self.log is None:
            return
        try:
            self.log.cache_encoded(seq, str(self.bundle.version), pack_encoding(enc))
        except LogUnavailable as exc:   # a cache: the next replay encodes again
            log.debug("cannot cache the encoding of write %d: %s", seq, exc)

    def _apply_song(self, body: dict, enc: EncodedSong) -> None:
        song_id = body["song_id"]
        if self._song_row(song_id) is not None:
            raise ValueError(f"song {quote_prefix(song_id)} is already known")
        fields = {k: body.get(k, "" if k != "year" else 0) for k in (*SONG_TEXT_FIELDS, "year")}
        fields["tags"] = list(body.get("tags") or [])
        vectors = {n: v for n, v in enc.vectors.items() if self.bundle.has_source(n)}
        enc = EncodedSong(vectors, enc.embedding, enc.genre_probs)
        self.songs = self.songs.added(song_id, fields, enc, self.bundle.embedding_dim)


@dataclass
class _Pending:
    """A RecordPlays call waiting to be committed."""

    user_id: str
    rows: list
    body: dict
    request_id: str | None
    done: bool = False
    result: Appended | None = None
    error: BaseException | None = None


def pack_encoding(enc: EncodedSong) -> bytes:
    """An encoding as ``.npz`` bytes (arrays only: read back with ``allow_pickle=False``)."""
    import io

    arrays = {f"v_{name}": np.asarray(v, np.float32) for name, v in enc.vectors.items()}
    if enc.embedding is not None:
        arrays["embedding"] = np.asarray(enc.embedding, np.float32)
    if enc.genre_probs is not None:
        arrays["genre_probs"] = np.asarray(enc.genre_probs, np.float32)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def unpack_encoding(raw: bytes) -> EncodedSong:
    """An encoding :func:`pack_encoding` wrote (``ValueError``, ``KeyError`` or ``OSError`` when damaged)."""
    import io

    with np.load(io.BytesIO(raw), allow_pickle=False) as z:
        vectors = {k[2:]: z[k] for k in z.files if k.startswith("v_")}
        return EncodedSong(vectors, z["embedding"] if "embedding" in z.files else None,
                           z["genre_probs"] if "genre_probs" in z.files else None)


def _utf8(name: str, value: str) -> str:
    """``value`` when it encodes as UTF-8 (no lone surrogates), else :class:`InvalidArgument`."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgument(f"{name} is not valid Unicode text (it cannot be encoded as UTF-8)") from None
    return value


def _play_count(song_id: str, value) -> int:
    """A play count as an int in 1..``MAX_PLAY_COUNT``; :class:`InvalidArgument` otherwise (a
    string, ``None``, a fraction, a huge or non-finite number)."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if ok:
        try:
            c = float(value)
        except OverflowError:
            ok = False
        else:
            ok = 0 < c <= MAX_PLAY_COUNT and c == int(c)
    if not ok:
        raise InvalidArgument(f"play counts must be whole numbers in 1..{MAX_PLAY_COUNT}; "
                              f"song {quote_prefix(song_id)} has {value!r:.40}")
    return int(c)


__all__ = ["AlreadyExists", "EncodedSong", "LiveState", "LiveUser", "LogUnavailable", "SongTable"]
