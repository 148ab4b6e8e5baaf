"""A build killed with SIGKILL while the server is serving leaves the old bundle served."""

import os
import shutil
import signal
import subprocess
import sys
import time

from pmrs import connect
from pmrs.indexing import IndexerConfig, build_bundle
from pmrs.serving.contract import current_bundle
from pmrs_server.main import serve


def test_killed_build_leaves_the_old_bundle_served(serving_workdir, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(serving_workdir, work, symlinks=True)
    old = build_bundle(work, IndexerConfig(recall_queries=50), show_progress=False)
    running = serve(work, bind="127.0.0.1:0", poll_seconds=0.1)
    try:
        with connect(running.address) as client:
            assert client.info().version == old.name
            # A build that is killed outright: nothing gets to clean up after it.
            slow = tmp_path / "slow.toml"  # many recall queries: a build that lasts long enough to kill
            slow.write_text("[indexer]\nrecall_queries = 200000\n")
            proc = subprocess.Popen([sys.executable, "-m", "pmrs_indexer.cli", "build", "--workdir", str(work),
                                     "--config", str(slow), "-q"],
                                    env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not any(
                    p.name.startswith(".") and p.is_dir() for p in (work / "bundles").iterdir()):
                time.sleep(0.01)
            assert proc.poll() is None, "the build ended before it could be killed"
            assert any(p.name.startswith(".") and p.is_dir() for p in (work / "bundles").iterdir())
            proc.send_signal(signal.SIGKILL)
            assert proc.wait() == -signal.SIGKILL
            time.sleep(0.5)  # several watcher polls
            assert current_bundle(work) == old
            assert client.info().version == old.name
            assert client.song(_any_song(old)).song_id == _any_song(old)
            # The next build cleans up after the killed one and is picked up.
            new = build_bundle(work, IndexerConfig(recall_queries=50, seed=1), show_progress=False)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and client.info().version != new.name:
                time.sleep(0.05)
            assert client.info().version == new.name
            hidden = [p for p in (work / "bundles").iterdir() if p.name.startswith(".") and p.is_dir()]
            assert not hidden
    finally:
        running.stop(grace=1)


def _any_song(bundle_dir):
    import numpy as np

    return np.load(bundle_dir / "song_ids.npy", allow_pickle=False)[0].decode()
