"""Rules and checks for raw text input: line and id limits, encoding, bad-line filtering.

Every ingest reader applies the same rules, stated here once:

- A line is at most :data:`MAX_LINE_BYTES` bytes (line end excluded); a longer one is a malformed
  line (``"line too long"``) whose bytes are never held in memory whole.
- A line must be valid UTF-8 (``"not valid UTF-8"``); ids follow :mod:`pmrs.ids` (the rule live
  writes follow too): UTF-8, no NUL, at most :data:`MAX_ID_BYTES` bytes; readers trim whitespace
  around a field first.
- Lines end in ``\\n`` or ``\\r\\n``; line numbers count from 1.
- A UTF-16 or UTF-32 file (byte-order mark, or the NUL pattern of ASCII text in UTF-16) is
  refused with an error naming the file and the encoding.
"""

from __future__ import annotations

import io
import logging
import os
from array import array
from collections import Counter
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np
import pyarrow as pa

from ..ids import EMPTY_ID, ID_TOO_LONG, MAX_ID_BYTES, NOT_UTF8, NUL_IN_ID, SPACE_AT_END, id_problem
from .errors import IngestError

__all__ = ["EMPTY_ID", "ID_TOO_LONG", "MAX_ID_BYTES", "MAX_LINE_BYTES", "NOT_UTF8", "NUL_IN_ID", "QUOTE_BYTES",
           "TOO_LONG", "check_input_file", "id_problem", "iter_lines", "open_stream", "quote", "read_head",
           "sniff_encoding"]

log = logging.getLogger(__name__)

#: Longest accepted line, in bytes (without its line end). The real files' lines are under 200.
MAX_LINE_BYTES = 64 * 1024
#: Bytes of an offending line or value quoted in reports and messages.
QUOTE_BYTES = 200

TOO_LONG = "line too long"

_SNIFF_BYTES = 4096
_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32-LE"), (b"\x00\x00\xfe\xff", "UTF-32-BE"),
         (b"\xff\xfe", "UTF-16-LE"), (b"\xfe\xff", "UTF-16-BE"))


def quote(raw: bytes | str) -> str:
    """A short printable prefix of an offending line or value (bad bytes as ``\\xNN``)."""
    if isinstance(raw, str):
        return raw[:QUOTE_BYTES]
    return raw[:QUOTE_BYTES].decode("utf-8", "backslashreplace")


def check_input_file(path: str | os.PathLike, what: str, expected: str = "") -> Path:
    """``path`` as a :class:`Path` when it is a readable regular file; :class:`IngestError`
    naming it otherwise (missing, a directory, unreadable). ``what`` names the input
    (``"triplets"``), ``expected`` the file it should be (``"unique_tracks.txt"``)."""
    path = Path(path)
    hint = f" (expected {expected})" if expected else ""
    if not path.exists():
        raise IngestError(f"{what} file not found: {path}{hint}")
    if path.is_dir():
        raise IngestError(f"{what}: {path} is a directory; give the file itself{hint}")
    if not path.is_file():
        raise IngestError(f"{what}: {path} is not a regular file{hint}")
    if not os.access(path, os.R_OK):
        raise IngestError(f"{what}: cannot read {path} (permission denied)")
    return path


def open_stream(path: str | os.PathLike) -> pa.NativeFile:
    """The file's bytes, decompressed when its name says so (``.gz``, ``.bz2``, ``.zst``, ...)."""
    try:
        return pa.input_stream(str(path), compression="detect")
    except (OSError, pa.ArrowException) as exc:
        raise IngestError(f"{path}: cannot open: {exc}") from None


def sniff_encoding(path: str | os.PathLike, head: bytes) -> None:
    """Raise :class:`IngestError` when ``head`` (the file's first bytes) shows UTF-16 or UTF-32.

    A byte-order mark decides; without one, ASCII text in UTF-16 has a NUL at (nearly) every other
    byte and (almost) none between, which text and random bytes do not.
    """
    fix = "convert it to UTF-8 first (e.g. iconv -f {enc} -t UTF-8 FILE > FILE.utf8)"
    for bom, enc in _BOMS:
        if head.startswith(bom):
            raise IngestError(f"{path}: the file is {enc} (byte-order mark {bom.hex(' ')}), not "
                              f"UTF-8; {fix.format(enc=enc)}")
    n = len(head) // 2 * 2
    if n >= 64:
        b = np.frombuffer(head[:n], np.uint8)
        even, odd = float((b[0::2] == 0).mean()), float((b[1::2] == 0).mean())
        for nul, other, enc in ((odd, even, "UTF-16-LE"), (even, odd, "UTF-16-BE")):
            if nul >= 0.9 and other <= 0.1:
                raise IngestError(f"{path}: the file looks like {enc} (a NUL byte after every "
                                  f"character), not UTF-8; {fix.format(enc=enc)}")


def read_head(path: str | os.PathLike) -> bytes:
    """The first few KiB of the (decompressed) file, for :func:`sniff_encoding`."""
    stream = open_stream(path)
    try:
        return stream.read(_SNIFF_BYTES)
    except (OSError, pa.ArrowException) as exc:
        raise IngestError(f"{path}: cannot read: {exc}") from None
    finally:
        stream.close()


