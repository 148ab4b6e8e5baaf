"""WMF on Apache Spark: MLlib's ALS (``implicitPrefs=True``) fitted to PMRS's confidence.

``pmrs train-wmf --engine spark`` trains the same model as the ``implicit`` engine
(:mod:`pmrs.collaborative.wmf`) and writes the same ``models/wmf/<run>/`` files, so the CNN, the indexer and the
server cannot tell which engine trained a run. The translation:

- **Confidence.** MLlib's implicit ALS uses ``c = 1 + alpha * r`` and ``p = 1[r > 0]`` for each
  stored rating ``r``. PMRS hands it ``r' = log(1 + plays / eps)`` (plays summed per (user, song)
  pair first; ingest's matrix already is) with PMRS's ``alpha``, which gives exactly PMRS's
  ``1 + alpha * log(1 + plays / eps)``.
- **Regularization.** MLlib scales the ridge term of each row by that row's number of ratings
  (ALS-WR): a user with ``n_u`` songs is solved with ``regParam * n_u``, where PMRS uses one
  ``lambda`` for every row. No ``regParam`` reproduces a constant ``lambda``; PMRS passes
  ``regParam = lambda * rows / (2 * pairs)`` (rows: users and songs with plays), so that the mean
  per-row ridge over all user and song rows equals PMRS's ``lambda``. The run's ``config.json``
  keeps ``regularization`` on PMRS's scale (what fold-in of new users applies) and records
  ``reg_param`` on MLlib's scale under ``"spark"``.
- **Ids.** MLlib needs integer ids: a user's id is their row in the interactions, a song's its
  column, so the id lists of the run are the interactions' own.
- **Settings without a counterpart.** ``use_cg`` (MLlib solves every row exactly, by Cholesky),
  ``threads`` (Spark's master decides: ``local[N]`` or the cluster's executors) and
  ``calculate_loss`` are not used; the run records them as such.

Input goes to Spark as Parquet written by pyarrow (``user``, ``song``, ``plays``; int32) and the
factors come back as Parquet, both in a scratch directory (``[spark] scratch_dir``, default
``<workdir>/spark``; on a cluster it must be storage every executor reads, like the work
directory itself). MLlib has no per-iteration callback; each half-step of implicit ALS starts
with one Spark job (the Gram matrix ``Y^T Y`` of the other side's factors), so a thread watching
Spark's status tracker times the iterations from those jobs' completions and logs one line per
iteration.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import tempfile
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import scipy.sparse as sp

from .wmf import WMFConfig, WMFModel

log = logging.getLogger(__name__)
# pyspark checks the installed pandas at start-up and warns about versions it has not tested;
# PMRS hands Spark no pandas objects.
warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)

#: Scratch directory (Parquet in and out) under the work directory, unless ``scratch_dir`` is set.
SPARK_DIR = Path("spark")
#: The Spark job group of a fit, numbered per process (its jobs give the per-iteration progress).
JOB_GROUP = "pmrs-wmf-als"
_FITS = itertools.count(1)
#: Rows of the play-count Parquet file per row group (Spark splits its input by row group).
ROW_GROUP = 1 << 20
#: The settings of :class:`~pmrs.collaborative.wmf.WMFConfig` MLlib's ALS has no counterpart for.
NOT_USED = {"use_cg": "MLlib solves every row exactly (Cholesky)",
            "threads": "set by the Spark master (local[N] or the cluster's executors)",
            "calculate_loss": "MLlib's ALS does not report a loss"}

_LOG4J = """\
rootLogger.level = {level}
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{{yy/MM/dd HH:mm:ss}} %p %c{{1}}: %m%n%ex
logger.gateway.name = org.apache.spark.api.python.PythonGatewayServer
logger.gateway.level = {level}
"""


@dataclass(frozen=True)
class SparkConfig:
    """Settings of the Spark engine (``[spark]`` in a TOML config)."""

    master: str = "local[*]"
    driver_memory: str = "2g"       # the local JVM's heap; a few GB on a 2-core machine
    blocks: int = 0                 # ALS user and item blocks; 0: Spark's default parallelism
    log_level: str = "ERROR"        # Spark's own (log4j) level: ERROR, WARN, INFO, ...
    scratch_dir: str = ""           # Parquet in and out; "" : <workdir>/spark
    checkpoint_interval: int = 10   # iterations between checkpoints of the factors (lineage)
    java_options: str = ""          # more options for the driver's JVM (e.g. -XX:TieredStopAtLevel=1)

    def __post_init__(self) -> None:
        if self.blocks < 0 or self.checkpoint_interval < 1:
            raise ValueError("need blocks >= 0 and checkpoint_interval >= 1")
        if self.log_level.upper() not in ("OFF", "FATAL", "ERROR", "WARN", "INFO", "DEBUG", "TRACE", "ALL"):
            raise ValueError(f"log_level must be a log4j level such as ERROR or WARN, got {self.log_level!r}")

    @property
    def local(self) -> bool:
        """One JVM for everything (``local``, ``local[N]``, ``local[*]``); ``local-cluster[...]``
        starts executor JVMs like a cluster and counts as one."""
        return self.master == "local" or self.master.startswith("local[")


def reg_param(regularization: float, counts: sp.spmatrix) -> float:
    """MLlib's ``regParam`` for PMRS's ``regularization`` on ``counts``: the mean over user and
    song rows with plays of MLlib's per-row ridge ``regParam * n_row`` equals ``regularization``."""
    counts = sp.csr_matrix(counts)
    rows = int((np.diff(counts.indptr) > 0).sum()) + int((np.bincount(counts.indices, minlength=counts.shape[1]) > 0).sum())
    return float(regularization) * rows / (2.0 * max(int(counts.nnz), 1))


