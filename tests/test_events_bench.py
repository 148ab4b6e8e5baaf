"""bench.events_bench at a small size: the generated files hold the same events, and every job
reads them all."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:   # bench/ is not installed
    sys.path.insert(0, str(REPO))

from bench import events_bench  # noqa: E402


def test_generated_events_are_read_whole_by_every_job(tmp_path):
    files = events_bench.make_events(20_000, tmp_path / "events")
    assert events_bench.make_events(20_000, tmp_path / "events") == files  # cached
    for path in files.values():
        ours = events_bench.job_read_events(str(path))
        assert ours["rows"] == 20_000 and ours["dropped"] == 0
        assert events_bench.job_pyarrow_read(str(path))["rows"] == 20_000
        assert events_bench.job_duckdb_read(str(path))["rows"] == 20_000
        groups = events_bench.job_anchor(str(path))["groups"]
        assert 0 < groups <= 20_000
        whole = events_bench.job_ingest(str(path))   # the whole pmrs ingest: one pair per group
        assert whole["rows"] == 20_000 and whole["songs_created"] > 0
