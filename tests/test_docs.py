"""The documents a user follows step by step name every step, in an order that works."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_rebuild_cycle_of_live_md_retrains_the_neighbourhood_model_before_the_build():
    # following a cycle without `pmrs train-neighbours` makes `indexer build` refuse the stale run
    text = (ROOT / "docs" / "LIVE.md").read_text()
    cycle = text.split("## Rebuilds take the log in", 1)[1].split("\n## ", 1)[0]
    steps = ["pmrs ingest", "pmrs train-wmf", "pmrs train-neighbours", "pmrs train-cnn", "pmrs predict",
             "indexer build"]
    at = [cycle.find(f"`{s}") for s in steps]
    assert all(i >= 0 for i in at), dict(zip(steps, at))
    assert at == sorted(at), dict(zip(steps, at))


def test_the_readme_runs_the_neighbourhood_model_on_real_data_before_the_build():
    text = (ROOT / "README.md").read_text()
    real = text.split("## Running on the real Million Song Dataset", 1)[1].split("\n## ", 1)[0]
    assert real.index("pmrs train-neighbours") < real.index("indexer build")
    assert "/data/pmrs " not in real and "--workdir /data/pmrs\n" not in real   # (a folder named pmrs)
