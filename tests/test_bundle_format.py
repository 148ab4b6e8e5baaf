"""Bundle format fixtures: a bundle written by an earlier indexer still opens, and today's code
gives the answers that indexer's code gave over it (tests/fixtures/README.md)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import pmrs
from pmrs.serving import contract
from pmrs.serving.bundle import Bundle

FIXTURES = Path(__file__).parent / "fixtures"
V1 = FIXTURES / "bundle_v1"
ANSWERS = json.loads((FIXTURES / "bundle_v1_answers.json").read_text())


#: Scores are float32 sums whose last digits move with the numpy / FAISS build (a recorded
#: 0.20069 read 0.2007 after an upgrade); ids, order and sources must not move at all.
SCORE_TOLERANCE = 5e-5


def same_answer(got, want) -> bool:
    """Whether ``got`` and a recorded answer ``want`` (``[song_id, score, sources]`` rows) name the
    same songs in the same order from the same sources, with scores within ``SCORE_TOLERANCE``."""
    if not isinstance(got, list) or not isinstance(want, list) or len(got) != len(want):
        return got == want
    return all(g[0] == w[0] and g[2] == w[2] and abs(g[1] - w[1]) <= SCORE_TOLERANCE for g, w in zip(got, want))


def _triples(recs):
    # the v1 answers record sources as the proto's enum: 1 collaborative, 2 acoustic, 3 both
    enum = {("collaborative",): 1, ("acoustic",): 2, ("collaborative", "acoustic"): 3}
    return [[s.song_id, round(s.score, 5), enum[s.sources]] for s in recs.songs]


@pytest.fixture(scope="module")
def rec():
    with pmrs.Recommender.open(V1, verify=True) as r:
        yield r


def test_v1_bundle_opens_with_both_sources_and_its_lists(rec):
    info = rec.info()
    assert info.format_version == 1
    assert [s.name for s in info.sources] == ["collaborative", "acoustic"]
    assert [s.covers_cold for s in info.sources] == [False, True]
    assert {dl.kind: dl.k for dl in info.default_lists} == {"recommend": 10, "similar": 10}
    assert info.defaults.shares == {"acoustic": 0.2}
    assert rec.song(rec.bundle.song_id(0)).sources


@pytest.mark.parametrize("case", range(len(ANSWERS["recommend"])), ids=lambda i: f"r{i}")
def test_recommend_answers_unchanged(rec, case):
    a = ANSWERS["recommend"][case]
    got = rec.recommend(a["user_id"], k=a["k"], shares={"acoustic": a["share"]}, diversity=a["diversity"],
                        include_played=a["include_played"], filters=pmrs.Filters(genres=tuple(a["genres"])))
    assert same_answer(_triples(got), a["songs"])


def test_similar_answers_unchanged(rec):
    for a in ANSWERS["similar"]:
        if a["songs"] == "NOT_FOUND":
            with pytest.raises(pmrs.NotFound):
                rec.similar_songs(a["song_id"], k=a["k"], mode=a["mode"], shares={"acoustic": a["share"]},
                                  diversity=a["diversity"])
            continue
        got = rec.similar_songs(a["song_id"], k=a["k"], mode=a["mode"], shares={"acoustic": a["share"]},
                                diversity=a["diversity"])
        assert same_answer(_triples(got), a["songs"]), a


def test_seed_answers_unchanged(rec):
    for a in ANSWERS["seeds"]:
        got = rec.recommend(seed_song_ids=a["seeds"])
        assert got.folded_in and same_answer(_triples(got), a["songs"])


def test_default_requests_come_from_the_lists_and_equal_the_computed_answer(rec):
    for u in range(rec.bundle.n_users):
        uid = rec.bundle.user_ids[u].decode()
        listed = rec.recommend(uid)
        computed = rec.recommend(uid, k=10, shares={"acoustic": 0.2}, diversity=0.0,
                                 filters=pmrs.Filters(exclude_artists=("no such artist",)))
        assert listed.precomputed and not computed.precomputed
        assert [(s.song_id, s.sources) for s in listed.songs] == [(s.song_id, s.sources) for s in computed.songs]
        np.testing.assert_allclose([s.score for s in listed.songs], [s.score for s in computed.songs], atol=SCORE_TOLERANCE)


def test_unknown_format_is_refused_with_a_clear_message(tmp_path):
    bad = tmp_path / "b"
    shutil.copytree(V1, bad)
    m = json.loads((bad / contract.MANIFEST_FILE).read_text())
    m["format_version"] = 99
    (bad / contract.MANIFEST_FILE).write_text(json.dumps(m))
    with pytest.raises(contract.ContractError, match="format version 99.*reads versions 1, 2"):
        Bundle.open(bad)


# Versions 2 and 3: bundles written by the indexer of the last commit that wrote each format, and
# the answers that commit's code gave (tests/fixtures/record_answers.py; sources as names).
LATER = {"v2": (2, ["collaborative", "acoustic", "metadata"]),
         "v3": (3, ["collaborative", "acoustic", "metadata", "neighbours"])}


def _recorded(recs):
    return [[s.song_id, round(s.score, 5), list(s.sources)] for s in recs.songs]


def _filters(a):
    return pmrs.Filters(genres=tuple(a["genres"])) if a["genres"] else None


def _differences(rec, answers, kind):
    """Every recorded answer of ``kind`` that today's code gives differently: (request, recorded,
    got)."""
    out = []
    for a in answers[kind]:
        req = {k: v for k, v in a.items() if k != "songs"}
        if kind == "recommend":
            got = _recorded(rec.recommend(a["user_id"], k=a["k"], shares=a["shares"], diversity=a["diversity"],
                                          include_played=a["include_played"], filters=_filters(a)))
        elif kind == "seeds":
            r = rec.recommend(seed_song_ids=a["seeds"])
            got = _recorded(r) if r.folded_in else "NOT_FOLDED_IN"
        else:
            try:
                got = _recorded(rec.similar_songs(a["song_id"], k=a["k"], mode=a["mode"], shares=a["shares"],
                                                  diversity=a["diversity"]))
            except pmrs.NotFound:
                got = "NOT_FOUND"
        if not same_answer(got, a["songs"]):
            out.append((req, a["songs"], got))
    return out


@pytest.fixture(scope="module", params=sorted(LATER))
def later(request):
    name = request.param
    answers = json.loads((FIXTURES / f"bundle_{name}_answers.json").read_text())
    with pmrs.Recommender.open(FIXTURES / f"bundle_{name}", verify=True) as r:
        yield name, r, answers


def test_later_bundle_opens_with_its_format_and_sources(later):
    name, rec, answers = later
    version, sources = LATER[name]
    info = rec.info()
    assert info.format_version == version == answers["format_version"]
    assert [s.name for s in info.sources] == sources == answers["sources"]
    assert {dl.kind: dl.k for dl in info.default_lists} == {"recommend": 10, "similar": 10}


@pytest.mark.parametrize("kind", ["recommend", "similar", "seeds"])
def test_later_answers_unchanged(later, kind):
    name, rec, answers = later
    assert answers[kind]
    diffs = _differences(rec, answers, kind)
    assert not diffs, (f"{len(diffs)} of {len(answers[kind])} {kind} answers over bundle_{name} differ; first: "
                       + "\n".join(f"{req}\n  recorded {want}\n  now      {got}" for req, want, got in diffs[:5]))
