"""How calls reach the servicer: a ``grpc.aio`` server on an event-loop thread of its own, the
server's transport limits, and the request guard (malformed bytes, slow senders).

Why asyncio (docs/ARCHITECTURE.md, "Serving throughput"): the thread-per-call server hands each
call to a worker thread as soon as its headers arrive, and the thread then waits for the request
body. Two connections that sent half a request held both worker threads, and Ping, Recommend and
the health check all timed out until they went away. Here the event loop reads every request;
no thread waits on a client. Then:

- Ping, GetBundleInfo and GetSong (:data:`LOOP_METHODS`) and the health service run on the event
  loop itself: they never queue behind Recommend or SimilarSongs, let alone the compute slot.
- Recommend and SimilarSongs run in a pool of ``workers`` threads; the servicer's compute slot
  still bounds how many compute at once (a call answered from the default lists takes none).
- A request must arrive whole within :data:`REQUEST_READ_SECONDS` of its headers, or the call
  ends with DEADLINE_EXCEEDED (a slow sender holds at most a little memory, for a bounded time).
- Bytes that do not decode as the request message (bad wire format, invalid UTF-8 in a string
  field) are answered INVALID_ARGUMENT, logged at debug level only (no traceback per request).

Every limit is a named constant below; docs/SERVING.md ("Limits") states them.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from typing import Any, Awaitable, Callable, TypeVar

import grpc
from google.protobuf import message_factory
from google.protobuf.message import DecodeError

from pmrs.v1 import recommender_pb2 as pb

from .auth import WRITE_METHODS
from .servicer import NeedsWorker

log = logging.getLogger("pmrs.server")

T = TypeVar("T")

SERVICE = pb.DESCRIPTOR.services_by_name["Recommender"]

# --- limits: one place (docs/SERVING.md, "Limits") -------------------------------------------
#: Connections open at once; more are refused by gRPC core until some close.
MAX_CONNECTIONS = 1000
#: Calls in flight on one connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS); a client's further
#: calls wait in its own channel.
MAX_CONCURRENT_STREAMS = 64
#: Seconds from a call's headers to its whole request message; then DEADLINE_EXCEEDED.
REQUEST_READ_SECONDS = 10.0
#: Milliseconds a new connection gets to finish its handshake (TLS, HTTP/2 preface and settings).
HANDSHAKE_TIMEOUT_MS = 10_000
#: Milliseconds without traffic on a connection before the server pings it ...
KEEPALIVE_TIME_MS = 60_000
#: ... and milliseconds it waits for the ping's answer before closing the connection.
KEEPALIVE_TIMEOUT_MS = 20_000
#: Milliseconds any ping of the server (keepalive, or flow control's) may go unanswered before
#: the connection is closed (GOAWAY; its calls fail).
PING_TIMEOUT_MS = 20_000
#: Milliseconds a connection may stay open with no call in flight before the server closes it
#: (GOAWAY; gRPC clients reconnect by themselves on their next call).
MAX_CONNECTION_IDLE_MS = 300_000
#: Longest status message sent, characters: a longer one (e.g. quoting a huge id) is cut, so it
#: never exceeds gRPC's metadata limit (which would turn the status into RESOURCE_EXHAUSTED).
MAX_DETAILS_CHARS = 1024
#: Methods answered on the event loop: cheap, and never behind a compute slot.
LOOP_METHODS = frozenset({"Ping", "GetBundleInfo", "GetSong"})
#: Methods that write (``server.auth.WRITE_METHODS``) run in a pool of their own,
#: :data:`WRITE_WORKERS` threads, which mostly wait for the write log's fsync; concurrent
#: RecordPlays calls are committed together (``pmrs.live.state``: group commit), so more threads
#: mean more plays per fsync, and reads never queue behind a write.
WRITE_WORKERS = 16
#: Methods tried on the event loop first: answered there when the default lists hold the answer
#: (a lookup), moved to a worker thread when they must compute.
LOOKUP_FIRST_METHODS = frozenset({"Recommend", "SimilarSongs"})


def server_options(max_message_bytes: int) -> list[tuple[str, int]]:
    """The channel arguments of the server: message sizes (bytes) and the limits above."""
    return [("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            # no SO_REUSEPORT: a second server on a busy port must fail, not share it silently
            ("grpc.so_reuseport", 0),
            ("grpc.max_allowed_incoming_connections", MAX_CONNECTIONS),
            ("grpc.max_concurrent_streams", MAX_CONCURRENT_STREAMS),
            ("grpc.server_handshake_timeout_ms", HANDSHAKE_TIMEOUT_MS),
            ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
            ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
            ("grpc.http2.ping_timeout_ms", PING_TIMEOUT_MS),
            ("grpc.max_connection_idle_ms", MAX_CONNECTION_IDLE_MS)]


# --- the event loop ------------------------------------------------------------------------


class LoopThread:
    """An asyncio event loop running in a daemon thread; ``run(coro)`` from any other thread."""

    def __init__(self, name: str = "pmrs-grpc-loop"):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()
        self.loop.close()

    def run(self, coro: Awaitable[T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and wait (at most ``timeout`` seconds) for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        """Stop the loop and wait for its thread (idempotent)."""
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join()


class WorkerPool:
    """``threads`` daemon threads that run blocking calls for coroutines: ``await pool.run(fn,
    *args)``. A leaner hand-off than ``loop.run_in_executor`` (one queue put and one
    ``call_soon_threadsafe`` per call; measured 14-41 us against 29-115 us a round trip here)."""

    def __init__(self, threads: int, name: str = "pmrs-rpc"):
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, name=f"{name}_{i}", daemon=True)
                         for i in range(threads)]
        for t in self._threads:
            t.start()

    def run(self, fn: Callable[..., T], *args) -> "asyncio.Future[T]":
        """Run ``fn(*args)`` in a pool thread; a future of the running loop for its result."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put((loop, future, fn, args))
        return future

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            loop, future, fn, args = job
            try:
                result, error = fn(*args), None
            except BaseException as exc:  # (handed to the awaiting coroutine)
                result, error = None, exc
            try:
                loop.call_soon_threadsafe(_settle, future, result, error)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass

    def shutdown(self) -> None:
        """Let the threads end once the calls queued so far are done (does not wait)."""
        for _ in self._threads:
            self._queue.put(None)


