"""The published protocols (`pmrs evaluate --protocol liang | msd-challenge`), EASE, and the
reference models' settings chosen on validation."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from worlds import write_independent_world

from pmrs.cli import main
from pmrs.collaborative import ease as ease_mod
from pmrs.collaborative.selection import SelectConfig
from pmrs.evaluation.baselines import GRIDS, references, settings_text
from pmrs.evaluation.liang import (
    FILE_ORDER,
    SONG_ID_ORDER,
    LiangConfig,
    liang_split,
    order_sentence,
    workdir_split,
)
from pmrs.evaluation.metrics import per_user_metrics
from pmrs.evaluation.msd_challenge import HIDDEN_FILES, SUBMISSION_FILE, read_challenge
from pmrs.evaluation.published import LIANG, MSD_CHALLENGE
from pmrs.ingest import ingest
from pmrs.interactions import Interactions

FIXTURE = Path(__file__).parent / "fixtures" / "msd_challenge"


# -- EASE ---------------------------------------------------------------------------------------

def _binary(seed=1, users=200, songs=40):
    m = sp.random(users, songs, density=0.2, random_state=seed, format="csr", dtype=np.float32)
    m.data = np.random.default_rng(seed).integers(1, 9, m.nnz).astype(np.float32)
    return m


def test_ease_is_the_ridge_regression_of_each_song_on_the_others():
    x = _binary()
    lam = 7.0
    b = ease_mod.fit_ease(x, lam)
    xd = (x.toarray() > 0).astype(np.float64)
    n = xd.shape[1]
    for j in range(n):   # brute force: song j regressed on every other song, no self-weight
        others = np.r_[0:j, j + 1:n]
        a = xd[:, others]
        want = np.linalg.solve(a.T @ a + lam * np.eye(n - 1), a.T @ xd[:, j])
        assert b[j, j] == 0.0
        assert np.allclose(b[others, j], want, atol=1e-5), j


def test_ease_blocks_give_the_same_matrix(monkeypatch):
    x = _binary(seed=2, songs=30)
    whole = ease_mod.fit_ease(x, 3.0)
    monkeypatch.setattr(ease_mod, "_BLOCK", 7)   # the in-place symmetrisation over several blocks
    assert np.allclose(ease_mod.fit_ease(x, 3.0), whole, atol=1e-6)


def test_ease_over_budget_is_skipped_with_the_reason():
    x = _binary()
    with pytest.raises(ease_mod.EaseTooLarge, match="over the budget"):
        ease_mod.fit_ease(x, 10.0, max_gib=1e-6)
    with pytest.raises(ease_mod.EaseTooLarge):
        ease_mod.check_fits(41_140, max_gib=6.0)     # the Liang MSD catalog: 6.3 GiB
    ease_mod.check_fits(41_140)                      # inside the default budget


def test_a_skipped_reference_says_why(monkeypatch):
    monkeypatch.setattr(ease_mod, "MAX_GIB", 1e-6)
    got = references(_binary(), ["ease", "popularity"])
    assert got["ease"].fitted is None and "GiB" in got["ease"].skipped
    assert settings_text(got["ease"].describe()).startswith("skipped: ")
    assert got["popularity"].fitted is not None


# -- reference settings -------------------------------------------------------------------------

def test_reference_settings_are_chosen_on_validation_or_left_at_defaults():
    x = _binary(seed=3, users=300, songs=50)
    tuned = references(x, ["ease", "implicit-cosine", "popularity"], select=SelectConfig())
    for name in ("ease", "implicit-cosine"):
        r = tuned[name]
        assert [t["settings"] for t in r.trials] == list(GRIDS[name])
        best = max(r.trials, key=lambda t: t["map@500+recall@50"])
        assert r.settings == best["settings"] and r.chosen
        assert "chosen on validation" in settings_text(r.describe())
    assert settings_text(tuned["popularity"].describe()) == "library defaults"
    plain = references(x, ["ease", "implicit-cosine"], select=SelectConfig(enabled=False))
    assert all(not r.trials and r.settings == {} for r in plain.values())
    assert settings_text(plain["implicit-cosine"].describe()) == "library defaults"


# -- metrics ------------------------------------------------------------------------------------

def test_capped_recall_divides_by_the_smaller_of_k_and_the_songs_to_find():
    relevant = sp.csr_matrix(np.array([[1, 1, 1, 1, 0, 0], [0, 0, 0, 0, 0, 1]]))
    lists = np.array([[0, 4, 1], [5, 0, 1]])
    got = per_user_metrics(lists, relevant, (2, 3))
    assert got["capped_recall@2"].tolist() == [0.5, 1.0]       # 1 hit of min(2, 4); 1 of min(2, 1)
    assert got["capped_recall@3"].tolist() == [2 / 3, 1.0]
    assert got["recall@3"].tolist() == [0.5, 1.0]              # PMRS's recall: hits / n


# -- Liang et al. -------------------------------------------------------------------------------

def test_liang_filters_songs_first_then_users():
    # songs a b c e; users u0..u6.  Users per song: a 4, b 4, c 2, e 3.  With at least 3 users
    # per song, c goes.  Then songs per user (of a, b, e): u0 2, u1 2, u2 3, u3 2, u4 1, u5 1,
    # u6 0; with at least 2, u4, u5 and u6 go, which leaves e with 1 user: kept (one pass each).
    rows = {"u0": "ab", "u1": "ab", "u2": "abe", "u3": "ab", "u4": "ce", "u5": "e", "u6": "c"}
    users = sorted(rows)
    songs = list("abce")
    m = sp.csr_matrix([[3 if s in rows[u] else 0 for s in songs] for u in users], dtype=np.float32)
    split = liang_split(m, np.array([u.encode() for u in users]), np.array([s.encode() for s in songs]),
                        LiangConfig(min_song_users=3, min_user_songs=2, heldout_users=1, seed=5))
    c = split.counts
    assert (c["users"], c["songs"], c["pairs"]) == (7, 4, 13)
    assert (c["filtered_users"], c["filtered_songs"], c["filtered_pairs"]) == (4, 3, 9)
    assert c["heldout_users"] == 1 and c["train_users"] == 2
    kept = [b"u0", b"u1", b"u2", b"u3"]
    perm = np.random.RandomState(5).permutation(4)          # vae_cf's shuffle of the sorted ids
    assert split.test_user_ids.tolist() == [kept[perm[3]]]
    assert split.validation_user_ids.tolist() == [kept[perm[2]]]
    assert sorted(split.train_user_ids.tolist()) == sorted(kept[i] for i in perm[:2])
    # the training songs are those the training users played (e only if u2 trains)
    assert (b"e" in split.song_ids.tolist()) == (b"u2" in split.train_user_ids.tolist())


def test_liang_holds_out_a_fifth_of_each_held_out_users_songs():
    m = _binary(seed=4, users=400, songs=60)
    ids = np.array([f"u{i:04d}".encode() for i in range(400)])
    sids = np.array([f"s{i:03d}".encode() for i in range(60)])
    split = liang_split(m, ids, sids, LiangConfig(min_song_users=30, min_user_songs=8, heldout_users=50))
    assert split.counts["test_users"] == split.counts["validation_users"] == 50
    assert not set(split.test_user_ids) & set(split.train_user_ids)
    for fold, pred in ((split.test_fold_in, split.test_predict), (split.validation_fold_in, split.validation_predict)):
        n = np.diff(fold.indptr) + np.diff(pred.indptr)
        assert np.array_equal(np.diff(pred.indptr), np.where(n >= 5, (0.2 * n).astype(int), 0))
        assert (fold.multiply(pred)).nnz == 0
    assert split.test_fold_in.shape[1] == split.train.shape[1] == len(split.song_ids)
    assert (np.diff(split.train.tocsc().indptr) > 0).all()      # every song is a training song
    again = liang_split(m, ids, sids, LiangConfig(min_song_users=30, min_user_songs=8, heldout_users=50))
    assert (again.test_predict != split.test_predict).nnz == 0  # the seed fixes the split


def _vae_cf_held_out(path: Path, cfg: LiangConfig) -> dict[str, dict[str, tuple[set, set]]]:
    """vae_cf's preprocessing, written from its description, on a triplets file: per group
    (validation, test), each user's (fold-in, to-predict) songs."""
    raw = pd.read_csv(path, sep="\t", names=["uid", "sid", "count"], dtype=str)
    # a pair is one interaction: PMRS sums a repeated pair into one, at its first line (vae_cf would
    # count the rows; the published file repeats no pair)
    raw = raw.drop_duplicates(["uid", "sid"])
    song_users = raw.groupby("sid").size()
    raw = raw[raw["sid"].isin(song_users.index[song_users >= cfg.min_song_users])]
    user_songs = raw.groupby("uid").size()
    raw = raw[raw["uid"].isin(user_songs.index[user_songs >= cfg.min_user_songs])]
    unique_uid = raw.groupby("uid").size().index
    np.random.seed(cfg.seed)
    unique_uid = unique_uid[np.random.permutation(unique_uid.size)]
    n, held = unique_uid.size, cfg.heldout_users
    tr_users, vd_users, te_users = unique_uid[:n - 2 * held], unique_uid[n - 2 * held:n - held], unique_uid[n - held:]
    unique_sid = pd.unique(raw.loc[raw["uid"].isin(tr_users), "sid"])

    def split_train_test_proportion(data):
        np.random.seed(cfg.seed)
        out = {}
        for uid, group in data.groupby("uid"):
            idx = np.zeros(len(group), dtype=bool)
            if len(group) >= 5:
                idx[np.random.choice(len(group), size=int(cfg.test_fraction * len(group)), replace=False)] = True
            out[uid] = (set(group["sid"][~idx]), set(group["sid"][idx]))
        return out

    plays = raw[raw["sid"].isin(unique_sid)]
    return {"validation": split_train_test_proportion(plays[plays["uid"].isin(vd_users)]),
            "test": split_train_test_proportion(plays[plays["uid"].isin(te_users)])}


