"""The bundle contract: what a bundle directory holds, its format versions, the request defaults
it records, and how a work directory says which bundle is current.

One module, imported by the writer (``pmrs.indexing``), the reader (``pmrs.serving.bundle``), the
public API (``pmrs.Recommender``) and the server: a file name, a source name or a default lives
here and nowhere else. docs/DESIGN.md describes the layout in prose.

Layout of a work directory's bundles::

    <workdir>/bundles/CURRENT              one line: the name of the bundle being served
    <workdir>/bundles/<version>/           one complete bundle (manifest.json last)
    <workdir>/bundles/.<version>.*.partial a build in progress (never read)
    <workdir>/bundles/.lock                held by the build in progress

**Sources.** A bundle holds any number of named *sources* (at most ``MAX_SOURCES``), in the
manifest's order. A source's *kind* says what it holds: ``"vectors"`` (every source of formats 1
and 2) is a set of song vectors with a FAISS index over them; ``"neighbours"`` is a sparse top-K
song-to-song similarity matrix ``S`` in CSR form over the bundle's song rows (the neighbourhood
model, ``pmrs.collaborative.neighbours``): a listener's scores are the sum of the rows of their songs, a song's
neighbours its row, and only songs with plays have a row. A vector source's
``space`` says how a user is turned into a query for it: ``"wmf"`` sources live in the WMF
latent space and are queried with the user's factors (the collaborative source, and the acoustic
one whose CNN predicts WMF factors); any other space is queried with the mean of the vectors of
the songs the user played (or sent as seeds). ``covers_cold`` says whether the source has
vectors for songs nobody played. The first source is the *primary* one: it takes whatever share
of a list the others leave.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping

from ..artifacts import list_runs, read_json
from ..errors import ContractError

log = logging.getLogger(__name__)

#: Written by today's indexer. Version 3 is version 2 with a ``kind`` per source (version 2's
#: sources are all ``"vectors"``); version 1 (two fixed sources, files named per source kind) and
#: version 2 are still read: ``upgrade_manifest`` turns their manifests into version 3's shape.
FORMAT_VERSION = 3
READABLE_FORMATS = (1, 2, 3)

BUNDLES_DIR = "bundles"
CURRENT_FILE = "CURRENT"
MANIFEST_FILE = "manifest.json"
LOCK_FILE = ".lock"
PARTIAL_GLOB = ".*.partial"

# -- files every bundle has (besides manifest.json and the catalog snapshot) ------------------
SONG_IDS_FILE = "song_ids.npy"            # (n_songs,) sorted fixed-width bytes; a song's row
USER_IDS_FILE = "user_ids.npy"            # (n_users,) sorted fixed-width bytes; a user's row
USER_FACTORS_FILE = "user_factors.npy"    # (n_users, f) float32 WMF user factors
PLAYED_INDPTR_FILE = "played_indptr.npy"  # (n_users + 1,) int64 CSR of each user's played songs
PLAYED_INDICES_FILE = "played_indices.npy"  # (plays,) int32 song rows, ascending per user
#: (plays,) float32 play counts aligned with ``played_indices`` (from bundles of 2026-11-29 on;
#: a bundle without it counts each played song once when a live write recomputes a user).
PLAYED_COUNTS_FILE = "played_counts.npy"
CATALOG_FILE = "catalog.lmdb"
SONG_TEXT_FILE = "song_text.txt"   # the catalog's titles and artists for substring search (pmrs.songtext)

# -- sources --------------------------------------------------------------------------------------
COLLABORATIVE = "collaborative"   # WMF song factors: every bundle has it, and it comes first
ACOUSTIC = "acoustic"             # CNN-predicted WMF factors (songs with audio, cold ones too)
METADATA = "metadata"             # song vectors from metadata and tags (pmrs.metadata), cold songs too
NEIGHBOURS = "neighbours"         # the neighbourhood model's top-K song similarities (songs with plays)
WMF_SPACE = "wmf"
METADATA_SPACE = "metadata"
#: The neighbours source's space: co-occurrence similarities, queried with the listener's songs.
COOCCURRENCE_SPACE = "cooccurrence"
#: Source kinds (a manifest source's ``kind``; absent in formats 1 and 2: ``VECTORS``).
VECTORS = "vectors"               # song vectors + a FAISS index (files: ``source_files``)
SPARSE_NEIGHBOURS = "neighbours"  # a CSR song x song similarity matrix (files: ``neighbour_files``)
SOURCE_KINDS = (VECTORS, SPARSE_NEIGHBOURS)
#: Kinds of query a vector source answers, each with its recall measured at build time (an index
#: entry's ``recall_at_10_by_queries``) and, from format 3 on, optionally its own search parameters
#: (``search_params_by_queries``: song vectors are easier queries than users' and need fewer probes).
USER_QUERIES = "users"            # Recommend: a user's factors, a fold-in, a profile's mean vector
SONG_QUERIES = "songs"            # SimilarSongs: the song's own vector in that source
MAX_SOURCES = 8                   # a list entry records its sources as a bit mask in one byte
#: Per-song extras of the source that has them: L2-normalised embeddings for MMR re-ranking and
#: genre-head probabilities (``GetSong``'s confidences).
EMBEDDINGS_FILE = "acoustic_embeddings.npy"
GENRE_PROBS_FILE = "genre_probs.npy"
#: The models a server needs to add songs live (manifest ``live_models``): the CNN whose
#: predictions fill the acoustic source (its state_dict, read with ``weights_only=True``, and
#: config) and the feature settings its clips were extracted with.
CNN_WEIGHTS_FILE = "cnn_weights.pt"
CNN_CONFIG_FILE = "cnn_config.json"
FEATURE_CONFIG_FILE = "feature_config.json"
#: ... and the metadata source's model: vocabularies, weights and idf, and the SVD's components.
METADATA_MODEL_FILE = "metadata_model.json"
METADATA_COMPONENTS_FILE = "metadata_components.npy"
#: ... and what combines a cold song's audio prediction with the catalog (``pmrs.acoustic.cold``):
#: the weights and mean factors (JSON) and one ``(n_keys, k)`` array of key means per key part.
COLD_MODEL_FILE = "cold_model.json"
COLD_TABLE_PREFIX = "cold_means_"


def source_files(name: str) -> dict[str, str]:
    """The files of a ``vectors``-kind source ``name`` (formats 2 and 3): its FAISS index, the song
    rows of its vectors (ascending int32) and the vectors ``(n, d)`` float32."""
    return {"index": f"{name}.faiss", "rows": f"{name}_rows.npy", "vectors": f"{name}_vectors.npy"}


def neighbour_files(name: str) -> dict[str, str]:
    """The files of a ``neighbours``-kind source ``name``: the CSR arrays of its ``(n_songs,
    n_songs)`` similarity matrix over the bundle's song rows: ``indptr`` (n_songs + 1,) int64,
    ``indices`` (nnz,) int32 song rows, strictly ascending within a row, ``data`` (nnz,) float32
    finite similarities. A song without plays has an empty row."""
    return {part: f"{name}_{part}.npy" for part in ("indptr", "indices", "data")}


_V1_FILES = {COLLABORATIVE: {"index": "collaborative.faiss", "rows": "collab_rows.npy",
                             "vectors": "collab_vectors.npy"},
             ACOUSTIC: {"index": "acoustic.faiss", "rows": "acoustic_rows.npy",
                        "vectors": "acoustic_vectors.npy"}}

# -- default lists ----------------------------------------------------------------------------------
#: Default lists (answers computed at build time) a bundle may hold, by kind: Recommend's per
#: user, SimilarSongs' (mixed) per song.
LIST_KINDS = ("recommend", "similar")


def list_files(kind: str) -> dict[str, str]:
    """The files of the default lists of ``kind`` (``LIST_KINDS``): song rows (int32), scores
    (float32) and source masks (uint8; bit ``i`` is the bundle's ``i``-th source)."""
    return {part: f"{kind}_{part}.npy" for part in ("rows", "scores", "sources")}


# -- request defaults -----------------------------------------------------------------------------
DEFAULT_K = 10
MAX_K = 1000
MAX_SEEDS = 500
#: Shares of the non-primary sources in a default request; the primary source takes the rest.
DEFAULT_SHARES: Mapping[str, float] = {ACOUSTIC: 0.2}
DEFAULT_DIVERSITY = 0.0
#: SimilarSongs re-ranks only when asked, whatever Recommend's default diversity is.
DEFAULT_SIMILAR_DIVERSITY = 0.0
#: Tags a song's description carries at most (the heaviest; GetSong, ``Recommender.song``).
MAX_SONG_TAGS = 20


def _unit(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:  # also NaN
        raise ValueError(f"{name} must be between 0 and 1, got {value}")
    return value


@dataclass(frozen=True)
class Defaults:
    """What a request that leaves a setting unset gets: recorded in every manifest by the indexer,
    used by ``pmrs.Recommender`` (and so by the server, unless its flags override them).

    k: songs per list. shares: the share of a list each named source contributes (sources not
    named, and the primary source, share what is left; see ``resolve_shares``). diversity:
    Recommend's MMR weight. similar_diversity: SimilarSongs' MMR weight.
    """

    k: int = DEFAULT_K
    shares: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_SHARES))
    diversity: float = DEFAULT_DIVERSITY
    similar_diversity: float = DEFAULT_SIMILAR_DIVERSITY

    def __post_init__(self) -> None:
        if not 1 <= int(self.k) <= MAX_K:
            raise ValueError(f"default k must be between 1 and {MAX_K}, got {self.k}")
        object.__setattr__(self, "k", int(self.k))
        shares = {str(name): _unit(f"default share of {name}", v) for name, v in dict(self.shares).items()}
        object.__setattr__(self, "shares", shares)
        object.__setattr__(self, "diversity", _unit("default diversity", self.diversity))
        object.__setattr__(self, "similar_diversity", _unit("default similar_diversity",
                                                            self.similar_diversity))

    def to_manifest(self) -> dict:
        return {"k": self.k, "shares": dict(self.shares), "diversity": self.diversity,
                "similar_diversity": self.similar_diversity}

    @classmethod
    def from_manifest(cls, entry: Mapping | None) -> "Defaults":
        entry = dict(entry or {})
        return cls(k=entry.get("k", DEFAULT_K), shares=entry.get("shares", DEFAULT_SHARES),
                   diversity=entry.get("diversity", DEFAULT_DIVERSITY),
                   similar_diversity=entry.get("similar_diversity", DEFAULT_SIMILAR_DIVERSITY))

    def replace(self, **changes) -> "Defaults":
        """These defaults with the given fields changed (``None`` values are ignored); ``shares``
        changes the shares of the sources it names and keeps the others'."""
        values = self.to_manifest()
        values.update({k: v for k, v in changes.items() if v is not None})
        values["shares"] = {**self.shares, **dict(changes.get("shares") or {})}
        return Defaults(**values)


