"""Writes that once broke a later rebuild or were counted wrong (issue 22): each is refused with
InvalidArgument or taken in without harm."""

import shutil

import numpy as np
import pytest

import pmrs
from pmrs.interactions import INTERACTIONS_DIR, MAX_COUNT, Interactions
from servers import work_with_bundle


@pytest.fixture(scope="module")
def work(serving_workdir, tmp_path_factory):
    return work_with_bundle(serving_workdir, tmp_path_factory, "hardening")


@pytest.fixture()
def fresh(work, tmp_path):
    w = tmp_path / "w"
    shutil.copytree(work, w)
    return w


def test_play_counts_on_one_pair_never_wrap_and_the_rebuild_trains(serving_workdir, fresh):
    # three valid calls of 10,000 x 100,000 plays of one pair: 3e9 plays, past int32
    from pmrs.cli import main
    from pmrs.collaborative.wmf import load_run

    with pmrs.Recommender.open(fresh, live=True) as rec:
        b = rec.bundle
        user, song = "heavy-listener", b.song_id(0)
        for _ in range(3):
            rec.record_plays(user, [(song, 100_000)] * 10_000)
        assert rec.live.users[user].counts.sum() == 3e9
        assert rec.recommend(user, k=5).songs    # the live vector is finite
    data, cfg = serving_workdir.parent / "data", serving_workdir.parent / "c.toml"
    common = ["--workdir", str(fresh), "--config", str(cfg), "-q"]
    assert main(["ingest", str(data)] + common) == 0
    inter = Interactions.load(fresh / INTERACTIONS_DIR)
    assert inter.matrix[inter.user_index(user), inter.song_index(song)] == MAX_COUNT   # capped, not wrapped
    assert (inter.matrix.data > 0).all()
    assert main(["train-wmf", "--run", "after-heavy", "--no-select"] + common) == 0
    model, _, _ = load_run(fresh / "models" / "wmf" / "after-heavy")
    assert np.isfinite(model.user_factors).all() and np.isfinite(model.song_factors).all()
