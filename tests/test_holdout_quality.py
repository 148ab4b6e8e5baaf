"""The issue's quality bar on the synthetic world: WMF beats popularity clearly on held-out plays."""

import json

from pmrs.evaluation.holdout import HoldoutConfig, evaluate_holdout
from pmrs.ingest import ingest
from pmrs.synth.generate import synthesize
from pmrs.synth.world import SynthConfig
from pmrs.wmf import WMFConfig


def test_wmf_recall_at_50_is_at_least_twice_popularity(tmp_path):
    synthesize(tmp_path / "data", SynthConfig(users=2000, songs=1200, no_audio=True, seed=3))
    ingest(tmp_path / "data", tmp_path / "work")
    out = evaluate_holdout(tmp_path / "work", WMFConfig(factors=32, iterations=10),
                           HoldoutConfig(test_users=0.2), show_progress=False)
    m = json.loads((out / "metrics.json").read_text())
    wmf, pop = m["models"]["wmf"], m["models"]["popularity"]
    assert wmf["recall@50"] >= 2.0 * pop["recall@50"]
    assert wmf["map@500"] > 2.0 * pop["map@500"]
    assert wmf["ndcg@10"] > pop["ndcg@10"] and wmf["auc"] > pop["auc"]
    assert wmf["coverage@50"] > pop["coverage@50"]
