"""``indexer build``: the latest WMF and CNN runs (and any extra sources) -> ``bundles/<version>/``,
then ``bundles/CURRENT``.

The bundle contract (files, manifest, ``CURRENT``) is ``pmrs.serving.contract`` and docs/DESIGN.md;
this module writes exactly that. In short: the song universe is the union of the songs of every
source (sorted bytes ids; a song's *row* is its index there); the users, their factors and the
CSR of each user's played song rows come from the WMF run and the work directory's interactions;
one FAISS index per source (collaborative: WMF song factors; acoustic: CNN-predicted factors;
others as given) with its recall@10 against exact search measured and its search parameter raised
until the target recall is reached; a snapshot of ``catalog.lmdb``; the default lists; and a
``manifest.json`` with the sha256 of every file.

Everything is written under a hidden ``bundles/.<version>.*.partial`` directory, fsynced and
renamed to ``bundles/<version>``; only then is ``bundles/CURRENT`` replaced (temp file +
``os.replace``). A failure or an interrupt at any point removes the partial directory and leaves
``CURRENT`` and every older bundle as they were. One build at a time holds ``bundles/.lock``.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import faiss
import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from ..acoustic.cold import CatalogKnowledge, ColdModel, cold_parts, combine
from ..acoustic.runs import CNN_DIR, WEIGHTS as CNN_WEIGHTS
from ..artifacts import list_runs, new_run_name, read_json, resolve_run, save_npy, sha256_file, write_json
from ..audio.store import FEATURES_FILE, FeatureStore
from ..catalog import snapshot_catalog
from ..songtext import write_song_text
from ..interactions import INTERACTIONS_DIR, Interactions
from ..live.rebuild import live_seq_of
from ..metadata import MetadataConfig, catalog_vectors
from ..collaborative.neighbours import NEIGHBOURS_DIR
from ..collaborative.neighbours import load_run as load_neighbours_run
from ..serving import contract as C
from ..serving.bundle import Bundle
from ..serving.default_lists import compute_default_lists
from ..collaborative.wmf import WMF_DIR, load_run
from .config import (ACOUSTIC_SHARE_NOT_VALIDATED, DEFAULT_METADATA_SHARE, FALLBACK_NEIGHBOURS_SHARE,
                     IndexerConfig)
from .inputs import cnn_inputs, resolve_cnn_run, rows_of, sorted_order, unit_rows
from .specs import build_chosen_index

log = logging.getLogger(__name__)

_UMASK = os.umask(0)
os.umask(_UMASK)


@dataclass
class SourceInput:
    """A source to put in a bundle besides the collaborative one (docs/DESIGN.md, "Sources").

    song_ids: ``(n,)`` fixed-width bytes, unique (any order). vectors: ``(n, d)`` float32.
    space: ``contract.WMF_SPACE`` when the vectors live in the WMF latent space (queried with
        user factors), else any other name (queried with the mean vector of a user's songs).
    covers_cold: the source has vectors for songs nobody played.
    spec: a FAISS ``index_factory`` string; ``None``: the automatic choice.
    default_share: the share of a default list it contributes.
    embeddings, genre_probs, genres: per-song extras (the acoustic source's): L2-normalised MMR
        embeddings ``(n, e)`` and genre-head probabilities ``(n, g)`` with their genre names.
    origin: where the vectors came from. settings: how they were made (the manifest records it).
    live_model: writes into the bundle folder it is given what makes the vector of a song added
        live, and returns its ``live_models`` manifest entry (the metadata source's model).
    """

    name: str
    song_ids: np.ndarray
    vectors: np.ndarray
    space: str
    covers_cold: bool = True
    spec: str | None = None
    default_share: float = 0.0
    embeddings: np.ndarray | None = None
    genre_probs: np.ndarray | None = None
    genres: list[str] = field(default_factory=list)
    origin: str = "injected"
    settings: dict | None = None  # recorded in the manifest's entry for the source
    live_model: Callable[[Path], dict] | None = None


@dataclass
class NeighboursInput:
    """A ``neighbours``-kind source (docs/DESIGN.md, "Sources"): the neighbourhood model's sparse
    top-K song similarities ``similarity`` (``(n, n)`` CSR, rows and columns named by
    ``song_ids``; row: a song a listener played, column: a candidate), from a
    ``pmrs train-neighbours`` run. Songs without plays have no row: ``covers_cold`` is false.

    play_share: its share of the play-based part of a default list (collaborative + neighbours,
    as chosen on validation): its default share is that times what the other non-primary
    sources' default shares leave. default_share: its share of a default list as given (then
    ``play_share`` is ignored). origin: the run. settings: the run's settings and the share chosen
    on validation (recorded in the manifest)."""

    name: str
    song_ids: np.ndarray
    similarity: sp.csr_matrix
    play_share: float = 0.5
    default_share: float | None = None
    origin: str = "injected"
    settings: dict | None = None

    def share(self, others: float) -> float:
        """Its default share beside other non-primary sources whose default shares sum to ``others``."""
        if self.default_share is not None:
            return float(self.default_share)
        return round(self.play_share * max(0.0, 1.0 - others), 4)


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def build_bundle(workdir: str | os.PathLike, cfg: IndexerConfig | None = None,
                 wmf_run: str | None = None, cnn_run: str | None = None,
                 acoustic_override: dict | None = None, extra_sources: Sequence[SourceInput] = (),
                 show_progress: bool | None = None, metadata_cfg: MetadataConfig | None = None,
                 neighbours_run: str | None = None, neighbours_override: NeighboursInput | None = None) -> Path:
    """Build ``<workdir>/bundles/<version>/`` (docs/SERVING.md) and point ``CURRENT`` at it.

    Parameters
    ----------
    workdir: the work directory (``interactions/``, ``models/``, ``catalog.lmdb``).
    cfg: index settings; ``None``: the defaults.
    wmf_run, cnn_run: run names or paths; ``None``: the latest run. With no CNN run at all the
        bundle is collaborative only (no acoustic files, ``source_runs.cnn`` null).
    acoustic_override: for benchmarks: a dict like ``load_predictions``'s (``song_ids``,
        ``factors``, optional ``embeddings``, ``genre_probs``, ``genres``, ``source``) used
        instead of a CNN run's predictions.
    extra_sources: more sources (``SourceInput``), after the collaborative and acoustic ones.
    show_progress: a progress bar over the build steps (default: on a terminal).
    metadata_cfg: how the ``metadata`` source's vectors are made (``pmrs.metadata``); it is built
        from ``catalog.lmdb`` when ``cfg.metadata`` is on, the catalog exists and no extra source
        is named ``metadata``.
    neighbours_run: the ``pmrs train-neighbours`` run of the ``neighbours`` source (a name or a
        path); ``None``: the latest. The source is added when ``cfg.neighbours`` is on and a run
        exists (it must have been built from the work directory's interactions).
    neighbours_override: for benchmarks: the neighbours source as given instead of a run's.

    Returns the bundle's directory.
    """
    cfg = cfg or IndexerConfig()
    workdir = Path(workdir)
    bundles = C.bundles_dir(workdir)
    if show_progress is None:
        show_progress = sys.stderr.isatty()
    t_start = time.perf_counter()

    with C.build_lock(workdir):
        C.remove_stale_partials(workdir)
        version = new_run_name()
        while (bundles / version).exists():
            version = new_run_name()
        final = bundles / version
        tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", suffix=".partial", dir=bundles))
        os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp makes 0700; a server may run as another user
        try:
            extra = list(extra_sources)
            nb = (neighbours_override if neighbours_override is not None
                  else _neighbours_source(workdir, cfg, neighbours_run) if cfg.neighbours else None)
            if cfg.metadata and not any(s.name == C.METADATA for s in extra):
                meta = _metadata_source(workdir, cfg, metadata_cfg, nb)
                extra += [meta] if meta is not None else []
            with tqdm(total=8 + len(extra) + (nb is not None), desc="indexer build", unit="step",
                      disable=not show_progress) as bar:
                manifest = _assemble(tmp, workdir, cfg, version, wmf_run, cnn_run, acoustic_override,
                                     extra, bar, nb)
                bar.set_postfix_str("default lists")
                if cfg.default_lists:
                    manifest["default_lists"] = _write_default_lists(tmp, manifest, cfg, show_progress)
                bar.update()
                manifest["build_seconds"] = round(time.perf_counter() - t_start, 3)
                bar.set_postfix_str("checksums")
                manifest["checksums"] = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
                write_json(tmp / C.MANIFEST_FILE, manifest)
                for p in tmp.iterdir():
                    if p.is_file():
                        C.fsync_path(p)
                C.fsync_path(tmp)
                bar.update()
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        try:
            C.fsync_path(bundles)
            C.switch_current(workdir, version)
        except BaseException:
            if _current_or_none(workdir) != version:  # never served: leave no trace
                shutil.rmtree(final, ignore_errors=True)
            raise
        log.info("bundle %s is CURRENT (%.1f s)", version, time.perf_counter() - t_start)
        C.prune_bundles(workdir, cfg.keep)
    return final


def _current_or_none(workdir: Path) -> str | None:
    try:
        return C.read_current(workdir)
    except C.ContractError:
        return None


def _write_default_lists(tmp: Path, manifest: dict, cfg: IndexerConfig, show_progress: bool) -> dict:
    """Compute the default lists of both kinds over the bundle in ``tmp`` (opened with a
    provisional manifest), save them, and return their manifest entry."""
    entry = {}
    write_json(tmp / C.MANIFEST_FILE, manifest)
    with Bundle.open(tmp, threads=None) as bundle:
        d = bundle.defaults
        shares = C.resolve_shares(bundle.source_names, d.shares)
        for kind, diversity in (("recommend", d.diversity), ("similar", d.similar_diversity)):
            t0 = time.perf_counter()
            lists = compute_default_lists(bundle, kind, k=d.k, shares=shares, diversity=diversity,
                                          workers=cfg.list_workers, show_progress=show_progress)
            for part, name in C.list_files(kind).items():
                save_npy(tmp / name, lists[part])
            entry[kind] = {"k": d.k, "shares": shares, "diversity": diversity,
                           "seconds": round(time.perf_counter() - t0, 3)}
            log.info("default %s lists: %d rows in %.1f s", kind, len(lists["rows"]), entry[kind]["seconds"])
    (tmp / C.MANIFEST_FILE).unlink()  # the final one, with checksums, is written last
    return entry


def _acoustic_source(workdir: Path, cnn_run: str | None, acoustic_override: dict | None, wmf_dir: Path,
                     wmf_songs: np.ndarray, wmf_factors: np.ndarray, cfg: IndexerConfig
                     ) -> tuple[SourceInput | None, ColdModel | None]:
    """The acoustic source from a CNN run's predictions (or ``acoustic_override``, a dict like
    ``load_predictions``'s; without embeddings its factors' directions stand in), and the model
    that combined its cold songs' vectors (``pmrs.acoustic.cold``, with the weights the CNN run
    chose on validation; ``None`` when it chose none); ``(None, None)`` without a CNN run."""
    k = wmf_factors.shape[1]
    history: dict = {}
    if acoustic_override is not None:
        pred = dict(acoustic_override)
    elif not cfg.acoustic:
        return None, None
    else:
        cnn_dir = resolve_cnn_run(workdir, cnn_run)
        if cnn_dir is None:
            log.warning("no CNN run under %s: building a bundle without the acoustic source",
                        workdir / CNN_DIR)
            return None, None
        pred = cnn_inputs(cnn_dir, wmf_dir, k)
        pred["source"] = str(cnn_dir.resolve())
        history = read_json(cnn_dir / "history.json") if (cnn_dir / "history.json").is_file() else {}
    factors = np.asarray(pred["factors"], dtype=np.float32)
    if factors.ndim != 2 or factors.shape[1] != k:
        raise ValueError(f"acoustic vectors have shape {factors.shape}; the WMF run has {k} factors")
    emb = pred.get("embeddings")
    embeddings = unit_rows(factors if emb is None else emb)
    settings, cold = _undertrained_settings(history), None
    settings["share_from"] = "given" if cfg.default_acoustic_share != IndexerConfig.default_acoustic_share else "fixed"
    if settings["share_from"] == "fixed":
        settings["share_why"] = ACOUSTIC_SHARE_NOT_VALIDATED
    weights = (history.get("cold_start") or {}).get("weights")
    if weights:
        factors, cold, settings["cold_start"] = _cold_vectors(workdir, pred["song_ids"], factors, wmf_songs,
                                                             wmf_factors, weights)
    elif acoustic_override is None:
        why = (history.get("cold_start") or {}).get("why") or "the CNN run chose no cold-start weights (an older run)"
        settings["cold_start"] = {"weights": None, "why": why}
        log.warning("cold songs get the CNN's prediction alone: %s", why)
    return _checked_source(SourceInput(
        C.ACOUSTIC, pred["song_ids"], factors, C.WMF_SPACE, covers_cold=True, spec=cfg.acoustic_spec,
        default_share=cfg.default_acoustic_share, embeddings=embeddings,
        genre_probs=pred.get("genre_probs"), genres=list(pred.get("genres") or []),
        origin=pred.get("source", "injected"), settings=settings)), cold


def _undertrained_settings(history: dict) -> dict:
    """The CNN run's verdict (``pmrs.acoustic.undertrained``), logged and kept for the manifest."""
    judged = history.get("undertrained")
    if not judged:
        return {}
    for part, v in judged.items():
        if v and v["undertrained"]:
            log.warning("the acoustic model's %s learned from too little: %s",
                        "genre head" if part == "genre_head" else "factor prediction", v["reason"])
    return {"undertrained": judged}