def _pmrs_held_out(split) -> dict[str, dict[str, tuple[set, set]]]:
    def sets(ids, fold, pred):
        songs = [s.decode() for s in split.song_ids]
        row = lambda m, i: {songs[j] for j in m.indices[m.indptr[i]:m.indptr[i + 1]]}
        return {u.decode(): (row(fold, i), row(pred, i)) for i, u in enumerate(ids)}
    return {"validation": sets(split.validation_user_ids, split.validation_fold_in, split.validation_predict),
            "test": sets(split.test_user_ids, split.test_fold_in, split.test_predict)}


def _shuffled_triplets(path: Path, users=90, songs=80, seed=7) -> None:
    """Every line in random order (a user's songs far from song-id order), a few pairs repeated
    later in the file, a few rare songs for the filters."""
    rng = np.random.default_rng(seed)
    pop = 1.0 / np.arange(1, songs + 1)
    lines = []
    for u in range(users):
        k = int(rng.integers(3, 22))
        for s in rng.choice(songs, size=k, replace=False, p=pop / pop.sum()):
            lines.append(f"u{u:03d}\ts{s:03d}\t{int(rng.integers(1, 9))}")
    lines += [lines[i] for i in rng.choice(len(lines), size=15, replace=False)]   # repeated pairs
    lines = [lines[i] for i in rng.permutation(len(lines))]
    path.write_text("\n".join(lines) + "\n")


