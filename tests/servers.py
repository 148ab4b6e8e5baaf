"""A ``pmrs-server`` process for tests, and helpers for calls against it."""

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2_grpc

from pmrs.v1 import recommender_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parents[1]


class ServerProcess:
    """``python -m pmrs_server.main`` on a free port; ``address`` once it printed its ready line."""

    def __init__(self, workdir, log_path, *flags, env=None):
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_WAIT_POLICY": "PASSIVE", **(env or {})}
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pmrs_server.main", "--workdir", str(workdir), "--bind", "127.0.0.1:0",
             *flags], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=self.log, text=True)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in self.proc.stdout], daemon=True).start()
        try:
            line = lines.get(timeout=60)
        except queue.Empty:
            self.kill()
            raise AssertionError(f"server did not start: {self.stderr()}") from None
        assert line.startswith("pmrs-server listening on 127.0.0.1:"), (line, self.stderr())
        self.address = line.split()[-1]
        self.channel = grpc.insecure_channel(self.address)
        self.stub = pb_grpc.RecommenderStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)

    def stderr(self) -> str:
        self.log.flush()
        return Path(self.log_path).read_text()

    def stop(self, timeout=30) -> int:
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self.log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def wait_for(predicate, timeout=30.0, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return False


def code_of(call, *args, **kwargs):
    with pytest.raises(grpc.RpcError) as err:
        call(*args, **kwargs)
    return err.value.code(), err.value.details()


def work_with_bundle(serving_workdir, tmp_path_factory, name: str, **indexer) -> Path:
    """A copy of the session's tiny work directory with a bundle built (two sources unless
    ``indexer`` says otherwise), for a module's tests to write into."""
    import shutil

    from pmrs.indexing import IndexerConfig, build_bundle

    work = tmp_path_factory.mktemp(name) / "work"
    shutil.copytree(serving_workdir, work)
    build_bundle(work, IndexerConfig(**{"recall_queries": 20, "metadata": False, **indexer}), show_progress=False)
    return work