def _cold_vectors(workdir: Path, song_ids: np.ndarray, factors: np.ndarray, wmf_songs: np.ndarray,
                  wmf_factors: np.ndarray, weights: dict) -> tuple[np.ndarray, ColdModel, dict]:
    """The acoustic vectors with every song the WMF run lacks (a cold song) combined from its
    prediction and the catalog (``pmrs.acoustic.cold``), the model that did it, and the record."""
    ids = [s.decode() for s in np.asarray(song_ids)]
    played = [s.decode() for s in np.asarray(wmf_songs)]
    known = set(played)
    cold_rows = [i for i, s in enumerate(ids) if s not in known]
    knowledge = CatalogKnowledge.read(workdir / C.CATALOG_FILE)
    y = np.asarray(wmf_factors)
    out = np.array(factors, dtype=np.float32, copy=True)
    coverage: dict = {}
    if cold_rows:
        parts = cold_parts(knowledge, played, y, [ids[i] for i in cold_rows], factors[cold_rows])
        out[cold_rows] = combine(parts, weights)
        coverage = parts.coverage()
    log.info("%d cold songs with audio: vectors combined with the catalog (%s)", len(cold_rows),
             ", ".join(f"{p} {w:.3g}" for p, w in weights.items()))
    return out, ColdModel.fit(knowledge, played, y, weights), {
        "weights": dict(weights), "cold_songs": len(cold_rows), "coverage": coverage}