#: small enough thresholds for _shuffled_world: both filters remove songs and users
_SMALL = LiangConfig(min_song_users=6, min_user_songs=7, heldout_users=9)


def _shuffled_world(tmp_path) -> tuple[Path, Path]:
    """A work directory ingested from a :func:`_shuffled_triplets` file; (the file, the work directory)."""
    data, work = tmp_path / "data", tmp_path / "work"
    data.mkdir()
    _shuffled_triplets(data / "train_triplets.txt")
    ingest(data, work, live=False)
    return data / "train_triplets.txt", work


def test_liang_holds_out_the_songs_vae_cf_holds_out_on_the_same_file(tmp_path):
    triplets, work = _shuffled_world(tmp_path)
    split = workdir_split(work, _SMALL)
    c = split.counts
    assert c["heldout_users"] == 9 and c["filtered_songs"] < c["songs"] and c["filtered_users"] < c["users"]
    assert split.order == {"order": FILE_ORDER, "triplets": str(triplets.absolute()), "reason": ""}
    want = _vae_cf_held_out(triplets, _SMALL)
    got = _pmrs_held_out(split)
    assert got == want
    assert sum(len(p) for g in got.values() for _, p in g.values()) > 0
    # the order matters on this file: walked in song-id order, other songs are held out
    inter = Interactions.load(work / "interactions")
    by_id = liang_split(inter.matrix, inter.user_ids, inter.song_ids, _SMALL)
    assert by_id.order["order"] == SONG_ID_ORDER and _pmrs_held_out(by_id) != want
    assert by_id.counts == split.counts


