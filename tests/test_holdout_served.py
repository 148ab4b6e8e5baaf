"""The hold-out report's ``pmrs`` row is what PMRS serves: its metrics equal metrics computed by
hand from ``pmrs.Recommender``'s answers over the bundle the report was served from."""

import json

import numpy as np
import pytest

from pmrs import Recommender
from pmrs.cli import main
from pmrs.evaluation.split import HoldoutConfig, make_split
from pmrs.interactions import INTERACTIONS_DIR, Interactions


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    data, work = root / "data", root / "work"
    assert main(["synth", str(data), "--users", "500", "--songs", "240", "--no-audio", "-q"]) == 0
    assert main(["ingest", str(data), "--workdir", str(work), "-q"]) == 0
    assert main(["evaluate", "--holdout", "--workdir", str(work), "--test-users", "0.2", "--run", "ev",
                 "--keep-bundle", "-q"]) == 0
    return work, work / "reports" / "ev"


def _by_hand(answers: dict[str, list[str]], held: dict[str, set[str]], k: int) -> dict[str, float]:
    """precision, recall and average precision at k, from song ids, averaged over the users."""
    p, r, ap = [], [], []
    for user, songs in answers.items():
        rel = held[user]
        hits, precisions = 0, []
        for i, s in enumerate(songs[:k]):
            if s in rel:
                hits += 1
                precisions.append(hits / (i + 1))
        p.append(hits / k)
        r.append(hits / len(rel))
        ap.append(sum(precisions) / min(len(rel), k))
    return {f"precision@{k}": float(np.mean(p)), f"recall@{k}": float(np.mean(r)), f"map@{k}": float(np.mean(ap))}


def test_the_pmrs_row_scores_the_served_answers(report):
    work, out = report
    metrics = json.loads((out / "metrics.json").read_text())
    row = metrics["models"]["pmrs"]
    inter = Interactions.load(work / INTERACTIONS_DIR)
    split = make_split(inter.matrix, HoldoutConfig(**{**metrics["config"]["holdout"],
                                                      "ks": tuple(metrics["config"]["holdout"]["ks"])}))
    ids = inter.song_ids
    held = {}
    for u in split.test_users:
        songs = split.test.indices[split.test.indptr[u]:split.test.indptr[u + 1]]
        if songs.size:
            held[inter.user_ids[u].decode()] = {ids[s].decode() for s in songs}
    assert len(held) == metrics["data"]["evaluated_users"] > 20
    with Recommender.open(out / "served") as rec:
        assert rec.sources == metrics["config"]["served"]["sources"]
        for k in (10, 50, 500):
            answers = {user: rec.recommend(user, k=k).song_ids for user in held}
            # nothing the user played in training comes back
            for user, songs in answers.items():
                u = inter.user_index(user)
                played = {ids[s].decode() for s in split.train.indices[split.train.indptr[u]:split.train.indptr[u + 1]]}
                assert not played & set(songs)
            for key, value in _by_hand(answers, held, k).items():
                assert row[key] == pytest.approx(value, abs=1e-9), key


def test_the_wmf_and_neighbours_rows_are_the_runs_the_bundle_was_built_from(report):
    _, out = report
    m = json.loads((out / "metrics.json").read_text())
    manifest = json.loads((out / "served" / "manifest.json").read_text())
    assert m["config"]["settings"] == "selected on validation"
    assert manifest["wmf"]["config"]["alpha"] == m["config"]["wmf"]["alpha"] if "wmf" in manifest else True
    shares = m["config"]["served"]["default_shares"]
    assert shares == pytest.approx(manifest["defaults"]["shares"] | {"collaborative": shares["collaborative"]})
    assert "acoustic" not in shares     # no CNN run for the split's latent space: said in the report
    assert "acoustic source is left out" in (out / "report.md").read_text()