def _copy_live_models(tmp: Path, workdir: Path, acoustic: SourceInput | None) -> dict:
    """Copy what adding a song live needs into the bundle: the CNN of the acoustic source (when it
    came from a run) and the feature settings of the store it was trained on."""
    if acoustic is None or not (Path(acoustic.origin) / CNN_WEIGHTS).is_file():
        return {}
    run = Path(acoustic.origin)
    store = workdir / FEATURES_FILE
    if not store.is_file():
        log.warning("no feature store at %s: the bundle cannot add songs from audio", store)
        return {}
    with FeatureStore(store, readonly=True) as fs:
        features = asdict(fs.config())
    shutil.copyfile(run / CNN_WEIGHTS, tmp / C.CNN_WEIGHTS_FILE)
    shutil.copyfile(run / "config.json", tmp / C.CNN_CONFIG_FILE)
    write_json(tmp / C.FEATURE_CONFIG_FILE, features)
    return {"cnn": {"weights": C.CNN_WEIGHTS_FILE, "config": C.CNN_CONFIG_FILE,
                    "features": C.FEATURE_CONFIG_FILE}}


def _metadata_source(workdir: Path, cfg: IndexerConfig, mcfg: MetadataConfig | None,
                     nb: "NeighboursInput | None" = None) -> SourceInput | None:
    """The ``metadata`` source: every catalog song's metadata vector (``pmrs.metadata``), queried
    with the mean vector of a user's songs; ``None`` without a catalog. Its default share:
    ``cfg.default_metadata_share``, else the one chosen on validation that the neighbourhood
    run ``nb`` records, else ``DEFAULT_METADATA_SHARE``."""
    catalog = workdir / C.CATALOG_FILE
    if not catalog.is_file():
        log.warning("no %s: building a bundle without the metadata source", catalog)
        return None
    mv = catalog_vectors(catalog, mcfg)
    if not len(mv.song_ids):
        log.warning("%s holds no song: building a bundle without the metadata source", catalog)
        return None
    chosen = (nb.settings or {}).get("validated_metadata_share") if nb is not None else None
    share, why = ((cfg.default_metadata_share, "given") if cfg.default_metadata_share is not None
                  else (float(chosen), "validation") if chosen is not None
                  else (DEFAULT_METADATA_SHARE, "fallback"))
    settings = {**mv.settings, "songs_with_tags": mv.songs_with_tags, "features": mv.features,
                "seconds": mv.seconds, "share_from": why,
                "serving_share_table": (nb.settings or {}).get("metadata_share_table") if chosen is not None else None}
    return SourceInput(C.METADATA, mv.song_ids, mv.vectors, C.METADATA_SPACE, covers_cold=True,
                       spec=cfg.metadata_spec, default_share=share,
                       origin=str(catalog.resolve()), settings=settings,
                       live_model=None if mv.model is None else lambda tmp: _write_metadata_model(tmp, mv.model))