def _settle(future: asyncio.Future, result, error: BaseException | None) -> None:
    if future.done():  # (the call was cancelled meanwhile)
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


# --- requests ------------------------------------------------------------------------------


class Malformed:
    """What the request deserializer gives for bytes that are not a valid request message."""

    __slots__ = ("reason",)

    def __init__(self, reason: str):
        self.reason = reason


def safe_deserializer(message_class: type) -> Callable[[bytes], Any]:
    """``message_class.FromString``, giving :class:`Malformed` instead of raising ``DecodeError``
    (gRPC would log a traceback and answer INTERNAL)."""
    parse = message_class.FromString

    def deserialize(data: bytes):
        try:
            return parse(data)
        except DecodeError as exc:
            return Malformed(str(exc))

    return deserialize


class _Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(details)
        self.code, self.details = code, details


class SyncContext:
    """The blocking servicer's view of an aio call context: ``abort`` raises (the servicer's
    methods call it as they would on the thread-per-call server); ``on_loop`` says the call runs
    on the event loop (where it must not compute: ``servicer.NeedsWorker``); everything else is
    the aio context's (``time_remaining()`` in seconds, ``peer()``, ...)."""

    __slots__ = ("_context", "on_loop")

    def __init__(self, context: grpc.aio.ServicerContext, on_loop: bool = False):
        self._context = context
        self.on_loop = on_loop

    def abort(self, code: grpc.StatusCode, details: str):
        raise _Aborted(code, details)

    def time_remaining(self) -> float | None:
        return self._context.time_remaining()

    def __getattr__(self, name: str):
        return getattr(self._context, name)


async def _read_request(requests, context: grpc.aio.ServicerContext, read_seconds: float):
    """The call's one request message, or abort: DEADLINE_EXCEEDED when it has not arrived whole
    within ``read_seconds``, INVALID_ARGUMENT when it is missing or malformed."""
    try:
        async with asyncio.timeout(read_seconds):
            request = await anext(requests)
    except TimeoutError:
        await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED,
                            f"the request message did not arrive within {read_seconds:g} s")
    except StopAsyncIteration:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the call carried no request message")
    if isinstance(request, Malformed):
        log.debug("malformed request from %s: %s", context.peer(), request.reason)
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed request: {request.reason}")
    return request


