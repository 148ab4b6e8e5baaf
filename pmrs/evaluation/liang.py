"""``pmrs evaluate --protocol liang``: the MSD split of Liang et al. (2018, "Variational
Autoencoders for Collaborative Filtering"; their ``vae_cf`` preprocessing), on which EASE,
EDLAE, Mult-VAE and WMF were published (:mod:`pmrs.evaluation.published`).

The split, as ``vae_cf`` makes it:

1. plays are binarized (a stored pair is one interaction, whatever its count);
2. songs with fewer than ``min_song_users`` (200) users are removed, *then* users with fewer
   than ``min_user_songs`` (20) of the songs left (one pass each, in that order: a song may end
   under 200 users, as in the published 571,355 x 41,140);
3. the users, sorted by id, are shuffled by ``numpy.random.RandomState(seed).permutation``
   (seed 98765, ``vae_cf``'s); the last ``2 x heldout_users`` are held out, the first half of
   them for validation, the second for test (50,000 each at full size; capped at a quarter of
   the users each on smaller data);
4. the training songs are those the training users played; the held-out users' plays of other
   songs are dropped;
5. each held-out user with at least 5 songs has ``int(0.2 x n)`` of them, drawn without
   replacement by a ``RandomState(seed)`` reset before the validation (and again before the
   test) users are walked in id order, to predict, the rest as fold-in. The draw picks positions
   in the user's songs *in the order of their lines in the triplets file* (``vae_cf`` groups the
   file's rows by user, and a group keeps the file's order), so the same songs are held out as
   ``vae_cf`` holds out on the same file.

The file order is not in the work directory (ingest keeps one summed count per pair), so
:class:`FileOrder` reads the triplets file ingest recorded (or ``--triplets PATH``) once more,
streaming, and keeps only the held-out users' lines over the training songs: their first line
per pair (a pair on several lines was summed at ingest; the published file has none). When the
work directory's plays did not come from a triplets file, the file is gone, or some held-out
pair is on no line of it (plays taken in from elsewhere, a file changed since ingest), the songs
are walked in song-id order instead: the sizes are the same, the songs drawn are not ``vae_cf``'s.
The report says which order was used, and why.

Metrics over the test users with a song to predict: Recall@20 and Recall@50 normalised by
min(k, n) (``capped_recall``) and NDCG@100. Every model's settings are chosen on a validation split
of the training users (PMRS's rule); the validation users are held out of training and reported
by count only. The report prints the published figures beside PMRS's, with their sources.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import scipy.sparse as sp

from ..artifacts import new_run_name, staged_dir, write_json, write_text
from ..errors import IngestError, InvalidArgument
from ..ingest.rawtext import open_stream
from ..interactions import INGEST_REPORT_FILE, INTERACTIONS_DIR, Interactions
from ..report import markdown_table
from .baselines import REFERENCE_MODELS, settings_text
from .metrics import per_user_metrics
from .newlisteners import new_listener_lists
from .published import LIANG

log = logging.getLogger(__name__)

#: The metrics of the protocol, in report order.
METRICS = ("recall@20", "recall@50", "ndcg@100")


@dataclass(frozen=True)
class LiangConfig:
    """The published protocol's settings (``[liang]`` in a TOML config)."""

    min_song_users: int = 200
    min_user_songs: int = 20
    heldout_users: int = 50_000
    test_fraction: float = 0.2
    min_split_songs: int = 5      # held-out users with fewer songs keep them all as fold-in
    seed: int = 98765

    def __post_init__(self) -> None:
        if self.min_song_users < 1 or self.min_user_songs < 1 or self.heldout_users < 1:
            raise InvalidArgument("min_song_users, min_user_songs and heldout_users must be at least 1")
        if not 0.0 < self.test_fraction < 1.0:
            raise InvalidArgument(f"test_fraction must be in (0, 1), got {self.test_fraction}")


#: The orders a held-out user's songs may be walked in before the draw (step 5).
FILE_ORDER, SONG_ID_ORDER = "file", "song id"