class Shares(dict):
    """Every source's share of a list, as :func:`resolve_shares` resolved it (a ``dict`` name ->
    share): passed on as it is, never resolved twice, and it remembers its quotas per ``k``."""

    __slots__ = ("_quotas",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._quotas: dict = {}


def resolve_shares(sources: list[str], defaults: Mapping[str, float],
                   requested: Mapping[str, float] | None = None) -> dict[str, float]:
    """The share of each of ``sources`` (in bundle order; the first is the primary) for a request.

    A request names shares for some sources (each in [0, 1]; unknown names are an error). When it
    names every source, the shares are weights and are normalised to sum to 1. Otherwise the named
    shares must sum to at most 1, and the rest is split among the unnamed sources in proportion to
    their default shares (the primary's default is whatever the others' defaults leave); when all
    of those are 0 the primary takes it. ``ValueError`` for a share out of range, an unknown
    source, or named shares over 1.
    """
    if not sources:
        return Shares()
    if type(requested) is Shares and list(requested) == list(sources):
        return requested
    requested = dict(requested or {})
    unknown = sorted(set(requested) - set(sources))
    if unknown:
        raise ValueError(f"unknown source(s) {', '.join(map(repr, unknown))}; this bundle has "
                         f"{', '.join(sources)}")
    req = {name: _unit(f"share of {name}", v) for name, v in requested.items()}
    primary = sources[0]
    base = {name: float(defaults.get(name, 0.0)) for name in sources[1:]}
    base[primary] = max(0.0, 1.0 - sum(base.values()))
    if len(req) == len(sources):
        total = sum(req.values())
        if total <= 0:
            raise ValueError("the shares of all sources are 0")
        if abs(total - 1.0) <= 1e-9:
            return Shares((name, req[name]) for name in sources)
        return Shares((name, req[name] / total) for name in sources)
    named = sum(req.values())
    if named > 1.0 + 1e-6:
        raise ValueError(f"the named shares add up to {named:g}, more than 1")
    rest = max(0.0, 1.0 - named)
    unnamed = [name for name in sources if name not in req]
    weight = sum(base[name] for name in unnamed)
    out = {}
    for name in sources:
        if name in req:
            out[name] = req[name]
        elif weight > 0:
            out[name] = rest * base[name] / weight
        else:
            out[name] = rest if name == primary else 0.0
    return Shares(out)


def quotas(sources: list[str], shares: Mapping[str, float], k: int) -> dict[str, int]:
    """Songs each source contributes to a list of ``k``: every non-primary source in bundle order
    gets ``share * k`` rounded half up (so a share of 0.5 of 5 songs is 3), as long as songs are
    left; the primary source (the first) gets the rest."""
    if type(shares) is Shares:  # (computed once per k for a request's resolved shares)
        key = (k, tuple(sources))
        got = shares._quotas.get(key)
        if got is None:
            got = shares._quotas[key] = quotas(sources, dict(shares), k)
        return got
    out: dict[str, int] = {}
    left = int(k)
    for name in sources[1:]:
        q = min(left, int(math.floor(float(shares.get(name, 0.0)) * k + 0.5)))
        out[name] = q
        left -= q
    if sources:
        out[sources[0]] = left
    return {name: out[name] for name in sources}


# -- manifests ------------------------------------------------------------------------------------


def upgrade_manifest(manifest: dict) -> dict:
    """A manifest of any readable format in version 3's shape (a copy); ``ContractError`` for a
    format this code does not read."""
    fv = manifest.get("format_version")
    if fv not in READABLE_FORMATS:
        raise ContractError(f"bundle format version {fv!r}; this PMRS reads versions "
                            f"{', '.join(map(str, READABLE_FORMATS))} (rebuild it with `indexer build`)")
    m = dict(manifest)
    if fv == 1:
        sources = {}
        for name, entry in (manifest.get("indexes") or {}).items():
            if name not in _V1_FILES:
                continue
            files = dict(_V1_FILES[name], index=entry.get("file", _V1_FILES[name]["index"]))
            src = {"space": WMF_SPACE, "covers_cold": name == ACOUSTIC, "files": files, "index": dict(entry)}
            if name == ACOUSTIC:
                src["embeddings"] = EMBEDDINGS_FILE
                src["genre_probs"] = GENRE_PROBS_FILE
            sources[name] = src
        m["sources"] = sources
        cfg = manifest.get("indexer_config") or {}
        m["defaults"] = Defaults(k=cfg.get("default_k", DEFAULT_K),
                                 shares={ACOUSTIC: cfg.get("default_acoustic_share", DEFAULT_SHARES[ACOUSTIC])},
                                 diversity=cfg.get("default_diversity", DEFAULT_DIVERSITY)).to_manifest()
        lists = {}
        for kind, entry in (manifest.get("default_lists") or {}).items():
            entry = dict(entry)
            entry["shares"] = {ACOUSTIC: float(entry.pop("acoustic_share", 0.0))}
            lists[kind] = entry
        m["default_lists"] = lists
    sources = {}
    for name, entry in (m.get("sources") or {}).items():
        entry = dict(entry)
        kind = entry.setdefault("kind", VECTORS)
        if kind not in SOURCE_KINDS:
            raise ContractError(f"bundle {m.get('version')!r}: source {name!r} is of kind {kind!r}; this "
                                f"PMRS reads {', '.join(SOURCE_KINDS)}")
        sources[name] = entry
    m["sources"] = sources
    names = list(sources)
    if names and sources[names[0]]["kind"] != VECTORS:
        raise ContractError(f"bundle {m.get('version')!r}: the first source must hold vectors")
    if not names or names[0] != COLLABORATIVE:
        raise ContractError(f"bundle {m.get('version')!r}: the first source must be {COLLABORATIVE!r}, "
                            f"got {names}")
    if len(names) > MAX_SOURCES:
        raise ContractError(f"bundle {m.get('version')!r} has {len(names)} sources; at most {MAX_SOURCES}")
    return m


# -- CURRENT, building, pruning -------------------------------------------------------------------


def bundles_dir(workdir: str | os.PathLike) -> Path:
    return Path(workdir) / BUNDLES_DIR


def read_current(workdir: str | os.PathLike) -> str | None:
    """The bundle name ``<workdir>/bundles/CURRENT`` holds; ``None`` when the file does not exist.
    ``ContractError`` when it cannot be read (permissions, not UTF-8), is empty, or holds
    something that is not a bundle name (a path, several lines, hidden names)."""
    path = bundles_dir(workdir) / CURRENT_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ContractError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        name = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ContractError(f"{path} is not UTF-8 text ({len(raw)} bytes)") from None
    if not name:
        raise ContractError(f"{path} is empty")
    if ("/" in name or "\\" in name or "\n" in name or "\0" in name or name.startswith(".")
            or len(name) > 255):
        raise ContractError(f"{path} does not hold a bundle name: {name[:64]!r}")
    return name


def current_bundle(workdir: str | os.PathLike) -> Path:
    """The directory of the bundle ``CURRENT`` names; ``FileNotFoundError`` when there is none,
    ``ContractError`` when ``CURRENT`` is unreadable."""
    bundles = bundles_dir(workdir)
    name = read_current(workdir)
    if name is None:
        raise FileNotFoundError(f"no bundle in {bundles} (no {CURRENT_FILE}); run `indexer build` first")
    path = bundles / name
    if not (path / MANIFEST_FILE).is_file():
        raise FileNotFoundError(f"{bundles / CURRENT_FILE} names {name!r}, but {path} is not a bundle")
    return path


def resolve_bundle(path: str | os.PathLike) -> Path:
    """A bundle directory for ``path``: the bundle itself, or a work directory's current one."""
    p = Path(path)
    if (p / MANIFEST_FILE).is_file():
        return p
    if (p / BUNDLES_DIR).is_dir():
        return current_bundle(p)
    raise FileNotFoundError(f"{p} is neither a bundle (no {MANIFEST_FILE}) nor a work directory with "
                            f"{BUNDLES_DIR}/; run `indexer build`")


def workdir_of(path: str | os.PathLike) -> Path:
    """The work directory of ``path``: ``path`` itself when it has ``bundles/``, the folder above
    ``bundles/`` for a bundle inside one; ``FileNotFoundError`` otherwise."""
    p = Path(path)
    if (p / BUNDLES_DIR).is_dir():
        return p
    if (p / MANIFEST_FILE).is_file() and p.parent.name == BUNDLES_DIR:
        return p.parent.parent
    raise FileNotFoundError(f"{p} is not a work directory (no {BUNDLES_DIR}/) nor a bundle inside one; "
                            f"live writes need the work directory, whose live/ folder holds the write log")


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def switch_current(workdir: str | os.PathLike, version: str) -> None:
    """Point ``CURRENT`` at ``version``: temp file, fsync, ``os.replace``, fsync the folder."""
    bundles = bundles_dir(workdir)
    fd, name = tempfile.mkstemp(prefix=f".{CURRENT_FILE}.", suffix=".tmp", dir=bundles)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(version + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(name, 0o644)
        os.replace(name, bundles / CURRENT_FILE)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    fsync_path(bundles)


@contextlib.contextmanager
def build_lock(workdir: str | os.PathLike) -> Iterator[None]:
    """Hold ``bundles/.lock`` for a build; ``RuntimeError`` when another build holds it."""
    bundles = bundles_dir(workdir)
    bundles.mkdir(parents=True, exist_ok=True)
    with open(bundles / LOCK_FILE, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"another `indexer build` is running on {bundles}") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def remove_stale_partials(workdir: str | os.PathLike) -> None:
    """Partial directories of killed builds (safe only under ``build_lock``)."""
    for p in bundles_dir(workdir).glob(PARTIAL_GLOB):
        if p.is_dir():
            log.info("removing %s, left by an interrupted build", p)
            shutil.rmtree(p, ignore_errors=True)


def list_bundles(workdir: str | os.PathLike) -> list[Path]:
    """Complete bundles (a readable manifest) under ``<workdir>/bundles``, oldest first."""
    found = []
    for p in list_runs(bundles_dir(workdir)):
        try:
            created = read_json(p / MANIFEST_FILE).get("created_at", "")
        except (OSError, ValueError):
            continue
        found.append((created, p.name, p))
    return [p for _, _, p in sorted(found)]


def prune_bundles(workdir: str | os.PathLike, keep: int) -> list[Path]:
    """Delete complete bundles beyond the newest ``keep``, never the one ``CURRENT`` names."""
    try:
        current = read_current(workdir)
    except ContractError as exc:
        log.warning("not pruning bundles: %s", exc)
        return []
    doomed = [p for p in list_bundles(workdir)[:-keep or None] if p.name != current]
    for p in doomed:
        log.info("pruning bundle %s", p.name)
        shutil.rmtree(p, ignore_errors=True)
    return doomed