def test_liang_without_the_triplets_file_draws_in_song_id_order_and_says_why(tmp_path):
    triplets, work = _shuffled_world(tmp_path)
    moved = tmp_path / "moved.txt"
    triplets.rename(moved)
    gone = workdir_split(work, _SMALL)
    assert gone.order["order"] == SONG_ID_ORDER and "--triplets PATH" in gone.order["reason"]
    assert f"drawn in song id order, not vae_cf's file order ({gone.order['reason']})" in order_sentence(gone.order)
    assert workdir_split(work, _SMALL, triplets=moved).order["order"] == FILE_ORDER
    other = tmp_path / "other.txt"      # a file missing some of the work directory's pairs
    other.write_text("".join(line + "\n" for line in moved.read_text().splitlines()[::2]))
    partial = workdir_split(work, _SMALL, triplets=other)
    assert partial.order["order"] == SONG_ID_ORDER and "on no line of" in partial.order["reason"]
    assert _pmrs_held_out(partial) == _pmrs_held_out(gone)


def test_liang_on_too_little_data_says_what_to_lower():
    m = _binary(seed=4, users=20, songs=10)
    with pytest.raises(Exception, match="min-song-users"):
        liang_split(m, np.array([f"u{i:02d}".encode() for i in range(20)]),
                    np.array([f"s{i}".encode() for i in range(10)]))


# -- the MSD Challenge's files ------------------------------------------------------------------

def test_challenge_files_read_in_their_published_layout():
    f = read_challenge(FIXTURE)
    assert f.users.tolist() == ["U3", "U1", "U2"]                  # the submission's order
    assert dict(zip(f.songs.tolist(), f.song_index.tolist())) == {b"SOD": 1, b"SOA": 2, b"SOB": 3, b"SOC": 4,
                                                                  b"SOE": 5}
    col = {s: i for i, s in enumerate(f.songs.tolist())}
    assert f.visible[1, col[b"SOA"]] == 3 and f.visible[0, col[b"SOD"]] == 5 and f.visible.nnz == 5
    assert f.hidden_files == [HIDDEN_FILES[1]]
    assert f.hidden.shape[1] == 6                                   # SOZ: a column past the list
    assert np.diff(f.hidden.indptr).tolist() == [1, 2, 1]


def _challenge_world(root: Path, eval_users: int = 120, hidden: bool = True) -> tuple[Path, Path]:
    """A world split as the challenge is: some users' histories halved into the visible and the
    hidden files, every other user in train_triplets.txt; returns (data folder, challenge folder)."""
    data, chal = root / "data", root / "challenge"
    write_independent_world(data, users=900, songs=400, seed=2)
    lines = (data / "train_triplets.txt").read_text().splitlines()
    by_user: dict[str, list[str]] = {}
    for line in lines:
        by_user.setdefault(line.split("\t")[0], []).append(line)
    rng = np.random.default_rng(0)
    candidates = [u for u, ls in by_user.items() if len(ls) >= 6]
    chosen = set(rng.choice(candidates, size=eval_users, replace=False).tolist())
    train, visible, hidden_lines = [], [], []
    for u, ls in by_user.items():
        if u not in chosen:
            train += ls
            continue
        order = rng.permutation(len(ls))
        half = len(ls) // 2
        visible += [ls[i] for i in order[:half]]
        hidden_lines += [ls[i] for i in order[half:]]
    (data / "train_triplets.txt").write_text("\n".join(train) + "\n")
    chal.mkdir()
    (chal / "kaggle_visible_evaluation_triplets.txt").write_text("\n".join(visible) + "\n")
    if hidden:
        (chal / "year1_test_triplets_hidden.txt").write_text("\n".join(hidden_lines) + "\n")
    users = sorted(chosen, key=lambda u: u[::-1])                    # not in id order
    (chal / "kaggle_users.txt").write_text("\n".join(users) + "\n")
    songs = sorted({ln.split("\t")[1] for ln in lines}, reverse=True)
    (chal / "kaggle_songs.txt").write_text("".join(f"{s} {i + 1}\n" for i, s in enumerate(songs)))
    return data, chal


def _average_precision(listed: list[int], hidden: set[int], k: int = 500) -> float:
    hits, total = 0, 0.0
    for i, s in enumerate(listed[:k]):
        if s in hidden:
            hits += 1
            total += hits / (i + 1)
    return total / min(len(hidden), k)