def _write_metadata_model(tmp: Path, model) -> dict:
    """The metadata model of the bundle's vectors (``pmrs.metadata.MetadataModel``): vocabularies
    and weights as JSON, the reduction's components as an array."""
    write_json(tmp / C.METADATA_MODEL_FILE, model.to_json())
    entry = {"model": C.METADATA_MODEL_FILE}
    if model.components is not None:
        save_npy(tmp / C.METADATA_COMPONENTS_FILE, model.components)
        entry["components"] = C.METADATA_COMPONENTS_FILE
    return entry


def _neighbours_source(workdir: Path, cfg: IndexerConfig, run: str | None) -> NeighboursInput | None:
    """The ``neighbours`` source from a ``pmrs train-neighbours`` run (``run``, else the latest);
    ``None`` when the work directory has none. Its default share: ``cfg.default_neighbours_share``,
    else the run's share chosen on validation (``NeighboursInput.play_share``)."""
    parent = workdir / NEIGHBOURS_DIR
    if run is None and not list_runs(parent):
        log.info("no neighbourhood run under %s: building a bundle without the neighbours source", parent)
        return None
    run_dir = resolve_run(parent, run)
    model, song_ids = load_neighbours_run(run_dir)
    config = read_json(run_dir / "config.json")
    chosen = (config.get("serving_share") or {}).get("share")
    if chosen is None and cfg.default_neighbours_share is None:
        log.warning("neighbourhood run %s records no share chosen on validation (trained with --no-select?): "
                    "the neighbours source takes %g of the play-based share", run_dir.name,
                    FALLBACK_NEIGHBOURS_SHARE)
    why = ("given" if cfg.default_neighbours_share is not None
           else "fallback" if chosen is None else "validation")
    settings = {k: v for k, v in config.items() if k not in ("selection", "serving_share")}
    served = config.get("serving_share") or {}
    settings.update({"share_from": why, "validated_share": chosen, "serving_share_table": served.get("table"),
                     "validated_metadata_share": served.get("metadata_share"),
                     "metadata_share_table": served.get("metadata_table")})
    return NeighboursInput(C.NEIGHBOURS, np.asarray(song_ids), model.similarity,
                           play_share=FALLBACK_NEIGHBOURS_SHARE if chosen is None else float(chosen),
                           default_share=cfg.default_neighbours_share, origin=str(run_dir.resolve()),
                           settings=settings)