def translation(cfg: WMFConfig, counts: sp.spmatrix, spark_cfg: SparkConfig,
                mllib_reg: float | None = None) -> dict:
    """What the run hands MLlib for ``cfg``, as recorded in ``config.json`` under ``"spark"``
    (``mllib_reg``: a ``regParam`` to use instead of the translation, for measuring it)."""
    counts = sp.csr_matrix(counts)
    lam = reg_param(cfg.regularization, counts) if mllib_reg is None else float(mllib_reg)
    users = np.diff(counts.indptr)
    songs = np.bincount(counts.indices, minlength=counts.shape[1])
    return {"master": spark_cfg.master, "rank": cfg.factors, "max_iter": cfg.iterations,
            "alpha": cfg.alpha, "rating": f"log(1 + plays / {cfg.eps:g})",
            "confidence": "MLlib's 1 + alpha * rating = PMRS's 1 + alpha * log(1 + plays / eps)",
            "reg_param": lam,
            "regularization_translation": "MLlib solves a row with n ratings with ridge reg_param * n "
                                          "(ALS-WR); reg_param = regularization * rows / (2 * pairs), "
                                          "so the mean ridge over user and song rows is PMRS's regularization",
            "ridge_range": {"users": _ridge_range(lam, users), "songs": _ridge_range(lam, songs)},
            "seed": cfg.seed, "not_used": NOT_USED, "settings": asdict(spark_cfg)}


def _ridge_range(lam: float, lengths: np.ndarray) -> list[float]:
    """Smallest and largest per-row ridge ``lam * n`` over the rows with ratings."""
    played = lengths[lengths > 0]
    return [lam * int(played.min()), lam * int(played.max())] if played.size else [0.0, 0.0]


# -- the session -------------------------------------------------------------------------------