def iter_lines(fh: BinaryIO) -> Iterator[tuple[int, bytes | None]]:
    """``(line_number, line)`` for each line of a binary file, without its line end; ``line`` is
    ``None`` for a line over :data:`MAX_LINE_BYTES` (read past in pieces, never held whole)."""
    number = 0
    limit = MAX_LINE_BYTES + 2  # room for "\r\n"
    while True:
        line = fh.readline(limit)
        if not line:
            return
        number += 1
        if len(line) == limit and not line.endswith(b"\n"):
            while (rest := fh.readline(1 << 20)) and not rest.endswith(b"\n"):
                pass
            yield number, None
            continue
        line = line.rstrip(b"\n")
        if line.endswith(b"\r"):
            line = line[:-1]
        yield number, (line if len(line) <= MAX_LINE_BYTES else None)


class CleanLines(io.RawIOBase):
    """A read-only byte stream of ``source`` without its lines that are too long or not UTF-8.

    What was removed is kept: :attr:`removed` (the physical line numbers, in order),
    :attr:`reasons` (count per reason) and :attr:`examples` (``(line, reason, quoted text)``, the
    first ``max_examples``). Blocks of ``block_bytes`` that are clean (the common case) pass
    through whole after one UTF-8 check and one line-length scan; only a block holding a bad line
    is split into lines in Python.
    """

    def __init__(self, source: BinaryIO, block_bytes: int = 4 << 20, max_examples: int = 10):
        super().__init__()
        self._src = source
        self._block = block_bytes
        self._max_examples = max_examples
        self._out: list[memoryview] = []
        self._tail = b""           # the line being read, not yet ended
        self._skip_from = 0        # line number of an overlong line being read past (0: none)
        self._skip_head = b""
        self._lines = 0            # lines ended so far
        self._eof = False
        self.removed = array("q")
        self.reasons: Counter[str] = Counter()
        self.examples: list[tuple[int, str, str]] = []

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._out and not self._eof:
            self._fill()
        if not self._out:
            return 0
        chunk = self._out[0]
        n = min(len(buffer), len(chunk))
        buffer[:n] = chunk[:n]
        if n == len(chunk):
            self._out.pop(0)
        else:
            self._out[0] = chunk[n:]
        return n

    def _remove(self, line: int, reason: str, text: bytes) -> None:
        self.removed.append(line)
        self.reasons[reason] += 1
        if len(self.examples) < self._max_examples:
            self.examples.append((line, reason, quote(text)))

    def _fill(self) -> None:
        data = self._src.read(self._block)
        if not data:
            self._eof = True
            if self._skip_from:
                self._lines += 1
                self._remove(self._skip_from, TOO_LONG, self._skip_head)
            elif self._tail:
                self._emit_lines(self._tail, final=True)
            return
        if self._skip_from:  # inside an overlong line: drop bytes up to its end
            end = data.find(b"\n")
            if end < 0:
                return
            self._lines += 1
            self._remove(self._skip_from, TOO_LONG, self._skip_head)
            self._skip_from = 0
            data = data[end + 1:]
        data = self._tail + data
        last = data.rfind(b"\n")
        if last < 0:
            self._tail = data
        else:
            self._tail = data[last + 1:]
            self._emit_lines(data[:last + 1], final=False)
        if len(self._tail) > MAX_LINE_BYTES + 1:  # + 1: a "\r" before the "\n" still to come
            self._skip_from, self._skip_head = self._lines + 1, self._tail[:QUOTE_BYTES]
            self._tail = b""

    def _emit_lines(self, block: bytes, final: bool) -> None:
        """Pass ``block`` (whole lines; the last may lack its ``\\n`` when ``final``) on, less
        its bad lines."""
        if self._clean(block):
            self._lines += block.count(b"\n") + (1 if final and not block.endswith(b"\n") else 0)
            self._out.append(memoryview(block))
            return
        kept = []
        lines = block.split(b"\n")
        if lines[-1] == b"":
            lines.pop()
            ends = True
        else:
            ends = False  # the file's last line, without a line end
        for i, line in enumerate(lines):
            self._lines += 1
            body = line[:-1] if line.endswith(b"\r") else line
            if len(body) > MAX_LINE_BYTES:
                self._remove(self._lines, TOO_LONG, body)
                continue
            try:
                body.decode("utf-8")
            except UnicodeDecodeError:
                self._remove(self._lines, NOT_UTF8, body)
                continue
            kept.append(line + b"\n" if ends or i < len(lines) - 1 else line)
        if kept:
            self._out.append(memoryview(b"".join(kept)))

    @staticmethod
    def _clean(block: bytes) -> bool:
        if not block.isascii():
            try:
                block.decode("utf-8")
            except UnicodeDecodeError:
                return False
        if len(block) <= MAX_LINE_BYTES:
            return True
        ends = np.flatnonzero(np.frombuffer(block, np.uint8) == 10)
        starts = np.concatenate(([0], ends + 1))
        stops = np.concatenate((ends, [len(block)]))
        return int((stops - starts).max()) <= MAX_LINE_BYTES