def _neighbour_arrays(universe: np.ndarray, nb: NeighboursInput) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The CSR arrays of ``nb``'s similarities over the bundle's song rows (``contract.
    neighbour_files``): ``(indptr int64 (n_songs + 1,), indices int32 ascending per row, data
    float32)``, zeros dropped, a song of the universe without a row in the run an empty row."""
    ids = np.asarray(nb.song_ids)
    rows = rows_of(universe, ids).astype(np.int64)
    s = sp.csr_matrix(nb.similarity, dtype=np.float32, copy=True)
    if s.shape != (len(ids), len(ids)):
        raise ValueError(f"neighbours: a {s.shape} similarity matrix for {len(ids)} songs")
    if not np.isfinite(s.data).all():
        raise ValueError("neighbours: similarities hold NaN or infinite values")
    s.eliminate_zeros()
    mapped = sp.csr_matrix((s.data, rows[s.indices], s.indptr), shape=(len(ids), len(universe)))
    del s
    order = np.argsort(rows, kind="stable")
    if len(rows) > 1 and not (np.diff(rows) > 0).all():   # (the run's ids are sorted as a rule)
        mapped = mapped[order]
    mapped.sum_duplicates()   # (sorts each row's indices)
    mapped.sort_indices()
    lengths = np.zeros(len(universe), np.int64)
    lengths[rows[order]] = np.diff(mapped.indptr)
    indptr = np.zeros(len(universe) + 1, np.int64)
    np.cumsum(lengths, out=indptr[1:])
    return indptr, mapped.indices.astype(np.int32), mapped.data.astype(np.float32)


def _checked_source(src: SourceInput) -> SourceInput:
    """``src`` with its ids sorted (vectors and extras in the same order), validated."""
    ids = np.asarray(src.song_ids)
    if ids.dtype.kind == "U":
        ids = np.char.encode(ids, "utf-8")
    order = sorted_order(ids, f"{src.name} song ids")
    take = (lambda a: a) if order is None else (lambda a: np.asarray(a)[order])
    vectors = np.ascontiguousarray(take(src.vectors), dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != len(ids):
        raise ValueError(f"source {src.name!r}: vectors of shape {vectors.shape} for {len(ids)} songs")
    if not np.isfinite(vectors).all():
        raise ValueError(f"source {src.name!r}: vectors hold NaN or infinite values")
    if not src.name or not src.name.replace("_", "").isalnum() or src.name != src.name.lower():
        raise ValueError(f"source names are lower-case letters, digits and _, got {src.name!r}")
    extras = {key: None if getattr(src, key) is None else np.ascontiguousarray(take(getattr(src, key)),
                                                                               dtype=np.float32)
              for key in ("embeddings", "genre_probs")}
    for key, a in extras.items():
        if a is not None and (a.ndim != 2 or len(a) != len(ids)):
            raise ValueError(f"source {src.name!r}: {key} of shape {a.shape} for {len(ids)} songs")
    if extras["genre_probs"] is not None and src.genres and len(src.genres) != extras["genre_probs"].shape[1]:
        raise ValueError(f"{len(src.genres)} genre names for {extras['genre_probs'].shape[1]} genre probabilities")
    return SourceInput(src.name, ids if order is None else ids[order], vectors, src.space, src.covers_cold,
                       src.spec, src.default_share, extras["embeddings"], extras["genre_probs"],
                       list(src.genres), src.origin, src.settings, src.live_model)


def _assemble(tmp: Path, workdir: Path, cfg: IndexerConfig, version: str, wmf_run: str | None,
              cnn_run: str | None, acoustic_override: dict | None, extra: list[SourceInput], bar,
              nb: NeighboursInput | None = None) -> dict:
    """Write every bundle file into ``tmp``; return the manifest without checksums."""
    # -- inputs ---------------------------------------------------------------------------------
    bar.set_postfix_str("inputs")
    wmf_dir = resolve_run(workdir / WMF_DIR, wmf_run)
    model, wmf_users, wmf_songs = load_run(wmf_dir, mmap=True)
    k = model.song_factors.shape[1]
    acoustic, cold = _acoustic_source(workdir, cnn_run, acoustic_override, wmf_dir, wmf_songs,
                                      model.song_factors, cfg)
    live_models = _copy_live_models(tmp, workdir, acoustic)
    if cold is not None and live_models.get("cnn"):   # (a song added live is combined as in the build)
        live_models["cold"] = cold.save(tmp, C.COLD_MODEL_FILE, C.COLD_TABLE_PREFIX)
    live_models.update({s.name: s.live_model(tmp) for s in extra if s.live_model is not None})
    others = ([acoustic] if acoustic is not None else []) + [_checked_source(s) for s in extra]
    names = [C.COLLABORATIVE] + [s.name for s in others] + ([nb.name] if nb is not None else [])
    if len(set(names)) != len(names):
        raise ValueError(f"source names must be distinct, got {names}")
    if len(names) > C.MAX_SOURCES:
        raise ValueError(f"a bundle holds at most {C.MAX_SOURCES} sources, got {len(names)}")
    log.info("WMF run %s: %d users, %d songs, %d factors; other sources: %s", wmf_dir.name, len(wmf_users),
             len(wmf_songs), k, ", ".join(f"{s.name} ({len(s.song_ids)} songs)" for s in others) or "none")
    bar.update()

    # -- ids, users -----------------------------------------------------------------------------
    bar.set_postfix_str("ids and users")
    song_order = sorted_order(wmf_songs, "WMF song ids")
    user_order = sorted_order(wmf_users, "WMF user ids")
    wmf_songs_sorted = wmf_songs if song_order is None else wmf_songs[song_order]
    universe = wmf_songs_sorted
    for s in others:
        universe = np.union1d(universe, s.song_ids)
    if nb is not None:
        universe = np.union1d(universe, np.asarray(nb.song_ids))
    user_ids = wmf_users if user_order is None else wmf_users[user_order]
    save_npy(tmp / C.SONG_IDS_FILE, np.ascontiguousarray(universe))
    save_npy(tmp / C.USER_IDS_FILE, np.ascontiguousarray(user_ids))
    user_factors = model.user_factors if user_order is None else model.user_factors[user_order]
    save_npy(tmp / C.USER_FACTORS_FILE, np.ascontiguousarray(user_factors, dtype=np.float32))
    bar.update()

    # -- played songs ---------------------------------------------------------------------------
    bar.set_postfix_str("played songs")
    inter = Interactions.load(workdir / INTERACTIONS_DIR)
    if len(inter.user_ids) != len(user_ids) or not np.array_equal(inter.user_ids, user_ids):
        raise ValueError(f"the interactions in {workdir / INTERACTIONS_DIR} ({inter.n_users} users) are "
                         f"not the users of WMF run {wmf_dir.name} ({len(user_ids)}); the data was "
                         "re-ingested since: retrain WMF (`pmrs train-wmf`) or pass the matching --wmf-run")
    try:
        col_rows = rows_of(universe, inter.song_ids).astype(np.int32)
    except ValueError:
        raise ValueError(f"the interactions name songs WMF run {wmf_dir.name} does not know; the data "
                         "was re-ingested since: retrain WMF (`pmrs train-wmf`)") from None
    m = inter.matrix
    played_indices = col_rows[m.indices]  # monotone map of sorted columns: rows stay sorted
    indptr = m.indptr.astype(np.int64)
    save_npy(tmp / C.PLAYED_INDPTR_FILE, indptr)
    save_npy(tmp / C.PLAYED_INDICES_FILE, played_indices)
    save_npy(tmp / C.PLAYED_COUNTS_FILE, np.ascontiguousarray(m.data, dtype=np.float32))
    if nb is not None and not np.array_equal(np.asarray(nb.song_ids), inter.song_ids):
        raise ValueError(f"neighbourhood run {Path(nb.origin).name} was built from other interactions than "
                         f"{workdir / INTERACTIONS_DIR} (the data was re-ingested since): retrain it "
                         "(`pmrs train-neighbours`) or leave the source out (--no-neighbours)")
    songs_with_plays = int(np.count_nonzero(np.bincount(played_indices, minlength=len(universe))))
    n_plays = int(m.nnz)
    del inter, m
    bar.update()

    # -- sources --------------------------------------------------------------------------------
    rng = np.random.default_rng(cfg.seed)
    collab_vectors = np.ascontiguousarray(
        model.song_factors if song_order is None else model.song_factors[song_order], dtype=np.float32)
    n_q = min(cfg.recall_queries, len(user_ids))
    sampled_users = np.sort(rng.choice(len(user_ids), n_q, replace=False))
    user_q = np.asarray(user_factors[sampled_users], dtype=np.float32)
    collab = SourceInput(C.COLLABORATIVE, wmf_songs_sorted, collab_vectors, C.WMF_SPACE, covers_cold=False,
                         spec=cfg.collaborative_spec, origin=str(wmf_dir.resolve()))
    sources: dict[str, dict] = {}
    genres: list[str] = []
    emb_dim = None
    for src in [collab] + others:
        bar.set_postfix_str(f"{src.name} index")
        rows = rows_of(universe, src.song_ids).astype(np.int32)
        files = C.source_files(src.name)
        save_npy(tmp / files["rows"], rows)
        save_npy(tmp / files["vectors"], src.vectors)
        # recall is held for both kinds of query a source answers: users (Recommend) and songs
        # (SimilarSongs, whose query is the song's own vector in that source)
        if src.space == C.WMF_SPACE:
            users_q = user_q
        else:
            users_q = _profile_queries(src, rows, sampled_users, indptr, played_indices)
        n_songs_q = min(max(1, n_q // 2), len(src.vectors))
        queries = {C.USER_QUERIES: users_q,
                   C.SONG_QUERIES: src.vectors[np.sort(rng.choice(len(src.vectors), n_songs_q, replace=False))]}
        index, entry = build_chosen_index(src.vectors, src.spec, queries, cfg)
        faiss.write_index(index, str(tmp / files["index"]))
        del index
        desc = {"kind": C.VECTORS, "space": src.space, "covers_cold": bool(src.covers_cold), "files": files,
                "index": {"file": files["index"], **entry}, "origin": src.origin}
        if src.settings is not None:
            desc["settings"] = src.settings
        if src.embeddings is not None and emb_dim is None:
            save_npy(tmp / C.EMBEDDINGS_FILE, src.embeddings)
            desc["embeddings"] = C.EMBEDDINGS_FILE
            emb_dim = int(src.embeddings.shape[1])
            if src.genre_probs is not None:   # (shapes checked by _checked_source)
                save_npy(tmp / C.GENRE_PROBS_FILE, src.genre_probs)
                desc["genre_probs"] = C.GENRE_PROBS_FILE
                genres = list(src.genres)
        sources[src.name] = desc
        bar.update()

    if nb is not None:   # a neighbours-kind source: the CSR over song rows, no index
        bar.set_postfix_str(f"{nb.name} matrix")
        t0 = time.perf_counter()
        files = C.neighbour_files(nb.name)
        arrays = dict(zip(("indptr", "indices", "data"), _neighbour_arrays(universe, nb)))
        for part, a in arrays.items():
            save_npy(tmp / files[part], a)
        lengths = np.diff(arrays["indptr"])
        sources[nb.name] = {
            "kind": C.SPARSE_NEIGHBOURS, "space": C.COOCCURRENCE_SPACE, "covers_cold": False, "files": files,
            # what GetBundleInfo lists for a source: the sum of sparse rows is exact (recall 1)
            "index": {"spec": f"sparse top-{int(lengths.max(initial=0))} neighbours", "exact": True,
                      "transform": "none", "search_params": {}, "recall_at_10": 1.0,
                      "vectors": int((lengths > 0).sum()), "stored": int(lengths.sum()),
                      "build_seconds": round(time.perf_counter() - t0, 3)},
            "origin": nb.origin, "settings": nb.settings}
        bar.update()

    # -- catalog --------------------------------------------------------------------------------
    bar.set_postfix_str("catalog")
    catalog = workdir / C.CATALOG_FILE
    if catalog.is_file():
        snapshot_catalog(catalog, tmp / C.CATALOG_FILE)
        write_song_text(tmp / C.CATALOG_FILE, tmp / C.SONG_TEXT_FILE)
    else:
        log.warning("no %s: the bundle has no catalog (songs() gives ids only)", catalog)
    bar.update()

    extra_shares = {s.name: s.default_share for s in others if s.name != C.ACOUSTIC}
    if nb is not None:   # (scaled by what the sources this bundle has leave)
        taken = sum(extra_shares.values()) + (cfg.default_acoustic_share if acoustic is not None else 0.0)
        extra_shares[nb.name] = nb.share(taken)
    defaults = cfg.defaults(extra_shares)
    # only the sources this bundle has (a bundle without a CNN run has no acoustic share)
    defaults = C.Defaults(defaults.k, {n: v for n, v in defaults.shares.items() if n in names},
                          defaults.diversity, defaults.similar_diversity)
    return {
        "format_version": C.FORMAT_VERSION, "version": version, "created_at": _utc_now(),
        "source_runs": {"wmf": str(wmf_dir.resolve()),
                        "cnn": acoustic.origin if acoustic is not None else None,
                        **({C.NEIGHBOURS: nb.origin} if nb is not None else {})},
        "wmf_config": asdict(model.config),
        "counts": {"users": int(len(user_ids)), "songs": int(len(universe)),
                   "songs_with_plays": songs_with_plays, "songs_with_factors": int(len(collab_vectors)),
                   "songs_with_audio": 0 if acoustic is None else int(len(acoustic.song_ids)),
                   "plays": n_plays},
        "dimensions": {"factors": int(k), "embedding": emb_dim},
        "genres": genres,
        "catalog": C.CATALOG_FILE if catalog.is_file() else None,
        "sources": sources,
        "defaults": defaults.to_manifest(),
        "indexer_config": asdict(cfg),
        "live_models": live_models,
        "live_seq": live_seq_of(workdir / INTERACTIONS_DIR),
    }


def _profile_queries(src: SourceInput, rows: np.ndarray, users: np.ndarray, indptr: np.ndarray,
                     played: np.ndarray) -> np.ndarray:
    """The queries of sampled ``users`` in a source outside the WMF space: the mean vector of each
    user's played songs that the source has (users with none are left out)."""
    out = []
    for u in users.tolist():
        songs = played[indptr[u]:indptr[u + 1]]
        pos = np.minimum(np.searchsorted(rows, songs), len(rows) - 1)
        hit = pos[rows[pos] == songs]
        if len(hit):
            out.append(src.vectors[hit].mean(axis=0))
    if not out:
        return src.vectors[:1]
    return np.asarray(out, dtype=np.float32)
