"""A bundle holds any number of sources: a third one, in a space of its own, is blended, listed,
re-ranked and answered without any change to the serving code."""

import shutil

import numpy as np
import pytest

import pmrs
from pmrs.indexing import IndexerConfig, SourceInput, build_bundle
from pmrs.interactions import INTERACTIONS_DIR, Interactions
from pmrs.serving.default_lists import compute_default_lists
from pmrs.serving.recommend import known_user_query, listed_items, recommend


@pytest.fixture(scope="module")
def three(serving_workdir, tmp_path_factory):
    work = tmp_path_factory.mktemp("sources") / "work"
    shutil.copytree(serving_workdir, work)
    inter = Interactions.load(work / INTERACTIONS_DIR)
    rng = np.random.default_rng(5)
    ids = inter.song_ids[::2]                     # half the played songs, and two songs of its own
    ids = np.concatenate([ids, np.array([b"SOPROBEONLY000001", b"SOPROBEONLY000002"], dtype=ids.dtype)])
    probe = SourceInput("probe", ids, rng.normal(size=(len(ids), 6)).astype(np.float32), space="probe",
                        covers_cold=True, default_share=0.3)
    # (without the metadata source the indexer adds from the catalog: the probe is the third)
    out = build_bundle(work, IndexerConfig(recall_queries=50, metadata=False), extra_sources=[probe],
                       show_progress=False)
    with pmrs.Recommender.open(out) as rec:
        yield rec, probe


def test_the_third_source_is_described_and_shares_its_default(three):
    rec, _ = three
    info = rec.info()
    assert [s.name for s in info.sources] == ["collaborative", "acoustic", "probe"]
    probe = info.sources[2]
    assert (probe.space, probe.covers_cold, probe.vectors, probe.dimension) == ("probe", True, 34, 6)
    assert probe.default_share == pytest.approx(0.3) and info.sources[0].default_share == pytest.approx(0.5)
    assert rec.song("SOPROBEONLY000001").sources == ("probe",)


def test_a_source_outside_the_wmf_space_is_queried_with_the_listeners_mean_vector(three):
    rec, probe = three
    b = rec.bundle
    order = np.argsort(probe.song_ids)
    ids, vectors = probe.song_ids[order], probe.vectors[order]
    for u in range(0, b.n_users, 20):
        user = b.user_ids[u].decode()
        played = {b.song_id(r) for r in b.played(u)}
        mine = [i for i, s in enumerate(ids) if s.decode() in played]
        if not mine:
            continue
        scores = vectors @ vectors[mine].mean(axis=0)
        expected = [ids[i].decode() for i in np.argsort(-scores, kind="stable") if ids[i].decode() not in played][:5]
        got = rec.recommend(user, k=5, shares={"probe": 1.0})
        assert got.song_ids == expected and all(s.sources[-1] == "probe" for s in got.songs)


def test_default_lists_blend_three_sources_and_equal_the_online_answer(three):
    rec, _ = three
    b = rec.bundle
    lists = b.lists["recommend"]
    assert set(lists.quotas) == {"collaborative", "acoustic", "probe"} and lists.quotas["probe"] == 3
    seen = 0
    for u in range(b.n_users):
        items = listed_items(lists, u)
        assert items == recommend(b, known_user_query(b, u), 10), u
        seen |= int(np.bitwise_or.reduce([it.sources for it in items]))
    assert seen == 0b111
    pooled = compute_default_lists(b, "similar", workers=1)
    assert np.array_equal(pooled["rows"], b.lists["similar"].rows)


def test_similar_songs_by_the_new_source_and_mixed(three):
    rec, _ = three
    only = rec.similar_songs("SOPROBEONLY000002", k=5)        # no plays, no audio: probe alone
    assert len(only.songs) == 5 and all(s.sources == ("probe",) for s in only.songs)
    assert rec.similar_songs("SOPROBEONLY000002", k=5, mode="probe").song_ids == only.song_ids
    with pytest.raises(pmrs.NotFound, match="no collaborative|no plays"):
        rec.similar_songs("SOPROBEONLY000002", mode="collaborative")
    with pytest.raises(pmrs.InvalidArgument, match="unknown source"):
        rec.recommend(rec.bundle.user_ids[0].decode(), shares={"lyrics": 0.5})