@contextmanager
def spark_session(cfg: SparkConfig | None = None, app_name: str = "pmrs") -> Iterator[object]:
    """A SparkSession for ``cfg``, quiet by default, stopped at exit if this call started it.

    Spark's own logging goes through a log4j2 file at ``cfg.log_level`` with no console progress
    bar; a local master binds to the loopback address and runs without the web UI; with any
    other master the UI's address is logged."""
    cfg = cfg or SparkConfig()
    from pyspark.sql import SparkSession

    logging.getLogger("py4j").setLevel(logging.WARNING)  # a line per closed connection otherwise
    active = SparkSession.getActiveSession()
    if active is not None:
        yield active
        return
    conf_dir = Path(tempfile.mkdtemp(prefix="pmrs-spark-"))
    (conf_dir / "log4j2.properties").write_text(_LOG4J.format(level=cfg.log_level.lower()))
    java_opts = f"-Dlog4j.configurationFile=file:{conf_dir / 'log4j2.properties'} {cfg.java_options}".strip()
    builder = (SparkSession.builder.master(cfg.master).appName(app_name)
               .config("spark.driver.memory", cfg.driver_memory)
               .config("spark.driver.extraJavaOptions", java_opts)
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.ui.enabled", "false" if cfg.local else "true"))
    if cfg.local:  # few, small shuffles on one machine; Spark's default of 200 partitions only costs
        builder = builder.config("spark.sql.shuffle.partitions", str(max(2, 2 * (os.cpu_count() or 1))))
    saved = os.environ.get("SPARK_LOCAL_IP")
    if cfg.local and saved is None:
        os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"  # no public interface, no hostname warning
    t0 = time.perf_counter()
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # no Java, or a JVM that would not start
        shutil.rmtree(conf_dir, ignore_errors=True)
        raise RuntimeError(f"could not start Spark ({cfg.master}): {exc}; Spark needs Java 17 or "
                           "later (`java -version`; Debian: apt-get install openjdk-17-jre-headless)") from exc
    finally:
        if saved is None:
            os.environ.pop("SPARK_LOCAL_IP", None)
    session.sparkContext.setLogLevel(cfg.log_level.upper())
    log.info("Spark %s started on %s in %.1fs", session.version, cfg.master, time.perf_counter() - t0)
    if not cfg.local:
        log.info("Spark UI: %s", session.sparkContext.uiWebUrl)
    try:
        yield session
    finally:
        session.stop()
        shutil.rmtree(conf_dir, ignore_errors=True)


# -- Parquet in and out ------------------------------------------------------------------------

def write_plays_parquet(counts: sp.spmatrix, path: str | os.PathLike) -> Path:
    """The play counts as Parquet (``user``, ``song``, ``plays``: int32 rows, columns and summed
    counts; one row per stored pair), written by pyarrow in row groups of ``ROW_GROUP`` rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    m = sp.csr_matrix(counts)
    if not m.has_canonical_format:  # one row per (user, song): MLlib would count repeats apart
        m = m.copy()
        m.sum_duplicates()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    schema = pa.schema([("user", pa.int32()), ("song", pa.int32()), ("plays", pa.int32())])
    rows = np.repeat(np.arange(m.shape[0], dtype=np.int32), np.diff(m.indptr))
    with pq.ParquetWriter(path, schema) as writer:
        for lo in range(0, m.nnz, ROW_GROUP):
            hi = min(lo + ROW_GROUP, m.nnz)
            writer.write_table(pa.table([rows[lo:hi], m.indices[lo:hi].astype(np.int32, copy=False),
                                         m.data[lo:hi].astype(np.int32, copy=False)], schema=schema),
                               row_group_size=ROW_GROUP)
    return path


def read_factors_parquet(path: str | os.PathLike, n_rows: int, factors: int) -> np.ndarray:
    """``(n_rows, factors)`` float32 from MLlib's factor Parquet (``id``, ``features``); rows
    MLlib has no factors for (no plays) stay zero, as implicit leaves them."""
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["id", "features"])
    out = np.zeros((n_rows, factors), dtype=np.float32)
    if table.num_rows:
        ids = table.column("id").to_numpy()
        values = table.column("features").combine_chunks().flatten().to_numpy()
        out[ids] = values.astype(np.float32, copy=False).reshape(-1, factors)
    return out


# -- progress ----------------------------------------------------------------------------------

class _IterationWatch:
    """Times ALS iterations from the jobs of its job group: implicit ALS runs one ``aggregate``
    job per half-step (the other side's Gram matrix), which materialises the factors of the half
    before it; iteration ``i`` ends when half-step ``2i + 1`` (or, for the last, the final
    ``count``) completes."""

    def __init__(self, spark, iterations: int, poll: float = 0.1):
        self.tracker = spark.sparkContext.statusTracker()
        self.group = f"{JOB_GROUP}-{next(_FITS)}"
        self.iterations = iterations
        self.poll = poll
        self.history: list[dict] = []
        self._done: set[int] = set()
        self._marks: list[float] = []   # completion times of the aggregate jobs
        self._last = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pmrs-spark-progress", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._scan(final=exc[0] is None)

    def _run(self) -> None:
        while not self._stop.wait(self.poll):
            self._scan()

    def _kind(self, job_id: int) -> str | None:
        info = self.tracker.getJobInfo(job_id)
        if info is None or info.status != "SUCCEEDED" or not info.stageIds:
            return None if info is None or info.status in ("RUNNING", "UNKNOWN") else "other"
        stage = self.tracker.getStageInfo(max(info.stageIds))
        name = stage.name if stage is not None else ""
        return ("aggregate" if name.startswith("aggregate at ALS") else
                "count" if name.startswith("count at ALS") else "other")

    def _scan(self, final: bool = False) -> None:
        now = time.perf_counter()
        for job in sorted(self.tracker.getJobIdsForGroup(self.group)):
            if job in self._done:
                continue
            kind = self._kind(job)
            if kind is None:
                continue
            self._done.add(job)
            if kind == "aggregate":
                self._marks.append(now)
                # mark 1 starts iteration 1; mark 2i + 1 ends iteration i
                if len(self._marks) % 2 == 1 and len(self._marks) > 1:
                    self._iteration_done(now)
            elif kind == "count" and len(self._marks) == 2 * self.iterations and \
                    len(self.history) < self.iterations:
                self._iteration_done(now)
        if final and len(self.history) < self.iterations and len(self._marks) == 2 * self.iterations:
            self._iteration_done(now)

    def _iteration_done(self, now: float) -> None:
        start = self._marks[2 * len(self.history)]
        n = len(self.history) + 1
        self.history.append({"iteration": n, "seconds": round(now - start, 4)})
        log.info("Spark ALS iteration %d/%d: %.2fs", n, self.iterations, now - start)


# -- training ----------------------------------------------------------------------------------

def train_wmf_spark(counts: sp.spmatrix, cfg: WMFConfig, scratch: str | os.PathLike,
                    spark_cfg: SparkConfig | None = None, spark=None,
                    mllib_reg: float | None = None) -> tuple[WMFModel, dict]:
    """Fit WMF to a users x songs play-count matrix with MLlib's ALS.

    ``scratch``: a directory for the Parquet in and out (created, then removed). ``spark``: a
    running SparkSession to use (else one is started for ``spark_cfg`` and stopped after).
    ``mllib_reg``: MLlib's ``regParam`` as given instead of translated from ``cfg.regularization``
    (the bench compares translations with it). Returns the model (factors in PMRS's rows and
    columns, ``config`` = ``cfg``, per-iteration times in ``log``) and a dict of what was
    translated and how long each part took."""
    spark_cfg = spark_cfg or SparkConfig()
    counts = sp.csr_matrix(counts)
    info = translation(cfg, counts, spark_cfg, mllib_reg)
    scratch = Path(scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="als-", dir=scratch))
    try:
        t0 = time.perf_counter()
        write_plays_parquet(counts, work / "plays.parquet")
        info["write_parquet_seconds"] = round(time.perf_counter() - t0, 3)
        if spark is not None:
            model = _fit(spark, cfg, spark_cfg, info, work, counts.shape)
        else:
            t1 = time.perf_counter()
            with spark_session(spark_cfg) as session:
                info["session_start_seconds"] = round(time.perf_counter() - t1, 3)
                model = _fit(session, cfg, spark_cfg, info, work, counts.shape)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return model, info


def _fit(spark, cfg: WMFConfig, spark_cfg: SparkConfig, info: dict, work: Path, shape) -> WMFModel:
    from pyspark.ml.recommendation import ALS
    from pyspark.sql import functions as F

    sc = spark.sparkContext
    if sc.getCheckpointDir() is None:
        sc.setCheckpointDir(str(work / "checkpoints"))
    blocks = spark_cfg.blocks or sc.defaultParallelism
    ratings = (spark.read.parquet(str(work / "plays.parquet"))
               .select("user", "song", F.log1p(F.col("plays") / F.lit(float(cfg.eps))).alias("rating")))
    als = ALS(rank=cfg.factors, maxIter=cfg.iterations, regParam=info["reg_param"], implicitPrefs=True,
              alpha=float(cfg.alpha), nonnegative=False, seed=cfg.seed, numUserBlocks=blocks,
              numItemBlocks=blocks, checkpointInterval=spark_cfg.checkpoint_interval,
              userCol="user", itemCol="song", ratingCol="rating")
    info["blocks"] = blocks
    watch = _IterationWatch(spark, cfg.iterations)
    sc.setJobGroup(watch.group, "PMRS WMF (implicit ALS)")
    t0 = time.perf_counter()
    try:
        with watch:
            fitted = als.fit(ratings)
        info["fit_seconds"] = round(time.perf_counter() - t0, 3)
        t1 = time.perf_counter()
        fitted.userFactors.write.parquet(str(work / "user_factors"))
        fitted.itemFactors.write.parquet(str(work / "song_factors"))
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
    users = read_factors_parquet(work / "user_factors", shape[0], cfg.factors)
    songs = read_factors_parquet(work / "song_factors", shape[1], cfg.factors)
    info["read_back_seconds"] = round(time.perf_counter() - t1, 3)
    if len(watch.history) != cfg.iterations:  # Spark's job layout changed: no per-iteration times
        log.warning("per-iteration times unavailable (%d of %d iterations seen in Spark's jobs)",
                    len(watch.history), cfg.iterations)
    return WMFModel(user_factors=users, song_factors=songs, config=cfg, log=watch.history)