def test_msd_challenge_protocol_scores_the_submission_as_the_challenge_did(tmp_path):
    data, chal = _challenge_world(tmp_path)
    work = tmp_path / "work"
    assert main(["ingest", str(data), "--workdir", str(work), "-q"]) == 0
    assert main(["evaluate", "--protocol", "msd-challenge", "--challenge-dir", str(chal), "--workdir", str(work),
                 "--run", "c", "-q"]) == 0
    out = work / "reports" / "c"
    m = json.loads((out / "metrics.json").read_text())
    users = (chal / "kaggle_users.txt").read_text().split()
    index = dict(line.split() for line in (chal / "kaggle_songs.txt").read_text().splitlines())
    submitted = (out / SUBMISSION_FILE).read_text().splitlines()
    assert len(submitted) == len(users)
    hidden: dict[str, set[int]] = {}
    for line in (chal / "year1_test_triplets_hidden.txt").read_text().splitlines():
        u, s, _ = line.split("\t")
        hidden.setdefault(u, set()).add(int(index[s]))
    visible: dict[str, set[int]] = {}
    for line in (chal / "kaggle_visible_evaluation_triplets.txt").read_text().splitlines():
        u, s, _ = line.split("\t")
        visible.setdefault(u, set()).add(int(index[s]))
    aps = []
    for u, line in zip(users, submitted):
        listed = [int(x) for x in line.split()]
        assert 0 < len(listed) <= 500 and len(set(listed)) == len(listed)
        assert not set(listed) & visible[u]                          # nothing the user played
        aps.append(_average_precision(listed, hidden[u]))
    assert m["models"]["pmrs"]["map@500"] == pytest.approx(np.mean(aps), abs=1e-5)
    assert {"pmrs", "ease", "implicit-als", "implicit-cosine", "implicit-bm25", "popularity"} <= set(m["models"])
    assert m["references"]["implicit-bpr"]["skipped"]
    assert m["models"]["pmrs"]["map@500"] > m["models"]["popularity"]["map@500"]
    report = (out / "report.md").read_text()
    for p in MSD_CHALLENGE:
        assert p.model in report and p.source in report and str(p.metrics["map@500"]) in report
    assert "| pmrs | PMRS |" in report and "implicit-bpr | skipped: " in report


def test_msd_challenge_without_the_hidden_half_writes_the_submission_only(tmp_path):
    data, chal = _challenge_world(tmp_path, eval_users=40, hidden=False)
    work = tmp_path / "work"
    # a work directory that took the visible file in as well: the evaluation users leave training
    with open(data / "train_triplets.txt", "a") as f:
        f.write((chal / "kaggle_visible_evaluation_triplets.txt").read_text())
    assert main(["ingest", str(data), "--workdir", str(work), "-q"]) == 0
    assert main(["evaluate", "--protocol", "msd-challenge", "--challenge-dir", str(chal), "--workdir", str(work),
                 "--run", "c", "--no-select", "-q"]) == 0
    out = work / "reports" / "c"
    report = (out / "report.md").read_text()
    assert "cannot be computed" in report and HIDDEN_FILES[1] in report
    assert len((out / SUBMISSION_FILE).read_text().splitlines()) == 40
    m = json.loads((out / "metrics.json").read_text())
    assert m["models"] == {} and m["data"]["evaluation_users_in_training"] == 40
    assert main(["evaluate", "--protocol", "msd-challenge", "--workdir", str(work), "-q"]) == 2   # no folder


def test_liang_protocol_reports_pmrs_beside_the_published_figures(tmp_path):
    data, work = tmp_path / "data", tmp_path / "work"
    write_independent_world(data, users=900, songs=300, seed=1)
    assert main(["ingest", str(data), "--workdir", str(work), "-q"]) == 0
    assert main(["evaluate", "--protocol", "liang", "--workdir", str(work), "--min-song-users", "10",
                 "--min-user-songs", "8", "--heldout-users", "100", "--run", "l", "-q"]) == 0
    out = work / "reports" / "l"
    m = json.loads((out / "metrics.json").read_text())
    assert m["data"]["test_users"] == m["data"]["validation_users"] == 100
    assert {"pmrs", "ease", "implicit-als", "popularity"} <= set(m["models"])
    for name, row in m["models"].items():
        assert set(row) == {"recall@20", "recall@50", "ndcg@100"} and 0 <= row["ndcg@100"] <= 1, name
    pmrs, pop = m["models"]["pmrs"], m["models"]["popularity"]
    assert pmrs["ndcg@100"] > pop["ndcg@100"] and pmrs["recall@50"] > pop["recall@50"]
    report = (out / "report.md").read_text()
    for p in LIANG:
        assert p.model in report and p.source in report
    assert "0.389" in report and "| pmrs | PMRS |" in report
    assert m["fold_in_order"]["order"] == "file" and m["fold_in_order"]["triplets"].endswith("train_triplets.txt")
    assert f"drawn in file order, the order of their lines in {m['fold_in_order']['triplets']}" in report