def _handler(name: str, method: Callable, pool: WorkerPool | None, read_seconds: float,
             loop_first: bool = False, auth=None, metrics=None):
    """An aio handler that reads the request under the guard, then runs the blocking servicer
    ``method`` on the loop (``pool`` None) or in ``pool``, mapping its abort onto the call.
    ``loop_first``: try the call on the loop first, and move it to ``pool`` only when it needs to
    compute (a call answered from the default lists is a lookup: it never leaves the loop).
    ``auth``: a :class:`server.auth.Auth`, checked on the call's headers before its message is
    read (an unauthorised caller cannot make the server read a 16 MiB clip). ``metrics``: a
    :class:`server.metrics.ServerMetrics` told how every call ended."""

    if metrics is None:
        return _serve_call(name, method, pool, read_seconds, loop_first, auth)
    inner = _serve_call(name, method, pool, read_seconds, loop_first, auth)

    async def measured(requests, context: grpc.aio.ServicerContext):
        t0 = time.perf_counter()
        metrics.in_flight.inc()
        code, answer = "UNKNOWN", None
        try:
            answer = await inner(requests, context)
            code = "OK"
            return answer
        except BaseException:
            code = _code_name(context)
            raise
        finally:
            metrics.in_flight.dec()
            metrics.ended(name, code, time.perf_counter() - t0, getattr(answer, "precomputed", None))

    measured.__name__ = name
    return measured


def _code_name(context) -> str:
    """The status code a call was aborted with (``UNKNOWN`` when the transport does not say)."""
    try:
        code = context.code()
    except Exception:
        code = None
    return code.name if isinstance(code, grpc.StatusCode) else "CANCELLED" if code is None else str(code)


def _serve_call(name: str, method: Callable, pool: WorkerPool | None, read_seconds: float,
                loop_first: bool, auth):
    async def handle(requests, context: grpc.aio.ServicerContext):
        if auth is not None:
            denied = auth.check(name, context.invocation_metadata())
            if denied is not None:
                await context.abort(*denied)
        request = await _read_request(requests, context, read_seconds)
        try:
            if pool is None:
                return method(request, SyncContext(context))
            if loop_first:
                try:
                    return method(request, SyncContext(context, on_loop=True))
                except NeedsWorker:
                    pass
            return await pool.run(method, request, SyncContext(context))
        except _Aborted as exc:
            code, details = exc.code, exc.details
        except Exception as exc:  # (the servicer maps its own; this is the last line)
            log.exception("%s failed", name)
            code, details = grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}"
        if len(details) > MAX_DETAILS_CHARS:
            details = details[:MAX_DETAILS_CHARS] + "…"
        await context.abort(code, details)

    handle.__name__ = name
    return handle


def recommender_handler(servicer, pool: WorkerPool, read_seconds: float | None = None,
                        auth=None, write_pool: WorkerPool | None = None, metrics=None) -> grpc.GenericRpcHandler:
    """The ``pmrs.v1.Recommender`` service over the blocking ``servicer`` for an aio server: every
    method of the proto's service table, :data:`LOOP_METHODS` on the loop, the others in ``pool``.

    Each method is registered request-streaming (the wire format of a unary call is the same) so
    that the handler starts when the headers arrive and can bound the wait for the message
    (``read_seconds``, default :data:`REQUEST_READ_SECONDS`).
    """
    read_seconds = REQUEST_READ_SECONDS if read_seconds is None else float(read_seconds)
    handlers = {}
    for method in SERVICE.methods:
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        handlers[method.name] = grpc.stream_unary_rpc_method_handler(
            _handler(method.name, getattr(servicer, method.name),
                     None if method.name in LOOP_METHODS
                     else (write_pool or pool) if method.name in WRITE_METHODS else pool, read_seconds,
                     loop_first=method.name in LOOKUP_FIRST_METHODS, auth=auth, metrics=metrics),
            request_deserializer=safe_deserializer(request_class),
            response_serializer=response_class.SerializeToString)
    return grpc.method_handlers_generic_handler(SERVICE.full_name, handlers)
