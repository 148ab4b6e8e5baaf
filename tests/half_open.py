"""A slow client on a raw socket: an HTTP/2 connection that starts gRPC calls and never finishes
sending them (no ``h2`` package needed; a few frames by hand).

``HalfOpenCall(address, method).open()`` sends the connection preface, an empty SETTINGS frame, the
HEADERS of a unary call to ``method`` and a DATA frame holding the first bytes of a gRPC message
that claims to be longer, without END_STREAM, then waits with the connection open until
``close()``, answering the server's PINGs as any HTTP/2 client does (so keepalive sees a live
peer). ``streams`` > 1 opens that many such calls on the one connection, 0 none (an idle connection);
``answer_pings=False`` plays a peer that went away, ``preface=False`` one that never speaks. This is what
stalled the thread-per-call server: each call held a worker thread until the client went away.
"""

from __future__ import annotations

import socket
import struct
import threading

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY = 0x0, 0x1, 0x3, 0x4, 0x6, 0x7
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    """One HTTP/2 frame: 24-bit length, type, flags, 31-bit stream id, payload."""
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def _literal(name: bytes, value: bytes) -> bytes:
    """HPACK literal header field without indexing, new name (both shorter than 127 bytes)."""
    assert len(name) < 127 and len(value) < 127
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def request_headers(path: str, authority: str) -> bytes:
    """An HPACK block for a gRPC POST to ``path`` (no Huffman coding, no dynamic table)."""
    block = b"\x83\x86"  # :method POST, :scheme http (static table 3 and 6)
    block += b"\x04" + bytes([len(path)]) + path.encode()            # :path, indexed name 4
    block += b"\x01" + bytes([len(authority)]) + authority.encode()  # :authority, indexed name 1
    return block + _literal(b"content-type", b"application/grpc") + _literal(b"te", b"trailers")


class HalfOpenCall:
    """``streams`` unary calls to ``method`` (e.g. "/pmrs.v1.Recommender/Recommend") on one raw
    connection to ``address`` (HOST:PORT), each with its headers and ``sent`` bytes of a message
    that announces ``claimed`` bytes; never finished."""

    def __init__(self, address: str, method: str, streams: int = 1, claimed: int = 100, sent: int = 10,
                 answer_pings: bool = True, preface: bool = True):
        self.address, self.method, self.streams = address, method, streams
        self.claimed, self.sent = claimed, sent
        self.answer_pings, self.preface = answer_pings, preface  # False: a dead peer / a silent one
        self.sock: socket.socket | None = None
        self.closed_by_server = threading.Event()  # set when the server closes the connection
        self.goaway = threading.Event()            # set when the server sent GOAWAY
        self.ended: dict[int, threading.Event] = {2 * i + 1: threading.Event() for i in range(streams)}
        """stream id -> set when the server ended that call (trailers or RST_STREAM)"""
        self._reader: threading.Thread | None = None
        self.frames: list[tuple[int, int, int]] = []  # (type, flags, stream) of each frame received

    def open(self) -> "HalfOpenCall":
        host, _, port = self.address.rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=5)
        out = PREFACE + frame(SETTINGS, 0, 0) if self.preface else b""
        for i in range(self.streams if self.preface else 0):
            stream = 2 * i + 1  # client streams are odd
            out += frame(HEADERS, END_HEADERS, stream, request_headers(self.method, self.address))
            message = b"\x00" + struct.pack(">I", self.claimed) + b"\x0a" * self.sent
            out += frame(DATA, 0, stream, message)  # no END_STREAM: more is "coming"
        if self.preface:
            self.sock.sendall(out)
            self.sock.sendall(frame(SETTINGS, ACK, 0))  # acknowledge the server's settings
        self.sock.settimeout(None)
        self._reader = threading.Thread(target=self._read, args=(self.sock,), daemon=True)
        self._reader.start()
        return self

    def _read(self, sock: socket.socket) -> None:
        """Read the server's frames until it closes; acknowledge its PINGs."""
        buf = b""
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
                while len(buf) >= 9:
                    length = int.from_bytes(buf[:3], "big")
                    if len(buf) < 9 + length:
                        break
                    kind, flags, payload = buf[3], buf[4], buf[9:9 + length]
                    stream = int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
                    self.frames.append((kind, flags, stream))
                    buf = buf[9 + length:]
                    if kind == PING and not flags & ACK and self.answer_pings:
                        sock.sendall(frame(PING, ACK, 0, payload))
                    elif kind == GOAWAY:
                        self.goaway.set()
                    elif stream in self.ended and (kind == RST_STREAM or (kind == HEADERS and flags & END_STREAM)):
                        self.ended[stream].set()
        except OSError:
            pass
        self.closed_by_server.set()

    def alive(self) -> bool:
        """True while the server has not closed the connection."""
        return self.sock is not None and not self.closed_by_server.is_set()

    def close(self) -> None:
        if self.sock is not None:
            sock, self.sock = self.sock, None
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
            if self._reader is not None:
                self._reader.join(5)

    def __enter__(self) -> "HalfOpenCall":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()
