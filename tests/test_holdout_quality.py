"""The issue's quality bar on the synthetic world: WMF beats popularity clearly on held-out plays."""

import json

from pmrs.evaluation.holdout import HoldoutConfig, evaluate_holdout
from pmrs.ingest import ingest
from pmrs.synth.generate import synthesize
from pmrs.synth.world import SynthConfig
from pmrs.collaborative.wmf import WMFConfig


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


# Issue 12's bar, and issue 25's: on differently shaped worlds, PMRS's default run (no settings
# given: they are chosen inside the training split) is at least as good as EASE and as the best
# reference model of the same report (their settings chosen on the same validation split) on
# mAP@500 and recall@50.
import pytest  # noqa: E402

from pmrs.cli import main  # noqa: E402
from pmrs.evaluation.holdout import PMRS_MODELS  # noqa: E402
from pmrs.evaluation.baselines import REFERENCE_MODELS  # noqa: E402

from worlds import write_independent_world  # noqa: E402

#: Where a tuned reference is still above PMRS, as measured: (world, metric, reference). A new
#: gap fails the test; a known one marks it xfail (docs/ARCHITECTURE.md, "EASE").
KNOWN_GAPS = {("independent", "recall@50", "implicit-bm25")}


@pytest.fixture(scope="module", params=["default", "harder", "independent"])
def world_report(request, tmp_path_factory):
    world = request.param
    root = tmp_path_factory.mktemp(f"quality-{world}")
    data, work = root / "data", root / "work"
    if world == "independent":  # a real-format file written without pmrs synth
        write_independent_world(data, users=1500, songs=600, seed=0)
    else:
        assert main(["synth", str(data), "--preset", world, "--users", "1500", "--songs", "600",
                     "--no-audio", "-q"]) == 0
    assert main(["ingest", str(data), "--workdir", str(work), "-q"]) == 0
    assert main(["evaluate", "--holdout", "--workdir", str(work), "--test-users", "0.5",
                 "--run", "ev", "-q"]) == 0
    return world, json.loads((work / "reports" / "ev" / "metrics.json").read_text()), \
        (work / "reports" / "ev" / "report.md").read_text()


def test_default_run_is_at_or_above_ease(world_report):
    world, m, report = world_report
    assert m["config"]["settings"] == "selected on validation"
    assert list(m["models"]) == [*PMRS_MODELS, *REFERENCE_MODELS]
    assert report.index("| model | kind | map@500 | recall@50") < report.index("## All metrics")
    assert "| ease | regularization" in report or "| ease | library defaults" in report
    for key in ("map@500", "recall@50"):
        assert m["models"]["pmrs"][key] >= m["models"]["ease"][key], (world, key, m["models"]["pmrs"][key],
                                                                      m["models"]["ease"][key])


def test_default_run_matches_the_best_reference_model(world_report):
    world, m, _ = world_report
    pmrs = m["models"]["pmrs"]
    gaps = set()
    for key in ("map@500", "recall@50"):
        best = max(m["models"][r][key] for r in REFERENCE_MODELS)
        if pmrs[key] < best:
            gaps.add((world, key, m["best_reference"][key]))
        assert m["lift"][key] == round(pmrs[key] / best, 3)
    assert gaps <= KNOWN_GAPS, (gaps, {k: (pmrs[k], m["best_reference"][k]) for k in ("map@500", "recall@50")})
    if gaps:
        pytest.xfail(f"known gap: {sorted(gaps)}")