def walk_order(triplets: str | Path | None, reason: str = "") -> dict:
    """The record of the order used (``LiangSplit.order``, ``metrics.json``'s ``fold_in_order``):
    file order of ``triplets`` when ``reason`` is empty, else song-id order for ``reason``."""
    return {"order": SONG_ID_ORDER if reason else FILE_ORDER,
            "triplets": None if triplets is None else str(triplets), "reason": reason}


@dataclass
class LiangSplit:
    """The split: ``train`` (training users x training songs, binarized), its user and song ids,
    and for the validation and test users their fold-in and to-predict songs over the training
    songs (``(n, n_songs)`` CSR, 1 per song); ``counts`` the sizes at each step."""

    train: sp.csr_matrix
    train_user_ids: np.ndarray
    song_ids: np.ndarray
    validation_user_ids: np.ndarray
    validation_fold_in: sp.csr_matrix
    validation_predict: sp.csr_matrix
    test_user_ids: np.ndarray
    test_fold_in: sp.csr_matrix
    test_predict: sp.csr_matrix
    counts: dict
    #: how each held-out user's songs were walked before the draw (step 5): :func:`walk_order`
    order: dict = field(default_factory=lambda: walk_order(None, "no triplets file given"))


@dataclass(frozen=True)
class FileOrder:
    """Where the held-out users' songs are walked in the order of their lines: ``path``, the
    triplets file the work directory was ingested from; ``None`` when there is none to read,
    ``why`` saying so."""

    path: Path | None
    why: str = ""
    block_size_mb: int = 16

    @classmethod
    def of_workdir(cls, workdir: str | Path, triplets: str | Path | None = None) -> FileOrder:
        """``triplets`` when given, else the triplets file ``<workdir>``'s ingest recorded."""
        if triplets is None:
            report = Path(workdir) / INTERACTIONS_DIR / INGEST_REPORT_FILE
            files = json.loads(report.read_text()).get("files", {}) if report.is_file() else {}
            triplets = files.get("triplets")
            if not triplets:
                return cls(None, "the work directory's plays did not come from a triplets file")
        path = Path(triplets)
        if not path.is_file():
            return cls(None, f"{path} is not there (give the file the work directory was ingested from "
                             "with --triplets PATH)")
        return cls(path)

    def positions(self, user_ids: np.ndarray, song_ids: np.ndarray,
                  rows: sp.csr_matrix) -> tuple[np.ndarray | None, dict]:
        """For each stored pair of ``rows`` (users ``user_ids`` x songs ``song_ids``), the rank of
        its first line in the file among the lines read (int64, aligned with ``rows.data``), or
        ``None`` when file order cannot be had; and the order record (:attr:`LiangSplit.order`)."""
        if self.path is None:
            return None, walk_order(None, self.why)
        try:
            line, user, song = self._lines(user_ids, song_ids)
        except (OSError, pa.ArrowException, IngestError) as exc:   # e.g. a line longer than a block
            return None, walk_order(self.path, f"{self.path} could not be read again: {str(exc)[:200]}")
        n_songs = rows.shape[1]
        key = user * n_songs + song
        known, first = np.unique(key, return_index=True)    # lines are read in order: index = first line
        stored = np.repeat(np.arange(rows.shape[0], dtype=np.int64), np.diff(rows.indptr)) * n_songs + rows.indices
        at = np.minimum(np.searchsorted(known, stored), max(len(known) - 1, 0))
        found = (known[at] == stored) if len(known) else np.zeros(len(stored), bool)
        if not found.all():
            return None, walk_order(self.path, f"{int((~found).sum()):,} of the held-out users' {len(stored):,} "
                                                f"pairs are on no line of {self.path} (the work directory holds "
                                                "plays from elsewhere, or the file changed since ingest)")
        return line[first[at]], walk_order(self.path)

    def _lines(self, user_ids: np.ndarray, song_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One streaming pass: the lines naming one of ``user_ids`` and one of ``song_ids`` (ids
        trimmed of surrounding ASCII whitespace, as ingest does), as ``(line, user, song)`` int64
        arrays: the line's rank among the rows read, the indices of its user and song."""
        users = pa.array([bytes(u).decode() for u in user_ids], pa.string())
        songs = pa.array([bytes(s).decode() for s in song_ids], pa.string())
        reader = pacsv.open_csv(
            open_stream(self.path),
            read_options=pacsv.ReadOptions(column_names=["user", "song", "count"],
                                           block_size=self.block_size_mb << 20),
            parse_options=pacsv.ParseOptions(delimiter="\t", quote_char=False, double_quote=False,
                                             invalid_row_handler=lambda row: "skip"),
            convert_options=pacsv.ConvertOptions(column_types={"user": pa.string(), "song": pa.string()},
                                                 include_columns=["user", "song"], check_utf8=False))
        parts, seen = [], 0
        for batch in reader:
            u = pc.index_in(pc.ascii_trim_whitespace(batch.column("user")), value_set=users)
            mine = u.is_valid()
            if pc.any(mine).as_py():
                s = pc.index_in(pc.ascii_trim_whitespace(pc.filter(batch.column("song"), mine)), value_set=songs)
                ok = s.is_valid()
                line = (seen + np.flatnonzero(mine.to_numpy(zero_copy_only=False)))[ok.to_numpy(zero_copy_only=False)]
                parts.append((line, pc.filter(pc.filter(u, mine), ok).to_numpy(zero_copy_only=False),
                              pc.filter(s, ok).to_numpy(zero_copy_only=False)))
            seen += batch.num_rows
        if not parts:
            return (np.zeros(0, np.int64),) * 3
        return tuple(np.concatenate([p[i] for p in parts]).astype(np.int64) for i in range(3))


def _fold_in_split(rows: sp.csr_matrix, cfg: LiangConfig,
                   position: np.ndarray | None = None) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """``vae_cf``'s ``split_train_test_proportion`` over the rows of ``rows`` (in order), each
    row's songs walked by ``position`` (aligned with ``rows.data``; ``None``: song-id order)."""
    rng = np.random.RandomState(cfg.seed)
    predict = np.zeros(rows.nnz, dtype=bool)
    for u in range(rows.shape[0]):
        lo, hi = rows.indptr[u], rows.indptr[u + 1]
        n = hi - lo
        if n >= cfg.min_split_songs:
            walk = lo + (np.arange(n) if position is None else np.argsort(position[lo:hi], kind="stable"))
            predict[walk[rng.choice(n, size=int(cfg.test_fraction * n), replace=False)]] = True
    part = lambda keep: sp.csr_matrix((rows.data * keep, rows.indices, rows.indptr), shape=rows.shape, copy=True)
    fold, pred = part(~predict), part(predict)
    fold.eliminate_zeros()
    pred.eliminate_zeros()
    return fold, pred


def liang_split(matrix: sp.spmatrix, user_ids: np.ndarray, song_ids: np.ndarray,
                cfg: LiangConfig | None = None, file_order: FileOrder | None = None) -> LiangSplit:
    """The Liang et al. split (module docstring) of ``matrix`` (users x songs play counts, rows
    and columns named by the sorted ``user_ids`` and ``song_ids``); the held-out users' songs
    walked in the line order of ``file_order``'s triplets file (``None``: song-id order). Raises
    ``InvalidArgument`` when the filters leave too few users to hold any out."""
    cfg = cfg or LiangConfig()
    x = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    x.eliminate_zeros()
    x.data[:] = 1.0
    counts = {"users": int(x.shape[0]), "songs": int(x.shape[1]), "pairs": int(x.nnz)}
    songs = np.flatnonzero(np.diff(x.tocsc().indptr) >= cfg.min_song_users)
    x = x[:, songs]
    users = np.flatnonzero(np.diff(x.indptr) >= cfg.min_user_songs)
    x = x[users].tocsr()
    counts.update(filtered_users=len(users), filtered_songs=len(songs), filtered_pairs=int(x.nnz))
    n = len(users)
    n_held = min(cfg.heldout_users, n // 4)
    if n_held < 1:
        raise InvalidArgument(f"{n} users are left with at least {cfg.min_user_songs} songs of the songs "
                              f"with at least {cfg.min_song_users} users: too few to hold out validation and "
                              f"test users (lower --min-song-users / --min-user-songs for small data)")
    perm = np.random.RandomState(cfg.seed).permutation(n)
    tr, vd, te = perm[:n - 2 * n_held], perm[n - 2 * n_held:n - n_held], perm[n - n_held:]
    tr, vd, te = np.sort(tr), np.sort(vd), np.sort(te)
    train = x[tr]
    kept = np.flatnonzero(np.diff(train.tocsc().indptr) > 0)
    train = train[:, kept].tocsr()
    vd_rows, te_rows = x[vd][:, kept].tocsr(), x[te][:, kept].tocsr()
    uids, sids = np.asarray(user_ids)[users], np.asarray(song_ids)[songs][kept]
    position, order = None, walk_order(None, "no triplets file given")
    if file_order is not None:   # one pass over the file for both groups
        position, order = file_order.positions(np.concatenate([uids[vd], uids[te]]), sids,
                                               sp.vstack([vd_rows, te_rows], format="csr"))
    vd_pos, te_pos = (None, None) if position is None else (position[:vd_rows.nnz], position[vd_rows.nnz:])
    vd_fold, vd_pred = _fold_in_split(vd_rows, cfg, vd_pos)
    te_fold, te_pred = _fold_in_split(te_rows, cfg, te_pos)
    counts.update(heldout_users=int(n_held), train_users=len(tr), train_songs=len(kept),
                  train_pairs=int(train.nnz), validation_users=len(vd), test_users=len(te),
                  test_fold_in_pairs=int(te_fold.nnz), test_predict_pairs=int(te_pred.nnz))
    return LiangSplit(train, uids[tr], sids, uids[vd], vd_fold, vd_pred, uids[te], te_fold, te_pred, counts, order)


def liang_metrics(lists: dict[int, np.ndarray], predict: sp.csr_matrix) -> dict[str, float]:
    """The protocol's metrics of one model: ``lists[k]`` (``(n, k)`` columns) per cut-off,
    means over the rows of ``predict`` with a song to predict."""
    rows = np.diff(sp.csr_matrix(predict).indptr) > 0
    out = {}
    for name in METRICS:
        metric, k = name.split("@")
        key = "capped_recall" if metric == "recall" else metric
        values = per_user_metrics(lists[int(k)], predict, (int(k),))[f"{key}@{k}"][rows]
        out[name] = round(float(values.mean()), 5) if values.size else float("nan")
    return out


def workdir_split(workdir: str | Path, cfg: LiangConfig | None = None,
                  triplets: str | Path | None = None) -> LiangSplit:
    """The split of ``<workdir>/interactions``, the held-out users' songs walked in the line order
    of ``triplets`` (default: the triplets file ingest recorded; song-id order when there is none)."""
    inter = Interactions.load(Path(workdir) / INTERACTIONS_DIR)
    split = liang_split(inter.matrix, inter.user_ids, inter.song_ids, cfg, FileOrder.of_workdir(workdir, triplets))
    if split.order["order"] != FILE_ORDER:
        log.warning("held-out songs drawn in song-id order, not vae_cf's file order: %s", split.order["reason"])
    return split


def evaluate_liang(workdir: str | Path, wmf_cfg, cfg: LiangConfig | None = None, run: str | None = None,
                   show_progress: bool | None = None, select=None, fixed=frozenset(), neighbours_cfg=None,
                   indexer_cfg=None, metadata_cfg=None, references=REFERENCE_MODELS,
                   triplets: str | Path | None = None) -> Path:
    """Run the protocol on ``<workdir>/interactions`` (:func:`workdir_split`); write
    ``reports/<run>/`` (``metrics.json``, ``report.md``); return its path."""
    from .holdout import REPORTS_DIR

    cfg = cfg or LiangConfig()
    workdir = Path(workdir)
    split = workdir_split(workdir, cfg, triplets)
    train = Interactions(split.train.astype(np.int32), split.train_user_ids, split.song_ids)
    (workdir / REPORTS_DIR).mkdir(parents=True, exist_ok=True)
    out = workdir / REPORTS_DIR / (run or f"liang-{new_run_name()}")
    with staged_dir(out) as tmp:
        got = new_listener_lists(workdir, train, split.test_fold_in, (20, 50, 100), wmf_cfg=wmf_cfg, select=select,
                                 fixed=fixed, neighbours_cfg=neighbours_cfg, indexer_cfg=indexer_cfg,
                                 metadata_cfg=metadata_cfg, references=references, scratch_parent=workdir / REPORTS_DIR,
                                 show_progress=show_progress)
        models = {name: liang_metrics(lists, split.test_predict) for name, lists in got.pop("lists").items()}
        metrics = {"protocol": "liang", "config": asdict(cfg), "data": split.counts, "fold_in_order": split.order,
                   "models": models,
                   "published": [asdict(p) for p in LIANG], **got}
        write_json(tmp / "metrics.json", metrics)
        write_text(tmp / "report.md", render_liang(metrics))
    return out


def published_rows(published, metrics: tuple[str, ...]) -> list[list]:
    """The published figures as report rows: model, kind, each metric (blank where not published), source."""
    return [[p["model"], "published", *[p["metrics"].get(m, "") for m in metrics], p["source"]] for p in published]


def side_by_side(metrics: dict, names: tuple[str, ...]) -> str:
    """Every model measured here beside the published figures, with their sources."""
    rows = [[name, "PMRS" if name == "pmrs" else "reference (measured here)", *[m[k] for k in names], ""]
            for name, m in metrics["models"].items()]
    return markdown_table(["model", "kind", *names, "source"], rows + published_rows(metrics["published"], names))


def references_lines(metrics: dict) -> list[str]:
    return ["Reference models' settings:", "",
            markdown_table(["reference", "settings"],
                           [[name, settings_text(ref)] for name, ref in metrics["references"].items()]), ""]


def order_sentence(order: dict) -> str:
    """What the report says of the order the held-out songs were drawn in."""
    if order["order"] == FILE_ORDER:
        return (f"Each held-out user's songs to predict were drawn in {FILE_ORDER} order, the order of their lines "
                f"in {order['triplets']}, as vae_cf draws them: the same songs are held out.")
    return (f"Each held-out user's songs to predict were drawn in {SONG_ID_ORDER} order, not vae_cf's file order "
            f"({order['reason']}): the same number of songs, not the same songs.")


def render_liang(metrics: dict) -> str:
    d, c = metrics["data"], metrics["config"]
    return "\n".join([
        "# Liang et al. (2018) MSD protocol",
        "",
        f"{d['users']:,} users x {d['songs']:,} songs ({d['pairs']:,} pairs) binarized; songs with at least "
        f"{c['min_song_users']} users, then users with at least {c['min_user_songs']} of them: "
        f"{d['filtered_users']:,} users x {d['filtered_songs']:,} songs ({d['filtered_pairs']:,} pairs; published: "
        f"571,355 x 41,140). Seed {c['seed']}: {d['train_users']:,} training users over {d['train_songs']:,} songs, "
        f"{d['validation_users']:,} validation and {d['test_users']:,} test users, each held-out user's songs "
        f"{1 - c['test_fraction']:.0%} fold-in / {c['test_fraction']:.0%} to predict "
        f"({d['test_predict_pairs']:,} test pairs to predict).",
        "",
        order_sentence(metrics["fold_in_order"]),
        "",
        side_by_side(metrics, METRICS),
        "",
        "Recall@k is hits / min(k, songs to predict), NDCG@100 is normalised by the ideal ranking, as Liang et al. "
        "define them. `pmrs` is what the server answers each test listener sent their fold-in songs as seeds "
        f"({metrics['seeds_capped']} listeners had more than the request's seed limit and sent their first by play "
        "count). Published rows are the papers' own figures on the full data; they compare with the measured rows "
        "only when this ran on the Taste Profile's train_triplets.txt.",
        "",
        *references_lines(metrics),
    ])
