"""Worker processes that end with their parent.

A pool's worker waits on a queue whose ends every worker holds, so it never sees the queue close
when the parent is killed (``kill -9`` gives the parent no chance to stop its pool): it would live
on, re-parented, holding its memory. :func:`exit_with_parent`, called in the worker (a pool
initializer), ends it instead.
"""

from __future__ import annotations

import os
import threading
import time

#: How often a worker checks that its parent is alive, in seconds.
PARENT_POLL_S = 0.5


def exit_with_parent(parent: int, poll_s: float = PARENT_POLL_S) -> threading.Thread:
    """Start a daemon thread that ends this process (``os._exit(1)``) within ``poll_s`` seconds
    of ``parent`` (a pid: the caller's parent when the pool was made) no longer being its parent.

    Call it in the worker, e.g. from a pool initializer given ``os.getpid()`` of the parent. The
    check is ``os.getppid()``, so it also covers a parent that died before the worker started.
    Returns the (started) thread.
    """
    thread = threading.Thread(target=_watch, args=(parent, poll_s), name="exit-with-parent",
                              daemon=True)
    thread.start()
    return thread


def _watch(parent: int, poll_s: float) -> None:
    while os.getppid() == parent:
        time.sleep(poll_s)
    os._exit(1)
