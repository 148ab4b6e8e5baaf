"""``pmrs evaluate --protocol msd-challenge``: the Million Song Dataset Challenge (Kaggle, 2012;
McFee et al., WWW 2012 Companion) from its own files.

The challenge's files, in a folder (``--challenge-dir``):

- ``kaggle_visible_evaluation_triplets.txt``: ``user<TAB>song<TAB>count``, the visible half of
  the 110,000 evaluation users' histories;
- ``kaggle_users.txt``: one evaluation user id per line, the order of a submission's lines;
- ``kaggle_songs.txt``: ``SONG_ID index`` per line, the 1-based index a submission names a song by;
- the hidden halves, released after the contest (``EvalDataYear1MSDWebsite``):
  ``year1_valid_triplets_hidden.txt`` (the public leaderboard's 10,000 users) and
  ``year1_test_triplets_hidden.txt`` (the private leaderboard's 100,000), either or both.

Training data are the work directory's plays (the Taste Profile's ``train_triplets.txt``, which
``pmrs ingest`` reads), less any evaluation user's (the challenge's evaluation users are not in
it; a work directory that took the visible file in too would otherwise train on them). Every
model ranks, for each evaluation user, 500 songs they did not play in the visible half
(:mod:`pmrs.evaluation.newlisteners`). ``submission.txt`` holds PMRS's lists in the submission
format: one line per user of ``kaggle_users.txt``, in its order, the songs' indexes separated by
spaces. With a hidden file present, mAP@500 is computed as the challenge defined it: the
truncated average precision of each user, normalised by min(500, hidden songs), averaged over
the users with a hidden song; this is :mod:`pmrs.evaluation.metrics`'s ``map@k``. Without one,
the report says the mAP cannot be computed and only the submission is written.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ..artifacts import new_run_name, staged_dir, write_json, write_text
from ..errors import InvalidArgument
from ..ingest.rawtext import check_input_file
from ..ingest.triplets import read_triplets
from ..interactions import INTERACTIONS_DIR, Interactions, lookup_many
from ..report import markdown_table
from .baselines import REFERENCE_MODELS
from .liang import references_lines, side_by_side
from .metrics import per_user_metrics
from .newlisteners import new_listener_lists
from .published import MSD_CHALLENGE

log = logging.getLogger(__name__)

VISIBLE_FILE = "kaggle_visible_evaluation_triplets.txt"
USERS_FILE = "kaggle_users.txt"
SONGS_FILE = "kaggle_songs.txt"
#: The hidden halves, in the order they are read (valid: public leaderboard; test: private).
HIDDEN_FILES = ("year1_valid_triplets_hidden.txt", "year1_test_triplets_hidden.txt")
SUBMISSION_FILE = "submission.txt"
#: The challenge's list length and metric.
LIST_LENGTH = 500
METRICS = ("map@500",)


@dataclass
class ChallengeFiles:
    """The challenge's files read: ``users`` (in submission order), ``songs`` (sorted ids) and
    their 1-based ``song_index``, the ``visible`` and (when present) ``hidden`` triplets as
    users x songs counts over ``users`` x ``songs`` (hidden songs outside ``kaggle_songs.txt``
    get columns past its end: they count as songs to predict that no list can name), and which
    hidden files were read."""

    users: np.ndarray
    songs: np.ndarray
    song_index: np.ndarray
    visible: sp.csr_matrix
    hidden: sp.csr_matrix | None
    hidden_files: list[str]
    counts: dict


def _lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]


def _over(inter: Interactions, users: np.ndarray, songs: np.ndarray) -> tuple[sp.csr_matrix, int, int]:
    """``inter``'s counts over the rows ``users`` (order kept) and columns ``songs`` (sorted),
    songs not in ``songs`` appended past its end; with the pairs of users outside ``users``."""
    m = inter.matrix.tocoo()
    rows = lookup_many(inter.user_ids, users)
    row_of = np.full(inter.n_users, -1, np.int64)
    row_of[rows[rows >= 0]] = np.flatnonzero(rows >= 0)
    cols = lookup_many(songs, inter.song_ids)
    extra = np.flatnonzero(cols < 0)
    cols[extra] = len(songs) + np.arange(extra.size)
    r, c = row_of[m.row], cols[m.col]
    keep = r >= 0
    out = sp.csr_matrix((m.data[keep].astype(np.float32), (r[keep], c[keep])),
                        shape=(len(users), len(songs) + extra.size))
    return out, int((~keep).sum()), int(extra.size)


def read_challenge(folder: str | Path) -> ChallengeFiles:
    """Read the challenge's files from ``folder``. Raises ``IngestError`` naming a required file
    that is missing, ``InvalidArgument`` for a malformed songs list."""
    folder = Path(folder)
    users = np.asarray(_lines(check_input_file(folder / USERS_FILE, "challenge users", USERS_FILE)))
    pairs = [line.split() for line in _lines(check_input_file(folder / SONGS_FILE, "challenge songs", SONGS_FILE))]
    if any(len(p) != 2 or not p[1].isdigit() for p in pairs):
        bad = next(i for i, p in enumerate(pairs) if len(p) != 2 or not p[1].isdigit())
        raise InvalidArgument(f"{folder / SONGS_FILE}: line {bad + 1} is not 'SONG_ID index'")
    ids = np.asarray([p[0].encode() for p in pairs])
    order = np.argsort(ids, kind="stable")
    songs, index = ids[order], np.asarray([int(p[1]) for p in pairs], np.int64)[order]
    visible_inter, _ = read_triplets(check_input_file(folder / VISIBLE_FILE, "challenge visible triplets", VISIBLE_FILE))
    visible, not_listed, unknown_songs = _over(visible_inter, users, songs)
    hidden, read = None, []
    for name in HIDDEN_FILES:
        if (folder / name).is_file():
            h, _ = read_triplets(folder / name)
            m, _, _ = _over(h, users, songs)
            hidden = m if hidden is None else _widen(hidden, m.shape[1]) + _widen(m, hidden.shape[1])
            read.append(name)
    counts = {"users": len(users), "songs": len(songs), "visible_pairs": int(visible.nnz),
              "visible_pairs_of_unlisted_users": not_listed, "visible_songs_not_listed": unknown_songs,
              "hidden_pairs": int(hidden.nnz) if hidden is not None else 0}
    return ChallengeFiles(users, songs, index, visible[:, :len(songs)].tocsr(), hidden, read, counts)


def _widen(m: sp.csr_matrix, n_cols: int) -> sp.csr_matrix:
    return sp.csr_matrix((m.data, m.indices, m.indptr), shape=(m.shape[0], max(m.shape[1], n_cols)))


def evaluate_msd_challenge(workdir: str | Path, challenge_dir: str | Path, wmf_cfg, run: str | None = None,
                           show_progress: bool | None = None, select=None, fixed=frozenset(), neighbours_cfg=None,
                           indexer_cfg=None, metadata_cfg=None, references=REFERENCE_MODELS) -> Path:
    """Run the challenge on ``<workdir>/interactions`` and the files in ``challenge_dir``; write
    ``reports/<run>/`` (``submission.txt``, ``metrics.json``, ``report.md``); return its path."""
    from .holdout import REPORTS_DIR

    workdir = Path(workdir)
    files = read_challenge(challenge_dir)
    inter = Interactions.load(workdir / INTERACTIONS_DIR)
    # training: every user but the evaluation users, over the songs they played
    is_eval = np.zeros(inter.n_users, bool)
    rows = lookup_many(inter.user_ids, files.users)
    is_eval[rows[rows >= 0]] = True
    train_rows = np.flatnonzero(~is_eval)
    m = inter.matrix[train_rows]
    played = np.flatnonzero(np.diff(m.tocsc().indptr) > 0)
    if not played.size:
        raise InvalidArgument("no training plays are left once the challenge's evaluation users are taken out")
    train = Interactions(m[:, played].tocsr(), inter.user_ids[train_rows], inter.song_ids[played])
    # the visible halves over the training songs; lists map back to the challenge's songs
    to_train = lookup_many(train.song_ids, files.songs)
    vis = files.visible.tocoo()
    keep = to_train[vis.col] >= 0
    visible = sp.csr_matrix((vis.data[keep], (vis.row[keep], to_train[vis.col[keep]])),
                            shape=(len(files.users), train.n_songs))
    to_challenge = lookup_many(files.songs, train.song_ids)   # -1: a training song the challenge does not list
    (workdir / REPORTS_DIR).mkdir(parents=True, exist_ok=True)
    out = workdir / REPORTS_DIR / (run or f"msd-challenge-{new_run_name()}")
    with staged_dir(out) as tmp:
        got = new_listener_lists(workdir, train, visible, (LIST_LENGTH,), wmf_cfg=wmf_cfg, select=select,
                                 fixed=fixed, neighbours_cfg=neighbours_cfg, indexer_cfg=indexer_cfg,
                                 metadata_cfg=metadata_cfg, references=references,
                                 scratch_parent=workdir / REPORTS_DIR, show_progress=show_progress)
        lists = {name: _to_challenge(by_k[LIST_LENGTH], to_challenge) for name, by_k in got.pop("lists").items()}
        write_text(tmp / SUBMISSION_FILE, submission_text(lists["pmrs"], files.song_index))
        models = {name: challenge_metrics(rows, files.hidden) for name, rows in lists.items()} \
            if files.hidden is not None else {}
        metrics = {"protocol": "msd-challenge", "data": {**files.counts, "train_users": int(train.n_users),
                                                         "train_songs": int(train.n_songs),
                                                         "evaluation_users_in_training": int(is_eval.sum())},
                   "hidden_files": files.hidden_files, "models": models,
                   "published": [asdict(p) for p in MSD_CHALLENGE], **got}
        write_json(tmp / "metrics.json", metrics)
        write_text(tmp / "report.md", render_challenge(metrics))
    return out


def _to_challenge(rows: np.ndarray, to_challenge: np.ndarray) -> np.ndarray:
    """Lists over the training songs as columns of the challenge's songs (-1 kept; a song the
    challenge does not list is dropped and the list closed up)."""
    mapped = np.where(rows >= 0, to_challenge[np.maximum(rows, 0)], -1)
    out = np.full_like(mapped, -1)
    for i, row in enumerate(mapped):
        kept = row[row >= 0]
        out[i, :kept.size] = kept
    return out


def submission_text(rows: np.ndarray, song_index: np.ndarray) -> str:
    """The submission: per user, in order, the 1-based indexes of the listed songs, space-separated."""
    return "".join(" ".join(str(int(song_index[c])) for c in row if c >= 0) + "\n" for row in rows)


def challenge_metrics(rows: np.ndarray, hidden: sp.csr_matrix) -> dict[str, float]:
    """mAP@500 of ``rows`` (columns of the challenge's songs) against ``hidden``, over the users
    with a hidden song."""
    has = np.diff(hidden.indptr) > 0
    padded = np.full((rows.shape[0], LIST_LENGTH), -1, np.int64)
    padded[:, :rows.shape[1]] = rows
    values = per_user_metrics(padded, hidden, (LIST_LENGTH,))[f"map@{LIST_LENGTH}"][has]
    return {"map@500": round(float(values.mean()), 5) if values.size else float("nan"),
            "evaluated_users": int(has.sum())}


def render_challenge(metrics: dict) -> str:
    d = metrics["data"]
    head = [
        "# Million Song Dataset Challenge (Kaggle 2012)",
        "",
        f"{d['users']:,} evaluation users ({d['visible_pairs']:,} visible pairs), {d['songs']:,} songs listed; "
        f"trained on {d['train_users']:,} users over {d['train_songs']:,} songs"
        + (f" ({d['evaluation_users_in_training']:,} evaluation users found in the training plays were taken out)"
           if d["evaluation_users_in_training"] else "") + ". "
        f"`{SUBMISSION_FILE}` holds PMRS's lists in the submission format.",
        "",
    ]
    if not metrics["hidden_files"]:
        body = [f"No hidden half ({' or '.join(HIDDEN_FILES)}) in the challenge folder: the mAP@500 cannot be "
                "computed here; submit the file, or add a hidden file and run again.", "",
                markdown_table(["model", "map@500", "source"],
                               [[p["model"], p["metrics"]["map@500"], p["source"]] for p in metrics["published"]])]
    else:
        n = next(iter(metrics["models"].values()))["evaluated_users"] if metrics["models"] else 0
        body = [f"mAP@500 over the {n:,} users with a hidden song ({', '.join(metrics['hidden_files'])}), "
                "normalised by min(500, hidden songs) as the challenge defined it (the hold-out report's map@k "
                "is the same definition).", "",
                side_by_side(metrics, METRICS)]
    return "\n".join([*head, *body, "",
                      f"`pmrs` is what the server answers each evaluation user sent their visible songs as seeds "
                      f"({metrics['seeds_capped']} users had more than the request's seed limit and sent their "
                      "most played).", "", *references_lines(metrics)])
