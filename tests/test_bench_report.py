"""bench.report: docs/BENCHMARKS.md rendered from bench/results/*.json."""

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:   # bench/ is not installed; `pytest` alone does not put the root on the path
    sys.path.insert(0, str(REPO))

from bench import report  # noqa: E402


def _write(folder: Path, name: str, doc) -> None:
    (folder / name).write_text(json.dumps(doc))


def test_known_and_unknown_result_files(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    _write(results, "wmf.json", {
        "benchmark": "wmf", "command": "python -m bench.run --only wmf", "date": "2031-02-03T04:05:06Z",
        "machine": {"cores": 4, "platform": "Linux-test", "python": "3.11.9", "memory_gb": 15.5},
        "factors": 32, "iterations": 7,
        "pmrs_train_wmf": {"mean_seconds_per_iteration": 1.234, "total_seconds": 9.87, "peak_rss_mb": 321},
        "bare_implicit": {"mean_seconds_per_iteration": 1.2, "wall_seconds": 4.5, "peak_rss_mb": 300},
        "per_iteration_ratio": 1.028, "within_limits": True})
    _write(results, "mystery.json", {"answer": 42, "speed_qps": 1234.5678, "label": "a | b",
                                     "nested": {"ignored": 1}})
    out = tmp_path / "docs" / "BENCHMARKS.md"
    report.write(results, out)
    text = out.read_text()
    assert list(out.parent.iterdir()) == [out]          # no temporary file left beside it

    known = text[text.index("### `wmf.json`"):text.index("### `mystery.json`")]
    assert "2031-02-03 04:05 UTC" in known
    assert "4 cores, 15.5 GB, Linux-test, Python 3.11.9" in known
    assert "`python -m bench.run --only wmf`" in known
    assert "| pmrs train-wmf | 1.23 | 9.87 | 321 |" in known
    assert "| bare implicit | 1.2 | 4.5 | 300 |" in known
    assert "| per-iteration ratio | 1.03 |" in known

    unknown = text[text.index("## Other results"):]
    assert "### `mystery.json`" in unknown
    assert "- measured: not recorded" in unknown
    assert "- machine: not recorded" in unknown
    assert "- command: not recorded" in unknown
    assert "| answer | 42 |" in unknown
    assert "| speed_qps | 1,235 |" in unknown
    assert "| label | a \\| b |" in unknown
    assert "`nested`" in unknown


def test_committed_benchmarks_md_is_current():
    committed = (REPO / "docs" / "BENCHMARKS.md").read_text()
    assert committed == report.render(REPO / "bench" / "results"), (
        "docs/BENCHMARKS.md is stale: run `python -m bench.report`")
