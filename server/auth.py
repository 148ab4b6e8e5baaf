"""Who may call: bearer tokens for writes (always) and reads (when configured).

A caller sends its token the gRPC way, as call metadata ``authorization: Bearer <token>``. The
server reads its tokens from files named in its configuration (``write_token_file``,
``read_token_file``) or from the environment (:data:`WRITE_TOKEN_ENV`, :data:`READ_TOKEN_ENV`),
never from a command-line argument, which ``ps`` shows to every user of the machine.

- Writes (:data:`WRITE_METHODS`) need the write token. Without one configured the server takes
  no writes: PERMISSION_DENIED, saying so.
- Reads are open unless a read token is configured; then they need it (or the write token).
- No ``authorization`` metadata: UNAUTHENTICATED. A token that is not the one needed:
  PERMISSION_DENIED. Tokens are compared in constant time (``hmac.compare_digest``).
- Health checks and reflection are always open (load balancers and generic clients use them).
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass
from pathlib import Path

import grpc

WRITE_TOKEN_ENV = "PMRS_WRITE_TOKEN"
READ_TOKEN_ENV = "PMRS_READ_TOKEN"
WRITE_METHODS = frozenset({"RecordPlays", "RecordFeedback", "AddSong"})
#: A token shorter than this is refused at start: a guessable token protects nothing.
MIN_TOKEN_CHARS = 16


def read_token(path: str | os.PathLike | None, env: str) -> str | None:
    """The token in file ``path`` (surrounding whitespace removed), else in ``$env``, else None.
    ``ValueError`` for an empty or short token, ``FileNotFoundError`` for a missing file."""
    if path:
        token = Path(path).read_text(encoding="utf-8").strip()
        where = f"token file {path}"
    else:
        token = os.environ.get(env, "").strip()
        where = f"${env}"
        if not token:
            return None
    if len(token) < MIN_TOKEN_CHARS or any(c.isspace() for c in token):
        raise ValueError(f"the token in {where} must be at least {MIN_TOKEN_CHARS} characters with no spaces")
    return token


@dataclass(frozen=True)
class Auth:
    """The server's tokens: ``write`` (None: no writes), ``read`` (None: reads are open)."""

    write: str | None = None
    read: str | None = None

    @classmethod
    def from_config(cls, write_token_file: str | None = None, read_token_file: str | None = None) -> "Auth":
        return cls(read_token(write_token_file, WRITE_TOKEN_ENV), read_token(read_token_file, READ_TOKEN_ENV))

    @property
    def accepts_writes(self) -> bool:
        return self.write is not None

    def check(self, method: str, metadata) -> tuple[grpc.StatusCode, str] | None:
        """``None`` when the call may go on, else the status to end it with. ``metadata``: the
        call's invocation metadata (key-value pairs)."""
        writing = method in WRITE_METHODS
        if writing and self.write is None:
            return (grpc.StatusCode.PERMISSION_DENIED,
                    f"this server takes no writes: no write token is configured (${WRITE_TOKEN_ENV} "
                    "or write_token_file)")
        if not writing and self.read is None:
            return None
        sent = _bearer(metadata)
        if sent is None:
            return (grpc.StatusCode.UNAUTHENTICATED,
                    f"{method} needs a token: send the metadata 'authorization: Bearer <token>'")
        wanted = [self.write] if writing else [t for t in (self.read, self.write) if t is not None]
        ok = False
        for token in wanted:   # every token compared, in constant time
            ok |= hmac.compare_digest(sent.encode("utf-8", "surrogateescape"), token.encode("utf-8"))
        if not ok:
            return grpc.StatusCode.PERMISSION_DENIED, f"the token sent is not valid for {method}"
        return None


def _bearer(metadata) -> str | None:
    for key, value in metadata or ():
        if key.lower() == "authorization":
            if isinstance(value, bytes):
                value = value.decode("utf-8", "surrogateescape")
            scheme, _, token = value.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return ""   # present but not a bearer token: wrong, not missing
    return None
