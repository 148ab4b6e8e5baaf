"""The tokens players send (``Authorization: Token <token>``), one user each.

A token is a random UUID (the shape ListenBrainz hands out, so players that check it accept it),
shown once when it is made and never stored: the file ``listenbrainz/tokens.json`` of the work
directory holds, per token, a short id (to list and revoke it by), its user, when it was made or
revoked, a random 16-byte salt and the SHA-256 of salt + token. A lookup hashes the presented
token with each entry's salt and compares in constant time (``hmac.compare_digest``). The file is
written atomically with mode 0600 and read again whenever it changes, so ``pmrs-listenbrainz
token revoke`` takes effect in a running server at its next request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import InvalidArgument, NotFound
from ..ids import check_id

TOKENS_FILE = Path("listenbrainz") / "tokens.json"


@dataclass(frozen=True)
class TokenEntry:
    """One token as stored: ``token_id`` (12 hex digits), ``user_id``, ``created_at`` and
    ``revoked_at`` (UNIX seconds; 0: not revoked), ``salt`` and ``sha256`` (hex)."""

    token_id: str
    user_id: str
    created_at: float
    revoked_at: float
    salt: str
    sha256: str

    @property
    def active(self) -> bool:
        return not self.revoked_at


def _digest(salt_hex: str, token: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt_hex) + token.encode("utf-8")).hexdigest()


class TokenStore:
    """The tokens of one work directory (module docstring). Thread-safe."""

    def __init__(self, workdir: str | os.PathLike):
        self.path = Path(workdir) / TOKENS_FILE
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._entries: list[TokenEntry] = []

    # -- reading -----------------------------------------------------------------------------

    def entries(self) -> list[TokenEntry]:
        """Every token, revoked ones too, oldest first (re-read when the file changed)."""
        with self._lock:
            try:
                st = self.path.stat()
            except FileNotFoundError:
                self._stamp, self._entries = None, []
                return []
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp != self._stamp:
                raw = json.loads(self.path.read_text(encoding="utf-8"))
                self._entries = [TokenEntry(**e) for e in raw.get("tokens", [])]
                self._stamp = stamp
            return list(self._entries)

    def user_of(self, token: str) -> str | None:
        """The user of an active ``token``; ``None`` for an unknown or revoked one."""
        if not token or len(token) > 256:
            return None
        found = None
        for e in self.entries():   # (every entry is hashed: the time does not tell which matched)
            if hmac.compare_digest(_digest(e.salt, token), e.sha256) and e.active:
                found = e.user_id
        return found

    # -- writing -----------------------------------------------------------------------------

    def create(self, user_id: str) -> tuple[TokenEntry, str]:
        """A new token for ``user_id``: its entry and the token itself (shown once)."""
        check_id("user_id", user_id)
        token = str(uuid.uuid4())
        salt = secrets.token_hex(16)
        entry = TokenEntry(secrets.token_hex(6), user_id, round(time.time(), 3), 0.0, salt, _digest(salt, token))
        self._save(self.entries() + [entry])
        return entry, token

    def revoke(self, token_id: str) -> TokenEntry:
        """Revoke the token ``token_id`` (:class:`NotFound` for an unknown id); it stays listed."""
        entries = self.entries()
        for i, e in enumerate(entries):
            if e.token_id == token_id:
                if e.active:
                    entries[i] = TokenEntry(**{**asdict(e), "revoked_at": round(time.time(), 3)})
                    self._save(entries)
                return entries[i]
        raise NotFound(f"no token with id {token_id!r} (pmrs-listenbrainz token list shows them)")

    def _save(self, entries: list[TokenEntry]) -> None:
        if len({e.token_id for e in entries}) != len(entries):
            raise InvalidArgument("token ids collide; try again")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        text = json.dumps({"tokens": [asdict(e) for e in entries]}, indent=2) + "\n"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
